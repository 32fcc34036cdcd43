//! One training run as a unit: encode the real and extra examples, hold validation out of the
//! real ones, train, and leave a run folder (`config.json`, `metrics.jsonl`, the adapter in PEFT's
//! layout, and `checkpoint/` while it can be resumed: see [`checkpoint`]). The `train` command,
//! the workbench's engine and the experiment all run it; [`resume_run`] goes on with a stopped
//! or interrupted one.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::checkpoint::{self, Checkpoint, Checkpoints, RunData};
use super::data::{self, Encoded};
use super::lora::LoraInfo;
use super::metrics::{MetricsWriter, StopReason, TrainEvent, read_metrics};
use super::peft;
use super::trainer::{Fold, Objective, TrainConfig, TrainControl, TrainOutcome, train_resumable};
use crate::data::task::{Example, Task};
use crate::llm::model::Llama;
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::prompt::Templates;

/// What a run is made of.
pub struct RunSpec<'a> {
    pub task: &'a Task,
    pub templates: &'a Templates,
    /// Real examples (validation is drawn from these).
    pub real: &'a [Example],
    /// Synthetic or annotated examples, training only.
    pub extra: &'a [Example],
    /// The judge's distribution over the labels for each extra example (empty: none), used
    /// when the weighting asks for soft labels.
    pub extra_soft: &'a [Option<Vec<f32>>],
    /// Where the extra examples came from (files, workspace), for the record.
    pub extra_sources: Vec<String>,
    /// How many of the extra examples are text the model invented (the rest are real text
    /// labelled by the model or by hand): how the run's scores are read depends on it.
    pub generated_extra: usize,
    /// Train on from this run's adapter instead of fresh factors (staged training: the
    /// adapter of a run on seeds + generated items, then the seeds alone).
    pub start_from: Option<&'a Path>,
    pub config: &'a TrainConfig,
    pub out: &'a Path,
    /// The base model's path, recorded and written into the adapter config.
    pub model_path: &'a str,
    pub device: &'a str,
}

/// What `config.json` records: enough to rerun the run.
#[derive(Serialize)]
struct RunRecord<'a> {
    seedforge_version: &'a str,
    task_name: &'a str,
    model: &'a str,
    device: &'a str,
    extra_sources: &'a [String],
    real_examples: usize,
    extra_examples: usize,
    generated_examples: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_from: Option<&'a Path>,
    train_examples: usize,
    val_examples: usize,
    truncated_examples: usize,
    /// Training examples per label, in task order (validation rows left out): the label
    /// distribution the adapter learned, which reading its scores corrects for.
    label_counts: Vec<usize>,
    train: &'a TrainConfig,
}

pub struct RunResult {
    pub outcome: TrainOutcome,
    pub adapter: LoraInfo,
    pub out: PathBuf,
    pub train_examples: usize,
    pub val_examples: usize,
    pub truncated: usize,
}

/// The training and validation sets: a stratified share of the real examples is held out; the
/// extra examples only ever train.
pub fn split(
    real: &[Encoded],
    extra: &[Encoded],
    cfg: &TrainConfig,
) -> (Vec<Encoded>, Vec<Encoded>) {
    let labels: Vec<usize> = real.iter().map(|e| e.label).collect();
    let (train_idx, val_idx) = match cfg.fold {
        Some(f) => data::stratified_fold(&labels, cfg.val_fraction, f.seed, f.index),
        None => data::stratified_split(&labels, cfg.val_fraction, cfg.seed),
    };
    let mut train_set: Vec<Encoded> = train_idx.iter().map(|&i| real[i].clone()).collect();
    train_set.extend(extra.iter().cloned());
    let val_set = val_idx.iter().map(|&i| real[i].clone()).collect();
    (train_set, val_set)
}

