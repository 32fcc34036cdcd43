//! Continuous batching: many sequences decode together, each with its own sampler, and when
//! one finishes the next request takes its slot. Progress is reported as events, and a cancel
//! flag is honoured between decoding steps.
//!
//! All rows write their next token at one shared cache column (see `model::layout`): a new
//! request is prefilled alone and its keys/values placed so that its prompt ends at that
//! column. Columns no live row looks at are dropped now and then, so memory stays bounded by
//! the longest live sequence rather than by the run's length.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use crate::llm::model::{KvCache, Llama, StepLayout, tokens_tensor};
use crate::llm::readback::f32_values;
use crate::llm::sampler::{Sampler, SamplingParams};
use crate::llm::tokenizer::{TextTokenizer, TokenStream};

/// The most sequences decoded together that a user may ask for: the KV cache grows with it, and
/// past a few dozen rows a CPU gains nothing (see docs/results.md) while memory keeps growing.
pub const MAX_BATCH: usize = 64;
/// The most tokens a user may ask one sequence to write: an example is a sentence or a short
/// paragraph, and each token costs a decoding step for the whole batch.
pub const MAX_NEW_TOKENS: usize = 1024;

/// One sequence to generate.
#[derive(Debug, Clone)]
pub struct DecodeRequest {
    /// The caller's name for this request; also picks its random stream under the seed.
    pub index: u64,
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    /// The prompt that classifier-free guidance steers away from (`params.guidance_scale`);
    /// see [`crate::llm::guided`].
    pub negative_prompt: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model wrote an end-of-sequence token.
    EndOfSequence,
    /// A stop text appeared.
    StopText,
    /// `max_new_tokens` reached.
    Length,
    Cancelled,
    /// The prompt and `max_new_tokens` together do not fit the model's context (its rotary
    /// table would be read past its end); nothing was generated.
    PromptTooLong,
    /// Reading the model's output back failed (see [`Finished::error`]); the sequence stopped
    /// where it was.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    pub index: u64,
    /// Generated tokens (the end-of-sequence token excluded).
    pub tokens: Vec<u32>,
    /// Their text, cut before any stop text.
    pub text: String,
    pub reason: FinishReason,
    pub prompt_tokens: usize,
    pub seconds: f64,
    /// Why the sequence did not run to its end, for [`FinishReason::Failed`] and
    /// [`FinishReason::PromptTooLong`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Summed log-probability of `tokens` under the model (the generator's own likelihood of
    /// what it wrote: a filter signal, SuperGen's).
    pub logprob: f64,
}

