//! `seedforge eval`: a method (zero-shot, in-context learning, or a LoRA adapter) on a labelled
//! test file — accuracy, macro-F1, per-class precision/recall, confusion matrix — saved as
//! `eval.json` in a run folder; and `seedforge runs`: every evaluated run side by side.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;

use super::input_args::InputArgs;
use super::model_args::ModelArgs;
use super::task_arg::TaskArg;
use crate::data::import::Row;
use crate::data::task::Task;
use crate::engine::eval_job::{Span, Target, TestSet, evaluate_one};
use crate::engine::{Event, JobControl, headless};
use crate::eval::paired::{Scored, against_twins, cell};
use crate::eval::report::{self, EvalReport, Method};
use crate::eval::run::EvalOptions;
use crate::eval::run_folder::{self, SavedEval};
use crate::llm::load::LoadedModel;
use crate::llm::model::Llama;
use crate::pipeline::prompt::Templates;
use crate::train::run::TrainedOn;

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub task: TaskArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The labelled test file (any format `init` reads).
    #[arg(long, value_name = "FILE")]
    pub test: PathBuf,
    #[command(flatten)]
    pub read: InputArgs,
    /// zero-shot, icl (the task's seeds as demonstrations), lora (needs --adapter) or student
    /// (--adapter: a run from `seedforge distil`; a student folder is read as one anyway).
    #[arg(long, default_value = "icl")]
    pub method: Method,
    /// A run folder holding a LoRA adapter (adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "RUN")]
    pub adapter: Option<PathBuf>,
    /// Contextual calibration of the label scores (for lora, the run's own reading is the
    /// default: half strength when it trained on generated examples, none otherwise).
    #[arg(long, conflicts_with = "uncalibrated")]
    pub calibrate: bool,
    /// Divide by this share of the content-free prior (1: all of it; implies --calibrate).
    #[arg(long, value_name = "S", conflicts_with = "uncalibrated")]
    pub calibration_strength: Option<f64>,
    /// Read the label scores as they are, whatever the run's own reading.
    #[arg(long)]
    pub uncalibrated: bool,
    /// ICL: keep the demonstrations in the task's order instead of alternating labels.
    #[arg(long)]
    pub task_order: bool,
    /// Evaluate only the first N rows.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Where to save eval.json (default: the adapter's run folder for lora, else a new
    /// runs/<time>-eval-<method> folder in the workspace or beside the task).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    let task = match (&args.task.task, &workspace) {
        (None, Some(ws)) => crate::data::task::Task::load(ws)
            .with_context(|| format!("loading the task of {}", ws.display()))?,
        _ => args.task.load()?,
    };
    anyhow::ensure!(
        args.method != Method::Lora || args.adapter.is_some(),
        "--method lora needs --adapter RUN (a folder with adapter_config.json)"
    );
    let mut log = std::io::stderr();
    let mut imported = args.read.read(&args.test, &mut log)?;
    if let Some(n) = args.limit {
        imported.rows.truncate(n);
    }
    let names = task.label_names();
    let unknown = imported
        .rows
        .iter()
        .filter(|r| !names.contains(&r.label.as_str()))
        .count();
    anyhow::ensure!(
        unknown < imported.rows.len(),
        "{}: no row has one of the task's labels ({}); --label-map maps the file's labels",
        args.test.display(),
        names.join(", ")
    );
    if unknown > 0 {
        eprintln!(
            "warning: {unknown} rows have labels that are not the task's; they are not scored"
        );
    }
    if let Some(dir) = args
        .adapter
        .as_deref()
        .filter(|d| args.method == Method::Student || crate::student::store::is_student(d))
    {
        return eval_student(&args, &task, &imported.rows, dir);
    }
    anyhow::ensure!(
        args.method != Method::Student,
        "--method student needs --adapter RUN (a folder with student.json from `seedforge \
         distil`)"
    );
    let target = match (&args.adapter, args.method) {
        (Some(dir), Method::Lora) => Target::Lora(dir.clone()),
        (Some(_), m) => anyhow::bail!(
            "--adapter is read with --method lora (or student), not {}",
            m.name()
        ),
        (None, Method::ZeroShot) => Target::ZeroShot,
        (None, _) => Target::Icl,
    };
    let templates = Templates::for_task(&task)?;
    if let Some(s) = args.calibration_strength {
        anyhow::ensure!(
            (0.0..=1.0).contains(&s),
            "--calibration-strength {s}: a share between 0 and 1"
        );
    }
    let run_reading = match &target {
        Target::Lora(dir) => crate::eval::reading::eval_options_for_run(dir)?,
        _ => EvalOptions::new(args.method),
    };
    let asked = args.calibrate || args.calibration_strength.is_some();
    let options = EvalOptions {
        method: args.method,
        calibrate: asked || (run_reading.calibrate && !args.uncalibrated),
        calibration_strength: args.calibration_strength.unwrap_or(if asked {
            1.0
        } else {
            run_reading.calibration_strength
        }),
        interleave: !args.task_order,
        batch: args.batch,
    };
    let (loaded, _) = args.model.load()?;
    let model = target.model(&loaded.model)?;
    if let Target::Lora(dir) = &target {
        eprintln!("seedforge: adapter {}", dir.display());
    }
    let report = evaluate_headless(
        &loaded,
        &model,
        &task,
        &templates,
        &imported.rows,
        &args.test,
        &target,
        &options,
    )?;
    let out = match (&args.out, &args.adapter, args.method) {
        (Some(o), _, _) => o.clone(),
        (None, Some(a), Method::Lora) => a.clone(),
        _ => default_run_dir(
            workspace.as_deref().or(args.task.task.as_deref()),
            args.method,
        ),
    };
    save_and_show(&report, &out, args.json)
}

