//! `seedforge experiment`: the method's protocol end to end on a labelled dataset and a test
//! file, for one or more sampling seeds, resumable, ending in `report.md` and `report.json`.

use crate::util::control::JobControl;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::filter::FilterOptions;
use super::generate::GenerationOptions;
use super::input_args::InputArgs;
use super::model_args::ModelArgs;
use super::task_arg::TaskShape;
use super::train::TrainOptions;
use crate::data::import::fragments::Fragments;
use crate::data::import::{Imported, SeedRows, sample};
use crate::experiment::{self, Arm, Context, ExperimentSpec, Hooks, report};
use crate::pipeline::prompt::Templates;

#[derive(Debug, Args)]
#[command(after_help = "Example (SST-2, three sampling seeds):\n  \
    seedforge experiment --dataset ../shared/datasets/sst2/train.tsv \\\n    \
    --test ../shared/datasets/sst2/dev.tsv --label-map 0=negative,1=positive \\\n    \
    --description sentiment --input-noun 'movie review' --input-field Review \\\n    \
    --label-field Sentiment --seed-min-words 6 --sampling-seed 0,1,2 --out experiments/sst2\n\n\
    Stopped (Ctrl-C, a crash, a reboot)? Run the same command again: finished steps are kept.")]
pub struct ExperimentArgs {
    /// Labelled dataset the seeds are drawn from (any format `init` reads).
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Labelled test file, read with the same options as the dataset.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "validation_rows",
        conflicts_with = "validation_rows"
    )]
    pub test: Option<PathBuf>,
    /// Score on N rows carved from --dataset instead of a test file: drawn at random (rows of
    /// at least --seed-min-words words, no duplicate text), never seeds or pool, written to
    /// OUT/validation.jsonl. For choosing settings before the test set is run once.
    #[arg(long, value_name = "N")]
    pub validation_rows: Option<usize>,
    /// The draw of --validation-rows.
    #[arg(
        long,
        value_name = "SEED",
        default_value_t = 13,
        requires = "validation_rows"
    )]
    pub validation_seed: u64,
    /// Score only the first N test rows.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    #[command(flatten)]
    pub read: InputArgs,
    /// Task name in the report (default: the dataset's folder name).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub shape: TaskShape,
    /// Seeds drawn per class (the papers' low-resource protocol uses 4).
    #[arg(long, default_value_t = 4)]
    pub seeds_per_class: usize,
    /// Draw seeds among rows of at least this many words (the papers use 6 for SST-2).
    #[arg(long, default_value_t = 0)]
    pub seed_min_words: usize,
    /// Which rows seeds and carved validation rows are drawn from: `auto` leaves out fragments
    /// of longer rows when the file is made of phrases (SST-2's training file), `whole` always,
    /// `any` never (the draws of experiments before this option).
    #[arg(long, default_value = "auto", value_parser = SeedRows::parse)]
    pub seed_rows: SeedRows,
    /// Sampling seeds, comma-separated or repeated: each draws its own seeds, generations,
    /// validation split and batch order.
    #[arg(long = "sampling-seed", value_delimiter = ',', default_value = "0")]
    pub sampling_seeds: Vec<u64>,
    /// Methods to compare, comma-separated: also lora-teacher (seeds + what a seed-tuned teacher
    /// wrote) and lora-annotated (seeds + a labelled pool of the dataset's texts).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "zero-shot,icl,icl-calibrated,lora-real,lora-synthetic,lora-staged,lora-unfiltered"
    )]
    pub arms: Vec<Arm>,
    #[command(flatten)]
    pub generation: GenerationOptions,
    /// A server that writes the generated examples instead of the model here (the teacher
    /// arm's still writes here: it is an adapter on this model).
    #[command(flatten)]
    pub writer: super::writer_args::WriterArgs,
    #[command(flatten)]
    pub filters: FilterOptions,
    #[command(flatten)]
    pub train: TrainOptions,
    /// Unlabelled texts drawn from the dataset (seeds left out, labels hidden) for the
    /// lora-annotated arm.
    #[arg(long, default_value_t = 200)]
    pub pool: usize,
    /// lora-annotated: keep a pool text when the model gives its label at least this
    /// probability.
    #[arg(long, default_value_t = 0.6)]
    pub annotate_min_confidence: f64,
    /// lora-teacher: the teacher's sampling temperature (the teacher paper's 0.8).
    #[arg(long, default_value_t = super::generate::TEACHER_TEMPERATURE)]
    pub teacher_temperature: f32,
    /// Evaluate each LoRA arm with its run's own reading, as the workbench does: half-strength
    /// contextual calibration when it trained on generated examples, raw scores otherwise
    /// (true|false; false: every arm raw). lora-synthetic-uncalibrated reads the synthetic
    /// adapter raw.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub calibrate_extra: bool,
    /// Texts classified together during evaluation.
    #[arg(long, default_value_t = 16)]
    pub eval_batch: usize,
    /// The experiment folder (created, or resumed when it holds this experiment).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The command line as typed, for the report (arguments with spaces quoted).
