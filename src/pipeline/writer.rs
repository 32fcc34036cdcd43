//! Who writes the examples: the local model in Burn, or an OpenAI-compatible server. Both take
//! the same planned requests and report through the same [`GenerateEvent`]s (a sequence starts,
//! its text arrives piece by piece, it becomes a candidate, progress), so the Generate screen,
//! the journal and the headless commands treat them alike.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::data::task::{LabelDef, Task};
use crate::llm::decode::{FinishReason, Finished, Progress};
use crate::llm::model::Llama;
use crate::llm::remote::{self, CompletionRequest, Remote, RemoteError, Streamed};
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::generate::{self, Candidate, GenerateEvent, GenerateSettings, Planned};

pub enum Writer<'a> {
    /// The local model (with its adapter, if any), `batch` sequences decoded together.
    Local { model: &'a Llama, batch: usize },
    /// A server, `concurrency` requests in flight (its settings).
    Remote(&'a Remote),
}

impl Writer<'_> {
    /// The settings to plan prompts with: a server is sent the rendered template itself (as a
    /// completion prompt, or as the user message of a chat request, where the server applies
    /// its model's chat template), never the local model's chat markup.
    pub fn plan_settings(&self, settings: &GenerateSettings) -> GenerateSettings {
        match self {
            Writer::Local { .. } => settings.clone(),
            Writer::Remote(_) => GenerateSettings {
                chat: false,
                ..settings.clone()
            },
        }
    }

    /// What items written by it record (`meta.writer`), `None` for the local model.
    pub fn provenance(&self, settings: &GenerateSettings) -> Option<serde_json::Value> {
        match self {
            Writer::Local { .. } => None,
            Writer::Remote(r) => Some(r.provenance(settings.chat)),
        }
    }
}

/// Writes the planned requests, turning each into a candidate as it finishes. A server that
/// cannot be used (after its retries) ends the run with its error; the candidates already
/// reported stay reported.
pub fn write(
    writer: &Writer,
    tokenizer: &TextTokenizer,
    task: &Task,
    settings: &GenerateSettings,
    planned: Vec<Planned>,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(GenerateEvent),
) -> Result<Vec<Candidate>, RemoteError> {
    match writer {
        Writer::Local { model, batch } => Ok(generate::run(
            model, tokenizer, task, planned, *batch, cancel, sink,
        )),
        Writer::Remote(r) => write_remote(r, task, settings.chat, planned, cancel, sink),
    }
}

enum Message {
    Started,
    Delta(String),
}

fn write_remote(
    remote: &Remote,
    task: &Task,
    chat: bool,
    planned: Vec<Planned>,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(GenerateEvent),
) -> Result<Vec<Candidate>, RemoteError> {
    let total = planned.len();
    let labels: HashMap<u64, String> = planned.iter().map(|p| (p.index, p.label.clone())).collect();
    let field_names = [task.input_field.as_str(), task.label_field.as_str()];
    let label_words: Vec<&str> = task.labels.iter().map(LabelDef::verbalizer).collect();
    let client = remote.client();
    let concurrency = client.settings().concurrency.max(1);
    let started = Instant::now();
    remote.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Message)>();
        let requests: Vec<_> = planned.into_iter().map(|p| {
            let tx = tx.clone();
            async move {
                let request = CompletionRequest {
                    prompt: &p.prompt,
                    chat,
                    sampling: &p.request.params,
                    seed: remote::request_seed(p.request.params.seed, p.index),
                };
                let t0 = Instant::now();
                let index = p.index;
                let result = client
                    .complete(&request, &mut |s| {
                        let m = match s {
                            Streamed::Started => Message::Started,
                            Streamed::Delta(t) => Message::Delta(t),
                        };
                        let _ = tx.send((index, m));
                    })
                    .await;
                (p, result, t0.elapsed().as_secs_f64())
            }
        }).collect();
        drop(tx);
        let mut requests = futures_util::stream::iter(requests).buffer_unordered(concurrency);
        let mut out = Vec::with_capacity(total);
        let mut tokens = 0usize;
        let progress = |done: usize, tokens: usize| {
            let elapsed = started.elapsed().as_secs_f64();
            let rate = if elapsed > 0.0 {
                tokens as f64 / elapsed
            } else {
                0.0
            };
            GenerateEvent::Progress(Progress {
                done,
                total,
                generated_tokens: tokens,
                tokens_per_second: rate,
                elapsed_seconds: elapsed,
                eta_seconds: (done > 0).then(|| elapsed / done as f64 * (total - done) as f64),
                active: concurrency.min(total - done),
            })
        };
        let on_message =
            |index: u64, m: Message, tokens: &mut usize, sink: &mut dyn FnMut(GenerateEvent)| {
                match m {
                    Message::Started => sink(GenerateEvent::Started {
                        index,
                        label: labels.get(&index).cloned().unwrap_or_default(),
                    }),
                    Message::Delta(text) => {
                        *tokens += 1;
                        sink(GenerateEvent::Delta { index, text })
                    }
                }
            };
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                biased;
                Some((index, m)) = rx.recv() => on_message(index, m, &mut tokens, sink),
                next = requests.next() => {
                    // What this request streamed reaches the sink before its candidate does.
                    while let Ok((index, m)) = rx.try_recv() {
                        on_message(index, m, &mut tokens, sink);
                    }
                    let Some((p, result, seconds)) = next else { break };
                    let candidate = candidate_of(p, result?, seconds, task, &field_names, &label_words);
                    sink(GenerateEvent::Candidate(candidate.clone()));
                    out.push(candidate);
                    sink(progress(out.len(), tokens));
                }
                _ = tick.tick() => {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    sink(progress(out.len(), tokens));
                }
            }
        }
        Ok::<_, RemoteError>(out)
    })
}

/// A server's completion as the candidate the local writer would have made of the same text.
fn candidate_of(
    p: Planned,
    c: remote::Completion,
    seconds: f64,
    task: &Task,
    field_names: &[&str],
    label_words: &[&str],
) -> Candidate {
    let stops = &p.request.params.stop;
    // Servers leave the stop text out; one that does not is cut where the local writer cuts.
    let text = match stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| c.text.find(s.as_str()))
        .min()
    {
        Some(at) => c.text[..at].to_string(),
        None => c.text.clone(),
    };
    let reason = match c.finish_reason.as_deref() {
        Some("length") => FinishReason::Length,
        Some("stop") if !stops.is_empty() => FinishReason::StopText,
        _ => FinishReason::EndOfSequence,
    };
    let new_tokens = c.tokens();
    let (attempts, retried_for) = (c.attempts, c.retried_for);
    let finished = Finished {
        index: p.index,
        tokens: Vec::new(),
        text,
        reason,
        prompt_tokens: c.prompt_tokens.unwrap_or(p.request.prompt.len()),
        seconds,
        error: None,
        logprob: 0.0,
    };
    let mut cand = generate::candidate(
        finished,
        p.label,
        p.prompt,
        &task.input_noun,
        field_names,
        label_words,
    );
    cand.new_tokens = new_tokens;
    cand.attempts = attempts;
    cand.retried_for = retried_for;
    cand
}
