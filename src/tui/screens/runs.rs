//! Training and evaluation runs as the Train and Evaluate screens show them: the live events of
//! a training job and the run folders already on disk, both typed — the folders as
//! [`crate::eval::run_folder`] reads them (the reader `seedforge runs` and the experiment use),
//! the live events as the trainer's own [`TrainEvent`]s, so a running job and a finished run are
//! drawn by the same code.

use std::path::{Path, PathBuf};

use crate::eval::run_folder::{self, RunFolder, SavedEval};
use crate::train::checkpoint::Status as CheckpointStatus;
use crate::train::metrics::{StopReason, TrainEvent};
use crate::train::run::TrainedOn;
use crate::train::trainer::Objective;

/// The loss curves of one run, and what the Train screen says beside them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curves {
    /// (step, training loss)
    pub train: Vec<(f64, f64)>,
    /// (step, validation loss)
    pub val: Vec<(f64, f64)>,
    pub last_step: Option<usize>,
    pub epoch: Option<usize>,
    pub total_steps: Option<usize>,
    pub step_seconds: Option<f64>,
    pub lr: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub finished: Option<String>,
}

impl Curves {
    pub fn is_empty(&self) -> bool {
        self.train.is_empty() && self.val.is_empty()
    }

    /// Adds a training event; false when it was not one the screen plots.
    pub fn push(&mut self, e: &TrainEvent) -> bool {
        match e {
            TrainEvent::Started {
                total_steps,
                member: Some([m, _]),
                ..
            } if *m > 1 => {
                // A soup's later member goes on with the curve.
                self.total_steps = Some(*total_steps);
                self.finished = None;
            }
            TrainEvent::Started { total_steps, .. } => {
                *self = Curves {
                    total_steps: Some(*total_steps),
                    ..Curves::default()
                }
            }
            TrainEvent::Step {
                step,
                loss,
                lr,
                step_time_s,
                ..
            } => {
                if loss.is_finite() {
                    self.train.push((*step as f64, *loss));
                }
                self.last_step = Some(*step);
                self.lr = Some(*lr).filter(|x| x.is_finite()).or(self.lr);
                self.step_seconds = Some(*step_time_s)
                    .filter(|x| x.is_finite())
                    .or(self.step_seconds);
            }
            TrainEvent::Eval {
                epoch,
                step,
                val_loss,
                val_accuracy,
                ..
            } => {
                if let Some(l) = val_loss.filter(|l| l.is_finite()) {
                    self.val.push((*step as f64, l));
                }
                self.epoch = Some(*epoch);
                self.val_accuracy = val_accuracy.or(self.val_accuracy);
            }
            TrainEvent::Finished { reason, .. } => {
                self.finished = Some(reason_name(*reason).into())
            }
            TrainEvent::Paused { .. }
            | TrainEvent::Resumed { .. }
            | TrainEvent::Restored { .. } => {
                return false;
            }
        }
        true
    }

    /// The curves of a run's events.
    pub fn of(events: &[TrainEvent]) -> Curves {
        let mut c = Curves::default();
        for e in events {
            c.push(e);
        }
        c
    }

    /// Seconds left, from the last step time and the steps to go.
    pub fn eta_seconds(&self) -> Option<f64> {
        let (total, done, per) = (self.total_steps?, self.last_step?, self.step_seconds?);
        Some(total.saturating_sub(done) as f64 * per)
    }
}

/// One class's results row.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassResult {
    pub label: String,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub support: Option<usize>,
}

/// An evaluation's results as the Evaluate screen shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalInfo {
    /// `icl`, `zero-shot`, `lora`, when the result says (`eval.json` as `EvalReport` saves it).
    pub method: Option<String>,
    /// What was evaluated on (a file name), when the run says.
    pub on: Option<String>,
    pub n: Option<usize>,
    pub accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    pub per_class: Vec<ClassResult>,
    /// (labels, `confusion[gold][predicted]`)
    pub confusion: Option<(Vec<String>, Vec<Vec<usize>>)>,
    /// Per test row, whether it was right (for the comparison with a seeds-only twin).
    pub correct: Vec<bool>,
    /// Rows scored a second (the evaluation's rows over its wall time), when it says.
    pub items_per_s: Option<f64>,
}

