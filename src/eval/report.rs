//! An evaluation's result as saved in a run folder (`eval.json`), and the side-by-side table of
//! several runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::Metrics;

pub const EVAL_FILE: &str = "eval.json";
/// Every test row's prediction, beside `eval.json`: what a user reads to see what the
/// classifier got wrong, and what an analysis of other readings starts from.
pub const PREDICTIONS_FILE: &str = "predictions.jsonl";

/// One test row as the classifier read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowPrediction {
    /// 1-based line of the test file where the row starts.
    pub line: usize,
    pub text: String,
    pub gold: String,
    pub predicted: String,
    /// Probability of each label as the evaluation read it (calibrated when it was), task order.
    pub probs: Vec<f64>,
    /// Log-likelihood of each label's verbalizer before any calibration, task order.
    pub log_likelihoods: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The base model with only the input in the prompt.
    ZeroShot,
    /// The base model with the seeds as demonstrations.
    Icl,
    /// The model with a LoRA adapter, zero-shot prompt.
    Lora,
    /// A small classifier distilled from a LoRA run (`seedforge distil`); no language model.
    Student,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::ZeroShot => "zero-shot",
            Method::Icl => "icl",
            Method::Lora => "lora",
            Method::Student => "student",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zero-shot" | "zeroshot" | "zero" => Ok(Method::ZeroShot),
            "icl" | "k-shot" | "few-shot" => Ok(Method::Icl),
            "lora" => Ok(Method::Lora),
            "student" => Ok(Method::Student),
            other => Err(format!(
                "unknown method '{other}' (zero-shot, icl, lora or student)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub method: Method,
    pub task: String,
    pub test_file: PathBuf,
    /// Demonstrations in the prompt (ICL).
    pub shots: usize,
    pub calibrated: bool,
    /// The share of the content-free prior divided by when calibrated (absent: all of it, as
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_strength: Option<f64>,
    /// The adapter folder (LoRA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<PathBuf>,
    pub model: String,
    pub metrics: Metrics,
    pub seconds: f64,
    /// RFC 3339 time the evaluation finished.
    pub finished_at: String,
    /// Per test row, in file order: whether the prediction was right (for paired comparisons
    /// of two runs on the same rows; absent in evaluations saved before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub correct: Vec<bool>,
    /// The label distribution on content-free inputs, task order, whether or not the reading
    /// divided by it (absent in evaluations saved before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_free_prior: Option<Vec<f64>>,
    /// Per test row, file order; saved to [`PREDICTIONS_FILE`], not to `eval.json`.
    #[serde(skip)]
    pub rows: Vec<RowPrediction>,
}

impl EvalReport {
    pub fn save(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        // The rows first: `eval.json` marks a finished evaluation.
        if !self.rows.is_empty() {
            let mut lines = String::new();
            for r in &self.rows {
                lines.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
                lines.push('\n');
            }
            crate::data::atomic::write_atomic_bytes(&dir.join(PREDICTIONS_FILE), lines.as_bytes())?;
        }
        let path = dir.join(EVAL_FILE);
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::data::atomic::write_atomic_bytes(&path, text.as_bytes())?;
        Ok(path)
    }

    /// The report saved in `dir` (read by [`super::run_folder`]); its absence is an error.
    pub fn load(dir: &Path) -> Result<EvalReport, String> {
        super::run_folder::read_report(dir)?
            .ok_or_else(|| format!("{}: not found", dir.join(EVAL_FILE).display()))
    }

    /// One line of the comparison table.
    pub fn row(&self, name: &str) -> String {
        format!(
            "{name:<32} {:<10} {:>6.2}% {:>8.3} {:>6} {:>8.1}s",
            self.method.name(),
            self.metrics.accuracy * 100.0,
            self.metrics.macro_f1,
            self.metrics.n,
            self.seconds
        )
    }
}

pub fn table_header() -> String {
    format!(
        "{:<32} {:<10} {:>7} {:>8} {:>6} {:>9}",
        "run", "method", "acc", "macro-F1", "n", "time"
    )
}
