//! The in-context-learning classifier: a k-shot prompt built from the seeds, each label scored
//! by the log-likelihood of its verbalizer tokens after the prompt (multi-token verbalizers
//! summed, not truncated), batched, returning the full distribution over labels. Optional
//! contextual calibration (Zhao et al., 2021) divides by the label prior measured on
//! content-free inputs.
//!
//! The demonstrations are the same for every input, so their keys/values are computed once and
//! shared: each batch only runs the input's own tokens (right-padded after the shared prefix, so
//! the causal mask alone keeps padding out of every real position).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;

use crate::data::task::{Example, LabelDef, Task};
use crate::llm::model::{KvCache, Llama, StepLayout};
use crate::llm::readback::f32_values;
use crate::llm::remote::{Remote, RemoteError};
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::prompt::{PromptError, Templates};

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("label '{0}' has a verbalizer with no tokens")]
    EmptyVerbalizer(String),
    #[error(
        "the input {text:?} makes a prompt of {tokens} tokens, more than the model's context ({context})"
    )]
    TooLong {
        text: String,
        tokens: usize,
        context: usize,
    },
    #[error(transparent)]
    ReadBack(#[from] crate::llm::readback::ReadBackError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

#[derive(Debug, Clone)]
pub struct ClassifierOptions {
    /// Demonstrations in the prompt (empty = zero-shot).
    pub demos: Vec<Example>,
    /// An instruction line before the demonstrations.
    pub instruction: Option<String>,
    /// Divide by the label prior on content-free inputs.
    pub calibrate: bool,
    /// How much of that prior to divide by: 1 the whole (Zhao et al.), 0.5 its square root.
    pub calibration_strength: f64,
    /// Inputs scored together.
    pub batch: usize,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        ClassifierOptions {
            demos: Vec::new(),
            instruction: None,
            calibrate: false,
            calibration_strength: 1.0,
            batch: 16,
        }
    }
}

/// The content-free inputs of contextual calibration.
pub const CONTENT_FREE: [&str; 3] = ["N/A", "", "[MASK]"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    /// The most probable label.
    pub label: String,
    /// Probability of each label, in task order, summing to 1.
    pub probs: Vec<(String, f64)>,
    /// Log-likelihood of each label's verbalizer tokens (before calibration), in task order.
    pub log_likelihoods: Vec<f64>,
    /// The server that judged (`{"endpoint", "model"}`); `None`: the model here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<serde_json::Value>,
}

impl Prediction {
    pub fn prob_of(&self, label: &str) -> Option<f64> {
        self.probs.iter().find(|(l, _)| l == label).map(|(_, p)| *p)
    }

    /// Probability of the best label minus that of the runner-up.
    pub fn margin(&self) -> f64 {
        let mut p: Vec<f64> = self.probs.iter().map(|x| x.1).collect();
        p.sort_by(|a, b| b.total_cmp(a));
        p.first().copied().unwrap_or(0.0) - p.get(1).copied().unwrap_or(0.0)
    }
}

pub struct Classifier<'m> {
    scorer: Scorer<'m>,
    task: Task,
    templates: Templates,
    options: ClassifierOptions,
    log_prior: Option<Vec<f64>>,
}

/// Where the label words' log-likelihoods come from: the model here, or an OpenAI-compatible
/// server's log-probabilities of the next token. Everything else — the prompt, calibration,
/// the distribution — is the same for both.
enum Scorer<'m> {
    Local(Local<'m>),
    Remote(&'m Remote),
}

struct Local<'m> {
    model: &'m Llama,
    tokenizer: &'m TextTokenizer,
    label_tokens: Vec<Vec<u32>>,
    /// Tokens shared by every prompt (the demonstrations), and their cache.
    prefix: Vec<u32>,
    prefix_cache: Option<KvCache>,
}

