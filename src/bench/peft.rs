//! `seedforge bench peft`: last-position logits with a LoRA adapter applied here and in Hugging
//! Face PEFT (`peft_logits.py`), compared prompt by prompt.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::find_peers;
use crate::cli::model_args::ModelArgs;

#[derive(Debug, Args)]
pub struct PeftArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub adapter: PathBuf,
    /// Prompts to compare (repeatable; default: three prompts from the peers' README).
    #[arg(long)]
    pub prompt: Vec<String>,
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// The peers' folder (peft_logits.py); default: shared/peers in this or a parent folder.
    #[arg(long, value_name = "DIR")]
    pub peers: Option<PathBuf>,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub const INTEROP_PROMPTS: [&str; 3] = [
    "The capital of France is",
    "Review: it 's a charming and often affecting journey .\nSentiment:",
    "Hello",
];

#[derive(Debug, Serialize, serde::Deserialize)]
struct PeerTop {
    id: u32,
    logit: f64,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct PeerPrompt {
    text: String,
    prompt_ids: Vec<u32>,
    top: Vec<PeerTop>,
    logsumexp: f64,
}

#[derive(Debug, serde::Deserialize)]
struct PeerLogits {
    prompts: Vec<PeerPrompt>,
}

#[derive(Serialize)]
struct PromptComparison {
    text: String,
    prompt_ids_equal: bool,
    top_ids_seedforge: Vec<u32>,
    top_ids_peft: Vec<u32>,
    top_ids_equal: bool,
    /// max |ours − PEFT| over PEFT's top ids.
    max_abs_logit_diff: f64,
    logsumexp_seedforge: f64,
    logsumexp_peft: f64,
    /// max |with adapter − base model| over PEFT's top ids (seedforge): how much the adapter
    /// moves the logits, for scale.
    max_abs_adapter_effect: f64,
}

pub fn run(args: PeftArgs) -> anyhow::Result<()> {
    use crate::llm::greedy::row_logits;
    use crate::llm::model::{StepLayout, tokens_tensor};

    let prompts: Vec<String> = if args.prompt.is_empty() {
        INTEROP_PROMPTS.iter().map(|p| p.to_string()).collect()
    } else {
        args.prompt.clone()
    };
    let peers = args
        .peers
        .clone()
        .or_else(find_peers)
        .ok_or_else(|| anyhow::anyhow!("shared/peers not found: pass --peers DIR"))?;
    let python = super::peers::python();
    anyhow::ensure!(
        python.is_file(),
        "{}: the peer venv is missing; run {}/setup.sh",
        python.display(),
        peers.display()
    );
    let script = peers.join("peft_logits.py");
    eprintln!("seedforge: running {} …", script.display());
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .arg("--adapter")
        .arg(&args.adapter)
        .args(["--top", &args.top.to_string()]);
    for p in &prompts {
        cmd.arg("--prompt").arg(p);
    }
    let peer: PeerLogits = super::peers::stdout_json(&mut cmd, &script)?;

    let (mut loaded, _) = args.model.load()?;
    let base_model = loaded.model.clone();
    let info = crate::train::peft::load_adapter(&mut loaded.model, &args.adapter)?;
    eprintln!(
        "seedforge: adapter r={} α={} on {:?}, {} parameters",
        info.rank, info.alpha, info.targets, info.trainable_params
    );
    let device = loaded.model.device();
    let mut rows = Vec::new();
    for (text, p) in prompts.iter().zip(&peer.prompts) {
        let ids = loaded.tokenizer.encode(text)?;
        let layout = StepLayout::for_prompts(&[ids.len()]);
        let run = |m: &crate::llm::model::Llama| {
            row_logits(m.forward_last(
                tokens_tensor(std::slice::from_ref(&ids), 0, &device),
                &layout,
                None,
            ))
        };
        let logits = run(&loaded.model)?;
        let base = run(&base_model)?;
        let effect = p
            .top
            .iter()
            .map(|t| (logits[t.id as usize] - base[t.id as usize]).abs() as f64)
            .fold(0.0, f64::max);
        let ours: Vec<u32> = crate::cli::inspect::top_k(&logits, args.top)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let theirs: Vec<u32> = p.top.iter().map(|t| t.id).collect();
        let max_diff = p
            .top
            .iter()
            .map(|t| (logits[t.id as usize] as f64 - t.logit).abs())
            .fold(0.0, f64::max);
        rows.push(PromptComparison {
            text: text.clone(),
            prompt_ids_equal: ids == p.prompt_ids,
            top_ids_equal: ours == theirs,
            top_ids_seedforge: ours,
            top_ids_peft: theirs,
            max_abs_logit_diff: max_diff,
            logsumexp_seedforge: crate::cli::inspect::logsumexp(&logits),
            logsumexp_peft: p.logsumexp,
            max_abs_adapter_effect: effect,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    println!(
        "adapter {}: seedforge vs PEFT (peft_logits.py)",
        args.adapter.display()
    );
    println!(
        "{:<40} {:>6} {:>8} {:>12} {:>12} {:>12} {:>14}",
        "prompt", "ids", "top-ids", "max|Δlogit|", "lse ours", "lse PEFT", "adapter effect"
    );
    for r in &rows {
        let short: String = r.text.chars().take(38).collect();
        println!(
            "{:<40} {:>6} {:>8} {:>12.2e} {:>12.5} {:>12.5} {:>14.3}",
            format!("{short:?}"),
            if r.prompt_ids_equal { "same" } else { "DIFF" },
            if r.top_ids_equal { "same" } else { "DIFF" },
            r.max_abs_logit_diff,
            r.logsumexp_seedforge,
            r.logsumexp_peft,
            r.max_abs_adapter_effect
        );
    }
    Ok(())
}
