//! The headless commands. Each subcommand lives in its own module and drives the same layers the
//! workbench uses, so every feature works with and without a terminal.

pub mod annotate;
pub mod classify;
pub mod distil;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod export_model;
pub mod filter;
pub mod generate;
pub mod init;
pub mod input_args;
pub mod inspect;
pub mod judge_args;
pub mod model;
pub mod model_args;
pub mod predict;
pub mod task_arg;
pub mod train;
pub mod writer_args;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::train::trainer::Objective;

#[derive(Debug, Parser)]
#[command(
    name = "seedforge",
    version,
    about = "Build a text classifier from a handful of labelled examples",
    long_about = "Without a subcommand, opens the terminal workbench (on the bundled demo task \
                  when no --workspace is given)."
)]
pub struct Cli {
    /// Workspace folder: opened by the workbench, created by `init`, read by `export`.
    #[arg(long, global = true)]
    pub workspace: Option<PathBuf>,

    /// Workbench colour theme: dark, light, high-contrast or one of yours
    /// (<config dir>/themes/NAME.toml). Default: `theme` in <config dir>/config.toml, else dark.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,

    /// The workbench's model and device (the model loads while the workbench opens).
    #[command(flatten)]
    pub model: model_args::ModelArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a workspace from a labelled dataset (k seeds per class), a task file or the demo.
    Init(init::Args),
    /// Write seeds + accepted items (or the rejected ones) as JSONL or CSV.
    Export(export::Args),
    /// Fetch the default model or describe a model.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Look inside the model: tokens, next-token logits, greedy continuations.
    #[command(subcommand)]
    Inspect(inspect::InspectCommand),
    /// Have the model write new examples of each class (headless).
    Generate(Box<generate::GenerateArgs>),
    /// Have the model label texts you already have (annotate mode); with --workspace they join
    /// its review as annotated items.
    Annotate(Box<annotate::AnnotateArgs>),
    /// Run the filters over generated items: malformed, duplicates, label consistency (a file
    /// of them, or with --workspace its items that await a decision, judged again).
    Filter(filter::FilterArgs),
    /// Classify texts with the in-context classifier (k-shot from the task's seeds).
    Classify(classify::ClassifyArgs),
    /// Fine-tune LoRA adapters on a task's seeds (and accepted synthetic items).
    Train(Box<train::TrainArgs>),
    /// Fine-tune a teacher: a LoRA adapter that writes examples of each class (trained on the
    /// seeds with a generation objective); then `generate --adapter RUN`.
    Teacher(Box<train::TrainArgs>),
    /// Evaluate zero-shot, in-context learning or a LoRA adapter on a labelled test file.
    Eval(Box<eval::EvalArgs>),
    /// The method end to end on a dataset (seeds → generate → filter → LoRA arms → evaluation
    /// beside ICL), resumable, with a Markdown and JSON report.
    Experiment(Box<experiment::ExperimentArgs>),
    /// Every evaluated run side by side.
    Runs(eval::RunsArgs),
    /// Label texts with your classifier (a trained run, or zero-shot / in context): a file or
    /// standard input, answers as JSONL, CSV or TSV with every label's probability.
    Predict(Box<predict::PredictArgs>),
    /// Export a run's classifier: the base model with its adapter merged, as GGUF (llama.cpp,
    /// Ollama) or a Hugging Face folder, with the prompt and label words beside.
    ExportModel(Box<export_model::ExportModelArgs>),
    /// Distil a run's classifier into a small, fast student (hashed word and character
    /// n-grams) trained on the run's soft labels; `predict --run` and `eval --adapter` read it.
    Distil(Box<distil::DistilArgs>),
    /// Speed benchmarks beside the reference stacks (shared/peers) measured in the same run.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

/// Runs the parsed command line; errors reach `main`, which prints them and sets the exit code.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Before a subcommand they would be read by nothing: the subcommand has its own.
    anyhow::ensure!(
        cli.command.is_none()
            || (cli.model.model.is_none()
                && cli.model.device == Default::default()
                && cli.model.weights == Default::default()),
        "--model, --device and --weights before a subcommand choose the workbench's model; give \
         them after the subcommand's name (seedforge generate --model … --device …)"
    );
    match cli.command {
        None => crate::tui::run(crate::tui::Options {
            workspace: cli.workspace,
            theme: cli.theme,
            model: cli.model.model,
            device: cli.model.device,
            weights: cli.model.weights,
        }),
        Some(Command::Init(args)) => init::run(args, cli.workspace, &mut std::io::stdout()),
        Some(Command::Export(args)) => export::run(args, cli.workspace, &mut std::io::stdout()),
        Some(Command::Model(cmd)) => model::run(cmd),
        Some(Command::Inspect(cmd)) => inspect::run(cmd),
        Some(Command::Generate(args)) => generate::run(*args, cli.workspace),
        Some(Command::Bench(cmd)) => crate::bench::run(cmd, cli.workspace),
        Some(Command::Classify(args)) => classify::run(args),
        Some(Command::Filter(args)) => filter::run(args, cli.workspace),
        Some(Command::Annotate(args)) => annotate::run(*args, cli.workspace),
        Some(Command::Train(args)) => train::run(*args, cli.workspace, Objective::Classify),
        Some(Command::Teacher(args)) => train::run(*args, cli.workspace, Objective::Generate),
        Some(Command::Eval(args)) => eval::run(*args, cli.workspace),
        Some(Command::Experiment(args)) => experiment::run(*args),
        Some(Command::Runs(args)) => eval::list_runs(args, cli.workspace),
        Some(Command::Predict(args)) => predict::run(*args, cli.workspace),
        Some(Command::Distil(args)) => distil::run(*args, cli.workspace),
        Some(Command::ExportModel(args)) => export_model::run(*args, cli.workspace),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        // Clap checks duplicate flags and conflicting names only in debug builds, when the
        // command is built; this makes a clash fail here rather than at a user's first call.
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
