//! `seedforge bench …`: measurements to put beside the reference stacks' (the "peers" in
//! `shared/peers/`), run in the same process invocation so both see the same machine state.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::model_args::ModelArgs;
use crate::train::bench::{
    self, BenchSettings, LoraPath, PeerResult, StepTiming, bench_data, median, run_peer, time_steps,
};
use crate::train::data::Padding;
use crate::train::lora::{LoraConfig, parse_targets};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prompt processing and generation speed (batch 1 … 32) beside transformers and llama.cpp.
    Decode(super::bench_decode::DecodeBenchArgs),
    /// In-context classifier throughput (items/s) on SST-2 dev rows, zero-shot and 8-shot, beside
    /// the transformers peer's `sst2_acc.py` on the same rows and demonstrations.
    Classify(super::bench_classify::ClassifyBenchArgs),
    /// LoRA training: seconds per optimizer step and training tokens/s at the PEFT peer's
    /// settings (batch 8, 64 tokens, r=8, α=16, dropout 0.05, q,v, AdamW lr 2e-4), then the
    /// peer's own `lora_train.py` on the same data recipe, and the ratio.
    Train(TrainBenchArgs),
    /// Last-position logits with a LoRA adapter applied here and in Hugging Face PEFT on the
    /// transformers peer (`peft_logits.py`), compared prompt by prompt: the interop check for
    /// adapters written by either side.
    Peft(PeftArgs),
    /// `seedforge predict`'s throughput (texts/s) with a run on SST-2 dev rows at batch 1, 16
    /// and 64, with the CPU it ran on.
    Predict(Box<super::bench_predict::PredictBenchArgs>),
    /// Writing examples through an OpenAI-compatible server (--writer) at concurrency 1, 4 and
    /// 16, beside the local Burn writer on the same prompts: tokens/s and items/s.
    Writer(Box<super::bench_writer::WriterBenchArgs>),
    /// A distilled student beside its teacher on the same labelled rows: texts/s of each, the
    /// ratio, how often they agree, and each one's accuracy, with the CPU it ran on.
    Student(Box<super::bench_student::StudentBenchArgs>),
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaddingArg {
    /// Every row left-padded to --max-len, as the peer pads (same work as the peer).
    Fixed,
    /// Rows left-padded to the longest of the batch.
    Longest,
    /// Rows packed back to back into one sequence (what `seedforge train` does).
    Packed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    /// seedforge's low-rank path, x·W + s·(x·A)·B.
    LowRank,
    /// Burn's apply_lora, x·(W + s·A·B).
    Burn,
}

#[derive(Debug, Args)]
pub struct TrainBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed optimizer steps.
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Measure ours this many times (median of the per-round medians is reported).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 64)]
    pub max_len: usize,
    /// LoRA targets (q,k,v,o,gate,up,down or all).
    #[arg(long, default_value = "q,v")]
    pub targets: String,
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    #[arg(long, default_value_t = 0.05)]
    pub dropout: f64,
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Batch layouts to time (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "fixed,packed")]
    pub padding: Vec<PaddingArg>,
    /// LoRA implementations to time (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "low-rank")]
    pub path: Vec<PathArg>,
    /// Skip the PEFT peer.
    #[arg(long)]
    pub no_peer: bool,
    /// The peers' folder (lora_train.py); default: shared/peers in this or a parent folder.
    #[arg(long, value_name = "DIR")]
    pub peers: Option<PathBuf>,
    /// SST-2 train.tsv; default: datasets/sst2/train.tsv beside the peers' folder.
    #[arg(long, value_name = "FILE")]
    pub train_tsv: Option<PathBuf>,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    ours: Vec<OursSummary>,
    peer: Option<PeerResult>,
}

#[derive(Serialize)]
struct OursSummary {
    path: LoraPath,
    padding: Padding,
    median_s_per_step: f64,
    round_medians_s: Vec<f64>,
    median_cpu_s_per_step: f64,
    padded_train_tokens_per_s: f64,
    real_train_tokens_per_s: f64,
    trainable_params: usize,
    losses_first_round: Vec<f64>,
    /// Peer median s/step ÷ ours (> 1: we are faster).
    speedup_vs_peer: Option<f64>,
    rounds: Vec<StepTiming>,
}

pub fn run(cmd: BenchCommand, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Predict(args) => super::bench_predict::run(*args, workspace),
        BenchCommand::Writer(args) => super::bench_writer::run(*args),
        BenchCommand::Student(args) => super::bench_student::run(*args, workspace),
        BenchCommand::Decode(args) => super::bench_decode::run(args),
        BenchCommand::Classify(args) => super::bench_classify::run(args),
        BenchCommand::Train(args) => train(args),
        BenchCommand::Peft(args) => peft_interop(args),
    }
}

/// `shared/peers` in the current folder or one of its parents.
fn find_peers() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|d| d.join("shared/peers"))
        .find(|p| p.join("lora_train.py").is_file())
}

