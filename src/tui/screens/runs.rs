//! Training and evaluation runs as the Train and Evaluate screens read them: the live metric
//! events of a training job, and the run folders already on disk
//! (`<workspace>/runs/<id>/{metrics.jsonl, eval.json}`), read and never written.
//!
//! **Wiring point.** The trainer's metric events arrive as JSON objects (in
//! `engine::Event::Train { metrics }` and as the lines of `metrics.jsonl`); [`parse_metric`] is
//! the one function that reads them. It accepts the trainer's tagged events
//! (`{"event":"step","step":..,"loss":..,"lr":..,"step_time_s":..}`,
//! `{"event":"eval","epoch":..,"step":..,"val_loss":..,"val_accuracy":..}`, `started`,
//! `finished`) and the `{"kind":"step"|"epoch", .., "step_seconds":..}` spelling.
//! Evaluation results are read by [`parse_eval`] from either [`Metrics`] as JSON (accuracy,
//! macro-F1, per class, confusion matrix) or the trainer's `eval.json` (accuracy per label).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::eval::metrics::Metrics;
use crate::train::checkpoint::Status as CheckpointStatus;
use crate::train::run::TrainedOn;
use crate::train::trainer::Objective;

/// One metric event of a training run.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainPoint {
    Started {
        total_steps: Option<usize>,
        epochs: Option<usize>,
        /// A soup's member number (from 1): after the first, the curve goes on.
        member: Option<usize>,
    },
    Step {
        step: usize,
        loss: f64,
        lr: Option<f64>,
        step_seconds: Option<f64>,
    },
    Epoch {
        epoch: usize,
        step: Option<usize>,
        val_loss: Option<f64>,
        val_accuracy: Option<f64>,
    },
    Finished {
        reason: String,
    },
}

