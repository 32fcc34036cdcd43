//! `seedforge generate`: the model writes new examples of each class, headless.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::model_args::ModelArgs;
use super::task_arg::TaskArg;
use super::writer_args::WriterArgs;
use crate::llm::remote::Remote;
use crate::pipeline::generate::{self, GenerateEvent, GenerateSettings, GuideAgainst};
use crate::pipeline::prompt::Templates;
use crate::pipeline::writer::{self, Writer};
use crate::train::trainer::Objective;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub task: TaskArg,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub generation: GenerationOptions,
    /// A run folder with a LoRA adapter to generate with: a teacher from `seedforge teacher`
    /// (its prompt then shows no seeds, and the temperature defaults to 0.8), or any adapter.
    #[arg(long, value_name = "RUN")]
    pub adapter: Option<PathBuf>,
    /// Seed of the sampling (each request draws from its own stream under it).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the exact prompt of each class and exit.
    #[arg(long)]
    pub print_prompts: bool,
    #[command(flatten)]
    pub writer: WriterArgs,
    /// Where to write the items, one JSON object a line. `-` for standard output. Without it
    /// and with --workspace, the workbench's generation job writes into the workspace (the
    /// filters and the label check judge each item as it comes; --max-attempts-factor's quota
    /// rounds apply); review them in the workbench.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The filters and the judge when writing into a workspace.
    #[command(flatten)]
    pub filters: super::filter::FilterOptions,
    /// Go on with an --out file a stopped or crashed run left: the requests it already holds
    /// are not asked again (each request's prompt and seed depend only on its number), the
    /// rest are appended.
    #[arg(long, requires = "out")]
    pub resume: bool,
}

pub use crate::pipeline::generate::TEACHER_TEMPERATURE;

/// What and how to sample, shared by `generate` and `experiment`.
#[derive(Debug, Clone, Args)]
pub struct GenerationOptions {
    /// New examples per class.
    #[arg(long, default_value_t = 10)]
    pub per_class: usize,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Default 1.0 (the paper's generation), 0.8 with a teacher adapter (the teacher paper's).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// 0 disables top-k.
    #[arg(long, default_value_t = 50)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Classifier-free guidance: each request also reads the same prompt written for another
    /// class, and the next token is drawn from `other + γ·(own − other)` of the two
    /// log-probability vectors, so what sets this class apart is amplified. 1 is off; twice the
    /// decoding work.
    /// Default 2 with the local model, 1 (off) with a server writer, which cannot be guided.
    #[arg(long)]
    pub guidance: Option<f32>,
    /// Guidance's negative prompt: another class's whole prompt (other-class), or another
    /// class's heading over this class's own seeds (other-heading: only the class word differs).
    #[arg(long, default_value = "other-class", value_parser = guide_against)]
    pub guide_against: GuideAgainst,
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Text that ends a generation (repeatable). Default: a newline.
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Keep the seeds in the same order in every prompt.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Send the rendered template as a user turn of the model's chat template (the bundled
    /// template is a plain completion prompt).
    #[arg(long)]
    pub chat: bool,
    /// Where items are judged as they come (experiment, workbench): generate until each class
    /// has --per-class kept items, up to this many times --per-class attempts (1: exactly
    /// --per-class attempts). `generate --out` judges nothing and makes --per-class attempts.
    #[arg(long, default_value_t = GenerateSettings::default().max_attempts_factor)]
    pub max_attempts_factor: usize,
    /// With quota rounds, split each class's quota over this many bins of the seeds' word
    /// counts (all classes pooled, equal shares): a kept item whose class already has its share
    /// of that length is marked `quota`, so no class keeps longer or shorter items than another
    /// and the classifier cannot learn length as a label (3: thirds, the default, chosen on
    /// validation rows of SST-2 and TREC in docs/results.md). 1: no strata.
    #[arg(long, default_value_t = GenerateSettings::default().length_strata)]
    pub length_strata: u8,
}

