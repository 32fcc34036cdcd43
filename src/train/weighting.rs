//! How much each training example and each target token counts: class balance, the share of
//! the real seeds against synthetic items, and label smoothing over the label words.
//!
//! Small generators write lopsided, noisy sets (the label check kept 77 negative and 32 positive
//! items of 200 on SST-2); trained on as they are, the classifier learns the kept set's prior
//! rather than the task. Balancing the classes, keeping the real seeds from being drowned, and
//! smoothing the label target are the cheap remedies the literature on small-generator synthetic
//! data names (SetFit's oversampling, SuperGen's and FewGen's label smoothing). Everything here
//! is pure and tested directly; the trainer turns [`LossTerms`] into tensors.

use serde::{Deserialize, Serialize};

use super::data::Encoded;

/// How examples are weighted in the loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Weighting {
    /// Every class of a source (the real seeds, the synthetic items) weighs the same in total,
    /// however many examples it has.
    pub balance_classes: bool,
    /// The synthetic items together weigh this many times the real examples together (none:
    /// each example weighs one, so a large synthetic set drowns the seeds).
    pub synthetic_weight: Option<f64>,
    /// Share of the label word's target spread evenly over every label's word (0: none).
    pub label_smoothing: f64,
    /// Train the extra examples towards the judge's distribution over the labels (its
    /// probabilities when it kept them) instead of their label alone: distillation.
    pub soft_labels: bool,
}

impl Default for Weighting {
    /// The defaults the measurements in docs/results.md support: none of the reweightings
    /// gained consistently on the validation rows.
    fn default() -> Self {
        Self::none()
    }
}

impl Weighting {
    /// No reweighting: the loss of runs recorded before these settings existed.
    pub fn none() -> Self {
        Weighting {
            balance_classes: false,
            synthetic_weight: None,
            label_smoothing: 0.0,
            soft_labels: false,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!(
                "label smoothing must be in [0, 1), not {}",
                self.label_smoothing
            ));
        }
        if let Some(w) = self.synthetic_weight
            && !(w > 0.0 && w.is_finite())
        {
            return Err(format!("synthetic weight must be positive, not {w}"));
        }
        Ok(())
    }

    /// Whether the loss differs from the plain mean over target tokens.
    pub fn is_plain(&self) -> bool {
        !self.balance_classes
            && self.synthetic_weight.is_none()
            && self.label_smoothing == 0.0
            && !self.soft_labels
    }

    /// One weight per example of `real` followed by `synthetic` (their label indices), with a
    /// mean of one over all examples.
    pub fn example_weights(&self, real: &[usize], synthetic: &[usize]) -> Vec<f32> {
        let group = |labels: &[usize]| -> Vec<f64> {
            if !self.balance_classes || labels.is_empty() {
                return vec![1.0; labels.len()];
            }
            let n_labels = labels.iter().max().map_or(0, |m| m + 1);
            let mut count = vec![0usize; n_labels];
            for &l in labels {
                count[l] += 1;
            }
            let present = count.iter().filter(|&&c| c > 0).count() as f64;
            // Each present class gets an equal share of the group's total weight.
            let share = labels.len() as f64 / present;
            labels.iter().map(|&l| share / count[l] as f64).collect()
        };
        let real_w = group(real);
        let mut syn_w = group(synthetic);
        if let Some(ratio) = self.synthetic_weight
            && !real.is_empty()
            && !synthetic.is_empty()
        {
            let real_total: f64 = real_w.iter().sum();
            let syn_total: f64 = syn_w.iter().sum();
            let scale = ratio * real_total / syn_total;
            syn_w.iter_mut().for_each(|w| *w *= scale);
        }
        let all: Vec<f64> = real_w.into_iter().chain(syn_w).collect();
        let mean = all.iter().sum::<f64>() / all.len().max(1) as f64;
        all.iter().map(|w| (w / mean.max(1e-12)) as f32).collect()
    }
}

