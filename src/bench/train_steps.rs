//! Training-step timing at the PEFT peer's settings (`shared/peers/lora_train.py`): SST-2
//! sentences, batch 8, prompt `Review: {s}\nSentiment:` + label word, r = 8, α = 16, dropout
//! 0.05 on q and v, AdamW at lr 2e-4; a step is forward + backward + optimizer update. Also the
//! comparison of the two ways of computing a LoRA projection: our low-rank path and Burn's
//! `apply_lora` reparameterisation, which materialises `W + s·A·B` on every forward.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use burn::module::{Lora, Module, ParamGroup};
use serde::{Deserialize, Serialize};

use super::sst2::{read_sst2, sample, sst2_task};
use crate::llm::model::Llama;
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::prompt::Templates;
use crate::train::data::{Batch, Encoded, Padding, encode};
use crate::train::gradients::{Accumulated, loss_and_gradients};
use crate::train::lora::{self, LoraConfig, Target};
use crate::train::score::BatchTensors;
use crate::train::trainer::{TrainConfig, adamw, to_training_device, trainable_ids};

/// Which implementation computes the adapted projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraPath {
    /// `x·W + s·(x·A)·B` (seedforge's [`lora`]).
    LowRank,
    /// Burn 0.22's `apply_lora`: `x·(W + s·A·B)`, the delta rebuilt every forward.
    BurnReparam,
}

