//! The one reader of run folders (`<workspace>/runs/<id>/`): what a training run recorded
//! (`config.json`), its events (`metrics.jsonl`), its evaluation (`eval.json`) and a soup's
//! members (`members/<i>/`), as typed values. The workbench's screens, `seedforge runs` and the
//! experiment all read runs through it, so a folder reads the same everywhere.
//!
//! A file that is absent is `None` (a folder holds only what its run wrote); a file that is
//! there and cannot be read is an error naming the file and the reason, never empty data.
//! Folders written by earlier versions still read: `eval.json` as `train --eval` first wrote it
//! ([`EarlyEval`]), and the fields added since are optional in the types.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::report::{EVAL_FILE, EvalReport};
use crate::train::metrics::{TrainEvent, read_metrics};
use crate::train::run::{TrainedOn, member_dir, read_trained_on};

pub const METRICS_FILE: &str = "metrics.jsonl";

/// A run folder as it is on disk. Each file's reading is kept apart: one that cannot be read
/// leaves the others to be shown.
#[derive(Debug, Clone)]
pub struct RunFolder {
    pub name: String,
    pub dir: PathBuf,
    /// What the run trained on (`config.json`); `None`: not a training run.
    pub config: Result<Option<TrainedOn>, String>,
    /// The training events (`metrics.jsonl`), in order; empty when there is none.
    pub metrics: Result<Vec<TrainEvent>, String>,
    /// The evaluation saved here (`eval.json`).
    pub eval: Result<Option<SavedEval>, String>,
    /// A soup's members (`members/0`, `members/1`, …), in order; empty for a plain run.
    pub members: Vec<RunFolder>,
}

/// An `eval.json` in either of the shapes that have been written.
#[derive(Debug, Clone, PartialEq)]
pub enum SavedEval {
    Report(Box<EvalReport>),
    Early(EarlyEval),
}

/// `eval.json` as `seedforge train --eval` wrote it before evaluations had their own report:
/// accuracy overall and per gold label.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EarlyEval {
    /// The test file, as given.
    pub file: String,
    pub examples: usize,
    pub accuracy: f64,
    /// (label, rows with that gold label, accuracy on them)
    pub per_label: Vec<(String, usize, f64)>,
}

/// Reads the run folder `dir` (and its members).
pub fn read(dir: &Path) -> RunFolder {
    let members = (0..)
        .map(|i| member_dir(dir, i))
        .take_while(|d| d.is_dir())
        .map(|d| read(&d))
        .collect();
    RunFolder {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir: dir.to_path_buf(),
        config: read_trained_on(dir).map_err(|e| format!("{e:#}")),
        metrics: read_events(dir),
        eval: read_eval(dir),
        members,
    }
}

/// Every run folder under `runs_dir`, newest first (their names start with the UTC time); none
/// when the folder does not exist yet.
pub fn list(runs_dir: &Path) -> Vec<RunFolder> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut runs: Vec<RunFolder> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .map(|dir| read(&dir))
        .collect();
    runs.sort_by(|a, b| b.name.cmp(&a.name));
    runs
}