/// Trains `model` (it comes back with the best adapter attached) and writes the run folder.
pub fn train_run(
    model: Llama,
    tokenizer: &TextTokenizer,
    spec: &RunSpec,
    control: &TrainControl,
    sink: &mut dyn FnMut(&TrainEvent),
) -> anyhow::Result<RunResult> {
    let cfg = spec.config;
    anyhow::ensure!(
        !spec.real.is_empty() || !spec.extra.is_empty(),
        "nothing to train on: no real and no extra examples"
    );
    if cfg.members > 1 {
        return train_soup(model, tokenizer, spec, control, sink);
    }
    let encode = match cfg.objective {
        Objective::Classify => data::encode,
        Objective::Generate => data::encode_generation,
    };
    let real = encode(spec.task, spec.templates, tokenizer, spec.real, cfg.max_len)?;
    let extra = encode(
        spec.task,
        spec.templates,
        tokenizer,
        spec.extra,
        cfg.max_len,
    )?;
    let truncated = real.iter().chain(&extra).filter(|e| e.truncated).count();
    let (train_set, val_set) = split(&real, &extra, cfg);
    // `split` puts the real training examples first, then every extra one.
    let n_real_train = train_set.len() - extra.len();
    let soft: Vec<Option<Vec<f32>>> =
        if cfg.weighting.soft_labels && spec.extra_soft.len() == extra.len() {
            std::iter::repeat_n(None, n_real_train)
                .chain(spec.extra_soft.iter().cloned())
                .collect()
        } else {
            Vec::new()
        };
    let weights = if cfg.weighting.balance_classes || cfg.weighting.synthetic_weight.is_some() {
        let labels: Vec<usize> = train_set.iter().map(|e| e.label).collect();
        let (r, x) = labels.split_at(n_real_train);
        cfg.weighting.example_weights(r, x)
    } else {
        Vec::new()
    };
    // A teacher's validation is its loss on held-out examples; there is no label to score.
    let label_tokens = match cfg.objective {
        Objective::Classify => data::label_tokens(spec.task, tokenizer)?,
        Objective::Generate => Vec::new(),
    };

    let mut model = model;
    if let Some(dir) = spec.start_from {
        let info = crate::train::peft::load_adapter(&mut model, dir)
            .with_context(|| format!("starting from the adapter in {}", dir.display()))?;
        anyhow::ensure!(
            info.rank == cfg.lora.rank && info.targets == cfg.lora.targets,
            "{}: the adapter has rank {} on {:?}; this run trains rank {} on {:?}",
            dir.display(),
            info.rank,
            info.targets,
            cfg.lora.rank,
            cfg.lora.targets
        );
    }
    std::fs::create_dir_all(spec.out)
        .with_context(|| format!("creating {}", spec.out.display()))?;
    let record = RunRecord {
        seedforge_version: env!("CARGO_PKG_VERSION"),
        task_name: &spec.task.name,
        model: spec.model_path,
        device: spec.device,
        extra_sources: &spec.extra_sources,
        real_examples: real.len(),
        extra_examples: extra.len(),
        generated_examples: spec.generated_extra.min(extra.len()),
        started_from: spec.start_from,
        train_examples: train_set.len(),
        val_examples: val_set.len(),
        truncated_examples: truncated,
        label_counts: (0..spec.task.labels.len())
            .map(|l| train_set.iter().filter(|e| e.label == l).count())
            .collect(),
        train: cfg,
    };
    let config_path = spec.out.join("config.json");
    crate::data::atomic::write_atomic_bytes(
        &config_path,
        (serde_json::to_string_pretty(&record)? + "\n").as_bytes(),
    )
    .with_context(|| format!("writing {}", config_path.display()))?;
    write_examples(spec.out, spec.real, spec.extra)?;

    let data = RunData {
        train: train_set,
        val: val_set,
        label_tokens,
        pad: tokenizer.pad_id(),
        weights,
        soft,
    };
    let checkpoints = Checkpoints::start(spec.out, &data)?;
    let metrics_path = spec.out.join("metrics.jsonl");
    let metrics = MetricsWriter::create(&metrics_path)
        .with_context(|| format!("creating {}", metrics_path.display()))?;
    train_and_save(
        model,
        spec.out,
        spec.model_path,
        &data,
        cfg,
        None,
        (metrics, checkpoints),
        control,
        sink,
    )
}

/// Where a soup run keeps its `index`-th member (a whole run folder).
pub fn member_dir(run: &Path, index: usize) -> PathBuf {
    run.join("members").join(index.to_string())
}

