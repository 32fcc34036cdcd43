//! `seedforge annotate`: the model labels texts the user already has (any file the importer
//! reads; a label column, if any, is only used to report how often the model agreed). Each text
//! gets a label and its distribution, the cheap filters and a confidence threshold judge it, and
//! with `--workspace` the items join the workspace's review as `annotated` ones.

use std::io::Write;
use std::path::PathBuf;
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
use crate::engine::generate_job::primed_by;
use crate::eval::report::Method;
use crate::pipeline::annotate::annotate;
use crate::pipeline::classify::{Classifier, ClassifierOptions, interleave_by_label};
use crate::pipeline::filters::Filters;
use crate::pipeline::prompt::Templates;

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
    // refused at once, not after a minute of work.
    let mut ws = match &workspace {
        Some(dir) => Some(
            Workspace::open(dir)
                .with_context(|| format!("opening the workspace {}", dir.display()))?,
        ),
        None => None,
    };
    let task = match &ws {
        Some(w) => {
            let mut t = w.task().clone();
            t.seeds = w.seeds().to_vec();
            t
        }
        None => args.task.load()?,
    };
    let mut opts = args.read.options();
    opts.unlabelled = true;
    let mut imported = import_file(&args.input, &opts)?;
    super::input_args::report_problems(&imported, &mut std::io::stderr())?;
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

    let server = args.filters.judge_server.settings()?;
    anyhow::ensure!(
        server.is_none() || args.method != Method::Lora,
        "--judge-url labels with the icl or zero-shot prompt on the server, not with an adapter"
    );
    let templates = Templates::for_task(&task)?;
    let demos = match args.method {
        Method::Icl => interleave_by_label(&task.seeds, &task.labels),
        _ => Vec::new(),
    };
    let options = ClassifierOptions {
        demos,
        calibrate: !args.filters.no_calibrate,
        ..ClassifierOptions::default()
    };
    // The labeller: a server (connected, its model checked, before anything is labelled), else
    // the model here.
    let remote = server
        .map(crate::llm::remote::Remote::connect)
        .transpose()?;
    let mut loaded = None;
    let classifier = match &remote {
        Some(r) => {
            eprintln!(
                "seedforge: labelling on {} (model {})",
                r.client().endpoint(),
                r.client().model()
            );
            Classifier::remote(r, &task, &templates, options)?
        }
        None => {
            let (mut l, _) = args.model.load()?;
            if let Some(dir) = &args.adapter {
                crate::train::peft::load_adapter(&mut l.model, dir)
                    .with_context(|| format!("loading the adapter in {}", dir.display()))?;
            }
            let l = &*loaded.insert(l);
            Classifier::new(&l.model, &l.tokenizer, &task, &templates, options)?
        }
    };
    let started = Instant::now();
    let texts: Vec<&str> = imported.rows.iter().map(|r| r.text.as_str()).collect();
    // Primed with the workspace's items, so texts it already holds are caught as duplicates.
    let mut cheap = match &ws {
        Some(w) => primed_by(w, &task, args.filters.settings()),
        None => Filters::new(&task, args.filters.settings()),
    };
    let items = annotate(&classifier, &mut cheap, args.min_confidence, &texts)?;
    let seconds = started.elapsed().as_secs_f64();
    let kept = items.iter().filter(|i| i.kept).count();
    eprintln!(
        "seedforge: labelled {} texts in {seconds:.1} s ({:.1}/s); {kept} kept, {} rejected",
        items.len(),
        items.len() as f64 / seconds.max(1e-9),
        items.len() - kept
    );
    let names = task.label_names();
    let gold: Vec<(&str, &str, bool)> = imported
        .rows
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
        for (row, it) in imported.rows.iter().zip(&items) {
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

    if let Some(ws) = ws.as_mut() {
        for (row, it) in imported.rows.iter().zip(&items) {
            let input = format!("{}:{}", args.input.display(), row.line);
            // One write per item, as the annotate job does: killed between two, the item would
            // reach Review with no verdict.
            ws.add_item_with_verdicts(it.to_item(input), it.verdicts.clone())?;
        }
        eprintln!(
            "seedforge: {} annotated items journalled in {} ({kept} ready to review)",
            items.len(),
            ws.dir().display()
        );
    }
    Ok(())
}
