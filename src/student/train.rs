//! Training a student on soft targets: cross-entropy against the teacher's distribution over
//! the labels (a hard label is the one-hot distribution), AdamW, shuffled mini-batches.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::features::Hashing;
use super::model::{FeatureBatch, StudentNet};
use crate::util::rng::Rng;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentConfig {
    pub hashing: Hashing,
    /// Width of the feature embeddings.
    pub dim: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Seed of the initialisation and of the batch order.
    pub seed: u64,
}

impl Default for StudentConfig {
    fn default() -> Self {
        StudentConfig {
            hashing: Hashing::default(),
            dim: 32,
            epochs: 30,
            batch: 32,
            lr: 0.02,
            weight_decay: 0.0,
            seed: 0,
        }
    }
}

/// One training text as feature ids, with the distribution the student should give it.
#[derive(Debug, Clone)]
pub struct Target {
    pub features: Vec<u32>,
    pub probs: Vec<f32>,
}

/// Cross-entropy of `logits` `[B, K]` against the distributions `targets` `[B, K]`, averaged
/// over the batch, `[1]`.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (log_softmax(logits, 1) * targets).sum_dim(1).mean().neg()
}

/// `probs` sharpened or softened by a temperature (`p^(1/T)`, renormalised): T > 1 keeps more
/// of the teacher's doubt, T → 0 approaches its hard label.
pub fn tempered(probs: &[f64], temperature: f64) -> Vec<f32> {
    let t = temperature.max(1e-3);
    let logs: Vec<f64> = probs.iter().map(|&p| p.max(1e-12).ln() / t).collect();
    let m = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logs.iter().map(|l| (l - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| (x / s) as f32).collect()
}

/// The one-hot distribution of label `index` among `labels`.
pub fn one_hot(index: usize, labels: usize) -> Vec<f32> {
    (0..labels)
        .map(|i| f32::from(u8::from(i == index)))
        .collect()
}

fn targets_tensor(batch: &[&Target], labels: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = batch.iter().flat_map(|t| t.probs.iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [batch.len(), labels]), device)
}

/// Mean loss over `examples` (no training), for reporting.
pub fn mean_loss(net: &StudentNet, examples: &[Target], device: &Device) -> f64 {
    let labels = net.labels();
    let mut total = 0.0;
    for chunk in examples.chunks(256) {
        let refs: Vec<&Target> = chunk.iter().collect();
        let feats: Vec<&[u32]> = chunk.iter().map(|t| t.features.as_slice()).collect();
        let loss = soft_cross_entropy(
            net.forward(&FeatureBatch::new(&feats, device)),
            targets_tensor(&refs, labels, device),
        );
        total += f64::from(loss.into_scalar::<f32>()) * chunk.len() as f64;
    }
    total / examples.len().max(1) as f64
}

