//! The evaluation job: the comparison the method asks for on one labelled test file — the base
//! model with the seeds as demonstrations (ICL), optionally zero-shot, and every LoRA run of the
//! workspace (seeds alone, seeds + accepted) — each result saved as `eval.json` (ICL and
//! zero-shot in a new `runs/<time>-eval-<method>` folder, LoRA in its own run folder), where the
//! Evaluate screen and `seedforge runs` read them side by side.
//!
//! Every problem with the test file is the user's to fix, so it comes back as words, never a
//! panic: a file that cannot be read, bad rows (file and line, as log lines), no row carrying
//! one of the task's labels (usually a missing label map such as `0=negative,1=positive`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;

use super::event::{Event, JobId, JobKind};
use super::generate_job::task_of;
use super::{EvalRequest, JobControl, Sink};
use crate::data::import::{ImportError, Row, import_file};
use crate::data::task::Task;
use crate::data::workspace::Workspace;
use crate::eval::report::{EvalReport, Method};
use crate::eval::run::{EvalOptions, evaluate_until};
use crate::llm::load::LoadedModel;
use crate::llm::model::Llama;
use crate::pipeline::prompt::Templates;
use crate::train::peft;

/// Import problems sent one by one before the rest are only counted.
const SHOWN_PROBLEMS: usize = 10;
/// Rows classified together (small: the stop key is answered between chunks of 4 batches).
const BATCH: usize = 8;

/// One thing to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    ZeroShot,
    Icl,
    Lora(PathBuf),
}

impl Target {
    fn method(&self) -> Method {
        match self {
            Target::ZeroShot => Method::ZeroShot,
            Target::Icl => Method::Icl,
            Target::Lora(_) => Method::Lora,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Target::Lora(dir) => format!("lora {}", super::job::folder_name(dir)),
            other => other.method().name().to_string(),
        }
    }
}

impl Target {
    /// The model that reads for this target: the base model, or a copy of it carrying the
    /// run's adapter.
    pub fn model<'m>(&self, base: &'m Llama) -> anyhow::Result<Cow<'m, Llama>> {
        match self {
            Target::Lora(dir) => peft::with_adapter(base, dir).map(Cow::Owned),
            _ => Ok(Cow::Borrowed(base)),
        }
    }

    /// How the workbench reads it: a run as it says it is read (`eval::reading`), the base
    /// model's methods calibrated or not as asked.
    pub fn options(&self, calibrate: bool) -> anyhow::Result<EvalOptions> {
        Ok(match self {
            Target::Lora(dir) => EvalOptions {
                batch: BATCH,
                ..crate::eval::reading::eval_options_for_run(dir)?
            },
            other => EvalOptions {
                calibrate,
                batch: BATCH,
                ..EvalOptions::new(other.method())
            },
        })
    }
}

/// What an evaluation reads: the task, its prompts and the test rows, and the file they came
/// from (recorded in the report).
pub struct TestSet<'a> {
    pub task: &'a Task,
    pub templates: &'a Templates,
    pub rows: &'a [Row],
    pub file: &'a Path,
}

/// Where one evaluation's rows fall in its job's progress: after `done_before` of `total`.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub done_before: usize,
    pub total: usize,
    pub started: Instant,
}

impl Span {
    /// An evaluation that is its job's only one.
    pub fn whole(rows: usize) -> Span {
        Span {
            done_before: 0,
            total: rows,
            started: Instant::now(),
        }
    }
}

