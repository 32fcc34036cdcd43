//! The Llama-family transformer in Burn: RMSNorm, RoPE, grouped-query attention, SwiGLU, tied
//! or separate output head, a KV cache, and left-padded batches of different lengths; what
//! Qwen and Gemma 3 do differently is switched on by their config (`llm::config::Architecture`).

pub mod attention;
pub mod block;
pub mod cache;
pub mod cpu_attention;
pub mod cpu_buffer;
pub mod gate;
pub mod host_kv;
pub mod host_step;
pub mod layout;
pub mod linear;
pub mod norm;
pub mod rope;
pub mod tensors;
pub mod vector_math;

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use self::attention::Attention;
use self::block::{Block, Mlp};
use self::linear::Projection;
use self::norm::RmsNorm;
use self::rope::{Rope, RopeAngles};
use crate::llm::config::ModelConfig;
use crate::llm::quant::{QMatrix, WeightMode};
use crate::llm::weights::{WeightError, WeightSource};

pub use self::cache::KvCache;
pub use self::layout::StepLayout;

#[derive(Module, Debug)]
pub struct Llama {
    /// `[vocab, d]`, frozen; `None` when the weights are held quantized.
    pub embed_tokens: Option<Param<Tensor<2>>>,
    /// The embedding as blocks `[vocab, d]` (the output head's own when the file ties them).
    #[module(skip)]
    pub embed_quant: Option<Arc<QMatrix>>,
    /// The vocabulary's size (the embedding's rows).
    pub vocab: usize,
    pub layers: Vec<Block>,
    pub norm: RmsNorm,
    /// `[d, vocab]`; a transposed copy of the embedding when the file ties them.
    pub lm_head: Projection,
    pub rope: Rope,
    /// The sliding-window layers' rotation, when their base differs (Gemma 3).
    pub rope_local: Option<Rope>,
    /// How many positions a sliding-window layer sees (0: no such layers).
    pub window: usize,
    /// What the embedding is multiplied by (Gemma: √d; 1 elsewhere).
    pub embed_scale: f64,
    /// `c·tanh(logits / c)`, when the config asks for it.
    pub logit_softcap: Option<f64>,
    /// The frozen parts as the host decoding step reads them, made on its first step.
    #[module(skip)]
    pub host: host_step::HostCell,
}

/// The rotation and mask of one forward pass, for each kind of layer (see
/// [`Llama::layer_context`]).
pub struct LayerContext {
    rope: RopeAngles,
    mask: Tensor<4, Bool>,
    local: Option<(RopeAngles, Tensor<4, Bool>)>,
}

impl LayerContext {
    /// The masks widened to `columns` with hidden columns: a cache hands the attention its
    /// whole tensors, filled or not ([`KvCache::append`]), once a step rather than a layer.
    fn widened(mut self, columns: usize) -> LayerContext {
        let widen = |mask: Tensor<4, Bool>| {
            let [b, h, sq, sk] = mask.dims();
            if columns <= sk {
                return mask;
            }
            let spare = Tensor::<4, Bool>::full([b, h, sq, columns - sk], true, &mask.device());
            Tensor::cat(vec![mask, spare], 3)
        };
        self.mask = widen(self.mask);
        self.local = self.local.map(|(r, m)| (r, widen(m)));
        self
    }

    /// The rotation and mask `block` is called with.
    pub fn of(&self, block: &Block) -> (&RopeAngles, Tensor<4, Bool>) {
        match &self.local {
            Some((r, m)) if block.sliding => (r, m.clone()),
            _ => (&self.rope, self.mask.clone()),
        }
    }
}

impl Llama {
    /// Builds the model from `source`, checking every tensor's shape against `config`.
    pub fn load(
        config: &ModelConfig,
        source: &dyn WeightSource,
        device: &Device,
    ) -> Result<Llama, WeightError> {
        Llama::load_as(config, source, device, WeightMode::F32)
    }

