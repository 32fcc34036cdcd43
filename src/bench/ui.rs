//! `seedforge bench ui`: how long the workbench takes to draw a frame while a generation job
//! runs on a large workspace. The real `App` and view draw into an in-memory terminal at the
//! workbench's pace, fed the engine's events as the event loop feeds them, while the engine's
//! job writes to the workspace: whatever a frame waits on (a lock the job holds, work done per
//! frame over every item) shows in the frame times.
//!
//! The job runs on the real model: how often the job holds the workspace, and for how long,
//! depends on how fast items are written and checked, which a tiny random model would not show.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Serialize;

use super::predict::cpu_model;
use crate::cli::model_args::ModelArgs;
use crate::data::item::{Item, Source};
use crate::data::record::RecordBody;
use crate::data::task::{LabelDef, Task};
use crate::data::workspace::Workspace;
use crate::engine::{Engine, EngineConfig, Event, JobKind, ModelEvent, Sink};
use crate::pipeline::classify::Prediction;
use crate::pipeline::filters::stages::label_consistency;
use crate::pipeline::filters::{FilterSettings, Filters};
use crate::tui::action::Action;
use crate::tui::app::{App, Effect};
use crate::tui::event_loop::FRAME;
use crate::tui::read_model::ReadModel;
use crate::tui::theme::Theme;
use crate::tui::view;
use crate::util::rng::Rng;

#[derive(Debug, Args)]
pub struct UiBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Items in the workspace before the job starts (each with the verdicts of every stage).
    #[arg(long, default_value_t = 10_000)]
    pub items: usize,
    #[arg(long, default_value_t = 120)]
    pub width: u16,
    #[arg(long, default_value_t = 36)]
    pub height: u16,
    /// The screen shown while the job runs: 1 Seeds, 2 Generate, 3 Review, 4 Rejected, 5 Train,
    /// 6 Evaluate.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=6))]
    pub screen: u8,
    /// Stop the job (and the measurement) after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub max_seconds: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    cpu: String,
    model: PathBuf,
    device: String,
    width: u16,
    height: u16,
    screen: u8,
    workspace_items: usize,
    workspace_build_s: f64,
    /// The generation job's end as the engine reported it (or `stopped at the time limit`).
    job: String,
    job_s: f64,
    frames: usize,
    median_ms: f64,
    p95_ms: f64,
    worst_ms: f64,
    /// Frames longer than the workbench's frame interval (33 ms): the screen visibly stalled.
    over_frame_interval: usize,
}

