//! `seedforge distil`: a small, fast student learnt from a LoRA run (the teacher): the seeds
//! with their labels, and the texts the run trained on plus any unlabelled texts with the
//! teacher's probabilities. Saves `student.safetensors` + `student.json` in a run folder that
//! `predict --run` and `eval --adapter` read like any other.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::input_args::InputArgs;
use super::model_args::ModelArgs;
use super::predict::{load_task, model_for, run_target};
use super::task_arg::TaskArg;
use crate::engine::distil_job::{Hooks, default_out, teach};
use crate::pipeline::predict::{self, BadRows, ReadOptions};
use crate::student::distil::{DistilSettings, DistilTexts};
use crate::student::features::Hashing;
use crate::student::train::StudentConfig;
use crate::train::run::run_examples;

#[derive(Debug, Args)]
pub struct DistilArgs {
    /// The teacher: a LoRA classifier run (`seedforge train`), read as the workbench reads it.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The task (labels and seeds). Default: --workspace's, else the workspace the run sits
    /// in, else the bundled demo task.
    #[command(flatten)]
    pub task: TaskArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Texts nobody labelled (your real data), for the teacher to label: one a line, or TSV,
    /// CSV, JSONL (the text column found as `predict` finds it); repeatable.
    #[arg(long, value_name = "FILE")]
    pub unlabelled: Vec<PathBuf>,
    /// More texts for the teacher to label, read like --unlabelled; for runs saved before
    /// seedforge recorded the texts a run trained on (`examples.jsonl`).
    #[arg(long, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Column or JSONL field holding the text in --unlabelled / --data files.
    #[arg(long, value_name = "NAME")]
    pub text_field: Option<String>,
    /// The student's run folder (default: <time>-student beside the teacher's run).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Softens (> 1) or sharpens (< 1) the teacher's probabilities before the student learns
    /// them (1: chosen on validation rows, where 2 and 4 were no better; docs/results.md).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Learn the teacher's top label instead of its probabilities.
    #[arg(long)]
    pub hard_labels: bool,
    #[arg(long, default_value_t = StudentConfig::default().epochs)]
    pub epochs: usize,
    /// Width of the feature embeddings.
    #[arg(long, default_value_t = StudentConfig::default().dim)]
    pub dim: usize,
    /// Hash buckets for word and character n-grams.
    #[arg(long, default_value_t = Hashing::default().buckets)]
    pub buckets: u32,
    #[arg(long, default_value_t = StudentConfig::default().lr)]
    pub lr: f64,
    /// Seed of the initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep the teacher's answers in this JSONL file and reuse those it holds: another
    /// distillation from the same run (another temperature, more epochs) asks the teacher only
    /// about new texts.
    #[arg(long, value_name = "FILE")]
    pub teacher_labels: Option<PathBuf>,
    /// Texts the teacher scores together.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Evaluate the student on this labelled file afterwards (eval.json in its folder), beside
    /// the teacher's own evaluation on the same file when it has one.
    #[arg(long, value_name = "FILE")]
    pub eval: Option<PathBuf>,
    #[command(flatten)]
    pub read: InputArgs,
}

/// The texts of the files in `paths`, bad rows reported and skipped.
fn read_texts(
    paths: &[PathBuf],
    text_field: Option<&str>,
    task_field: &str,
) -> anyhow::Result<Vec<String>> {
    let opts = ReadOptions {
        format: None,
        text_field: text_field.map(String::from),
        task_field: Some(task_field.to_string()),
        id_field: None,
        bad_rows: BadRows::Skip,
    };
    let mut out = Vec::new();
    for p in paths {
        let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        let r = predict::input::read_bytes(p, &bytes, &opts)?;
        for problem in &r.problems {
            eprintln!("warning: {problem}");
        }
        eprintln!(
            "seedforge: read {} texts from {} ({})",
            r.inputs.len(),
            p.display(),
            r.columns
        );
        out.extend(r.inputs.into_iter().map(|i| i.text));
    }
    Ok(out)
}

