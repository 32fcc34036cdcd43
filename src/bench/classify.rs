//! `seedforge bench classify`: throughput of the in-context classifier (items/s) on SST-2 dev
//! rows, zero-shot and 8-shot, beside the transformers peer's `sst2_acc.py` on the same rows,
//! the same demonstrations and the same prompts, run in the same invocation. The predictions are
//! compared too, so a speed-up is not bought with a different answer.

use std::time::Instant;

use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use super::peers;
use super::sst2::read_sst2;
use crate::cli::model_args::ModelArgs;
use crate::data::task::{Example, Task};
use crate::pipeline::classify::{Classifier, ClassifierOptions, interleave_by_label};
use crate::pipeline::prompt::Templates;

#[derive(Debug, Args)]
pub struct ClassifyBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The first N rows of SST-2 dev.tsv.
    #[arg(long, default_value_t = 100)]
    pub n: usize,
    /// Batch sizes to time (the peer scores one input per forward).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub batches: Vec<usize>,
    /// Skip the peer (the demonstrations are then the bundled demo task's seeds, labels alternating).
    #[arg(long)]
    pub no_peer: bool,
    /// Write all figures as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
struct Figure {
    prompt: &'static str,
    batch: usize,
    items: usize,
    seconds: f64,
    items_per_s: f64,
    accuracy: f64,
    /// Predictions as a string of 0/1 (1 = positive), the peer's notation.
    preds: String,
}

/// The peer's runs this bench puts ours beside: (its run name, our prompt kind).
const PEER_RUNS: [(&str, &str); 2] = [
    ("a_zero_shot", "zero-shot"),
    ("b_8shot_4_per_class", "8-shot"),
];

pub fn run(args: ClassifyBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.n > 0, "--n must be at least 1");
    let shared = peers::shared_dir();
    let mut rows = read_sst2(&shared.join("datasets/sst2/dev.tsv"))?;
    rows.truncate(args.n);

    // The peer goes first: its demonstrations are the ones both sides then use.
    let peer = if args.no_peer {
        Value::Null
    } else {
        peers::run_script(
            "sst2_acc.py",
            &["--n", &args.n.to_string(), "--lora-steps", "1"],
        )?
    };
    let demos = match peer["demos"].as_array() {
        Some(d) => d
            .iter()
            .map(|x| {
                let text = x["sentence"].as_str().unwrap_or_default().to_string();
                let label = if x["label"].as_i64() == Some(1) {
                    "positive"
                } else {
                    "negative"
                };
                Example {
                    text,
                    label: label.to_string(),
                }
            })
            .collect(),
        // Without the peer, the demo seeds alternate by label as `classify` orders them: in the
        // task's order every positive seed comes last and the model answers "positive" to all.
        None => {
            let demo = Task::demo();
            interleave_by_label(&demo.seeds, &demo.labels)
        }
    };

    let (loaded, device) = args.model.load()?;
    let mut task = Task::demo();
    task.seeds.clear();
    let templates = Templates::for_task(&task)?;
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let mut ours = Vec::new();
    for (prompt, shots) in [("zero-shot", Vec::new()), ("8-shot", demos.clone())] {
        for &batch in &args.batches {
            let options = ClassifierOptions {
                demos: shots.clone(),
                batch: batch.max(1),
                ..ClassifierOptions::default()
            };
            // Untimed warm-up: the first forward allocates what the later ones reuse.
            Classifier::new(
                &loaded.model,
                &loaded.tokenizer,
                &task,
                &templates,
                options.clone(),
            )?
            .classify(&texts[..texts.len().min(batch.max(1))])?;
            // Building the classifier is timed: it runs the shared demonstrations once.
            let started = Instant::now();
            let classifier =
                Classifier::new(&loaded.model, &loaded.tokenizer, &task, &templates, options)?;
            ensure_peer_prompt(&classifier, &shots, texts[0])?;
            let predictions = classifier.classify(&texts)?;
            let seconds = started.elapsed().as_secs_f64();
            let correct = predictions
                .iter()
                .zip(&rows)
                .filter(|(p, r)| p.label == r.label)
                .count();
            let f = Figure {
                prompt,
                batch,
                items: texts.len(),
                seconds,
                items_per_s: texts.len() as f64 / seconds,
                accuracy: correct as f64 / texts.len() as f64,
                preds: predictions
                    .iter()
                    .map(|p| if p.label == "positive" { '1' } else { '0' })
                    .collect(),
            };
            eprintln!(
                "  {prompt} batch {batch}: {:.1} items/s, accuracy {:.1}%",
                f.items_per_s,
                f.accuracy * 100.0
            );
            ours.push(f);
        }
    }

    println!(
        "device: {}; first {} rows of SST-2 dev.tsv",
        device.label,
        rows.len()
    );
    println!(
        "{:<10} {:>6} {:>10} {:>9} {:>10} {:>8} {:>9} {:>10}",
        "prompt", "batch", "items/s", "accuracy", "peer it/s", "×peer", "peer acc", "same pred"
    );
    for f in &ours {
        let run = PEER_RUNS
            .iter()
            .find(|(_, kind)| *kind == f.prompt)
            .and_then(|(name, _)| {
                peer["runs"]
                    .as_array()
                    .and_then(|runs| runs.iter().find(|r| r["name"] == *name))
            });
        let peer_rate = run.and_then(|r| Some(r["n"].as_f64()? / r["wall_s"].as_f64()?));
        let peer_acc = run.and_then(|r| r["accuracy"].as_f64());
        let same = run.and_then(|r| r["preds"].as_str()).map(|p| {
            p.chars()
                .zip(f.preds.chars())
                .filter(|(a, b)| a == b)
                .count()
        });
        let cell = |v: Option<String>| v.unwrap_or_else(|| "–".into());
        println!(
            "{:<10} {:>6} {:>10.1} {:>8.1}% {:>10} {:>8} {:>9} {:>10}",
            f.prompt,
            f.batch,
            f.items_per_s,
            f.accuracy * 100.0,
            cell(peer_rate.map(|r| format!("{r:.1}"))),
            cell(peer_rate.map(|r| format!("{:.2}", f.items_per_s / r))),
            cell(peer_acc.map(|a| format!("{:.1}%", a * 100.0))),
            cell(same.map(|s| format!("{s}/{}", f.items))),
        );
    }
    if let Some(path) = args.json {
        let v = json!({"device": device.label, "seedforge": ours, "transformers": peer});
        std::fs::write(&path, serde_json::to_string_pretty(&v)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Our prompt must be the peer's, character for character, or the comparison measures
/// different work: demonstrations `Review: {d}\nSentiment: {label}\n\n`, then
/// `Review: {s}\nSentiment:`.
fn ensure_peer_prompt(c: &Classifier, demos: &[Example], text: &str) -> anyhow::Result<()> {
    let mut want: String = demos
        .iter()
        .map(|d| format!("Review: {}\nSentiment: {}\n\n", d.text, d.label))
        .collect();
    want.push_str(&format!("Review: {text}\nSentiment:"));
    let got = c.prompt(text)?;
    anyhow::ensure!(
        got == want,
        "the classifier's prompt is not the peer's:\n{got:?}\nvs\n{want:?}"
    );
    Ok(())
}
