//! `seedforge bench train`: seconds per LoRA optimizer step at the PEFT peer's settings, then
//! the peer's own `lora_train.py` on the same data recipe, and the ratio.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::find_peers;
use super::predict::cpu_model;
use super::rss::{peak_rss_mib, reset_peak_rss};
use super::train_steps::{
    BenchSettings, LoraPath, PeerResult, StepTiming, bench_data, median, run_peer, time_steps,
};
use crate::cli::model_args::ModelArgs;
use crate::train::data::Padding;
use crate::train::lora::{LoraConfig, parse_targets};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecomputeArg {
    /// Every layer's activations kept for the backward pass.
    Off,
    /// Each layer's forward pass recomputed in the backward pass (less memory).
    On,
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
    /// With and/or without recomputing each layer's forward pass in the backward pass
    /// (comma-separated; what `train --recompute` chooses).
    #[arg(long, value_delimiter = ',', default_value = "off,on")]
    pub recompute: Vec<RecomputeArg>,
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
    cpu: String,
    weights: String,
    /// Peak resident memory after loading the model, MiB.
    loaded_rss_mib: Option<f64>,
    ours: Vec<OursSummary>,
    peer: Option<PeerResult>,
}

#[derive(Serialize)]
struct OursSummary {
    path: LoraPath,
    padding: Padding,
    recompute: bool,
    /// Peak resident memory while these steps ran (the loaded model included), MiB.
    peak_rss_mib: Option<f64>,
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

pub fn run(args: TrainBenchArgs) -> anyhow::Result<()> {
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
    let loaded_rss = peak_rss_mib();
    let layouts = args.padding.iter().flat_map(|&p| {
        args.recompute
            .iter()
            .map(move |&r| (p, r == RecomputeArg::On))
    });
    for &path in &args.path {
        for (padding, recompute) in layouts.clone() {
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
                recompute,
                ..base_settings.clone()
            };
            // The peak of these steps alone: what is resident now (the model) plus their own.
            let peak_known = reset_peak_rss();
            let mut rounds = Vec::new();
            for round in 0..args.rounds.max(1) {
                eprintln!(
                    "seedforge: timing {:?} / {:?}{}, round {}",
                    s.path,
                    s.padding,
                    if recompute { " / recompute" } else { "" },
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
                recompute,
                peak_rss_mib: peak_rss_mib().filter(|_| peak_known),
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
    let report = Report {
        cpu: cpu_model(),
        weights: loaded.model.weight_mode().name().to_string(),
        loaded_rss_mib: loaded_rss,
        ours,
        peer,
    };
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
    println!("cpu: {}", r.cpu);
    let mib = |m: Option<f64>| m.map_or("-".to_string(), |m| format!("{m:.0}"));
    println!(
        "weights: {}; peak RSS after loading: {} MiB",
        r.weights,
        mib(r.loaded_rss_mib)
    );
    println!(
        "{:<44} {:>8} {:>8} {:>13} {:>11} {:>9} {:>9}",
        "", "s/step", "cpu s", "tok/s padded", "tok/s real", "peer/ours", "peak MiB"
    );
    for o in &r.ours {
        println!(
            "{:<44} {:>8.3} {:>8.3} {:>13.1} {:>11.1} {:>9} {:>9}",
            format!(
                "seedforge {:?} {:?}{}",
                o.path,
                o.padding,
                if o.recompute { " recompute" } else { "" }
            ),
            o.median_s_per_step,
            o.median_cpu_s_per_step,
            o.padded_train_tokens_per_s,
            o.real_train_tokens_per_s,
            o.speedup_vs_peer
                .map_or("-".to_string(), |x| format!("{x:.2}×")),
            mib(o.peak_rss_mib)
        );
    }
    if let Some(p) = &r.peer {
        println!(
            "{:<44} {:>8.3} {:>8} {:>13.1} {:>11.1} {:>9} {:>9}",
            "PEFT peer (torch, fp32)",
            p.median_s_per_step,
            "-",
            p.padded_train_tokens_per_s,
            p.real_train_tokens_per_s,
            "1.00×",
            mib(p.peak_rss_mib)
        );
        println!(
            "trainable params: seedforge {} / peer {}",
            r.ours.first().map_or(0, |o| o.trainable_params),
            p.trainable_params
        );
    }
}