impl Finished {
    /// Mean log-probability per generated token (0 for none).
    pub fn mean_logprob(&self) -> f64 {
        if self.tokens.is_empty() {
            0.0
        } else {
            self.logprob / self.tokens.len() as f64
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub generated_tokens: usize,
    pub tokens_per_second: f64,
    pub elapsed_seconds: f64,
    pub eta_seconds: Option<f64>,
    pub active: usize,
}

#[derive(Debug, Clone)]
pub enum DecodeEvent {
    Started {
        index: u64,
    },
    /// New text of a sequence (may be empty while a multi-byte character is incomplete).
    Token {
        index: u64,
        token: u32,
        delta: String,
    },
    Finished(Finished),
    Progress(Progress),
}

pub(super) struct Row<'t> {
    index: u64,
    prompt_tokens: usize,
    pub(super) sampler: Sampler,
    pub(super) context: Vec<u32>,
    generated: Vec<u32>,
    stream: TokenStream<'t>,
    start: usize,
    started: Instant,
    /// Logits to sample the next token from, when not produced by the batch step.
    pending: Option<Vec<f32>>,
    pub(super) last: u32,
    /// Log-probability of the generated tokens under the model itself (before temperature,
    /// top-k and the other sampling settings reshape it).
    logprob: f64,
}

/// Decodes `requests` with at most `batch` sequences at a time, calling `sink` for each event.
/// Returns the finished sequences in the order they finished.
pub fn decode(
    model: &Llama,
    tokenizer: &TextTokenizer,
    requests: Vec<DecodeRequest>,
    batch: usize,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(DecodeEvent),
) -> Vec<Finished> {
    if requests
        .iter()
        .any(|r| r.negative_prompt.is_some() && r.params.guidance_scale != 1.0)
    {
        return super::guided::decode(model, tokenizer, requests, batch, cancel, sink);
    }
    let total = requests.len();
    let batch = batch.max(1);
    let stop_ids = tokenizer.stop_ids();
    let device = model.device();
    let started = Instant::now();
    let mut queue: VecDeque<DecodeRequest> = requests
        .into_iter()
        .filter(|r| !r.prompt.is_empty())
        .collect();
    let mut finished: Vec<Finished> = Vec::with_capacity(total);
    // A request that would run past the context finishes before any model work: decoding it
    // would read the rotary table past its end (a panic on the CPU, undefined on a GPU).
    let context = model.max_positions();
    let (fit, too_long): (VecDeque<DecodeRequest>, VecDeque<DecodeRequest>) = queue
        .into_iter()
        .partition(|r| fits_context(r.prompt.len(), r.params.max_new_tokens, context));
    queue = fit;
    for req in too_long {
        let error = format!(
            "the prompt ({} tokens) and max tokens ({}) exceed the model's context ({context} \
             tokens)",
            req.prompt.len(),
            req.params.max_new_tokens
        );
        let f = never_ran(req, FinishReason::PromptTooLong, Some(error));
        sink(DecodeEvent::Finished(f.clone()));
        finished.push(f);
    }
    let mut generated_tokens = 0usize;
    // The logits as the model gave them, before sampling reshapes a row's copy.
    let mut raw: Vec<f32> = Vec::new();
    let Some(attn) = model.layers.first().map(|b| &b.self_attn) else {
        return finished;
    };
    let new_cache = |rows: usize, cap: usize| {
        KvCache::with_dims(
            model.layers.len(),
            attn.num_kv_heads,
            attn.head_dim,
            rows,
            cap,
            &device,
        )
    };

    // The first rows are prefilled together.
    let first: Vec<DecodeRequest> = (0..batch).map_while(|_| queue.pop_front()).collect();
    if first.is_empty() {
        return finished;
    }
    let lens: Vec<usize> = first.iter().map(|r| r.prompt.len()).collect();
    let layout = StepLayout::for_prompts(&lens);
    let longest_new = first
        .iter()
        .map(|r| r.params.max_new_tokens)
        .max()
        .unwrap_or(0);
    let mut cache = new_cache(first.len(), layout.len + longest_new + 1);
    let prompts: Vec<Vec<u32>> = first.iter().map(|r| r.prompt.clone()).collect();
    let logits = model.forward_last(
        tokens_tensor(&prompts, tokenizer.pad_id(), &device),
        &layout,
        Some(&mut cache),
    );
    let mut rows: Vec<Option<Row>> = Vec::new();
    for (req, start) in first.into_iter().zip(layout.start.iter()) {
        sink(DecodeEvent::Started { index: req.index });
        rows.push(Some(new_row(req, *start, tokenizer)));
    }
    let mut batch_logits = Some(logits);
    let mut failure: Option<String> = None;

    'decode: loop {
        if cancel.load(Ordering::Relaxed) {
            for row in rows.iter_mut().filter_map(Option::take) {
                let f = finish(row, FinishReason::Cancelled, tokenizer);
                sink(DecodeEvent::Finished(f.clone()));
                finished.push(f);
            }
            break;
        }
        // Sample one token for every row, refilling finished slots from the queue.
        let step_logits = match batch_logits
            .take()
            .map(|l| {
                let [b, v] = l.dims();
                f32_values(l.into_data(), "logits").map(|flat| (flat, b, v))
            })
            .transpose()
        {
            Ok(step) => step,
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        };
        for r in 0..rows.len() {
            let mut from_batch = step_logits
                .as_ref()
                .map(|(flat, _, v)| flat[r * v..(r + 1) * v].to_vec());
            while let Some(row) = rows[r].as_mut() {
                let Some(mut logits) = row.pending.take().or_else(|| from_batch.take()) else {
                    break;
                };
                row.forbid_stop_early(&mut logits, &stop_ids);
                // The model's own log-probability of the token it is about to write, read
                // before sampling reshapes the logits.
                // (One buffer for the whole run: a vocabulary-sized allocation per token would be
                // a page-mapping round trip on every step.)
                let lse = log_sum_exp(&logits);
                raw.clear();
                raw.extend_from_slice(&logits);
                let token = row.sampler.sample(&mut logits, &row.context);
                generated_tokens += 1;
                let reason =
                    row.advance(token, f64::from(raw[token as usize]) - lse, &stop_ids, sink);
                let Some(reason) = reason else { break };
                let done_row = rows[r].take().expect("row present");
                let f = finish(done_row, reason, tokenizer);
                sink(DecodeEvent::Finished(f.clone()));
                finished.push(f);
                // The next request takes this slot: prefill it alone, then place its keys and
                // values so its prompt ends at the shared column.
                if let Some(req) = queue.pop_front() {
                    let plen = req.prompt.len();
                    if plen > cache.len() {
                        let shift = plen - cache.len();
                        cache.pad_left(shift);
                        for row in rows.iter_mut().flatten() {
                            row.start += shift;
                        }
                    }
                    let mut solo = new_cache(1, plen);
                    let solo_logits = model.forward_last(
                        tokens_tensor(std::slice::from_ref(&req.prompt), 0, &device),
                        &StepLayout::for_prompts(&[plen]),
                        Some(&mut solo),
                    );
                    cache.place_row(r, &solo);
                    sink(DecodeEvent::Started { index: req.index });
                    let mut row = new_row(req, cache.len() - plen, tokenizer);
                    let pending = crate::llm::greedy::row_logits(solo_logits);
                    let error = pending.as_ref().err().map(ToString::to_string);
                    row.pending = pending.ok();
                    rows[r] = Some(row);
                    if error.is_some() {
                        failure = error;
                        break 'decode;
                    }
                }
            }
        }
        // Rows without a sequence leave the batch.
        let keep: Vec<usize> = (0..rows.len()).filter(|&r| rows[r].is_some()).collect();
        if keep.is_empty() {
            sink(DecodeEvent::Progress(progress(
                started,
                finished.len(),
                total,
                generated_tokens,
                0,
            )));
            break;
        }
        if keep.len() < rows.len() {
            cache.retain_rows(&keep);
            rows = keep.iter().map(|&r| rows[r].take()).collect();
        }
        let live: Vec<&Row> = rows.iter().flatten().collect();
        // Forget columns left of every live row's first token.
        let min_start = live.iter().map(|r| r.start).min().unwrap_or(0);
        if min_start >= 64 && min_start * 2 >= cache.len() {
            cache.drop_front(min_start);
            for row in rows.iter_mut().flatten() {
                row.start -= min_start;
            }
        }
        sink(DecodeEvent::Progress(progress(
            started,
            finished.len(),
            total,
            generated_tokens,
            rows.len(),
        )));

        let starts: Vec<usize> = rows.iter().flatten().map(|r| r.start).collect();
        let last: Vec<i64> = rows.iter().flatten().map(|r| r.last as i64).collect();
        let layout = StepLayout::decode(&starts, cache.len());
        let tokens = Tensor::from_data(TensorData::new(last, [starts.len(), 1]), &device);
        batch_logits = Some(model.forward_last(tokens, &layout, Some(&mut cache)));
    }
    // An error ends every sequence still running or waiting, each with the reason, so the
    // caller reports them instead of taking empty text for a generation.
    if let Some(error) = failure {
        let running = rows.iter_mut().filter_map(Option::take);
        fail_all(
            &error,
            running,
            queue.drain(..),
            tokenizer,
            sink,
            &mut finished,
        );
    }
    finished
}