/// One evaluation as every path runs it — the workbench's job, `seedforge eval`, `train
/// --eval` and each arm of the experiment: `model` (the target's, see [`Target::model`]) reads
/// the test rows as `options` say, progress goes up as [`Event::Progress`], a pause holds it and
/// a stop ends it between batches (`None`).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_one(
    job: JobId,
    loaded: &LoadedModel,
    model: &Llama,
    test: &TestSet,
    target: &Target,
    options: &EvalOptions,
    span: Span,
    control: &JobControl,
    events: &Sink,
) -> anyhow::Result<Option<EvalReport>> {
    let adapter = match target {
        Target::Lora(dir) => Some(dir.as_path()),
        _ => None,
    };
    evaluate_until(
        model,
        &loaded.tokenizer,
        test.task,
        test.templates,
        test.rows,
        test.file,
        options,
        &loaded.info.path.display().to_string(),
        adapter,
        &mut |done, _| {
            control.wait_while_paused();
            let done = span.done_before + done;
            let secs = span.started.elapsed().as_secs_f64();
            events.send(Event::Progress {
                job,
                done,
                total: span.total,
                tokens_per_second: 0.0,
                eta_seconds: (done > 0)
                    .then(|| secs / done as f64 * span.total.saturating_sub(done) as f64),
            });
        },
        &|| control.is_stopped(),
    )
    .with_context(|| format!("evaluating {}", target.name()))
}

/// The run folders under `runs` that hold a complete LoRA adapter, oldest first, and why each
/// folder whose adapter is incomplete (a crash while it was written) is left out, naming the
/// file: one such folder must not fail the evaluation of all the others.
pub fn adapter_runs(runs: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut complete = Vec::new();
    let mut broken = Vec::new();
    for dir in dirs {
        match peft::check_adapter(&dir) {
            Ok(true) => complete.push(dir),
            Ok(false) => {}
            Err(e) => broken.push(e.to_string()),
        }
    }
    (complete, broken)
}

/// The run folders under `runs` that hold a distilled student (`student.json`), oldest first.
pub fn student_runs(runs: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| crate::student::store::is_student(p))
        .collect();
    dirs.sort();
    dirs
}

/// The rows of the test file that carry one of the task's labels; problems go up as log lines.
pub fn read_test(request: &EvalRequest, task: &Task, events: &Sink) -> anyhow::Result<Vec<Row>> {
    let path = &request.test;
    let imported = match import_file(path, &request.read) {
        Ok(i) => i,
        Err(ImportError::Io { source, .. }) => {
            anyhow::bail!("cannot read the test file {}: {source}", path.display())
        }
        Err(e) => return Err(e.into()),
    };
    for p in imported.problems.iter().take(SHOWN_PROBLEMS) {
        events.send(Event::Log(format!("warning: {p}")));
    }
    if imported.problems.len() > SHOWN_PROBLEMS {
        events.send(Event::Log(format!(
            "warning: {} more problems in {}",
            imported.problems.len() - SHOWN_PROBLEMS,
            path.display()
        )));
    }
    let names = task.label_names();
    let found = imported.labels(None);
    let mut rows = imported.rows;
    let read = rows.len();
    rows.retain(|r| names.contains(&r.label.as_str()));
    if rows.is_empty() {
        let what = if read > 0 {
            format!(" (its {read} rows have {})", shorten(&found, 6))
        } else {
            match imported.problems.first() {
                Some(p) => format!(" (no row was read; first problem: {p})"),
                None => " (it has no rows)".into(),
            }
        };
        anyhow::bail!(
            "{}: no row has one of the task's labels ({}){what}; a label map such as {} maps \
             the file's labels to the task's",
            path.display(),
            names.join(", "),
            example_map(&names)
        );
    }
    if rows.len() < read {
        events.send(Event::Log(format!(
            "warning: {} of {read} rows of {} have labels that are not the task's; they are \
             not scored",
            read - rows.len(),
            path.display()
        )));
    }
    if let Some(n) = request.limit {
        rows.truncate(n.max(1));
    }
    Ok(rows)
}

/// `a, b, c and 7 more`.
fn shorten(labels: &[String], n: usize) -> String {
    let mut s = labels
        .iter()
        .take(n)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if labels.len() > n {
        s.push_str(&format!(" and {} more", labels.len() - n));
    }
    format!("labels {s}")
}

