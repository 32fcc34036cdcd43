//! `seedforge bench …`: speed figures beside the peers measured in the same run.

use clap::Subcommand;

use super::bench_decode;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prompt processing and generation speed (batch 1 … 32) vs transformers and llama.cpp.
    Decode(bench_decode::DecodeBenchArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Decode(args) => bench_decode::run(args),
    }
}