/// A soup: `cfg.members` runs, member `i` in [`member_dir`] holding out the `i`-th share of the
/// real examples for its early stopping and starting from its own seed (member 0 is the plain
/// run), then their adapters averaged ([`super::soup`]) into the run folder, with a
/// `config.json` that records the soup and `metrics.jsonl` holding the members' events one run
/// after another, their steps counted on ([`TrainEvent::in_soup`]). A staged soup starts member
/// `i` from member `i` of the first stage. Stopping a member stops the soup; its members stay as
/// runs of their own.
fn train_soup(
    model: Llama,
    tokenizer: &TextTokenizer,
    spec: &RunSpec,
    control: &TrainControl,
    sink: &mut dyn FnMut(&TrainEvent),
) -> anyhow::Result<RunResult> {
    let cfg = spec.config;
    let mut members: Vec<RunResult> = Vec::with_capacity(cfg.members);
    let mut events: Vec<TrainEvent> = Vec::new();
    for i in 0..cfg.members {
        let before: usize = members.iter().map(|r| r.outcome.steps).sum();
        let mut member = cfg.clone();
        member.members = 1;
        member.fold = Some(Fold {
            index: i,
            seed: cfg.seed,
        });
        member.seed = cfg.seed.wrapping_add(1000 * i as u64);
        let out = member_dir(spec.out, i);
        let start = spec.start_from.map(|d| {
            let m = member_dir(d, i);
            if peft::check_adapter(&m).unwrap_or(false) {
                m
            } else {
                d.to_path_buf()
            }
        });
        let member_spec = RunSpec {
            task: spec.task,
            templates: spec.templates,
            real: spec.real,
            extra: spec.extra,
            extra_soft: spec.extra_soft,
            extra_sources: spec.extra_sources.clone(),
            generated_extra: spec.generated_extra,
            start_from: start.as_deref(),
            config: &member,
            out: &out,
            model_path: spec.model_path,
            device: spec.device,
        };
        let mut member_sink = |e: &TrainEvent| {
            let e = e.in_soup(before, i, cfg.members);
            sink(&e);
            events.push(e);
        };
        let result = train_run(
            model.clone(),
            tokenizer,
            &member_spec,
            control,
            &mut member_sink,
        )
        .with_context(|| format!("member {} of {} ({})", i + 1, cfg.members, out.display()))?;
        if result.outcome.reason == StopReason::Stopped {
            return Ok(result);
        }
        members.push(result);
    }
    let models: Vec<Llama> = members.iter().map(|r| r.outcome.model.clone()).collect();
    let souped = super::soup::soup(&models)?;
    let adapter = peft::save(&souped, spec.out, spec.model_path)?;

    // The record is the first member's with the soup's settings and starting point.
    let first = member_dir(spec.out, 0).join("config.json");
    let mut record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&first).with_context(|| format!("reading {}", first.display()))?,
    )
    .with_context(|| format!("{}: not JSON", first.display()))?;
    record["train"] = serde_json::to_value(cfg)?;
    record["started_from"] = serde_json::to_value(spec.start_from)?;
    let config_path = spec.out.join("config.json");
    crate::data::atomic::write_atomic_bytes(
        &config_path,
        (serde_json::to_string_pretty(&record)? + "\n").as_bytes(),
    )
    .with_context(|| format!("writing {}", config_path.display()))?;
    write_examples(spec.out, spec.real, spec.extra)?;
    // The soup's own metrics: every member's events, counted on as the live chart saw them.
    let metrics_path = spec.out.join("metrics.jsonl");
    let mut metrics = MetricsWriter::create(&metrics_path)
        .with_context(|| format!("creating {}", metrics_path.display()))?;
    for e in &events {
        metrics.write(e)?;
    }

    let mean = |f: &dyn Fn(&TrainOutcome) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = members.iter().filter_map(|r| f(&r.outcome)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let first = &members[0];
    let outcome = TrainOutcome {
        reason: members
            .last()
            .map_or(StopReason::Completed, |r| r.outcome.reason),
        steps: members.iter().map(|r| r.outcome.steps).sum(),
        epochs: members.iter().map(|r| r.outcome.epochs).sum(),
        best_epoch: None,
        // Each member's validation share is held out of it alone: the means are
        // cross-validated figures over the real examples.
        best_val_loss: mean(&|o| o.best_val_loss),
        best_val_accuracy: mean(&|o| o.best_val_accuracy),
        elapsed_s: members.iter().map(|r| r.outcome.elapsed_s).sum::<f64>(),
        model: souped,
    };
    Ok(RunResult {
        outcome,
        adapter,
        out: spec.out.to_path_buf(),
        train_examples: first.train_examples,
        val_examples: first.val_examples,
        truncated: first.truncated,
    })
}

