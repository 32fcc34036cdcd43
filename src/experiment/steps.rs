//! One sampling seed's steps, each skipped when its marker says it finished before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Arm, DONE_DIR, ExperimentSpec, seed_dir};
use crate::data::import::fragments::Fragments;
use crate::data::import::{Format, ImportOptions};
use crate::data::import::{Row, SampleOptions, sample_per_class_with};
use crate::data::item::Source;
use crate::data::item::Verdict;
use crate::data::state::ItemState;
use crate::data::task::{Example, Task};
use crate::data::workspace::Workspace;
use crate::engine::eval_job::{Span, Target, TestSet};
use crate::engine::judge::{Judges, Resolved};
use crate::engine::{Event, Sink};
use crate::engine::{annotate_job, eval_job, generate_job, train_job};
use crate::eval::judge_selection::{Selection, SelectionContext, select};
use crate::eval::report::{EvalReport, Method};
use crate::eval::run::EvalOptions;
use crate::eval::run_folder;
use crate::llm::load::LoadedModel;
use crate::llm::model::Llama;
use crate::pipeline::annotate::Annotated;
use crate::pipeline::filters::FilterSettings;
use crate::pipeline::filters::diversity::{Diversity, diversity};
use crate::pipeline::filters::judge::kept;
use crate::pipeline::filters::stages::MALFORMED;
use crate::pipeline::filters::stages::{JudgeKind, LABEL_CONSISTENCY};
use crate::pipeline::filters::stats::rejecting_stage;
use crate::pipeline::length_strata;
use crate::pipeline::prompt::Templates;
use crate::train::metrics::TrainEvent;
use crate::train::run::RunSpec;
use crate::train::trainer::{Objective, TrainConfig};
use crate::util::control::JobControl;
use crate::util::rng::Rng;

/// What the steps run with.
pub struct Context<'a> {
    /// The model, its tokenizer and the file it came from.
    pub loaded: &'a LoadedModel,
    pub templates: &'a Templates,
    pub model_path: &'a str,
    pub device: &'a str,
    /// The rows seeds are drawn from.
    pub dataset: &'a [Row],
    /// The dataset's fragments by the spec's `seed_rows` (found once for every draw).
    pub fragments: &'a Fragments,
    pub test: &'a [Row],
}

/// Where the steps report, and how they are told to stop.
pub struct Hooks<'a> {
    pub log: &'a mut dyn FnMut(&str),
    /// Checked between steps and during generation and training; a stopped step leaves no
    /// marker and runs again next time.
    pub cancel: &'a JobControl,
}

/// The experiment was stopped before all its steps finished.
#[derive(Debug, thiserror::Error)]
#[error("stopped; run the same command again to continue from the last finished step")]
pub struct Cancelled;

/// A finished step: its wall time and what it produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub step: String,
    pub seconds: f64,
    pub finished_at: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeedsDetail {
    pub per_class: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GenerateDetail {
    pub items: usize,
    pub new_tokens: usize,
    pub tokens_per_s: f64,
    /// Classes whose quota of kept items the attempt cap cut short, with what they got.
    #[serde(default)]
    pub short: Vec<(String, usize)>,
    /// The judge that checked the labels.
    #[serde(default)]
    pub judge: Option<String>,
    /// The server that wrote the items (`{"endpoint", "model", "api"}`); absent: the model
    /// here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FilterDetail {
    pub kept: usize,
    pub rejected: usize,
    pub kept_per_class: BTreeMap<String, usize>,
    pub rejected_by_stage: BTreeMap<String, usize>,
    /// Generated items with a text at all: what the unfiltered arm trains on.
    pub usable: usize,
    /// How varied the seeds and the kept items are.
    #[serde(default)]
    pub diversity: Option<(Diversity, Diversity)>,
    /// Per class, the mean word count of its kept items and of its seeds: a gap between
    /// classes is one the classifier can learn as a label.
    #[serde(default)]
    pub mean_words: BTreeMap<String, (f64, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainDetail {
    pub train_examples: usize,
    pub val_examples: usize,
    pub steps: usize,
    pub best_epoch: Option<usize>,
    pub stop: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvalDetail {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub n: usize,
}

/// A generated item as the experiment keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratedItem {
    pub index: u64,
    pub label: String,
    pub text: String,
    pub raw: String,
    pub malformed: Option<String>,
    pub new_tokens: usize,
    /// The writer's mean log-probability per token of what it wrote.
    #[serde(default)]
    pub mean_logprob: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilteredItem {
    #[serde(flatten)]
    pub item: GeneratedItem,
    pub verdicts: Vec<Verdict>,
    pub kept: bool,
}

/// A training example and, when a judge gave one, its distribution over the labels.
type Labelled = (Example, Option<Vec<f32>>);

pub const SEEDS_FILE: &str = "seeds.jsonl";
pub const ANNOTATED_FILE: &str = "annotated.jsonl";
/// The unlabelled pool drawn for sampling seed `seed`: `n` of the dataset's rows that are not
/// seeds, at random; in a file of phrases (`fragments`, as the seeds were drawn) whole texts only,
/// as a user's own unlabelled texts would be.
pub fn pool_rows<'d>(
    dataset: &'d [Row],
    seeds: &[Example],
    fragments: &Fragments,
    seed: u64,
    n: usize,
) -> Vec<&'d Row> {
    let seeds: std::collections::HashSet<&str> = seeds.iter().map(|s| s.text.as_str()).collect();
    let mut pool: Vec<&Row> = dataset
        .iter()
        .enumerate()
        .filter(|(i, r)| !fragments.skips(*i) && !seeds.contains(r.text.as_str()))
        .map(|(_, r)| r)
        .collect();
    Rng::new(seed ^ 0xA11_0CA7E).shuffle(&mut pool);
    pool.truncate(n);
    pool
}

/// The annotated pool's texts, as the annotate job reads them.
pub const POOL_FILE: &str = "pool.jsonl";
/// The workspace the annotate job labels the pool into.
pub const ANNOTATE_WORKSPACE: &str = "workspace-annotated";
pub const TEACHER_DIR: &str = "teacher";

/// Who writes the synthetic items: the base model prompted with the seeds, or the teacher
/// adapter tuned on them (prompted without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Base,
    Teacher,
}

impl Writer {
    pub fn generated_file(self) -> &'static str {
        match self {
            Writer::Base => "generated.jsonl",
            Writer::Teacher => "generated-teacher.jsonl",
        }
    }
    pub fn filtered_file(self) -> &'static str {
        match self {
            Writer::Base => "filtered.jsonl",
            Writer::Teacher => "filtered-teacher.jsonl",
        }
    }
    /// The workspace the generation job writes into.
    pub fn workspace_dir(self) -> &'static str {
        match self {
            Writer::Base => "workspace",
            Writer::Teacher => "workspace-teacher",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnnotateDetail {
    pub pool: usize,
    pub kept: usize,
    pub kept_per_class: BTreeMap<String, usize>,
    /// Share of the pool whose model label equals the dataset's (hidden) label.
    pub agreement: f64,
    /// The same among the kept texts.
    pub kept_agreement: f64,
}

/// A pool text with the model's label and the dataset's, which the arm never trains on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnotatedItem {
    #[serde(flatten)]
    pub annotated: Annotated,
    pub dataset_label: String,
}

