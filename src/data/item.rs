//! The candidate examples that flow through the pipeline, and the filters' verdicts on them.
//! These types are the contract between the generation engine, the filters, the review screens
//! and the trainer; they are stored verbatim in the journal, so their serde shape is the file
//! format (add fields only with `#[serde(default)]`).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Stable identifier of an item, unique in its workspace (`g-000042` for generated items,
/// `a-000007` for annotated ones). The workspace assigns it when the item is added.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub String);

impl ItemId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ItemId {
    fn from(s: &str) -> Self {
        ItemId(s.to_string())
    }
}

impl Borrow<str> for ItemId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Where an example came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A real example given by the user (kept in `seeds.jsonl`, never in the journal).
    Seed,
    /// Written by the model for a label (the paper's "generate" mode).
    Generated,
    /// An unlabelled input labelled by the model (the "annotate" mode).
    Annotated,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Seed => "seed",
            Source::Generated => "generated",
            Source::Annotated => "annotated",
        }
    }

    /// Prefix of the ids the workspace gives items of this source.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Source::Seed => "s",
            Source::Generated => "g",
            Source::Annotated => "a",
        }
    }
}

/// A candidate example entering the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Assigned by the workspace in [`crate::data::Workspace::add_item`]; whatever the caller
    /// puts here is replaced.
    pub id: ItemId,
    pub text: String,
    /// The class the item was generated for (or annotated as).
    pub label: String,
    pub source: Source,
    /// Raw model output before post-processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The exact prompt sent (or a prompt id and template name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Sampling settings, token counts, timings, batch id…: free-form.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, Value>,
}

impl Item {
    /// A new item with no id yet (the workspace assigns one), no raw output, prompt or meta.
    pub fn new(text: impl Into<String>, label: impl Into<String>, source: Source) -> Item {
        Item {
            id: ItemId(String::new()),
            text: text.into(),
            label: label.into(),
            source,
            raw: None,
            prompt: None,
            meta: serde_json::Map::new(),
        }
    }

    /// The attribute values its request drew (`meta.attributes`), as "genre: horror, …".
    pub fn attributes_said(&self) -> Option<String> {
        let map = self.meta.get("attributes")?.as_object()?;
        let said: Vec<String> = map
            .iter()
            .map(|(name, v)| match v.as_str() {
                Some(value) => format!("{name}: {value}"),
                None => format!("{name}: {v}"),
            })
            .collect();
        (!said.is_empty()).then(|| said.join(", "))
    }

    /// The writer's mean log-probability per token of what it wrote (`meta.mean_logprob`);
    /// none for a server's writing, a hand-written or an annotated item.
    pub fn mean_logprob(&self) -> Option<f64> {
        self.meta.get("mean_logprob")?.as_f64()
    }
}

/// One filter's judgement of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The filter: `malformed`, `exact_dup`, `near_dup`, `label_consistency`, `confidence`…
    pub stage: String,
    /// Whether the item survives this filter.
    pub pass: bool,
    /// Human-readable why, shown on the rejected screen (may be empty for a pass).
    #[serde(default)]
    pub reason: String,
    /// Named scores (similarity, probability…). Must be finite: JSON has no NaN.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scores: BTreeMap<String, f64>,
    /// Optional class distribution from a classifier stage, `[(label, p)]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probs: Option<Vec<(String, f64)>>,
    /// The server whose classifier gave this verdict (`{"endpoint", "model"}`); absent when
    /// the model here did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<serde_json::Value>,
}

impl Verdict {
    pub fn pass(stage: impl Into<String>) -> Verdict {
        Verdict {
            stage: stage.into(),
            pass: true,
            reason: String::new(),
            scores: BTreeMap::new(),
            probs: None,
            judge: None,
        }
    }

    pub fn fail(stage: impl Into<String>, reason: impl Into<String>) -> Verdict {
        Verdict {
            stage: stage.into(),
            pass: false,
            reason: reason.into(),
            scores: BTreeMap::new(),
            probs: None,
            judge: None,
        }
    }

    pub fn with_score(mut self, name: impl Into<String>, value: f64) -> Verdict {
        self.scores.insert(name.into(), value);
        self
    }

    /// The first score or probability that JSON cannot hold, if any.
    pub(crate) fn non_finite(&self) -> Option<String> {
        self.scores
            .iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(k, v)| format!("score `{k}` is {v}"))
            .or_else(|| {
                self.probs
                    .iter()
                    .flatten()
                    .find(|(_, p)| !p.is_finite())
                    .map(|(l, p)| format!("probability of `{l}` is {p}"))
            })
    }
}
