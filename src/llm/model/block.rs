//! One transformer layer: pre-norm attention and a SwiGLU feed-forward, each with a residual.

use burn::module::Module;
use burn::tensor::activation::silu;
use burn::tensor::{Bool, Tensor};

use super::attention::Attention;
use super::cache::KvCache;
use super::linear::Projection;
use super::norm::RmsNorm;
use super::rope::RopeAngles;

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Projection,
    pub up_proj: Projection,
    pub down_proj: Projection,
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub input_norm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_norm: RmsNorm,
    pub mlp: Mlp,
}

impl Block {
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeAngles,
        mask: Tensor<4, Bool>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor<3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_norm.forward(x), rope, mask, cache);
        h.clone() + self.mlp.forward(self.post_attention_norm.forward(h))
    }
}
