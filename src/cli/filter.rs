//! `seedforge filter`: the filter stages over a file of generated items (what `generate`
//! writes), headless. Every item comes out with its verdicts and whether it was kept.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use super::model_args::ModelArgs;
use super::task_arg::TaskArg;
use crate::data::item::{ItemId, Source};
use crate::data::task::Task;
use crate::data::workspace::Workspace;
use crate::engine::judge::Judges;
use crate::engine::{Event, generate_job, headless};
use crate::eval::judge_selection::{SelectionContext, resolve};
use crate::pipeline::filters::FilterSettings;
use crate::pipeline::filters::judge::{
    Judge, ToJudge, judge_all, judge_more, kept, remote_classifier,
};
use crate::pipeline::filters::stages::JudgeKind;
use crate::pipeline::filters::stats::{self, Judged};
use crate::pipeline::prompt::Templates;
use crate::train::trainer::TrainConfig;

#[derive(Debug, Args)]
pub struct FilterArgs {
    #[command(flatten)]
    pub task: TaskArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Items to judge: JSONL with at least `text` and `label` (as `generate --out` writes).
    /// Without it and with --workspace, the workspace's generated items that await a decision
    /// are judged again, by the workbench's recheck job, and their new verdicts journalled.
    #[arg(long, value_name = "FILE", requires = "out")]
    pub items: Option<PathBuf>,
    /// Where to write every item of --items with its `verdicts` and `kept`.
    #[arg(long, value_name = "FILE", requires = "items")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub filters: FilterOptions,
    /// Print the statistics as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

/// The filters' thresholds, shared by `filter` and `experiment`.
#[derive(Debug, Clone, Args)]
pub struct FilterOptions {
    /// Generated texts shorter than this many words are malformed.
    #[arg(long, default_value_t = 3)]
    pub min_words: usize,
    /// Generated texts longer than this many words are malformed.
    #[arg(long, default_value_t = 80)]
    pub max_words: usize,
    /// Jaccard similarity of word bigrams at which two texts are near duplicates.
    #[arg(long, default_value_t = 0.7)]
    pub near_dup_threshold: f64,
    /// Minimum probability margin of the intended label over the runner-up.
    #[arg(long, default_value_t = 0.0)]
    pub min_margin: f64,
    /// Reject a generated item whose writer gave its tokens a mean log-probability below this
    /// (e.g. -3.3: garbled text). Needs the model here as the writer. Off by default.
    #[arg(long, value_name = "LOGPROB", allow_hyphen_values = true)]
    pub min_logprob: Option<f64>,
    /// Reject one above this (e.g. -1.6: near copies of the seeds). Off by default.
    #[arg(long, value_name = "LOGPROB", allow_hyphen_values = true)]
    pub max_logprob: Option<f64>,
    /// Skip the label-consistency stage (no model needed).
    #[arg(long)]
    pub no_label_consistency: bool,
    /// No contextual calibration in the label-consistency classifier.
    #[arg(long)]
    pub no_calibrate: bool,
    /// The label-consistency judge: icl (the seeds as demonstrations; the best on the
    /// validation rows of docs/results.md), zero-shot, seeds-lora (a LoRA trained on the
    /// seeds), or auto (the best of them in cross-validation on the seeds).
    #[arg(
        long,
        default_value = "icl",
        value_name = "auto|icl|zero-shot|seeds-lora"
    )]
    pub judge: String,
    #[command(flatten)]
    pub judge_server: super::judge_args::JudgeServerArgs,
}

impl FilterOptions {
    /// [`FilterOptions::settings`] with the judging server of `--judge-url`, when one is named
    /// (its judge reads the prompt of --judge: icl or zero-shot).
    pub fn settings_with_server(&self) -> anyhow::Result<FilterSettings> {
        let mut s = self.settings();
        s.validate()
            .map_err(|e| anyhow::anyhow!("--min-logprob/--max-logprob: {e}"))?;
        s.remote_judge = self.judge_server.settings()?.map(Box::new);
        if s.remote_judge.is_some() {
            let choice = self.judge_choice()?;
            anyhow::ensure!(
                matches!(choice, Some(JudgeKind::Icl | JudgeKind::ZeroShot)),
                "--judge-url judges with the icl or zero-shot prompt (--judge icl|zero-shot), \
                 not {}",
                self.judge
            );
        }
        Ok(s)
    }

    pub fn settings(&self) -> FilterSettings {
        FilterSettings {
            min_words: self.min_words,
            max_words: self.max_words,
            near_dup_threshold: self.near_dup_threshold,
            min_margin: self.min_margin,
            min_logprob: self.min_logprob,
            max_logprob: self.max_logprob,
            label_consistency: !self.no_label_consistency,
            calibrate: !self.no_calibrate,
            judge: self.judge_choice().ok().flatten().unwrap_or_default(),
            ..FilterSettings::default()
        }
    }