/// How a run that has finished says why (as `metrics.jsonl` spells it).
fn reason_name(r: StopReason) -> &'static str {
    match r {
        StopReason::Completed => "completed",
        StopReason::EarlyStopped => "early_stopped",
        StopReason::Stopped => "stopped",
    }
}

impl EvalInfo {
    /// What the Evaluate screen shows of a saved evaluation.
    pub fn of(saved: &SavedEval) -> EvalInfo {
        match saved {
            SavedEval::Report(r) => {
                let m = &r.metrics;
                EvalInfo {
                    method: Some(r.method.name().to_string()),
                    // The report names the whole path; the file's name says enough on screen.
                    on: r
                        .test_file
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned()),
                    n: Some(m.n),
                    accuracy: Some(m.accuracy),
                    macro_f1: Some(m.macro_f1),
                    per_class: m
                        .per_class
                        .iter()
                        .map(|c| ClassResult {
                            label: c.label.clone(),
                            precision: Some(c.precision),
                            recall: Some(c.recall),
                            f1: Some(c.f1),
                            support: Some(c.support),
                        })
                        .collect(),
                    confusion: Some((m.labels.clone(), m.confusion.clone())),
                    correct: r.correct.clone(),
                    items_per_s: (r.seconds > 0.0).then(|| m.n as f64 / r.seconds),
                }
            }
            SavedEval::Early(e) => EvalInfo {
                method: None,
                on: Some(e.file.clone()),
                n: Some(e.examples),
                accuracy: Some(e.accuracy),
                macro_f1: None,
                per_class: e
                    .per_label
                    .iter()
                    .map(|(label, support, accuracy)| ClassResult {
                        label: label.clone(),
                        support: Some(*support),
                        // Accuracy within a gold class is that class's recall.
                        recall: Some(*accuracy),
                        precision: None,
                        f1: None,
                    })
                    .collect(),
                confusion: None,
                correct: Vec::new(),
                items_per_s: None,
            },
        }
    }
}

/// A run folder.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub name: String,
    pub dir: PathBuf,
    pub curves: Curves,
    /// Why `metrics.jsonl` could not be read, if it exists and could not.
    pub metrics_error: Option<String>,
    pub eval: Option<EvalInfo>,
    pub eval_error: Option<String>,
    /// A training run's data, from its `config.json`.
    pub trained_on: Option<TrainedOn>,
    /// What the run's LoRA adapter was trained for, when the folder holds a complete one: a
    /// classifier, or a teacher that writes examples.
    pub adapter: Option<Objective>,
    /// Why the folder's adapter cannot be used (a file missing or cut short), naming the file.
    pub adapter_error: Option<String>,
    /// What the run's checkpoint says: a stopped or interrupted run can be resumed.
    pub checkpoint: CheckpointStatus,
    /// A distilled student's teacher run (`student.json`); `None` for any other folder.
    pub teacher: Option<PathBuf>,
}

/// The selected run of a list that grows while a job runs (a new run comes first): it follows the
/// run's folder, not the row, so the chart or results shown stay those of the run chosen. The
/// row is used only once that run has left the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSelection {
    row: usize,
    dir: Option<PathBuf>,
}

impl RunSelection {
    /// The selected row of `runs` (0 when empty).
    pub fn row(&self, runs: &[&RunInfo]) -> usize {
        self.dir
            .as_ref()
            .and_then(|d| runs.iter().position(|r| r.dir == *d))
            .unwrap_or(self.row)
            .min(runs.len().saturating_sub(1))
    }

    /// Selects row `row` of `runs` (clamped) and the run on it.
    pub fn select(&mut self, runs: &[&RunInfo], row: usize) {
        self.row = row.min(runs.len().saturating_sub(1));
        self.dir = runs.get(self.row).map(|r| r.dir.clone());
    }

    /// Selects the run in `dir` (the first row when it is not listed).
    pub fn select_dir(&mut self, runs: &[&RunInfo], dir: &Path) {
        let row = runs.iter().position(|r| r.dir == dir).unwrap_or(0);
        self.select(runs, row);
    }

    /// Moves `by` rows from the selected one, within `runs`.
    pub fn step(&mut self, runs: &[&RunInfo], by: isize) {
        let row = self.row(runs).saturating_add_signed(by);
        self.select(runs, row);
    }
}

