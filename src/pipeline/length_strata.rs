//! Length strata of a quota: the seeds of every class pooled, their word counts cut into bins
//! of equal share, so that each class's kept items can be held to the same length profile.
//! Without it a class whose seeds happen to be long gets long items and one whose seeds are
//! short gets short ones, and the classifier trained on them learns length as a label
//! (docs/results.md, SST-2 draw 0: kept negatives 26.9 words on average, positives 9.8).

/// Bins of word counts; bin `k` holds the texts whose place among the pooled seeds' lengths
/// (ties counted half) falls in the `k`-th of `n` equal shares.
#[derive(Debug, Clone, PartialEq)]
pub struct LengthStrata {
    /// The pooled seeds' word counts, sorted.
    seeds: Vec<usize>,
    bins: usize,
}

impl LengthStrata {
    /// `None` when there is nothing to stratify: one bin asked for, or no seed.
    pub fn new(seed_words: &[usize], bins: usize) -> Option<LengthStrata> {
        if bins < 2 || seed_words.is_empty() {
            return None;
        }
        let mut seeds = seed_words.to_vec();
        seeds.sort_unstable();
        Some(LengthStrata { seeds, bins })
    }

    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The bin of a text of `words` words: texts shorter than every seed fall in the first,
    /// longer than every seed in the last.
    pub fn bin(&self, words: usize) -> usize {
        let below = self.seeds.partition_point(|&w| w < words);
        let ties = self.seeds[below..].partition_point(|&w| w == words);
        // The mid-rank of `words` among the seeds, as a share; twice everything keeps it whole.
        let twice_rank = 2 * below + ties;
        let bin = twice_rank * self.bins / (2 * self.seeds.len());
        bin.min(self.bins - 1)
    }

    /// How many of `per_class` items each bin holds: equal shares, the first bins taking what
    /// does not divide.
    pub fn shares(&self, per_class: usize) -> Vec<usize> {
        (0..self.bins)
            .map(|k| per_class / self.bins + usize::from(k < per_class % self.bins))
            .collect()
    }

    /// The word counts of bin `k`, for messages: "≤ 8 words", "9–11 words", "≥ 12 words"
    /// (a bin no word count reaches, when seeds tie, says so).
    pub fn describe(&self, k: usize) -> String {
        let longest = self.seeds.last().copied().unwrap_or(0) + 1;
        let words: Vec<usize> = (0..=longest).filter(|&w| self.bin(w) == k).collect();
        match (words.first(), words.last()) {
            (None, _) | (_, None) => "no word count".to_string(),
            (Some(&lo), Some(_)) if k + 1 == self.bins => format!("≥ {lo} words"),
            (Some(_), Some(&hi)) if k == 0 => format!("≤ {hi} words"),
            (Some(&lo), Some(&hi)) if lo == hi => format!("{lo} words"),
            (Some(&lo), Some(&hi)) => format!("{lo}–{hi} words"),
        }
    }

    /// Every bin described, in order ("≤ 8, 9–11, ≥ 12 words" style, for reports).
    pub fn summary(&self) -> String {
        (0..self.bins)
            .map(|k| self.describe(k))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Words as the quota counts them.
pub fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The mean word count of some texts (0 for none).
pub fn mean_words<'a>(texts: impl IntoIterator<Item = &'a str>) -> f64 {
    let (n, sum) = texts
        .into_iter()
        .fold((0usize, 0usize), |(n, sum), t| (n + 1, sum + words(t)));
    sum as f64 / n.max(1) as f64
}

/// Per class, the mean word count of `kept` items and of `seeds`, both `(label, text)`: a gap
/// between classes is one a classifier can learn as a label.
pub fn mean_words_per_class(
    labels: &[&str],
    kept: &[(&str, &str)],
    seeds: &[(&str, &str)],
) -> Vec<(String, f64, f64)> {
    let of = |pairs: &[(&str, &str)], l: &str| {
        mean_words(pairs.iter().filter(|(x, _)| *x == l).map(|(_, t)| *t))
    };
    labels
        .iter()
        .map(|l| (l.to_string(), of(kept, l), of(seeds, l)))
        .collect()
}

/// `mean_words_per_class`'s figures as one line: "negative 18.0 (17.0), positive 12.3 (9.5)",
/// the kept items' mean, then the seeds' in brackets.
pub fn mean_words_line(per_class: &[(String, f64, f64)]) -> String {
    per_class
        .iter()
        .map(|(l, kept, seeds)| format!("{l} {kept:.1} ({seeds:.1})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bin_or_no_seed_means_no_strata() {
        assert!(LengthStrata::new(&[5, 9], 1).is_none());
        assert!(LengthStrata::new(&[], 3).is_none());
    }

    #[test]
    fn bins_cut_the_pooled_seeds_into_equal_shares() {
        // SST-2 draw 0's seeds: four long negatives, four short positives.
        let s = LengthStrata::new(&[30, 7, 11, 17, 10, 6, 12, 9], 3).expect("strata");
        let of_seeds: Vec<usize> = [6, 7, 9, 10, 11, 12, 17, 30]
            .iter()
            .map(|&w| s.bin(w))
            .collect();
        assert_eq!(of_seeds, [0, 0, 0, 1, 1, 2, 2, 2]);
        // Beyond the seeds: the end bins.
        assert_eq!(s.bin(1), 0);
        assert_eq!(s.bin(80), 2);
        assert_eq!(s.describe(0), "≤ 9 words");
        assert_eq!(s.describe(1), "10–11 words");
        assert_eq!(s.describe(2), "≥ 12 words");
        assert_eq!(s.summary(), "≤ 9 words, 10–11 words, ≥ 12 words");
    }

    #[test]
    fn shares_split_the_quota_with_the_remainder_first() {
        let s = LengthStrata::new(&[1, 2, 3], 3).expect("strata");
        assert_eq!(s.shares(20), [7, 7, 6]);
        assert_eq!(s.shares(2), [1, 1, 0]);
    }

    #[test]
    fn tied_seeds_share_their_rank() {
        // Every seed the same length: that length sits mid-way, shorter texts first.
        let s = LengthStrata::new(&[10, 10, 10, 10], 2).expect("strata");
        assert_eq!(s.bin(9), 0);
        assert_eq!(s.bin(10), 1);
        assert_eq!(s.bin(11), 1);
        assert_eq!(words("  a b\tc\n"), 3);
    }

    #[test]
    fn mean_words_per_class_of_kept_items_and_seeds() {
        let kept = [("neg", "a b c d"), ("neg", "a b"), ("pos", "a")];
        let seeds = [("neg", "a b c"), ("pos", "a b c d e")];
        let m = mean_words_per_class(&["neg", "pos", "other"], &kept, &seeds);
        assert_eq!(
            m,
            [
                ("neg".to_string(), 3.0, 3.0),
                ("pos".to_string(), 1.0, 5.0),
                ("other".to_string(), 0.0, 0.0)
            ]
        );
        assert_eq!(mean_words_line(&m[..2]), "neg 3.0 (3.0), pos 1.0 (5.0)");
    }
}