    /// The judge asked for; `None` for auto (chosen by cross-validation on the seeds).
    pub fn judge_choice(&self) -> anyhow::Result<Option<JudgeKind>> {
        if self.judge == "auto" {
            return Ok(None);
        }
        self.judge
            .parse()
            .map(Some)
            .map_err(|e: String| anyhow::anyhow!("--judge: {e}, or auto"))
    }
}

struct Input {
    line: usize,
    raw: Value,
    text: String,
    label: String,
    malformed: Option<String>,
    /// `mean_logprob`, at the top or in `meta` (as `generate --out` and a workspace export
    /// write it).
    mean_logprob: Option<f64>,
}

fn read_items(path: &PathBuf) -> anyhow::Result<Vec<Input>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = std::str::from_utf8(line)
            .with_context(|| format!("{}:{n}: invalid UTF-8", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let raw: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{n}: not a JSON object", path.display()))?;
        let field = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        let text =
            field("text").with_context(|| format!("{}:{n}: no \"text\" string", path.display()))?;
        let label = field("label")
            .with_context(|| format!("{}:{n}: no \"label\" string", path.display()))?;
        let mean_logprob = raw
            .get("mean_logprob")
            .or_else(|| raw.get("meta").and_then(|m| m.get("mean_logprob")))
            .and_then(Value::as_f64);
        out.push(Input {
            line: n,
            mean_logprob,
            malformed: field("malformed"),
            raw,
            text,
            label,
        });
    }
    Ok(out)
}

