//! `seedforge train`: LoRA fine-tuning on a task's seeds (plus accepted synthetic items), with a
//! progress bar on a terminal and plain lines otherwise, writing the run folder
//! `runs/<id>/{config.json, metrics.jsonl, adapter_config.json, adapter_model.safetensors}`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::model_args::ModelArgs;
use crate::data::task::{Example, Task};
use crate::pipeline::prompt::Templates;
use crate::train::data::{self, Padding};
use crate::train::lora::{LoraConfig, parse_targets};
use crate::train::metrics::{MetricsWriter, TrainEvent};
use crate::train::peft;
use crate::train::schedule::Decay;
use crate::train::score::{accuracy, argmax, label_scores};
use crate::train::trainer::{TrainConfig, TrainControl, TrainData, train};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task: a folder (task.toml + seeds.jsonl) or a single TOML file. Its seeds are the
    /// real examples (validation is drawn from them).
    #[arg(long, value_name = "PATH")]
    pub task: PathBuf,
    /// Extra training examples, JSONL {"text","label"} (e.g. accepted synthetic items);
    /// repeatable. They are used for training only, never for validation.
    #[arg(long, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// The run folder (default: runs/<timestamp>-train next to the task, or in the current folder).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Evaluate the kept adapter on this labelled file afterwards (.jsonl {"text","label"}, or
    /// .tsv with a header and text<TAB>label, the label a name or a 0-based index).
    #[arg(long, value_name = "FILE")]
    pub eval: Option<PathBuf>,

    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    #[arg(long, default_value_t = 0.05)]
    pub dropout: f64,
    /// Projections that get adapters: q,k,v,o,gate,up,down (or all).
    #[arg(long, default_value = "q,v")]
    pub targets: String,

    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate (1e-3: chosen on held-out SST-2 train rows for few-shot runs).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f64,
    /// Warm-up, as a fraction of all optimizer steps.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    #[arg(long, default_value = "cosine", value_name = "cosine|linear|constant")]
    pub schedule: Decay,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Clip the global gradient norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Share of the real examples held out for validation, per label.
    #[arg(long, default_value_t = 0.25)]
    pub val_fraction: f64,
    /// Stop after this many epochs without a lower validation loss (0: never).
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    #[arg(long, default_value_t = 0.0)]
    pub min_delta: f64,
    /// Longest prompt + label in tokens (longer texts lose words at their end).
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    /// Pad each batch to its longest row instead of packing rows into one sequence.
    #[arg(long)]
    pub no_packing: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    #[command(flatten)]
    pub model: ModelArgs,
}

impl TrainArgs {
    pub fn config(&self) -> anyhow::Result<TrainConfig> {
        let cfg = TrainConfig {
            lora: LoraConfig {
                rank: self.rank,
                alpha: self.alpha,
                dropout: self.dropout,
                targets: parse_targets(&self.targets).map_err(anyhow::Error::msg)?,
            },
            epochs: self.epochs,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            min_lr: self.min_lr,
            warmup: self.warmup,
            decay: self.schedule,
            weight_decay: self.weight_decay,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            val_fraction: self.val_fraction,
            patience: self.patience,
            min_delta: self.min_delta,
            max_len: self.max_len,
            padding: if self.no_packing {
                Padding::Longest
            } else {
                Padding::Packed
            },
            seed: self.seed,
            ..TrainConfig::default()
        };
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
}

/// What `config.json` records: enough to rerun the run.
#[derive(Serialize)]
struct RunRecord<'a> {
    seedforge_version: &'a str,
    task: String,
    task_name: &'a str,
    model: String,
    device: &'a str,
    data_files: Vec<String>,
    real_examples: usize,
    extra_examples: usize,
    train_examples: usize,
    val_examples: usize,
    truncated_examples: usize,
    train: &'a TrainConfig,
}

#[derive(Serialize)]
struct EvalRecord {
    file: String,
    examples: usize,
    accuracy: f64,
    per_label: Vec<(String, usize, f64)>,
}

/// `YYYYMMDD-HHMMSS` in UTC, from the system clock.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn default_out(task: &Path) -> PathBuf {
    let base = if task.is_dir() {
        task.to_path_buf()
    } else {
        task.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    base.join("runs")
        .join(format!("{}-train", timestamp(SystemTime::now())))
}