impl<'m> Classifier<'m> {
    pub fn new(
        model: &'m Llama,
        tokenizer: &'m TextTokenizer,
        task: &Task,
        templates: &Templates,
        options: ClassifierOptions,
    ) -> Result<Self, ClassifyError> {
        let label_tokens = task
            .labels
            .iter()
            .map(|l| {
                let ids = tokenizer
                    .encode_continuation(&format!(" {}", l.verbalizer()))
                    .map_err(|e| ClassifyError::Tokenizer(e.to_string()))?;
                if ids.is_empty() {
                    return Err(ClassifyError::EmptyVerbalizer(l.name.clone()));
                }
                Ok(ids)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut c = Classifier {
            scorer: Scorer::Local(Local {
                model,
                tokenizer,
                label_tokens,
                prefix: Vec::new(),
                prefix_cache: None,
            }),
            task: task.clone(),
            templates: templates.clone(),
            options,
            log_prior: None,
        };
        let prefix = c.shared_prefix()?;
        let cache = (prefix.len() > 1).then(|| {
            let device = model.device();
            let mut cache = KvCache::new_for(model, 1, prefix.len());
            let ids: Vec<i64> = prefix.iter().map(|&t| t as i64).collect();
            let tokens =
                Tensor::<2, Int>::from_data(TensorData::new(ids, [1, prefix.len()]), &device);
            model.forward_hidden(
                tokens,
                &StepLayout::for_prompts(&[prefix.len()]),
                Some(&mut cache),
            );
            cache
        });
        if let Scorer::Local(l) = &mut c.scorer {
            l.prefix = prefix;
            l.prefix_cache = cache;
        }
        c.calibrate()?;
        Ok(c)
    }

    /// The classifier that reads an OpenAI-compatible server's log-probabilities of each
    /// label word after the same prompt (`/v1/completions`, `max_tokens: 1`, `logprobs`),
    /// calibrated in the same way. A label word counts when the server's top tokens hold it
    /// whole (` positive`), else its first token (a token the word begins with, shared with
    /// no other label's word); a server that returns no log-probabilities, or whose top
    /// tokens hold no such token for a label, is an error that says so.
    pub fn remote(
        remote: &'m Remote,
        task: &Task,
        templates: &Templates,
        options: ClassifierOptions,
    ) -> Result<Self, ClassifyError> {
        for l in &task.labels {
            if l.verbalizer().trim().is_empty() {
                return Err(ClassifyError::EmptyVerbalizer(l.name.clone()));
            }
        }
        let mut c = Classifier {
            scorer: Scorer::Remote(remote),
            task: task.clone(),
            templates: templates.clone(),
            options,
            log_prior: None,
        };
        c.calibrate()?;
        Ok(c)
    }

    /// What verdicts record about a server that judged (`None` for the model here).
    pub fn provenance(&self) -> Option<serde_json::Value> {
        match &self.scorer {
            Scorer::Local(_) => None,
            Scorer::Remote(r) => Some(serde_json::json!({
                "endpoint": r.client().endpoint(),
                "model": r.client().model(),
            })),
        }
    }

    fn calibrate(&mut self) -> Result<(), ClassifyError> {
        if self.options.calibrate {
            let prior = self.content_free_prior()?;
            self.log_prior = Some(
                prior
                    .iter()
                    .map(|p| p.max(f64::MIN_POSITIVE).ln())
                    .collect(),
            );
        }
        Ok(())
    }

    /// The mean label distribution on the content-free inputs (what calibration divides by).
    pub fn content_free_prior(&self) -> Result<Vec<f64>, ClassifyError> {
        let raw = self.score_texts(&CONTENT_FREE)?;
        let mut mean = vec![0.0; self.task.labels.len()];
        for ll in &raw {
            for (m, p) in mean.iter_mut().zip(normalise(ll)) {
                *m += p / raw.len() as f64;
            }
        }
        Ok(mean)
    }

    pub fn labels(&self) -> &[LabelDef] {
        &self.task.labels
    }

    /// The full prompt for `text` (what the model reads before the label word).
    pub fn prompt(&self, text: &str) -> Result<String, ClassifyError> {
        Ok(self.templates.render_classify(
            &self.task,
            &self.options.demos,
            text,
            self.options.instruction.as_deref(),
        )?)
    }

    fn prompt_tokens(&self, text: &str) -> Result<Vec<u32>, ClassifyError> {
        // The template is trusted; the input text must not inject control tokens.
        let prompt = self.prompt(text)?;
        self.local()
            .tokenizer
            .encode_plain(&prompt)
            .map_err(|e| ClassifyError::Tokenizer(e.to_string()))
    }

    /// Tokens every prompt starts with: the common prefix of two prompts for very different
    /// inputs, less one token (a BPE merge may join the last prefix token with the input).
    fn shared_prefix(&self) -> Result<Vec<u32>, ClassifyError> {
        let a = self.prompt_tokens("x")?;
        let b = self.prompt_tokens("9 ?")?;
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        Ok(a[..common.saturating_sub(1)].to_vec())
    }

    /// Classifies `texts`.
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<Prediction>, ClassifyError> {
        let raw = self.score_texts(texts)?;
        Ok(raw.into_iter().map(|ll| self.predict(ll)).collect())
    }

    fn predict(&self, log_likelihoods: Vec<f64>) -> Prediction {
        let scores: Vec<f64> = match &self.log_prior {
            Some(prior) => log_likelihoods
                .iter()
                .zip(normalise(&log_likelihoods))
                .zip(prior)
                .map(|((_, p), lp)| {
                    p.max(f64::MIN_POSITIVE).ln() - self.options.calibration_strength * lp
                })
                .collect(),
            None => log_likelihoods.clone(),
        };
        let probs = normalise(&scores);
        let best = crate::llm::greedy::argmax(&probs.iter().map(|&p| p as f32).collect::<Vec<_>>());
        Prediction {
            label: self.task.labels[best].name.clone(),
            probs: self
                .task
                .labels
                .iter()
                .zip(probs)
                .map(|(l, p)| (l.name.clone(), p))
                .collect(),
            log_likelihoods,
            judge: self.provenance(),
        }
    }

    /// The local scorer (only called on the local path).
    fn local(&self) -> &Local<'m> {
        match &self.scorer {
            Scorer::Local(l) => l,
            Scorer::Remote(_) => unreachable!("the remote judge tokenizes nothing"),
        }
    }

    /// Log-likelihood of every label's verbalizer for each text, `[texts][labels]`.
    pub fn score_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f64>>, ClassifyError> {
        if let Scorer::Remote(r) = &self.scorer {
            return self.score_remote(r, texts);
        }
        // Batches of similar length: a row is padded to its batch's longest, and with
        // demonstrations in the cache every padding token still attends over all of them.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.options.batch.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, scores) in chunk.iter().zip(self.score_chunk(&batch)?) {
                out[i] = scores;
            }
        }
        Ok(out)
    }

    /// [`Classifier::score_texts`] through a server: one request a text, many in flight.
    fn score_remote(
        &self,
        remote: &Remote,
        texts: &[&str],
    ) -> Result<Vec<Vec<f64>>, ClassifyError> {
        use futures_util::StreamExt;
        let prompts = texts
            .iter()
            .map(|t| self.prompt(t))
            .collect::<Result<Vec<_>, _>>()?;
        let client = remote.client();
        let top = client.settings().top_logprobs.max(1);
        let in_flight = client.settings().concurrency.max(1);
        let answers: Vec<Result<Vec<(String, f64)>, RemoteError>> = remote.block_on(
            futures_util::stream::iter(prompts.iter().map(|p| client.next_token_logprobs(p, top)))
                .buffered(in_flight)
                .collect(),
        );
        let words: Vec<String> = self
            .task
            .labels
            .iter()
            .map(|l| format!(" {}", l.verbalizer()))
            .collect();
        answers
            .into_iter()
            .zip(texts)
            .map(|(answer, text)| {
                label_logprobs(&self.task.labels, &words, &answer?, text).map_err(|m| {
                    ClassifyError::Remote(RemoteError {
                        endpoint: client.endpoint().to_string(),
                        message: format!(
                            "{m} (the {top} most probable next tokens it was asked for; \
                             raise them with --judge-top-logprobs, or give the label a word \
                             the model says more readily)"
                        ),
                    })
                })
            })
            .collect()
    }

    fn score_chunk(&self, texts: &[&str]) -> Result<Vec<Vec<f64>>, ClassifyError> {
        let lc = self.local();
        let n_labels = lc.label_tokens.len();
        // Labels whose verbalizer is one token share a row; longer ones get a row each, with
        // all but their last token appended.
        let single = lc.label_tokens.iter().all(|t| t.len() == 1);
        struct Row {
            text: usize,
            tokens: Vec<u32>,
            /// (label, verbalizer token index, position in `tokens` predicting it)
            targets: Vec<(usize, u32, usize)>,
        }
        let mut rows = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let prompt = self.prompt_tokens(text)?;
            let longest = lc.label_tokens.iter().map(Vec::len).max().unwrap_or(1);
            let context = lc.model.max_positions();
            if prompt.len() + longest > context {
                let excerpt: String = text.chars().take(60).collect();
                return Err(ClassifyError::TooLong {
                    text: excerpt,
                    tokens: prompt.len() + longest,
                    context,
                });
            }
            // A row normally carries only what follows the shared prefix; should a prompt not
            // start with it, the row carries the whole prompt and runs alone.
            let shared = prompt.starts_with(&lc.prefix) && lc.prefix_cache.is_some();
            let skip = if shared { lc.prefix.len() } else { 0 };
            let label_sets: Vec<Vec<usize>> = if single {
                vec![(0..n_labels).collect()]
            } else {
                (0..n_labels).map(|l| vec![l]).collect()
            };
            for set in label_sets {
                let mut tokens = prompt[skip..].to_vec();
                let mut targets = Vec::new();
                for &l in &set {
                    let verb = &lc.label_tokens[l];
                    let base = tokens.len() - 1;
                    for (j, &t) in verb.iter().enumerate() {
                        targets.push((l, t, base + j));
                    }
                    if !single {
                        tokens.extend_from_slice(&verb[..verb.len() - 1]);
                    }
                }
                rows.push((
                    shared,
                    Row {
                        text: i,
                        tokens,
                        targets,
                    },
                ));
            }
        }
        let mut ll = vec![vec![0.0f64; n_labels]; texts.len()];
        // Rows that use the shared prefix run together from its cache; the others (no prefix
        // worth caching, as in a zero-shot or LoRA prompt that starts with the input, or a
        // template whose prefix tokenises differently) run together without it.
        let (with_prefix, alone): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(s, _)| *s);
        let device = lc.model.device();
        let mut run = |rows: Vec<Row>, cache: Option<KvCache>| -> Result<(), ClassifyError> {
            if rows.is_empty() {
                return Ok(());
            }
            let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
            let len = rows.iter().map(|r| r.tokens.len()).max().unwrap_or(1);
            let b = rows.len();
            let pad = lc.tokenizer.pad_id() as i64;
            let mut flat = Vec::with_capacity(b * len);
            for r in &rows {
                flat.extend(r.tokens.iter().map(|&t| t as i64));
                flat.extend(std::iter::repeat_n(pad, len - r.tokens.len()));
            }
            let tokens = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, len]), &device);
            // Right padding after the prefix: every row starts at column 0 and the causal mask
            // keeps the padding (which comes last) out of every real position.
            let layout = StepLayout {
                start: vec![0; b],
                past,
                len,
            };
            let mut cache = cache;
            let hidden = lc.model.forward_hidden(tokens, &layout, cache.as_mut());
            let d = hidden.dims()[2];
            let picks: Vec<i64> = rows
                .iter()
                .enumerate()
                .flat_map(|(ri, r)| r.targets.iter().map(move |t| (ri * len + t.2) as i64))
                .collect();
            let idx =
                Tensor::<1, Int>::from_data(TensorData::new(picks.clone(), [picks.len()]), &device);
            let chosen = hidden.reshape([b * len, d]).select(0, idx);
            let logp = log_softmax(lc.model.logits(chosen.unsqueeze::<3>()), 2);
            let v = logp.dims()[2];
            let logp = f32_values(logp.into_data(), "label log-probabilities")?;
            let mut k = 0;
            for r in &rows {
                for &(label, token, _) in &r.targets {
                    ll[r.text][label] += logp[k * v + token as usize] as f64;
                    k += 1;
                }
            }
            Ok(())
        };
        let with_prefix: Vec<Row> = with_prefix.into_iter().map(|(_, r)| r).collect();
        let n = with_prefix.len();
        if n > 0 {
            let cache = lc.prefix_cache.as_ref().map(|p| {
                let extra = with_prefix
                    .iter()
                    .map(|r| r.tokens.len())
                    .max()
                    .unwrap_or(0);
                KvCache::from_prefix(p, n, extra)
            });
            run(with_prefix, cache)?;
        }
        // Without a cached prefix the rows still run as one batch: right padding needs none.
        run(alone.into_iter().map(|(_, r)| r).collect(), None)?;
        Ok(ll)
    }
}

