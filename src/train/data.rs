//! Labelled examples → token batches for training: the classification prompt (the same template
//! as in-context learning, with no demonstrations) followed by `" " + verbalizer`, the loss on the
//! verbalizer tokens only; a stratified validation split of the real examples; batches grouped by
//! length; and the three ways a batch is laid out (left-padded to its longest row, padded to a
//! fixed length as the PEFT peer does, or packed into one row).
//!
//! Everything here except [`encode`] and [`read_jsonl`] is pure and unit-tested directly.

use std::cmp::Reverse;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::task::{Example, Task};
use crate::llm::model::StepLayout;
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::prompt::Templates;
use crate::util::rng::Rng;

/// One example as token ids: the prompt and the verbalizer tokens that must follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    pub prompt: Vec<u32>,
    /// The verbalizer's tokens (`" positive"` → one token for SmolLM2); never empty.
    pub target: Vec<u32>,
    /// Index of the label in the task.
    pub label: usize,
    /// The text lost words at its end to fit `max_len`.
    pub truncated: bool,
}

impl Encoded {
    /// Tokens fed to the model: the prompt and all target tokens but the last (each position
    /// predicts the next token, so the last target token is never an input).
    pub fn input(&self) -> impl Iterator<Item = u32> + '_ {
        self.prompt
            .iter()
            .chain(&self.target[..self.target.len() - 1])
            .copied()
    }

    pub fn input_len(&self) -> usize {
        self.prompt.len() + self.target.len() - 1
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

/// Reads `{"text": …, "label": …}` lines (blank lines skipped), checking each label against the
/// task. A stand-in for the workspace importer: same input, errors name file and line.
pub fn read_jsonl(path: &Path, task: &Task) -> Result<Vec<Example>, DataError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| DataError::File {
        path: name.clone(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let err = |message: String| DataError::Line {
            path: name.clone(),
            line: i + 1,
            message,
        };
        let line = std::str::from_utf8(line)
            .map_err(|e| err(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(line)
            .map_err(|e| err(format!("expected {{\"text\": …, \"label\": …}}: {e}")))?;
        if task.label_index(&ex.label).is_none() {
            return Err(err(format!(
                "label `{}` is not one of the task's labels {:?}",
                ex.label,
                task.label_names()
            )));
        }
        if ex.text.trim().is_empty() {
            return Err(err("empty text".into()));
        }
        out.push(ex);
    }
    Ok(out)
}

/// The verbalizer tokens of every label (`" " + verbalizer`, as the model would write it after
/// the prompt's final colon).
pub fn label_tokens(task: &Task, tokenizer: &TextTokenizer) -> Result<Vec<Vec<u32>>, DataError> {
    task.labels
        .iter()
        .map(|l| {
            let ids = tokenizer
                .encode_continuation(&format!(" {}", l.verbalizer()))
                .map_err(|e| DataError::Other(e.to_string()))?;
            if ids.is_empty() {
                return Err(DataError::Other(format!(
                    "label `{}`: the verbalizer has no tokens",
                    l.name
                )));
            }
            Ok(ids)
        })
        .collect()
}

/// The index of an example's label, or an error naming the example.
fn label_of(task: &Task, ex: &Example) -> Result<usize, DataError> {
    task.label_index(&ex.label).ok_or_else(|| {
        DataError::Other(format!(
            "example {:?}: label `{}` is not one of {:?}",
            ex.text,
            ex.label,
            task.label_names()
        ))
    })
}

/// Encodes `examples` for the teacher's objective: the generation prompt of the example's label
/// with no seeds in it, then the example as the answer (loss on the example's tokens and the
/// newline that ends it). `generate` with the adapter renders that same prompt.
pub fn encode_generation(
    task: &Task,
    templates: &Templates,
    tokenizer: &TextTokenizer,
    examples: &[Example],
    max_len: usize,
) -> Result<Vec<Encoded>, DataError> {
    let err = |e: &dyn std::fmt::Display| DataError::Other(e.to_string());
    let mut out = Vec::with_capacity(examples.len());
    for ex in examples {
        let label = label_of(task, ex)?;
        let rendered = templates
            .render_generate(task, &task.labels[label], &[], &[])
            .map_err(|e| err(&e))?;
        let prompt = tokenizer.encode(&rendered).map_err(|e| err(&e))?;
        let mut target = tokenizer
            .encode_continuation(&format!(" {}\n", ex.text.trim()))
            .map_err(|e| err(&e))?;
        let truncated = prompt.len() + target.len() > max_len;
        if truncated {
            target.truncate(max_len.saturating_sub(prompt.len()).max(1));
        }
        out.push(Encoded {
            prompt,
            target,
            label,
            truncated,
        });
    }
    Ok(out)
}

/// Encodes `examples` with the task's zero-shot classification prompt. When prompt + target would
/// exceed `max_len` tokens, words are dropped from the end of the text until it fits (as the PEFT
/// peer does), so the label is always kept.
pub fn encode(
    task: &Task,
    templates: &Templates,
    tokenizer: &TextTokenizer,
    examples: &[Example],
    max_len: usize,
) -> Result<Vec<Encoded>, DataError> {
    let targets = label_tokens(task, tokenizer)?;
    let mut out = Vec::with_capacity(examples.len());
    for ex in examples {
        let label = label_of(task, ex)?;
        let target = targets[label].clone();
        let mut words: Vec<&str> = ex.text.split(' ').collect();
        let mut truncated = false;
        let prompt = loop {
            let text = words.join(" ");
            let rendered = templates
                .render_classify(task, &[], &text, None)
                .map_err(|e| DataError::Other(e.to_string()))?;
            let ids = tokenizer
                .encode_plain(&rendered)
                .map_err(|e| DataError::Other(e.to_string()))?;
            if ids.len() + target.len() <= max_len || words.len() <= 1 {
                break ids;
            }
            words.pop();
            truncated = true;
        };
        out.push(Encoded {
            prompt,
            target,
            label,
            truncated,
        });
    }
    Ok(out)
}

/// Splits the indices `0..labels.len()` into (train, validation), per label: a `fraction` of
/// each label's examples (rounded, at least one when the label has two or more, and never all of
/// them) goes to validation. Indices come back sorted; the choice depends only on `seed`.
pub fn stratified_split(labels: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    stratified_fold(labels, fraction, seed, 0)
}

/// [`stratified_split`]'s `fold`-th validation share: each label's examples are shuffled with
/// `seed` as there, and the share starts `fold` shares further along (wrapping), so folds
/// `0, 1, …` hold out different examples until every one has been held out once. Fold 0 is
/// [`stratified_split`].
pub fn stratified_fold(
    labels: &[usize],
    fraction: f64,
    seed: u64,
    fold: usize,
) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut val = Vec::new();
    let n_labels = labels.iter().copied().max().map_or(0, |m| m + 1);
    for label in 0..n_labels {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == label).collect();
        let n = idx.len();
        let mut k = if fraction > 0.0 && n >= 2 {
            ((n as f64 * fraction).round() as usize).max(1)
        } else {
            0
        };
        k = k.min(n.saturating_sub(1));
        Rng::for_item(seed, label as u64).shuffle(&mut idx);
        if n > 0 {
            idx.rotate_left((fold * k) % n);
        }
        val.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// How many batches are sorted together by length before being cut: large enough to put
/// similar lengths together, small enough that batches still mix the data.
pub const LENGTH_GROUP: usize = 16;

/// Batches of at most `batch_size` indices into `lengths`, in random order: the shuffled indices
/// are taken in groups of [`LENGTH_GROUP`] batches, each group sorted by length (longest first)
/// and cut into batches, and the batches are shuffled. Every index appears exactly once.
pub fn length_grouped_batches(
    lengths: &[usize],
    batch_size: usize,
    rng: &mut Rng,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut idx: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut idx);
    for group in idx.chunks_mut(batch_size * LENGTH_GROUP) {
        group.sort_by_key(|&i| Reverse(lengths[i]));
    }
    let mut batches: Vec<Vec<usize>> = idx.chunks(batch_size).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches
}

/// How the rows of a batch are laid out for the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Left-padded to the longest row of the batch.
    Longest,
    /// Left-padded to a fixed length (or the longest row, if longer): the PEFT peer's layout,
    /// for like-for-like timing.
    Fixed(usize),
    /// All rows back to back in one sequence, each attending only to itself with its own
    /// positions: no padding at all.
    #[default]
    Packed,
}

/// A batch ready for the model: `rows × len` tokens with their RoPE positions and attention mask,
/// and the flat positions (`row·len + column`) whose hidden states predict the target tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub rows: usize,
    pub len: usize,
    pub tokens: Vec<i64>,
    pub positions: Vec<i64>,
    /// `[rows, len, len]`, `true` = hidden.
    pub mask: Vec<bool>,
    pub gather: Vec<i64>,
    pub targets: Vec<i64>,
    /// Label index of each example, in batch order.
    pub labels: Vec<usize>,
    /// Non-padding tokens.
    pub real_tokens: usize,
}

