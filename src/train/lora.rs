//! LoRA adapters on a [`Llama`]: attach, detach, merge into the base weights and unmerge, and
//! count what is trainable.
//!
//! An adapter is a [`LowRank`] on a [`Projection`]: the projection computes
//! `x·W + s·dropout(x)·A·B` with `A` `[in, r]`, `B` `[r, out]` and `s = alpha / r` on the
//! low-rank path (never materialising `W + s·A·B`, see `seedforge bench train --path` for the
//! measurement against Burn's `apply_lora`). The base weight `W` stays frozen. Initialisation is
//! PEFT's default: `A` Kaiming-uniform (`U(-1/√in, 1/√in)`), `B` zero, so a freshly attached
//! adapter leaves the model's output unchanged.

use std::fmt;
use std::str::FromStr;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::llm::model::Llama;
use crate::llm::model::block::Block;
use crate::llm::model::linear::{DropoutNoise, LowRank, Projection};
use crate::util::rng::Rng;

/// A projection of a Llama block that can carry an adapter, named as transformers/PEFT name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    #[serde(rename = "q_proj")]
    Q,
    #[serde(rename = "k_proj")]
    K,
    #[serde(rename = "v_proj")]
    V,
    #[serde(rename = "o_proj")]
    O,
    #[serde(rename = "gate_proj")]
    Gate,
    #[serde(rename = "up_proj")]
    Up,
    #[serde(rename = "down_proj")]
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    /// The module name in transformers' Llama (`q_proj`, …, `down_proj`).
    pub fn module_name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The submodule of a decoder layer holding it (`self_attn` or `mlp`).
    pub fn parent(self) -> &'static str {
        match self {
            Target::Q | Target::K | Target::V | Target::O => "self_attn",
            Target::Gate | Target::Up | Target::Down => "mlp",
        }
    }

    fn index(self) -> u64 {
        Target::ALL.iter().position(|&t| t == self).unwrap_or(0) as u64
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.module_name())
    }
}

impl FromStr for Target {
    type Err = String;
    /// `q`, `q_proj`, … `down`, `down_proj`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let short = s.strip_suffix("_proj").unwrap_or(s);
        Ok(match short {
            "q" => Target::Q,
            "k" => Target::K,
            "v" => Target::V,
            "o" => Target::O,
            "gate" => Target::Gate,
            "up" => Target::Up,
            "down" => Target::Down,
            _ => {
                return Err(format!(
                    "unknown LoRA target '{s}' (q, k, v, o, gate, up, down, or with _proj)"
                ));
            }
        })
    }
}

/// Parses `q,v` / `q_proj,v_proj` / `all` into a sorted, de-duplicated target list.
pub fn parse_targets(s: &str) -> Result<Vec<Target>, String> {
    if s.trim() == "all" {
        return Ok(Target::ALL.to_vec());
    }
    let mut out = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Target::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err("no LoRA targets given".into());
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Vec<Target>,
}

impl Default for LoraConfig {
    /// r = 8, α = 16, dropout 0.05 on q and v (the practitioners' default under 100 examples,
    /// and the PEFT peer's setting).
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: vec![Target::Q, Target::V],
        }
    }
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.rank == 0 {
            return Err("LoRA rank must be at least 1".into());
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return Err(format!("LoRA alpha must be positive, not {}", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "LoRA dropout must be in [0, 1), not {}",
                self.dropout
            ));
        }
        if self.targets.is_empty() {
            return Err("LoRA needs at least one target projection".into());
        }
        Ok(())
    }
}

/// What adapters a model carries (read back from the model itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraInfo {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Vec<Target>,
    /// Layers that carry at least one adapter.
    pub layers: usize,
    pub trainable_params: usize,
    pub merged: bool,
}

pub fn projection(block: &Block, t: Target) -> &Projection {
    match t {
        Target::Q => &block.self_attn.q_proj,
        Target::K => &block.self_attn.k_proj,
        Target::V => &block.self_attn.v_proj,
        Target::O => &block.self_attn.o_proj,
        Target::Gate => &block.mlp.gate_proj,
        Target::Up => &block.mlp.up_proj,
        Target::Down => &block.mlp.down_proj,
    }
}

