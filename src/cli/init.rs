//! `seedforge init`: a workspace from a labelled dataset (k seeds per class, drawn with a seed),
//! from a task file, or from the bundled demo task.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::data::import::{
    Format, ImportError, ImportOptions, Imported, LabelMap, OnBadRow, SampleOptions, import_file,
    sample_per_class,
};
use crate::data::task::{Example, LabelDef, TASK_FORMAT_VERSION, Task};
use crate::data::workspace::Workspace;

/// Problems listed one by one before the rest are only counted.
const SHOWN_PROBLEMS: usize = 10;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    seedforge --workspace sst2 init --from ../shared/datasets/sst2/train.tsv \\\n    \
    --label-map 0=negative,1=positive --per-class 4 --seed 0 --min-words 6\n  \
    seedforge --workspace trec init --from train_5500.label --per-class 4 --seed 0")]
pub struct Args {
    /// Labelled dataset to draw the seeds from. Without it (and without --task): the demo task.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// A task file (TOML with inline [[seeds]]) to start from instead of a dataset.
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub task: Option<PathBuf>,
    /// Format of --from: tsv, csv, jsonl or trec (default: guessed from the file).
    #[arg(long, value_parser = clap::value_parser!(Format))]
    pub format: Option<Format>,
    /// Column (header name or 1-based number) or JSONL field holding the text.
    #[arg(long, value_name = "C")]
    pub text_col: Option<String>,
    /// Column (header name or 1-based number) or JSONL field holding the label.
    #[arg(long, value_name = "C")]
    pub label_col: Option<String>,
    /// The first row of the TSV/CSV is a header (default: guessed).
    #[arg(long, conflicts_with = "no_header")]
    pub header: bool,
    /// The first row of the TSV/CSV is data.
    #[arg(long)]
    pub no_header: bool,
    /// Labels in the file to task labels, e.g. 0=negative,1=positive. Other labels are problems.
    #[arg(long, value_name = "MAP", value_parser = clap::value_parser!(LabelMap))]
    pub label_map: Option<LabelMap>,
    /// TREC: fine labels (LOC:city) instead of coarse ones (LOC).
    #[arg(long)]
    pub trec_fine: bool,
    /// Seeds drawn per class.
    #[arg(long, default_value_t = 4)]
    pub per_class: usize,
    /// Seed of the draw: the same file and seed give the same seeds in every release.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Draw only texts of at least this many words (the papers use 6 for SST-2).
    #[arg(long, default_value_t = 0)]
    pub min_words: usize,
    /// Bad rows (invalid UTF-8, ragged, empty text, unknown label): skip them with a warning
    /// (invalid UTF-8 is kept, read as Latin-1) or stop at the first.
    #[arg(long, default_value = "skip", value_parser = clap::value_parser!(OnBadRow))]
    pub on_bad_row: OnBadRow,
    /// Task name (default: the workspace folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// What is classified, as prompts say it: "<input noun>s whose <description> is X"
    /// (e.g. "sentiment", "answer type"). Default: "label".
    #[arg(long)]
    pub description: Option<String>,
    /// What one input is called in prompts (e.g. "movie review", "question").
    #[arg(long, default_value = "text")]
    pub input_noun: String,
    /// Field names of the classification prompt, `<input field>: text` then
    /// `<label field>: label` (e.g. Review / Sentiment).
    #[arg(long, default_value = "Text")]
    pub input_field: String,
    #[arg(long, default_value = "Label")]
    pub label_field: String,
}

pub fn run(args: Args, workspace: Option<PathBuf>, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(dir) = workspace else {
        bail!("init needs --workspace DIR: the folder to create");
    };
    if args.per_class == 0 {
        bail!("--per-class must be at least 1");
    }
    let (task, seeds) = match (&args.from, &args.task) {
        (Some(from), _) => from_dataset(&args, from, &dir, out)?,
        (None, Some(task_file)) => {
            let task = Task::load(task_file)
                .with_context(|| format!("cannot load task {}", task_file.display()))?;
            writeln!(out, "task {} from {}", task.name, task_file.display())?;
            (task, Vec::new())
        }
        (None, None) => {
            writeln!(out, "no --from given: starting from the bundled demo task")?;
            (Task::demo(), Vec::new())
        }
    };
    let ws = Workspace::create(&dir, &task, &seeds)
        .with_context(|| format!("cannot create workspace {}", dir.display()))?;
    writeln!(
        out,
        "created workspace {} ({} labels, {} seeds): task.toml, seeds.jsonl, journal.jsonl, runs/",
        dir.display(),
        ws.task().labels.len(),
        ws.seeds().len()
    )?;
    Ok(())
}