impl Batch {
    pub fn new(examples: &[&Encoded], padding: Padding, pad: u32) -> Batch {
        let labels = examples.iter().map(|e| e.label).collect();
        let real_tokens = examples.iter().map(|e| e.input_len()).sum();
        match padding {
            Padding::Packed => Self::packed(examples, labels, real_tokens),
            Padding::Longest | Padding::Fixed(_) => {
                let lengths: Vec<usize> = examples.iter().map(|e| e.input_len()).collect();
                let longest = lengths.iter().copied().max().unwrap_or(0);
                let len = match padding {
                    Padding::Fixed(n) => n.max(longest),
                    _ => longest,
                };
                let layout = StepLayout {
                    start: lengths.iter().map(|&l| len - l).collect(),
                    past: 0,
                    len,
                };
                let mut tokens = Vec::with_capacity(examples.len() * len);
                let mut gather = Vec::new();
                let mut targets = Vec::new();
                for (r, e) in examples.iter().enumerate() {
                    let start = len - e.input_len();
                    tokens.extend(std::iter::repeat_n(pad as i64, start));
                    tokens.extend(e.input().map(i64::from));
                    let first = start + e.prompt.len() - 1;
                    for (k, &t) in e.target.iter().enumerate() {
                        gather.push((r * len + first + k) as i64);
                        targets.push(t as i64);
                    }
                }
                Batch {
                    rows: examples.len(),
                    len,
                    tokens,
                    positions: layout.positions(),
                    mask: layout.mask(),
                    gather,
                    targets,
                    labels,
                    real_tokens,
                }
            }
        }
    }

