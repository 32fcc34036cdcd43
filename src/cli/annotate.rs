//! `seedforge annotate`: the model labels texts the user already has (any file the importer
//! reads; a label column, if any, is only used to report how often the model agreed). Each text
//! gets a label and its distribution, the cheap filters and a confidence threshold judge it, and
//! with `--workspace` the items join the workspace's review as `annotated` ones.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::filter::FilterOptions;
use super::input_args::InputArgs;
use super::model_args::ModelArgs;
use super::task_arg::TaskArg;
use crate::data::import::import_file;
use crate::data::item::Source;
use crate::data::workspace::Workspace;
use crate::engine::judge::Judges;
use crate::engine::{AnnotateRequest, Event, JobControl, annotate_job, headless};
use crate::eval::report::Method;
use crate::pipeline::annotate::Annotated;
use crate::pipeline::filters::stages::JudgeKind;

#[derive(Debug, Args)]
pub struct AnnotateArgs {
    #[command(flatten)]
    pub task: TaskArg,
    /// The texts to label (TSV/CSV with a text column, JSONL with a text field, or a `.txt`
    /// file or plain prose: one text a line).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    #[command(flatten)]
    pub read: InputArgs,
    /// Label only the first N texts.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// icl (the seeds as demonstrations), zero-shot, or lora (needs --adapter).
    #[arg(long, default_value = "icl")]
    pub method: Method,
    /// A run folder with a classifier adapter (`seedforge train`).
    #[arg(long, value_name = "RUN")]
    pub adapter: Option<PathBuf>,
    /// Keep an item only when the model gives its label at least this probability.
    #[arg(long, default_value_t = 0.6)]
    pub min_confidence: f64,
    /// The cheap filters' thresholds (too short, duplicates); --no-calibrate turns off the
    /// classifier's contextual calibration.
    #[command(flatten)]
    pub filters: FilterOptions,
    /// Also write every item with its label, distribution and verdicts as JSONL (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(args: AnnotateArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        workspace.is_some() || args.out.is_some(),
        "say where the labelled items go: --workspace DIR (they join its review) or --out FILE"
    );
    anyhow::ensure!(
        args.method != Method::Lora || args.adapter.is_some(),
        "--method lora needs --adapter RUN"
    );
    // The workspace is opened (and locked) before the model loads: a second instance is
    // refused at once, not after a minute of work. Without one, the job labels into a
    // workspace of the task's own that lives as long as the command.
    let scratch;
    let ws = match &workspace {
        Some(dir) => Workspace::open(dir)
            .with_context(|| format!("opening the workspace {}", dir.display()))?,
        None => {
            let task = args.task.load()?;
            scratch = tempfile::tempdir().context("making a scratch workspace")?;
            Workspace::create(&scratch.path().join("workspace"), &task, &[])
                .context("making a scratch workspace")?
        }
    };
    let task = {
        let mut t = ws.task().clone();
        t.seeds = ws.seeds().to_vec();
        t
    };
    // Read here too for what only the command tells: how many texts, and the file's own labels
    // to agree with (its problems come from the job, as the workbench shows them).
    let mut read = args.read.options();
    read.unlabelled = true;
    let mut imported = import_file(&args.input, &read)?;
    if let Some(n) = args.limit {
        imported.rows.truncate(n);
    }
    anyhow::ensure!(
        !imported.rows.is_empty(),
        "{}: no text to label",
        args.input.display()
    );
    eprintln!(
        "read {} texts from {} ({})",
        imported.rows.len(),
        args.input.display(),
        imported.columns
    );
    anyhow::ensure!(
        args.method != Method::Icl || !task.seeds.is_empty(),
        "--method icl needs seeds; the task has none (add some, or use --method zero-shot)"
    );
    let mut filters = args.filters.settings_with_server()?;
    anyhow::ensure!(
        filters.remote_judge.is_none() || args.method != Method::Lora,
        "--judge-url labels with the icl or zero-shot prompt on the server, not with an adapter"
    );
    // The labeller is the label check's judge: --method picks its prompt, --judge auto or
    // seeds-lora choose it as generation's check does.
    match args.method {
        Method::ZeroShot => filters.judge = JudgeKind::ZeroShot,
        _ => match args.filters.judge_choice()? {
            Some(kind) => filters.judge = kind,
            None => filters.select_judge = true,
        },
    }
    let request = AnnotateRequest {
        input: args.input.clone(),
        read,
        adapter: args.adapter.clone().filter(|_| args.method == Method::Lora),
        limit: args.limit,
        min_confidence: args.min_confidence,
        filters,
    };
    let (loaded, selected) = args.model.load()?;
    let started = Instant::now();
    let ws = Mutex::new(ws);
    let tty = std::io::stderr().is_terminal();
    let mut added = Vec::new();
    let outcome = headless::run(
        |events| {
            let mut judge = None;
            let mut judges = Judges {
                cache: &mut judge,
                device: &selected.label,
            };
            annotate_job::run(
                0,
                &loaded,
                &ws,
                &request,
                &JobControl::default(),
                events,
                &mut judges,
            )
        },
        |e| match e {
            Event::ItemAdded { item, .. } => added.push(item),
            Event::JudgeChosen { summary, .. } => eprintln!("seedforge: {summary}"),
            Event::Log(line) => eprintln!("seedforge: {line}"),
            Event::Progress { done, total, .. } if tty => eprint!("\r  {done}/{total}"),
            _ => {}
        },
    )?;
    if tty {
        eprintln!();
    }
    let ws = ws.into_inner().unwrap_or_else(|e| e.into_inner());
    let items: Vec<Annotated> = added
        .iter()
        .filter_map(|id| ws.state().get(id.as_str()))
        .map(Annotated::of_item)
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let kept = outcome.kept;
    eprintln!(
        "seedforge: labelled {} texts in {seconds:.1} s ({:.1}/s); {kept} kept, {} rejected",
        outcome.items,
        outcome.items as f64 / seconds.max(1e-9),
        outcome.items - kept
    );
    // The job labels the file's rows in order, one item each.
    let rows = &imported.rows[..items.len().min(imported.rows.len())];
    let names = task.label_names();
    let gold: Vec<(&str, &str, bool)> = rows
        .iter()
        .zip(&items)
        .filter(|(r, _)| names.contains(&r.label.as_str()))
        .map(|(r, i)| (r.label.as_str(), i.label.as_str(), i.kept))
        .collect();
    if !gold.is_empty() {
        let right = |rows: &mut dyn Iterator<Item = &(&str, &str, bool)>| {
            let (mut n, mut ok) = (0, 0);
            for (g, p, _) in rows {
                n += 1;
                ok += usize::from(g == p);
            }
            (ok, n)
        };
        let (ok, n) = right(&mut gold.iter());
        let (kok, kn) = right(&mut gold.iter().filter(|g| g.2));
        println!(
            "agreement with the file's labels: {:.1}% of {n} texts; {:.1}% of the {kn} kept",
            100.0 * ok as f64 / n.max(1) as f64,
            100.0 * kok as f64 / kn.max(1) as f64
        );
    }

    if let Some(out) = &args.out {
        let mut w: Box<dyn Write> = if out.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(out)
                    .with_context(|| format!("creating {}", out.display()))?,
            ))
        };
        for (row, it) in rows.iter().zip(&items) {
            let mut v = serde_json::to_value(it)?;
            if let Some(m) = v.as_object_mut() {
                m.insert("source".into(), json!(Source::Annotated.as_str()));
                m.insert("line".into(), json!(row.line));
                if !row.label.is_empty() {
                    m.insert("file_label".into(), json!(row.label));
                }
            }
            writeln!(w, "{v}").with_context(|| format!("writing {}", out.display()))?;
        }
        w.flush()
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if workspace.is_some() {
        eprintln!(
            "seedforge: {} annotated items journalled in {} ({kept} ready to review)",
            items.len(),
            ws.dir().display()
        );
    }
    anyhow::ensure!(
        !outcome.cancelled,
        "stopped after {} of {} texts",
        outcome.items,
        imported.rows.len()
    );
    Ok(())
}
