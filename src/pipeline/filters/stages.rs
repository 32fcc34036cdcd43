//! The filter stages. Each adds a verdict — pass or reject, a reason, scores — and none deletes
//! anything. The cheap stages (malformed, exact and near duplicates) run as soon as an item
//! exists; label consistency needs the in-context classifier and runs in small batches as items
//! stream in.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::minhash::NearDupIndex;
use super::text::{normalize, words};
use crate::data::item::Verdict;
use crate::data::state::ItemState;
use crate::data::task::Task;
use crate::pipeline::classify::{ClassifierOptions, Prediction, interleave_by_label};

pub const MALFORMED: &str = "malformed";
pub const EXACT_DUP: &str = "exact_dup";
pub const NEAR_DUP: &str = "near_dup";
pub const LABEL_CONSISTENCY: &str = "label_consistency";
/// The writer's own mean log-probability per token outside the band the settings ask for.
pub const LIKELIHOOD: &str = "likelihood";
/// Kept by every filter, but its class already has the items asked for (balance).
pub const QUOTA: &str = "quota";

/// Every stage's name, in the order they run.
pub const STAGES: [&str; 5] = [
    MALFORMED,
    EXACT_DUP,
    NEAR_DUP,
    LIKELIHOOD,
    LABEL_CONSISTENCY,
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterSettings {
    pub min_words: usize,
    pub max_words: usize,
    /// Share of letters among non-space characters below which a text is "mostly not text".
    pub min_letter_ratio: f64,
    /// Jaccard similarity of word shingles at or above which two texts are near duplicates.
    pub near_dup_threshold: f64,
    /// Words per shingle.
    pub shingle_words: usize,
    /// Run the label-consistency stage (needs the model).
    pub label_consistency: bool,
    /// The classifier's probability of the intended label must beat the runner-up by this much.
    pub min_margin: f64,
    /// Contextual calibration of the label-consistency classifier (prompted judges only).
    pub calibrate: bool,
    /// Which classifier checks the labels.
    pub judge: JudgeKind,
    /// Choose the judge by cross-validation on the seeds when a job starts (`judge` is then
    /// only the fallback).
    pub select_judge: bool,
    /// Reject a generated item whose writer gave its tokens a mean log-probability below this
    /// (garbled text: SuperGen's likelihood filter). Off when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_logprob: Option<f64>,
    /// Reject one above this (text the writer found too easy: near copies of the seeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_logprob: Option<f64>,
    /// An OpenAI-compatible server that judges instead of the model here, from its
    /// log-probabilities of the label words after the prompt of `judge` (icl or zero-shot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_judge: Option<Box<crate::llm::remote::RemoteSettings>>,
}

/// The classifier of the label-consistency stage (and of annotation). The workbench and the
/// experiment choose among them by cross-validation on the seeds ([`super::selection`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JudgeKind {
    /// The seeds as demonstrations, labels alternating (the method's own judge).
    #[default]
    Icl,
    /// Only the input in the prompt.
    ZeroShot,
    /// LoRA trained on the seeds alone, zero-shot prompt (the caller supplies the adapted
    /// model).
    SeedsLora,
}

impl JudgeKind {
    pub const ALL: [JudgeKind; 3] = [JudgeKind::Icl, JudgeKind::ZeroShot, JudgeKind::SeedsLora];

    pub fn name(self) -> &'static str {
        match self {
            JudgeKind::Icl => "icl",
            JudgeKind::ZeroShot => "zero-shot",
            JudgeKind::SeedsLora => "seeds-lora",
        }
    }

    /// Whether the judge reads with an adapter trained on the seeds.
    pub fn needs_adapter(self) -> bool {
        self == JudgeKind::SeedsLora
    }
}

impl std::str::FromStr for JudgeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        JudgeKind::ALL
            .into_iter()
            .find(|j| j.name() == s)
            .ok_or_else(|| format!("unknown judge '{s}' (icl, zero-shot or seeds-lora)"))
    }
}

impl Default for FilterSettings {
    fn default() -> Self {
        FilterSettings {
            min_words: 3,
            max_words: 80,
            min_letter_ratio: 0.6,
            near_dup_threshold: 0.7,
            shingle_words: 2,
            label_consistency: true,
            min_margin: 0.0,
            calibrate: true,
            judge: JudgeKind::default(),
            select_judge: false,
            min_logprob: None,
            max_logprob: None,
            remote_judge: None,
        }
    }
}

