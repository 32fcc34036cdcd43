//! The hyper-parameters of a Llama-family model, read from GGUF metadata or a Hugging Face
//! `config.json`, so the transformer never looks at file formats.

use serde::{Deserialize, Serialize};

/// The model families seedforge runs, as their files name them (GGUF `general.architecture`,
/// Hugging Face `model_type`). They share the Llama block; what differs is said here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    #[default]
    Llama,
    /// Biases on the Q, K and V projections.
    Qwen2,
    /// Each head's queries and keys RMS-normalised before the rotation.
    Qwen3,
}

impl Architecture {
    pub const ALL: [Architecture; 3] = [
        Architecture::Llama,
        Architecture::Qwen2,
        Architecture::Qwen3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
        }
    }

    pub fn from_name(name: &str) -> Option<Architecture> {
        Architecture::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The supported names, for a refusal.
    pub fn list() -> String {
        Architecture::ALL.map(|a| a.name()).join(", ")
    }

    /// Whether every head's queries and keys are RMS-normalised before the rotation.
    pub fn qk_norm(self) -> bool {
        self == Architecture::Qwen3
    }

    /// Whether llama.cpp's converter permuted the Q/K rows (and biases) of the GGUF file for
    /// its interleaved rotation: Llama only; Qwen files keep the rotate-half order.
    pub fn gguf_permuted_qk(self) -> bool {
        self == Architecture::Llama
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Configs written before other families were supported are Llama's.
    #[serde(default)]
    pub arch: Architecture,
    /// Biases on the Q, K and V projections (Qwen2; a Llama config may ask for them too).
    #[serde(default)]
    pub attention_bias: bool,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f32,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

impl ModelConfig {
    /// Checks the shape relations the transformer relies on, so a bad file fails at load with
    /// a message instead of panicking in a matmul.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} is 0"));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "num_heads ({}) is not a multiple of num_kv_heads ({})",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim ({}) must be even for rotary embeddings",
                self.head_dim
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(format!("rope_theta ({}) must be positive", self.rope_theta));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return Err(format!(
                "rms_norm_eps ({}) must be non-negative",
                self.rms_norm_eps
            ));
        }
        Ok(())
    }

    /// Parameters in the model (embedding counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let d = self.hidden_size;
        let kv = self.num_kv_heads * self.head_dim;
        let q = self.num_heads * self.head_dim;
        let bias = if self.attention_bias { q + 2 * kv } else { 0 };
        let qk_norm = if self.arch.qk_norm() {
            2 * self.head_dim
        } else {
            0
        };
        let per_layer =
            d * q + 2 * d * kv + q * d + 3 * d * self.intermediate_size + 2 * d + bias + qk_norm;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        self.vocab_size * d + self.num_layers * per_layer + d + head
    }
}

/// The subset of a Hugging Face `config.json` a Llama model needs.
#[derive(Debug, Deserialize)]
pub(crate) struct HfConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rope_theta: Option<f32>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    pub model_type: Option<String>,
    pub hidden_act: Option<String>,
    pub attention_bias: Option<bool>,
    /// Where transformers 5 keeps `rope_theta` (and the scaling type).
    pub rope_parameters: Option<RopeParameters>,
    /// Rotary scaling as transformers 4 wrote it (`{"rope_type": "llama3", …}`).
    pub rope_scaling: Option<serde_json::Value>,
}

impl HfConfig {
    /// A rotary scaling the model asks for that is not the plain one (Llama 3.x's `llama3`,
    /// YaRN…): seedforge does not compute those yet.
    pub fn rope_scaling_type(&self) -> Option<String> {
        let legacy = self
            .rope_scaling
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| {
                v.get("rope_type")
                    .or_else(|| v.get("type"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("unknown")
                    .to_string()
            });
        let current = self
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_type.clone());
        legacy.or(current).filter(|t| t != "default")
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RopeParameters {
    pub rope_theta: Option<f32>,
    pub rope_type: Option<String>,
}

fn default_theta() -> f32 {
    10_000.0
}
fn default_eps() -> f32 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}

impl HfConfig {
    /// The config of a model of family `arch`.
    pub fn model_config(self, arch: Architecture) -> ModelConfig {
        let c = self;
        ModelConfig {
            arch,
            // Qwen2's attention always has them; elsewhere the config says.
            attention_bias: arch == Architecture::Qwen2 || c.attention_bias.unwrap_or(false),
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_layers: c.num_hidden_layers,
            num_heads: c.num_attention_heads,
            num_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            head_dim: c
                .head_dim
                .unwrap_or(c.hidden_size / c.num_attention_heads.max(1)),
            rope_theta: c
                .rope_theta
                .or_else(|| c.rope_parameters.as_ref().and_then(|r| r.rope_theta))
                .unwrap_or_else(default_theta),
            rms_norm_eps: c.rms_norm_eps,
            max_position_embeddings: c.max_position_embeddings,
            tie_word_embeddings: c.tie_word_embeddings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> ModelConfig {
        ModelConfig {
            arch: Architecture::Llama,
            attention_bias: false,
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            rope_theta: 100_000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
        }
    }

    #[test]
    fn smollm2_has_its_published_parameter_count() {
        // SmolLM2-135M: 134,515,008 parameters (embedding tied).
        assert_eq!(smollm2().num_parameters(), 134_515_008);
    }

    #[test]
    fn bad_head_ratio_is_reported() {
        let mut c = smollm2();
        c.num_kv_heads = 4;
        assert!(c.validate().unwrap_err().contains("num_kv_heads"));
    }
}
