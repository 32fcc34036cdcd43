//! How the model's frozen weights are held in memory.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum WeightMode {
    /// 32-bit floats: the exact reference (what the golden tests check).
    #[default]
    #[value(name = "f32")]
    #[serde(rename = "f32")]
    F32,
    /// 16-bit floats (IEEE half): half of f32's memory, products taken in f32 from the halves.
    #[value(name = "f16")]
    #[serde(rename = "f16")]
    F16,
    /// 8-bit blocks (ggml's Q8_0): a quarter of f32's memory.
    #[value(name = "q8_0")]
    #[serde(rename = "q8_0")]
    Q8_0,
    /// 4-bit blocks with a minimum (ggml's Q4_1, SmolLM2's own file type) for the projections,
    /// the embedding and output head in 8-bit blocks (as llama.cpp's Q4 files keep them).
    #[value(name = "q4")]
    #[serde(rename = "q4")]
    Q4,
}

impl WeightMode {
    pub fn name(self) -> &'static str {
        match self {
            WeightMode::F32 => "f32",
            WeightMode::F16 => "f16",
            WeightMode::Q8_0 => "q8_0",
            WeightMode::Q4 => "q4",
        }
    }

    pub fn is_quantized(self) -> bool {
        self != WeightMode::F32
    }
}

impl std::fmt::Display for WeightMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