/// Reads one metric event; `None` for what the screens do not plot.
pub fn parse_metric(v: &Value) -> Option<TrainPoint> {
    let tag = v
        .get("event")
        .or_else(|| v.get("kind"))
        .and_then(Value::as_str)?;
    let num = |k: &str| v.get(k).and_then(Value::as_f64).filter(|x| x.is_finite());
    let int = |k: &str| v.get(k).and_then(Value::as_u64).map(|x| x as usize);
    match tag {
        "started" => Some(TrainPoint::Started {
            total_steps: int("total_steps"),
            epochs: int("epochs"),
            member: v
                .get("member")
                .and_then(|m| m.get(0))
                .and_then(Value::as_u64)
                .map(|x| x as usize),
        }),
        "step" => Some(TrainPoint::Step {
            step: int("step")?,
            loss: num("loss")?,
            lr: num("lr"),
            step_seconds: num("step_time_s").or_else(|| num("step_seconds")),
        }),
        "eval" | "epoch" => Some(TrainPoint::Epoch {
            epoch: int("epoch")?,
            step: int("step"),
            val_loss: num("val_loss"),
            val_accuracy: num("val_accuracy"),
        }),
        "finished" => Some(TrainPoint::Finished {
            reason: v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("finished")
                .to_string(),
        }),
        _ => None,
    }
}

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

    /// Adds a JSON metric event; false when it was not one the screen plots.
    pub fn push_json(&mut self, v: &Value) -> bool {
        match parse_metric(v) {
            Some(p) => {
                self.push(p);
                true
            }
            None => false,
        }
    }

    pub fn push(&mut self, p: TrainPoint) {
        match p {
            TrainPoint::Started {
                total_steps,
                member: Some(m),
                ..
            } if m > 1 => {
                self.total_steps = total_steps.or(self.total_steps);
                self.finished = None;
            }
            TrainPoint::Started { total_steps, .. } => {
                *self = Curves {
                    total_steps,
                    ..Curves::default()
                }
            }
            TrainPoint::Step {
                step,
                loss,
                lr,
                step_seconds,
            } => {
                self.train.push((step as f64, loss));
                self.last_step = Some(step);
                self.lr = lr.or(self.lr);
                self.step_seconds = step_seconds.or(self.step_seconds);
            }
            TrainPoint::Epoch {
                epoch,
                step,
                val_loss,
                val_accuracy,
            } => {
                let x = step.or(self.last_step).unwrap_or(epoch) as f64;
                if let Some(l) = val_loss {
                    self.val.push((x, l));
                }
                self.epoch = Some(epoch);
                self.val_accuracy = val_accuracy.or(self.val_accuracy);
            }
            TrainPoint::Finished { reason } => self.finished = Some(reason),
        }
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

/// Reads an evaluation result (see the module docs for the shapes).
pub fn parse_eval(v: &Value) -> Option<EvalInfo> {
    let metrics = serde_json::from_value::<Metrics>(v.clone())
        .ok()
        .or_else(|| serde_json::from_value::<Metrics>(v.get("metrics")?.clone()).ok());
    let on = v
        .get("file")
        .or_else(|| v.get("on"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            // An `EvalReport` names the whole path; the file's name says enough on screen.
            let p = Path::new(v.get("test_file")?.as_str()?);
            Some(p.file_name()?.to_string_lossy().into_owned())
        });
    let method = v.get("method").and_then(Value::as_str).map(str::to_string);
    if let Some(m) = metrics {
        return Some(EvalInfo {
            method,
            on,
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
            correct: correct_rows(v),
            items_per_s: rate(v, Some(m.n)),
        });
    }
    let accuracy = v.get("accuracy").and_then(Value::as_f64)?;
    let per_class = v
        .get("per_label")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter_map(|r| {
                    let r = r.as_array()?;
                    Some(ClassResult {
                        label: r.first()?.as_str()?.to_string(),
                        support: r.get(1).and_then(Value::as_u64).map(|n| n as usize),
                        // Accuracy within a gold class is that class's recall.
                        recall: r.get(2).and_then(Value::as_f64),
                        precision: None,
                        f1: None,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(EvalInfo {
        method,
        on,
        n: v.get("examples")
            .or_else(|| v.get("n"))
            .and_then(Value::as_u64)
            .map(|n| n as usize),
        accuracy: Some(accuracy),
        macro_f1: v.get("macro_f1").and_then(Value::as_f64),
        per_class,
        confusion: None,
        correct: correct_rows(v),
        items_per_s: None,
    })
}

/// `n` rows over the evaluation's `seconds`.
fn rate(v: &Value, n: Option<usize>) -> Option<f64> {
    let secs = v
        .get("seconds")
        .and_then(Value::as_f64)
        .filter(|s| *s > 0.0)?;
    Some(n? as f64 / secs)
}

fn correct_rows(v: &Value) -> Vec<bool> {
    v.get("correct")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
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

/// Every run folder under `runs_dir`, newest first (their names start with the UTC time).
pub fn read_runs(runs_dir: &Path) -> Vec<RunInfo> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut runs: Vec<RunInfo> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .map(|dir| read_run(&dir))
        .collect();
    runs.sort_by(|a, b| b.name.cmp(&a.name));
    runs
}

fn read_run(dir: &Path) -> RunInfo {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut curves = Curves::default();
    let mut metrics_error = None;
    let metrics = dir.join("metrics.jsonl");
    if metrics.is_file() {
        match std::fs::read_to_string(&metrics) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Value>(line) {
                        Ok(v) => {
                            curves.push_json(&v);
                        }
                        // A run being written may end in a partial line; keep what parsed.
                        Err(e) if metrics_error.is_none() => {
                            metrics_error = Some(format!("metrics.jsonl:{}: {e}", i + 1))
                        }
                        Err(_) => {}
                    }
                }
            }
            Err(e) => metrics_error = Some(format!("metrics.jsonl: {e}")),
        }
    }
    let mut eval = None;
    let mut eval_error = None;
    let eval_path = dir.join("eval.json");
    if eval_path.is_file() {
        match std::fs::read_to_string(&eval_path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => match parse_eval(&v) {
                Some(e) => eval = Some(e),
                None => eval_error = Some("eval.json: no accuracy in it".into()),
            },
            Err(e) => eval_error = Some(format!("eval.json: {e}")),
        }
    }
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
    RunInfo {
        name,
        dir: dir.to_path_buf(),
        curves,
        metrics_error,
        eval,
        eval_error,
        trained_on: crate::train::run::trained_on(dir),
        adapter,
        adapter_error,
        checkpoint: crate::train::checkpoint::status(dir),
        teacher: crate::student::store::read_record(dir)
            .ok()
            .map(|r| r.teacher),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_of_metric_events_are_read() {
        let mut c = Curves::default();
        assert!(c.push_json(&json!({"event":"started","total_steps":10,"epochs":2})));
        assert!(c.push_json(
            &json!({"event":"step","step":1,"epoch":0,"loss":2.5,"lr":1e-4,"step_time_s":0.5})
        ));
        assert!(c.push_json(&json!({"kind":"step","step":2,"loss":2.0,"step_seconds":0.4})));
        assert!(c.push_json(
            &json!({"event":"eval","epoch":0,"step":2,"train_loss":2.2,"val_loss":2.1,"val_accuracy":0.5})
        ));
        assert!(c.push_json(&json!({"kind":"epoch","epoch":1,"val_loss":1.9})));
        assert!(!c.push_json(&json!({"event":"paused","step":2})));
        assert_eq!(c.train, [(1.0, 2.5), (2.0, 2.0)]);
        assert_eq!(c.val, [(2.0, 2.1), (2.0, 1.9)]);
        assert_eq!(c.val_accuracy, Some(0.5));
        assert_eq!(c.eta_seconds(), Some(8.0 * 0.4));
        assert!(c.push_json(&json!({"event":"finished","reason":"early_stopped"})));
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
        let started =
            |m: usize| json!({"event":"started","total_steps":4,"epochs":2,"member":[m,2]});
        c.push_json(&started(1));
        c.push_json(&json!({"event":"step","step":1,"loss":2.0}));
        c.push_json(&json!({"event":"step","step":2,"loss":1.0}));
        c.push_json(&json!({"event":"finished","reason":"completed"}));
        c.push_json(&started(2));
        assert_eq!(c.finished, None, "the soup goes on");
        c.push_json(&json!({"event":"step","step":3,"loss":1.5}));
        assert_eq!(c.train, [(1.0, 2.0), (2.0, 1.0), (3.0, 1.5)]);
        c.push_json(&started(1));
        assert!(c.train.is_empty(), "a new soup starts over");
        c.push_json(&json!({"event":"step","step":1,"loss":2.0}));
        c.push_json(&json!({"event":"started","total_steps":4,"epochs":2}));
        assert!(c.train.is_empty(), "a new plain run starts over");
    }

    #[test]
    fn eval_results_in_both_shapes() {
        let labels = vec!["negative".to_string(), "positive".to_string()];
        let m = Metrics::compute(
            &labels,
            [
                ("negative", "negative"),
                ("positive", "positive"),
                ("positive", "negative"),
            ],
        );
        let full = parse_eval(&serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(full.n, Some(3));
        assert_eq!(full.confusion.unwrap().1, vec![vec![1, 0], vec![1, 1]]);
        let simple = parse_eval(&json!({
            "file": "test.tsv", "examples": 4, "accuracy": 0.75,
            "per_label": [["negative", 2, 1.0], ["positive", 2, 0.5]]
        }))
        .unwrap();
        assert_eq!(simple.accuracy, Some(0.75));
        assert_eq!(simple.per_class[1].recall, Some(0.5));
        assert!(simple.confusion.is_none());
        assert!(parse_eval(&json!({"nothing": 1})).is_none());
    }
}