impl FilterSettings {
    /// Whether the likelihood stage runs (a floor or a ceiling is set).
    pub fn likelihood_band(&self) -> bool {
        self.min_logprob.is_some() || self.max_logprob.is_some()
    }

    /// The band as the report and the screens say it: "−3.30 … −1.60 per token".
    pub fn likelihood_said(&self) -> Option<String> {
        let end = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.2}"));
        self.likelihood_band().then(|| {
            format!(
                "{} … {} per token",
                end(self.min_logprob),
                end(self.max_logprob)
            )
        })
    }

    /// The settings' own consistency: a band whose floor is not below its ceiling keeps
    /// nothing.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("floor", self.min_logprob), ("ceiling", self.max_logprob)] {
            if let Some(v) = v
                && !(v.is_finite() && v <= 0.0)
            {
                return Err(format!(
                    "log-probability {name}: a number ≤ 0 (a mean log-probability per token), \
                     not {v}"
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_logprob, self.max_logprob)
            && lo >= hi
        {
            return Err(format!(
                "log-probability floor {lo} is not below the ceiling {hi}: nothing would be kept"
            ));
        }
        Ok(())
    }
}

/// The in-context classifier the label-consistency stage uses: the seeds as demonstrations,
/// alternating between labels (with all of one class last, SmolLM2-135M calls most SST-2 inputs
/// that class: 68% accuracy on the first 300 dev rows, against 85% alternating), calibrated unless
/// the settings say otherwise.
pub fn consistency_classifier(task: &Task, settings: &FilterSettings) -> ClassifierOptions {
    judge_options(task, settings.judge, settings.calibrate)
}

/// The classifier options of a judge; a LoRA judge reads the zero-shot prompt it was trained
/// on, uncalibrated (its scores are already fitted to the seeds).
pub fn judge_options(task: &Task, judge: JudgeKind, calibrate: bool) -> ClassifierOptions {
    let demos = match judge {
        JudgeKind::Icl => interleave_by_label(&task.seeds, &task.labels),
        JudgeKind::ZeroShot | JudgeKind::SeedsLora => Vec::new(),
    };
    ClassifierOptions {
        demos,
        calibrate: calibrate && judge != JudgeKind::SeedsLora,
        batch: 8,
        ..ClassifierOptions::default()
    }
}

/// Strings that only appear when the model copied the prompt's scaffolding.
const ARTIFACTS: [&str; 7] = [
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "{{",
    "}}",
    "{%",
    "%}",
];

/// The stages that run as soon as an item exists, without the model.
pub const CHEAP_STAGES: [&str; 3] = [MALFORMED, EXACT_DUP, NEAR_DUP];

/// Whether an item's verdicts pass every cheap stage (one not judged yet passes): what puts it
/// in the duplicate stages' reference set for the items written after it.
pub fn passed_cheap(verdicts: &[Verdict]) -> bool {
    verdicts
        .iter()
        .filter(|v| CHEAP_STAGES.contains(&v.stage.as_str()))
        .all(|v| v.pass)
}

/// The duplicate indexes of one reference set — "a duplicate of what?" has one answer, used by
/// generation, recheck and batch judging alike: **the seeds and every item written before it
/// that passed the cheap stages**, whatever the label check made of them. Items are compared
/// by their current text. So an item edited and judged again gets the verdict it would have
/// got had it been written that way, and an item is never a duplicate of one written after it.
pub struct Filters {
    settings: FilterSettings,
    field_names: Vec<String>,
    exact: HashMap<String, String>,
    near: NearDupIndex,
}

impl Filters {
    /// Filters for `task`, with its seeds already indexed (named `seed N`).
    pub fn new(task: &Task, settings: FilterSettings) -> Self {
        let mut f = Filters {
            near: NearDupIndex::new(settings.shingle_words.max(1)),
            settings,
            field_names: vec![
                task.input_field.to_lowercase(),
                task.label_field.to_lowercase(),
            ],
            exact: HashMap::new(),
        };
        for (i, s) in task.seeds.iter().enumerate() {
            f.remember(&format!("seed {}", i + 1), &s.text);
        }
        f
    }

