//! A micro-batch's loss and the adapters' gradients, either back through the whole forward
//! graph, or a layer at a time with each layer's forward pass recomputed from its stored input
//! (activation recomputation, "gradient checkpointing" per layer).
//!
//! The whole graph keeps every layer's activations until the backward pass: for an 8 × 64 batch
//! on SmolLM2 that is ~30 MB a layer, ~800 MB in all — most of a QLoRA step's peak once the
//! frozen weights are blocks. Recomputing keeps each layer's input (1.2 MB) and one layer's
//! activations at a time, for one more forward pass. Burn's own checkpointing strategy
//! (`BalancedCheckpointing`) leaves matrix products' outputs stored and did not lower the peak
//! (measured: 1,468 against 1,465 MB), so the layers are taken one by one here.

use burn::module::Module;
use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use super::lora::{Target, projection};
use super::score::{BatchTensors, TermTensors, loss, loss_of_hidden};
use crate::llm::model::Llama;
use crate::llm::model::block::Block;

/// The loss's value (before `weight`) and the gradients of `weight`·loss: one set for the whole
/// model, or one per layer when recomputing. On the model's autodiff device.
pub fn loss_and_gradients(
    model: &Llama,
    t: &BatchTensors,
    terms: Option<&TermTensors>,
    weight: f64,
    recompute: bool,
) -> (f64, Vec<GradientsParams>) {
    if !recompute {
        let loss = loss(model, t, terms);
        let value = loss.clone().into_scalar::<f32>() as f64;
        let grads = loss.mul_scalar(weight).backward();
        return (value, vec![GradientsParams::from_grads(grads, model)]);
    }

    let context = model.layer_context(t.positions.clone(), t.mask.clone());
    // A forward pass that records no graph (the layers' copies require no gradient), keeping
    // each layer's input and where its adapters' dropout streams stood, so that the
    // recomputation draws the same masks and leaves the streams where this pass left them.
    let mut inputs = Vec::with_capacity(model.layers.len());
    let mut streams = Vec::with_capacity(model.layers.len());
    let mut x = model.embed(t.tokens.clone()).detach();
    for block in &model.layers {
        streams.push(noise_states(block));
        inputs.push(x.clone());
        let (rope, mask) = context.of(block);
        x = block.clone().no_grad().forward(x, rope, mask, None);
    }

    let top = x.detach().require_grad();
    let loss = loss_of_hidden(model, model.final_norm(top.clone()), t, terms);
    let value = loss.clone().into_scalar::<f32>() as f64;
    let grads = loss.mul_scalar(weight).backward();
    let mut upstream = top.grad(&grads);
    let mut out = vec![GradientsParams::from_grads(grads, model)];

    for (i, (block, input)) in model.layers.iter().zip(inputs).enumerate().rev() {
        // Every layer above the first passes a gradient down (its input requires one).
        let Some(g) = upstream.take() else { break };
        restore_noise(block, &streams[i]);
        // The first layer's input is the frozen embedding: no gradient to pass on.
        let input = if i > 0 { input.require_grad() } else { input };
        let (rope, mask) = context.of(block);
        let y = block.forward(input.clone(), rope, mask, None);
        // Σ y ⊙ ∂L/∂y: its gradient is ∂L/∂y pulled back through the layer.
        let grads = (y * Tensor::from_inner(g)).sum().backward();
        if i > 0 {
            upstream = input.grad(&grads);
        }
        out.push(GradientsParams::from_grads(grads, block));
    }
    (value, out)
}

fn noise_states(block: &Block) -> Vec<Option<[u64; 4]>> {
    Target::ALL
        .iter()
        .map(|&t| {
            projection(block, t)
                .adapter
                .as_ref()
                .map(|a| a.noise.state())
        })
        .collect()
}

fn restore_noise(block: &Block, states: &[Option<[u64; 4]>]) {
    for (&t, state) in Target::ALL.iter().zip(states) {
        if let (Some(a), Some(s)) = (&projection(block, t).adapter, state) {
            a.noise.set_state(*s);
        }
    }
}

/// One optimizer step's worth of gradients, accumulated over micro-batches, in the fixed order
/// of the trainable ids (so the global norm sums in the same order every run).
pub struct Accumulated {
    grads: Vec<(ParamId, Option<Tensor<2>>)>,
}

impl Accumulated {
    pub fn new(ids: &[ParamId]) -> Self {
        Accumulated {
            grads: ids.iter().map(|&id| (id, None)).collect(),
        }
    }

    pub fn add(&mut self, mut from: GradientsParams) {
        for (id, acc) in &mut self.grads {
            if let Some(g) = from.remove::<2>(*id) {
                *acc = Some(match acc.take() {
                    Some(a) => a + g,
                    None => g,
                });
            }
        }
    }

    /// Global L2 norm, then the gradients scaled to `max_norm` when above it.
    pub fn finish(self, max_norm: Option<f64>) -> (GradientsParams, f64) {
        let mut total: Option<Tensor<1>> = None;
        for g in self.grads.iter().filter_map(|(_, g)| g.as_ref()) {
            let s = g.clone().square().sum();
            total = Some(match total {
                Some(t) => t + s,
                None => s,
            });
        }
        let norm = total.map_or(0.0, |t| (t.into_scalar::<f32>() as f64).sqrt());
        let scale = match max_norm {
            Some(m) if norm > m => m / (norm + 1e-6),
            _ => 1.0,
        };
        let mut out = GradientsParams::new();
        for (id, g) in self.grads {
            if let Some(g) = g {
                out.register(id, if scale < 1.0 { g.mul_scalar(scale) } else { g });
            }
        }
        (out, norm)
    }
}
