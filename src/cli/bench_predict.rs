//! `seedforge bench predict`: how many texts a second `seedforge predict` labels with a run (or
//! the base model zero-shot) on SST-2 dev rows, at batch 1, 16 and 64, through the same code
//! path (`pipeline::predict::label_all` with the run's own reading). Prints the CPU it ran on;
//! the labels at each batch size are compared with batch 1's, so a faster batch is not a
//! different answer.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::model_args::ModelArgs;
use super::peers;
use super::predict::{load_task, model_for, run_target};
use super::task_arg::TaskArg;
use crate::engine::eval_job::Target;
use crate::engine::predict_job::classifier_options;
use crate::pipeline::classify::{Classifier, Prediction};
use crate::pipeline::predict::{self, Input};
use crate::pipeline::prompt::Templates;
use crate::train::bench::read_sst2;

#[derive(Debug, Args)]
pub struct PredictBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub task: TaskArg,
    /// The run whose adapter labels (default: the base model, zero-shot, on the demo task).
    #[arg(long, value_name = "RUN")]
    pub run: Option<PathBuf>,
    /// The first N rows of the dev file (0: all).
    #[arg(long, default_value_t = 200)]
    pub n: usize,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub batches: Vec<usize>,
    /// SST-2 dev.tsv (default: datasets/sst2/dev.tsv in the shared folder).
    #[arg(long, value_name = "FILE")]
    pub dev: Option<PathBuf>,
    /// Write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Figure {
    batch: usize,
    items: usize,
    seconds: f64,
    items_per_s: f64,
    accuracy: f64,
    /// Rows whose label equals batch 1's (or the first batch size timed).
    same_label: usize,
    /// Largest difference in any label's probability from that first batch size.
    max_prob_diff: f64,
}

/// The CPU's model name (Linux `/proc/cpuinfo`), else the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

pub fn run(args: PredictBenchArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.batches.is_empty() && args.batches.iter().all(|&b| b > 0),
        "--batches: one or more sizes of at least 1"
    );
    let dev = args
        .dev
        .clone()
        .unwrap_or_else(|| peers::shared_dir().join("datasets/sst2/dev.tsv"));
    let mut rows = read_sst2(&dev)?;
    if args.n > 0 {
        rows.truncate(args.n);
    }
    let inputs: Vec<Input> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Input {
            line: i + 2,
            id: None,
            text: r.text.clone(),
        })
        .collect();
    let task = load_task(&args.task, args.run.as_deref(), workspace.as_deref())?;
    let target = match &args.run {
        Some(run) => run_target(run, &task)?,
        None => Target::ZeroShot,
    };
    let (mut loaded, device) = model_for(&args.model, args.run.as_deref()).load()?;
    if let Target::Lora(dir) = &target {
        super::model_args::attach_adapter(&mut loaded.model, dir)?;
    }
    let templates = Templates::for_task(&task)?;
    // SST-2's 0/1 as the task's first and second label (negative, positive).
    let names = task.label_names();
    let gold = |label: &str| {
        let i = usize::from(label == "positive");
        names.get(i).copied().unwrap_or(label).to_string()
    };
    let mut figures: Vec<Figure> = Vec::new();
    let mut first: Option<Vec<Prediction>> = None;
    for &batch in &args.batches {
        let options = classifier_options(&target, &task, false, batch);
        let classifier =
            Classifier::new(&loaded.model, &loaded.tokenizer, &task, &templates, options)?;
        // Untimed warm-up: the first forward allocates what the later ones reuse.
        let warm: Vec<&str> = inputs.iter().take(batch).map(|i| i.text.as_str()).collect();
        classifier.classify(&warm)?;
        let mut preds = Vec::with_capacity(inputs.len());
        let started = Instant::now();
        predict::label_all(
            &classifier,
            &inputs,
            batch,
            &mut |_, p| {
                preds.extend(p);
                Ok(())
            },
            &|| false,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        let reference = first.get_or_insert_with(|| preds.clone());
        let same_label = preds
            .iter()
            .zip(reference.iter())
            .filter(|(a, b)| a.label == b.label)
            .count();
        let max_prob_diff = preds
            .iter()
            .zip(reference.iter())
            .flat_map(|(a, b)| a.probs.iter().zip(&b.probs).map(|(x, y)| (x.1 - y.1).abs()))
            .fold(0.0, f64::max);
        let correct = preds
            .iter()
            .zip(&rows)
            .filter(|(p, r)| p.label == gold(&r.label))
            .count();
        let f = Figure {
            batch,
            items: inputs.len(),
            seconds,
            items_per_s: inputs.len() as f64 / seconds.max(1e-9),
            accuracy: correct as f64 / inputs.len().max(1) as f64,
            same_label,
            max_prob_diff,
        };
        eprintln!(
            "  batch {batch}: {:.1} texts/s ({} texts in {:.1} s)",
            f.items_per_s, f.items, f.seconds
        );
        figures.push(f);
    }
    let what = match &target {
        Target::Lora(dir) => format!("the run {}", dir.display()),
        _ => "the base model, zero-shot".to_string(),
    };
    println!("cpu: {}; device: {}", cpu_model(), device.label);
    println!(
        "seedforge predict with {what} on the first {} rows of {}",
        inputs.len(),
        dev.display()
    );
    println!(
        "{:>6} {:>10} {:>9} {:>9} {:>12} {:>10}",
        "batch", "texts/s", "seconds", "accuracy", "same label", "max |Δp|"
    );
    for f in &figures {
        println!(
            "{:>6} {:>10.1} {:>9.1} {:>8.1}% {:>12} {:>10.1e}",
            f.batch,
            f.items_per_s,
            f.seconds,
            f.accuracy * 100.0,
            format!("{}/{}", f.same_label, f.items),
            f.max_prob_diff
        );
    }
    if let Some(path) = &args.json {
        write_json(path, &what, &device.label, &figures)?;
    }
    Ok(())
}

fn write_json(path: &Path, what: &str, device: &str, figures: &[Figure]) -> anyhow::Result<()> {
    let v = serde_json::json!({
        "cpu": cpu_model(),
        "device": device,
        "classifier": what,
        "seedforge": figures,
    });
    std::fs::write(path, serde_json::to_string_pretty(&v)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