pub fn projection_mut(block: &mut Block, t: Target) -> &mut Projection {
    match t {
        Target::Q => &mut block.self_attn.q_proj,
        Target::K => &mut block.self_attn.k_proj,
        Target::V => &mut block.self_attn.v_proj,
        Target::O => &mut block.self_attn.o_proj,
        Target::Gate => &mut block.mlp.gate_proj,
        Target::Up => &mut block.mlp.up_proj,
        Target::Down => &mut block.mlp.down_proj,
    }
}

/// A new adapter with the given factors (row-major `a` `[in, r]`, `b` `[r, out]`); its dropout
/// masks come from `noise_seed`.
pub fn low_rank(
    proj: &Projection,
    rank: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    scale: f64,
    dropout: f64,
    noise_seed: u64,
) -> LowRank {
    let device = proj.device();
    let (d_in, d_out) = (proj.d_in(), proj.d_out());
    LowRank {
        a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [d_in, rank]), &device)),
        b: Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [rank, d_out]),
            &device,
        )),
        scale,
        dropout,
        merged: false,
        noise: DropoutNoise::new(noise_seed),
    }
}

/// Attaches fresh adapters to the configured projections of every layer, replacing any there.
/// `A` is drawn from `seed` (one stream per layer and target, so the values do not depend on
/// which other targets are chosen), `B` is zero.
pub fn attach(model: &mut Llama, cfg: &LoraConfig, seed: u64) -> Result<(), String> {
    cfg.validate()?;
    detach(model);
    for (i, block) in model.layers.iter_mut().enumerate() {
        for &t in &cfg.targets {
            let proj = projection_mut(block, t);
            let (d_in, d_out) = (proj.d_in(), proj.d_out());
            let mut rng = Rng::for_item(seed, (i as u64) * 16 + t.index());
            // kaiming_uniform_(a=√5) on PEFT's [r, in] lora_A: bound = 1/√in.
            let bound = 1.0 / (d_in as f64).sqrt();
            let a = (0..d_in * cfg.rank)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                .collect();
            let b = vec![0.0f32; cfg.rank * d_out];
            let noise_seed = rng.next_u64();
            proj.adapter = Some(low_rank(
                proj,
                cfg.rank,
                a,
                b,
                cfg.scale(),
                cfg.dropout,
                noise_seed,
            ));
        }
    }
    Ok(())
}

/// Removes every adapter, first taking merged ones back out of the base weights.
pub fn detach(model: &mut Llama) {
    unmerge(model);
    for block in &mut model.layers {
        for t in Target::ALL {
            projection_mut(block, t).adapter = None;
        }
    }
}

/// `W ← W + sign·s·A·B`, keeping the weight frozen. Returns whether it folded: a weight held
/// in blocks is left alone (its adapter keeps running on the low-rank path, which gives the
/// same outputs without rounding the sum into blocks).
fn fold(proj: &mut Projection, sign: f64) -> bool {
    let (Some(lr), Some(weight)) = (&proj.adapter, &proj.weight) else {
        return false;
    };
    let delta = lr.a.val().matmul(lr.b.val()).mul_scalar(lr.scale * sign);
    let w = weight.val() + delta;
    proj.weight = Some(Param::from_tensor(w).set_require_grad(false));
    true
}

/// Adds every adapter into its base weight (`W + s·A·B`), so inference runs at the base model's
/// cost. The adapters stay attached (marked merged) and can be saved or [`unmerge`]d.
pub fn merge(model: &mut Llama) {
    for block in &mut model.layers {
        for t in Target::ALL {
            let proj = projection_mut(block, t);
            if proj.adapter.as_ref().is_some_and(|lr| !lr.merged)
                && fold(proj, 1.0)
                && let Some(lr) = proj.adapter.as_mut()
            {
                lr.merged = true;
            }
        }
    }
}

/// Takes merged adapters back out of the base weights (`W − s·A·B`).
pub fn unmerge(model: &mut Llama) {
    for block in &mut model.layers {
        for t in Target::ALL {
            let proj = projection_mut(block, t);
            if proj.adapter.as_ref().is_some_and(|lr| lr.merged)
                && fold(proj, -1.0)
                && let Some(lr) = proj.adapter.as_mut()
            {
                lr.merged = false;
            }
        }
    }
}

