//! `seedforge init`: a workspace from a labelled dataset (k seeds per class, drawn with a seed),
//! from a task file, or from the bundled demo task.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::input_args::InputArgs;
use super::task_arg::TaskShape;
use crate::data::import::{SampleOptions, SeedRows, sample_per_class};
use crate::data::task::{Example, Task};
use crate::data::workspace::Workspace;

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
    #[command(flatten)]
    pub input: InputArgs,
    /// Seeds drawn per class.
    #[arg(long, default_value_t = 4)]
    pub per_class: usize,
    /// Seed of the draw: the same file and seed give the same seeds in every release.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Draw only texts of at least this many words (the papers use 6 for SST-2).
    #[arg(long, default_value_t = 0)]
    pub min_words: usize,
    /// `auto` leaves out rows that are fragments of longer rows when the file is made of
    /// phrases (SST-2's training file), `whole` always, `any` never.
    #[arg(long, default_value = "auto", value_parser = SeedRows::parse)]
    pub seed_rows: SeedRows,
    /// Task name (default: the workspace folder's name).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub shape: TaskShape,
}

pub fn run(args: Args, workspace: Option<PathBuf>, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(dir) = workspace else {
        bail!("init needs --workspace DIR: the folder to create");
    };
    if args.per_class == 0 {
        bail!("--per-class must be at least 1");
    }
    let (mut task, seeds) = match (&args.from, &args.task) {
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
    // Attributes given on the command line join (or replace, by name) the task's own.
    for a in &args.shape.attributes {
        task.attributes.retain(|t| t.name != a.name);
        task.attributes.push(a.clone());
    }
    let ws = Workspace::create(&dir, &task, &seeds)
        .with_context(|| format!("cannot create workspace {}", dir.display()))?;
    for a in &ws.task().attributes {
        writeln!(
            out,
            "attribute {}: each request draws one of {}",
            a.name,
            a.values.join(" | ")
        )?;
    }
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
    let imported = args.input.read(from, out).context("nothing was created")?;
    let labels = imported.labels(args.input.label_map.as_ref());
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
        rows: args.seed_rows,
    };
    let sample = sample_per_class(&imported.rows, &labels, &sample_opts);
    writeln!(out, "{}", sample.fragment_rule)?;
    writeln!(
        out,
        "drew {} per class with seed {} (min {} words; {} rows too short, {} duplicates, {} fragments left out):",
        args.per_class,
        args.seed,
        args.min_words,
        sample.too_short,
        sample.duplicates,
        sample.fragments
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
    if args.input.label_map.is_none() && labels.iter().all(|l| l.parse::<f64>().is_ok()) {
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
    let task = args.shape.task(name, &labels);
    let seeds = sample.rows.into_iter().map(Example::from).collect();
    Ok((task, seeds))
}