/// Attaches Burn's own `Lora` reparameterisation to the configured projections' weights.
pub fn apply_burn_lora(model: Llama, cfg: &LoraConfig) -> anyhow::Result<Llama> {
    let names: Vec<&str> = cfg.targets.iter().map(|t| t.module_name()).collect();
    let pattern = format!(
        r"^layers\.\d+\.(self_attn|mlp)\.({})\.weight$",
        names.join("|")
    );
    let group = ParamGroup::from_regex(&pattern)
        .map_err(|e| anyhow::anyhow!("parameter group {pattern}: {e:?}"))?;
    Ok(model.apply_lora(Lora::new(cfg.rank, cfg.alpha).set_param_group(group)))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSettings {
    pub batch: usize,
    pub max_len: usize,
    pub padding: Padding,
    pub warmup: usize,
    pub repeats: usize,
    pub lora: LoraConfig,
    pub lr: f64,
    pub path: LoraPath,
    pub seed: u64,
    /// Each layer's forward pass recomputed in the backward pass ([`gradients`]).
    #[serde(default)]
    pub recompute: bool,
}

impl Default for BenchSettings {
    fn default() -> Self {
        BenchSettings {
            batch: 8,
            max_len: 64,
            padding: Padding::Fixed(64),
            warmup: 2,
            repeats: 10,
            lora: LoraConfig::default(),
            lr: 2e-4,
            path: LoraPath::LowRank,
            seed: 0,
            recompute: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTiming {
    pub path: LoraPath,
    pub padding: Padding,
    pub trainable_params: usize,
    pub step_times_s: Vec<f64>,
    pub losses: Vec<f64>,
    pub median_s_per_step: f64,
    pub mean_s_per_step: f64,
    /// `batch × max_len`, as the peer counts.
    pub padded_tokens_per_step: usize,
    pub padded_train_tokens_per_s: f64,
    pub mean_real_tokens_per_step: f64,
    pub real_train_tokens_per_s: f64,
    /// Tokens the forward actually ran (padding included), mean over timed steps.
    pub mean_computed_tokens_per_step: f64,
    /// Process CPU time (user + system, all threads) per timed step, median: less sensitive
    /// than wall time to other work on a shared machine.
    pub median_cpu_s_per_step: f64,
}

/// User + system CPU seconds this process has used so far.
#[cfg(unix)]
pub fn process_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct we own and has no other precondition.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Not measured where there is no `getrusage`: the benchmarks then report wall time only.
#[cfg(not(unix))]
pub fn process_cpu_s() -> f64 {
    f64::NAN
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The peer's data: `batch × (warmup + repeats)` SST-2 training rows, encoded.
pub fn bench_data(
    train_tsv: &Path,
    tokenizer: &TextTokenizer,
    s: &BenchSettings,
) -> anyhow::Result<Vec<Encoded>> {
    let rows = read_sst2(train_tsv)?;
    let picked = sample(&rows, s.batch * (s.warmup + s.repeats), s.seed);
    let task = sst2_task();
    Ok(encode(
        &task,
        &Templates::bundled(),
        tokenizer,
        &picked,
        s.max_len,
    )?)
}

/// Times `warmup + repeats` optimizer steps on consecutive batches of `data` (as the peer:
/// forward, backward, AdamW update; no clipping, no accumulation).
pub fn time_steps(
    base: Llama,
    data: &[Encoded],
    pad: u32,
    s: &BenchSettings,
    log: &mut dyn FnMut(usize, f64, f64),
) -> anyhow::Result<StepTiming> {
    let mut model = base;
    match s.path {
        LoraPath::LowRank => {
            lora::attach(&mut model, &s.lora, s.seed).map_err(anyhow::Error::msg)?;
        }
        LoraPath::BurnReparam => model = apply_burn_lora(model, &s.lora)?,
    }
    let mut model = to_training_device(model);
    let trainable_params = match s.path {
        LoraPath::LowRank => lora::trainable_params(&model),
        LoraPath::BurnReparam => burn_lora_params(&model, &s.lora),
    };
    anyhow::ensure!(
        trainable_ids(&model).len() == 2 * s.lora.targets.len() * model.layers.len(),
        "unexpected trainable parameters for {:?}",
        s.path
    );
    let cfg = TrainConfig {
        lr: s.lr,
        ..TrainConfig::default()
    };
    let mut optim = adamw(&cfg);
    let ids = trainable_ids(&model);
    let device = model.device();
    let mut times = Vec::new();
    let mut losses = Vec::new();
    let mut real = Vec::new();
    let mut computed = Vec::new();
    let mut cpu = Vec::new();
    for (i, chunk) in data.chunks(s.batch).enumerate() {
        if i >= s.warmup + s.repeats {
            break;
        }
        let refs: Vec<&Encoded> = chunk.iter().collect();
        let t0 = Instant::now();
        let c0 = process_cpu_s();
        let batch = Batch::new(&refs, s.padding, pad);
        let t = BatchTensors::new(&batch, &device);
        let (l, grads) = loss_and_gradients(&model, &t, None, 1.0, s.recompute);
        let mut acc = Accumulated::new(&ids);
        for g in grads {
            acc.add(g);
        }
        model = optim.step(s.lr, model, acc.finish(None).0);
        let dt = t0.elapsed().as_secs_f64();
        let dc = process_cpu_s() - c0;
        log(i + 1, l, dt);
        losses.push(l);
        if i >= s.warmup {
            times.push(dt);
            real.push(batch.real_tokens as f64);
            computed.push(batch.computed_tokens() as f64);
            cpu.push(dc);
        }
    }
    let med = median(&times);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let mean_real = real.iter().sum::<f64>() / real.len().max(1) as f64;
    let padded = s.batch * s.max_len;
    Ok(StepTiming {
        path: s.path,
        padding: s.padding,
        trainable_params,
        step_times_s: times,
        losses,
        median_s_per_step: med,
        mean_s_per_step: mean,
        padded_tokens_per_step: padded,
        padded_train_tokens_per_s: padded as f64 / med,
        mean_real_tokens_per_step: mean_real,
        real_train_tokens_per_s: mean_real / med,
        mean_computed_tokens_per_step: computed.iter().sum::<f64>() / computed.len().max(1) as f64,
        median_cpu_s_per_step: median(&cpu),
    })
}

fn burn_lora_params(model: &Llama, cfg: &LoraConfig) -> usize {
    let block = &model.layers[0];
    let per_layer: usize = cfg
        .targets
        .iter()
        .map(|&t| {
            let p = lora::projection(block, t);
            cfg.rank * (p.d_in() + p.d_out())
        })
        .sum();
    per_layer * model.layers.len()
}

/// What `lora_train.py` reports (the fields the comparison uses).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerResult {
    pub median_s_per_step: f64,
    pub mean_s_per_step: f64,
    pub padded_train_tokens_per_s: f64,
    pub real_train_tokens_per_s: f64,
    pub mean_real_tokens_per_step: f64,
    pub trainable_params: usize,
    pub losses: Vec<f64>,
    pub step_times_s: Vec<f64>,
    /// The peer process's peak resident memory (absent from older peer scripts).
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
}

/// Runs `lora_train.py <targets> --repeats N --warmup W` and parses its JSON.
pub fn run_peer(
    peers_dir: &Path,
    targets: &[Target],
    warmup: usize,
    repeats: usize,
) -> anyhow::Result<PeerResult> {
    let python = super::peers::python();
    anyhow::ensure!(
        python.is_file(),
        "{}: the peer venv is missing; run {}/setup.sh (or pass --no-peer)",
        python.display(),
        peers_dir.display()
    );
    let which = if targets == [Target::Q, Target::V] {
        "qv"
    } else if targets == Target::ALL {
        "all"
    } else {
        anyhow::bail!("the PEFT peer measures only q,v or all seven targets");
    };
    let script = peers_dir.join("lora_train.py");
    super::peers::stdout_json(
        Command::new(&python).arg(&script).arg(which).args([
            "--repeats",
            &repeats.to_string(),
            "--warmup",
            &warmup.to_string(),
        ]),
        &script,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
