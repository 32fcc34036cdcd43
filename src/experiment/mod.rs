//! The method's whole protocol without a human in the loop, for one dataset: draw k seeds per
//! class → generate → filter → train LoRA on the seeds alone, on seeds + kept items and on
//! seeds + every generated item (the filter's ablation) → evaluate those and in-context learning
//! on the test file. Filter-kept items stand in for the ones a user would accept.
//!
//! Every step leaves its output, then a marker `done/<step>.json` (written atomically, with its
//! wall time and counts); a step whose marker exists is never run again, so a stopped experiment
//! continues from its last finished step. Markers are the only record of progress: the report is
//! rebuilt from them.

pub mod arm;
pub mod report;
pub mod steps;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use arm::Arm;
pub use steps::{Cancelled, Context, Hooks, pending, reopen_stale_evaluations, run_seed};

use crate::data::import::{Row, SeedRows};
use crate::data::task::Task;
use crate::pipeline::filters::FilterSettings;
use crate::pipeline::generate::GenerateSettings;
use crate::train::trainer::TrainConfig;

/// Everything that decides an experiment's results, saved as `experiment.json`. Resuming with
/// other settings would mix two experiments in one table, so it is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    pub dataset: PathBuf,
    pub test: PathBuf,
    /// Test rows scored (after any limit).
    pub test_rows: usize,
    /// The test rows were carved from the dataset (`test` is where they were written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Carve>,
    /// The task the prompts describe; its seeds are drawn per sampling seed.
    pub task: Task,
    pub seeds_per_class: usize,
    /// Seeds are drawn among rows of at least this many words.
    pub min_words: usize,
    /// Whether seeds may be fragments of longer rows. Specs written before the rule drew from
    /// every row.
    #[serde(default = "any_rows")]
    pub seed_rows: SeedRows,
    /// Generation settings; the sampling seed replaces `sampling.seed`.
    pub generate: GenerateSettings,
    pub filters: FilterSettings,
    /// Training settings; the sampling seed replaces `seed`.
    pub train: TrainConfig,
    pub eval_batch: usize,
    pub model: String,
    /// Unlabelled texts drawn from the dataset (seeds left out) for the annotated arm.
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// An annotated text is kept when its label's probability reaches this.
    #[serde(default = "default_min_confidence")]
    pub annotate_min_confidence: f64,
    /// Sampling temperature of the seed-tuned teacher (the teacher paper's 0.8).
    #[serde(default = "default_teacher_temperature")]
    pub teacher_temperature: f32,
    /// Choose the label-consistency judge by cross-validation on each draw's seeds (otherwise
    /// `filters.judge`).
    #[serde(default)]
    pub judge_select: bool,
    /// Read each LoRA arm as the workbench reads its run (`eval::reading`: half-strength
    /// calibration when it trained on generated examples); false: every arm raw.
    #[serde(default)]
    pub calibrate_extra: bool,
}

impl ExperimentSpec {
    /// Whether the judge may be the seeds' LoRA, so the seeds-only run trains before anything
    /// is judged.
    pub fn judge_may_need_adapter(&self) -> bool {
        self.filters.label_consistency && (self.judge_select || self.filters.judge.needs_adapter())
    }
}

fn default_pool() -> usize {
    200
}

fn default_min_confidence() -> f64 {
    0.6
}

fn default_teacher_temperature() -> f32 {
    0.8
}

pub const SPEC_FILE: &str = "experiment.json";
/// Where `--validation-rows` writes the rows it carved.
pub const VALIDATION_FILE: &str = "validation.jsonl";

/// Validation rows carved from the dataset in place of a test file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carve {
    pub rows: usize,
    pub seed: u64,
    pub min_words: usize,
    #[serde(default = "any_rows")]
    pub rows_drawn: SeedRows,
}

fn any_rows() -> SeedRows {
    SeedRows::Any
}

/// Writes carved validation rows as JSONL (`text`, `label`), readable by `eval --test`.
pub fn write_validation(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut text = String::new();
    for r in rows {
        let line = serde_json::json!({ "text": r.text, "label": r.label });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    crate::data::atomic::write_atomic_bytes(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
pub const DONE_DIR: &str = "done";

/// The folder of one sampling seed's steps.
pub fn seed_dir(out: &Path, seed: u64) -> PathBuf {
    out.join(format!("seed-{seed}"))
}

/// Saves `spec` in `out`, or checks that the one already there is the same.
pub fn claim(out: &Path, spec: &ExperimentSpec) -> anyhow::Result<bool> {
    let path = out.join(SPEC_FILE);
    let ours = serde_json::to_value(spec)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            // Through the struct and back, so settings added since (with their defaults) do
            // not count as differences.
            let theirs: ExperimentSpec = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: not an experiment file: {e}", path.display()))?;
            let theirs = serde_json::to_value(theirs)?;
            let differ = differing_keys(&theirs, &ours);
            anyhow::ensure!(
                differ.is_empty(),
                "{} holds an experiment with other settings ({}); resume it with the same \
                 options or choose another --out",
                out.display(),
                differ.join(", ")
            );
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", out.display()))?;
            let text = serde_json::to_string_pretty(&ours)? + "\n";
            crate::data::atomic::write_atomic_bytes(&path, text.as_bytes())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            Ok(false)
        }
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

/// Dotted paths of the leaves where two JSON values differ.
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let (va, vb) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    differing_keys(va, vb).into_iter().map(move |sub| {
                        if sub.is_empty() {
                            k.clone()
                        } else {
                            format!("{k}.{sub}")
                        }
                    })
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![String::new()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_are_named_by_their_path() {
        let a = json!({"train": {"lr": 0.001, "epochs": 20}, "model": "m", "seeds_per_class": 4});
        let b = json!({"train": {"lr": 0.0002, "epochs": 20}, "model": "m", "extra": 1});
        assert_eq!(
            differing_keys(&a, &b),
            vec!["extra", "seeds_per_class", "train.lr"]
        );
        assert!(differing_keys(&a, &a).is_empty());
    }
}
