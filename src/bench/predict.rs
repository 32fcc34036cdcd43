//! `seedforge bench predict`: how many texts a second `seedforge predict` labels with a run (or
//! the base model zero-shot) on SST-2 dev rows, at batch 1, 16 and 64, through the same code
//! path (`pipeline::predict::label_all` with the run's own reading). Prints the CPU it ran on;
//! the labels at each batch size are compared with batch 1's, so a faster batch is not a
//! different answer. Then the peer, transformers + PEFT with the same adapter on the same prompts
//! (`benches/predict_peft.py`, run with the peers' Python and `shared/peers/common.py`'s model
//! loading), at the same batch sizes, its labels compared with ours row by row.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::peers;
use super::sst2::read_sst2;
use crate::cli::model_args::ModelArgs;
use crate::cli::predict::{load_task, model_for, run_target};
use crate::cli::task_arg::TaskArg;
use crate::engine::eval_job::Target;
use crate::engine::predict_job::classifier_options;
use crate::pipeline::classify::{Classifier, Prediction};
use crate::pipeline::predict::{self, Input};
use crate::pipeline::prompt::Templates;

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
    /// Skip the transformers + PEFT peer.
    #[arg(long)]
    pub no_peer: bool,
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
        crate::cli::model_args::attach_adapter(&mut loaded.model, dir)?;
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
    let mut job: Option<serde_json::Value> = None;
    for &batch in &args.batches {
        let options = classifier_options(&target, &task, false, batch)?;
        let (calibrate, strength) = (options.calibrate, options.calibration_strength);
        let classifier =
            Classifier::new(&loaded.model, &loaded.tokenizer, &task, &templates, options)?;
        if job.is_none() {
            job = Some(peer_job(&classifier, &inputs, calibrate, strength)?);
        }
        // Untimed warm-up: the first forward allocates what the later ones reuse.
        let warm: Vec<&str> = inputs.iter().take(batch).map(|i| i.text.as_str()).collect();
        classifier.classify(&warm)?;
        let mut preds = Vec::with_capacity(inputs.len());
        let started = Instant::now();
        predict::label_all(
            &predict::with_classifier(&classifier),
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
    let peer = match (&job, args.no_peer) {
        (Some(job), false) => Some(run_peer(job, &target, &args.batches)?),
        _ => None,
    };
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
        "{:>6} {:>10} {:>9} {:>9} {:>12} {:>10} {:>11} {:>7} {:>13}",
        "batch",
        "texts/s",
        "seconds",
        "accuracy",
        "same label",
        "max |Δp|",
        "peer text/s",
        "×peer",
        "same as peer"
    );
    let labels = task.label_names();
    for f in &figures {
        let run = peer
            .as_ref()
            .and_then(|p| p["runs"].as_array())
            .and_then(|runs| {
                runs.iter()
                    .find(|r| r["batch"].as_u64() == Some(f.batch as u64))
            });
        let rate = run.and_then(|r| Some(r["n"].as_f64()? / r["wall_s"].as_f64()?));
        let same = run.and_then(|r| r["preds"].as_array()).map(|preds| {
            let ours = first.as_deref().unwrap_or_default();
            preds
                .iter()
                .zip(ours)
                .filter(|(p, o)| {
                    p.as_u64()
                        .and_then(|i| labels.get(i as usize))
                        .is_some_and(|l| *l == o.label)
                })
                .count()
        });
        let cell = |v: Option<String>| v.unwrap_or_else(|| "–".into());
        println!(
            "{:>6} {:>10.1} {:>9.1} {:>8.1}% {:>12} {:>10.1e} {:>11} {:>7} {:>13}",
            f.batch,
            f.items_per_s,
            f.seconds,
            f.accuracy * 100.0,
            format!("{}/{}", f.same_label, f.items),
            f.max_prob_diff,
            cell(rate.map(|r| format!("{r:.1}"))),
            cell(rate.map(|r| format!("{:.2}", f.items_per_s / r))),
            cell(same.map(|s| format!("{s}/{}", f.items))),
        );
    }
    if let Some(path) = &args.json {
        write_json(path, &what, &device.label, &figures, peer.as_ref())?;
    }
    Ok(())
}

/// What the peer is given: our exact prompts, the label words, and our reading's calibration.
fn peer_job(
    classifier: &Classifier,
    inputs: &[Input],
    calibrate: bool,
    strength: f64,
) -> anyhow::Result<serde_json::Value> {
    let prompts = inputs
        .iter()
        .map(|i| classifier.prompt(&i.text))
        .collect::<Result<Vec<_>, _>>()?;
    let labels: Vec<&str> = classifier.labels().iter().map(|l| l.verbalizer()).collect();
    let log_prior = if calibrate {
        Some(
            classifier
                .content_free_prior()?
                .iter()
                .map(|p| p.max(f64::MIN_POSITIVE).ln())
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    Ok(serde_json::json!({
        "prompts": prompts, "labels": labels, "log_prior": log_prior, "strength": strength
    }))
}

/// The peer script, kept with the project's benchmarks.
const PEER_SCRIPT: &str = include_str!("../../benches/predict_peft.py");

/// Runs `benches/predict_peft.py` with the peers' Python on `job`.
fn run_peer(
    job: &serde_json::Value,
    target: &Target,
    batches: &[usize],
) -> anyhow::Result<serde_json::Value> {
    let py = peers::python();
    anyhow::ensure!(
        py.exists(),
        "the peers' Python is not at {} (build it with {}/peers/setup.sh, or pass --no-peer)",
        py.display(),
        peers::shared_dir().display()
    );
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("predict_peft.py");
    std::fs::write(&script, PEER_SCRIPT)?;
    let job_path = dir.path().join("job.json");
    std::fs::write(&job_path, serde_json::to_vec(job)?)?;
    let out = dir.path().join("out.json");
    let mut cmd = std::process::Command::new(&py);
    cmd.arg(&script)
        .arg("--peers")
        .arg(peers::shared_dir().join("peers"))
        .arg("--job")
        .arg(&job_path)
        .arg("--batches")
        .arg(
            batches
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .arg("--out")
        .arg(&out);
    if let Target::Lora(dir) = target {
        cmd.arg("--adapter").arg(dir);
    }
    eprintln!("seedforge: running the peer (transformers + PEFT) …");
    let status = cmd.status()?;
    anyhow::ensure!(
        status.success(),
        "the peer predict_peft.py failed ({status})"
    );
    let text = std::fs::read_to_string(&out)?;
    Ok(serde_json::from_str(&text)?)
}

fn write_json(
    path: &Path,
    what: &str,
    device: &str,
    figures: &[Figure],
    peer: Option<&serde_json::Value>,
) -> anyhow::Result<()> {
    let v = serde_json::json!({
        "cpu": cpu_model(),
        "device": device,
        "classifier": what,
        "seedforge": figures,
        "transformers_peft": peer,
    });
    std::fs::write(path, serde_json::to_string_pretty(&v)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