/// `0=negative,1=positive` for the task's labels.
fn example_map(names: &[&str]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub use super::job::Outcome;

/// Whether `dir` already holds an evaluation on this test file with these rows.
fn up_to_date(dir: &Path, test: &Path, n: usize) -> bool {
    EvalReport::load(dir).is_ok_and(|r| r.test_file == test && r.metrics.n == n)
}

pub fn run(
    job: JobId,
    model: &LoadedModel,
    ws: &Mutex<Workspace>,
    request: &EvalRequest,
    control: &JobControl,
    events: &Sink,
) -> anyhow::Result<Outcome> {
    let task = task_of(ws);
    let runs_dir = ws.lock().unwrap_or_else(|e| e.into_inner()).runs_dir();
    let mut targets = Vec::new();
    if request.zero_shot {
        targets.push(Target::ZeroShot);
    }
    if request.icl {
        anyhow::ensure!(
            !task.seeds.is_empty(),
            "in-context learning needs seeds as demonstrations; add some on the Seeds screen"
        );
        targets.push(Target::Icl);
    }
    let loras = match &request.lora {
        Some(l) => l.clone(),
        None => {
            let (complete, broken) = adapter_runs(&runs_dir);
            for why in broken {
                events.send(Event::Log(format!("warning: run left out: {why}")));
            }
            complete
        }
    };
    let rows = read_test(request, &task, events)?;
    let mut skipped = 0;
    for dir in loras {
        if up_to_date(&dir, &request.test, rows.len()) {
            skipped += 1;
        } else {
            targets.push(Target::Lora(dir));
        }
    }
    // Distilled students of the workspace, beside their teachers (not with a given list).
    let mut students = Vec::new();
    if request.lora.is_none() {
        for dir in student_runs(&runs_dir) {
            if up_to_date(&dir, &request.test, rows.len()) {
                skipped += 1;
            } else {
                students.push(dir);
            }
        }
    }
    anyhow::ensure!(
        !targets.is_empty() || !students.is_empty() || skipped > 0,
        "nothing to evaluate: no method chosen and no LoRA run in {}",
        runs_dir.display()
    );
    let templates = Templates::for_task(&task)?;
    let per = rows.len();
    let count = targets.len() + students.len();
    let total = per * count;
    events.send(Event::JobStarted {
        job,
        kind: JobKind::Evaluate,
        total,
    });
    let started = Instant::now();
    let test = TestSet {
        task: &task,
        templates: &templates,
        rows: &rows,
        file: &request.test,
    };
    let mut results: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut cancelled = false;
    for (i, target) in targets.iter().enumerate() {
        if control.is_stopped() {
            cancelled = true;
            break;
        }
        let name = target.name();
        events.send(Event::EvalStarted {
            job,
            name: name.clone(),
            index: i,
            count,
        });
        let m = match target.model(&model.model) {
            Ok(m) => m,
            Err(e) => {
                let msg = format!("{name}: cannot load its adapter: {e:#}");
                events.send(Event::Log(format!("error: {msg}")));
                failed.push(msg);
                continue;
            }
        };
        let options = match target.options(request.calibrate) {
            Ok(o) => o,
            Err(e) => {
                let msg = format!("{name}: cannot tell how to read it: {e:#}");
                events.send(Event::Log(format!("error: {msg}")));
                failed.push(msg);
                continue;
            }
        };
        let span = Span {
            done_before: i * per,
            total,
            started,
        };
        let report = evaluate_one(
            job, model, &m, &test, target, &options, span, control, events,
        )?;
        let Some(report) = report else {
            cancelled = true;
            break;
        };
        let dir = match target {
            Target::Lora(dir) => dir.clone(),
            other => ws
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .new_run_dir(&format!("eval-{}", other.method().name()))?,
        };
        let saved = report
            .save(&dir)
            .with_context(|| format!("saving the result of {name} in {}", dir.display()))?;
        let summary = format!(
            "{name}: accuracy {:.1}%, macro-F1 {:.3} on {} rows",
            report.metrics.accuracy * 100.0,
            report.metrics.macro_f1,
            report.metrics.n
        );
        events.send(Event::EvalSaved {
            job,
            run: saved.parent().map(Path::to_path_buf).unwrap_or(dir),
            summary: summary.clone(),
        });
        results.push(summary);
    }
    for (j, dir) in students.iter().enumerate() {
        if cancelled || control.is_stopped() {
            cancelled = true;
            break;
        }
        let i = targets.len() + j;
        let name = format!("student {}", super::job::folder_name(dir));
        events.send(Event::EvalStarted {
            job,
            name: name.clone(),
            index: i,
            count,
        });
        let student = match crate::student::Student::load(dir, &burn::tensor::Device::flex()) {
            Ok(s) if s.record.labels == task.label_names() => s,
            Ok(s) => {
                let msg = format!(
                    "{name}: its labels ({}) are not the task's",
                    s.record.labels.join(", ")
                );
                events.send(Event::Log(format!("error: {msg}")));
                failed.push(msg);
                continue;
            }
            Err(e) => {
                let msg = format!("{name}: {e}");
                events.send(Event::Log(format!("error: {msg}")));
                failed.push(msg);
                continue;
            }
        };
        let base = i * per;
        let report = crate::eval::run::evaluate_student(
            &student,
            &task,
            &rows,
            &request.test,
            dir,
            &mut |done, _| {
                events.send(Event::Progress {
                    job,
                    done: base + done,
                    total,
                    tokens_per_second: 0.0,
                    eta_seconds: None,
                })
            },
        )
        .with_context(|| format!("evaluating {name}"))?;
        let saved = report
            .save(dir)
            .with_context(|| format!("saving the result of {name} in {}", dir.display()))?;
        let summary = format!(
            "{name}: accuracy {:.1}%, macro-F1 {:.3} on {} rows ({:.0} rows/s)",
            report.metrics.accuracy * 100.0,
            report.metrics.macro_f1,
            report.metrics.n,
            report.metrics.n as f64 / report.seconds.max(1e-9)
        );
        events.send(Event::EvalSaved {
            job,
            run: saved.parent().map(Path::to_path_buf).unwrap_or(dir.clone()),
            summary: summary.clone(),
        });
        results.push(summary);
    }
    let mut summary = if results.is_empty() {
        "nothing new evaluated".to_string()
    } else {
        results.join("; ")
    };
    if skipped > 0 {
        summary.push_str(&format!(
            "; {skipped} LoRA run(s) already evaluated on this test set"
        ));
    }
    if !failed.is_empty() {
        summary.push_str(&format!("; failed: {}", failed.join("; ")));
    }
    Ok(Outcome { cancelled, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::model::tests::tiny_model;
    use crate::train::lora::{self, LoraConfig, Target};

    #[test]
    fn only_complete_adapters_are_evaluated_and_a_cut_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path();
        let mut m = tiny_model(&burn::tensor::Device::flex());
        let cfg = LoraConfig {
            rank: 2,
            alpha: 4.0,
            dropout: 0.0,
            targets: vec![Target::Q],
        };
        lora::attach(&mut m, &cfg, 1).unwrap();
        for name in [
            "20261121-090000-train-seeds",
            "20261121-100000-train-accepted",
        ] {
            peft::save(&m, &runs.join(name), "tiny").unwrap();
        }
        std::fs::create_dir(runs.join("20261121-110000-eval-icl")).unwrap();
        let cut = runs
            .join("20261121-100000-train-accepted")
            .join(peft::WEIGHTS_FILE);
        let bytes = std::fs::read(&cut).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() - 1]).unwrap();
        let (complete, broken) = adapter_runs(runs);
        assert_eq!(complete, [runs.join("20261121-090000-train-seeds")]);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].contains(&cut.display().to_string()), "{broken:?}");
    }
}