    /// [`Llama::load`] with the projections, the embedding and the output head held as `mode`
    /// says (norms, biases and adapters stay f32).
    pub fn load_as(
        config: &ModelConfig,
        source: &dyn WeightSource,
        device: &Device,
        mode: WeightMode,
    ) -> Result<Llama, WeightError> {
        let d = config.hidden_size;
        let q_dim = config.num_heads * config.head_dim;
        let kv_dim = config.num_kv_heads * config.head_dim;
        let ff = config.intermediate_size;
        let vocab = config.vocab_size;

        let matrix = |name: &str, rows: usize, cols: usize| -> Result<Vec<f32>, WeightError> {
            let t = source.load(name)?;
            if t.shape != [rows, cols] {
                return Err(WeightError::shape(name, &[rows, cols], &t.shape));
            }
            Ok(t.data)
        };
        let vector = |name: &str, n: usize| -> Result<Tensor<1>, WeightError> {
            let t = source.load(name)?;
            if t.shape != [n] {
                return Err(WeightError::shape(name, &[n], &t.shape));
            }
            Ok(Tensor::from_data(TensorData::new(t.data, [n]), device))
        };
        // Files store projections as [out, in]; Burn multiplies x·W with W as [in, out].
        let blocks_as = |mode: WeightMode, name: &str, data: &[f32], out: usize, inp: usize| {
            QMatrix::quantize(mode, data, out, inp).map_err(|why| WeightError::Invalid {
                name: name.to_string(),
                reason: format!("cannot be held as {mode}: {why}"),
            })
        };
        let blocks = |name: &str, data: &[f32], out: usize, inp: usize| {
            blocks_as(mode, name, data, out, inp)
        };
        // The embedding, which is also the output head when tied, stays in 8-bit blocks under
        // q4 as llama.cpp's Q4 files keep it: at 4 bits the head's rounding moves every logit.
        // Under f16 it is f16 like everything else.
        let head_mode = if mode == WeightMode::F16 {
            WeightMode::F16
        } else {
            WeightMode::Q8_0
        };
        let projection = |name: &str, out: usize, inp: usize| -> Result<Projection, WeightError> {
            let data = matrix(name, out, inp)?;
            if mode.is_quantized() {
                let m = blocks(name, &data, out, inp)?;
                return Ok(Projection::quantized(Arc::new(m), device));
            }
            let t = transpose(&data, out, inp);
            Ok(Projection::new(Tensor::from_data(
                TensorData::new(t, [inp, out]),
                device,
            )))
        };
        // Gemma multiplies by `1 + w`; llama.cpp's converter stores `1 + w` in the GGUF file,
        // transformers' checkpoints store `w`.
        let norm_shift = config.arch.gemma() && !source.norms_shifted();
        let norm_of = |name: &str, n: usize| -> Result<RmsNorm, WeightError> {
            let w = vector(name, n)?;
            let w = if norm_shift { w.add_scalar(1.0) } else { w };
            Ok(RmsNorm {
                weight: Param::from_tensor(w).set_require_grad(false),
                eps: config.rms_norm_eps as f64,
            })
        };
        let norm = |name: &str| norm_of(name, d);
        let gemma = config.arch.gemma();
        let gemma_norm = |name: String| -> Result<Option<RmsNorm>, WeightError> {
            if gemma {
                norm(&name).map(Some)
            } else {
                Ok(None)
            }
        };
        let scale = config
            .query_pre_attn_scalar
            .map(|s| 1.0 / (s as f64).sqrt());
        // Q, K and V with their biases when the family has them.
        let qkv = |p: &str, name: &str, out: usize| -> Result<Projection, WeightError> {
            let proj = projection(&format!("{p}.self_attn.{name}.weight"), out, d)?;
            if !config.attention_bias {
                return Ok(proj);
            }
            Ok(proj.with_bias(vector(&format!("{p}.self_attn.{name}.bias"), out)?))
        };
        let head_norm = |p: &str, name: &str| -> Result<Option<RmsNorm>, WeightError> {
            if !config.arch.qk_norm() {
                return Ok(None);
            }
            norm_of(&format!("{p}.self_attn.{name}.weight"), config.head_dim).map(Some)
        };

        let tied = config.tie_word_embeddings || !source.has("lm_head.weight");
        // The vocabulary-sized matrices are encoded 4096 rows at a time, never whole as f32.
        let vocab_blocks = |name: &str| -> Result<Arc<QMatrix>, WeightError> {
            let rows = |r: std::ops::Range<usize>| -> Result<Vec<f32>, WeightError> {
                let t = source.load_rows(name, r.clone())?;
                if t.shape != [r.len(), d] {
                    return Err(WeightError::shape(name, &[r.len(), d], &t.shape));
                }
                Ok(t.data)
            };
            let invalid = |why: String| WeightError::Invalid {
                name: name.to_string(),
                reason: format!("cannot be held as {head_mode}: {why}"),
            };
            QMatrix::quantize_in_chunks(head_mode, vocab, d, 4096, rows, invalid).map(Arc::new)
        };
        let (embed_tokens, embed_quant, lm_head) = if mode.is_quantized() {
            let e = vocab_blocks("model.embed_tokens.weight")?;
            let head = if tied {
                e.clone()
            } else {
                vocab_blocks("lm_head.weight")?
            };
            (None, Some(e), Projection::quantized(head, device))
        } else {
            let embed = matrix("model.embed_tokens.weight", vocab, d)?;
            let head = if tied {
                transpose(&embed, vocab, d)
            } else {
                transpose(&matrix("lm_head.weight", vocab, d)?, vocab, d)
            };
            let e = Param::from_tensor(Tensor::from_data(
                TensorData::new(embed, [vocab, d]),
                device,
            ))
            .set_require_grad(false);
            let head =
                Projection::new(Tensor::from_data(TensorData::new(head, [d, vocab]), device));
            (Some(e), None, head)
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("model.layers.{i}");
            // Gemma's `post_attention_layernorm` normalises the attention's output; its norm
            // before the MLP is `pre_feedforward_layernorm`.
            let (attn_out, pre_mlp) = if gemma {
                ("post_attention_layernorm", "pre_feedforward_layernorm")
            } else {
                ("", "post_attention_layernorm")
            };
            layers.push(Block {
                input_norm: norm(&format!("{p}.input_layernorm.weight"))?,
                attn_out_norm: gemma_norm(format!("{p}.{attn_out}.weight"))?,
                mlp_out_norm: gemma_norm(format!("{p}.post_feedforward_layernorm.weight"))?,
                sliding: config.sliding_layers.contains(&i),
                self_attn: Attention {
                    q_proj: qkv(&p, "q_proj", q_dim)?,
                    k_proj: qkv(&p, "k_proj", kv_dim)?,
                    v_proj: qkv(&p, "v_proj", kv_dim)?,
                    o_proj: projection(&format!("{p}.self_attn.o_proj.weight"), d, q_dim)?,
                    q_norm: head_norm(&p, "q_norm")?,
                    k_norm: head_norm(&p, "k_norm")?,
                    num_heads: config.num_heads,
                    num_kv_heads: config.num_kv_heads,
                    head_dim: config.head_dim,
                    scale,
                },
                post_attention_norm: norm(&format!("{p}.{pre_mlp}.weight"))?,
                mlp: Mlp {
                    gate_proj: projection(&format!("{p}.mlp.gate_proj.weight"), ff, d)?,
                    up_proj: projection(&format!("{p}.mlp.up_proj.weight"), ff, d)?,
                    down_proj: projection(&format!("{p}.mlp.down_proj.weight"), d, ff)?,
                    gelu: gemma,
                },
            });
        }
        Ok(Llama {
            embed_tokens,
            embed_quant,
            vocab,
            layers,
            norm: norm("model.norm.weight")?,
            lm_head,
            rope: Rope::new(
                config.head_dim,
                config.rope_theta,
                config.rope_freq_factors.as_deref(),
                config.max_position_embeddings,
                device,
            ),
            rope_local: config
                .rope_local_theta
                .filter(|t| !config.sliding_layers.is_empty() && *t != config.rope_theta)
                .map(|t| {
                    Rope::new(
                        config.head_dim,
                        t,
                        None,
                        config.max_position_embeddings,
                        device,
                    )
                }),
            window: config.sliding_window.unwrap_or(0),
            // transformers rounds √d to the embedding's dtype; in f32 that is √d itself.
            embed_scale: if gemma { (d as f32).sqrt() as f64 } else { 1.0 },
            logit_softcap: config.final_logit_softcapping.map(f64::from),
            host: host_step::HostCell::default(),
        })
    }

