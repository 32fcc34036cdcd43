//! What the filters did, per class and per reason, and how diverse the kept set is compared
//! with the seeds.

use std::collections::BTreeMap;

use serde::Serialize;

use super::diversity::{Diversity, diversity};
use crate::data::item::Verdict;

/// One item as the statistics see it.
pub struct Judged<'a> {
    pub label: &'a str,
    pub text: &'a str,
    pub verdicts: &'a [Verdict],
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClassCounts {
    pub kept: usize,
    pub rejected: usize,
    /// Stage of the first failed verdict → items it rejected.
    pub by_stage: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FilterStats {
    pub per_class: BTreeMap<String, ClassCounts>,
    pub kept: usize,
    pub rejected: usize,
    pub by_stage: BTreeMap<String, usize>,
    pub kept_diversity: Diversity,
    pub seed_diversity: Diversity,
}

/// The stage that rejected an item: its first failed verdict in stage order.
pub fn rejecting_stage(verdicts: &[Verdict]) -> Option<&str> {
    super::stages::STAGES
        .iter()
        .find(|s| verdicts.iter().any(|v| v.stage == **s && !v.pass))
        .copied()
        .or_else(|| verdicts.iter().find(|v| !v.pass).map(|v| v.stage.as_str()))
}

pub fn compute(items: &[Judged], seeds: &[&str]) -> FilterStats {
    let mut per_class: BTreeMap<String, ClassCounts> = BTreeMap::new();
    let mut by_stage = BTreeMap::new();
    let mut kept_texts = Vec::new();
    for it in items {
        let c = per_class.entry(it.label.to_string()).or_default();
        match rejecting_stage(it.verdicts) {
            Some(stage) => {
                c.rejected += 1;
                *c.by_stage.entry(stage.to_string()).or_insert(0) += 1;
                *by_stage.entry(stage.to_string()).or_insert(0) += 1;
            }
            None => {
                c.kept += 1;
                kept_texts.push(it.text);
            }
        }
    }
    let kept = kept_texts.len();
    FilterStats {
        kept,
        rejected: items.len() - kept,
        per_class,
        by_stage,
        kept_diversity: diversity(&kept_texts),
        seed_diversity: diversity(seeds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_class_and_first_failing_stage() {
        let pass = |s: &str| Verdict::pass(s);
        let fail = |s: &str| Verdict::fail(s, "x");
        let a = vec![
            pass("malformed"),
            pass("exact_dup"),
            pass("near_dup"),
            pass("label_consistency"),
        ];
        let b = vec![pass("malformed"), fail("exact_dup"), fail("near_dup")];
        let c = vec![
            pass("malformed"),
            pass("exact_dup"),
            pass("near_dup"),
            fail("label_consistency"),
        ];
        let items = vec![
            Judged {
                label: "pos",
                text: "good film indeed",
                verdicts: &a,
            },
            Judged {
                label: "pos",
                text: "good film indeed",
                verdicts: &b,
            },
            Judged {
                label: "neg",
                text: "bad film",
                verdicts: &c,
            },
        ];
        let s = compute(&items, &["a b c"]);
        assert_eq!((s.kept, s.rejected), (1, 2));
        assert_eq!(s.by_stage.get("exact_dup"), Some(&1));
        assert_eq!(s.by_stage.get("near_dup"), None);
        assert_eq!(
            s.per_class["neg"].by_stage.get("label_consistency"),
            Some(&1)
        );
        assert_eq!(s.kept_diversity.texts, 1);
        assert_eq!(s.seed_diversity.texts, 1);
    }
}
