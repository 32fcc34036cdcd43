//! The annotate mode: the model labels unlabelled texts the user already has, instead of writing
//! new ones. Each text gets the classifier's label and distribution; the cheap filters (too
//! short, duplicates of seeds or of each other) and a confidence threshold judge it, so
//! annotated items enter the same review as generated ones.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::classify::Prediction;
use super::filters::Filters;
use crate::data::item::{Item, Source, Verdict};
use crate::data::state::ItemState;

/// The stage name of the confidence threshold.
pub const CONFIDENCE: &str = "confidence";

/// Argmax labels by default: the teacher paper annotates at temperature 0.1, which for a label
/// choice is the argmax almost always.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotated {
    pub text: String,
    pub label: String,
    /// The probability of `label`.
    pub confidence: f64,
    /// Every label's probability, in task order.
    pub probs: Vec<(String, f64)>,
    pub verdicts: Vec<Verdict>,
    pub kept: bool,
    /// The server that labelled it (`{"endpoint", "model"}`); absent when the model here did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<serde_json::Value>,
}

impl Annotated {
    /// The workspace item: the text, the model's label, its distribution, and where the text
    /// came from (`file:line`). Its verdicts are journalled after it.
    pub fn to_item(&self, input: String) -> Item {
        let mut item = Item::new(&self.text, &self.label, Source::Annotated);
        item.meta
            .insert("confidence".into(), json!(self.confidence));
        item.meta.insert("probs".into(), json!(self.probs));
        item.meta.insert("input".into(), json!(input));
        if let Some(j) = &self.judge {
            item.meta.insert("judge".into(), j.clone());
        }
        item
    }
}

impl Annotated {
    /// An annotated item of a workspace (as the annotate job journalled it, or since edited)
    /// read back: its text and label now, the distribution and server it was labelled with,
    /// its verdicts.
    pub fn of_item(it: &ItemState) -> Annotated {
        let meta = &it.original().meta;
        let verdicts = it.verdicts().to_vec();
        Annotated {
            text: it.text().to_string(),
            label: it.label().to_string(),
            confidence: meta
                .get("confidence")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0),
            probs: meta
                .get("probs")
                .and_then(|p| serde_json::from_value(p.clone()).ok())
                .unwrap_or_default(),
            kept: super::filters::judge::kept(&verdicts),
            verdicts,
            judge: meta.get("judge").cloned(),
        }
    }
}

/// The confidence stage: the predicted label's probability must reach `min`.
pub fn confidence_verdict(min: f64, p: &Prediction) -> Verdict {
    let c = p.prob_of(&p.label).unwrap_or(0.0);
    let v = if c >= min {
        Verdict::pass(CONFIDENCE)
    } else {
        Verdict::fail(
            CONFIDENCE,
            // One decimal: 59.96% must not read as "60% … below the 60% asked for".
            format!(
                "the model is {:.1}% sure it is {}, below the {:.1}% asked for",
                c * 100.0,
                p.label,
                min * 100.0
            ),
        )
    };
    // The distribution travels with the verdict, so review shows it as it does the label check's.
    let mut v = v.with_score("confidence", c);
    v.probs = Some(p.probs.clone());
    v.judge = p.judge.clone();
    v
}

/// One labelled text judged: the cheap filters (`name` is how a later duplicate refers to it),
/// then the confidence of the label the model gave.
pub fn judge(
    cheap: &mut Filters,
    name: &str,
    text: &str,
    p: Prediction,
    min_confidence: f64,
) -> Annotated {
    let mut verdicts = cheap.cheap(name, text, None);
    verdicts.push(confidence_verdict(min_confidence, &p));
    let kept = verdicts.iter().all(|v| v.pass);
    Annotated {
        text: text.to_string(),
        judge: p.judge.clone(),
        confidence: p.prob_of(&p.label).unwrap_or(0.0),
        label: p.label,
        probs: p.probs,
        verdicts,
        kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(probs: &[(&str, f64)]) -> Prediction {
        let best = probs
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, _)| l.to_string())
            .unwrap_or_default();
        Prediction {
            label: best,
            probs: probs.iter().map(|(l, p)| (l.to_string(), *p)).collect(),
            log_likelihoods: probs.iter().map(|(_, p)| p.ln()).collect(),
            judge: None,
        }
    }

    #[test]
    fn confidence_at_the_threshold_passes_and_below_it_fails_with_the_figures() {
        let p = pred(&[("negative", 0.3), ("positive", 0.7)]);
        assert!(confidence_verdict(0.7, &p).pass);
        let v = confidence_verdict(0.75, &p);
        assert!(!v.pass);
        assert!(
            v.reason.contains("70.0%") && v.reason.contains("75.0%"),
            "{}",
            v.reason
        );
        assert_eq!(v.scores["confidence"], 0.7);
        assert_eq!(v.probs, Some(p.probs.clone()));
    }
}
