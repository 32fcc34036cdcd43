//! The headless commands. Each subcommand lives in its own module and drives the same layers the
//! workbench uses, so every feature works with and without a terminal.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod export;
pub mod init;

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

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a workspace from a labelled dataset (k seeds per class), a task file or the demo.
    Init(init::Args),
    /// Write seeds + accepted items (or the rejected ones) as JSONL or CSV.
    Export(export::Args),
}

/// Runs the parsed command line; errors reach `main`, which prints them and sets the exit code.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => anyhow::bail!("the workbench is not built yet"),
        Some(Command::Init(args)) => init::run(args, cli.workspace, &mut std::io::stdout()),
        Some(Command::Export(args)) => export::run(args, cli.workspace, &mut std::io::stdout()),
    }
}
