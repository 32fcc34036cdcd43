//! `seedforge train`: LoRA fine-tuning on a task's seeds plus extra examples (a workspace's
//! accepted items, files), with a progress bar on a terminal and plain lines otherwise, writing
//! the run folder `runs/<id>/{config.json, metrics.jsonl, adapter_config.json,
//! adapter_model.safetensors, checkpoint/}` and, with `--eval`, the same `eval.json` as
//! `seedforge eval`. `--resume RUN` goes on with a stopped or interrupted run.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::input_args::InputArgs;
use super::model_args::ModelArgs;
use super::task_arg::TaskArg;
use crate::data::import::{ImportOptions, import_file};
use crate::data::item::Source;
use crate::data::state::Status;
use crate::data::task::{Example, Task};
use crate::data::workspace::Snapshot;
use crate::engine::eval_job::Target;
use crate::engine::{Event, headless, train_job};
use crate::pipeline::prompt::Templates;
use crate::train::checkpoint::{self, Status as CheckpointStatus};
use crate::train::data::Padding;
use crate::train::lora::{LoraConfig, parse_targets};
use crate::train::metrics::TrainEvent;
use crate::train::run::{RunSpec, recorded_model};
use crate::train::schedule::Decay;
use crate::train::trainer::{Objective, TrainConfig, TrainControl};
use crate::train::weighting::Weighting;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task when no --workspace is given: a folder (task.toml + seeds.jsonl) or a TOML
    /// file. Its seeds are the real examples (validation is drawn from them).
    #[command(flatten)]
    pub task: TaskArg,
    /// With --workspace: train on the seeds only, not on the accepted items.
    #[arg(long)]
    pub no_accepted: bool,
    /// Extra training examples, any labelled file `init` reads (JSONL {"text","label"} as
    /// `export` writes it, TSV, CSV); repeatable. Training only, never validation.
    #[arg(long, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// The run folder (default: runs/<time>-train in the workspace, beside the task, or here).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train on from this run's adapter instead of fresh factors (same rank and targets).
    /// Staged training: `--start-from <run on seeds + generated items> --no-accepted` trains
    /// it on, on the seeds alone; the result is read as the first run is.
    #[arg(long, value_name = "RUN_DIR")]
    pub start_from: Option<PathBuf>,
    /// Go on with a stopped or interrupted run from its checkpoint, with the settings and data
    /// it recorded (the other training options are not used); the model is the one it
    /// recorded unless --model is given.
    #[arg(
        long,
        value_name = "RUN_DIR",
        conflicts_with_all = ["out", "data", "no_accepted", "start_from"]
    )]
    pub resume: Option<PathBuf>,
    /// Evaluate the kept adapter on this labelled file afterwards (read with the options
    /// below), saving eval.json in the run folder as `seedforge eval` does.
    #[arg(long, value_name = "FILE")]
    pub eval: Option<PathBuf>,
    #[command(flatten)]
    pub read: InputArgs,
    #[command(flatten)]
    pub options: TrainOptions,
    /// Seed of the validation draw, the batch order and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The adapter and optimisation settings, shared by `train` and `experiment`.
#[derive(Debug, Clone, Args)]
pub struct TrainOptions {
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
    /// Give every class of the seeds and of the extra examples the same total weight
    /// (true|false).
    #[arg(long, default_value_t = Weighting::default().balance_classes, action = clap::ArgAction::Set)]
    pub balance_classes: bool,
    /// The extra (synthetic, annotated) examples together weigh this many times the real ones
    /// together (0: each example weighs one).
    #[arg(long, default_value_t = Weighting::default().synthetic_weight.unwrap_or(0.0))]
    pub synthetic_weight: f64,
    /// Share of the label word's target spread over every label's word.
    #[arg(long, default_value_t = Weighting::default().label_smoothing)]
    pub label_smoothing: f64,
    /// Train judged extra examples towards the judge's distribution over the labels (the
    /// experiment's kept items; true|false).
    #[arg(long, default_value_t = Weighting::default().soft_labels, action = clap::ArgAction::Set)]
    pub soft_labels: bool,
    /// Train this many runs, each holding out a different share of the real examples for its
    /// early stopping and from its own seed, and average their adapters into one (a soup; the
    /// members are kept under members/ in the run folder).
    #[arg(long, default_value_t = TrainConfig::default().members)]
    pub members: usize,
    /// Recompute each layer's forward pass in the backward pass instead of keeping every
    /// layer's activations: a fraction of the memory, a step about 40% longer. auto: on over
    /// quantized weights (--weights q4|q8_0, QLoRA), off over f32.
    #[arg(long, default_value = "auto", value_name = "auto|on|off")]
    pub recompute: Recompute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Recompute {
    Auto,
    On,
    Off,
}

impl TrainOptions {
    /// The trainer's configuration; `seed` orders the batches, draws validation and dropout.
    pub fn config(&self, seed: u64) -> anyhow::Result<TrainConfig> {
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
            seed,
            weighting: Weighting {
                balance_classes: self.balance_classes,
                synthetic_weight: (self.synthetic_weight > 0.0).then_some(self.synthetic_weight),
                label_smoothing: self.label_smoothing,
                soft_labels: self.soft_labels,
            },
            members: self.members,
            recompute: match self.recompute {
                Recompute::Auto => None,
                Recompute::On => Some(true),
                Recompute::Off => Some(false),
            },
            ..TrainConfig::default()
        };
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
}

/// Prints training events: a bar on a terminal, lines otherwise; epoch results always.
struct Progress {
    bar: Option<ProgressBar>,
    every: usize,
    /// A resumed run's earlier events are being replayed: take the totals from them, print
    /// nothing until the `Restored` event.
    replaying: bool,
}

impl Progress {
    fn new(replaying: bool) -> Self {
        Progress {
            bar: None,
            every: 1,
            replaying,
        }
    }