/// The demonstrations reordered round-robin by label (`a b a b …`, labels in task order), so no
/// class sits last in the prompt: small models favour the label of the closest demonstrations.
pub fn interleave_by_label(demos: &[Example], labels: &[LabelDef]) -> Vec<Example> {
    let mut queues: Vec<std::collections::VecDeque<&Example>> = labels
        .iter()
        .map(|l| demos.iter().filter(|d| d.label == l.name).collect())
        .collect();
    let mut out: Vec<Example> = Vec::with_capacity(demos.len());
    while queues.iter().any(|q| !q.is_empty()) {
        for q in &mut queues {
            if let Some(d) = q.pop_front() {
                out.push(d.clone());
            }
        }
    }
    // Demonstrations with a label outside the task keep their place at the end.
    out.extend(
        demos
            .iter()
            .filter(|d| !labels.iter().any(|l| l.name == d.label))
            .cloned(),
    );
    out
}

/// Each label word's log-probability among a server's top next tokens: the word whole
/// (` positive`), else the longest token of two or more letters that the word begins with
/// (its first token, when the word is several), provided no other label's word begins with it.
fn label_logprobs(
    labels: &[LabelDef],
    words: &[String],
    top: &[(String, f64)],
    text: &str,
) -> Result<Vec<f64>, String> {
    let excerpt = || {
        let e: String = text.chars().take(60).collect();
        let given: Vec<String> = top
            .iter()
            .take(8)
            .map(|(t, p)| format!("{t:?} {p:.2}"))
            .collect();
        format!("for {e:?} (its most probable: {})", given.join(", "))
    };
    labels
        .iter()
        .zip(words)
        .map(|(label, word)| {
            if let Some((_, p)) = top.iter().find(|(t, _)| t == word) {
                return Ok(*p);
            }
            let first = top
                .iter()
                .filter(|(t, _)| {
                    t.chars().filter(|c| c.is_alphanumeric()).count() >= 2
                        && word.starts_with(t.as_str())
                })
                .max_by_key(|(t, _)| t.len());
            match first {
                Some((t, p)) => {
                    if let Some(other) = labels
                        .iter()
                        .zip(words)
                        .find(|(l, w)| l.name != label.name && w.starts_with(t.as_str()))
                    {
                        return Err(format!(
                            "the label words {word:?} ({}) and {:?} ({}) both begin with the \
                             token {t:?}, so the next token's log-probabilities cannot tell \
                             them apart",
                            label.name, other.1, other.0.name
                        ));
                    }
                    Ok(*p)
                }
                None => Err(format!(
                    "the label word {word:?} (label {}) is not among the log-probabilities the \
                     server returned {}",
                    label.name,
                    excerpt()
                )),
            }
        })
        .collect()
}

