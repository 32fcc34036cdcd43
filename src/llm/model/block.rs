//! One transformer layer: pre-norm attention and a gated feed-forward (SwiGLU; Gemma's GeGLU),
//! each with a residual; Gemma also normalises what each adds before adding it.

use burn::module::Module;
use burn::tensor::{Bool, Tensor};

use super::attention::Attention;
use super::cache::KvCache;
use super::gate::gated;
use super::linear::Projection;
use super::norm::RmsNorm;
use super::rope::RopeAngles;

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Projection,
    pub up_proj: Projection,
    pub down_proj: Projection,
    /// The gate's activation is the tanh approximation of GELU (`gelu_pytorch_tanh`), not SiLU.
    pub gelu: bool,
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut both = Projection::forward_group(&[&self.gate_proj, &self.up_proj], x).into_iter();
        let (Some(gate), Some(up)) = (both.next(), both.next()) else {
            unreachable!("two projections give two products")
        };
        self.down_proj.forward(gated(gate, up, self.gelu))
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub input_norm: RmsNorm,
    pub self_attn: Attention,
    /// Gemma: the attention's output normalised before the residual adds it.
    pub attn_out_norm: Option<RmsNorm>,
    /// The norm before the MLP (Llama's `post_attention_layernorm`, Gemma's
    /// `pre_feedforward_layernorm`).
    pub post_attention_norm: RmsNorm,
    pub mlp: Mlp,
    /// Gemma: the MLP's output normalised before the residual adds it.
    pub mlp_out_norm: Option<RmsNorm>,
    /// Attends to the last `sliding_window` positions only, with the local rotary base.
    pub sliding: bool,
}

impl Block {
    /// Q, K, V, O, gate, up and down.
    pub fn projections(&self) -> [&Projection; 7] {
        let (a, m) = (&self.self_attn, &self.mlp);
        [
            &a.q_proj,
            &a.k_proj,
            &a.v_proj,
            &a.o_proj,
            &m.gate_proj,
            &m.up_proj,
            &m.down_proj,
        ]
    }

    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeAngles,
        mask: Tensor<4, Bool>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor<3> {
        let out = |n: &Option<RmsNorm>, t: Tensor<3>| match n {
            Some(n) => n.forward(t),
            None => t,
        };
        let attn = self
            .self_attn
            .forward(self.input_norm.forward(x.clone()), rope, mask, cache);
        let h = x + out(&self.attn_out_norm, attn);
        let mlp = self
            .mlp
            .forward(self.post_attention_norm.forward(h.clone()));
        h + out(&self.mlp_out_norm, mlp)
    }
}