    fn on(&mut self, e: &TrainEvent) {
        let tty = std::io::stderr().is_terminal();
        if self.replaying && !matches!(e, TrainEvent::Started { .. } | TrainEvent::Restored { .. })
        {
            return;
        }
        match e {
            TrainEvent::Started {
                train_examples,
                val_examples,
                total_steps,
                trainable_params,
                epochs,
                steps_per_epoch,
                member,
                ..
            } => {
                if let Some([i, k]) = member {
                    if let Some(b) = self.bar.take() {
                        b.finish_and_clear();
                    }
                    eprintln!("seedforge: soup member {i} of {k}");
                }
                if !self.replaying {
                    eprintln!(
                        "seedforge: training on {train_examples} examples (validation \
                         {val_examples}), {epochs} epochs × {steps_per_epoch} steps, \
                         {trainable_params} trainable parameters"
                    );
                }
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
            TrainEvent::Restored { step, epoch } => {
                self.replaying = false;
                let line = format!(
                    "seedforge: resuming from the checkpoint after step {step} (epoch {})",
                    epoch + 1
                );
                match &self.bar {
                    Some(b) => {
                        b.set_position(*step as u64);
                        b.println(line);
                    }
                    None => eprintln!("{line}"),
                }
            }
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

/// The task, its real examples and the extra ones, from a workspace or a task file.
struct Sources {
    task: Task,
    extra: Vec<Example>,
    extra_sources: Vec<String>,
    /// How many of `extra` the model invented.
    generated: usize,
    /// Where the default run folder goes.
    base: PathBuf,
}

fn sources(args: &TrainArgs, workspace: Option<&Path>) -> anyhow::Result<Sources> {
    // Rows of `--data` files are taken for real labelled text; only the workspace says which
    // of its items the model invented.
    let mut generated = 0;
    let (task, mut extra, mut extra_sources, base) = match workspace {
        Some(ws) => {
            let snap = Snapshot::read(ws)?;
            let accepted: Vec<_> = if args.no_accepted {
                Vec::new()
            } else {
                snap.state.with_status(Status::Accepted).collect()
            };
            generated = accepted
                .iter()
                .filter(|it| it.source() == Source::Generated)
                .count();
            let accepted: Vec<Example> = accepted
                .iter()
                .map(|it| Example {
                    text: it.text().to_string(),
                    label: it.label().to_string(),
                })
                .collect();
            let src = vec![format!("{} ({} accepted)", ws.display(), accepted.len())];
            (snap.task, accepted, src, ws.to_path_buf())
        }
        None => {
            let base = match &args.task.task {
                Some(p) if p.is_dir() => p.clone(),
                Some(p) => p
                    .parent()
                    .filter(|q| !q.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
                None => PathBuf::from("."),
            };
            (args.task.load()?, Vec::new(), Vec::new(), base)
        }
    };
    for f in &args.data {
        let imported = import_file(f, &ImportOptions::default())
            .with_context(|| format!("reading {}", f.display()))?;
        super::input_args::report_problems(&imported, &mut std::io::stderr())?;
        let names = task.label_names();
        if let Some(r) = imported
            .rows
            .iter()
            .find(|r| !names.contains(&r.label.as_str()))
        {
            anyhow::bail!(
                "{}:{}: label {:?} is not one of the task's ({})",
                f.display(),
                r.line,
                r.label,
                names.join(", ")
            );
        }
        extra_sources.push(format!("{} ({} rows)", f.display(), imported.rows.len()));
        extra.extend(imported.rows.into_iter().map(Example::from));
    }
    Ok(Sources {
        task,
        extra,
        extra_sources,
        generated,
        base,
    })
}

/// `train --resume RUN`: the run goes on from its checkpoint in its own folder.
fn resume(run: &Path, args: &TrainArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.eval.is_none(),
        "--eval is not taken with --resume; evaluate the run afterwards (seedforge eval \
         --method lora --adapter {})",
        run.display()
    );
    // Say what state the run is in before loading a model.
    match checkpoint::status(run) {
        CheckpointStatus::Finished(reason) => {
            eprintln!(
                "seedforge: {} has finished ({}); there is nothing to resume",
                run.display(),
                checkpoint::reason_text(reason)
            );
            println!("{}", run.display());
            return Ok(());
        }
        CheckpointStatus::Unreadable(e) => anyhow::bail!("cannot resume: {e}"),
        CheckpointStatus::Absent | CheckpointStatus::Resumable(_) => {}
    }
    let mut model_args = args.model.clone();
    if model_args.model.is_none() {
        model_args.model = Some(PathBuf::from(recorded_model(run)?));
    }
    let (loaded, _) = model_args.load()?;
    // The workbench's resume job: the run's recorded events replay first, then it goes on.
    let mut progress = Progress::new(true);
    let outcome = headless::run(
        |events| train_job::resume(0, &loaded, run, &TrainControl::default(), events),
        move |e| match e {
            Event::Train { event, .. } => progress.on(&event),
            Event::Log(line) => eprintln!("seedforge: {line}"),
            _ => {}
        },
    )?;
    eprintln!("seedforge: {}", outcome.summary);
    println!("{}", run.display());
    Ok(())
}

/// `train` (a classifier) and `teacher` (an adapter that writes examples of each class).
pub fn run(
    args: TrainArgs,
    workspace: Option<PathBuf>,
    objective: Objective,
) -> anyhow::Result<()> {
    if let Some(run) = &args.resume {
        return resume(run, &args);
    }
    let mut cfg = args.options.config(args.seed)?;
    cfg.objective = objective;
    anyhow::ensure!(
        objective == Objective::Classify || args.eval.is_none(),
        "--eval scores a classifier; a teacher is judged by what it writes (seedforge generate \
         --adapter RUN, then filter or experiment)"
    );
    let src = sources(&args, workspace.as_deref())?;
    let task = &src.task;
    anyhow::ensure!(
        !task.seeds.is_empty() || !src.extra.is_empty(),
        "the task has no seeds and there is nothing else to train on (--data FILE, or accept \
         items in the workspace)"
    );
    let templates = Templates::for_task(task)?;
    let eval_rows = match &args.eval {
        Some(p) => Some(args.read.read(p, &mut std::io::stderr())?),
        None => None,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        src.base.join("runs").join(format!(
            "{}-{}",
            crate::data::time::compact(SystemTime::now()),
            match objective {
                Objective::Classify => "train",
                Objective::Generate => "teacher",
            }
        ))
    });

    let (loaded, selected) = args.model.load()?;
    let model_path = loaded.info.path.display().to_string();
    let spec = RunSpec {
        task,
        templates: &templates,
        real: &task.seeds,
        extra: &src.extra,
        extra_soft: &[],
        extra_sources: src.extra_sources.clone(),
        generated_extra: src.generated,
        start_from: args.start_from.as_deref(),
        config: &cfg,
        out: &out,
        model_path: &model_path,
        device: &selected.label,
    };
    // The workbench's training job, its events shown as a bar or lines.
    let mut progress = Progress::new(false);
    let result = headless::run(
        |events| train_job::train(0, &loaded, &spec, &TrainControl::default(), events),
        move |e| match e {
            Event::Train { event, .. } => progress.on(&event),
            // What the job says besides its steps (QLoRA, a staged second run).
            Event::Log(line) => eprintln!("seedforge: {line}"),
            _ => {}
        },
    )?;
    if result.truncated > 0 {
        eprintln!(
            "seedforge: {} examples were cut to --max-len {} tokens",
            result.truncated, cfg.max_len
        );
    }
    let info = &result.adapter;
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

    if let (Some(path), Some(imported)) = (&args.eval, eval_rows) {
        // The kept adapter as saved, read as `eval` reads the run.
        let target = Target::Lora(out.clone());
        let options = crate::eval::reading::eval_options_for_run(&out)?;
        let model = target.model(&loaded.model)?;
        let report = super::eval::evaluate_headless(
            &loaded,
            &model,
            task,
            &templates,
            &imported.rows,
            path,
            &target,
            &options,
        )?;
        let saved = report.save(&out).with_context(|| {
            format!(
                "saving {}",
                out.join(crate::eval::report::EVAL_FILE).display()
            )
        })?;
        super::eval::print_report(&report);
        eprintln!(
            "seedforge: {} rows in {:.1} s; saved {}",
            report.metrics.n,
            report.seconds,
            saved.display()
        );
    }
    println!("{}", out.display());
    Ok(())
}