/// Ends every running and waiting sequence as failed with `error`, each reported.
pub(super) fn fail_all<'t>(
    error: &str,
    running: impl Iterator<Item = Row<'t>>,
    waiting: impl Iterator<Item = DecodeRequest>,
    tokenizer: &TextTokenizer,
    sink: &mut dyn FnMut(DecodeEvent),
    finished: &mut Vec<Finished>,
) {
    for row in running {
        let mut f = finish(row, FinishReason::Failed, tokenizer);
        f.error = Some(error.to_string());
        sink(DecodeEvent::Finished(f.clone()));
        finished.push(f);
    }
    for req in waiting {
        let f = never_ran(req, FinishReason::Failed, Some(error.to_string()));
        sink(DecodeEvent::Finished(f.clone()));
        finished.push(f);
    }
}

impl Row<'_> {
    /// Writes `token` (whose log-probability under the model is `logprob`), reports it, and
    /// says whether the sequence ends with it.
    pub(super) fn advance(
        &mut self,
        token: u32,
        logprob: f64,
        stop_ids: &[u32],
        sink: &mut dyn FnMut(DecodeEvent),
    ) -> Option<FinishReason> {
        self.last = token;
        if stop_ids.contains(&token) {
            return Some(FinishReason::EndOfSequence);
        }
        self.logprob += logprob;
        self.generated.push(token);
        self.context.push(token);
        let delta = self.stream.push(token);
        sink(DecodeEvent::Token {
            index: self.index,
            token,
            delta,
        });
        let params = self.sampler.params();
        if !params.stop.is_empty() && stop_text_at(&self.stream.text(), &params.stop).is_some() {
            Some(FinishReason::StopText)
        } else if self.generated.len() >= params.max_new_tokens {
            Some(FinishReason::Length)
        } else {
            None
        }
    }

    /// End-of-sequence tokens cannot be drawn before `min_new_tokens` exist.
    pub(super) fn forbid_stop_early(&self, logits: &mut [f32], stop_ids: &[u32]) {
        if self.generated.len() < self.sampler.params().min_new_tokens {
            for &s in stop_ids {
                if let Some(l) = logits.get_mut(s as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }
}

pub(super) fn new_row<'t>(
    req: DecodeRequest,
    start: usize,
    tokenizer: &'t TextTokenizer,
) -> Row<'t> {
    Row {
        index: req.index,
        prompt_tokens: req.prompt.len(),
        sampler: Sampler::new(req.params, req.index),
        context: req.prompt,
        generated: Vec::new(),
        stream: tokenizer.stream(true),
        start,
        started: Instant::now(),
        pending: None,
        last: 0,
        logprob: 0.0,
    }
}

