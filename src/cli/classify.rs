//! `seedforge classify`: the in-context classifier over a data file — predictions, and accuracy
//! when the file has labels.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::{Map, Value, json};

use super::input_args::InputArgs;
use super::model_args::ModelArgs;
use super::task_arg::TaskArg;
use crate::eval::metrics::Metrics;
use crate::pipeline::classify::{Classifier, ClassifierOptions, interleave_by_label};
use crate::pipeline::prompt::{Templates, default_instruction};

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub task: TaskArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The texts to classify (any format `init` reads; a label column is optional).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    #[command(flatten)]
    pub read: InputArgs,
    /// Classify only the first N rows.
    #[arg(long)]
    pub limit: Option<usize>,
    /// No demonstrations: the prompt holds only the input (default: the task's seeds as
    /// demonstrations, k-shot).
    #[arg(long)]
    pub zero_shot: bool,
    /// Put an instruction line before the prompt ("Classify sentiment as negative or positive.").
    #[arg(long)]
    pub instruction: bool,
    /// Order of the demonstrations: as in the task, or alternating between labels.
    #[arg(long, default_value = "task", value_parser = ["task", "interleaved"])]
    pub demo_order: String,
    /// Contextual calibration: divide by the label prior on content-free inputs.
    #[arg(long)]
    pub calibrate: bool,
    /// Inputs scored together.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// One JSON object: {"n", "accuracy", "predictions": [{"text","label","predicted","probs"}]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ClassifyArgs) -> anyhow::Result<()> {
    let task = args.task.load()?;
    let mut log = std::io::stderr();
    let mut imported = args.read.read(&args.input, &mut log)?;
    if let Some(n) = args.limit {
        imported.rows.truncate(n);
    }
    anyhow::ensure!(
        !imported.rows.is_empty(),
        "{}: no rows to classify",
        args.input.display()
    );
    let (loaded, _) = args.model.load()?;
    let templates = Templates::for_task(&task)?;
    let options = ClassifierOptions {
        demos: match (args.zero_shot, args.demo_order.as_str()) {
            (true, _) => Vec::new(),
            (false, "interleaved") => interleave_by_label(&task.seeds, &task.labels),
            (false, _) => task.seeds.clone(),
        },
        instruction: args.instruction.then(|| default_instruction(&task)),
        calibrate: args.calibrate,
        batch: args.batch.max(1),
        ..ClassifierOptions::default()
    };
    let shots = options.demos.len();
    let started = Instant::now();
    let classifier = Classifier::new(&loaded.model, &loaded.tokenizer, &task, &templates, options)?;
    let texts: Vec<&str> = imported.rows.iter().map(|r| r.text.as_str()).collect();
    let predictions = classifier.classify(&texts)?;
    let seconds = started.elapsed().as_secs_f64();

    let names = task
        .label_names()
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let labelled: Vec<(&str, &str)> = imported
        .rows
        .iter()
        .zip(&predictions)
        .filter(|(r, _)| !r.label.is_empty())
        .map(|(r, p)| (r.label.as_str(), p.label.as_str()))
        .collect();
    let unknown = labelled
        .iter()
        .filter(|(g, _)| !names.iter().any(|n| n == g))
        .count();
    let metrics =
        (!labelled.is_empty()).then(|| Metrics::compute(&names, labelled.iter().copied()));
    if args.json {
        let preds: Vec<Value> = imported
            .rows
            .iter()
            .zip(&predictions)
            .map(|(r, p)| {
                let probs: Map<String, Value> = p.probs.iter().map(|(l, q)| (l.clone(), json!(q))).collect();
                json!({"text": r.text, "label": if r.label.is_empty() { Value::Null } else { json!(r.label) },
                       "predicted": p.label, "probs": probs})
            })
            .collect();
        let out = json!({
            "n": predictions.len(),
            "accuracy": metrics.as_ref().map(|m| m.accuracy),
            "macro_f1": metrics.as_ref().map(|m| m.macro_f1),
            "confusion": metrics.as_ref().map(|m| &m.confusion),
            "labels": names,
            "shots": shots,
            "calibrated": args.calibrate,
            "seconds": seconds,
            "predictions": preds,
        });
        println!("{out}");
    } else {
        if metrics.is_none() {
            for (r, p) in imported.rows.iter().zip(&predictions) {
                println!(
                    "{}\t{:.3}\t{}",
                    p.label,
                    p.prob_of(&p.label).unwrap_or(0.0),
                    r.text
                );
            }
        }
        if let Some(m) = &metrics {
            println!(
                "{}-shot{}: accuracy {:.2}% ({} of {}), macro-F1 {:.3}",
                shots,
                if args.calibrate { ", calibrated" } else { "" },
                m.accuracy * 100.0,
                (m.accuracy * m.n as f64).round() as usize,
                m.n,
                m.macro_f1
            );
            print!("{}", m.confusion_table());
        }
    }
    if unknown > 0 {
        eprintln!(
            "warning: {unknown} rows have labels that are not the task's ({}); they are not scored",
            names.join(", ")
        );
    }
    eprintln!(
        "seedforge: classified {} texts in {seconds:.1} s ({:.1} texts/s)",
        predictions.len(),
        predictions.len() as f64 / seconds
    );
    Ok(())
}