/// Trains (from scratch, or on from `resume`), writing every event to `metrics` and a
/// checkpoint whenever the trainer offers one; then saves the kept adapter and, unless the
/// run was stopped (which leaves it resumable), marks the checkpoint finished.
#[allow(clippy::too_many_arguments)]
fn train_and_save(
    model: Llama,
    out: &Path,
    model_path: &str,
    data: &RunData,
    cfg: &TrainConfig,
    resume: Option<&Checkpoint>,
    (metrics, mut checkpoints): (MetricsWriter, Checkpoints),
    control: &TrainControl,
    sink: &mut dyn FnMut(&TrainEvent),
) -> anyhow::Result<RunResult> {
    // The sink writes the metrics, and a checkpoint records how far they got.
    let metrics = RefCell::new(metrics);
    let mut write_error: Option<anyhow::Error> = None;
    let outcome = train_resumable(
        model,
        &data.as_train_data(),
        cfg,
        resume,
        control,
        &mut |e| {
            sink(e);
            if let Err(err) = metrics.borrow_mut().write(e)
                && write_error.is_none()
            {
                write_error = Some(err);
            }
        },
        &mut |ck| checkpoints.save(ck, metrics.borrow().len()),
    )?;
    if let Some(e) = write_error {
        return Err(e);
    }
    let adapter = peft::save(&outcome.model, out, model_path)?;
    if outcome.reason != StopReason::Stopped {
        checkpoints.finish(outcome.reason)?;
    }
    Ok(RunResult {
        outcome,
        adapter,
        out: out.to_path_buf(),
        train_examples: data.train.len(),
        val_examples: data.val.len(),
        // Real and extra examples alike (validation is drawn from the real ones).
        truncated: data
            .train
            .iter()
            .chain(&data.val)
            .filter(|e| e.truncated)
            .count(),
    })
}

/// What `config.json` says that resuming needs.
#[derive(serde::Deserialize)]
struct RecordedRun {
    model: String,
    train: TrainConfig,
}

fn recorded_run(run: &Path) -> anyhow::Result<RecordedRun> {
    let path = run.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (is {} a training run folder?)",
            path.display(),
            run.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The base model a run was trained on, as its `config.json` records it.
pub fn recorded_model(run: &Path) -> anyhow::Result<String> {
    Ok(recorded_run(run)?.model)
}

fn same_file(a: &str, b: &str) -> bool {
    let canon = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    a == b || canon(a) == canon(b)
}

/// Goes on with a stopped or interrupted run from its checkpoint, in its folder, with its
/// recorded configuration and data: `metrics.jsonl` is cut where the checkpoint was taken (the
/// events after it are those of steps done again), its events are replayed to `sink` (so a live
/// chart shows the whole run), a `Restored` event marks the seam, and the run continues as if
/// it had never stopped. `model` must be the base model the run was trained on.
pub fn resume_run(
    model: Llama,
    model_path: &str,
    run: &Path,
    control: &TrainControl,
    sink: &mut dyn FnMut(&TrainEvent),
) -> anyhow::Result<RunResult> {
    let recorded = recorded_run(run)?;
    anyhow::ensure!(
        recorded.train.members <= 1,
        "{} is a soup of {} runs, which cannot be resumed yet; start it again",
        run.display(),
        recorded.train.members
    );
    let Some(loaded) = checkpoint::load(run)? else {
        anyhow::bail!(
            "{} has no checkpoint (a run from before checkpoints, or one cut off before its \
             first was written); start a new run instead",
            run.display()
        );
    };
    anyhow::ensure!(
        same_file(&recorded.model, model_path),
        "{} was trained on the model {}, not {model_path}; resume it with that model \
         (--model {})",
        run.display(),
        recorded.model,
        recorded.model
    );
    let metrics_path = run.join("metrics.jsonl");
    let metrics = MetricsWriter::continue_at(&metrics_path, loaded.manifest.metrics_bytes)?;
    for e in read_metrics(&metrics_path)? {
        sink(&e);
    }
    let checkpoints = Checkpoints::resume(run, &loaded);
    let progress = &loaded.checkpoint.progress;
    let restored = TrainEvent::Restored {
        step: progress.step,
        epoch: progress.epoch,
    };
    let mut metrics = metrics;
    sink(&restored);
    metrics.write(&restored)?;
    train_and_save(
        model,
        run,
        model_path,
        &loaded.data,
        &recorded.train,
        Some(&loaded.checkpoint),
        (metrics, checkpoints),
        control,
        sink,
    )
}

/// The texts a run trained on, one JSON line each (`examples.jsonl`): what a student distilled
/// from the run learns from.
pub const EXAMPLES_FILE: &str = "examples.jsonl";

/// One line of [`EXAMPLES_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunExample {
    pub text: String,
    pub label: String,
    /// Not one of the real examples (generated or annotated).
    pub extra: bool,
}