    /// Filters holding the reference set of an item written after `earlier` (workspace items,
    /// in the order they were written): the seeds and those of `earlier` that passed the cheap
    /// stages.
    pub fn after(task: &Task, settings: FilterSettings, earlier: &[ItemState]) -> Self {
        let mut f = Filters::new(task, settings);
        for it in earlier.iter().filter(|it| passed_cheap(it.verdicts())) {
            f.remember(it.id().as_str(), it.text());
        }
        f
    }

    pub fn settings(&self) -> &FilterSettings {
        &self.settings
    }

    /// Adds a kept text to the duplicate indexes.
    pub fn remember(&mut self, name: &str, text: &str) {
        let n = normalize(text);
        if !n.is_empty() {
            self.exact.entry(n).or_insert_with(|| name.to_string());
            self.near.insert(name, text);
        }
    }

    /// Malformed: empty, too short or long, prompt scaffolding, mostly not text, or an
    /// extraction problem the post-processor already found.
    pub fn malformed(&self, text: &str, extraction_problem: Option<&str>) -> Verdict {
        let n_words = words(text).len();
        let non_space: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
        let letters = non_space.iter().filter(|c| c.is_alphabetic()).count();
        let ratio = if non_space.is_empty() {
            0.0
        } else {
            letters as f64 / non_space.len() as f64
        };
        let lower = text.to_lowercase();
        let echoed_field = self
            .field_names
            .iter()
            .find(|f| !f.is_empty() && lower.contains(&format!("{f}:")));
        let reason = if let Some(p) = extraction_problem {
            Some(p.to_string())
        } else if text.trim().is_empty() {
            Some("empty".to_string())
        } else if let Some(a) = ARTIFACTS.iter().find(|a| text.contains(*a)) {
            Some(format!("contains template text {a:?}"))
        } else if let Some(f) = echoed_field {
            Some(format!("contains the prompt field \"{f}:\""))
        } else if n_words < self.settings.min_words {
            Some(format!(
                "too short: {n_words} words (min {})",
                self.settings.min_words
            ))
        } else if n_words > self.settings.max_words {
            Some(format!(
                "too long: {n_words} words (max {})",
                self.settings.max_words
            ))
        } else if ratio < self.settings.min_letter_ratio {
            Some(format!("mostly not text: {:.0}% letters", ratio * 100.0))
        } else {
            None
        };
        let v = match reason {
            Some(r) => Verdict::fail(MALFORMED, r),
            None => Verdict::pass(MALFORMED),
        };
        v.with_score("words", n_words as f64)
            .with_score("letter_ratio", ratio)
    }

    /// Exact duplicate (after normalising case, spacing and punctuation) of a seed or an
    /// earlier item.
    pub fn exact_dup(&self, text: &str) -> Verdict {
        match self.exact.get(&normalize(text)) {
            Some(other) => Verdict::fail(EXACT_DUP, format!("same text as {other}")),
            None => Verdict::pass(EXACT_DUP),
        }
    }

    /// Near duplicate of a seed or an earlier item.
    pub fn near_dup(&self, text: &str) -> Verdict {
        let t = self.settings.near_dup_threshold;
        match self.near.most_similar(text, t) {
            Some(m) => Verdict::fail(
                NEAR_DUP,
                format!(
                    "{:.0}% similar to {} (threshold {:.0}%)",
                    m.similarity * 100.0,
                    m.name,
                    t * 100.0
                ),
            )
            .with_score("similarity", m.similarity),
            None => Verdict::pass(NEAR_DUP),
        }
    }

    /// Runs the cheap stages on a new item named `name`; when it passes them all it joins the
    /// duplicate indexes. Returns one verdict per stage.
    pub fn cheap(
        &mut self,
        name: &str,
        text: &str,
        extraction_problem: Option<&str>,
    ) -> Vec<Verdict> {
        let out = vec![
            self.malformed(text, extraction_problem),
            self.exact_dup(text),
            self.near_dup(text),
        ];
        if passed_cheap(&out) {
            self.remember(name, text);
        }
        out
    }

