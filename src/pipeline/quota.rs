//! Generation until each class has its quota of kept items: the tally of what each class has
//! tried and kept, which asks for the next round and marks a kept item past its class's quota
//! (a round may overshoot), so the kept set stays balanced. With length strata the quota is
//! split over bins of the seeds' word counts, and an item whose class's bin is full is marked
//! the same way, so every class keeps the same length profile. One tally for the workbench's
//! generation job and the experiment, so both keep the same items.

use super::filters::stages::QUOTA;
use super::generate::GenerateSettings;
use super::length_strata::LengthStrata;
use crate::data::item::Verdict;
use crate::data::task::LabelDef;

#[derive(Debug, Clone)]
pub struct Quota {
    per_class: usize,
    cap: usize,
    settings: GenerateSettings,
    strata: Option<LengthStrata>,
    /// Per bin of the strata (one bin without them), what a class may keep there.
    shares: Vec<usize>,
    /// Per class (in the task's label order), per bin.
    kept_in: Vec<Vec<usize>>,
    attempts: Vec<usize>,
}

impl Quota {
    /// `seed_words`: the word counts of every seed, all classes pooled, which the length
    /// strata (`settings.length_strata` bins) are cut from.
    pub fn new(settings: &GenerateSettings, classes: usize, seed_words: &[usize]) -> Quota {
        let strata = LengthStrata::new(seed_words, settings.length_bins());
        let shares = match &strata {
            Some(s) => s.shares(settings.per_class),
            None => vec![settings.per_class],
        };
        Quota {
            per_class: settings.per_class,
            cap: settings.attempt_cap(),
            // Only the quota and the cap decide the rounds.
            settings: GenerateSettings {
                per_class: settings.per_class,
                max_attempts_factor: settings.max_attempts_factor,
                ..GenerateSettings::default()
            },
            strata,
            kept_in: vec![vec![0; shares.len()]; classes],
            shares,
            attempts: vec![0; classes],
        }
    }

    /// Requests per class for the next round; `None` when every class is full or at its cap.
    pub fn next_round(&self) -> Option<Vec<usize>> {
        self.settings.next_round(&self.kept(), &self.attempts)
    }

    /// Counts one judged item of class `class` and `words` words (`kept`: every filter passed
    /// it). A kept item whose class already has its quota, or its share of the item's length
    /// bin, gets the quota's failing verdict, returned to be recorded with the item's others;
    /// it then counts as rejected.
    pub fn record(
        &mut self,
        class: usize,
        label: &str,
        kept: bool,
        words: usize,
    ) -> Option<Verdict> {
        let bin = self.strata.as_ref().map_or(0, |s| s.bin(words));
        let (Some(a), Some(bins)) = (self.attempts.get_mut(class), self.kept_in.get_mut(class))
        else {
            return None;
        };
        *a += 1;
        if !kept {
            return None;
        }
        let k: usize = bins.iter().sum();
        let share = self.shares.get(bin).copied().unwrap_or(0);
        if let Some(in_bin) = bins
            .get_mut(bin)
            .filter(|n| k < self.per_class && **n < share)
        {
            *in_bin += 1;
            return None;
        }
        let reason = match &self.strata {
            Some(s) if k < self.per_class => format!(
                "{label} already has its {share} of {} (length bins)",
                s.describe(bin)
            ),
            _ => format!("{label} already has {} kept items", self.per_class),
        };
        Some(Verdict::fail(QUOTA, reason))
    }

    /// The length strata, when the quota is split over them.
    pub fn strata(&self) -> Option<&LengthStrata> {
        self.strata.as_ref()
    }

    /// What each class has kept so far.
    pub fn kept(&self) -> Vec<usize> {
        self.kept_in.iter().map(|bins| bins.iter().sum()).collect()
    }

    /// The classes whose attempt cap was reached before their quota, with what they kept.
    /// Without quota rounds (the cap is the quota) nothing is cut short.
    pub fn short(&self, labels: &[LabelDef]) -> Vec<(String, usize)> {
        labels
            .iter()
            .zip(self.kept())
            .filter(|(_, n)| self.cap > self.per_class && *n < self.per_class)
            .map(|(l, n)| (l.name.clone(), n))
            .collect()
    }

