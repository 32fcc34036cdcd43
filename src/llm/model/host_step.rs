//! One decoding step of one sequence on the CPU over quantized weights, computed on plain
//! vectors instead of Burn's tensor operations.
//!
//! A token of a 135M model is ~200 products of one row by a matrix and ~400 small operations
//! between them (norms, rotation, attention over a few dozen columns, residuals). Through
//! Burn each small operation is a tensor op with its own allocation and dispatch (with the
//! pool's wake-ups between products, ~24% of a token in `perf` on the 2-core EPYC). Here the
//! products are the same integer kernels ([`QMatrix::matmul_group`]) and everything between them
//! is a loop over a few hundred floats: 144–148 → 170–181 tok/s on q4. (Keeping the pool's
//! workers spinning between products as well gained nothing more: docs/results.md.)
//!
//! The step is taken only where it computes what the tensor path computes: a batch of one, one
//! new column, a cache, weights held as blocks on the CPU and no unmerged adapter
//! ([`HostModel::serves`]). The model's tests hold it to the tensor path's logits.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use burn::tensor::{Device, Tensor};

use super::cache::KvCache;
use super::host_kv::HostLayerKv;
use super::layout::StepLayout;
use super::linear::Projection;
use super::norm::RmsNorm;
use super::rope::Rope;
use super::vector_math;
use super::{Block, Llama};
use crate::llm::quant::QMatrix;
use crate::llm::quant::kernels::{self, Isa};
use crate::llm::readback::f32_values;

/// The model's frozen parts as the host step reads them, built once per model on first use
/// (norms and biases copied out of their tensors, the blocks shared).
#[derive(Debug, Clone, Default)]
pub struct HostCell(Arc<OnceLock<Option<Arc<HostModel>>>>);

impl HostCell {
    fn get(&self, model: &Llama) -> Option<Arc<HostModel>> {
        self.0
            .get_or_init(|| HostModel::of(model).map(Arc::new))
            .clone()
    }
}

#[derive(Debug)]
pub struct HostModel {
    embed: Arc<QMatrix>,
    embed_scale: f32,
    layers: Vec<HostLayer>,
    norm: Norm,
    head: Arc<QMatrix>,
    softcap: Option<f32>,
}

#[derive(Debug)]
struct HostLayer {
    input_norm: Norm,
    /// Q, K and V (one group of products), then O.
    qkv: [Weight; 3],
    o: Weight,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    attn_out_norm: Option<Norm>,
    post_attention_norm: Norm,
    /// Gate and up (one group), then down.
    gate_up: [Weight; 2],
    down: Weight,
    mlp_out_norm: Option<Norm>,
    gelu: bool,
    sliding: bool,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f32,
}

#[derive(Debug)]
struct Weight {
    matrix: Arc<QMatrix>,
    bias: Option<Vec<f32>>,
}

#[derive(Debug)]
struct Norm {
    weight: Vec<f32>,
    eps: f32,
}

fn host(t: &Tensor<1>, what: &'static str) -> Option<Vec<f32>> {
    f32_values(t.clone().into_data(), what).ok()
}

impl Norm {
    fn of(n: &RmsNorm) -> Option<Norm> {
        Some(Norm {
            weight: host(&n.weight.val(), "norm")?,
            eps: n.eps as f32,
        })
    }

    /// `x / √(mean(x²) + ε) · w` over each `w.len()`-wide piece of `x`, in place.
    fn apply(&self, x: &mut [f32]) {
        let n = self.weight.len();
        for piece in x.chunks_exact_mut(n) {
            let mean = piece.iter().map(|v| v * v).sum::<f32>() / n as f32;
            let rms = (mean + self.eps).sqrt();
            for (v, w) in piece.iter_mut().zip(&self.weight) {
                *v = *v / rms * w;
            }
        }
    }

    fn applied(&self, x: &[f32]) -> Vec<f32> {
        let mut out = x.to_vec();
        self.apply(&mut out);
        out
    }
}

impl Weight {
    fn of(p: &Projection) -> Option<Weight> {
        let q = p.quant.as_ref().filter(|q| q.on_device.is_none())?;
        let bias = match &p.bias {
            Some(b) => Some(host(&b.val(), "bias")?),
            None => None,
        };
        Some(Weight {
            matrix: q.matrix.clone(),
            bias,
        })
    }
}

