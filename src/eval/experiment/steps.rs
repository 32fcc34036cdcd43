//! One sampling seed's steps, each skipped when its marker says it finished before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Arm, DONE_DIR, ExperimentSpec, seed_dir};
use crate::data::import::{Row, SampleOptions, sample_per_class};
use crate::data::item::Verdict;
use crate::data::task::{Example, Task};
use crate::eval::report::{EvalReport, Method};
use crate::eval::run::{EvalOptions, evaluate};
use crate::llm::model::Llama;
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::annotate::{Annotated, annotate};
use crate::pipeline::classify::Classifier;
use crate::pipeline::filters::Filters;
use crate::pipeline::filters::judge::{Judge, ToJudge, judge_all, kept};
use crate::pipeline::filters::stages::consistency_classifier;
use crate::pipeline::filters::stats::rejecting_stage;
use crate::pipeline::generate::{self, GenerateEvent};
use crate::pipeline::prompt::Templates;
use crate::train::metrics::TrainEvent;
use crate::train::run::{RunSpec, train_run};
use crate::train::trainer::{Objective, TrainConfig, TrainControl};
use crate::util::rng::Rng;

/// What the steps run with.
pub struct Context<'a> {
    pub model: &'a Llama,
    pub tokenizer: &'a TextTokenizer,
    pub templates: &'a Templates,
    pub model_path: &'a str,
    pub device: &'a str,
    /// The rows seeds are drawn from.
    pub dataset: &'a [Row],
    pub test: &'a [Row],
}