/// `ln Σ exp(x)`, computed stably.
pub(super) fn log_sum_exp(x: &[f32]) -> f64 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f64::from(max);
    }
    let sum: f64 = x.iter().map(|&v| f64::from(v - max).exp()).sum();
    f64::from(max) + sum.ln()
}

pub(super) fn finish(row: Row, reason: FinishReason, tokenizer: &TextTokenizer) -> Finished {
    // Tokens that do not decode are a failure to report, not an empty generation.
    let (mut text, reason, error) = match tokenizer.decode(&row.generated, true) {
        Ok(text) => (text, reason, None),
        Err(e) => (
            String::new(),
            FinishReason::Failed,
            Some(format!("decoding the generated tokens failed: {e}")),
        ),
    };
    if let Some(at) = stop_text_at(&text, &row.sampler.params().stop) {
        text.truncate(at);
    }
    Finished {
        index: row.index,
        tokens: row.generated,
        text,
        reason,
        prompt_tokens: row.prompt_tokens,
        seconds: row.started.elapsed().as_secs_f64(),
        error,
        logprob: row.logprob,
    }
}

/// A request that never ran: its prompt and `max_new_tokens` do not fit the model's context, or
/// an error stopped the run before it started.
pub(super) fn never_ran(
    req: DecodeRequest,
    reason: FinishReason,
    error: Option<String>,
) -> Finished {
    Finished {
        index: req.index,
        tokens: Vec::new(),
        text: String::new(),
        reason,
        prompt_tokens: req.prompt.len(),
        seconds: 0.0,
        error,
        logprob: 0.0,
    }
}

/// Whether a sequence of `prompt` tokens followed by `max_new` generated ones stays inside a
/// context of `context` positions. The last generated token is never fed back, so the last
/// position read is `prompt + max_new - 2`; one position is kept spare all the same.
pub fn fits_context(prompt: usize, max_new: usize, context: usize) -> bool {
    prompt.saturating_add(max_new) <= context
}

