//! `seedforge filter`: the filter stages over a file of generated items (what `generate`
//! writes), headless. Every item comes out with its verdicts and whether it was kept.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use super::model_args::ModelArgs;
use super::task_arg::TaskArg;
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
    /// Items to judge: JSONL with at least `text` and `label` (as `generate` writes).
    #[arg(long, value_name = "FILE")]
    pub items: PathBuf,
    /// Where to write every item with its `verdicts` and `kept`.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
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
        out.push(Input {
            line: n,
            malformed: field("malformed"),
            raw,
            text,
            label,
        });
    }
    Ok(out)
}

pub fn run(args: FilterArgs) -> anyhow::Result<()> {
    let task = args.task.load()?;
    let items = read_items(&args.items)?;
    for it in &items {
        anyhow::ensure!(
            task.label_index(&it.label).is_some(),
            "{}:{}: label `{}` is not one of the task's ({})",
            args.items.display(),
            it.line,
            it.label,
            task.label_names().join(", ")
        );
    }
    let settings = args.filters.settings_with_server()?;
    let started = Instant::now();
    let to_judge: Vec<ToJudge> = items
        .iter()
        .map(|it| ToJudge {
            text: &it.text,
            label: &it.label,
            malformed: it.malformed.as_deref(),
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
        std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?,
    );
    for (it, v) in items.iter().zip(&verdicts) {
        let mut obj = it.raw.clone();
        if let Some(map) = obj.as_object_mut() {
            map.insert("verdicts".into(), json!(v));
            map.insert("kept".into(), json!(kept(v)));
        }
        writeln!(out, "{obj}").with_context(|| format!("writing {}", args.out.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", args.out.display()))?;

    let judged: Vec<Judged> = items
        .iter()
        .zip(&verdicts)
        .map(|(it, v)| Judged {
            label: &it.label,
            text: &it.text,
            verdicts: v,
        })
        .collect();
    let seeds: Vec<&str> = task.seeds.iter().map(|s| s.text.as_str()).collect();
    let s = stats::compute(&judged, &seeds);
    if args.json {
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
    eprintln!(
        "seedforge: filtered {} items in {:.1} s → {}",
        items.len(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
