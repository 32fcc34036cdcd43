//! Generation until each class has its quota of kept items: the tally of what each class has
//! tried and kept, which asks for the next round and marks a kept item past its class's quota
//! (a round may overshoot), so the kept set stays balanced. One tally for the workbench's
//! generation job and the experiment, so both keep the same items.

use super::filters::stages::QUOTA;
use super::generate::GenerateSettings;
use crate::data::item::Verdict;
use crate::data::task::LabelDef;

#[derive(Debug, Clone)]
pub struct Quota {
    per_class: usize,
    cap: usize,
    settings: GenerateSettings,
    /// Per class, in the task's label order.
    kept: Vec<usize>,
    attempts: Vec<usize>,
}

impl Quota {
    pub fn new(settings: &GenerateSettings, classes: usize) -> Quota {
        Quota {
            per_class: settings.per_class,
            cap: settings.attempt_cap(),
            // Only the quota and the cap decide the rounds.
            settings: GenerateSettings {
                per_class: settings.per_class,
                max_attempts_factor: settings.max_attempts_factor,
                ..GenerateSettings::default()
            },
            kept: vec![0; classes],
            attempts: vec![0; classes],
        }
    }

    /// Requests per class for the next round; `None` when every class is full or at its cap.
    pub fn next_round(&self) -> Option<Vec<usize>> {
        self.settings.next_round(&self.kept, &self.attempts)
    }

    /// Counts one judged item of class `class` (`kept`: every filter passed it). A kept item
    /// whose class already has its quota gets the quota's failing verdict, returned to be
    /// recorded with the item's others; it then counts as rejected.
    pub fn record(&mut self, class: usize, label: &str, kept: bool) -> Option<Verdict> {
        let (Some(a), Some(k)) = (self.attempts.get_mut(class), self.kept.get_mut(class)) else {
            return None;
        };
        *a += 1;
        if !kept {
            return None;
        }
        if *k < self.per_class {
            *k += 1;
            return None;
        }
        Some(Verdict::fail(
            QUOTA,
            format!("{label} already has {} kept items", self.per_class),
        ))
    }

    /// What each class has kept so far.
    pub fn kept(&self) -> &[usize] {
        &self.kept
    }

    /// The classes whose attempt cap was reached before their quota, with what they kept.
    /// Without quota rounds (the cap is the quota) nothing is cut short.
    pub fn short(&self, labels: &[LabelDef]) -> Vec<(String, usize)> {
        labels
            .iter()
            .zip(&self.kept)
            .filter(|(_, n)| self.cap > self.per_class && **n < self.per_class)
            .map(|(l, n)| (l.name.clone(), *n))
            .collect()
    }

    /// One line for the log: each class's kept items against its quota.
    pub fn line(&self, labels: &[LabelDef]) -> String {
        labels
            .iter()
            .zip(&self.kept)
            .map(|(l, n)| format!("{} {n}/{}", l.name, self.per_class))
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
        let mut q = Quota::new(&settings(2, 3), 2);
        assert_eq!(q.next_round(), Some(vec![2, 2]));
        assert!(q.record(0, "negative", true).is_none());
        assert!(q.record(0, "negative", false).is_none());
        assert!(q.record(0, "negative", true).is_none());
        let over = q.record(0, "negative", true).expect("past the quota");
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
        let mut q = Quota::new(&settings(2, 2), 2);
        for _ in 0..4 {
            q.record(1, "positive", false);
        }
        q.record(0, "negative", true);
        q.record(0, "negative", true);
        assert_eq!(q.next_round(), None);
        assert_eq!(q.short(&labels), [("positive".to_string(), 0)]);
        assert_eq!(q.line(&labels), "negative 2/2, positive 0/2");

        let mut once = Quota::new(&settings(2, 1), 2);
        once.record(1, "positive", false);
        once.record(1, "positive", false);
        assert!(once.short(&labels).is_empty());
    }
}