/// The events of `dir/metrics.jsonl`; none when the folder has no such file.
pub fn read_events(dir: &Path) -> Result<Vec<TrainEvent>, String> {
    let path = dir.join(METRICS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_metrics(&path).map_err(|e| format!("{e:#}"))
}

/// The evaluation in `dir/eval.json`, in whichever shape it was written.
pub fn read_eval(dir: &Path) -> Result<Option<SavedEval>, String> {
    let path = dir.join(EVAL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let fail = |e: serde_json::Error| format!("{}: {e}", path.display());
    let v: serde_json::Value = serde_json::from_str(&text).map_err(fail)?;
    // The early shape has no report fields; anything else is read (and its errors told) as
    // the report it claims to be.
    let early = v.get("per_label").is_some() && v.get("metrics").is_none();
    Ok(Some(if early {
        SavedEval::Early(serde_json::from_value(v).map_err(fail)?)
    } else {
        SavedEval::Report(Box::new(serde_json::from_value(v).map_err(fail)?))
    }))
}

/// The evaluation report in `dir/eval.json` (`None` when there is none); an early `eval.json`,
/// which lacks what a report compares (macro-F1, rows), is an error saying so.
pub fn read_report(dir: &Path) -> Result<Option<EvalReport>, String> {
    match read_eval(dir)? {
        None => Ok(None),
        Some(SavedEval::Report(r)) => Ok(Some(*r)),
        Some(SavedEval::Early(_)) => Err(format!(
            "{}: written by an earlier version (accuracy only, no report); evaluate the run \
             again",
            dir.join(EVAL_FILE).display()
        )),
    }
}

impl RunFolder {
    /// What trained the adapter an evaluation read: this folder's run, or for an evaluation
    /// saved apart from its run (`eval --out`) the run of the adapter it names.
    pub fn trained_on(&self) -> Option<TrainedOn> {
        if let Ok(Some(t)) = &self.config {
            return Some(t.clone());
        }
        match &self.eval {
            Ok(Some(SavedEval::Report(r))) => r
                .adapter
                .as_deref()
                .and_then(|a| read_trained_on(a).ok().flatten()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn an_empty_folder_has_nothing_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = read(dir.path());
        assert_eq!(f.config, Ok(None));
        assert_eq!(f.metrics, Ok(Vec::new()));
        assert_eq!(f.eval, Ok(None));
        assert!(f.members.is_empty());
    }

    /// The shape `train --eval` wrote (44b8a8b) still reads.
    #[test]
    fn an_early_eval_json_reads() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            EVAL_FILE,
            r#"{"file":"test.tsv","examples":4,"accuracy":0.75,
                "per_label":[["negative",2,1.0],["positive",2,0.5]]}"#,
        );
        let Ok(Some(SavedEval::Early(e))) = read_eval(dir.path()) else {
            panic!("{:?}", read_eval(dir.path()));
        };
        assert_eq!(e.accuracy, 0.75);
        assert_eq!(e.per_label[1], ("positive".into(), 2, 0.5));
        let err = read_report(dir.path()).unwrap_err();
        assert!(
            err.contains("eval.json") && err.contains("earlier version"),
            "{err}"
        );
    }

    /// A malformed file is an error that names it and says why; the other files still read.
    #[test]
    fn malformed_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), EVAL_FILE, r#"{"method":"lora"}"#);
        write(dir.path(), "config.json", "{not json");
        write(
            dir.path(),
            METRICS_FILE,
            "{\"event\":\"paused\",\"step\":1}\n{\"event\":\"step\"}\n",
        );
        let f = read(dir.path());
        let eval = f.eval.unwrap_err();
        assert!(
            eval.contains("eval.json") && eval.contains("missing field"),
            "{eval}"
        );
        let config = f.config.unwrap_err();
        assert!(config.contains("config.json"), "{config}");
        let metrics = f.metrics.unwrap_err();
        assert!(metrics.contains("metrics.jsonl:2"), "{metrics}");
    }

    /// A running job's file may end in half a line: that line is left for the next read.
    #[test]
    fn a_line_being_written_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            METRICS_FILE,
            "{\"event\":\"paused\",\"step\":1}\n{\"event\":\"paused\",\"st",
        );
        assert_eq!(
            read(dir.path()).metrics,
            Ok(vec![TrainEvent::Paused { step: 1 }])
        );
    }

    /// A diverged loss is written `null` and reads back as NaN, not as an unreadable file.
    #[test]
    fn a_nan_loss_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let step = TrainEvent::Step {
            step: 1,
            epoch: 0,
            loss: f64::NAN,
            lr: 1e-4,
            grad_norm: f64::NAN,
            step_time_s: 0.3,
            tokens: 10,
            tokens_per_s: f64::INFINITY,
            elapsed_s: 0.3,
        };
        write(
            dir.path(),
            METRICS_FILE,
            &(serde_json::to_string(&step).unwrap() + "\n"),
        );
        let events = read(dir.path()).metrics.unwrap();
        assert!(matches!(events[..], [TrainEvent::Step { loss, .. }] if loss.is_nan()));
    }

    #[test]
    fn a_soups_members_are_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            write(
                &member_dir(dir.path(), i),
                METRICS_FILE,
                &format!("{{\"event\":\"paused\",\"step\":{i}}}\n"),
            );
        }
        let f = read(dir.path());
        let steps: Vec<_> = f
            .members
            .iter()
            .map(|m| m.metrics.clone().unwrap())
            .collect();
        assert_eq!(
            steps,
            (0..3)
                .map(|step| vec![TrainEvent::Paused { step }])
                .collect::<Vec<_>>()
        );
    }
}