fn train(args: TrainBenchArgs) -> anyhow::Result<()> {
    let peers = args.peers.clone().or_else(find_peers);
    let train_tsv = match (&args.train_tsv, &peers) {
        (Some(p), _) => p.clone(),
        (None, Some(peers)) => peers.join("../datasets/sst2/train.tsv"),
        (None, None) => anyhow::bail!(
            "no SST-2 train.tsv: pass --train-tsv FILE (or --peers DIR next to datasets/)"
        ),
    };
    let lora = LoraConfig {
        rank: args.rank,
        alpha: args.alpha,
        dropout: args.dropout,
        targets: parse_targets(&args.targets).map_err(anyhow::Error::msg)?,
    };
    lora.validate().map_err(anyhow::Error::msg)?;
    let (loaded, _) = args.model.load()?;
    let pad = loaded.tokenizer.pad_id();
    let base_settings = BenchSettings {
        batch: args.batch,
        max_len: args.max_len,
        warmup: args.warmup,
        repeats: args.repeats,
        lora: lora.clone(),
        lr: args.lr,
        ..BenchSettings::default()
    };
    let data = bench_data(&train_tsv, &loaded.tokenizer, &base_settings)?;
    let mut ours = Vec::new();
    for &path in &args.path {
        for &padding in &args.padding {
            let s = BenchSettings {
                path: match path {
                    PathArg::LowRank => LoraPath::LowRank,
                    PathArg::Burn => LoraPath::BurnReparam,
                },
                padding: match padding {
                    PaddingArg::Fixed => Padding::Fixed(args.max_len),
                    PaddingArg::Longest => Padding::Longest,
                    PaddingArg::Packed => Padding::Packed,
                },
                ..base_settings.clone()
            };
            let mut rounds = Vec::new();
            for round in 0..args.rounds.max(1) {
                eprintln!(
                    "seedforge: timing {:?} / {:?}, round {}",
                    s.path,
                    s.padding,
                    round + 1
                );
                let mut log = |i: usize, loss: f64, dt: f64| {
                    eprintln!("  step {i:>3}  loss {loss:.4}  {dt:.3} s")
                };
                rounds.push(time_steps(loaded.model.clone(), &data, pad, &s, &mut log)?);
            }
            let meds: Vec<f64> = rounds.iter().map(|r| r.median_s_per_step).collect();
            let med = median(&meds);
            let real = rounds
                .iter()
                .map(|r| r.mean_real_tokens_per_step)
                .sum::<f64>()
                / rounds.len() as f64;
            ours.push(OursSummary {
                path: s.path,
                padding: s.padding,
                median_s_per_step: med,
                round_medians_s: meds,
                median_cpu_s_per_step: median(
                    &rounds
                        .iter()
                        .map(|r| r.median_cpu_s_per_step)
                        .collect::<Vec<_>>(),
                ),
                padded_train_tokens_per_s: (s.batch * s.max_len) as f64 / med,
                real_train_tokens_per_s: real / med,
                trainable_params: rounds[0].trainable_params,
                losses_first_round: rounds[0].losses.clone(),
                speedup_vs_peer: None,
                rounds,
            });
        }
    }
    let peer = if args.no_peer {
        None
    } else {
        let dir = peers.ok_or_else(|| {
            anyhow::anyhow!("shared/peers not found: pass --peers DIR or --no-peer")
        })?;
        eprintln!(
            "seedforge: running the PEFT peer ({}) …",
            dir.join("lora_train.py").display()
        );
        Some(run_peer(&dir, &lora.targets, args.warmup, args.repeats)?)
    };
    if let Some(p) = &peer {
        for o in &mut ours {
            o.speedup_vs_peer = Some(p.median_s_per_step / o.median_s_per_step);
        }
    }
    let report = Report { ours, peer };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, &train_tsv);
    }
    Ok(())
}

fn print_table(r: &Report, data: &Path) {
    println!(
        "LoRA training step, SST-2 ({}), settings as lora_train.py",
        data.display()
    );
    println!(
        "{:<34} {:>10} {:>10} {:>14} {:>12} {:>10}",
        "", "s/step", "cpu s", "tok/s padded", "tok/s real", "peer/ours"
    );
    for o in &r.ours {
        println!(
            "{:<34} {:>10.3} {:>10.3} {:>14.1} {:>12.1} {:>10}",
            format!("seedforge {:?} {:?}", o.path, o.padding),
            o.median_s_per_step,
            o.median_cpu_s_per_step,
            o.padded_train_tokens_per_s,
            o.real_train_tokens_per_s,
            o.speedup_vs_peer
                .map_or("-".to_string(), |x| format!("{x:.2}×"))
        );
    }
    if let Some(p) = &r.peer {
        println!(
            "{:<34} {:>10.3} {:>10} {:>14.1} {:>12.1} {:>10}",
            "PEFT peer (torch, fp32)",
            p.median_s_per_step,
            "-",
            p.padded_train_tokens_per_s,
            p.real_train_tokens_per_s,
            "1.00×"
        );
        println!(
            "trainable params: seedforge {} / peer {}",
            r.ours.first().map_or(0, |o| o.trainable_params),
            p.trainable_params
        );
    }
}

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

fn peft_interop(args: PeftArgs) -> anyhow::Result<()> {
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
    let python = bench::peer_python();
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
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("{}: {e}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let peer: PeerLogits = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("{}: unexpected output: {e}", script.display()))?;

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
        let ours: Vec<u32> = super::inspect::top_k(&logits, args.top)
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
            logsumexp_seedforge: super::inspect::logsumexp(&logits),
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