/// How the Runs list names what a run trained on: `seeds`, `seeds+12`, or `staged` (a run
/// trained on from another's adapter), with `×4` for a soup of four runs.
pub fn short(t: &TrainedOn) -> String {
    let data = match (&t.started_from, t.extra_examples) {
        (Some(_), _) => "staged".into(),
        (None, 0) => "seeds".into(),
        (None, n) => format!("seeds+{n}"),
    };
    match t.members() {
        1 => data,
        k => format!("{data} ×{k}"),
    }
}

impl RunInfo {
    /// Where a run that can be resumed stands (`None` when it cannot be).
    pub fn resumable_at(&self) -> Option<&crate::train::checkpoint::Progress> {
        match &self.checkpoint {
            CheckpointStatus::Resumable(p) => Some(p),
            _ => None,
        }
    }

    /// How the comparison names the run: `icl`, `zero-shot`, `lora seeds`, `lora seeds+12`.
    pub fn model_name(&self) -> String {
        let method = self.eval.as_ref().and_then(|e| e.method.as_deref());
        match (method, &self.trained_on) {
            (Some("lora") | None, Some(t)) => format!("lora {}", short(t)),
            (Some(m), _) => m.to_string(),
            (None, None) => "–".into(),
        }
    }
}

/// Every run folder under `runs_dir`, newest first.
pub fn read_runs(runs_dir: &Path) -> Vec<RunInfo> {
    run_folder::list(runs_dir).iter().map(RunInfo::of).collect()
}