/// Reads a labelled file for evaluation: JSONL, or a TSV with a header (label = name or index).
pub fn read_labelled(path: &Path, task: &Task) -> anyhow::Result<Vec<Example>> {
    if path.extension().is_some_and(|e| e == "jsonl") {
        return Ok(data::read_jsonl(path, task)?);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (t, l) = line.rsplit_once('\t').ok_or_else(|| {
            anyhow::anyhow!("{}:{}: expected text<TAB>label", path.display(), i + 1)
        })?;
        let l = l.trim();
        let label = match task.label_index(l) {
            Some(_) => l.to_string(),
            None => match l.parse::<usize>().ok().and_then(|k| task.labels.get(k)) {
                Some(def) => def.name.clone(),
                None => anyhow::bail!(
                    "{}:{}: label {l:?} is neither a label of the task {:?} nor an index",
                    path.display(),
                    i + 1,
                    task.label_names()
                ),
            },
        };
        out.push(Example {
            text: t.trim().to_string(),
            label,
        });
    }
    Ok(out)
}

/// Prints training events: a bar on a terminal, lines otherwise; epoch results always.
struct Progress {
    bar: Option<ProgressBar>,
    every: usize,
}

impl Progress {
    fn new() -> Self {
        Progress {
            bar: None,
            every: 1,
        }
    }