/// The loss of a batch as coefficients on log-probabilities: for target token `t`,
/// `hard[t]` on its own token and `soft[t·K + k]` on label `k`'s first token, so that
/// `loss = −Σ hard[t]·log p(target_t) − Σ soft[t,k]·log p(label_k)`. They sum to one over the
/// batch: a weighted mean over target tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct LossTerms {
    pub hard: Vec<f32>,
    pub soft: Vec<f32>,
    pub labels: usize,
}

impl LossTerms {
    /// `examples` in batch order with their `weights`; `label_first` is the first token of each
    /// label's word (smoothing applies at the position that predicts it, the example's first
    /// target token, and only for the classification objective where the targets are label
    /// words).
    /// `targets[i]`, when given, is example `i`'s distribution over the labels: its first
    /// target token is then trained towards every label's word in those shares (the rest of
    /// a multi-token word still towards its own tokens).
    pub fn new(
        examples: &[&Encoded],
        weights: &[f32],
        targets: &[Option<&[f32]>],
        label_first: &[u32],
        smoothing: f64,
    ) -> LossTerms {
        let k = label_first.len();
        let smooth = if k >= 2 { smoothing as f32 } else { 0.0 };
        let mut hard = Vec::new();
        let mut soft = Vec::new();
        for (j, (e, &w)) in examples.iter().zip(weights).enumerate() {
            let dist = targets
                .get(j)
                .copied()
                .flatten()
                .filter(|d| k >= 2 && d.len() == k);
            for i in 0..e.target.len() {
                let mut row = vec![0.0f32; k];
                match dist {
                    Some(d) if i == 0 => {
                        hard.push(0.0);
                        for (x, &q) in row.iter_mut().zip(d) {
                            *x = w * ((1.0 - smooth) * q + smooth / k as f32);
                        }
                    }
                    _ if i == 0 && smooth > 0.0 => {
                        hard.push(w * (1.0 - smooth));
                        row.iter_mut().for_each(|x| *x = w * smooth / k as f32);
                    }
                    _ => hard.push(w),
                }
                soft.extend(row);
            }
        }
        let total: f32 = examples
            .iter()
            .zip(weights)
            .map(|(e, &w)| w * e.target.len() as f32)
            .sum();
        let norm = if total > 0.0 { 1.0 / total } else { 0.0 };
        hard.iter_mut().for_each(|x| *x *= norm);
        soft.iter_mut().for_each(|x| *x *= norm);
        LossTerms {
            hard,
            soft,
            labels: k,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(target: &[u32], label: usize) -> Encoded {
        Encoded {
            prompt: vec![1, 2],
            target: target.to_vec(),
            label,
            truncated: false,
        }
    }

    #[test]
    fn plain_weighting_weighs_every_example_one() {
        let w = Weighting::none();
        assert!(w.is_plain());
        assert_eq!(w.example_weights(&[0, 1], &[0, 0, 0]), vec![1.0; 5]);
    }

    #[test]
    fn balance_gives_each_class_of_a_source_the_same_total() {
        let w = Weighting {
            balance_classes: true,
            ..Weighting::none()
        };
        // Synthetic: three of class 0, one of class 1 → each class totals 2.
        let ws = w.example_weights(&[0, 1], &[0, 0, 0, 1]);
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(close(ws[0], ws[1]), "{ws:?}");
        let c0: f32 = ws[2..5].iter().sum();
        assert!(close(c0, ws[5]), "{ws:?}");
        assert!(close(ws.iter().sum::<f32>(), 6.0), "mean one: {ws:?}");
    }

    #[test]
    fn synthetic_weight_sets_the_ratio_of_the_two_sources() {
        let w = Weighting {
            synthetic_weight: Some(1.0),
            ..Weighting::none()
        };
        let ws = w.example_weights(&[0, 1], &[0, 1, 0, 1, 0, 1]);
        let real: f32 = ws[..2].iter().sum();
        let syn: f32 = ws[2..].iter().sum();
        assert!((real - syn).abs() < 1e-5, "{ws:?}");
        // Half the synthetic share.
        let w = Weighting {
            synthetic_weight: Some(0.5),
            ..Weighting::none()
        };
        let ws = w.example_weights(&[0, 1], &[0, 1, 0, 1]);
        let real: f32 = ws[..2].iter().sum();
        let syn: f32 = ws[2..].iter().sum();
        assert!((syn / real - 0.5).abs() < 1e-5, "{ws:?}");
        // Nothing synthetic: nothing to scale.
        assert_eq!(w.example_weights(&[0, 1], &[]), vec![1.0, 1.0]);
    }

    #[test]
    fn loss_terms_are_a_weighted_mean_and_smoothing_moves_mass_to_every_label() {
        let a = enc(&[7], 0);
        let b = enc(&[8, 9], 1);
        let plain = LossTerms::new(&[&a, &b], &[1.0, 1.0], &[], &[7, 8], 0.0);
        assert_eq!(plain.hard, vec![1.0 / 3.0; 3]);
        assert!(plain.soft.iter().all(|&x| x == 0.0));
        assert_eq!(plain.soft.len(), 3 * 2);

        let weighted = LossTerms::new(&[&a, &b], &[2.0, 1.0], &[], &[7, 8], 0.0);
        assert_eq!(weighted.hard, vec![0.5, 0.25, 0.25]);

        let smooth = LossTerms::new(&[&a, &b], &[1.0, 1.0], &[], &[7, 8], 0.2);
        let third = 1.0 / 3.0;
        // First target token of each example: 0.8 on its own word, 0.1 on each label's.
        assert!((smooth.hard[0] - 0.8 * third).abs() < 1e-6);
        assert!((smooth.soft[0] - 0.1 * third).abs() < 1e-6);
        assert!((smooth.soft[1] - 0.1 * third).abs() < 1e-6);
        assert!((smooth.hard[1] - 0.8 * third).abs() < 1e-6);
        // The second token of a two-token word is not smoothed.
        assert!((smooth.hard[2] - third).abs() < 1e-6);
        assert_eq!(&smooth.soft[4..6], &[0.0, 0.0]);
        let total: f32 = smooth.hard.iter().chain(&smooth.soft).sum();
        assert!((total - 1.0).abs() < 1e-6);
        // One label: nothing to smooth towards.
        let one = LossTerms::new(&[&a], &[1.0], &[], &[7], 0.2);
        assert_eq!(one.hard, vec![1.0]);
    }

    #[test]
    fn a_soft_target_spreads_the_label_token_over_the_labels_in_its_shares() {
        let a = enc(&[7], 0);
        let b = enc(&[8, 9], 1);
        let q = [0.75f32, 0.25];
        let t = LossTerms::new(&[&a, &b], &[1.0, 1.0], &[Some(&q), None], &[7, 8], 0.0);
        let third = 1.0 / 3.0;
        // Example a: nothing on its own token as such, 0.75 / 0.25 on the two label words.
        assert_eq!(t.hard[0], 0.0);
        assert!((t.soft[0] - 0.75 * third).abs() < 1e-6);
        assert!((t.soft[1] - 0.25 * third).abs() < 1e-6);
        // Example b keeps its hard target.
        assert!((t.hard[1] - third).abs() < 1e-6 && (t.hard[2] - third).abs() < 1e-6);
        // With smoothing the shares move towards uniform.
        let s = LossTerms::new(&[&a], &[1.0], &[Some(&q)], &[7, 8], 0.2);
        assert!((s.soft[0] - (0.8 * 0.75 + 0.1)).abs() < 1e-6);
        assert!((s.soft[1] - (0.8 * 0.25 + 0.1)).abs() < 1e-6);
        // A distribution of the wrong size is ignored, not misread.
        let bad = [1.0f32];
        let h = LossTerms::new(&[&a], &[1.0], &[Some(&bad)], &[7, 8], 0.0);
        assert_eq!(h.hard, vec![1.0]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut w = Weighting {
            label_smoothing: 1.0,
            ..Weighting::none()
        };
        assert!(w.validate().unwrap_err().contains("smoothing"));
        w.label_smoothing = 0.1;
        w.synthetic_weight = Some(0.0);
        assert!(w.validate().unwrap_err().contains("synthetic weight"));
    }
}