    /// The embeddings of `tokens` `[B, S]` → `[B, S, d]`, scaled as the family scales them: the
    /// first layer's input.
    pub fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let x = match (&self.embed_tokens, &self.embed_quant) {
            (Some(e), _) => embedding(e.val(), tokens),
            (None, Some(q)) => {
                let device = tokens.device();
                let [b, s] = tokens.dims();
                let ids: Vec<usize> = tokens
                    .into_data()
                    .convert::<i64>()
                    .try_into_vec::<i64>()
                    .unwrap_or_else(|e| unreachable!("converted to i64 just above: {e:?}"))
                    .into_iter()
                    .map(|t| (t.max(0) as usize).min(q.rows().saturating_sub(1)))
                    .collect();
                let rows = q.gather(&ids);
                Tensor::from_data(TensorData::new(rows, [b, s, q.cols()]), &device)
            }
            (None, None) => unreachable!("the embedding is held one way or the other"),
        };
        if self.embed_scale == 1.0 {
            x
        } else {
            x.mul_scalar(self.embed_scale)
        }
    }

    /// The rotation and mask a sliding-window layer uses, given the global layers' ones: its
    /// own rotary base, and the mask with every column `window` or more before the query
    /// hidden as well. `None` when the model has no such layers.
    fn local(
        &self,
        positions: &Tensor<2, Int>,
        mask: &Tensor<4, Bool>,
        rope: &RopeAngles,
    ) -> Option<(RopeAngles, Tensor<4, Bool>)> {
        if self.window == 0 || !self.layers.iter().any(|b| b.sliding) {
            return None;
        }
        let angles = match &self.rope_local {
            Some(r) => r.at(positions.clone()),
            None => rope.clone(),
        };
        let [b, h, sq, sk] = mask.dims();
        // Queries are the last `sq` of the `sk` columns (a cache holds the ones before).
        let past = sk - sq;
        let far: Vec<bool> = (0..sq)
            .flat_map(|q| (0..sk).map(move |c| past + q >= c + self.window))
            .collect();
        let far = Tensor::<2, Bool>::from_data(TensorData::new(far, [sq, sk]), &mask.device())
            .unsqueeze::<4>()
            .expand([b, h, sq, sk]);
        Some((angles, mask.clone().bool_or(far)))
    }

    /// What every layer is called with besides its input: the rotation and the mask for
    /// `positions` and `mask`, and the sliding-window layers' own when the model has them.
    pub fn layer_context(&self, positions: Tensor<2, Int>, mask: Tensor<4, Bool>) -> LayerContext {
        let rope = self.rope.at(positions.clone());
        let local = self.local(&positions, &mask, &rope);
        LayerContext { rope, mask, local }
    }

    /// The layers in turn over the embedded `x`, each with its rotation and mask.
    fn blocks(
        &self,
        mut x: Tensor<3>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let mut context = self.layer_context(positions, mask);
        if let Some(c) = cache.as_deref() {
            context = context.widened(c.capacity());
        }
        for (i, block) in self.layers.iter().enumerate() {
            let (r, m) = context.of(block);
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            x = block.forward(x, r, m, layer_cache);
        }
        x
    }

    /// The final norm over the last layer's output (what [`Llama::logits`] reads).
    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.norm.forward(x)
    }

    pub fn device(&self) -> Device {
        self.lm_head.device()
    }

    /// How the frozen weights are held (the projections'; the embedding stays 8-bit under q4).
    pub fn weight_mode(&self) -> WeightMode {
        match &self
            .layers
            .first()
            .and_then(|b| b.mlp.down_proj.quant.as_ref())
        {
            Some(q) => q.matrix.mode(),
            None if self.embed_quant.is_some() => WeightMode::Q8_0,
            None => WeightMode::F32,
        }
    }

    /// Positions the rotary table covers (the model's context length).
    pub fn max_positions(&self) -> usize {
        self.rope.max_positions()
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// Hidden states after the final norm, `[B, S, d]`, for `tokens` `[B, S]` laid out as
    /// `layout` says. With a cache, the new keys/values are appended and its length advanced.
    pub fn forward_hidden(
        &self,
        tokens: Tensor<2, Int>,
        layout: &StepLayout,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        if self.weight_mode().is_quantized() {
            on_pool(|| self.hidden(tokens, layout, cache))
        } else {
            self.hidden(tokens, layout, cache)
        }
    }

    fn hidden(
        &self,
        tokens: Tensor<2, Int>,
        layout: &StepLayout,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let device = tokens.device();
        let positions = layout.positions_tensor(&device);
        let mask = layout.mask_tensor(&device);
        if let Some(c) = cache.as_deref_mut() {
            debug_assert_eq!(c.len(), layout.past, "cache length and layout disagree");
            c.reserve(layout.len);
        }
        let x = self.embed(tokens);
        let x = self.blocks(x, positions, mask, cache.as_deref_mut());
        if let Some(c) = cache {
            c.advance(layout.len);
        }
        self.norm.forward(x)
    }

    /// Hidden states after the final norm for explicit RoPE `positions` `[B, S]` and attention
    /// `mask` `[B, 1, S, S]` (`true` = hidden), without a cache: for layouts [`StepLayout`] does
    /// not describe, such as several sequences packed into one row for training.
    pub fn forward_hidden_masked(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
    ) -> Tensor<3> {
        let x = self.embed(tokens);
        let x = self.blocks(x, positions, mask, None);
        self.norm.forward(x)
    }

    /// Next-token logits for hidden states `[B, S, d]` → `[B, S, vocab]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.capped(self.lm_head.forward(hidden))
    }

    /// Logits for rows of hidden states `[N, d]` → `[N, vocab]` (training's gathered rows).
    pub fn row_logits(&self, rows: Tensor<2>) -> Tensor<2> {
        self.capped(self.lm_head.forward(rows))
    }

    fn capped<const D: usize>(&self, logits: Tensor<D>) -> Tensor<D> {
        match self.logit_softcap {
            Some(c) => logits.div_scalar(c).tanh().mul_scalar(c),
            None => logits,
        }
    }

    /// Logits at the last column of every row, `[B, vocab]`.
    pub fn forward_last(
        &self,
        tokens: Tensor<2, Int>,
        layout: &StepLayout,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<2> {
        if let (Some(cache), Some(host)) = (
            cache.as_deref_mut(),
            host_step::HostModel::serves(self, layout),
        ) {
            let device = tokens.device();
            let token = tokens
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .ok()
                .and_then(|t| t.first().copied())
                .unwrap_or(0);
            let logits = on_pool(|| host.step(self, token.max(0) as u32, layout, cache));
            let vocab = logits.len();
            return Tensor::from_data(TensorData::new(logits, [1, vocab]), &device);
        }
        self.last_by_tensor_ops(tokens, layout, cache)
    }

    /// [`Llama::forward_last`] through Burn's tensor operations only.
    fn last_by_tensor_ops(
        &self,
        tokens: Tensor<2, Int>,
        layout: &StepLayout,
        cache: Option<&mut KvCache>,
    ) -> Tensor<2> {
        let step = || {
            let hidden = self.forward_hidden(tokens, layout, cache);
            let [b, s, d] = hidden.dims();
            let last = hidden.slice([0..b, s - 1..s, 0..d]);
            self.logits(last).reshape([b, self.vocab_size()])
        };
        if self.weight_mode().is_quantized() {
            on_pool(step)
        } else {
            step()
        }
    }
}

