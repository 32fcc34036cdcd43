//! Classification metrics from gold and predicted labels: accuracy, per-class precision,
//! recall and F1, macro-F1, and the confusion matrix.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold examples of this class.
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[gold][predicted]`, rows and columns in `labels` order.
    pub confusion: Vec<Vec<usize>>,
    pub labels: Vec<String>,
}

impl Metrics {
    /// `pairs` are (gold, predicted); labels outside `labels` are ignored with a count returned.
    pub fn compute<'a>(
        labels: &[String],
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Metrics {
        let k = labels.len();
        let idx = |l: &str| labels.iter().position(|x| x == l);
        let mut confusion = vec![vec![0usize; k]; k];
        let mut n = 0;
        for (gold, pred) in pairs {
            if let (Some(g), Some(p)) = (idx(gold), idx(pred)) {
                confusion[g][p] += 1;
                n += 1;
            }
        }
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let predicted: usize = (0..k).map(|g| confusion[g][c]).sum();
                let support: usize = confusion[c].iter().sum();
                // A class never predicted has precision 0, as scikit-learn reports it
                // (zero_division=0); likewise recall for a class with no gold examples.
                let precision = if predicted > 0 {
                    tp / predicted as f64
                } else {
                    0.0
                };
                let recall = if support > 0 {
                    tp / support as f64
                } else {
                    0.0
                };
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    label: labels[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let macro_f1 = if k > 0 {
            per_class.iter().map(|c| c.f1).sum::<f64>() / k as f64
        } else {
            0.0
        };
        Metrics {
            n,
            accuracy: if n > 0 {
                correct as f64 / n as f64
            } else {
                0.0
            },
            macro_f1,
            per_class,
            confusion,
            labels: labels.to_vec(),
        }
    }

    /// The confusion matrix as aligned text (rows gold, columns predicted).
    pub fn confusion_table(&self) -> String {
        let width = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(4)
            .max(6);
        let mut out = format!("{:>width$} │", "gold\\pred");
        for l in &self.labels {
            out.push_str(&format!(" {l:>width$}"));
        }
        out.push('\n');
        for (g, row) in self.confusion.iter().enumerate() {
            out.push_str(&format!("{:>width$} │", self.labels[g]));
            for c in row {
                out.push_str(&format!(" {c:>width$}"));
            }
            out.push('\n');
        }
        out
    }
}

/// Mean and sample standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn binary_case_by_hand() {
        // gold/pred: 3 TP pos, 1 FN (pos→neg), 2 FP (neg→pos), 4 TN.
        let mut pairs = vec![("pos", "pos"); 3];
        pairs.push(("pos", "neg"));
        pairs.extend(vec![("neg", "pos"); 2]);
        pairs.extend(vec![("neg", "neg"); 4]);
        let m = Metrics::compute(&labels(&["neg", "pos"]), pairs);
        assert_eq!(m.n, 10);
        assert_eq!(m.confusion, vec![vec![4, 2], vec![1, 3]]);
        assert!((m.accuracy - 0.7).abs() < 1e-12);
        // pos: P = 3/5, R = 3/4, F1 = 2·0.6·0.75/1.35 = 2/3
        let pos = &m.per_class[1];
        assert!((pos.precision - 0.6).abs() < 1e-12 && (pos.recall - 0.75).abs() < 1e-12);
        assert!((pos.f1 - 2.0 / 3.0).abs() < 1e-12);
        // neg: P = 4/5, R = 4/6, F1 = 2·0.8·(2/3)/(0.8+2/3) = 8/11
        let neg = &m.per_class[0];
        assert!((neg.f1 - 8.0 / 11.0).abs() < 1e-12);
        assert!((m.macro_f1 - (2.0 / 3.0 + 8.0 / 11.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn three_classes_with_one_never_predicted() {
        let pairs = vec![("a", "a"), ("a", "b"), ("b", "b"), ("c", "b"), ("c", "a")];
        let m = Metrics::compute(&labels(&["a", "b", "c"]), pairs);
        assert_eq!(
            m.confusion,
            vec![vec![1, 1, 0], vec![0, 1, 0], vec![1, 1, 0]]
        );
        assert!((m.accuracy - 0.4).abs() < 1e-12);
        // a: P 1/2 R 1/2 F1 1/2; b: P 1/3 R 1 F1 1/2; c: never predicted, F1 0.
        assert!((m.per_class[0].f1 - 0.5).abs() < 1e-12);
        assert!((m.per_class[1].f1 - 0.5).abs() < 1e-12);
        assert_eq!(m.per_class[2].precision, 0.0);
        assert!((m.macro_f1 - 1.0 / 3.0).abs() < 1e-12);
        assert!(m.confusion_table().contains("gold\\pred"));
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }
}
