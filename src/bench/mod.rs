//! `seedforge bench …`: measurements to put beside the reference stacks' (the "peers" in
//! `shared/peers/`), run in the same process invocation so both see the same machine state.
//! One module per benchmark; none of it is used by the product's commands or the workbench.

pub mod classify;
pub mod decode;
pub mod decode_timing;
pub mod peers;
pub mod peft;
pub mod predict;
pub mod rss;
pub mod sst2;
pub mod student;
pub mod train;
pub mod train_steps;
pub mod ui;
pub mod writer;

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prompt processing and generation speed (batch 1 … 32) beside transformers and llama.cpp.
    Decode(decode::DecodeBenchArgs),
    /// In-context classifier throughput (items/s) on SST-2 dev rows, zero-shot and 8-shot, beside
    /// the transformers peer's `sst2_acc.py` on the same rows and demonstrations.
    Classify(classify::ClassifyBenchArgs),
    /// LoRA training: seconds per optimizer step and training tokens/s at the PEFT peer's
    /// settings (batch 8, 64 tokens, r=8, α=16, dropout 0.05, q,v, AdamW lr 2e-4), then the
    /// peer's own `lora_train.py` on the same data recipe, and the ratio.
    Train(train::TrainBenchArgs),
    /// Last-position logits with a LoRA adapter applied here and in Hugging Face PEFT on the
    /// transformers peer (`peft_logits.py`), compared prompt by prompt: the interop check for
    /// adapters written by either side.
    Peft(peft::PeftArgs),
    /// `seedforge predict`'s throughput (texts/s) with a run on SST-2 dev rows at batch 1, 16
    /// and 64, with the CPU it ran on.
    Predict(Box<predict::PredictBenchArgs>),
    /// Writing examples through an OpenAI-compatible server (--writer) at concurrency 1, 4 and
    /// 16, beside the local Burn writer on the same prompts: tokens/s and items/s.
    Writer(Box<writer::WriterBenchArgs>),
    /// A distilled student beside its teacher on the same labelled rows: texts/s of each, the
    /// ratio, how often they agree, and each one's accuracy, with the CPU it ran on.
    Student(Box<student::StudentBenchArgs>),
    /// The workbench's frame time (median, p95, worst) at 120×36 while a generation job runs
    /// on a workspace of 10,000 items, with the CPU it ran on.
    Ui(Box<ui::UiBenchArgs>),
}

pub fn run(cmd: BenchCommand, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Predict(args) => predict::run(*args, workspace),
        BenchCommand::Writer(args) => writer::run(*args),
        BenchCommand::Student(args) => student::run(*args, workspace),
        BenchCommand::Decode(args) => decode::run(args),
        BenchCommand::Classify(args) => classify::run(args),
        BenchCommand::Ui(args) => ui::run(*args),
        BenchCommand::Train(args) => train::run(args),
        BenchCommand::Peft(args) => peft::run(args),
    }
}

/// `shared/peers` in the current folder or one of its parents.
pub(crate) fn find_peers() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|d| d.join("shared/peers"))
        .find(|p| p.join("lora_train.py").is_file())
}