/// A generated item of the job's workspace as the experiment keeps it.
fn generated(it: &ItemState) -> anyhow::Result<FilteredItem> {
    let meta = &it.original().meta;
    let number = |key: &str| meta.get(key).and_then(serde_json::Value::as_f64);
    let index = meta
        .get("request")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("{} has no request number", it.id()))?;
    let verdicts = it.verdicts().to_vec();
    let malformed = verdicts
        .iter()
        .find(|v| v.stage == MALFORMED && !v.pass)
        .map(|v| v.reason.clone());
    Ok(FilteredItem {
        item: GeneratedItem {
            index,
            label: it.original().label.clone(),
            text: it.text().to_string(),
            raw: it.original().raw.clone().unwrap_or_default(),
            malformed,
            new_tokens: number("new_tokens").unwrap_or(0.0) as usize,
            mean_logprob: number("mean_logprob").unwrap_or(0.0),
        },
        kept: kept(&verdicts),
        verdicts,
    })
}

/// A workspace of this draw's task and seeds in `dir`, made afresh: a step cut short left one
/// that must not count.
fn fresh_workspace(dir: &Path, task: &Task) -> anyhow::Result<Workspace> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the unfinished {}", dir.display()))?;
    }
    // The task carries the draw's seeds: they become the workspace's seeds.
    Workspace::create(dir, task, &[]).with_context(|| format!("creating {}", dir.display()))
}

/// The server that judged the items, as the job recorded it on their verdicts
/// (`{"endpoint", "model"}`); none when the model here did.
fn judging_server(items: &[FilteredItem]) -> Option<&serde_json::Value> {
    items
        .iter()
        .find_map(|f| f.verdicts.iter().find_map(|v| v.judge.as_ref()))
}

/// Whether these arms judge anything (generated or annotated items).
fn judges(arms: &[Arm]) -> bool {
    arms.iter()
        .any(|a| a.needs_generation() || a.needs_annotation() || *a == Arm::LoraTeacher)
}

/// The steps of one seed for these arms, in the order they run. The seeds-only run trains
/// first when the judge may read with it.
pub fn step_names(spec: &ExperimentSpec, arms: &[Arm]) -> Vec<String> {
    let mut out = vec!["seeds".to_string()];
    let early_real = judges(arms) && spec.judge_may_need_adapter();
    let train_real = format!("train-{}", Arm::LoraReal.name());
    if early_real {
        out.push(train_real.clone());
    }
    if judges(arms) && spec.judge_select && spec.filters.label_consistency {
        out.push("judge".into());
    }
    if arms.iter().any(|a| a.needs_generation()) {
        out.push("generate".into());
        out.push("filter".into());
    }
    if arms.contains(&Arm::LoraTeacher) {
        out.extend(["teacher", "generate-teacher", "filter-teacher"].map(String::from));
    }
    if arms.iter().any(|a| a.needs_annotation()) {
        out.push("annotate".into());
    }
    for a in arms {
        let train = format!("train-{}", a.name());
        if a.trains() && !(early_real && train == train_real) {
            out.push(train);
        }
        out.push(format!("eval-{}", a.name()));
    }
    out
}

pub fn marker_path(dir: &Path, step: &str) -> PathBuf {
    dir.join(DONE_DIR).join(format!("{step}.json"))
}