    /// The writer's mean log-probability per token inside the band of the settings; `None`
    /// when no band is set (the stage does not run).
    pub fn likelihood(&self, mean_logprob: f64) -> Option<Verdict> {
        likelihood(&self.settings, mean_logprob)
    }

    /// Label consistency: see [`label_consistency`].
    pub fn label_consistency(&self, intended: &str, p: &Prediction) -> Verdict {
        label_consistency(self.settings.min_margin, intended, p)
    }
}

/// See [`Filters::likelihood`].
pub fn likelihood(settings: &FilterSettings, mean_logprob: f64) -> Option<Verdict> {
    if !settings.likelihood_band() {
        return None;
    }
    let reason = match (settings.min_logprob, settings.max_logprob) {
        (Some(lo), _) if mean_logprob < lo => Some(format!(
            "the writer's log-probability {mean_logprob:.2} per token is below the floor {lo:.2}"
        )),
        (_, Some(hi)) if mean_logprob > hi => Some(format!(
            "the writer's log-probability {mean_logprob:.2} per token is above the ceiling {hi:.2}"
        )),
        _ => None,
    };
    let v = match reason {
        Some(r) => Verdict::fail(LIKELIHOOD, r),
        None => Verdict::pass(LIKELIHOOD),
    };
    Some(v.with_score("mean_logprob", mean_logprob))
}