    fn on(&mut self, e: &TrainEvent) {
        let tty = std::io::stderr().is_terminal();
        match e {
            TrainEvent::Started {
                train_examples,
                val_examples,
                total_steps,
                trainable_params,
                epochs,
                steps_per_epoch,
                ..
            } => {
                eprintln!(
                    "seedforge: training on {train_examples} examples (validation {val_examples}), \
                     {epochs} epochs × {steps_per_epoch} steps, {trainable_params} trainable parameters"
                );
                self.every = (total_steps / 100).max(1);
                if tty {
                    let b = ProgressBar::new(*total_steps as u64);
                    if let Ok(style) = ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
                    ) {
                        b.set_style(style);
                    }
                    self.bar = Some(b);
                }
            }
            TrainEvent::Step {
                step,
                epoch,
                loss,
                lr,
                step_time_s,
                tokens_per_s,
                ..
            } => {
                let msg = format!(
                    "epoch {} loss {loss:.4} lr {lr:.2e} {step_time_s:.2} s/step {tokens_per_s:.0} tok/s",
                    epoch + 1
                );
                match &self.bar {
                    Some(b) => {
                        b.set_position(*step as u64);
                        b.set_message(msg);
                    }
                    None if step % self.every == 0 || *step == 1 => {
                        eprintln!("  step {step:>5}  {msg}")
                    }
                    None => {}
                }
            }
            TrainEvent::Eval {
                epoch,
                train_loss,
                val_loss,
                val_accuracy,
                best,
                ..
            } => {
                let line = format!(
                    "  epoch {:>3}  train loss {train_loss:.4}  val loss {}  val acc {}{}",
                    epoch + 1,
                    val_loss.map_or("-".into(), |v| format!("{v:.4}")),
                    val_accuracy.map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
                    if *best { "  (best)" } else { "" }
                );
                match &self.bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
            TrainEvent::Paused { step } => eprintln!("  paused at step {step}"),
            TrainEvent::Resumed { step } => eprintln!("  resumed at step {step}"),
            TrainEvent::Finished {
                reason,
                steps,
                best_epoch,
                best_val_loss,
                elapsed_s,
                ..
            } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                eprintln!(
                    "seedforge: {reason:?} after {steps} steps in {elapsed_s:.1} s; kept epoch {}{}",
                    best_epoch.map_or("-".into(), |e| (e + 1).to_string()),
                    best_val_loss.map_or(String::new(), |l| format!(" (val loss {l:.4})"))
                );
            }
        }
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let task = Task::load(&args.task)?;
    anyhow::ensure!(
        !task.seeds.is_empty() || !args.data.is_empty(),
        "{}: the task has no seeds and no --data was given",
        args.task.display()
    );
    let templates = Templates::for_task(&task)?;
    let mut extra = Vec::new();
    for f in &args.data {
        extra.extend(data::read_jsonl(f, &task)?);
    }
    let eval_examples = match &args.eval {
        Some(p) => Some(read_labelled(p, &task)?),
        None => None,
    };
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.task));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let (loaded, selected) = args.model.load()?;
    let tok = &loaded.tokenizer;
    let pad = tok.pad_id();
    let label_tokens = data::label_tokens(&task, tok)?;
    let real = data::encode(&task, &templates, tok, &task.seeds, cfg.max_len)?;
    let extra_enc = data::encode(&task, &templates, tok, &extra, cfg.max_len)?;
    let labels: Vec<usize> = real.iter().map(|e| e.label).collect();
    let (train_idx, val_idx) = data::stratified_split(&labels, cfg.val_fraction, cfg.seed);
    let mut train_set: Vec<data::Encoded> = train_idx.iter().map(|&i| real[i].clone()).collect();
    train_set.extend(extra_enc.iter().cloned());
    let val_set: Vec<data::Encoded> = val_idx.iter().map(|&i| real[i].clone()).collect();
    let truncated = real
        .iter()
        .chain(&extra_enc)
        .filter(|e| e.truncated)
        .count();
    if truncated > 0 {
        eprintln!(
            "seedforge: {truncated} examples were cut to --max-len {} tokens",
            cfg.max_len
        );
    }

    let model_path = args.model.path()?;
    let record = RunRecord {
        seedforge_version: env!("CARGO_PKG_VERSION"),
        task: args.task.display().to_string(),
        task_name: &task.name,
        model: model_path.display().to_string(),
        device: &selected.label,
        data_files: args.data.iter().map(|p| p.display().to_string()).collect(),
        real_examples: real.len(),
        extra_examples: extra_enc.len(),
        train_examples: train_set.len(),
        val_examples: val_set.len(),
        truncated_examples: truncated,
        train: &cfg,
    };
    let config_path = out.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&record)? + "\n")
        .with_context(|| format!("writing {}", config_path.display()))?;

    let metrics_path = out.join("metrics.jsonl");
    let mut metrics = MetricsWriter::create(&metrics_path)
        .with_context(|| format!("creating {}", metrics_path.display()))?;
    let mut progress = Progress::new();
    let mut write_error: Option<anyhow::Error> = None;
    let control = TrainControl::default();
    let data = TrainData {
        train: &train_set,
        val: &val_set,
        label_tokens: &label_tokens,
        pad,
    };
    let outcome = train(loaded.model, &data, &cfg, &control, &mut |e| {
        progress.on(e);
        if let Err(err) = metrics.write(e)
            && write_error.is_none()
        {
            write_error = Some(err);
        }
    })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    let info = peft::save(&outcome.model, &out, &model_path.display().to_string())?;
    eprintln!(
        "seedforge: adapter (r={}, α={}, {} on {} layers, {} parameters) saved in {}",
        info.rank,
        info.alpha,
        info.targets
            .iter()
            .map(|t| t.module_name())
            .collect::<Vec<_>>()
            .join(","),
        info.layers,
        info.trainable_params,
        out.display()
    );

    if let (Some(path), Some(examples)) = (&args.eval, eval_examples) {
        let enc = data::encode(&task, &templates, tok, &examples, cfg.max_len)?;
        let t0 = std::time::Instant::now();
        let scores = label_scores(
            &outcome.model,
            &enc,
            &label_tokens,
            cfg.eval_batch_size,
            pad,
        );
        let acc = accuracy(&scores, &enc);
        let per_label = task
            .labels
            .iter()
            .enumerate()
            .map(|(l, def)| {
                let items: Vec<usize> = (0..enc.len()).filter(|&i| enc[i].label == l).collect();
                let right = items.iter().filter(|&&i| argmax(&scores[i]) == l).count();
                (
                    def.name.clone(),
                    items.len(),
                    right as f64 / items.len().max(1) as f64,
                )
            })
            .collect();
        let rec = EvalRecord {
            file: path.display().to_string(),
            examples: enc.len(),
            accuracy: acc,
            per_label,
        };
        std::fs::write(
            out.join("eval.json"),
            serde_json::to_string_pretty(&rec)? + "\n",
        )
        .with_context(|| format!("writing {}", out.join("eval.json").display()))?;
        eprintln!(
            "seedforge: accuracy on {}: {:.1}% ({} examples, {:.1} s)",
            path.display(),
            acc * 100.0,
            enc.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    println!("{}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let at = |s: u64| timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101-000000");
        // 2000-02-29 12:34:56 UTC (a leap day).
        assert_eq!(at(951_827_696), "20000229-123456");
        // 2026-11-21 06:32:00 UTC.
        assert_eq!(at(1_795_242_720), "20261121-063200");
    }
}