impl GenerationOptions {
    /// The settings; a `teacher` writes from the bare prompt, without seeds, at 0.8 by default;
    /// a server (`remote`) writes unguided unless a guidance was typed (which it then refuses).
    pub fn settings(
        &self,
        seed: u64,
        teacher: bool,
        remote: Option<crate::llm::remote::RemoteSettings>,
    ) -> GenerateSettings {
        let mut s = GenerateSettings {
            per_class: self.per_class,
            batch: self.batch.max(1),
            shuffle_seeds: !self.no_shuffle,
            seeds_in_prompt: !teacher,
            chat: self.chat,
            max_attempts_factor: self.max_attempts_factor.max(1),
            length_strata: self.length_strata.max(1),
            ..GenerateSettings::default()
        };
        s.sampling.seed = seed;
        s.sampling.temperature =
            self.temperature
                .unwrap_or(if teacher { TEACHER_TEMPERATURE } else { 1.0 });
        s.sampling.top_k = self.top_k;
        s.sampling.top_p = self.top_p;
        s.sampling.repetition_penalty = self.repetition_penalty;
        s.guide_against = self.guide_against;
        s.sampling.max_new_tokens = self.max_tokens;
        if !self.stop.is_empty() {
            s.sampling.stop = self.stop.iter().map(|t| unescape(t)).collect();
        }
        s.set_remote(remote.map(Box::new));
        if let Some(g) = self.guidance {
            s.sampling.guidance_scale = g;
        }
        s
    }
}

fn guide_against(s: &str) -> Result<GuideAgainst, String> {
    s.parse()
}

/// `\n` and `\t` typed on a command line mean the characters.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

