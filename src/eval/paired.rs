//! Did a run beat its twin? Two classifiers scored on the same test rows differ on only some of
//! them; the paired difference in accuracy, its bootstrap interval over rows, and McNemar's
//! exact test on the rows where exactly one of them was right say whether the difference is
//! more than the luck of which rows were drawn.

use serde::{Deserialize, Serialize};

use crate::util::rng::Rng;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub n: usize,
    /// Accuracy of the run minus that of its twin.
    pub diff: f64,
    /// 95% bootstrap interval of `diff` (percentiles of 2,000 resamples of the rows).
    pub low: f64,
    pub high: f64,
    /// Rows only the run got right, and rows only the twin got right.
    pub only_run: usize,
    pub only_twin: usize,
    /// McNemar's exact two-sided p-value.
    pub p_value: f64,
}

impl Paired {
    /// The interval lies wholly below zero: the run is worse than its twin beyond row luck.
    pub fn worse(&self) -> bool {
        self.high < 0.0
    }

    pub fn better(&self) -> bool {
        self.low > 0.0
    }
}

/// Compares `run` with `twin`, row by row (`None` when the rows differ in number or are none).
pub fn compare(run: &[bool], twin: &[bool], seed: u64) -> Option<Paired> {
    if run.len() != twin.len() || run.is_empty() {
        return None;
    }
    let n = run.len();
    // Per row: +1 only the run right, −1 only the twin right, 0 both or neither.
    let d: Vec<i32> = run
        .iter()
        .zip(twin)
        .map(|(&a, &b)| i32::from(a) - i32::from(b))
        .collect();
    let only_run = d.iter().filter(|&&x| x > 0).count();
    let only_twin = d.iter().filter(|&&x| x < 0).count();
    let diff = (only_run as f64 - only_twin as f64) / n as f64;
    let mut rng = Rng::new(seed ^ 0xB007_57A9);
    let mut stats: Vec<f64> = (0..2000)
        .map(|_| {
            let s: i64 = (0..n)
                .map(|_| i64::from(d[rng.below(n as u64) as usize]))
                .sum();
            s as f64 / n as f64
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    Some(Paired {
        n,
        diff,
        low: stats[49],
        high: stats[1949],
        only_run,
        only_twin,
        p_value: mcnemar_exact(only_run, only_twin),
    })
}

/// A scored run as the search for its twin sees it.
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    /// A LoRA run trained on the seeds alone (the baseline every other run is held against).
    pub seeds_only: bool,
    /// A LoRA run trained on the seeds and something more.
    pub with_extra: bool,
    /// How many runs its adapter averages (a soup's twin is a seeds-only soup of as many).
    pub members: usize,
    /// The file its evaluation scored.
    pub test_file: &'a str,
    /// Per row, whether it was right.
    pub correct: &'a [bool],
}

/// For each run trained on more than the seeds, the index of its twin — the latest seeds-only
/// run (in the given order) averaging as many runs, scored on the same file and rows — and the
/// comparison with it. A soup held against one run would credit the extra data with what the
/// averaging bought.
pub fn against_twins(runs: &[Scored]) -> Vec<Option<(usize, Paired)>> {
    runs.iter()
        .map(|r| {
            if !r.with_extra || r.correct.is_empty() {
                return None;
            }
            let twin = runs.iter().rposition(|t| {
                t.seeds_only
                    && t.members == r.members
                    && t.test_file == r.test_file
                    && t.correct.len() == r.correct.len()
            })?;
            compare(r.correct, runs[twin].correct, 0).map(|p| (twin, p))
        })
        .collect()
}

/// One cell for a table: `+2.3 [−0.4, +5.0] p 0.09`, and a warning when it is worse beyond
/// row luck.
pub fn cell(p: &Paired) -> String {
    format!(
        "{:+.1} [{:+.1}, {:+.1}] p {:.2}{}",
        p.diff * 100.0,
        p.low * 100.0,
        p.high * 100.0,
        p.p_value,
        if p.worse() { " WORSE" } else { "" }
    )
}

/// Two-sided exact McNemar test: under no difference, the discordant rows split as a fair coin.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let m = b + c;
    if m == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // P(X ≤ k) for X ~ Binomial(m, 1/2), in logs to stay finite for large m.
    let ln_half_m = -(m as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64; // ln C(m, 0)
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((m - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_m).exp();
    }
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_hand_computed_binomial_tails() {
        // m = 10, k = 1: 2·(1 + 10)/1024.
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-12);
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-12);
        // Equal split: p = 1.
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // m = 6, k = 0: 2/64.
        assert!((mcnemar_exact(0, 6) - 2.0 / 64.0).abs() < 1e-12);
        // Large m stays finite and tiny.
        let p = mcnemar_exact(100, 300);
        assert!(p > 0.0 && p < 1e-20, "{p}");
    }

    #[test]
    fn paired_difference_counts_discordant_rows_and_brackets_the_estimate() {
        // 100 rows: the run alone right on 12, the twin alone right on 2, both on 60.
        let mut run = vec![false; 100];
        let mut twin = vec![false; 100];
        for i in 0..60 {
            run[i] = true;
            twin[i] = true;
        }
        for r in run.iter_mut().skip(60).take(12) {
            *r = true;
        }
        for t in twin.iter_mut().skip(72).take(2) {
            *t = true;
        }
        let p = compare(&run, &twin, 0).unwrap();
        assert_eq!((p.only_run, p.only_twin, p.n), (12, 2, 100));
        assert!((p.diff - 0.10).abs() < 1e-12);
        assert!(p.low <= p.diff && p.diff <= p.high, "{p:?}");
        assert!(p.better() && !p.worse(), "{p:?}");
        assert!(p.p_value < 0.05, "{p:?}");
        // Swapped: worse, mirrored.
        let q = compare(&twin, &run, 0).unwrap();
        assert!(q.worse() && (q.diff + 0.10).abs() < 1e-12);
        // Identical runs: no difference at all.
        let same = compare(&run, &run, 0).unwrap();
        assert_eq!(
            (same.diff, same.low, same.high, same.p_value),
            (0.0, 0.0, 0.0, 1.0)
        );
        assert!(compare(&run, &twin[..50], 0).is_none());
    }

    #[test]
    fn a_run_is_held_against_the_latest_seeds_only_run_on_the_same_rows() {
        let a = [true, false, true, true];
        let b = [true, true, true, true];
        let c = [false, false, true, true];
        let runs = [
            Scored {
                seeds_only: true,
                with_extra: false,
                members: 1,
                test_file: "dev.tsv",
                correct: &c,
            },
            Scored {
                seeds_only: true,
                with_extra: false,
                members: 1,
                test_file: "dev.tsv",
                correct: &a,
            },
            Scored {
                seeds_only: true,
                with_extra: false,
                members: 1,
                test_file: "other.tsv",
                correct: &c,
            },
            Scored {
                seeds_only: false,
                with_extra: true,
                members: 1,
                test_file: "dev.tsv",
                correct: &b,
            },
            Scored {
                seeds_only: false,
                with_extra: false,
                members: 1,
                test_file: "dev.tsv",
                correct: &b,
            },
        ];
        let out = against_twins(&runs);
        assert!(out[..3].iter().all(Option::is_none));
        let (twin, p) = out[3].as_ref().unwrap();
        assert_eq!(*twin, 1, "the latest seeds-only run on dev.tsv");
        assert!((p.diff - 0.25).abs() < 1e-12);
        assert!(out[4].is_none(), "an ICL or zero-shot run has no twin");
        assert!(cell(p).starts_with("+25.0 ["), "{}", cell(p));

        // A soup of four is held against a seeds-only soup of four, never a single run.
        let mut soups = runs.to_vec();
        soups[3].members = 4;
        assert!(
            against_twins(&soups)[3].is_none(),
            "no seeds-only soup of four"
        );
        soups[0].members = 4;
        let (twin, p) = against_twins(&soups)[3].clone().unwrap();
        assert_eq!(twin, 0, "the seeds-only soup, older than the single runs");
        assert!((p.diff - 0.5).abs() < 1e-12);
    }
}