    /// One line for the log: each class's kept items against its quota (and, with strata,
    /// each bin's against its share).
    pub fn line(&self, labels: &[LabelDef]) -> String {
        labels
            .iter()
            .zip(self.kept())
            .zip(&self.kept_in)
            .map(|((l, n), bins)| match &self.strata {
                None => format!("{} {n}/{}", l.name, self.per_class),
                Some(_) => format!(
                    "{} {n}/{} ({})",
                    l.name,
                    self.per_class,
                    bins.iter()
                        .zip(&self.shares)
                        .map(|(k, s)| format!("{k}/{s}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::task::Task;

    fn settings(per_class: usize, factor: usize) -> GenerateSettings {
        GenerateSettings {
            per_class,
            max_attempts_factor: factor,
            ..GenerateSettings::default()
        }
    }

    #[test]
    fn a_kept_item_past_its_quota_is_marked_and_the_rest_count() {
        let mut q = Quota::new(&settings(2, 3), 2, &[]);
        assert_eq!(q.next_round(), Some(vec![2, 2]));
        assert!(q.record(0, "negative", true, 5).is_none());
        assert!(q.record(0, "negative", false, 5).is_none());
        assert!(q.record(0, "negative", true, 5).is_none());
        let over = q.record(0, "negative", true, 5).expect("past the quota");
        assert_eq!(over.stage, QUOTA);
        assert!(!over.pass);
        assert!(over.reason.contains("negative already has 2"));
        assert_eq!(q.kept(), [2, 0]);
        // Class 0 is full; class 1 has tried nothing yet, so it asks for its quota.
        assert_eq!(q.next_round(), Some(vec![0, 2]));
    }

    #[test]
    fn a_class_at_its_cap_is_short_only_when_rounds_were_asked_for() {
        let labels = Task::demo().labels;
        let mut q = Quota::new(&settings(2, 2), 2, &[]);
        for _ in 0..4 {
            q.record(1, "positive", false, 5);
        }
        q.record(0, "negative", true, 5);
        q.record(0, "negative", true, 5);
        assert_eq!(q.next_round(), None);
        assert_eq!(q.short(&labels), [("positive".to_string(), 0)]);
        assert_eq!(q.line(&labels), "negative 2/2, positive 0/2");

        let mut once = Quota::new(&settings(2, 1), 2, &[]);
        once.record(1, "positive", false, 5);
        once.record(1, "positive", false, 5);
        assert!(once.short(&labels).is_empty());
    }

    #[test]
    fn a_quota_smaller_than_the_bins_asked_for_gets_one_bin_an_item() {
        let mut s = settings(2, 3);
        s.length_strata = 3;
        let q = Quota::new(&s, 2, &[4, 6, 10, 12]);
        assert_eq!(q.strata().map(|s| s.bins()), Some(2));
        s.per_class = 1;
        assert!(Quota::new(&s, 2, &[4, 6, 10, 12]).strata().is_none());
        // One round keeps whatever passes: nothing to split.
        s.per_class = 10;
        s.max_attempts_factor = 1;
        assert!(Quota::new(&s, 2, &[4, 6, 10, 12]).strata().is_none());
    }

    #[test]
    fn with_length_strata_each_class_keeps_the_seeds_length_profile() {
        let labels = Task::demo().labels;
        let mut s = settings(4, 3);
        s.length_strata = 2;
        // Seeds of 4, 6, 10 and 12 words: up to 6 words is the short half, from 7 the long one.
        let mut q = Quota::new(&s, 2, &[4, 6, 10, 12]);
        assert_eq!(
            q.strata().map(|s| s.summary()).as_deref(),
            Some("≤ 6 words, ≥ 7 words")
        );
        // Long negatives: two fill the long half, the third is past its share.
        assert!(q.record(0, "negative", true, 20).is_none());
        assert!(q.record(0, "negative", true, 15).is_none());
        let over = q.record(0, "negative", true, 30).expect("its bin is full");
        assert_eq!(over.stage, QUOTA);
        assert!(
            over.reason
                .contains("negative already has its 2 of ≥ 7 words (length bins)"),
            "{}",
            over.reason
        );
        // A short one still has room; a rejected one takes none.
        assert!(q.record(0, "negative", false, 3).is_none());
        assert!(q.record(0, "negative", true, 3).is_none());
        assert_eq!(q.kept(), [3, 0]);
        assert_eq!(
            q.line(&labels),
            "negative 3/4 (1/2 2/2), positive 0/4 (0/2 0/2)"
        );
        // The class lacks one item of 5 attempts, 3 kept: its keep rate asks for two.
        assert_eq!(q.next_round(), Some(vec![2, 4]));
        // Full in every bin, the class's quota says so.
        assert!(q.record(0, "negative", true, 2).is_none());
        let full = q.record(0, "negative", true, 2).expect("the class is full");
        assert!(full.reason.contains("negative already has 4 kept items"));
    }
}