/// Byte offset of the earliest stop text in `text`.
pub fn stop_text_at(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

pub(super) fn progress(
    started: Instant,
    done: usize,
    total: usize,
    generated: usize,
    active: usize,
) -> Progress {
    let elapsed = started.elapsed().as_secs_f64();
    Progress {
        done,
        total,
        generated_tokens: generated,
        tokens_per_second: if elapsed > 0.0 {
            generated as f64 / elapsed
        } else {
            0.0
        },
        elapsed_seconds: elapsed,
        eta_seconds: (done > 0).then(|| elapsed / done as f64 * (total - done) as f64),
        active,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicBool;

    use burn::tensor::Device;

    use super::*;
    use crate::llm::greedy::greedy;
    use crate::llm::model::tests::{tiny_model, tiny_tokenizer};

    fn requests(params: &SamplingParams) -> Vec<DecodeRequest> {
        // Different lengths, the longest arriving late: refills must pad the cache on the left.
        let prompts: Vec<Vec<u32>> = vec![
            vec![5, 6],
            vec![7, 8, 9, 10],
            vec![11],
            vec![12, 13, 14, 15, 16, 17, 18, 19, 20],
            vec![21, 22, 23],
            vec![30, 31, 32, 33, 34],
            vec![40],
        ];
        prompts
            .into_iter()
            .enumerate()
            .map(|(i, prompt)| DecodeRequest {
                index: i as u64,
                prompt,
                params: params.clone(),
                negative_prompt: None,
            })
            .collect()
    }

    /// The tokens of each finished sequence, in request order.
    pub(crate) fn by_index(mut f: Vec<Finished>) -> Vec<Vec<u32>> {
        f.sort_by_key(|x| x.index);
        f.into_iter().map(|x| x.tokens).collect()
    }

    #[test]
    fn the_generator_log_probability_is_what_the_model_gives_each_token_it_wrote() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let never = AtomicBool::new(false);
        let mut sampled = SamplingParams {
            temperature: 1.5,
            ..SamplingParams::default()
        };
        sampled.max_new_tokens = 6;
        let mut reqs = requests(&SamplingParams::greedy(6));
        reqs.extend(requests(&sampled).into_iter().map(|mut r| {
            r.index += 100;
            r
        }));
        let prompts: std::collections::HashMap<u64, Vec<u32>> =
            reqs.iter().map(|r| (r.index, r.prompt.clone())).collect();
        let got = decode(&model, &tk, reqs, 3, &never, &mut |_| {});
        let mut checked = 0;
        for f in &got {
            // Recomputed one token at a time from scratch (no cache, no batch): the
            // log-softmax of the model's logits at each token it wrote.
            let mut context = prompts[&f.index].clone();
            let mut want = 0.0f64;
            for &t in &f.tokens {
                let logits = model.forward_last(
                    tokens_tensor(std::slice::from_ref(&context), 0, &device),
                    &StepLayout::for_prompts(&[context.len()]),
                    None,
                );
                let row = crate::llm::greedy::row_logits(logits).unwrap();
                want += f64::from(row[t as usize]) - log_sum_exp(&row);
                context.push(t);
            }
            assert!(f.logprob <= 0.0 && f.logprob.is_finite(), "{f:?}");
            assert!((f.logprob - want).abs() < 1e-3, "{} vs {want}", f.logprob);
            if !f.tokens.is_empty() {
                checked += 1;
                assert!((f.mean_logprob() - want / f.tokens.len() as f64).abs() < 1e-3);
            }
        }
        assert!(checked >= 10, "{checked} sequences with tokens");
        assert_eq!(log_sum_exp(&[0.0, 0.0]), std::f64::consts::LN_2);
    }

    #[test]
    fn a_request_past_the_context_is_refused_before_decoding_and_the_rest_run() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let context = model.max_positions();
        // Without the check this request reads the rotary table past its end.
        let long = DecodeRequest {
            index: 0,
            prompt: (0..context as u32 - 4).map(|t| 3 + t % 50).collect(),
            params: SamplingParams::greedy(10),
            negative_prompt: None,
        };
        let fits = DecodeRequest {
            index: 1,
            prompt: vec![5, 6, 7],
            params: SamplingParams::greedy(10),
            negative_prompt: None,
        };
        let expected = greedy(&model, &fits.prompt, 10, &[]).unwrap();
        let never = AtomicBool::new(false);
        let mut seen = Vec::new();
        let got = decode(&model, &tk, vec![long, fits], 2, &never, &mut |e| {
            if let DecodeEvent::Finished(f) = e {
                seen.push(f.index)
            }
        });
        assert_eq!(seen, [0, 1], "the refused request is reported first");
        let refused = got.iter().find(|f| f.index == 0).unwrap();
        assert_eq!(refused.reason, FinishReason::PromptTooLong);
        assert!(refused.tokens.is_empty());
        let why = refused.error.as_deref().unwrap();
        assert!(
            why.contains(&format!("context ({context} tokens)")) && why.contains("max tokens (10)"),
            "{why}"
        );
        let ran = got.iter().find(|f| f.index == 1).unwrap();
        let stop = tk.stop_ids();
        let mut want = expected;
        if let Some(at) = want.iter().position(|t| stop.contains(t)) {
            want.truncate(at);
        }
        assert_eq!(ran.tokens, want);
        assert!(fits_context(context - 10, 10, context));
        assert!(!fits_context(context - 9, 10, context));
    }

    #[test]
    fn batched_greedy_equals_one_at_a_time() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let params = SamplingParams::greedy(6);
        let stop = tk.stop_ids();
        let expected: Vec<Vec<u32>> = requests(&params)
            .iter()
            .map(|r| {
                let mut out = greedy(&model, &r.prompt, 6, &stop).unwrap();
                if out.last().is_some_and(|t| stop.contains(t)) {
                    out.pop();
                }
                out
            })
            .collect();
        let never = AtomicBool::new(false);
        for batch in [1, 2, 3, 8] {
            let got = decode(&model, &tk, requests(&params), batch, &never, &mut |_| {});
            assert_eq!(by_index(got), expected, "batch {batch}");
        }
    }

    #[test]
    fn long_runs_drop_dead_columns_without_changing_outputs() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let params = SamplingParams::greedy(45);
        let stop = tk.stop_ids();
        let reqs: Vec<DecodeRequest> = (0..8)
            .map(|i| DecodeRequest {
                index: i,
                prompt: vec![3 + i as u32 * 5, 4 + i as u32],
                params: params.clone(),
                negative_prompt: None,
            })
            .collect();
        let expected: Vec<Vec<u32>> = reqs
            .iter()
            .map(|r| {
                let mut out = greedy(&model, &r.prompt, 45, &stop).unwrap();
                if out.last().is_some_and(|t| stop.contains(t)) {
                    out.pop();
                }
                out
            })
            .collect();
        // Several sequences run long enough that, two at a time, the shared columns pass the
        // compaction threshold more than once.
        let long = expected.iter().filter(|e| e.len() >= 40).count();
        assert!(long >= 4, "only {long} long sequences; pick other prompts");
        let never = AtomicBool::new(false);
        let got = decode(&model, &tk, reqs, 2, &never, &mut |_| {});
        assert_eq!(by_index(got), expected);
    }

    #[test]
    fn same_seed_same_samples_and_another_seed_differs() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let never = AtomicBool::new(false);
        let run = |seed: u64| {
            let params = SamplingParams {
                seed,
                max_new_tokens: 8,
                temperature: 1.5,
                ..Default::default()
            };
            by_index(decode(
                &model,
                &tk,
                requests(&params),
                3,
                &never,
                &mut |_| {},
            ))
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn cancel_stops_within_one_step_and_keeps_partial_text() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let params = SamplingParams {
            max_new_tokens: 50,
            ..Default::default()
        };
        let cancel = AtomicBool::new(false);
        let mut tokens_after_cancel = 0;
        let mut tokens = 0;
        let finished = decode(&model, &tk, requests(&params), 4, &cancel, &mut |e| {
            if let DecodeEvent::Token { .. } = e {
                tokens += 1;
                if cancel.load(Ordering::Relaxed) {
                    tokens_after_cancel += 1;
                }
                if tokens == 10 {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        });
        // The step that was sampling when the flag rose finishes its rows (< batch tokens), then
        // no more decoding happens.
        assert!(
            tokens_after_cancel < 4,
            "{tokens_after_cancel} tokens after cancel"
        );
        assert!(finished.iter().any(|f| f.reason == FinishReason::Cancelled));
        assert!(finished.len() < 7);
    }

    #[test]
    fn stop_text_cuts_the_output() {
        assert_eq!(stop_text_at("abc\ndef", &["\n".into()]), Some(3));
        assert_eq!(stop_text_at("abc", &["x".into(), "".into()]), None);
        assert_eq!(stop_text_at("a.b!c", &["!".into(), ".".into()]), Some(1));
    }
}
