//! `seedforge bench student`: a distilled student and its teacher (the LoRA run it learnt from)
//! on the same labelled rows in one process — items/s of each, the ratio, how often they give
//! the same label, and each one's accuracy — with the CPU it ran on. The teacher is scored as
//! `eval` scores it (its own reading, `--batch` texts a call); the student passes over the rows
//! again until `--min-seconds` have gone by, so its rate is not one timer tick.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::predict::cpu_model;
use crate::cli::input_args::InputArgs;
use crate::cli::model_args::ModelArgs;
use crate::cli::predict::{load_task, model_for, run_target};
use crate::cli::task_arg::TaskArg;
use crate::eval::report::EvalReport;
use crate::eval::run::{EvalOptions, evaluate, evaluate_student};
use crate::pipeline::prompt::Templates;
use crate::student::{Student, store};

#[derive(Debug, Args)]
pub struct StudentBenchArgs {
    /// The student: a run folder from `seedforge distil`.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// Its teacher (default: the run the student records it learnt from).
    #[arg(long, value_name = "RUN")]
    pub teacher: Option<PathBuf>,
    /// Labelled rows both label (any format `eval` reads; SST-2 needs --label-map
    /// 0=negative,1=positive).
    #[arg(long, value_name = "FILE")]
    pub test: PathBuf,
    #[command(flatten)]
    pub read: InputArgs,
    #[command(flatten)]
    pub task: TaskArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The first N rows (0: all): the teacher labels a few a second.
    #[arg(long, default_value_t = 200)]
    pub n: usize,
    /// Texts the teacher scores together.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// The student is timed over this many seconds at least.
    #[arg(long, default_value_t = 1.0)]
    pub min_seconds: f64,
    /// Write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Side {
    pub run: PathBuf,
    /// Texts labelled in the timed passes.
    pub items: usize,
    pub seconds: f64,
    pub items_per_s: f64,
    pub accuracy: f64,
    pub macro_f1: f64,
}

#[derive(Debug, Serialize)]
pub struct StudentBench {
    pub cpu: String,
    pub device: String,
    pub test_file: PathBuf,
    pub rows: usize,
    pub teacher: Side,
    pub student: Side,
    /// Student items/s ÷ teacher items/s.
    pub speedup: f64,
    /// Rows on which both gave the same label.
    pub same_label: usize,
}

/// Rows on which the two reports' predictions are the same label.
pub fn agreement(a: &EvalReport, b: &EvalReport) -> usize {
    a.rows
        .iter()
        .zip(&b.rows)
        .filter(|(x, y)| x.predicted == y.predicted)
        .count()
}

/// The student's rate: passes over `texts` until `min_seconds` have gone by (at least one).
pub fn time_student(
    student: &Student,
    texts: &[&str],
    min_seconds: f64,
) -> anyhow::Result<(usize, f64)> {
    let started = Instant::now();
    let mut items = 0;
    loop {
        items += student.classify(texts)?.len();
        let secs = started.elapsed().as_secs_f64();
        if secs >= min_seconds {
            return Ok((items, secs));
        }
    }
}

fn side(run: &Path, items: usize, seconds: f64, report: &EvalReport) -> Side {
    Side {
        run: run.to_path_buf(),
        items,
        seconds,
        items_per_s: items as f64 / seconds.max(1e-9),
        accuracy: report.metrics.accuracy,
        macro_f1: report.metrics.macro_f1,
    }
}

pub fn run(args: StudentBenchArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        store::is_student(&args.run),
        "{} holds no student (student.json); make one with `seedforge distil --run RUN`",
        args.run.display()
    );
    let device = burn::tensor::Device::flex();
    let student = Student::load(&args.run, &device)?;
    let teacher = args
        .teacher
        .clone()
        .unwrap_or_else(|| student.record.teacher.clone());
    let task = load_task(&args.task, Some(&teacher), workspace.as_deref())?;
    anyhow::ensure!(
        student.record.labels == task.label_names(),
        "{}: the student's labels ({}) are not the task's ({}); name its task with --task",
        args.run.display(),
        student.record.labels.join(", "),
        task.label_names().join(", ")
    );
    let target = run_target(&teacher, &task)?;
    let mut imported = args.read.read(&args.test, &mut std::io::stderr())?;
    if args.n > 0 {
        imported.rows.truncate(args.n);
    }
    let rows = imported.rows;
    anyhow::ensure!(!rows.is_empty(), "{}: no rows", args.test.display());
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();

    let (mut loaded, lm_device) = model_for(&args.model, Some(&teacher)).load()?;
    let crate::engine::eval_job::Target::Lora(dir) = &target else {
        anyhow::bail!("{} is not a LoRA classifier run", teacher.display());
    };
    crate::cli::model_args::attach_adapter(&mut loaded.model, dir)?;
    let templates = Templates::for_task(&task)?;
    let options = EvalOptions {
        batch: args.batch.max(1),
        ..crate::eval::reading::eval_options_for_run(dir)?
    };
    eprintln!(
        "seedforge: the teacher labels {} rows of {} …",
        rows.len(),
        args.test.display()
    );
    let t_report = evaluate(
        &loaded.model,
        &loaded.tokenizer,
        &task,
        &templates,
        &rows,
        &args.test,
        &options,
        &loaded.info.path.display().to_string(),
        Some(dir),
        &mut |_, _| {},
    )?;
    let s_report = evaluate_student(
        &student,
        &task,
        &rows,
        &args.test,
        &args.run,
        &mut |_, _| {},
    )?;
    let (items, seconds) = time_student(&student, &texts, args.min_seconds)?;
    let bench = StudentBench {
        cpu: cpu_model(),
        device: lm_device.label.clone(),
        test_file: args.test.clone(),
        rows: rows.len(),
        teacher: side(&teacher, rows.len(), t_report.seconds, &t_report),
        student: side(&args.run, items, seconds, &s_report),
        speedup: 0.0,
        same_label: agreement(&t_report, &s_report),
    };
    let bench = StudentBench {
        speedup: bench.student.items_per_s / bench.teacher.items_per_s.max(1e-12),
        ..bench
    };
    print_bench(&bench);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&bench)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn print_bench(b: &StudentBench) {
    println!(
        "cpu: {}; teacher device: {}; student: burn flex",
        b.cpu, b.device
    );
    println!("{} rows of {}", b.rows, b.test_file.display());
    println!(
        "{:<9} {:>9} {:>9} {:>11} {:>9} {:>9}  run",
        "", "texts", "seconds", "texts/s", "accuracy", "macro-F1"
    );
    for (name, s) in [("teacher", &b.teacher), ("student", &b.student)] {
        println!(
            "{name:<9} {:>9} {:>9.2} {:>11.1} {:>8.1}% {:>9.3}  {}",
            s.items,
            s.seconds,
            s.items_per_s,
            s.accuracy * 100.0,
            s.macro_f1,
            s.run.display()
        );
    }
    println!(
        "student ÷ teacher: ×{:.0} texts/s, {:+.1} points; same label on {}/{} rows ({:.1}%)",
        b.speedup,
        (b.student.accuracy - b.teacher.accuracy) * 100.0,
        b.same_label,
        b.rows,
        b.same_label as f64 / b.rows.max(1) as f64 * 100.0
    );
}