/// The workbench's evaluation of one target, its progress shown as a count on a terminal and
/// a line every tenth otherwise (`train --eval` shows it the same way).
#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_headless(
    loaded: &LoadedModel,
    model: &Llama,
    task: &Task,
    templates: &Templates,
    rows: &[Row],
    file: &Path,
    target: &Target,
    options: &EvalOptions,
) -> anyhow::Result<EvalReport> {
    let test = TestSet {
        task,
        templates,
        rows,
        file,
    };
    let tty = std::io::stderr().is_terminal();
    let mut last = 0;
    let report = headless::run(
        |events| {
            let control = JobControl::default();
            let span = Span::whole(rows.len());
            evaluate_one(
                0, loaded, model, &test, target, options, span, &control, events,
            )
        },
        move |e| {
            if let Event::Progress { done, total, .. } = e {
                if tty {
                    eprint!("\r  {done}/{total}");
                } else if done * 10 / total.max(1) != last {
                    last = done * 10 / total.max(1);
                    eprintln!("  {done}/{total}");
                }
            }
        },
    )?;
    if tty {
        eprintln!();
    }
    // Nothing here stops it: a report always comes back.
    report.context("the evaluation was stopped")
}

/// Saves `report` in `out` and prints it (as JSON with `json`), with rows/s and where it went.
fn save_and_show(report: &EvalReport, out: &Path, json: bool) -> anyhow::Result<()> {
    let saved = report
        .save(out)
        .with_context(|| format!("saving {}", out.join(report::EVAL_FILE).display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_report(report);
    }
    eprintln!(
        "seedforge: {} rows in {:.1} s ({:.1} rows/s); saved {}",
        report.metrics.n,
        report.seconds,
        report.metrics.n as f64 / report.seconds.max(1e-9),
        saved.display()
    );
    Ok(())
}

/// `eval` of a distilled student: no language model is loaded.
fn eval_student(
    args: &EvalArgs,
    task: &crate::data::task::Task,
    rows: &[crate::data::import::Row],
    dir: &Path,
) -> anyhow::Result<()> {
    let student = crate::student::Student::load(dir, &burn::tensor::Device::flex())?;
    anyhow::ensure!(
        student.record.labels == task.label_names(),
        "{}: the student's labels ({}) are not the task's ({})",
        dir.display(),
        student.record.labels.join(", "),
        task.label_names().join(", ")
    );
    let report =
        crate::eval::run::evaluate_student(&student, task, rows, &args.test, dir, &mut |_, _| {})?;
    let out = args.out.clone().unwrap_or_else(|| dir.to_path_buf());
    save_and_show(&report, &out, args.json)
}

fn default_run_dir(base: Option<&Path>, method: Method) -> PathBuf {
    let base = match base {
        Some(p) if p.is_dir() => p.to_path_buf(),
        Some(p) => p
            .parent()
            .filter(|q| !q.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        None => PathBuf::from("."),
    };
    base.join("runs").join(format!(
        "{}-eval-{}",
        crate::data::time::compact(SystemTime::now()),
        method.name()
    ))
}

pub fn print_report(r: &EvalReport) {
    let m = &r.metrics;
    println!(
        "{}{}{}: accuracy {:.2}% ({} rows), macro-F1 {:.3}",
        r.method.name(),
        if r.shots > 0 {
            format!(" ({}-shot)", r.shots)
        } else {
            String::new()
        },
        match crate::eval::reading::Reading::describe(r.calibrated, r.calibration_strength) {
            d if d.is_empty() => d,
            d => format!(", {d}"),
        },
        m.accuracy * 100.0,
        m.n,
        m.macro_f1
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "F1", "support"
    );
    for c in &m.per_class {
        println!(
            "{:<16} {:>9.3} {:>9.3} {:>9.3} {:>8}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
    print!("{}", m.confusion_table());
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// A runs folder to read (default: the workspace's, or ./runs).
    #[arg(long, value_name = "DIR")]
    pub runs: Option<PathBuf>,
}

/// `seedforge runs`: every run with an eval.json, side by side.
pub fn list_runs(args: RunsArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = args
        .runs
        .or_else(|| workspace.map(|w| w.join("runs")))
        .unwrap_or_else(|| PathBuf::from("runs"));
    // Oldest first, as a table read top to bottom; a folder that cannot be read is said, not
    // skipped in silence.
    let mut runs: Vec<(String, EvalReport)> = Vec::new();
    let mut trained: Vec<Option<TrainedOn>> = Vec::new();
    for folder in run_folder::list(&dir).into_iter().rev() {
        match &folder.eval {
            Ok(Some(SavedEval::Report(r))) => {
                trained.push(folder.trained_on());
                runs.push((folder.name.clone(), (**r).clone()));
            }
            Ok(Some(SavedEval::Early(e))) => eprintln!(
                "seedforge: {}: accuracy {:.2}% on {} ({} rows), saved by an earlier version \
                 without the report the table compares; evaluate it again to list it",
                folder.name,
                e.accuracy * 100.0,
                e.file,
                e.examples
            ),
            Ok(None) => {}
            Err(e) => eprintln!("seedforge: warning: {e}"),
        }
    }
    anyhow::ensure!(
        !runs.is_empty(),
        "{}: no run with an {} yet",
        dir.display(),
        report::EVAL_FILE
    );
    let files: Vec<String> = runs
        .iter()
        .map(|(_, r)| r.test_file.display().to_string())
        .collect();
    let scored: Vec<Scored> = runs
        .iter()
        .zip(&trained)
        .zip(&files)
        .map(|(((_, r), t), f)| Scored {
            seeds_only: r.method == Method::Lora && t.as_ref().is_some_and(TrainedOn::seeds_only),
            with_extra: r.method == Method::Lora && t.as_ref().is_some_and(|t| !t.seeds_only()),
            members: t.as_ref().map_or(1, TrainedOn::members),
            test_file: f,
            correct: &r.correct,
        })
        .collect();
    let twins = against_twins(&scored);
    println!(
        "{}  vs its seeds-only twin (Δ points [95% CI], McNemar p)",
        report::table_header()
    );
    let mut worse = Vec::new();
    for ((name, r), twin) in runs.iter().zip(&twins) {
        let against = match twin {
            Some((i, p)) => {
                if p.worse() {
                    worse.push(name.as_str());
                }
                format!("  {} vs {}", cell(p), runs[*i].0)
            }
            None => String::new(),
        };
        println!("{}{against}", r.row(name));
    }
    for name in worse {
        eprintln!(
            "seedforge: warning: {name} is worse than the seeds alone on the same rows (the 95% \
             interval lies below zero): its extra examples hurt"
        );
    }
    Ok(())
}