pub fn run(args: FilterArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    let (items_path, out_path) = match (&args.items, &args.out, workspace) {
        (Some(i), Some(o), _) => (i.clone(), o.clone()),
        (None, _, Some(dir)) => return in_workspace(&args, &dir),
        _ => anyhow::bail!(
            "say what to judge: --items FILE --out FILE, or --workspace DIR (its generated \
             items that await a decision)"
        ),
    };
    let task = args.task.load()?;
    let items = read_items(&items_path)?;
    for it in &items {
        anyhow::ensure!(
            task.label_index(&it.label).is_some(),
            "{}:{}: label `{}` is not one of the task's ({})",
            items_path.display(),
            it.line,
            it.label,
            task.label_names().join(", ")
        );
    }
    let settings = args.filters.settings_with_server()?;
    if settings.likelihood_band()
        && let Some(it) = items.iter().find(|it| it.mean_logprob.is_none())
    {
        anyhow::bail!(
            "{}:{}: no \"mean_logprob\" (the writer's log-probability per token), which \
             --min-logprob/--max-logprob judge; items written by `seedforge generate` with \
             the model here carry it",
            items_path.display(),
            it.line
        );
    }
    let started = Instant::now();
    let to_judge: Vec<ToJudge> = items
        .iter()
        .map(|it| ToJudge {
            text: &it.text,
            label: &it.label,
            malformed: it.malformed.as_deref(),
            mean_logprob: it.mean_logprob,
        })
        .collect();
    let choice = args.filters.judge_choice()?;
    let verdicts = if let Some(server) = settings
        .remote_judge
        .clone()
        .filter(|_| settings.label_consistency)
    {
        // A server judges: connected (its model checked) before anything is judged.
        let remote = crate::llm::remote::Remote::connect(*server)?;
        let templates = Templates::for_task(&task)?;
        let classifier = remote_classifier(&remote, &task, &templates, &settings)?;
        eprintln!(
            "seedforge: judging on {} (model {})",
            remote.client().endpoint(),
            remote.client().model()
        );
        let mut filters = crate::pipeline::filters::Filters::new(&task, settings.clone());
        judge_more(&mut filters, Some(&classifier), &to_judge, 0)?
    } else if settings.label_consistency {
        let (loaded, selected) = args.model.load()?;
        let templates = Templates::for_task(&task)?;
        let model_path = loaded.info.path.display().to_string();
        let train = TrainConfig::default();
        let ctx = SelectionContext {
            model: &loaded.model,
            tokenizer: &loaded.tokenizer,
            templates: &templates,
            task: &task,
            calibrate: settings.calibrate,
            train: &train,
            model_path: &model_path,
            device: &selected.label,
        };
        let (kind, _, judge_model) = resolve(&ctx, choice, &mut |l| eprintln!("seedforge: {l}"))?;
        let settings = FilterSettings {
            judge: kind,
            ..settings.clone()
        };
        let judge = Judge {
            model: &judge_model,
            tokenizer: &loaded.tokenizer,
            templates: &templates,
        };
        judge_all(&task, &settings, Some(judge), &to_judge)?
    } else {
        judge_all(&task, &settings, None, &to_judge)?
    };
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&out_path)
            .with_context(|| format!("creating {}", out_path.display()))?,
    );
    for (it, v) in items.iter().zip(&verdicts) {
        let mut obj = it.raw.clone();
        if let Some(map) = obj.as_object_mut() {
            map.insert("verdicts".into(), json!(v));
            map.insert("kept".into(), json!(kept(v)));
        }
        writeln!(out, "{obj}").with_context(|| format!("writing {}", out_path.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", out_path.display()))?;

    let judged: Vec<Judged> = items
        .iter()
        .zip(&verdicts)
        .map(|(it, v)| Judged {
            label: &it.label,
            text: &it.text,
            verdicts: v,
        })
        .collect();
    print_stats(&task, &judged, args.json)?;
    eprintln!(
        "seedforge: filtered {} items in {:.1} s → {}",
        items.len(),
        started.elapsed().as_secs_f64(),
        out_path.display()
    );
    Ok(())
}

/// `--workspace DIR filter`: the workbench's recheck job on every generated item that awaits a
/// decision, with these filter settings; the verdicts go into the journal (Review and Rejected
/// show them), the statistics are printed as for a file.
fn in_workspace(args: &FilterArgs, dir: &Path) -> anyhow::Result<()> {
    // Opened (and locked) before the model loads: a second instance is refused at once.
    let ws =
        Workspace::open(dir).with_context(|| format!("opening the workspace {}", dir.display()))?;
    let ids: Vec<ItemId> = ws
        .state()
        .items()
        .iter()
        .filter(|it| it.source() == Source::Generated && it.decision().is_none())
        .map(|it| it.id().clone())
        .collect();
    anyhow::ensure!(
        !ids.is_empty(),
        "{}: no generated item awaits a decision (generate some first: seedforge --workspace \
         {} generate)",
        dir.display(),
        dir.display()
    );
    let mut filters = args.filters.settings_with_server()?;
    match args.filters.judge_choice()? {
        Some(kind) => filters.judge = kind,
        None => filters.select_judge = true,
    }
    let (loaded, selected) = args.model.load()?;
    let started = Instant::now();
    let ws = Mutex::new(ws);
    let tty = std::io::stderr().is_terminal();
    let mut done = 0usize;
    let judged = headless::run(
        |events| {
            let mut judge = None;
            generate_job::recheck(
                0,
                &loaded,
                &ws,
                &ids,
                &filters,
                events,
                &mut Judges {
                    cache: &mut judge,
                    device: &selected.label,
                },
            )
        },
        |e| match e {
            Event::LabelChecked { items, .. } if tty => {
                done += items.len();
                eprint!("\r  {done}/{}", ids.len());
            }
            Event::JudgeChosen { summary, .. } => eprintln!("seedforge: {summary}"),
            Event::Log(line) => eprintln!("seedforge: {line}"),
            _ => {}
        },
    )?;
    if tty {
        eprintln!();
    }
    let ws = ws.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut task = ws.task().clone();
    task.seeds = ws.seeds().to_vec();
    let states: Vec<_> = ids
        .iter()
        .filter_map(|id| ws.state().get(id.as_str()))
        .collect();
    let rows: Vec<Judged> = states
        .iter()
        .map(|it| Judged {
            label: it.label(),
            text: it.text(),
            verdicts: it.verdicts(),
        })
        .collect();
    print_stats(&task, &rows, args.json)?;
    eprintln!(
        "seedforge: judged {judged} items of {} again in {:.1} s; their verdicts are in its \
         journal",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The kept and rejected counts per class and stage, and the diversity of the kept items
/// beside the seeds'; as JSON on standard output with `json`.
fn print_stats(task: &Task, judged: &[Judged], json: bool) -> anyhow::Result<()> {
    let seeds: Vec<&str> = task.seeds.iter().map(|s| s.text.as_str()).collect();
    let s = stats::compute(judged, &seeds);
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "kept {} of {} ({} rejected)",
            s.kept,
            s.kept + s.rejected,
            s.rejected
        );
        for (label, c) in &s.per_class {
            let reasons: Vec<String> = c.by_stage.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "  {label:<16} kept {:>4}  rejected {:>4}  {}",
                c.kept,
                c.rejected,
                reasons.join(", ")
            );
        }
        println!(
            "diversity: kept distinct-2 {:.3}, mean pairwise similarity {:.3}; seeds {:.3}, {:.3}",
            s.kept_diversity.distinct_2,
            s.kept_diversity.mean_pairwise_similarity,
            s.seed_diversity.distinct_2,
            s.seed_diversity.mean_pairwise_similarity
        );
    }
    Ok(())
}