/// Trains a fresh student on `examples`; `epoch_done(epoch, mean training loss)` after each
/// epoch. Returns the student on `device`, ready to classify.
pub fn train(
    examples: &[Target],
    labels: usize,
    cfg: &StudentConfig,
    device: &Device,
    epoch_done: &mut dyn FnMut(usize, f64),
) -> anyhow::Result<StudentNet> {
    anyhow::ensure!(!examples.is_empty(), "nothing to train the student on");
    anyhow::ensure!(
        examples.iter().all(|e| e.probs.len() == labels),
        "every target needs one probability per label ({labels})"
    );
    let ad = device.clone().inner().autodiff();
    let mut net = StudentNet::new(
        cfg.hashing.buckets as usize,
        cfg.dim.max(1),
        labels,
        cfg.seed,
        &ad,
    )
    .fork(&ad)
    .train();
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .init();
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = Rng::new(cfg.seed ^ 0x5717_DE47);
    for epoch in 1..=cfg.epochs.max(1) {
        rng.shuffle(&mut order);
        let (mut sum, mut n) = (0.0, 0usize);
        for chunk in order.chunks(cfg.batch.max(1)) {
            let batch: Vec<&Target> = chunk.iter().map(|&i| &examples[i]).collect();
            let feats: Vec<&[u32]> = batch.iter().map(|t| t.features.as_slice()).collect();
            let loss = soft_cross_entropy(
                net.forward(&FeatureBatch::new(&feats, &ad)),
                targets_tensor(&batch, labels, &ad),
            );
            sum += f64::from(loss.clone().into_scalar::<f32>()) * batch.len() as f64;
            n += batch.len();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.lr, net, grads);
        }
        epoch_done(epoch, sum / n.max(1) as f64);
    }
    Ok(net.valid().fork(device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    fn target(h: &Hashing, text: &str, probs: Vec<f32>) -> Target {
        Target {
            features: h.features(text),
            probs,
        }
    }

    #[test]
    fn tempering_keeps_the_order_and_moves_toward_or_away_from_uniform() {
        let p = [0.7, 0.2, 0.1];
        let one = tempered(&p, 1.0);
        assert!((one[0] - 0.7).abs() < 1e-6 && (one[2] - 0.1).abs() < 1e-6);
        let soft = tempered(&p, 2.0);
        let sharp = tempered(&p, 0.5);
        assert!(soft[0] < 0.7 && sharp[0] > 0.7, "{soft:?} {sharp:?}");
        assert!(soft[0] > soft[1] && soft[1] > soft[2]);
        assert!((soft.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn soft_targets_change_the_loss_as_they_should() {
        let d = device();
        let logits = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.0], [1, 2]), &d);
        let loss = |t: Vec<f32>| {
            soft_cross_entropy(
                logits.clone(),
                Tensor::from_data(TensorData::new(t, [1, 2]), &d),
            )
            .into_scalar::<f32>()
        };
        let p0 = 1.0 / (1.0 + (-2.0f32).exp());
        // A hard label is the usual cross-entropy; a soft one adds the other label's share.
        assert!((loss(vec![1.0, 0.0]) + p0.ln()).abs() < 1e-5);
        assert!((loss(vec![0.0, 1.0]) + (1.0 - p0).ln()).abs() < 1e-5);
        let mixed = loss(vec![0.75, 0.25]);
        assert!((mixed - (0.75 * -p0.ln() + 0.25 * -(1.0 - p0).ln())).abs() < 1e-5);
        // Matching the logits' own distribution is the lowest a soft target can get.
        assert!(loss(vec![p0, 1.0 - p0]) < mixed);
    }

    #[test]
    fn the_student_learns_a_separable_task_completely() {
        let h = Hashing {
            buckets: 1 << 12,
            ..Hashing::default()
        };
        let pos = [
            "great fun",
            "a joy to watch",
            "loved the cast",
            "wonderful and warm",
        ];
        let neg = [
            "a dull mess",
            "boring and long",
            "hated the plot",
            "awful acting",
        ];
        let mut ex = Vec::new();
        for t in pos {
            ex.push(target(&h, t, one_hot(1, 2)));
        }
        for t in neg {
            ex.push(target(&h, t, one_hot(0, 2)));
        }
        let cfg = StudentConfig {
            hashing: h,
            dim: 8,
            epochs: 60,
            batch: 4,
            lr: 0.05,
            ..StudentConfig::default()
        };
        let mut losses = Vec::new();
        let net = train(&ex, 2, &cfg, &device(), &mut |_, l| losses.push(l)).unwrap();
        assert!(losses[losses.len() - 1] < losses[0] / 10.0, "{losses:?}");
        let feats: Vec<&[u32]> = ex.iter().map(|e| e.features.as_slice()).collect();
        let logits = net.forward(&FeatureBatch::new(&feats, &device()));
        let rows = logits.into_data().try_into_vec::<f32>().unwrap();
        for (i, e) in ex.iter().enumerate() {
            let want = usize::from(e.probs[1] > 0.5);
            let got = usize::from(rows[i * 2 + 1] > rows[i * 2]);
            assert_eq!(got, want, "example {i}");
        }
    }

    #[test]
    fn training_is_reproducible_from_its_seed() {
        let h = Hashing {
            buckets: 1 << 10,
            ..Hashing::default()
        };
        let ex = vec![
            target(&h, "yes indeed", one_hot(1, 2)),
            target(&h, "no way", tempered(&[0.8, 0.2], 1.0)),
        ];
        let cfg = StudentConfig {
            hashing: h,
            dim: 4,
            epochs: 5,
            batch: 1,
            ..StudentConfig::default()
        };
        let run = || {
            let net = train(&ex, 2, &cfg, &device(), &mut |_, _| {}).unwrap();
            net.out.val().into_data().try_into_vec::<f32>().unwrap()
        };
        assert_eq!(run(), run());
    }
}