pub fn run(args: UiBenchArgs) -> anyhow::Result<()> {
    let model = args.model.path()?;
    let tmp = tempfile::tempdir().context("cannot make a temporary folder")?;
    let started = Instant::now();
    let ws = large_workspace(&tmp.path().join("ws"), args.items)?;
    let workspace_build_s = started.elapsed().as_secs_f64();
    // As the workbench starts: the app draws from its copy, the engine owns the workspace.
    let mut app = App::new(ReadModel::of(&ws), Theme::dark());
    let ws = Arc::new(Mutex::new(ws));

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::start(
        EngineConfig {
            model: Some(model.clone()),
            device: args.model.device,
            weights: args.model.weights,
        },
        ws,
        Sink::new(tx),
    );
    let mut terminal = Terminal::new(TestBackend::new(args.width, args.height))?;
    // As a user starts it: the Generate screen, `g` (the job waits for the model to load),
    // then the screen to watch.
    for c in ['2', 'g', char::from(b'0' + args.screen)] {
        app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }

    let mut device = String::new();
    let mut frames: Vec<f64> = Vec::new();
    let mut job_started: Option<Instant> = None;
    let limit = Duration::from_secs(args.max_seconds);
    let mut cancelled_at_limit = false;
    let job = loop {
        let tick = Instant::now();
        let mut ended = None;
        while let Ok(event) = rx.try_recv() {
            match &event {
                Event::Model(ModelEvent::Ready { device: d, .. }) => device = d.clone(),
                Event::Model(ModelEvent::Failed(e)) => anyhow::bail!("the model did not load: {e}"),
                Event::JobStarted {
                    kind: JobKind::Generate,
                    ..
                } => job_started = Some(Instant::now()),
                Event::JobFinished {
                    kind: JobKind::Generate,
                    summary,
                    ..
                }
                | Event::JobCancelled {
                    kind: JobKind::Generate,
                    summary,
                    ..
                } => ended = Some(summary.clone()),
                Event::JobFailed {
                    kind: JobKind::Generate,
                    error,
                    ..
                } => anyhow::bail!("the generation job failed: {error}"),
                _ => {}
            }
            app.update(Action::Engine(Box::new(event)));
        }
        for effect in app.take_effects() {
            match effect {
                Effect::Send(command) => engine.send(command)?,
                Effect::Cancel => engine.cancel(),
                Effect::Pause(p) => engine.set_paused(p),
            }
        }
        let drawn = Instant::now();
        terminal.draw(|f| view::draw(f, &app))?;
        if job_started.is_some() {
            frames.push(drawn.elapsed().as_secs_f64() * 1e3);
        }
        if let Some(summary) = ended {
            break summary;
        }
        if !cancelled_at_limit && started.elapsed() > limit {
            engine.cancel();
            cancelled_at_limit = true;
        }
        std::thread::sleep(FRAME.saturating_sub(tick.elapsed()));
    };
    let job_s = job_started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    engine.shutdown();

    anyhow::ensure!(!frames.is_empty(), "no frame was drawn while the job ran");
    let mut sorted = frames.clone();
    sorted.sort_by(f64::total_cmp);
    let report = Report {
        cpu: cpu_model(),
        model,
        device,
        width: args.width,
        height: args.height,
        screen: args.screen,
        workspace_items: args.items,
        workspace_build_s,
        job: if cancelled_at_limit {
            format!("stopped at the time limit ({} s): {job}", args.max_seconds)
        } else {
            job
        },
        job_s,
        frames: sorted.len(),
        median_ms: super::train_steps::median(&sorted),
        p95_ms: sorted[(sorted.len() * 95).div_ceil(100).max(1) - 1],
        worst_ms: sorted[sorted.len() - 1],
        over_frame_interval: sorted
            .iter()
            .filter(|&&ms| ms > FRAME.as_secs_f64() * 1e3)
            .count(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "workbench frames at {}×{} (screen {}) while a generation job runs",
        r.width, r.height, r.screen
    );
    println!("cpu: {}", r.cpu);
    println!("model: {} on {}", r.model.display(), r.device);
    println!(
        "workspace: {} items (built in {:.1} s)",
        r.workspace_items, r.workspace_build_s
    );
    println!("job: {:.1} s, {}", r.job_s, r.job);
    println!(
        "frames: {}  median {:.2} ms  p95 {:.2} ms  worst {:.2} ms  over {} ms: {}",
        r.frames,
        r.median_ms,
        r.p95_ms,
        r.worst_ms,
        FRAME.as_millis(),
        r.over_frame_interval
    );
}

/// Words the workspace's made-up reviews are drawn from: ten to seventeen of them make texts
/// that pass the duplicate filters against each other.
const WORDS: [&str; 48] = [
    "film", "story", "cast", "scene", "ending", "music", "plot", "actor", "director", "script",
    "camera", "dialogue", "tone", "pace", "humour", "drama", "twist", "hero", "villain", "score",
    "gentle", "clumsy", "bright", "dull", "tender", "loud", "clever", "flat", "warm", "cold",
    "slow", "quick", "honest", "silly", "bold", "timid", "strange", "familiar", "never", "always",
    "almost", "rarely", "keeps", "loses", "finds", "misses", "earns", "wastes",
];

/// A workspace in `dir` holding `n` generated items, written through the workspace's own API,
/// each with the verdicts the filters give it and a passing label check, so all of them are
/// ready for review and every one of them counts in the duplicate filters' reference set.
fn large_workspace(dir: &std::path::Path, n: usize) -> anyhow::Result<Workspace> {
    let mut task = Task::demo();
    let seeds = std::mem::take(&mut task.seeds);
    let mut ws = Workspace::create(dir, &task, &seeds)?;
    let mut filters = Filters::new(&task, FilterSettings::default());
    let mut rng = Rng::new(7);
    // Chunks keep each journal write (one fsync) a reasonable size.
    for start in (0..n).step_by(1000) {
        let items: Vec<Item> = (start..n.min(start + 1000))
            .map(|i| {
                let label = &task.labels[i % task.labels.len()].name;
                let words = 10 + rng.below(8) as usize;
                let text: Vec<&str> = (0..words)
                    .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
                    .collect();
                Item::new(format!("{}.", text.join(" ")), label, Source::Generated)
            })
            .collect();
        let texts: Vec<(String, String)> = items
            .iter()
            .map(|it| (it.text.clone(), it.label.clone()))
            .collect();
        let ids = ws.add_items(items)?;
        let mut bodies = Vec::new();
        for (id, (text, label)) in ids.iter().zip(&texts) {
            let mut verdicts = filters.cheap(id.as_str(), text, None);
            verdicts.push(label_consistency(
                0.0,
                label,
                &confident(&task.labels, label),
            ));
            bodies.extend(verdicts.into_iter().map(|verdict| RecordBody::Verdict {
                item_id: id.clone(),
                verdict,
            }));
        }
        ws.append_all(bodies)?;
    }
    Ok(ws)
}

/// A classifier's answer that puts 0.9 on `label`.
fn confident(labels: &[LabelDef], label: &str) -> Prediction {
    let rest = 0.1 / (labels.len().max(2) - 1) as f64;
    let probs: Vec<(String, f64)> = labels
        .iter()
        .map(|l| (l.name.clone(), if l.name == label { 0.9 } else { rest }))
        .collect();
    Prediction {
        label: label.to_string(),
        log_likelihoods: probs.iter().map(|(_, p)| p.ln()).collect(),
        probs,
        judge: None,
    }
}
