//! The forward pass training and evaluation share: log-probabilities of the target tokens of a
//! [`Batch`], computed from the hidden states at the positions that predict them only (the
//! 49152-wide output head is the most expensive layer; it runs on a handful of rows, not on
//! every position). Also a minimal batched classifier (label scores, accuracy) for evaluation
//! until the in-context classifier in `pipeline/` takes that role.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::data::{Batch, Encoded, Padding};
use super::weighting::LossTerms;
use crate::llm::model::Llama;

/// The batch's tensors on `device`.
pub struct BatchTensors {
    pub tokens: Tensor<2, Int>,
    pub positions: Tensor<2, Int>,
    pub mask: Tensor<4, Bool>,
    pub gather: Tensor<1, Int>,
    /// `[T, 1]`
    pub targets: Tensor<2, Int>,
}

impl BatchTensors {
    pub fn new(batch: &Batch, device: &Device) -> Self {
        let (r, l) = (batch.rows, batch.len);
        let t = batch.targets.len();
        BatchTensors {
            tokens: Tensor::from_data(TensorData::new(batch.tokens.clone(), [r, l]), device),
            positions: Tensor::from_data(TensorData::new(batch.positions.clone(), [r, l]), device),
            mask: Tensor::from_data(TensorData::new(batch.mask.clone(), [r, 1, l, l]), device),
            gather: Tensor::from_data(TensorData::new(batch.gather.clone(), [t]), device),
            targets: Tensor::from_data(TensorData::new(batch.targets.clone(), [t, 1]), device),
        }
    }
}

/// Log-softmax over the vocabulary at every gathered position, `[T, vocab]`.
pub fn gathered_log_probs(model: &Llama, t: &BatchTensors) -> Tensor<2> {
    let hidden = model.forward_hidden_masked(t.tokens.clone(), t.positions.clone(), t.mask.clone());
    log_probs_at(model, hidden, t)
}

/// [`gathered_log_probs`] from the hidden states after the final norm, `[B, S, d]`.
fn log_probs_at(model: &Llama, hidden: Tensor<3>, t: &BatchTensors) -> Tensor<2> {
    let [b, s, d] = hidden.dims();
    let rows = hidden.reshape([b * s, d]).select(0, t.gather.clone());
    log_softmax(model.row_logits(rows), 1)
}

/// Mean cross-entropy over the batch's target tokens (the prompt contributes nothing), `[1]`.
pub fn batch_loss(model: &Llama, t: &BatchTensors) -> Tensor<1> {
    loss(model, t, None)
}

/// The batch's loss through the whole forward pass: [`loss_of_hidden`] of its hidden states.
pub fn loss(model: &Llama, t: &BatchTensors, terms: Option<&TermTensors>) -> Tensor<1> {
    let hidden = model.forward_hidden_masked(t.tokens.clone(), t.positions.clone(), t.mask.clone());
    loss_of_hidden(model, hidden, t, terms)
}

/// [`LossTerms`] on the device: `hard` `[T, 1]`, and `soft` `[T, K]` with the first token of each
/// label's word (absent when nothing is smoothed).
pub struct TermTensors {
    pub hard: Tensor<2>,
    pub soft: Option<(Tensor<2>, Tensor<1, Int>)>,
}

impl TermTensors {
    pub fn new(terms: &LossTerms, label_first: &[u32], device: &Device) -> Self {
        let t = terms.hard.len();
        let hard = Tensor::from_data(TensorData::new(terms.hard.clone(), [t, 1]), device);
        let soft = (terms.labels > 0 && terms.soft.iter().any(|&x| x != 0.0)).then(|| {
            let k = terms.labels;
            let ids: Vec<i64> = label_first.iter().map(|&x| i64::from(x)).collect();
            (
                Tensor::from_data(TensorData::new(terms.soft.clone(), [t, k]), device),
                Tensor::from_data(TensorData::new(ids, [k]), device),
            )
        });
        TermTensors { hard, soft }
    }
}