pub fn run(args: GenerateArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    if let (Some(dir), None, false) = (&workspace, &args.out, args.print_prompts) {
        return into_workspace(&args, dir);
    }
    let task = args.task.load()?;
    let (teacher, settings) = settings_of(&args)?;
    if settings.remote.is_some() && args.adapter.is_some() {
        anyhow::bail!(
            "--adapter is for the local writer; a server (--writer) writes with its own model"
        );
    }
    settings.validate().map_err(anyhow::Error::msg)?;
    let templates = Templates::for_task(&task)?;
    if args.print_prompts {
        let tokenizer = crate::llm::load::tokenizer(&args.model.path()?)?;
        let shown = GenerateSettings {
            // A server is sent the template itself (see pipeline::writer).
            chat: settings.chat && settings.remote.is_none(),
            ..settings.clone()
        };
        for label in &task.labels {
            let p = generate::prompt_for(&task, &templates, &tokenizer, label, &shown, 0)?;
            println!(
                "=== prompt for '{}' (template: {})\n{p}",
                label.name, templates.generate.source
            );
        }
        return Ok(());
    }
    let out_path = args
        .out
        .clone()
        .context("--out FILE is required (or --print-prompts)")?;
    let stdout = out_path.as_os_str() == "-";
    if args.resume && stdout {
        anyhow::bail!("--resume needs an --out file, not standard output");
    }
    // The writer: a server (its model checked before anything is written), else the model.
    let remote = settings
        .remote
        .clone()
        .map(|r| Remote::connect(*r))
        .transpose()?;
    let loaded = match &remote {
        Some(r) => {
            eprintln!(
                "seedforge: writing with {} on {} ({} requests in flight)",
                r.client().model(),
                r.client().endpoint(),
                r.client().settings().concurrency
            );
            None
        }
        None => {
            let (mut loaded, _) = args.model.load()?;
            if let Some(dir) = &args.adapter {
                let info = crate::train::peft::load_adapter(&mut loaded.model, dir)
                    .with_context(|| format!("loading the adapter in {}", dir.display()))?;
                eprintln!(
                    "seedforge: {} adapter {} (r={}), temperature {}",
                    if teacher { "teacher" } else { "LoRA" },
                    dir.display(),
                    info.rank,
                    settings.sampling.temperature
                );
            }
            Some(loaded)
        }
    };
    let mut alone = None;
    let tokenizer =
        super::writer_args::planning_tokenizer(loaded.as_ref(), &args.model, &mut alone)?;
    let writer = match (&remote, &loaded) {
        (Some(r), _) => Writer::Remote(r),
        (None, Some(l)) => Writer::Local {
            model: &l.model,
            batch: settings.batch,
        },
        (None, None) => anyhow::bail!("no writer"),
    };
    let provenance = writer.provenance(&settings);
    let mut planned = generate::plan(
        &task,
        &templates,
        tokenizer,
        &writer.plan_settings(&settings),
    )?;
    let done = if args.resume && out_path.exists() {
        written_requests(&out_path)?
    } else {
        BTreeSet::new()
    };
    if !done.is_empty() {
        let before = planned.len();
        planned.retain(|p| !done.contains(&p.index));
        eprintln!(
            "seedforge: resuming: {} of {before} requests already in {}",
            before - planned.len(),
            out_path.display()
        );
    }
    let total = planned.len();
    let mut out: Box<dyn Write> = if stdout {
        Box::new(std::io::stdout())
    } else {
        let file = if args.resume {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out_path)
        } else {
            std::fs::File::create(&out_path)
        };
        Box::new(std::io::BufWriter::new(
            file.with_context(|| format!("opening {}", out_path.display()))?,
        ))
    };
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| items_bar(total));
    let started = std::time::Instant::now();
    let mut write_err: Option<std::io::Error> = None;
    let mut last_line = std::time::Instant::now();
    let never = AtomicBool::new(false);
    let mut written = 0usize;
    let result = writer::write(
        &writer,
        tokenizer,
        &task,
        &settings,
        planned,
        &never,
        &mut |e| match e {
            GenerateEvent::Candidate(c) => {
                let mut line = serde_json::json!({
                    "text": c.text, "label": c.label, "source": "generated",
                    "malformed": c.malformed, "raw": c.raw, "prompt": c.prompt,
                    "finish": c.finish, "prompt_tokens": c.prompt_tokens,
                    "new_tokens": c.new_tokens, "seconds": c.seconds,
                    "extraction": c.extraction,
                    "sampling": settings.sampling,
                    "request": c.index,
                    "attempts": c.attempts,
                });
                match &provenance {
                    Some(p) => line["writer"] = p.clone(),
                    // A server is not asked for log-probabilities.
                    None => line["mean_logprob"] = serde_json::json!(c.mean_logprob),
                }
                if !c.retried_for.is_empty() {
                    line["retried_for"] = serde_json::json!(c.retried_for);
                }
                // A line at a time reaches the file: a crash loses only the requests in flight.
                if write_err.is_none()
                    && let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush())
                {
                    write_err = Some(e);
                }
                written += 1;
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            GenerateEvent::Progress(p) => {
                let msg = format!(
                    "{:.0} tok/s, ETA {}",
                    p.tokens_per_second,
                    p.eta_seconds
                        .map(|s| format!("{s:.0}s"))
                        .unwrap_or("–".into())
                );
                match &bar {
                    Some(b) => b.set_message(msg),
                    None if last_line.elapsed().as_secs() >= 5 => {
                        eprintln!("{}/{} items, {msg}", p.done, p.total);
                        last_line = std::time::Instant::now();
                    }
                    None => {}
                }
            }
            _ => {}
        },
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(e) = write_err {
        return Err(e).with_context(|| format!("writing {}", out_path.display()));
    }
    out.flush()
        .with_context(|| format!("writing {}", out_path.display()))?;
    let candidates = result.map_err(|e| {
        anyhow::anyhow!(
            "{e}\n({written} items were written to {} before it stopped; the same command with \
             --resume goes on from there)",
            out_path.display()
        )
    })?;
    let malformed = candidates.iter().filter(|c| c.malformed.is_some()).count();
    let tokens: usize = candidates.iter().map(|c| c.new_tokens).sum();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "seedforge: {} items ({malformed} malformed) in {secs:.1} s, {tokens} tokens, {:.1} tok/s, written to {}",
        candidates.len(),
        tokens as f64 / secs,
        out_path.display()
    );
    Ok(())
}

