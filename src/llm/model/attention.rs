//! Grouped-query self-attention with rotary embeddings and an optional KV cache.

use burn::module::Module;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use super::cache::KvCache;
use super::linear::Projection;
use super::rope::RopeAngles;

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Projection,
    pub k_proj: Projection,
    pub v_proj: Projection,
    pub o_proj: Projection,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl Attention {
    /// `x`: `[B, S, d]`; `mask`: `[B, 1, S, past + S]` (`true` = hidden).
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeAngles,
        mask: Tensor<4, Bool>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let heads = |t: Tensor<3>, n: usize| t.reshape([b, s, n, self.head_dim]).swap_dims(1, 2);
        let q = rope.apply(heads(self.q_proj.forward(x.clone()), self.num_heads));
        let k = rope.apply(heads(self.k_proj.forward(x.clone()), self.num_kv_heads));
        let v = heads(self.v_proj.forward(x), self.num_kv_heads);

        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, k, v),
            None => (k, v),
        };
        let k = self.repeat_kv(k);
        let v = self.repeat_kv(v);
        let [_, _, sq, sk] = mask.dims();
        let mask = mask.expand([b, self.num_heads, sq, sk]);
        let out = attention(q, k, v, Some(mask), None, AttentionModuleOptions::default());
        let out = out
            .swap_dims(1, 2)
            .reshape([b, s, self.num_heads * self.head_dim]);
        self.o_proj.forward(out)
    }

    /// Shares each key/value head with its group of query heads, in the order transformers'
    /// `repeat_kv` uses (head `h` reads kv head `h / group`).
    fn repeat_kv(&self, t: Tensor<4>) -> Tensor<4> {
        let group = self.num_heads / self.num_kv_heads;
        if group == 1 {
            return t;
        }
        let [b, h, l, d] = t.dims();
        t.unsqueeze_dim::<5>(2)
            .expand([b, h, group, l, d])
            .reshape([b, h * group, l, d])
    }
}