/// Label consistency: the classifier must predict the label the item was made for, with at
/// least `min_margin` of probability over the runner-up.
pub fn label_consistency(min_margin: f64, intended: &str, p: &Prediction) -> Verdict {
    let p_intended = p.prob_of(intended).unwrap_or(0.0);
    let best_other = p
        .probs
        .iter()
        .filter(|(l, _)| l != intended)
        .map(|(_, q)| *q)
        .fold(0.0, f64::max);
    let margin = p_intended - best_other;
    let mut v = if p.label != intended {
        Verdict::fail(
            LABEL_CONSISTENCY,
            format!(
                "the model reads it as {} ({:.0}%), not {intended} ({:.0}%)",
                p.label,
                p.prob_of(&p.label).unwrap_or(0.0) * 100.0,
                p_intended * 100.0
            ),
        )
    } else if margin < min_margin {
        Verdict::fail(
            LABEL_CONSISTENCY,
            format!("margin {margin:.2} below {min_margin:.2}"),
        )
    } else {
        Verdict::pass(LABEL_CONSISTENCY)
    };
    v = v
        .with_score("p_intended", p_intended)
        .with_score("margin", margin);
    v.probs = Some(p.probs.clone());
    v.judge = p.judge.clone();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::task::Example;

    fn filters() -> Filters {
        let mut t = Task::demo();
        t.seeds = vec![Example {
            text: "The plot wanders for two hours and never finds anything worth saying.".into(),
            label: "negative".into(),
        }];
        Filters::new(&t, FilterSettings::default())
    }

    fn reason(v: &Verdict) -> &str {
        assert!(!v.pass, "expected a rejection");
        &v.reason
    }

    #[test]
    fn malformed_cases() {
        let f = filters();
        assert!(
            f.malformed("A lovely little film about friendship.", None)
                .pass
        );
        assert_eq!(reason(&f.malformed("   ", None)), "empty");
        assert!(reason(&f.malformed("Great film", None)).starts_with("too short: 2 words"));
        let long = "word ".repeat(81);
        assert!(reason(&f.malformed(&long, None)).starts_with("too long: 81 words"));
        assert!(reason(&f.malformed("Loved it <|im_end|> a lot", None)).contains("<|im_end|>"));
        assert!(
            reason(&f.malformed("Great film. Sentiment: positive", None)).contains("sentiment:")
        );
        assert!(
            reason(&f.malformed("12/10 10/10 9.5/10 !!!", None)).starts_with("mostly not text")
        );
        assert_eq!(
            reason(&f.malformed("x y z", Some("empty output"))),
            "empty output"
        );
        let v = f.malformed("One two three four.", None);
        assert_eq!(v.scores["words"], 4.0);
    }

    #[test]
    fn exact_duplicates_of_seeds_and_earlier_items() {
        let mut f = filters();
        assert_eq!(
            reason(&f.exact_dup(
                "the plot wanders for two hours, and never finds ANYTHING worth saying"
            )),
            "same text as seed 1"
        );
        let first = f.cheap(
            "g-1",
            "A bright and funny comedy for the whole family.",
            None,
        );
        assert!(first.iter().all(|v| v.pass));
        let again = f.cheap(
            "g-2",
            "a bright and funny comedy for the whole family",
            None,
        );
        assert_eq!(reason(&again[1]), "same text as g-1");
    }

    #[test]
    fn near_duplicates_report_similarity() {
        let mut f = filters();
        let v = f.near_dup("The plot wanders for two hours and never finds anything worth seeing.");
        assert!(reason(&v).contains("similar to seed 1"));
        assert!((v.scores["similarity"] - 10.0 / 12.0).abs() < 1e-9);
        assert!(
            f.near_dup("An entirely new story about brave sailors lost at sea.")
                .pass
        );
        // A rejected item does not join the index: its near copy is judged against the rest.
        let bad = f.cheap("g-9", "ok", None);
        assert!(!bad[0].pass);
        assert!(f.exact_dup("ok").pass);
    }

    #[test]
    fn the_likelihood_band_rejects_below_its_floor_and_above_its_ceiling() {
        assert!(filters().likelihood(-9.0).is_none(), "no band, no stage");
        let band = |lo, hi| {
            Filters::new(
                &Task::demo(),
                FilterSettings {
                    min_logprob: lo,
                    max_logprob: hi,
                    ..Default::default()
                },
            )
        };
        let f = band(Some(-3.0), Some(-1.5));
        let low = f.likelihood(-3.2).unwrap();
        assert_eq!(low.stage, LIKELIHOOD);
        assert!(reason(&low).contains("-3.20 per token is below the floor -3.00"));
        assert_eq!(low.scores["mean_logprob"], -3.2);
        assert!(reason(&f.likelihood(-1.2).unwrap()).contains("above the ceiling -1.50"));
        for inside in [-3.0, -2.2, -1.5] {
            assert!(f.likelihood(inside).unwrap().pass, "{inside}");
        }
        // One end alone.
        assert!(band(Some(-3.0), None).likelihood(-0.1).unwrap().pass);
        assert!(!band(None, Some(-1.5)).likelihood(-0.1).unwrap().pass);
        assert!(band(None, Some(-1.5)).likelihood(-7.0).unwrap().pass);
    }

    #[test]
    fn a_band_that_keeps_nothing_or_is_not_a_log_probability_is_refused() {
        let s = |lo, hi| FilterSettings {
            min_logprob: lo,
            max_logprob: hi,
            ..Default::default()
        };
        assert!(s(None, None).validate().is_ok());
        assert!(s(Some(-3.4), Some(-1.6)).validate().is_ok());
        assert!(
            s(Some(-1.6), Some(-3.4))
                .validate()
                .unwrap_err()
                .contains("not below")
        );
        assert!(s(Some(-2.0), Some(-2.0)).validate().is_err());
        assert!(s(Some(0.5), None).validate().unwrap_err().contains("≤ 0"));
        assert!(s(None, Some(f64::NAN)).validate().is_err());
        assert_eq!(
            s(Some(-3.4), None).likelihood_said().as_deref(),
            Some("-3.40 … – per token")
        );
        assert_eq!(s(None, None).likelihood_said(), None);
    }

    #[test]
    fn label_consistency_with_margin() {
        let f = Filters::new(
            &Task::demo(),
            FilterSettings {
                min_margin: 0.3,
                ..Default::default()
            },
        );
        let pred = |neg: f64| Prediction {
            label: if neg > 0.5 { "negative" } else { "positive" }.into(),
            probs: vec![("negative".into(), neg), ("positive".into(), 1.0 - neg)],
            log_likelihoods: vec![neg.ln(), (1.0 - neg).ln()],
            judge: None,
        };
        let v = f.label_consistency("negative", &pred(0.9));
        assert!(v.pass);
        assert!((v.scores["margin"] - 0.8).abs() < 1e-9);
        assert!(v.probs.is_some());
        let v = f.label_consistency("negative", &pred(0.6));
        assert!(reason(&v).starts_with("margin 0.20 below 0.30"));
        let v = f.label_consistency("negative", &pred(0.2));
        assert!(reason(&v).contains("reads it as positive (80%)"));
    }
}