/// The marker of `step` in a seed folder, if that step finished.
pub fn read_marker(dir: &Path, step: &str) -> anyhow::Result<Option<Marker>> {
    let path = marker_path(dir, step);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{}: a broken step marker (delete it to redo the step)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Steps of these seeds and arms that have not finished.
/// How `arm` is scored: a LoRA arm as the workbench reads its run (`eval::reading`), unless
/// the spec or the arm asks for the raw scores (the calibration's ablation).
fn eval_options(
    spec: &ExperimentSpec,
    arm: Arm,
    method: Method,
    adapter: Option<&Path>,
) -> anyhow::Result<EvalOptions> {
    Ok(match adapter {
        Some(dir) if spec.calibrate_extra && arm != Arm::LoraSyntheticUncalibrated => EvalOptions {
            batch: spec.eval_batch,
            ..crate::eval::reading::eval_options_for_run(dir)?
        },
        _ => EvalOptions {
            calibrate: arm == Arm::IclCalibrated,
            batch: spec.eval_batch,
            ..EvalOptions::new(method)
        },
    })
}

/// Reopens the finished LoRA evaluations whose saved reading is not the one this version
/// gives their run (a default changed since they were scored): their markers go, so they are
/// scored again instead of being mixed into one report with the others. Returns a line for
/// each, to tell the user.
pub fn reopen_stale_evaluations(
    out: &Path,
    spec: &ExperimentSpec,
    seeds: &[u64],
    arms: &[Arm],
) -> anyhow::Result<Vec<String>> {
    let mut reopened = Vec::new();
    for &s in seeds {
        let dir = seed_dir(out, s);
        for &arm in arms {
            let Some(adapter) = arm.adapter_of().map(|a| dir.join(a.name())) else {
                continue;
            };
            let step = format!("eval-{}", arm.name());
            if read_marker(&dir, &step)?.is_none() {
                continue;
            }
            let Some(saved) =
                run_folder::read_report(&dir.join(arm.name())).map_err(anyhow::Error::msg)?
            else {
                continue;
            };
            let now = eval_options(spec, arm, Method::Lora, Some(&adapter))?;
            let strength = |calibrated: bool, s: f64| if calibrated { s } else { 0.0 };
            let was = strength(saved.calibrated, saved.calibration_strength.unwrap_or(1.0));
            let will = strength(now.calibrate, now.calibration_strength);
            if (was - will).abs() > 1e-9 {
                let path = marker_path(&dir, &step);
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
                reopened.push(format!(
                    "seed {s}: {step} was read with calibration strength {was}, now {will}: \
                     scoring it again"
                ));
            }
        }
    }
    Ok(reopened)
}

pub fn pending(
    out: &Path,
    spec: &ExperimentSpec,
    seeds: &[u64],
    arms: &[Arm],
) -> anyhow::Result<usize> {
    let mut n = 0;
    for &s in seeds {
        let dir = seed_dir(out, s);
        for step in step_names(spec, arms) {
            if read_marker(&dir, &step)?.is_none() {
                n += 1;
            }
        }
    }
    Ok(n)
}

fn write_jsonl<T: Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    let mut text = String::new();
    for it in items {
        text.push_str(&serde_json::to_string(it)?);
        text.push('\n');
    }
    crate::data::atomic::write_atomic_bytes(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn read_jsonl<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

struct SeedRun<'a, 'h> {
    ctx: &'a Context<'a>,
    hooks: &'a mut Hooks<'h>,
    spec: &'a ExperimentSpec,
    seed: u64,
    dir: PathBuf,
}

/// Runs every unfinished step of sampling seed `seed` for `arms`.
pub fn run_seed(
    ctx: &Context,
    hooks: &mut Hooks,
    spec: &ExperimentSpec,
    out: &Path,
    seed: u64,
    arms: &[Arm],
) -> anyhow::Result<()> {
    let dir = seed_dir(out, seed);
    std::fs::create_dir_all(dir.join(DONE_DIR))
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut run = SeedRun {
        ctx,
        hooks,
        spec,
        seed,
        dir,
    };
    run.step("seeds", SeedRun::draw_seeds)?;
    let early_real = judges(arms) && spec.judge_may_need_adapter();
    if early_real {
        run.step(&format!("train-{}", Arm::LoraReal.name()), |r| {
            r.train(Arm::LoraReal)
        })?;
    }
    if judges(arms) && spec.judge_select && spec.filters.label_consistency {
        run.step("judge", SeedRun::select_judge)?;
    }
    if arms.iter().any(|a| a.needs_generation()) {
        run.step("generate", |r| r.generate(Writer::Base))?;
        run.step("filter", |r| r.filter(Writer::Base))?;
    }
    if arms.contains(&Arm::LoraTeacher) {
        run.step("teacher", SeedRun::train_teacher)?;
        run.step("generate-teacher", |r| r.generate(Writer::Teacher))?;
        run.step("filter-teacher", |r| r.filter(Writer::Teacher))?;
    }
    if arms.iter().any(|a| a.needs_annotation()) {
        run.step("annotate", SeedRun::annotate)?;
    }
    for &arm in arms {
        if arm.trains() {
            run.step(&format!("train-{}", arm.name()), |r| r.train(arm))?;
        }
        run.step(&format!("eval-{}", arm.name()), |r| r.evaluate(arm))?;
    }
    Ok(())
}

impl SeedRun<'_, '_> {
    fn log(&mut self, line: &str) {
        (self.hooks.log)(&format!("seed {}: {line}", self.seed));
    }

    fn cancelled(&self) -> bool {
        self.hooks.cancel.is_stopped()
    }

    fn step<T: Serialize>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Self) -> anyhow::Result<T>,
    ) -> anyhow::Result<()> {
        if let Some(m) = read_marker(&self.dir, name)? {
            self.log(&format!("{name}: done earlier ({:.1} s)", m.seconds));
            return Ok(());
        }
        if self.cancelled() {
            return Err(Cancelled.into());
        }
        self.log(&format!("{name}…"));
        let started = Instant::now();
        let detail = f(self)?;
        if self.cancelled() {
            return Err(Cancelled.into());
        }
        let marker = Marker {
            step: name.to_string(),
            seconds: started.elapsed().as_secs_f64(),
            finished_at: crate::data::time::now_rfc3339(),
            detail: serde_json::to_value(detail)?,
        };
        let path = marker_path(&self.dir, name);
        let text = serde_json::to_string_pretty(&marker)? + "\n";
        crate::data::atomic::write_atomic_bytes(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        self.log(&format!("{name}: finished in {:.1} s", marker.seconds));
        Ok(())
    }

    /// The task with this seed's seeds.
    fn task(&self) -> anyhow::Result<Task> {
        let mut task = self.spec.task.clone();
        task.seeds = read_jsonl(&self.dir.join(SEEDS_FILE))?;
        Ok(task)
    }

    fn draw_seeds(&mut self) -> anyhow::Result<SeedsDetail> {
        let labels: Vec<String> = self
            .spec
            .task
            .labels
            .iter()
            .map(|l| l.name.clone())
            .collect();
        let opts = SampleOptions {
            per_class: self.spec.seeds_per_class,
            seed: self.seed,
            min_words: self.spec.min_words,
            rows: self.spec.seed_rows,
        };
        let sample = sample_per_class_with(self.ctx.dataset, &labels, &opts, self.ctx.fragments);
        self.log(&format!("seeds: {}", sample.fragment_rule));
        if let Some(c) = sample.classes.iter().find(|c| c.taken == 0) {
            anyhow::bail!(
                "{}: class {} has no row of at least {} words",
                self.spec.dataset.display(),
                c.label,
                self.spec.min_words
            );
        }
        let seeds: Vec<Example> = sample.rows.into_iter().map(Example::from).collect();
        write_jsonl(&self.dir.join(SEEDS_FILE), &seeds)?;
        Ok(SeedsDetail {
            per_class: sample
                .classes
                .iter()
                .map(|c| (c.label.clone(), c.taken))
                .collect(),
        })
    }

    /// The judge of label consistency for this seed: the measured choice when the experiment
    /// selects it, else the settings'.
    fn judge_kind(&self) -> anyhow::Result<JudgeKind> {
        if !self.spec.judge_select {
            return Ok(self.spec.filters.judge);
        }
        let marker = read_marker(&self.dir, "judge")?
            .ok_or_else(|| anyhow::anyhow!("the judge step has not run"))?;
        let sel: Selection = serde_json::from_value(marker.detail)
            .with_context(|| format!("{}: the judge step's record", self.dir.display()))?;
        Ok(sel.chosen)
    }

    /// The filter settings with this seed's judge.
    /// (The judge step, when there is one, chose it: nothing is to be chosen again.)
    fn filter_settings(&self) -> anyhow::Result<FilterSettings> {
        let mut f = self.spec.filters.clone();
        f.judge = self.judge_kind()?;
        f.select_judge = false;
        Ok(f)
    }

    /// The model the judge reads with: the base model, or the seeds-only run's adapter on it.
    fn judge_model(&self, judge: JudgeKind) -> anyhow::Result<Llama> {
        let mut model = self.ctx.loaded.model.clone();
        if judge.needs_adapter() {
            let dir = self.dir.join(Arm::LoraReal.name());
            crate::train::peft::load_adapter(&mut model, &dir)
                .with_context(|| format!("loading the judge's adapter in {}", dir.display()))?;
        }
        Ok(model)
    }

    fn select_judge(&mut self) -> anyhow::Result<Selection> {
        let task = self.task()?;
        let mut cfg = self.spec.train.clone();
        cfg.seed = self.seed;
        let sel_ctx = SelectionContext {
            model: &self.ctx.loaded.model,
            tokenizer: &self.ctx.loaded.tokenizer,
            templates: self.ctx.templates,
            task: &task,
            calibrate: self.spec.filters.calibrate,
            train: &cfg,
            model_path: self.ctx.model_path,
            device: self.ctx.device,
        };
        let mut lines = Vec::new();
        let sel = select(&sel_ctx, &JudgeKind::ALL, &mut |l| {
            lines.push(l.to_string())
        })?;
        for l in lines {
            self.log(&l);
        }
        self.log(&format!("judge: {}", sel.reason));
        Ok(sel)
    }

    /// The workbench's generation job on a workspace of this draw's task and seeds (made
    /// afresh: a step cut short runs again from scratch): items written, the cheap filters and
    /// the label check as they come, quota rounds until every class has `per_class` kept items
    /// or its attempt cap. Then the items and their verdicts as the later steps read them.
    fn generate(&mut self, writer: Writer) -> anyhow::Result<GenerateDetail> {
        let task = self.task()?;
        let mut settings = self.spec.generate.clone();
        settings.sampling.seed = self.seed;
        let adapter = (writer == Writer::Teacher).then(|| self.dir.join(TEACHER_DIR));
        if writer == Writer::Teacher {
            settings.seeds_in_prompt = false;
            settings.sampling.temperature = self.spec.teacher_temperature;
            // A teacher is an adapter on the model here: it never writes through a server.
            settings.remote = None;
        }
        let filters = self.filter_settings()?;
        let request = generate_job::Request {
            settings: &settings,
            filters: &filters,
            adapter: adapter.as_deref(),
        };
        let started = Instant::now();
        let (loaded, control) = (self.ctx.loaded, self.hooks.cancel);
        let dir = self.dir.join(writer.workspace_dir());
        let judged = filters.label_consistency;
        let (outcome, ws) =
            self.on_fresh_workspace(&dir, &task, &filters, judged, |ws, sink, judges| {
                generate_job::run(0, loaded, ws, &request, control, sink, judges)
            })?;
        let mut out: Vec<FilteredItem> = ws
            .state()
            .items()
            .iter()
            .filter(|it| it.source() == Source::Generated)
            .map(generated)
            .collect::<anyhow::Result<_>>()?;
        // Request order, as the report lists them (the job writes them as they finish).
        out.sort_by_key(|f| f.item.index);
        let new_tokens: usize = out.iter().map(|f| f.item.new_tokens).sum();
        let detail = GenerateDetail {
            items: out.len(),
            new_tokens,
            tokens_per_s: new_tokens as f64 / started.elapsed().as_secs_f64().max(1e-9),
            short: outcome.short,
            judge: Some(match judging_server(&out) {
                Some(j) => format!(
                    "{} on {} (model {})",
                    filters.judge.name(),
                    j["endpoint"].as_str().unwrap_or("?"),
                    j["model"].as_str().unwrap_or("?")
                ),
                None => filters.judge.name().to_string(),
            }),
            // The server that wrote them, as the job recorded it on each item.
            writer: ws
                .state()
                .items()
                .iter()
                .find_map(|it| it.original().meta.get("writer").cloned()),
        };
        let generated: Vec<&GeneratedItem> = out.iter().map(|f| &f.item).collect();
        write_jsonl(&self.dir.join(writer.generated_file()), &generated)?;
        write_jsonl(&self.dir.join(writer.filtered_file()), &out)?;
        Ok(detail)
    }

    /// Tallies the verdicts the generation step gave (it judged as it went, to fill quotas).
    fn filter(&mut self, writer: Writer) -> anyhow::Result<FilterDetail> {
        let items: Vec<FilteredItem> = read_jsonl(&self.dir.join(writer.filtered_file()))?;
        let mut detail = FilterDetail::default();
        let task = self.task()?;
        let seeds: Vec<&str> = task.seeds.iter().map(|s| s.text.as_str()).collect();
        let kept_texts: Vec<&str> = items
            .iter()
            .filter(|i| i.kept)
            .map(|i| i.item.text.as_str())
            .collect();
        detail.diversity = Some((diversity(&seeds), diversity(&kept_texts)));
        let labels: Vec<&str> = task.labels.iter().map(|l| l.name.as_str()).collect();
        let kept_pairs: Vec<(&str, &str)> = items
            .iter()
            .filter(|i| i.kept)
            .map(|i| (i.item.label.as_str(), i.item.text.as_str()))
            .collect();
        let seed_pairs: Vec<(&str, &str)> = task
            .seeds
            .iter()
            .map(|s| (s.label.as_str(), s.text.as_str()))
            .collect();
        detail.mean_words = length_strata::mean_words_per_class(&labels, &kept_pairs, &seed_pairs)
            .into_iter()
            .map(|(l, kept, seeds)| (l, (kept, seeds)))
            .collect();
        for i in &items {
            if i.kept {
                detail.kept += 1;
                *detail
                    .kept_per_class
                    .entry(i.item.label.clone())
                    .or_default() += 1;
            } else {
                detail.rejected += 1;
                let stage = rejecting_stage(&i.verdicts).unwrap_or("?").to_string();
                *detail.rejected_by_stage.entry(stage).or_default() += 1;
            }
            if !i.item.text.trim().is_empty() {
                detail.usable += 1;
            }
        }
        Ok(detail)
    }

    /// The teacher: LoRA with the generation objective on this seed's seeds.
    fn train_teacher(&mut self) -> anyhow::Result<TrainDetail> {
        let mut cfg = self.spec.train.clone();
        cfg.objective = Objective::Generate;
        self.train_into(TEACHER_DIR, &[], &[], cfg, (Vec::new(), 0, None))
    }

    /// Labels a pool of the dataset's texts (seeds left out, labels hidden) with the in-context
    /// classifier of the label-consistency filter, then filters them with a confidence floor.
    fn annotate(&mut self) -> anyhow::Result<AnnotateDetail> {
        let task = self.task()?;
        let pool = pool_rows(
            self.ctx.dataset,
            &task.seeds,
            self.ctx.fragments,
            self.seed,
            self.spec.pool,
        );
        // The pool as the user would bring it (texts, no labels), labelled by the workbench's
        // annotate job into a workspace of its own (made afresh, so a step cut short starts
        // over), with the judge of the label check.
        let input = self.dir.join(POOL_FILE);
        let texts: Vec<serde_json::Value> = pool
            .iter()
            .map(|r| serde_json::json!({ "text": r.text }))
            .collect();
        write_jsonl(&input, &texts)?;
        let filters = self.filter_settings()?;
        let dir = self.dir.join(ANNOTATE_WORKSPACE);
        let request = crate::engine::AnnotateRequest {
            input: input.clone(),
            read: ImportOptions {
                format: Some(Format::Jsonl),
                ..ImportOptions::default()
            },
            adapter: None,
            limit: None,
            min_confidence: self.spec.annotate_min_confidence,
            filters: filters.clone(),
        };
        let (loaded, control) = (self.ctx.loaded, self.hooks.cancel);
        let (_, ws) =
            self.on_fresh_workspace(&dir, &task, &filters, true, |ws, sink, judges| {
                annotate_job::run(0, loaded, ws, &request, control, sink, judges)
            })?;
        let mut detail = AnnotateDetail {
            pool: pool.len(),
            ..AnnotateDetail::default()
        };
        let (mut agree, mut kept_agree) = (0usize, 0usize);
        let mut items = Vec::new();
        for it in ws.state().items() {
            // Each item names the pool line it came from.
            let row = it
                .original()
                .meta
                .get("input")
                .and_then(serde_json::Value::as_str)
                .and_then(|s| s.rsplit(':').next())
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|line| pool.get(line.wrapping_sub(1)))
                .with_context(|| format!("{}: no pool line for {}", dir.display(), it.id()))?;
            let a = Annotated::of_item(it);
            let same = a.label == row.label;
            agree += usize::from(same);
            if a.kept {
                detail.kept += 1;
                kept_agree += usize::from(same);
                *detail.kept_per_class.entry(a.label.clone()).or_default() += 1;
            }
            items.push(AnnotatedItem {
                annotated: a,
                dataset_label: row.label.clone(),
            });
        }
        detail.agreement = agree as f64 / detail.pool.max(1) as f64;
        detail.kept_agreement = kept_agree as f64 / detail.kept.max(1) as f64;
        write_jsonl(&self.dir.join(ANNOTATED_FILE), &items)?;
        Ok(detail)
    }

    /// Runs one of the workbench's jobs on a workspace of this draw's task and seeds at `dir`
    /// (made afresh: a step cut short starts over), with the seeds-only run as the seeds' LoRA
    /// judge when `judged` and the filters ask for it; says what the job logged (its other
    /// events are the workbench's to draw) and hands back the workspace.
    fn on_fresh_workspace<T>(
        &mut self,
        dir: &Path,
        task: &Task,
        filters: &FilterSettings,
        judged: bool,
        job: impl FnOnce(&Mutex<Workspace>, &Sink, &mut Judges) -> anyhow::Result<T>,
    ) -> anyhow::Result<(T, Workspace)> {
        let mut judge = None;
        if judged && filters.remote_judge.is_none() && filters.judge.needs_adapter() {
            let model = self.judge_model(filters.judge)?;
            judge = Some(Resolved::given(task, filters, model));
        }
        let ws = Mutex::new(fresh_workspace(dir, task)?);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let outcome = job(
            &ws,
            &Sink::new(tx),
            &mut Judges {
                cache: &mut judge,
                device: self.ctx.device,
            },
        );
        while let Ok(event) = rx.try_recv() {
            match event {
                Event::Log(line) => self.log(&line),
                Event::JudgeChosen { summary, .. } => self.log(&summary),
                _ => {}
            }
        }
        if self.cancelled() {
            return Err(Cancelled.into());
        }
        let outcome = outcome?;
        Ok((outcome, ws.into_inner().unwrap_or_else(|e| e.into_inner())))
    }

    /// The examples an arm trains on besides the seeds, each with the judge's distribution
    /// over the labels when it gave one (for soft labels); where they came from; and how many
    /// of them the model invented (the annotated pool is real text).
    fn extra(&self, arm: Arm) -> anyhow::Result<(Vec<Labelled>, String, usize)> {
        let labels = self.spec.task.label_names();
        let in_task_order = |probs: &[(String, f64)]| -> Option<Vec<f32>> {
            labels
                .iter()
                .map(|l| probs.iter().find(|(x, _)| x == l).map(|(_, p)| *p as f32))
                .collect()
        };
        let filtered = |writer: Writer, all: bool| -> anyhow::Result<Vec<Labelled>> {
            let items: Vec<FilteredItem> = read_jsonl(&self.dir.join(writer.filtered_file()))?;
            Ok(items
                .into_iter()
                .filter(|i| {
                    if all {
                        !i.item.text.trim().is_empty()
                    } else {
                        i.kept
                    }
                })
                .map(|i| {
                    let soft = i
                        .verdicts
                        .iter()
                        .find(|v| v.stage == LABEL_CONSISTENCY)
                        .and_then(|v| v.probs.as_deref())
                        .and_then(in_task_order);
                    (
                        Example {
                            text: i.item.text,
                            label: i.item.label,
                        },
                        soft,
                    )
                })
                .collect())
        };
        let annotated = || -> anyhow::Result<Vec<Labelled>> {
            let items: Vec<AnnotatedItem> = read_jsonl(&self.dir.join(ANNOTATED_FILE))?;
            Ok(items
                .into_iter()
                .filter(|i| i.annotated.kept)
                .map(|i| {
                    let soft = in_task_order(&i.annotated.probs);
                    (
                        Example {
                            text: i.annotated.text,
                            label: i.annotated.label,
                        },
                        soft,
                    )
                })
                .collect())
        };
        let generated = |items: Vec<Labelled>, source: String| {
            let n = items.len();
            (items, source, n)
        };
        Ok(match arm {
            Arm::LoraSynthetic => generated(
                filtered(Writer::Base, false)?,
                format!("{} (kept)", Writer::Base.filtered_file()),
            ),
            Arm::LoraUnfiltered => generated(
                filtered(Writer::Base, true)?,
                format!("{} (all with a text)", Writer::Base.filtered_file()),
            ),
            Arm::LoraTeacher => generated(
                filtered(Writer::Teacher, false)?,
                format!("{} (kept)", Writer::Teacher.filtered_file()),
            ),
            Arm::LoraAnnotated => (annotated()?, format!("{ANNOTATED_FILE} (kept)"), 0),
            Arm::LoraMixed => {
                let mut both = filtered(Writer::Base, false)?;
                let n = both.len();
                both.extend(annotated()?);
                let source = format!(
                    "{} (kept) + {ANNOTATED_FILE} (kept)",
                    Writer::Base.filtered_file()
                );
                (both, source, n)
            }
            _ => (Vec::new(), String::new(), 0),
        })
    }

    fn train(&mut self, arm: Arm) -> anyhow::Result<TrainDetail> {
        if let Some(first) = arm.builds_on() {
            // Staged: the first arm's adapter trains on, on the seeds alone.
            let from = self.dir.join(first.name());
            let sources = vec![format!("continued from {}", first.name())];
            let cfg = self.spec.train.clone();
            return self.train_into(arm.name(), &[], &[], cfg, (sources, 0, Some(from)));
        }
        let (extra, source, generated) = self.extra(arm)?;
        let sources = if source.is_empty() {
            Vec::new()
        } else {
            vec![source]
        };
        let cfg = self.spec.train.clone();
        let (examples, soft): (Vec<Example>, Vec<Option<Vec<f32>>>) = extra.into_iter().unzip();
        self.train_into(
            arm.name(),
            &examples,
            &soft,
            cfg,
            (sources, generated, None),
        )
    }

    /// A training run in `<seed dir>/<name>` on the seeds + `extra`.
    fn train_into(
        &mut self,
        name: &str,
        extra: &[Example],
        extra_soft: &[Option<Vec<f32>>],
        mut cfg: TrainConfig,
        (extra_sources, generated_extra, start_from): (Vec<String>, usize, Option<PathBuf>),
    ) -> anyhow::Result<TrainDetail> {
        let task = self.task()?;
        let out = self.dir.join(name);
        // A run folder without a marker is a run that was cut off: start it afresh.
        if out.exists() {
            std::fs::remove_dir_all(&out)
                .with_context(|| format!("removing the unfinished run {}", out.display()))?;
        }
        cfg.seed = self.seed;
        let spec = RunSpec {
            task: &task,
            templates: self.ctx.templates,
            real: &task.seeds,
            extra,
            extra_soft,
            extra_sources,
            generated_extra,
            start_from: start_from.as_deref(),
            config: &cfg,
            out: &out,
            model_path: self.ctx.model_path,
            device: self.ctx.device,
        };
        // The workbench's training job; its events are read once it ends.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let result = train_job::train(0, self.ctx.loaded, &spec, self.hooks.cancel, &Sink::new(tx));
        let mut lines = Vec::new();
        while let Ok(event) = rx.try_recv() {
            match event {
                Event::Train {
                    event:
                        TrainEvent::Started {
                            member: Some([i, k]),
                            ..
                        },
                    ..
                } => lines.push(format!("  soup member {i} of {k}")),
                Event::Train {
                    event:
                        TrainEvent::Eval {
                            epoch,
                            train_loss,
                            val_loss,
                            best,
                            ..
                        },
                    ..
                } => lines.push(format!(
                    "  epoch {:>2}  train loss {train_loss:.4}  val loss {}{}",
                    epoch + 1,
                    val_loss.map_or("-".into(), |v| format!("{v:.4}")),
                    if best { "  (best)" } else { "" }
                )),
                _ => {}
            }
        }
        let result = result?;
        for l in lines {
            self.log(&l);
        }
        Ok(TrainDetail {
            train_examples: result.train_examples,
            val_examples: result.val_examples,
            steps: result.outcome.steps,
            best_epoch: result.outcome.best_epoch,
            stop: format!("{:?}", result.outcome.reason),
        })
    }

    /// Another sampling seed's finished zero-shot evaluation: the zero-shot prompt holds no
    /// seeds, so it is the same for every seed of the experiment.
    fn earlier_zero_shot(&self) -> Option<(PathBuf, EvalReport)> {
        let out = self.dir.parent()?;
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| {
                d != &self.dir
                    && d.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            })
            .collect();
        dirs.sort();
        dirs.into_iter().find_map(|d| {
            let name = format!("eval-{}", Arm::ZeroShot.name());
            read_marker(&d, &name).ok()??;
            // One that cannot be read is not reused; this seed evaluates its own.
            let report = run_folder::read_report(&d.join(Arm::ZeroShot.name())).ok()??;
            Some((d, report))
        })
    }

    fn evaluate(&mut self, arm: Arm) -> anyhow::Result<EvalDetail> {
        let run_dir = self.dir.join(arm.name());
        if arm == Arm::ZeroShot
            && let Some((from, report)) = self.earlier_zero_shot()
        {
            report
                .save(&run_dir)
                .with_context(|| format!("saving the evaluation in {}", run_dir.display()))?;
            self.log(&format!(
                "zero-shot: the same for every seed (no seeds in its prompt), taken from {}",
                from.display()
            ));
            return Ok(EvalDetail {
                accuracy: report.metrics.accuracy,
                macro_f1: report.metrics.macro_f1,
                n: report.metrics.n,
            });
        }
        let task = self.task()?;
        let adapter_dir = arm.adapter_of().map(|a| self.dir.join(a.name()));
        let (target, method) = match (&adapter_dir, arm) {
            (Some(dir), _) => (Target::Lora(dir.clone()), Method::Lora),
            (None, Arm::ZeroShot) => (Target::ZeroShot, Method::ZeroShot),
            (None, _) => (Target::Icl, Method::Icl),
        };
        let options = eval_options(self.spec, arm, method, adapter_dir.as_deref())?;
        let model = target.model(&self.ctx.loaded.model)?;
        let test = TestSet {
            task: &task,
            templates: self.ctx.templates,
            rows: self.ctx.test,
            file: &self.spec.test,
        };
        // The workbench's evaluation; its progress events are the workbench's to draw.
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let report = eval_job::evaluate_one(
            0,
            self.ctx.loaded,
            &model,
            &test,
            &target,
            &options,
            Span::whole(self.ctx.test.len()),
            self.hooks.cancel,
            &Sink::new(tx),
        )?;
        let Some(report) = report else {
            return Err(Cancelled.into());
        };
        report
            .save(&run_dir)
            .with_context(|| format!("saving the evaluation in {}", run_dir.display()))?;
        self.log(&format!(
            "{}: accuracy {:.2}%, macro-F1 {:.3} on {} rows",
            arm.name(),
            report.metrics.accuracy * 100.0,
            report.metrics.macro_f1,
            report.metrics.n
        ));
        Ok(EvalDetail {
            accuracy: report.metrics.accuracy,
            macro_f1: report.metrics.macro_f1,
            n: report.metrics.n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(judge_select: bool, judge: JudgeKind) -> ExperimentSpec {
        ExperimentSpec {
            dataset: "d.tsv".into(),
            test: "t.tsv".into(),
            test_rows: 1,
            validation: None,
            task: Task::demo(),
            seeds_per_class: 4,
            min_words: 0,
            seed_rows: crate::data::import::SeedRows::Auto,
            generate: crate::pipeline::generate::GenerateSettings::default(),
            filters: FilterSettings {
                judge,
                ..FilterSettings::default()
            },
            train: TrainConfig::default(),
            eval_batch: 1,
            model: "m".into(),
            pool: 1,
            annotate_min_confidence: 0.6,
            teacher_temperature: 0.8,
            judge_select,
            calibrate_extra: false,
        }
    }

    #[test]
    fn generation_steps_only_when_an_arm_needs_them() {
        let fixed = spec(false, JudgeKind::Icl);
        assert_eq!(
            step_names(&fixed, &[Arm::Icl, Arm::LoraReal]),
            vec!["seeds", "eval-icl", "train-lora-real", "eval-lora-real"]
        );
        let all = step_names(&fixed, &[Arm::ZeroShot, Arm::LoraUnfiltered]);
        assert_eq!(&all[..3], ["seeds", "generate", "filter"]);
    }

    #[test]
    fn a_judge_that_may_read_with_the_seeds_lora_trains_it_first_and_once() {
        for (select, judge) in [(true, JudgeKind::Icl), (false, JudgeKind::SeedsLora)] {
            let names = step_names(
                &spec(select, judge),
                &[Arm::LoraReal, Arm::LoraSynthetic, Arm::LoraMixed],
            );
            assert_eq!(&names[..2], ["seeds", "train-lora-real"], "{names:?}");
            assert_eq!(
                names.iter().filter(|n| *n == "train-lora-real").count(),
                1,
                "{names:?}"
            );
            assert_eq!(names.contains(&"judge".to_string()), select, "{names:?}");
            assert!(names.contains(&"annotate".to_string()), "{names:?}");
        }
        // Nothing judged: no early training, no judge step.
        let names = step_names(&spec(true, JudgeKind::Icl), &[Arm::LoraReal]);
        assert_eq!(names, ["seeds", "train-lora-real", "eval-lora-real"]);
    }

    #[test]
    fn the_pool_of_a_phrase_file_is_whole_texts_and_never_a_seed() {
        use crate::data::import::SeedRows;
        let row = |line: usize, text: &str| Row {
            line,
            text: text.into(),
            label: "x".into(),
        };
        let data = [
            row(1, "a fine , moving film ."),
            row(2, "a fine , moving film"),
            row(3, "moving film"),
            row(4, "a dull , lifeless mess ."),
            row(5, "lifeless mess"),
            row(6, "a loud , empty sequel ."),
        ];
        let seeds = [Example {
            text: "a dull , lifeless mess .".into(),
            label: "x".into(),
        }];
        let pool = |rows, n| pool_rows(&data, &seeds, &Fragments::of(&data, rows), 3, n);
        let lines = |rows: SeedRows| {
            let mut l: Vec<usize> = pool(rows, 10).iter().map(|r| r.line).collect();
            l.sort_unstable();
            l
        };
        assert_eq!(lines(SeedRows::Auto), [1, 6]);
        // `any` (experiments from before the rule) keeps the phrases, as it did.
        assert_eq!(lines(SeedRows::Any), [1, 2, 3, 5, 6]);
        // The same seed draws the same pool; `n` cuts it.
        assert_eq!(pool(SeedRows::Any, 2).len(), 2);
        assert_eq!(pool(SeedRows::Any, 10), pool(SeedRows::Any, 10));
    }
}