/// Softmax of log-scores into probabilities.
pub fn normalise(log_scores: &[f64]) -> Vec<f64> {
    let max = log_scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = log_scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = e.iter().sum();
    e.into_iter().map(|x| x / total).collect()
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::data::task::LabelDef;
    use crate::llm::model::tests::{tiny_model, tiny_tokenizer, tiny_tokenizer_adding_bos};
    use crate::llm::model::tokens_tensor;

    fn task() -> Task {
        let mut t = Task::demo();
        t.labels = vec![
            LabelDef {
                name: "neg".into(),
                verbalizer: Some("a".into()),
            },
            LabelDef {
                name: "pos".into(),
                verbalizer: Some("b c d".into()),
            },
        ];
        t.input_field = "x".into();
        t.label_field = "y".into();
        t.seeds = vec![
            Example {
                text: "abc".into(),
                label: "neg".into(),
            },
            Example {
                text: "cde".into(),
                label: "pos".into(),
            },
        ];
        t
    }

    /// log P(verbalizer | prompt) by one plain forward over prompt + verbalizer, no cache; the
    /// verbalizer's tokens from the tokenizer that adds no BOS, whatever `tk` does.
    fn direct(model: &Llama, tk: &TextTokenizer, prompt: &str, verbalizer: &str) -> f64 {
        let p = tk.encode_plain(prompt).unwrap();
        let v = tiny_tokenizer()
            .encode_plain(&format!(" {verbalizer}"))
            .unwrap();
        let mut all = p.clone();
        all.extend_from_slice(&v);
        let device = model.device();
        let logits = model.logits(model.forward_hidden(
            tokens_tensor(std::slice::from_ref(&all), 0, &device),
            &StepLayout::for_prompts(&[all.len()]),
            None,
        ));
        let [_, s, vocab] = logits.dims();
        let flat = logits.into_data().try_into_vec::<f32>().unwrap();
        let mut total = 0.0;
        for (j, &t) in v.iter().enumerate() {
            let row = &flat[(p.len() - 1 + j) * vocab..(p.len() + j) * vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&x| (x as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            total += row[t as usize] as f64 - lse;
        }
        assert!(s == all.len());
        total
    }

    #[test]
    fn scores_equal_the_direct_log_likelihood_with_and_without_demos() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let task = task();
        let templates = Templates::bundled();
        let texts = ["ab", "the cat.", "zz top, yes!", "q"];
        // A tokenizer that starts sequences with BOS must not start the label words with it.
        for (tk, demos) in [false, true].into_iter().flat_map(|bos| {
            [Vec::new(), task.seeds.clone()].map(|d| (tiny_tokenizer_adding_bos(bos), d))
        }) {
            let c = Classifier::new(
                &model,
                &tk,
                &task,
                &templates,
                ClassifierOptions {
                    demos: demos.clone(),
                    batch: 3,
                    ..Default::default()
                },
            )
            .unwrap();
            if !demos.is_empty() {
                assert!(
                    c.local().prefix.len() > 5,
                    "the demonstrations form a shared prefix"
                );
            }
            let got = c.score_texts(&texts).unwrap();
            for (i, text) in texts.iter().enumerate() {
                let prompt = c.prompt(text).unwrap();
                for (l, label) in task.labels.iter().enumerate() {
                    let want = direct(&model, &tk, &prompt, label.verbalizer());
                    assert!(
                        (got[i][l] - want).abs() < 1e-3,
                        "text {text:?}, label {}: {} vs direct {want} (demos: {})",
                        label.name,
                        got[i][l],
                        demos.len()
                    );
                }
            }
        }
    }

    #[test]
    fn label_words_are_read_whole_else_by_their_own_first_token_else_refused() {
        let labels = |words: &[&str]| -> (Vec<LabelDef>, Vec<String>) {
            (
                words
                    .iter()
                    .map(|w| LabelDef {
                        name: w.to_string(),
                        verbalizer: None,
                    })
                    .collect(),
                words.iter().map(|w| format!(" {w}")).collect(),
            )
        };
        let top = |t: &[(&str, f64)]| -> Vec<(String, f64)> {
            t.iter().map(|(k, p)| (k.to_string(), *p)).collect()
        };
        let (l, w) = labels(&["positive", "negative"]);
        // Whole words, whatever else is there (" pos" is only a prefix of one of them).
        let got = label_logprobs(
            &l,
            &w,
            &top(&[(" pos", -0.5), (" positive", -1.0), (" negative", -2.0)]),
            "x",
        )
        .unwrap();
        assert_eq!(got, vec![-1.0, -2.0]);
        // A word the server splits: its longest first token of two letters or more.
        let got = label_logprobs(
            &l,
            &w,
            &top(&[(" p", -0.1), (" posi", -0.7), (" negative", -2.0)]),
            "x",
        )
        .unwrap();
        assert_eq!(got, vec![-0.7, -2.0]);
        // Missing: the message names the word, the text and what came instead.
        let e = label_logprobs(&l, &w, &top(&[(" A", -0.1), (" negative", -2.0)]), "a film")
            .unwrap_err();
        assert!(
            e.contains("\" positive\"") && e.contains("\"a film\"") && e.contains("\" A\""),
            "{e}"
        );
        // Two words that begin with the same token cannot be told apart by it.
        let (l, w) = labels(&["unhappy", "unsure"]);
        let e = label_logprobs(&l, &w, &top(&[(" un", -0.3)]), "x").unwrap_err();
        assert!(e.contains("both begin with"), "{e}");
    }

    #[test]
    fn interleaving_alternates_labels_in_task_order() {
        let t = task();
        let ex = |text: &str, label: &str| Example {
            text: text.into(),
            label: label.into(),
        };
        let demos = vec![
            ex("1", "neg"),
            ex("2", "neg"),
            ex("3", "neg"),
            ex("4", "pos"),
            ex("5", "other"),
        ];
        let got: Vec<String> = interleave_by_label(&demos, &t.labels)
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(got, vec!["1", "4", "2", "3", "5"]);
    }

    #[test]
    fn probabilities_are_a_distribution_and_calibration_divides_by_the_prior() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let task = task();
        let templates = Templates::bundled();
        let plain =
            Classifier::new(&model, &tk, &task, &templates, ClassifierOptions::default()).unwrap();
        let cal = Classifier::new(
            &model,
            &tk,
            &task,
            &templates,
            ClassifierOptions {
                calibrate: true,
                ..Default::default()
            },
        )
        .unwrap();
        let p = plain.classify(&["hello"]).unwrap().remove(0);
        let sum: f64 = p.probs.iter().map(|x| x.1).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert_eq!(
            p.label,
            p.probs.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0
        );

        // The prior, computed by hand from the content-free inputs.
        let cf = plain.score_texts(&CONTENT_FREE).unwrap();
        let mut prior = vec![0.0; 2];
        for ll in &cf {
            for (m, q) in prior.iter_mut().zip(normalise(ll)) {
                *m += q / 3.0;
            }
        }
        let q = cal.classify(&["hello"]).unwrap().remove(0);
        let unnorm: Vec<f64> = p.probs.iter().zip(&prior).map(|(x, pr)| x.1 / pr).collect();
        let z: f64 = unnorm.iter().sum();
        for (l, u) in unnorm.iter().enumerate() {
            assert!(
                (q.probs[l].1 - u / z).abs() < 1e-9,
                "{q:?} vs {unnorm:?} prior {prior:?} plain {p:?}"
            );
        }
    }
}