pub fn run(args: DistilArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    let task = load_task(&args.task, Some(&args.run), workspace.as_deref())?;
    // Refused in words when the run is a teacher or of another task.
    run_target(&args.run, &task)?;
    let eval_rows = match &args.eval {
        Some(p) => Some(args.read.read(p, &mut std::io::stderr())?),
        None => None,
    };
    let mut teacher_texts = read_texts(&args.data, args.text_field.as_deref(), &task.input_field)?;
    match run_examples(&args.run) {
        Ok(ex) => teacher_texts.extend(ex.into_iter().map(|e| e.text)),
        Err(e) if !args.data.is_empty() => eprintln!("seedforge: {e:#}; using --data"),
        Err(e) => return Err(e),
    }
    let texts = DistilTexts {
        teacher: teacher_texts,
        unlabelled: read_texts(
            &args.unlabelled,
            args.text_field.as_deref(),
            &task.input_field,
        )?,
    };
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.run));
    anyhow::ensure!(
        !out.join(crate::student::store::CONFIG_FILE).exists(),
        "{} already holds a student; name another --out",
        out.display()
    );

    let (mut loaded, _) = model_for(&args.model, Some(&args.run)).load()?;
    super::model_args::attach_adapter(&mut loaded.model, &args.run)?;
    let settings = DistilSettings {
        student: StudentConfig {
            hashing: Hashing {
                buckets: args.buckets.max(1),
                ..Hashing::default()
            },
            dim: args.dim.max(1),
            epochs: args.epochs.max(1),
            lr: args.lr,
            seed: args.seed,
            ..StudentConfig::default()
        },
        temperature: args.temperature,
        hard_labels: args.hard_labels,
    };
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut teacher_secs = 0.0;
    let mut bar: Option<ProgressBar> = None;
    let student = teach(
        &loaded.model,
        &loaded.tokenizer,
        &task,
        &args.run,
        texts,
        &settings,
        &out,
        args.teacher_labels.as_deref(),
        args.batch,
        Hooks {
            labelled: &mut |done, total| {
                teacher_secs = started.elapsed().as_secs_f64();
                if !tty {
                    return;
                }
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(total as u64);
                    if let Ok(style) = ProgressStyle::with_template(
                        "  teacher {bar:40} {pos}/{len} texts ({per_sec}, {eta} left)",
                    ) {
                        b.set_style(style);
                    }
                    b
                });
                b.set_position(done as u64);
                if done >= total {
                    b.finish_and_clear();
                }
            },
            say: &mut |line| {
                if tty
                    || !line.starts_with("epoch")
                    || line.starts_with(&format!("epoch {}:", settings.student.epochs))
                {
                    eprintln!("seedforge: {line}");
                }
            },
            stop: &|| false,
        },
    )?
    .ok_or_else(|| anyhow::anyhow!("the distillation was stopped"))?;
    let r = &student.record;
    eprintln!(
        "seedforge: student trained on {} seeds, {} of the teacher's texts and {} unlabelled \
         (teacher {:.1} s, all {:.1} s); saved in {}",
        r.seeds,
        r.teacher_texts,
        r.unlabelled_texts,
        teacher_secs,
        started.elapsed().as_secs_f64(),
        out.display()
    );

    if let (Some(path), Some(imported)) = (&args.eval, eval_rows) {
        let report = crate::eval::run::evaluate_student(
            &student,
            &task,
            &imported.rows,
            path,
            &out,
            &mut |_, _| {},
        )?;
        report.save(&out).with_context(|| {
            format!(
                "saving {}",
                out.join(crate::eval::report::EVAL_FILE).display()
            )
        })?;
        super::eval::print_report(&report);
        let teacher = crate::eval::report::EvalReport::load(&args.run)
            .ok()
            .filter(|t| t.test_file == *path);
        eprintln!(
            "seedforge: student {:.2}% on {} rows ({:.0} rows/s){}",
            report.metrics.accuracy * 100.0,
            report.metrics.n,
            report.metrics.n as f64 / report.seconds.max(1e-9),
            match teacher {
                Some(t) => format!(
                    "; its teacher {:.2}% ({:.1} rows/s)",
                    t.metrics.accuracy * 100.0,
                    t.metrics.n as f64 / t.seconds.max(1e-9)
                ),
                None => String::new(),
            }
        );
    }
    println!("{}", out.display());
    Ok(())
}