/// Runs `f` on a thread of rayon's pool. The integer kernels split every product across the
/// pool; called from outside it, each of a step's ~200 products would wake the pool's threads
/// and leave them spinning beside the caller (on 2 cores: 3 threads for 2 cores). Inside it,
/// the caller is one of the pool's threads. Measured on the 2-core EPYC, q4: greedy decoding
/// 94 → 108 tok/s, prompt processing 434 → 570.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    out.unwrap_or_else(|| unreachable!("rayon::scope returns after its closure ran"))
}

/// Row-major `[rows, cols]` → `[cols, rows]`, in cache-sized tiles (the naive loop strides
/// through memory and takes seconds on a 49152×576 embedding).
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut out = vec![0.0f32; data.len()];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = data[r * cols + c];
                }
            }
        }
    }
    out
}

/// The tokens of a batch as a tensor, left-padded with `pad` to the layout's length.
pub fn tokens_tensor(rows: &[Vec<u32>], pad: u32, device: &Device) -> Tensor<2, Int> {
    let len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut flat = Vec::with_capacity(rows.len() * len);
    for r in rows {
        flat.extend(std::iter::repeat_n(pad as i64, len - r.len()));
        flat.extend(r.iter().map(|&t| t as i64));
    }
    Tensor::from_data(TensorData::new(flat, [rows.len(), len]), device)
}

#[cfg(test)]
pub(crate) mod tests;