/// The batch's loss from its hidden states after the final norm. With `terms`, what
/// [`LossTerms`] describe: a weighted mean over target tokens, with part of the first label
/// token's target spread over every label's word; without, the plain mean cross-entropy.
pub fn loss_of_hidden(
    model: &Llama,
    hidden: Tensor<3>,
    t: &BatchTensors,
    terms: Option<&TermTensors>,
) -> Tensor<1> {
    let logp = log_probs_at(model, hidden, t);
    let Some(terms) = terms else {
        return logp.gather(1, t.targets.clone()).mean().neg();
    };
    let own = logp
        .clone()
        .gather(1, t.targets.clone())
        .mul(terms.hard.clone());
    let mut loss = own.sum();
    if let Some((soft, ids)) = &terms.soft {
        loss = loss + logp.select(1, ids.clone()).mul(soft.clone()).sum();
    }
    loss.neg()
}

/// Host values of a float tensor; a tensor of another type is a bug, reported rather than read
/// as zeros (which would score every item as the first label).
pub fn host_f32<const D: usize>(t: Tensor<D>) -> anyhow::Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading a tensor back from the device: {e:?}"))
}

/// Scores of each label for each example, `[n][labels]`: the summed log-probability of the
/// label's verbalizer tokens after the example's prompt. Examples are scored `batch_size` at a
/// time in packed batches; with one-token verbalizers a single forward serves every label.
/// The `target`/`label` of `items` are ignored.
pub fn label_scores(
    model: &Llama,
    items: &[Encoded],
    label_tokens: &[Vec<u32>],
    batch_size: usize,
    pad: u32,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let device = model.device();
    let n_labels = label_tokens.len();
    let mut scores = vec![vec![0.0f32; n_labels]; items.len()];
    let single = label_tokens.iter().all(|t| t.len() == 1);
    let batch_size = batch_size.max(1);
    if single {
        let ids: Vec<i64> = label_tokens.iter().map(|t| t[0] as i64).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [n_labels]), &device);
        for (c, chunk) in items.chunks(batch_size).enumerate() {
            // A one-token target makes the gathered row the prompt's last position.
            let probe: Vec<Encoded> = chunk
                .iter()
                .map(|e| Encoded {
                    prompt: e.prompt.clone(),
                    target: label_tokens[0].clone(),
                    label: 0,
                    truncated: e.truncated,
                })
                .collect();
            let refs: Vec<&Encoded> = probe.iter().collect();
            let batch = Batch::new(&refs, Padding::Packed, pad);
            let t = BatchTensors::new(&batch, &device);
            let picked = gathered_log_probs(model, &t).select(1, ids.clone());
            let flat = host_f32(picked)?;
            for (i, row) in flat.chunks(n_labels).enumerate() {
                scores[c * batch_size + i].copy_from_slice(row);
            }
        }
        return Ok(scores);
    }
    for (l, target) in label_tokens.iter().enumerate() {
        for (c, chunk) in items.chunks(batch_size).enumerate() {
            let probe: Vec<Encoded> = chunk
                .iter()
                .map(|e| Encoded {
                    prompt: e.prompt.clone(),
                    target: target.clone(),
                    label: l,
                    truncated: e.truncated,
                })
                .collect();
            let refs: Vec<&Encoded> = probe.iter().collect();
            let batch = Batch::new(&refs, Padding::Packed, pad);
            let t = BatchTensors::new(&batch, &device);
            let per_token = host_f32(gathered_log_probs(model, &t).gather(1, t.targets.clone()))?;
            let mut k = 0;
            for (i, e) in probe.iter().enumerate() {
                let n = e.target.len();
                scores[c * batch_size + i][l] = per_token[k..k + n].iter().sum();
                k += n;
            }
        }
    }
    Ok(scores)
}

/// Index of the highest score (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Fraction of `items` whose best-scoring label is their own.
pub fn accuracy(scores: &[Vec<f32>], items: &[Encoded]) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    let right = scores
        .iter()
        .zip(items)
        .filter(|(s, e)| argmax(s) == e.label)
        .count();
    right as f64 / items.len() as f64
}