fn write_examples(out: &Path, real: &[Example], extra: &[Example]) -> anyhow::Result<()> {
    let mut text = String::new();
    for (e, is_extra) in real
        .iter()
        .map(|e| (e, false))
        .chain(extra.iter().map(|e| (e, true)))
    {
        let line = RunExample {
            text: e.text.clone(),
            label: e.label.clone(),
            extra: is_extra,
        };
        text += &(serde_json::to_string(&line)? + "\n");
    }
    let path = out.join(EXAMPLES_FILE);
    crate::data::atomic::write_atomic_bytes(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The examples `run` trained on, with those of the run it started from (staged training
/// learns from both). A run saved before the file existed, or whose `config.json` cannot be
/// read, is named in the error.
pub fn run_examples(run: &Path) -> anyhow::Result<Vec<RunExample>> {
    let mut out: Vec<RunExample> = Vec::new();
    let mut here = Some(run.to_path_buf());
    for _ in 0..8 {
        let Some(dir) = here.take() else { break };
        let path = dir.join(EXAMPLES_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (runs trained before seedforge recorded their texts have none; \
                 give the texts with --data)",
                path.display()
            )
        })?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let e: RunExample = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not an example", path.display(), i + 1))?;
            if !out.iter().any(|o| o.text == e.text) {
                out.push(e);
            }
        }
        // An unreadable config is named, not read as "no earlier stage": that would drop the
        // first stage's examples without a word.
        here = read_trained_on(&dir)?.and_then(|t| t.started_from);
    }
    Ok(out)
}

/// What a run trained on, as its `config.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TrainedOn {
    pub real_examples: usize,
    pub extra_examples: usize,
    /// Training examples per label, task order (empty in runs saved before it was recorded).
    #[serde(default)]
    pub label_counts: Vec<usize>,
    /// Extra examples the model invented (absent in runs saved before it was recorded).
    #[serde(default)]
    pub generated_examples: Option<usize>,
    /// The run whose adapter this one trained on from (staged training).
    #[serde(default)]
    pub started_from: Option<PathBuf>,
    #[serde(default)]
    pub train: SoupSize,
}

/// The part of a run's recorded settings that says how many runs its adapter averages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SoupSize {
    #[serde(default = "one_run")]
    pub members: usize,
}

impl Default for SoupSize {
    fn default() -> Self {
        SoupSize { members: 1 }
    }
}

fn one_run() -> usize {
    1
}

impl TrainedOn {
    /// How many runs the adapter averages (1: a plain run; see [`super::soup`]).
    pub fn members(&self) -> usize {
        self.train.members
    }

    /// The seeds alone from fresh factors: the twin other runs are compared with.
    pub fn seeds_only(&self) -> bool {
        self.extra_examples == 0 && self.started_from.is_none()
    }
}

/// The counts of a run folder's `config.json`; `None` when it has none, an error naming the
/// file when it cannot be read.
pub fn read_trained_on(run: &Path) -> anyhow::Result<Option<TrainedOn>> {
    let path = run.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{}", path.display()))
}

/// The objective a run folder's adapter was trained for (from its `config.json`; an adapter
/// from elsewhere, without one, is taken for a classifier).
pub fn objective_of(run: &Path) -> anyhow::Result<Objective> {
    let path = run.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Objective::Classify),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    Ok(v.get("train")
        .and_then(|t| t.get("objective"))
        .map(|o| serde_json::from_value(o.clone()))
        .transpose()
        .with_context(|| format!("{}: unknown objective", path.display()))?
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_examples_names_an_unreadable_config_instead_of_ending_the_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        std::fs::write(
            run.join(EXAMPLES_FILE),
            r#"{"text":"fine","label":"positive","extra":false}"#,
        )
        .unwrap();
        std::fs::write(run.join("config.json"), "{ not json").unwrap();
        let e = run_examples(run).unwrap_err();
        assert!(format!("{e:#}").contains("config.json"), "{e:#}");
        // No config at all is a run with no earlier stage, not an error.
        std::fs::remove_file(run.join("config.json")).unwrap();
        assert_eq!(run_examples(run).unwrap().len(), 1);
    }
}
