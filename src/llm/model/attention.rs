//! Grouped-query self-attention with rotary embeddings and an optional KV cache.

use burn::module::Module;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use super::cache::KvCache;
use super::cpu_attention;
use super::cpu_buffer::on_plain_cpu;
use super::linear::Projection;
use super::norm::RmsNorm;
use super::rope::RopeAngles;

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Projection,
    pub k_proj: Projection,
    pub v_proj: Projection,
    pub o_proj: Projection,
    /// Qwen3, Gemma 3: RMSNorm over each head's queries and keys, before the rotation.
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// What scores are multiplied by, when it is not `1/√head_dim` (Gemma's
    /// `query_pre_attn_scalar`).
    pub scale: Option<f64>,
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
        let norm = |t: Tensor<4>, n: &Option<RmsNorm>| match n {
            Some(n) => n.forward(t),
            None => t,
        };
        let [q, k, v] = three(Projection::forward_group(
            &[&self.q_proj, &self.k_proj, &self.v_proj],
            x,
        ));
        let q = heads(q, self.num_heads);
        let k = heads(k, self.num_kv_heads);
        let q = rope.apply(norm(q, &self.q_norm));
        let k = rope.apply(norm(k, &self.k_norm));
        let v = heads(v, self.num_kv_heads);

        // With a cache, K and V are its whole tensors and the mask is as wide (the columns
        // past the filled ones hidden: `LayerContext::widened`).
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, k, v),
            None => (k, v),
        };
        debug_assert_eq!(mask.dims()[3], k.dims()[2], "a mask column for every key");
        // Grouped-query attention without copying K and V once per query head: the `group`
        // query heads that share a K/V head are stacked as extra query rows of that head
        // (query head h = kv·group + g, so [b, heads, s, d] → [b, kv, group·s, d]), and each
        // stacked row keeps its position's mask row.
        let group = self.num_heads / self.num_kv_heads;
        let kv = self.num_kv_heads;
        let d = self.head_dim;
        let q = q.reshape([b, kv, group * s, d]);
        let out = if [&q, &k, &v].iter().all(|t| on_plain_cpu(*t)) {
            let scale = self.scale.unwrap_or(1.0 / (d as f64).sqrt()) as f32;
            cpu_attention::attention(q, k, v, mask, scale)
        } else {
            self.burn_attention(q, k, v, mask)
        };
        let out = out
            .reshape([b, self.num_heads, s, d])
            .swap_dims(1, 2)
            .reshape([b, s, self.num_heads * d]);
        self.o_proj.forward(out)
    }

    /// [`cpu_attention::attention`]'s layout and result, through Burn's attention (wgpu,
    /// autodiff): the mask expanded to the stacked query rows.
    fn burn_attention(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Tensor<4, Bool>,
    ) -> Tensor<4> {
        let [b, kv, _, _] = q.dims();
        let group = self.num_heads / self.num_kv_heads;
        let [_, _, sq, sk] = mask.dims();
        let mask = mask
            .unsqueeze_dim::<5>(2)
            .expand([b, kv, group, sq, sk])
            .reshape([b, kv, group * sq, sk]);
        let options = AttentionModuleOptions {
            scale: self.scale,
            ..AttentionModuleOptions::default()
        };
        attention(q, k, v, Some(mask), None, options)
    }
}

fn three<T>(v: Vec<T>) -> [T; 3] {
    v.try_into()
        .unwrap_or_else(|_| unreachable!("three projections give three products"))
}