    fn packed(examples: &[&Encoded], labels: Vec<usize>, real_tokens: usize) -> Batch {
        let len = real_tokens;
        let mut tokens = Vec::with_capacity(len);
        let mut positions = Vec::with_capacity(len);
        let mut segment_start = Vec::with_capacity(len);
        let mut gather = Vec::new();
        let mut targets = Vec::new();
        for e in examples {
            let start = tokens.len();
            tokens.extend(e.input().map(i64::from));
            positions.extend((0..e.input_len()).map(|p| p as i64));
            segment_start.extend(std::iter::repeat_n(start, e.input_len()));
            let first = start + e.prompt.len() - 1;
            for (k, &t) in e.target.iter().enumerate() {
                gather.push((first + k) as i64);
                targets.push(t as i64);
            }
        }
        let mut mask = Vec::with_capacity(len * len);
        for (q, &s) in segment_start.iter().enumerate() {
            mask.extend((0..len).map(|c| !(c >= s && c <= q)));
        }
        Batch {
            rows: 1,
            len,
            tokens,
            positions,
            mask,
            gather,
            targets,
            labels,
            real_tokens,
        }
    }

    /// Tokens the forward pass computes, padding included.
    pub fn computed_tokens(&self) -> usize {
        self.rows * self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(prompt: &[u32], target: &[u32], label: usize) -> Encoded {
        Encoded {
            prompt: prompt.to_vec(),
            target: target.to_vec(),
            label,
            truncated: false,
        }
    }

    #[test]
    fn targets_continue_the_prompt_without_a_bos_whatever_the_tokenizer_adds() {
        use crate::llm::model::tests::tiny_tokenizer_adding_bos;
        let task = Task::demo();
        let templates = Templates::bundled();
        let ex = [Example {
            text: task.seeds[0].text.clone(),
            label: task.seeds[0].label.clone(),
        }];
        let plain = tiny_tokenizer_adding_bos(false);
        let bos = tiny_tokenizer_adding_bos(true);
        for (a, b) in [
            (
                encode(&task, &templates, &plain, &ex, 512).unwrap(),
                encode(&task, &templates, &bos, &ex, 512).unwrap(),
            ),
            (
                encode_generation(&task, &templates, &plain, &ex, 512).unwrap(),
                encode_generation(&task, &templates, &bos, &ex, 512).unwrap(),
            ),
        ] {
            // The prompt starts with BOS; the target is the same tokens either way.
            assert_eq!(b[0].prompt[0], 1);
            assert_eq!(b[0].prompt[1..], a[0].prompt[..]);
            assert_eq!(b[0].target, a[0].target);
        }
    }

    #[test]
    fn split_is_stratified_seeded_and_keeps_training_data() {
        let labels = [0, 0, 0, 0, 1, 1, 1, 1, 2];
        let (train, val) = stratified_split(&labels, 0.25, 3);
        assert_eq!(val.len(), 2, "{val:?}");
        assert_eq!(val.iter().filter(|&&i| labels[i] == 0).count(), 1);
        assert_eq!(val.iter().filter(|&&i| labels[i] == 1).count(), 1);
        // A label with one example stays in training.
        assert!(train.contains(&8));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort();
        assert_eq!(all, (0..9).collect::<Vec<_>>());
        assert_eq!(stratified_split(&labels, 0.25, 3), (train, val.clone()));
        assert_ne!(
            (0..5)
                .map(|s| stratified_split(&labels, 0.25, s).1)
                .collect::<Vec<_>>(),
            vec![val; 5]
        );
        // Never everything into validation; nothing at fraction 0.
        assert_eq!(stratified_split(&[0, 0, 1, 1], 0.99, 0).1.len(), 2);
        assert!(stratified_split(&labels, 0.0, 0).1.is_empty());
    }

    #[test]
    fn folds_hold_out_each_example_once_before_repeating() {
        // 4 per label, a quarter held out: folds 0..4 hold out every example exactly once.
        let labels = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
        let mut seen: Vec<usize> = Vec::new();
        for fold in 0..4 {
            let (train, val) = stratified_fold(&labels, 0.25, 9, fold);
            assert_eq!(val.len(), 3, "fold {fold}: {val:?}");
            for l in 0..3 {
                assert_eq!(val.iter().filter(|&&i| labels[i] == l).count(), 1);
            }
            assert_eq!(train.len() + val.len(), labels.len());
            assert!(val.iter().all(|i| !train.contains(i)));
            seen.extend(&val);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..12).collect::<Vec<_>>());
        // The fifth fold starts over; fold 0 is the plain split.
        assert_eq!(
            stratified_fold(&labels, 0.25, 9, 4),
            stratified_fold(&labels, 0.25, 9, 0)
        );
        assert_eq!(
            stratified_fold(&labels, 0.25, 9, 0),
            stratified_split(&labels, 0.25, 9)
        );
    }