fn from_dataset(
    args: &Args,
    from: &Path,
    dir: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<(Task, Vec<Example>)> {
    let opts = ImportOptions {
        format: args.format,
        text_col: args.text_col.clone(),
        label_col: args.label_col.clone(),
        header: match (args.header, args.no_header) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        label_map: args.label_map.clone(),
        trec_fine: args.trec_fine,
        on_bad_row: args.on_bad_row,
    };
    let imported = match import_file(from, &opts) {
        Ok(i) => i,
        Err(e @ ImportError::Stopped(_)) => {
            return Err(anyhow::Error::new(e))
                .context("nothing was created; use --on-bad-row skip to skip bad rows instead");
        }
        Err(e) => return Err(e.into()),
    };
    writeln!(
        out,
        "read {} rows from {} ({}; {})",
        imported.rows.len(),
        from.display(),
        imported.format,
        imported.columns
    )?;
    report_problems(&imported, out)?;
    let labels = imported.labels(args.label_map.as_ref());
    if labels.len() < 2 {
        bail!(
            "{}: found {} label(s) ({}); a task needs at least two",
            from.display(),
            labels.len(),
            labels.join(", ")
        );
    }
    let sample_opts = SampleOptions {
        per_class: args.per_class,
        seed: args.seed,
        min_words: args.min_words,
    };
    let sample = sample_per_class(&imported.rows, &labels, &sample_opts);
    writeln!(
        out,
        "drew {} per class with seed {} (min {} words; {} rows too short, {} duplicates left out):",
        args.per_class, args.seed, args.min_words, sample.too_short, sample.duplicates
    )?;
    for c in &sample.classes {
        writeln!(
            out,
            "  {:<16} {} of {} eligible ({} rows)",
            c.label, c.taken, c.eligible, c.rows
        )?;
    }
    for c in sample.short_classes(args.per_class) {
        writeln!(
            out,
            "warning: class {} has only {} eligible rows, fewer than --per-class {}",
            c.label, c.eligible, args.per_class
        )?;
    }
    if sample.classes.iter().any(|c| c.taken == 0) {
        bail!("some class has no eligible row: lower --min-words or check the label map");
    }
    if args.label_map.is_none() && labels.iter().all(|l| l.parse::<f64>().is_ok()) {
        writeln!(
            out,
            "note: the labels are numbers; the model will be asked to answer with them. \
             --label-map 0=negative,1=positive (for example) gives them words"
        )?;
    }
    let name = args.name.clone().unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into())
    });
    let description = args
        .description
        .clone()
        .unwrap_or_else(|| "label".to_string());
    let task = Task {
        format_version: TASK_FORMAT_VERSION,
        name,
        description,
        input_noun: args.input_noun.clone(),
        input_field: args.input_field.clone(),
        label_field: args.label_field.clone(),
        labels: labels
            .iter()
            .map(|l| LabelDef {
                name: l.clone(),
                verbalizer: None,
            })
            .collect(),
        prompts: None,
        seeds: Vec::new(),
    };
    let seeds = sample
        .rows
        .into_iter()
        .map(|r| Example {
            text: r.text,
            label: r.label,
        })
        .collect();
    Ok((task, seeds))
}

/// Each problem up to a limit, then counts per kind.
fn report_problems(imported: &Imported, out: &mut dyn Write) -> std::io::Result<()> {
    for p in imported.problems.iter().take(SHOWN_PROBLEMS) {
        writeln!(out, "warning: {p}")?;
    }
    if imported.problems.len() > SHOWN_PROBLEMS {
        let mut kinds = std::collections::BTreeMap::new();
        for p in &imported.problems[SHOWN_PROBLEMS..] {
            *kinds.entry(p.kind).or_insert(0usize) += 1;
        }
        let summary: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{n} × {}", k.describe()))
            .collect();
        writeln!(
            out,
            "warning: {} more problems ({})",
            imported.problems.len() - SHOWN_PROBLEMS,
            summary.join(", ")
        )?;
    }
    Ok(())
}
