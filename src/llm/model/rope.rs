//! Rotary position embeddings in the Hugging Face "rotate half" layout.
//!
//! GGUF files store Llama Q/K rows permuted for llama.cpp's interleaved rotation; the loader
//! undoes that permutation, so one layout serves GGUF and safetensors alike and LoRA adapters
//! keep PEFT's row order without any reordering on export.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

#[derive(Module, Debug)]
pub struct Rope {
    /// `[max_positions, head_dim / 2]`
    pub cos: Tensor<2>,
    pub sin: Tensor<2>,
}

impl Rope {
    /// Tables computed in f32 as transformers does (`inv_freq` and `pos · inv_freq` in f32), so
    /// the angles agree with the reference to the last bit where possible.
    /// `factors`: what each frequency is divided by (Llama 3's scaled rotation), if anything.
    pub fn new(
        head_dim: usize,
        theta: f32,
        factors: Option<&[f32]>,
        max_positions: usize,
        device: &Device,
    ) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let f = 1.0 / theta.powf((2 * i) as f32 / head_dim as f32);
                f / factors.and_then(|d| d.get(i)).copied().unwrap_or(1.0)
            })
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Rope {
            cos: Tensor::from_data(TensorData::new(cos, [max_positions, half]), device),
            sin: Tensor::from_data(TensorData::new(sin, [max_positions, half]), device),
        }
    }

    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// The cos/sin rows for `positions` `[B, S]`, shaped `[B, 1, S, head_dim/2]` to broadcast
    /// over heads.
    pub fn at(&self, positions: Tensor<2, Int>) -> RopeAngles {
        let [b, s] = positions.dims();
        let half = self.cos.dims()[1];
        let flat = positions.reshape([b * s]);
        let cos = self
            .cos
            .clone()
            .select(0, flat.clone())
            .reshape([b, 1, s, half]);
        let sin = self.sin.clone().select(0, flat).reshape([b, 1, s, half]);
        RopeAngles { cos, sin }
    }
}

#[derive(Clone, Debug)]
pub struct RopeAngles {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl RopeAngles {
    /// Rotates `x` `[B, H, S, head_dim]`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, s, d] = x.dims();
        let half = d / 2;
        let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..half]);
        let x2 = x.slice([0..b, 0..h, 0..s, half..d]);
        let out1 = x1.clone() * self.cos.clone() - x2.clone() * self.sin.clone();
        let out2 = x2 * self.cos.clone() + x1 * self.sin.clone();
        Tensor::cat(vec![out1, out2], 3)
    }
}
