//! `seedforge export-model`: a run's classifier as one model file for other programs — the base
//! model with the run's LoRA adapter merged in, as GGUF (llama.cpp, Ollama) or a Hugging Face
//! folder (transformers), with the prompt, label words and reading in a `seedforge.json` card
//! (and, for GGUF, in `seedforge.*` metadata keys).

use std::path::PathBuf;

use clap::Args;

use super::model_args::ModelArgs;
use super::predict::{load_task, model_for, run_target};
use super::task_arg::TaskArg;
use crate::export::{self, Format, Request, Weights};
use crate::train::peft;

#[derive(Debug, Args)]
pub struct ExportModelArgs {
    /// The task (its labels and prompt). Default: --workspace's, else the workspace the run
    /// folder sits in, else the bundled demo task.
    #[command(flatten)]
    pub task: TaskArg,
    /// The base model. Default: the one the run recorded (when it is on this machine), else the
    /// default model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The training run whose adapter is merged (adapter_config.json +
    /// adapter_model.safetensors).
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// Where to write: a .gguf file (its card goes beside as <name>.seedforge.json), or a folder
    /// for --format hf.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// gguf (llama.cpp, Ollama) or hf (transformers: safetensors + config + tokenizer).
    #[arg(long, value_name = "gguf|hf")]
    pub format: Format,
    /// How the matrices are stored: f32, f16, q8_0 or mixed (the last two GGUF only). q8_0
    /// encodes the merged matrices as 8-bit blocks and keeps the base file's blocks for tensors
    /// the adapter left unchanged (half the size of f16, but llama.cpp then flips labels that
    /// sit near the boundary); mixed keeps those too and stores the merged matrices as f16.
    /// Default: f16 for GGUF, f32 for hf.
    #[arg(long, value_name = "f32|f16|q8_0|mixed")]
    pub quant: Option<Weights>,
    /// Replace what is already at --out.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ExportModelArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    let run = &args.run;
    anyhow::ensure!(
        run.is_dir(),
        "{}: no such run folder (a run from `seedforge train`)",
        run.display()
    );
    anyhow::ensure!(
        peft::check_adapter(run)?,
        "{}: the run has no adapter ({} is missing): it never finished a save; train it (or \
         resume it with `seedforge train --resume`) first",
        run.display(),
        run.join(peft::CONFIG_FILE).display()
    );
    let request = Request {
        run: run.clone(),
        out: args.out.clone(),
        format: args.format,
        weights: args.quant.unwrap_or(Weights::default_for(args.format)),
        force: args.force,
    };
    // Say what is wrong with the destination before loading anything.
    request.check_outputs()?;
    let task = load_task(&args.task, Some(run), workspace.as_deref())?;
    run_target(run, &task)?;
    let model_args = model_for(&args.model, Some(run));
    let base_path = model_args.path()?;
    let (loaded, _) = model_args.load()?;
    eprintln!(
        "seedforge: merging {} into {} and writing {} weights",
        run.display(),
        base_path.display(),
        request.weights.name()
    );
    let done = export::export(&loaded, &base_path, &task, &request)?;
    eprintln!(
        "seedforge: exported {} ({:.1} MB, {:.1} s); classifier card {}",
        done.out.display(),
        done.bytes as f64 / 1e6,
        done.seconds,
        done.card_path.display()
    );
    if done.copied_tensors > 0 {
        eprintln!(
            "seedforge: {} tensors the adapter left unchanged copied from the base file in \
             their own type",
            done.copied_tensors
        );
    }
    eprintln!(
        "seedforge: classify with prompt {:?} and label words {}{}",
        done.card.prompt.template,
        done.card.label_words.join(", "),
        match &done.card.calibration {
            Some(c) => format!(" (calibrated ×{}, prior in the card)", c.strength),
            None => String::new(),
        }
    );
    println!("{}", done.out.display());
    Ok(())
}