fn command_line() -> String {
    std::iter::once("seedforge".to_string())
        .chain(std::env::args().skip(1).map(|a| {
            if a.contains(' ') || a.is_empty() {
                format!("'{a}'")
            } else {
                a
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seeds_per_class > 0,
        "--seeds-per-class must be at least 1"
    );
    anyhow::ensure!(!args.arms.is_empty(), "--arms names no method");
    let mut arms = args.arms.clone();
    // An arm that reads another's adapter needs that one trained.
    // An arm that reads or trains on from another's adapter brings that arm along.
    let readers: Vec<Arm> = arms
        .iter()
        .flat_map(|a| [a.adapter_of(), a.builds_on()])
        .flatten()
        .collect();
    arms.extend(readers);
    arms.sort();
    arms.dedup();
    let mut seeds = args.sampling_seeds.clone();
    seeds.dedup();
    let mut log = std::io::stderr();
    let mut dataset = args.read.read(&args.dataset, &mut log)?;
    let (test_path, mut test, carved) = match (&args.test, args.validation_rows) {
        (Some(path), _) => (path.clone(), args.read.read(path, &mut log)?, None),
        (None, Some(n)) => {
            let seed = args.validation_seed;
            let (rows, rest) =
                sample::carve(&dataset.rows, n, seed, args.seed_min_words, args.seed_rows);
            anyhow::ensure!(
                !rows.is_empty(),
                "{}: no row of at least {} words to carve validation rows from",
                args.dataset.display(),
                args.seed_min_words
            );
            dataset.rows = rest;
            // Row ids would no longer line up with the rows; the experiment reads none.
            dataset.ids.clear();
            let path = args.out.join(experiment::VALIDATION_FILE);
            let carve = experiment::Carve {
                rows: rows.len(),
                seed,
                min_words: args.seed_min_words,
                rows_drawn: args.seed_rows,
            };
            let test = Imported {
                path: path.clone(),
                format: dataset.format,
                rows,
                problems: Vec::new(),
                columns: dataset.columns.clone(),
                ids: Vec::new(),
            };
            (path, test, Some(carve))
        }
        (None, None) => anyhow::bail!("give --test FILE or --validation-rows N"),
    };
    if let Some(n) = args.test_limit {
        test.rows.truncate(n);
    }
    let labels = dataset.labels(args.read.label_map.as_ref());
    anyhow::ensure!(
        labels.len() >= 2,
        "{}: found {} label(s); a task needs at least two",
        args.dataset.display(),
        labels.len()
    );
    let unknown = test
        .rows
        .iter()
        .filter(|r| !labels.contains(&r.label))
        .count();
    anyhow::ensure!(
        unknown < test.rows.len(),
        "{}: no test row has one of the dataset's labels ({})",
        test_path.display(),
        labels.join(", ")
    );
    let name = args.name.clone().unwrap_or_else(|| {
        args.dataset
            .parent()
            .and_then(|p| p.file_name())
            .map_or_else(|| "task".into(), |n| n.to_string_lossy().into_owned())
    });
    let model_path = args.model.path()?;
    let spec = ExperimentSpec {
        dataset: args.dataset.clone(),
        test: test_path.clone(),
        test_rows: test.rows.len(),
        validation: carved,
        task: args.shape.task(name, &labels),
        seeds_per_class: args.seeds_per_class,
        min_words: args.seed_min_words,
        seed_rows: args.seed_rows,
        generate: args.generation.settings(0, false, args.writer.settings()?),
        filters: args.filters.settings_with_server()?,
        train: args.train.config(0)?,
        eval_batch: args.eval_batch.max(1),
        model: model_path.display().to_string(),
        pool: args.pool,
        annotate_min_confidence: args.annotate_min_confidence,
        teacher_temperature: args.teacher_temperature,
        judge_select: args.filters.judge_choice()?.is_none(),
        calibrate_extra: args.calibrate_extra,
    };
    spec.generate.validate().map_err(anyhow::Error::msg)?;
    if experiment::claim(&args.out, &spec)? {
        eprintln!(
            "seedforge: resuming the experiment in {}",
            args.out.display()
        );
    }
    if let Some(carve) = &spec.validation {
        experiment::write_validation(&test_path, &test.rows)?;
        eprintln!(
            "seedforge: scoring on {} rows carved from {} (seed {}), kept out of the seeds and \
             the pool: {}",
            carve.rows,
            args.dataset.display(),
            carve.seed,
            test_path.display()
        );
    }
    for line in experiment::reopen_stale_evaluations(&args.out, &spec, &seeds, &arms)? {
        eprintln!("seedforge: {line}");
    }
    let todo = experiment::pending(&args.out, &spec, &seeds, &arms)?;
    if todo > 0 {
        let (loaded, selected) = args.model.load()?;
        let templates = Templates::for_task(&spec.task)?;
        let model_path = loaded.info.path.display().to_string();
        let fragments = Fragments::of(&dataset.rows, spec.seed_rows);
        let ctx = Context {
            loaded: &loaded,
            templates: &templates,
            model_path: &model_path,
            device: &selected.label,
            dataset: &dataset.rows,
            fragments: &fragments,
            test: &test.rows,
        };
        let cancel = JobControl::default();
        let mut print = |line: &str| eprintln!("{line}");
        let mut hooks = Hooks {
            log: &mut print,
            cancel: &cancel,
        };
        eprintln!("seedforge: {todo} steps to run");
        for &seed in &seeds {
            experiment::run_seed(&ctx, &mut hooks, &spec, &args.out, seed, &arms)?;
        }
    }
    let rep = report::build(&args.out, &spec, &seeds, &arms, &command_line())?;
    let md = report::markdown(&rep);
    for (file, text) in [
        ("report.md", md.clone()),
        ("report.json", serde_json::to_string_pretty(&rep)? + "\n"),
    ] {
        let path = args.out.join(file);
        crate::data::atomic::write_atomic_bytes(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{md}");
    eprintln!(
        "seedforge: report in {} (report.md, report.json)",
        args.out.display()
    );
    Ok(())
}
