//! The headless commands. Each subcommand lives in its own module and drives the same layers the
//! workbench uses, so every feature works with and without a terminal.

pub mod bench;
pub mod inspect;
pub mod model;
pub mod model_args;
pub mod train;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "seedforge",
    version,
    about = "Build a text classifier from a handful of labelled examples",
    long_about = "Without a subcommand, opens the terminal workbench (on the bundled demo task \
                  when no --workspace is given)."
)]
pub struct Cli {
    /// Workspace folder to open in the workbench.
    #[arg(long, global = true)]
    pub workspace: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch the default model or describe a model.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Look inside the model: tokens, next-token logits, greedy continuations.
    #[command(subcommand)]
    Inspect(inspect::InspectCommand),
    /// Fine-tune LoRA adapters on a task's seeds (and accepted synthetic items).
    Train(Box<train::TrainArgs>),
    /// Measure seedforge beside the reference stacks (shared/peers).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs the parsed command line; errors reach `main`, which prints them and sets the exit code.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => anyhow::bail!("the workbench is not built yet"),
        Some(Command::Model(cmd)) => model::run(cmd),
        Some(Command::Inspect(cmd)) => inspect::run(cmd),
        Some(Command::Train(args)) => train::run(*args),
        Some(Command::Bench(cmd)) => bench::run(cmd),
    }
}