/// Where the steps report, and how they are told to stop.
pub struct Hooks<'a> {
    pub log: &'a mut dyn FnMut(&str),
    /// Checked between steps and during generation and training; a stopped step leaves no
    /// marker and runs again next time.
    pub cancel: &'a AtomicBool,
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
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FilterDetail {
    pub kept: usize,
    pub rejected: usize,
    pub kept_per_class: BTreeMap<String, usize>,
    pub rejected_by_stage: BTreeMap<String, usize>,
    /// Generated items with a text at all: what the unfiltered arm trains on.
    pub usable: usize,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilteredItem {
    #[serde(flatten)]
    pub item: GeneratedItem,
    pub verdicts: Vec<Verdict>,
    pub kept: bool,
}

pub const SEEDS_FILE: &str = "seeds.jsonl";
pub const ANNOTATED_FILE: &str = "annotated.jsonl";
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

/// The steps of one seed for these arms, in the order they run.
pub fn step_names(arms: &[Arm]) -> Vec<String> {
    let mut out = vec!["seeds".to_string()];
    if arms.iter().any(|a| a.needs_generation()) {
        out.push("generate".into());
        out.push("filter".into());
    }
    if arms.contains(&Arm::LoraTeacher) {
        out.extend(["teacher", "generate-teacher", "filter-teacher"].map(String::from));
    }
    if arms.contains(&Arm::LoraAnnotated) {
        out.push("annotate".into());
    }
    for a in arms {
        if a.trains() {
            out.push(format!("train-{}", a.name()));
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
pub fn pending(out: &Path, seeds: &[u64], arms: &[Arm]) -> anyhow::Result<usize> {
    let mut n = 0;
    for &s in seeds {
        let dir = seed_dir(out, s);
        for step in step_names(arms) {
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
    if arms.iter().any(|a| a.needs_generation()) {
        run.step("generate", |r| r.generate(Writer::Base))?;
        run.step("filter", |r| r.filter(Writer::Base))?;
    }
    if arms.contains(&Arm::LoraTeacher) {
        run.step("teacher", SeedRun::train_teacher)?;
        run.step("generate-teacher", |r| r.generate(Writer::Teacher))?;
        run.step("filter-teacher", |r| r.filter(Writer::Teacher))?;
    }
    if arms.contains(&Arm::LoraAnnotated) {
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
        self.hooks.cancel.load(Ordering::SeqCst)
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
        };
        let sample = sample_per_class(self.ctx.dataset, &labels, &opts);
        if let Some(c) = sample.classes.iter().find(|c| c.taken == 0) {
            anyhow::bail!(
                "{}: class {} has no row of at least {} words",
                self.spec.dataset.display(),
                c.label,
                self.spec.min_words
            );
        }
        let seeds: Vec<Example> = sample
            .rows
            .into_iter()
            .map(|r| Example {
                text: r.text,
                label: r.label,
            })
            .collect();
        write_jsonl(&self.dir.join(SEEDS_FILE), &seeds)?;
        Ok(SeedsDetail {
            per_class: sample
                .classes
                .iter()
                .map(|c| (c.label.clone(), c.taken))
                .collect(),
        })
    }

    fn generate(&mut self, writer: Writer) -> anyhow::Result<GenerateDetail> {
        let task = self.task()?;
        let mut settings = self.spec.generate.clone();
        settings.sampling.seed = self.seed;
        let mut model = self.ctx.model.clone();
        if writer == Writer::Teacher {
            settings.seeds_in_prompt = false;
            settings.sampling.temperature = self.spec.teacher_temperature;
            let dir = self.dir.join(TEACHER_DIR);
            crate::train::peft::load_adapter(&mut model, &dir)
                .with_context(|| format!("loading the teacher in {}", dir.display()))?;
        }
        let planned = generate::plan(&task, self.ctx.templates, self.ctx.tokenizer, &settings)?;
        let total = planned.len();
        let started = Instant::now();
        let (mut finished, mut shown) = (0usize, 0usize);
        let mut lines = Vec::new();
        let candidates = generate::run(
            &model,
            self.ctx.tokenizer,
            &task,
            planned,
            settings.batch,
            self.hooks.cancel,
            &mut |e| {
                if let GenerateEvent::Candidate(_) = e {
                    finished += 1;
                    // A line every tenth of the way: visible progress without a flood.
                    if finished * 10 / total.max(1) > shown {
                        shown = finished * 10 / total.max(1);
                        lines.push(format!(
                            "generated {finished}/{total} ({:.0} s)",
                            started.elapsed().as_secs_f64()
                        ));
                    }
                }
            },
        );
        for l in lines {
            self.log(&l);
        }
        if self.cancelled() {
            return Err(Cancelled.into());
        }
        let mut items: Vec<GeneratedItem> = candidates
            .into_iter()
            .map(|c| GeneratedItem {
                index: c.index,
                label: c.label,
                text: c.text,
                raw: c.raw,
                malformed: c.malformed,
                new_tokens: c.new_tokens,
            })
            .collect();
        items.sort_by_key(|i| i.index);
        write_jsonl(&self.dir.join(writer.generated_file()), &items)?;
        let new_tokens = items.iter().map(|i| i.new_tokens).sum();
        Ok(GenerateDetail {
            items: items.len(),
            new_tokens,
            tokens_per_s: new_tokens as f64 / started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    fn filter(&mut self, writer: Writer) -> anyhow::Result<FilterDetail> {
        let task = self.task()?;
        let items: Vec<GeneratedItem> = read_jsonl(&self.dir.join(writer.generated_file()))?;
        let to_judge: Vec<ToJudge> = items
            .iter()
            .map(|i| ToJudge {
                text: &i.text,
                label: &i.label,
                malformed: i.malformed.as_deref(),
            })
            .collect();
        let judge = Judge {
            model: self.ctx.model,
            tokenizer: self.ctx.tokenizer,
            templates: self.ctx.templates,
        };
        let verdicts = judge_all(&task, &self.spec.filters, Some(judge), &to_judge)?;
        let mut detail = FilterDetail::default();
        let mut out = Vec::with_capacity(items.len());
        for (item, v) in items.into_iter().zip(verdicts) {
            let k = kept(&v);
            if k {
                detail.kept += 1;
                *detail.kept_per_class.entry(item.label.clone()).or_default() += 1;
            } else {
                detail.rejected += 1;
                let stage = rejecting_stage(&v).unwrap_or("?").to_string();
                *detail.rejected_by_stage.entry(stage).or_default() += 1;
            }
            if !item.text.trim().is_empty() {
                detail.usable += 1;
            }
            out.push(FilteredItem {
                item,
                verdicts: v,
                kept: k,
            });
        }
        write_jsonl(&self.dir.join(writer.filtered_file()), &out)?;
        Ok(detail)
    }

    /// The teacher: LoRA with the generation objective on this seed's seeds.
    fn train_teacher(&mut self) -> anyhow::Result<TrainDetail> {
        let mut cfg = self.spec.train.clone();
        cfg.objective = Objective::Generate;
        self.train_into(TEACHER_DIR, &[], cfg, Vec::new())
    }

    /// Labels a pool of the dataset's texts (seeds left out, labels hidden) with the in-context
    /// classifier of the label-consistency filter, then filters them with a confidence floor.
    fn annotate(&mut self) -> anyhow::Result<AnnotateDetail> {
        let task = self.task()?;
        let seeds: std::collections::HashSet<&str> =
            task.seeds.iter().map(|s| s.text.as_str()).collect();
        let mut pool: Vec<&Row> = self
            .ctx
            .dataset
            .iter()
            .filter(|r| !seeds.contains(r.text.as_str()))
            .collect();
        Rng::new(self.seed ^ 0xA11_0CA7E).shuffle(&mut pool);
        pool.truncate(self.spec.pool);
        let classifier = Classifier::new(
            self.ctx.model,
            self.ctx.tokenizer,
            &task,
            self.ctx.templates,
            consistency_classifier(&task, &self.spec.filters),
        )?;
        let texts: Vec<&str> = pool.iter().map(|r| r.text.as_str()).collect();
        let labelled = annotate(
            &classifier,
            &mut Filters::new(&task, self.spec.filters.clone()),
            self.spec.annotate_min_confidence,
            &texts,
        )?;
        let mut detail = AnnotateDetail {
            pool: labelled.len(),
            ..AnnotateDetail::default()
        };
        let (mut agree, mut kept_agree) = (0usize, 0usize);
        let items: Vec<AnnotatedItem> = labelled
            .into_iter()
            .zip(&pool)
            .map(|(a, r)| {
                let same = a.label == r.label;
                agree += usize::from(same);
                if a.kept {
                    detail.kept += 1;
                    kept_agree += usize::from(same);
                    *detail.kept_per_class.entry(a.label.clone()).or_default() += 1;
                }
                AnnotatedItem {
                    annotated: a,
                    dataset_label: r.label.clone(),
                }
            })
            .collect();
        detail.agreement = agree as f64 / detail.pool.max(1) as f64;
        detail.kept_agreement = kept_agree as f64 / detail.kept.max(1) as f64;
        write_jsonl(&self.dir.join(ANNOTATED_FILE), &items)?;
        Ok(detail)
    }

    /// The generated examples an arm trains on besides the seeds.
    fn extra(&self, arm: Arm) -> anyhow::Result<(Vec<Example>, String)> {
        let filtered = |writer: Writer, all: bool| -> anyhow::Result<Vec<Example>> {
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
                .map(|i| Example {
                    text: i.item.text,
                    label: i.item.label,
                })
                .collect())
        };
        Ok(match arm {
            Arm::LoraSynthetic => (
                filtered(Writer::Base, false)?,
                format!("{} (kept)", Writer::Base.filtered_file()),
            ),
            Arm::LoraUnfiltered => (
                filtered(Writer::Base, true)?,
                format!("{} (all with a text)", Writer::Base.filtered_file()),
            ),
            Arm::LoraTeacher => (
                filtered(Writer::Teacher, false)?,
                format!("{} (kept)", Writer::Teacher.filtered_file()),
            ),
            Arm::LoraAnnotated => {
                let items: Vec<AnnotatedItem> = read_jsonl(&self.dir.join(ANNOTATED_FILE))?;
                let kept = items
                    .into_iter()
                    .filter(|i| i.annotated.kept)
                    .map(|i| Example {
                        text: i.annotated.text,
                        label: i.annotated.label,
                    })
                    .collect();
                (kept, format!("{ANNOTATED_FILE} (kept)"))
            }
            _ => (Vec::new(), String::new()),
        })
    }

    fn train(&mut self, arm: Arm) -> anyhow::Result<TrainDetail> {
        let (extra, source) = self.extra(arm)?;
        let sources = if source.is_empty() {
            Vec::new()
        } else {
            vec![source]
        };
        let cfg = self.spec.train.clone();
        self.train_into(arm.name(), &extra, cfg, sources)
    }

    /// A training run in `<seed dir>/<name>` on the seeds + `extra`.
    fn train_into(
        &mut self,
        name: &str,
        extra: &[Example],
        mut cfg: TrainConfig,
        extra_sources: Vec<String>,
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
            extra_sources,
            config: &cfg,
            out: &out,
            model_path: self.ctx.model_path,
            device: self.ctx.device,
        };
        let control = TrainControl::default();
        let cancel = self.hooks.cancel;
        let mut lines = Vec::new();
        let result = train_run(
            self.ctx.model.clone(),
            self.ctx.tokenizer,
            &spec,
            &control,
            &mut |e| {
                if cancel.load(Ordering::SeqCst) {
                    control.stop();
                }
                if let TrainEvent::Eval {
                    epoch,
                    train_loss,
                    val_loss,
                    best,
                    ..
                } = e
                {
                    lines.push(format!(
                        "  epoch {:>2}  train loss {train_loss:.4}  val loss {}{}",
                        epoch + 1,
                        val_loss.map_or("-".into(), |v| format!("{v:.4}")),
                        if *best { "  (best)" } else { "" }
                    ));
                }
            },
        )?;
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
            let report = EvalReport::load(&d.join(Arm::ZeroShot.name())).ok()?;
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
        let mut model = self.ctx.model.clone();
        let method = match arm {
            Arm::ZeroShot => Method::ZeroShot,
            Arm::Icl | Arm::IclCalibrated => Method::Icl,
            _ => {
                crate::train::peft::load_adapter(&mut model, &run_dir)
                    .with_context(|| format!("loading the adapter in {}", run_dir.display()))?;
                Method::Lora
            }
        };
        let options = EvalOptions {
            method,
            calibrate: arm == Arm::IclCalibrated,
            interleave: true,
            batch: self.spec.eval_batch,
        };
        let report = evaluate(
            &model,
            self.ctx.tokenizer,
            &task,
            self.ctx.templates,
            self.ctx.test,
            &self.spec.test,
            &options,
            self.ctx.model_path,
            arm.trains().then_some(run_dir.as_path()),
            &mut |_, _| {},
        )?;
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

    #[test]
    fn generation_steps_only_when_an_arm_needs_them() {
        assert_eq!(
            step_names(&[Arm::Icl, Arm::LoraReal]),
            vec!["seeds", "eval-icl", "train-lora-real", "eval-lora-real"]
        );
        let all = step_names(&[Arm::ZeroShot, Arm::LoraUnfiltered]);
        assert_eq!(&all[..3], ["seeds", "generate", "filter"]);
    }
}