/// Every adapter of the model, layer by layer in target order.
pub fn adapters(model: &Llama) -> Vec<(usize, Target, &LowRank)> {
    let mut out = Vec::new();
    for (i, block) in model.layers.iter().enumerate() {
        for t in Target::ALL {
            if let Some(lr) = &projection(block, t).adapter {
                out.push((i, t, lr));
            }
        }
    }
    out
}

/// Number of adapter parameters (`A` and `B` of every adapter): what the optimizer trains.
pub fn trainable_params(model: &Llama) -> usize {
    adapters(model)
        .iter()
        .map(|(_, _, lr)| {
            let [i, r] = lr.a.shape().dims::<2>();
            let [_, o] = lr.b.shape().dims::<2>();
            i * r + r * o
        })
        .sum()
}

/// A summary of the adapters on `model`, or `None` when it has none.
pub fn info(model: &Llama) -> Option<LoraInfo> {
    let list = adapters(model);
    let (_, _, first) = list.first()?;
    let rank = first.a.shape().dims::<2>()[1];
    let mut targets: Vec<Target> = list.iter().map(|(_, t, _)| *t).collect();
    targets.sort();
    targets.dedup();
    let mut layers: Vec<usize> = list.iter().map(|(i, _, _)| *i).collect();
    layers.dedup();
    Some(LoraInfo {
        rank,
        alpha: first.scale * rank as f64,
        dropout: first.dropout,
        targets,
        layers: layers.len(),
        trainable_params: trainable_params(model),
        merged: list.iter().any(|(_, _, lr)| lr.merged),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    use crate::llm::model::tests::tiny_model;

    #[test]
    fn targets_parse_in_both_spellings() {
        assert_eq!(parse_targets("v,q").unwrap(), vec![Target::Q, Target::V]);
        assert_eq!(
            parse_targets("q_proj, v_proj,q").unwrap(),
            vec![Target::Q, Target::V]
        );
        assert_eq!(parse_targets("all").unwrap().len(), 7);
        assert!(parse_targets("x").unwrap_err().contains("'x'"));
        assert!(parse_targets("").is_err());
        assert_eq!(
            serde_json::to_string(&Target::Gate).unwrap(),
            "\"gate_proj\""
        );
    }

    #[test]
    fn attach_counts_and_detach_removes() {
        let device = Device::flex();
        let mut m = tiny_model(&device);
        // tiny: d 32, q 32, kv 16, ff 48, 2 layers.
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: Target::ALL.to_vec(),
        };
        attach(&mut m, &cfg, 1).unwrap();
        let per_layer = 4 * (32 + 32) // q
            + 4 * (32 + 16) * 2 // k, v
            + 4 * (32 + 32) // o
            + 4 * (32 + 48) * 2 // gate, up
            + 4 * (48 + 32); // down
        assert_eq!(trainable_params(&m), 2 * per_layer);
        let i = info(&m).unwrap();
        assert_eq!((i.rank, i.alpha, i.layers), (4, 8.0, 2));
        detach(&mut m);
        assert_eq!(trainable_params(&m), 0);
        assert!(info(&m).is_none());
    }

    #[test]
    fn init_is_seeded_and_b_is_zero() {
        let device = Device::flex();
        let cfg = LoraConfig::default();
        let values = |seed| {
            let mut m = tiny_model(&device);
            attach(&mut m, &cfg, seed).unwrap();
            let (_, _, lr) = adapters(&m)[0];
            let a = lr.a.val().into_data().try_into_vec::<f32>().unwrap();
            let b = lr.b.val().into_data().try_into_vec::<f32>().unwrap();
            (a, b)
        };
        let (a1, b1) = values(5);
        let (a2, _) = values(5);
        let (a3, _) = values(6);
        assert_eq!(a1, a2);
        assert_ne!(a1, a3);
        assert!(b1.iter().all(|&x| x == 0.0));
        let bound = 1.0 / (32f32).sqrt();
        assert!(a1.iter().all(|x| x.abs() <= bound));
        assert!(a1.iter().any(|x| x.abs() > bound / 2.0));
    }
}