/// The products of `x` by each weight of a group (one pass of the pool), with their biases.
fn products<const N: usize>(weights: [&Weight; N], x: &[f32]) -> [Vec<f32>; N] {
    let mats = weights.map(|w| &*w.matrix);
    let mut out: [Vec<f32>; N] = QMatrix::matmul_group(&mats, x, 1)
        .try_into()
        .unwrap_or_else(|_| unreachable!("a product for every matrix"));
    for (y, w) in out.iter_mut().zip(weights) {
        if let Some(b) = &w.bias {
            y.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
    out
}

fn norm_of(n: &Option<RmsNorm>) -> Option<Option<Norm>> {
    match n {
        Some(n) => Norm::of(n).map(Some),
        None => Some(None),
    }
}

impl HostLayer {
    fn of(b: &Block) -> Option<HostLayer> {
        let a = &b.self_attn;
        Some(HostLayer {
            input_norm: Norm::of(&b.input_norm)?,
            qkv: [
                Weight::of(&a.q_proj)?,
                Weight::of(&a.k_proj)?,
                Weight::of(&a.v_proj)?,
            ],
            o: Weight::of(&a.o_proj)?,
            q_norm: norm_of(&a.q_norm)?,
            k_norm: norm_of(&a.k_norm)?,
            attn_out_norm: norm_of(&b.attn_out_norm)?,
            post_attention_norm: Norm::of(&b.post_attention_norm)?,
            gate_up: [Weight::of(&b.mlp.gate_proj)?, Weight::of(&b.mlp.up_proj)?],
            down: Weight::of(&b.mlp.down_proj)?,
            mlp_out_norm: norm_of(&b.mlp_out_norm)?,
            gelu: b.mlp.gelu,
            sliding: b.sliding,
            heads: a.num_heads,
            kv_heads: a.num_kv_heads,
            head_dim: a.head_dim,
            scale: a.scale.unwrap_or(1.0 / (a.head_dim as f64).sqrt()) as f32,
        })
    }
}

impl HostModel {
    /// The host's copy of `model`, or `None` when its weights are not blocks on the CPU.
    fn of(model: &Llama) -> Option<HostModel> {
        let embed = model.embed_quant.clone()?;
        let head = Weight::of(&model.lm_head)?;
        if head.bias.is_some() {
            return None;
        }
        Some(HostModel {
            embed,
            embed_scale: model.embed_scale as f32,
            layers: model
                .layers
                .iter()
                .map(HostLayer::of)
                .collect::<Option<_>>()?,
            norm: Norm::of(&model.norm)?,
            head: head.matrix,
            softcap: model.logit_softcap.map(|c| c as f32),
        })
    }

    /// The host model for a step of `layout`, when the step is one it takes: one row, one
    /// column, on the CPU without autodiff, every projection's weight in blocks and no adapter
    /// that the tensor path would add.
    pub fn serves(model: &Llama, layout: &StepLayout) -> Option<Arc<HostModel>> {
        if layout.batch() != 1 || layout.len != 1 {
            return None;
        }
        let device = model.device();
        if device.is_autodiff() || device.inner() != Device::flex() {
            return None;
        }
        let adapters = model
            .layers
            .iter()
            .flat_map(Block::projections)
            .chain([&model.lm_head])
            .any(|p| p.adapter.as_ref().is_some_and(|a| !a.merged));
        if adapters {
            return None;
        }
        model.host.get(model)
    }

    /// Logits for `token` at column `layout.past` of row 0, its keys and values appended to
    /// `cache` (and its length advanced), as [`Llama::forward_last`] computes them.
    pub fn step(
        &self,
        model: &Llama,
        token: u32,
        layout: &StepLayout,
        cache: &mut KvCache,
    ) -> Vec<f32> {
        let cur = layout.past;
        let start = layout.start.first().copied().unwrap_or(0);
        let position = cur.saturating_sub(start);
        let global = rope_row(&model.rope, position);
        let local = model.rope_local.as_ref().map(|r| rope_row(r, position));
        cache.reserve(1);
        cache.host_sync();

        let token = (token as usize).min(self.embed.rows().saturating_sub(1));
        let mut x = vec![0.0f32; self.embed.cols()];
        self.embed.dequantize_row(token, &mut x);
        if self.embed_scale != 1.0 {
            x.iter_mut().for_each(|v| *v *= self.embed_scale);
        }
        for (i, l) in self.layers.iter().enumerate() {
            let h = l.input_norm.applied(&x);
            let [mut q, mut k, v] = products([&l.qkv[0], &l.qkv[1], &l.qkv[2]], &h);
            if let Some(n) = &l.q_norm {
                n.apply(&mut q);
            }
            if let Some(n) = &l.k_norm {
                n.apply(&mut k);
            }
            let (cos, sin) = match (&local, l.sliding) {
                (Some(r), true) => (&r.0, &r.1),
                _ => (&global.0, &global.1),
            };
            rotate(&mut q, cos, sin);
            rotate(&mut k, cos, sin);
            let kv = cache.host_push(i, &k, &v);
            // Columns this query sees: its own, and the row's from its start (the last
            // `window` of them in a sliding layer), as `StepLayout::mask` and `Llama::local` say.
            let mut first = start.min(cur);
            if l.sliding && model.window > 0 {
                first = first.max((cur + 1).saturating_sub(model.window));
            }
            let attn = attend(l, &q, kv, first..cur + 1);
            let [mut out] = products([&l.o], &attn);
            if let Some(n) = &l.attn_out_norm {
                n.apply(&mut out);
            }
            x.iter_mut().zip(&out).for_each(|(x, o)| *x += o);

            let h = l.post_attention_norm.applied(&x);
            let [mut act, up] = products([&l.gate_up[0], &l.gate_up[1]], &h);
            vector_math::gated_in_place(&mut act, &up, l.gelu);
            let [mut out] = products([&l.down], &act);
            if let Some(n) = &l.mlp_out_norm {
                n.apply(&mut out);
            }
            x.iter_mut().zip(&out).for_each(|(x, o)| *x += o);
        }
        cache.advance(1);
        self.norm.apply(&mut x);
        let [mut logits] = QMatrix::matmul_group(&[&*self.head], &x, 1)
            .try_into()
            .unwrap_or_else(|_| unreachable!("one matrix, one product"));
        if let Some(c) = self.softcap {
            logits.iter_mut().for_each(|v| *v = (*v / c).tanh() * c);
        }
        logits
    }
}

/// The rotation table's row for `position`: cos and sin of each of `head_dim / 2` angles.
fn rope_row(rope: &Rope, position: usize) -> (Vec<f32>, Vec<f32>) {
    let row = |t: &Tensor<2>| {
        let [n, half] = t.dims();
        let p = position.min(n.saturating_sub(1));
        f32_values(t.clone().slice([p..p + 1, 0..half]).into_data(), "rope")
            .unwrap_or_else(|e| unreachable!("the rotary tables are f32: {e}"))
    };
    (row(&rope.cos), row(&rope.sin))
}

/// "Rotate half" over each head of `x` (`RopeAngles::apply`).
fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in x.chunks_exact_mut(2 * half) {
        let (x1, x2) = head.split_at_mut(half);
        for i in 0..half {
            let (a, b) = (x1[i], x2[i]);
            x1[i] = a * cos[i] - b * sin[i];
            x2[i] = b * cos[i] + a * sin[i];
        }
    }
}

/// Each query head's softmax-weighted sum of its K/V head's values over `columns` of `kv`.
/// Heads go to the pool's threads once the columns are many (at a thousand columns the cache is
/// ~46 MB a token, a third of the weights' bytes).
fn attend(l: &HostLayer, q: &[f32], kv: &HostLayerKv, columns: std::ops::Range<usize>) -> Vec<f32> {
    let d = l.head_dim;
    let group = (l.heads / l.kv_heads.max(1)).max(1);
    let mut out = vec![0.0f32; l.heads * d];
    let isa = kernels::isa();
    let head = |(h, out): (usize, &mut [f32])| {
        let g = h / group;
        let q = &q[h * d..(h + 1) * d];
        let keys = |i: usize| &kv.key_row(g, i)[columns.clone()];
        let values = |c: usize| kv.value(columns.start + c, g);
        match isa {
            // SAFETY: `isa()` found these instruction sets on this CPU.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { attend_head_avx512(q, l.scale, keys, values, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { attend_head_avx2(q, l.scale, keys, values, out) },
            _ => attend_head(q, l.scale, keys, values, out),
        }
    };
    if columns.len() * l.heads >= PARALLEL_ATTENTION {
        out.par_chunks_mut(d.max(1)).enumerate().for_each(head);
    } else {
        out.chunks_mut(d.max(1)).enumerate().for_each(head);
    }
    out
}

/// One query head `q`: scores as the sum over dimensions of each key row (`keys(i)`, every
/// column's key `i`) scaled by the query's `i`, then the softmax-weighted sum of `values(c)`
/// into `out`. Element-wise loops only, which the compiler widens to the vector width it is
/// allowed (the wrappers below allow AVX-512 or AVX2; the build's baseline is SSE2).
#[inline(always)]
fn attend_head<'a>(
    q: &[f32],
    scale: f32,
    keys: impl Fn(usize) -> &'a [f32],
    values: impl Fn(usize) -> &'a [f32],
    out: &mut [f32],
) {
    let n = keys(0).len();
    let mut scores = vec![0.0f32; n];
    for (i, &qv) in q.iter().enumerate() {
        let qv = qv * scale;
        scores
            .iter_mut()
            .zip(keys(i))
            .for_each(|(s, k)| *s += qv * k);
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = vector_math::exp_shifted(&mut scores, max);
    for (c, s) in scores.iter().enumerate() {
        let p = s / sum;
        out.iter_mut().zip(values(c)).for_each(|(o, v)| *o += p * v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attend_head_avx512<'a>(
    q: &[f32],
    scale: f32,
    keys: impl Fn(usize) -> &'a [f32],
    values: impl Fn(usize) -> &'a [f32],
    out: &mut [f32],
) {
    attend_head(q, scale, keys, values, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn attend_head_avx2<'a>(
    q: &[f32],
    scale: f32,
    keys: impl Fn(usize) -> &'a [f32],
    values: impl Fn(usize) -> &'a [f32],
    out: &mut [f32],
) {
    attend_head(q, scale, keys, values, out)
}

/// Columns × heads past which a layer's attention is split across threads: below it the
/// pool's fork-join costs more than the work (~9 heads × 64 columns on SmolLM2).
const PARALLEL_ATTENTION: usize = 576;