impl RunInfo {
    fn of(f: &RunFolder) -> RunInfo {
        let dir = f.dir.as_path();
        // Only a complete adapter is offered (as a writer, for annotation): one cut short by a
        // crash would fail later, in the middle of a job.
        let (adapter, adapter_error) = match crate::train::peft::check_adapter(dir) {
            Ok(true) => (
                Some(crate::train::run::objective_of(dir).unwrap_or_default()),
                None,
            ),
            Ok(false) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let (eval, eval_error) = match &f.eval {
            Ok(e) => (e.as_ref().map(EvalInfo::of), None),
            Err(e) => (None, Some(e.clone())),
        };
        RunInfo {
            name: f.name.clone(),
            dir: f.dir.clone(),
            curves: f.metrics.as_deref().map(Curves::of).unwrap_or_default(),
            metrics_error: f.metrics.as_ref().err().cloned(),
            eval,
            eval_error,
            // A config that cannot be read says so where the adapter is offered.
            trained_on: f.config.clone().ok().flatten(),
            adapter,
            adapter_error: adapter_error.or_else(|| f.config.as_ref().err().cloned()),
            checkpoint: crate::train::checkpoint::status(dir),
            teacher: crate::student::store::read_record(dir)
                .ok()
                .map(|r| r.teacher),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(member: Option<[usize; 2]>) -> TrainEvent {
        TrainEvent::Started {
            train_examples: 6,
            val_examples: 2,
            epochs: 2,
            steps_per_epoch: 5,
            total_steps: 10,
            trainable_params: 100,
            device: "cpu".into(),
            member,
        }
    }

    fn step(step: usize, loss: f64) -> TrainEvent {
        TrainEvent::Step {
            step,
            epoch: 0,
            loss,
            lr: 1e-4,
            grad_norm: 0.5,
            step_time_s: 0.4,
            tokens: 100,
            tokens_per_s: 250.0,
            elapsed_s: 0.4 * step as f64,
        }
    }

    fn eval(epoch: usize, step: usize, val_loss: Option<f64>) -> TrainEvent {
        TrainEvent::Eval {
            epoch,
            step,
            train_loss: 2.2,
            val_loss,
            val_accuracy: Some(0.5),
            best: true,
            eval_time_s: 0.1,
            elapsed_s: 1.0,
        }
    }

    fn finished(reason: StopReason) -> TrainEvent {
        TrainEvent::Finished {
            reason,
            steps: 2,
            epochs: 1,
            best_epoch: Some(0),
            best_val_loss: None,
            best_val_accuracy: None,
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn training_events_draw_the_curves() {
        let mut c = Curves::default();
        assert!(c.push(&started(None)));
        assert!(c.push(&step(1, 2.5)));
        assert!(c.push(&step(2, 2.0)));
        assert!(c.push(&eval(0, 2, Some(2.1))));
        assert!(
            c.push(&step(3, f64::NAN)),
            "a diverged step is counted, not drawn"
        );
        assert!(!c.push(&TrainEvent::Paused { step: 3 }));
        assert_eq!(c.train, [(1.0, 2.5), (2.0, 2.0)]);
        assert_eq!(c.val, [(2.0, 2.1)]);
        assert_eq!(c.val_accuracy, Some(0.5));
        assert_eq!(c.eta_seconds(), Some(7.0 * 0.4));
        assert!(c.push(&finished(StopReason::EarlyStopped)));
        assert_eq!(c.finished.as_deref(), Some("early_stopped"));
    }

    #[test]
    fn a_soup_is_named_with_its_size() {
        let t = |json: &str| -> TrainedOn { serde_json::from_str(json).unwrap() };
        let base = r#""real_examples":8,"extra_examples""#;
        assert_eq!(short(&t(&format!("{{{base}:0}}"))), "seeds");
        assert_eq!(
            short(&t(&format!("{{{base}:0,\"train\":{{\"members\":4}}}}"))),
            "seeds ×4"
        );
        assert_eq!(
            short(&t(&format!("{{{base}:12,\"train\":{{\"members\":2}}}}"))),
            "seeds+12 ×2"
        );
        assert_eq!(
            short(&t(&format!("{{{base}:0,\"train\":{{\"members\":1}}}}"))),
            "seeds"
        );
    }

    /// A soup's members draw one curve: the second member's start keeps the first's points; a
    /// new run (no member, or member 1) starts over.
    #[test]
    fn a_soups_members_draw_one_curve() {
        let mut c = Curves::default();
        c.push(&started(Some([1, 2])));
        c.push(&step(1, 2.0));
        c.push(&step(2, 1.0));
        c.push(&finished(StopReason::Completed));
        c.push(&started(Some([2, 2])));
        assert_eq!(c.finished, None, "the soup goes on");
        c.push(&step(3, 1.5));
        assert_eq!(c.train, [(1.0, 2.0), (2.0, 1.0), (3.0, 1.5)]);
        c.push(&started(Some([1, 2])));
        assert!(c.train.is_empty(), "a new soup starts over");
        c.push(&step(1, 2.0));
        c.push(&started(None));
        assert!(c.train.is_empty(), "a new plain run starts over");
    }

    /// Both shapes of `eval.json` that have been written show on the Evaluate screen.
    #[test]
    fn eval_results_in_both_shapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("eval.json"),
            r#"{"file": "test.tsv", "examples": 4, "accuracy": 0.75,
                "per_label": [["negative", 2, 1.0], ["positive", 2, 0.5]]}"#,
        )
        .unwrap();
        let run = RunInfo::of(&run_folder::read(dir.path()));
        let early = run.eval.unwrap();
        assert_eq!(early.accuracy, Some(0.75));
        assert_eq!(early.per_class[1].recall, Some(0.5));
        assert!(early.confusion.is_none());

        let labels = vec!["negative".to_string(), "positive".to_string()];
        let m = crate::eval::metrics::Metrics::compute(
            &labels,
            [
                ("negative", "negative"),
                ("positive", "positive"),
                ("positive", "negative"),
            ],
        );
        let report = crate::eval::report::EvalReport {
            method: crate::eval::report::Method::Icl,
            task: "sentiment".into(),
            test_file: "data/test.tsv".into(),
            shots: 4,
            calibrated: false,
            calibration_strength: None,
            adapter: None,
            model: "m".into(),
            metrics: m,
            seconds: 1.5,
            finished_at: String::new(),
            correct: vec![true, true, false],
            content_free_prior: None,
            rows: Vec::new(),
        };
        report.save(dir.path()).unwrap();
        let run = RunInfo::of(&run_folder::read(dir.path()));
        let full = run.eval.unwrap();
        assert_eq!(full.n, Some(3));
        assert_eq!(full.on.as_deref(), Some("test.tsv"));
        assert_eq!(full.items_per_s, Some(2.0));
        assert_eq!(full.confusion.unwrap().1, vec![vec![1, 0], vec![1, 1]]);

        std::fs::write(dir.path().join("eval.json"), r#"{"nothing": 1}"#).unwrap();
        let run = RunInfo::of(&run_folder::read(dir.path()));
        assert!(run.eval.is_none());
        assert!(run.eval_error.unwrap().contains("eval.json"));
    }
}