    #[test]
    fn length_groups_cover_every_index_once_and_gather_similar_lengths() {
        let lengths: Vec<usize> = (0..200).map(|i| (i * 37) % 50 + 1).collect();
        let mut rng = Rng::new(1);
        let batches = length_grouped_batches(&lengths, 8, &mut rng);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        assert_eq!(batches.len(), 25);
        assert!(batches.iter().all(|b| b.len() == 8));
        // Sorted groups: the padding waste is far below that of random batches.
        let waste = |bs: &[Vec<usize>]| -> usize {
            bs.iter()
                .map(|b| {
                    let m = b.iter().map(|&i| lengths[i]).max().unwrap();
                    b.iter().map(|&i| m - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        let random: Vec<Vec<usize>> = {
            let mut idx: Vec<usize> = (0..200).collect();
            Rng::new(1).shuffle(&mut idx);
            idx.chunks(8).map(<[usize]>::to_vec).collect()
        };
        assert!(
            waste(&batches) * 3 < waste(&random),
            "{} vs {}",
            waste(&batches),
            waste(&random)
        );
        // Different order with another seed, same with the same one.
        assert_eq!(
            length_grouped_batches(&lengths, 8, &mut Rng::new(1)),
            batches
        );
        assert_ne!(
            length_grouped_batches(&lengths, 8, &mut Rng::new(2)),
            batches
        );
    }

    #[test]
    fn left_padded_batch_gathers_the_positions_before_each_target_token() {
        let a = enc(&[10, 11, 12], &[50], 1);
        let b = enc(&[20], &[60, 61], 0);
        let batch = Batch::new(&[&a, &b], Padding::Longest, 0);
        // inputs: a = 10 11 12 (3), b = 20 60 (2) → len 3, b padded by 1 on the left.
        assert_eq!((batch.rows, batch.len), (2, 3));
        assert_eq!(batch.tokens, vec![10, 11, 12, 0, 20, 60]);
        assert_eq!(batch.positions, vec![0, 1, 2, 0, 0, 1]);
        // a: the last prompt token (col 2) predicts 50; b: cols 1, 2 predict 60, 61.
        assert_eq!(batch.gather, vec![2, 4, 5]);
        assert_eq!(batch.targets, vec![50, 60, 61]);
        assert_eq!(batch.labels, vec![1, 0]);
        assert_eq!(batch.real_tokens, 5);
        assert_eq!(batch.mask.len(), 2 * 3 * 3);
        // Row b's query at col 1 sees col 1 only (col 0 is padding).
        assert_eq!(&batch.mask[9 + 3..9 + 6], &[true, false, true]);

        let fixed = Batch::new(&[&a, &b], Padding::Fixed(6), 0);
        assert_eq!((fixed.rows, fixed.len), (2, 6));
        assert_eq!(fixed.gather, vec![5, 10, 11]);
        assert_eq!(fixed.computed_tokens(), 12);
    }

    #[test]
    fn packed_batch_isolates_each_example() {
        let a = enc(&[10, 11, 12], &[50], 1);
        let b = enc(&[20], &[60, 61], 0);
        let batch = Batch::new(&[&a, &b], Padding::Packed, 0);
        assert_eq!((batch.rows, batch.len), (1, 5));
        assert_eq!(batch.tokens, vec![10, 11, 12, 20, 60]);
        assert_eq!(batch.positions, vec![0, 1, 2, 0, 1]);
        assert_eq!(batch.gather, vec![2, 3, 4]);
        assert_eq!(batch.targets, vec![50, 60, 61]);
        let row = |q: usize| batch.mask[q * 5..q * 5 + 5].to_vec();
        let f = false;
        let t = true;
        assert_eq!(row(0), vec![f, t, t, t, t]);
        assert_eq!(row(2), vec![f, f, f, t, t]);
        assert_eq!(row(3), vec![t, t, t, f, t]);
        assert_eq!(row(4), vec![t, t, t, f, f]);
    }
}