/// The bar of items written, with a message (the rate) beside it.
fn items_bar(total: usize) -> ProgressBar {
    let b = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} items  {msg}") {
        b.set_style(style);
    }
    b
}

/// Whether the adapter is a teacher, and the generation settings the flags make.
fn settings_of(args: &GenerateArgs) -> anyhow::Result<(bool, GenerateSettings)> {
    let teacher = match &args.adapter {
        Some(dir) => crate::train::run::objective_of(dir)? == Objective::Generate,
        None => false,
    };
    let settings = args
        .generation
        .settings(args.seed, teacher, args.writer.settings()?);
    Ok((teacher, settings))
}

/// `--workspace DIR generate`: the workbench's generation job on the workspace, its events
/// shown as a progress bar and log lines.
fn into_workspace(args: &GenerateArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    use crate::engine::judge::Judges;
    use crate::engine::{Event, JobControl, generate_job, headless};
    // Opened (and locked) before the model loads: a second instance is refused at once.
    let ws = crate::data::workspace::Workspace::open(dir)
        .with_context(|| format!("opening the workspace {}", dir.display()))?;
    anyhow::ensure!(
        !args.resume,
        "--resume is for an --out file; a workspace goes on by itself (a server writer's \
         requests already journaled are not asked again)"
    );
    let (_, settings) = settings_of(args)?;
    let filters = args.filters.settings_with_server()?;
    let (loaded, selected) = args.model.load()?;
    let ws = std::sync::Mutex::new(ws);
    let request = generate_job::Request {
        settings: &settings,
        filters: &filters,
        adapter: args.adapter.as_deref(),
    };
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut cache = None;
    let outcome = headless::run(
        |events| {
            generate_job::run(
                0,
                &loaded,
                &ws,
                &request,
                &JobControl::default(),
                events,
                &mut Judges {
                    cache: &mut cache,
                    device: &selected.label,
                },
            )
        },
        |e| match e {
            Event::Progress {
                done,
                total,
                tokens_per_second,
                ..
            } if tty => {
                let b = bar.get_or_insert_with(|| items_bar(total));
                b.set_length(total as u64);
                b.set_position(done as u64);
                b.set_message(format!("{tokens_per_second:.0} tok/s"));
            }
            Event::Log(line) => eprintln!("seedforge: {line}"),
            Event::JudgeChosen { summary, .. } => eprintln!("seedforge: {summary}"),
            _ => {}
        },
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let outcome = outcome?;
    eprintln!(
        "seedforge: {} into {} (review them in the workbench: seedforge --workspace {})",
        outcome.summary(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// The request numbers an --out file already holds. A last line a crash cut short is removed
/// (its request is asked again).
fn written_requests(path: &std::path::Path) -> anyhow::Result<BTreeSet<u64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} to resume", path.display()))?;
    let complete = match text.rfind('\n') {
        Some(i) => i + 1,
        None => 0,
    };
    if complete < text.len() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(complete as u64).map(|_| f))
            .with_context(|| format!("cutting the unfinished last line of {}", path.display()))?;
        drop(file);
    }
    let mut done = BTreeSet::new();
    for (n, line) in text[..complete].lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| {
            format!("{} line {}: not JSON; cannot resume", path.display(), n + 1)
        })?;
        let index = v
            .get("request")
            .and_then(serde_json::Value::as_u64)
            .with_context(|| {
                format!(
                    "{} line {} has no request number (not written by `generate`); cannot resume",
                    path.display(),
                    n + 1
                )
            })?;
        if !done.insert(index) {
            anyhow::bail!("{} holds request {index} twice", path.display());
        }
    }
    Ok(done)
}
