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
    /// Gemma 3: the embedding scaled by √d, GeGLU (tanh GELU), q/k norms, a norm after the
    /// attention and after the MLP as well as before each, sliding-window layers with their own
    /// rotary base between global ones, norm weights stored as `w` for `x·(1 + w)`.
    Gemma3,
}

impl Architecture {
    pub const ALL: [Architecture; 4] = [
        Architecture::Llama,
        Architecture::Qwen2,
        Architecture::Qwen3,
        Architecture::Gemma3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Gemma3 => "gemma3",
        }
    }

    /// The family a GGUF `general.architecture` or a config's `model_type` names (Gemma 3's
    /// text-only checkpoints say `gemma3_text`).
    pub fn from_name(name: &str) -> Option<Architecture> {
        let name = if name == "gemma3_text" {
            "gemma3"
        } else {
            name
        };
        Architecture::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Gemma's block: norms after the attention and the MLP too, GeGLU, a scaled embedding.
    pub fn gemma(self) -> bool {
        self == Architecture::Gemma3
    }

    /// The supported names, for a refusal.
    pub fn list() -> String {
        Architecture::ALL.map(|a| a.name()).join(", ")
    }

    /// Whether every head's queries and keys are RMS-normalised before the rotation.
    pub fn qk_norm(self) -> bool {
        matches!(self, Architecture::Qwen3 | Architecture::Gemma3)
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
    /// What each rotary frequency is divided by (`head_dim / 2` of them), when the model
    /// scales its rotation (Llama 3.1/3.2's `llama3`): GGUF's `rope_freqs.weight`, or computed
    /// from the Hugging Face config as transformers does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_freq_factors: Option<Vec<f32>>,
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
    /// Layers that attend only to the last `sliding_window` positions (Gemma 3: five of every
    /// six), by index; empty: every layer is global.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sliding_layers: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    /// The rotary base of the sliding-window layers, when it differs from `rope_theta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_local_theta: Option<f32>,
    /// What queries are scaled by instead of `head_dim` (`query_pre_attn_scalar`: scores are
    /// `q·k / √it`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_pre_attn_scalar: Option<f32>,
    /// `c·tanh(logits / c)` on the output logits, when the config asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_logit_softcapping: Option<f32>,
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
        if let Some(f) = &self.rope_freq_factors
            && (f.len() != self.head_dim / 2 || f.iter().any(|x| !(x.is_finite() && *x > 0.0)))
        {
            return Err(format!(
                "the rotary frequency factors ({} of them) must be {} positive numbers",
                f.len(),
                self.head_dim / 2
            ));
        }
        if let Some(&i) = self.sliding_layers.iter().find(|&&i| i >= self.num_layers) {
            return Err(format!(
                "sliding-window layer {i} is past the last layer ({})",
                self.num_layers
            ));
        }
        if !self.sliding_layers.is_empty() && self.sliding_window.is_none_or(|w| w == 0) {
            return Err("sliding-window layers need a window of at least one position".into());
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
        let norms = if self.arch.gemma() { 4 * d } else { 2 * d };
        let per_layer =
            d * q + 2 * d * kv + q * d + 3 * d * self.intermediate_size + norms + bias + qk_norm;
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
    /// Where transformers 5 keeps `rope_theta` and the scaling.
    pub rope_parameters: Option<serde_json::Value>,
    /// Rotary scaling as transformers 4 wrote it (`{"rope_type": "llama3", …}`).
    pub rope_scaling: Option<serde_json::Value>,
    /// Gemma: the feed-forward's activation (`gelu_pytorch_tanh`).
    pub hidden_activation: Option<String>,
    /// Gemma 3: `sliding_attention` / `full_attention` per layer (transformers ≥ 4.53), or the
    /// older every-n-th-layer-is-global pattern.
    pub layer_types: Option<Vec<String>>,
    pub sliding_window_pattern: Option<usize>,
    pub sliding_window: Option<usize>,
    pub rope_local_base_freq: Option<f32>,
    pub query_pre_attn_scalar: Option<f32>,
    pub final_logit_softcapping: Option<f32>,
    pub attn_logit_softcapping: Option<f32>,
}

impl HfConfig {
    /// The rotary scaling's settings, as transformers 4 (`rope_scaling`) or 5
    /// (`rope_parameters`) wrote them, when it is not the plain rotation.
    fn rope_scaling(&self) -> Option<&serde_json::Value> {
        // Gemma 3 keeps one entry per layer type under `rope_parameters`.
        let per_layer_type = self
            .rope_parameters
            .iter()
            .filter_map(serde_json::Value::as_object)
            .flat_map(|m| m.values());
        [&self.rope_scaling, &self.rope_parameters]
            .into_iter()
            .flatten()
            .chain(per_layer_type)
            .filter(|v| !v.is_null())
            .find(|v| scaling_kind(v).is_some_and(|k| k != "default"))
    }

    /// The scaling's name (`llama3`, `yarn`, …) when there is one.
    pub fn rope_scaling_type(&self) -> Option<String> {
        self.rope_scaling()
            .map(|v| scaling_kind(v).unwrap_or_else(|| "unknown".into()))
    }

    /// Per-frequency divisors for a `llama3` scaling (transformers'
    /// `_compute_llama3_parameters`: long wavelengths slowed by `factor`, short ones kept, the
    /// band between interpolated); `Err` names a scaling this does not compute.
    pub fn rope_freq_factors(
        &self,
        head_dim: usize,
        theta: f32,
    ) -> Result<Option<Vec<f32>>, String> {
        let Some(v) = self.rope_scaling() else {
            return Ok(None);
        };
        let kind = self.rope_scaling_type().unwrap_or_default();
        if kind != "llama3" {
            return Err(format!(
                "rotary scaling '{kind}' is not supported yet (plain rotary embeddings and \
                 Llama 3's 'llama3')"
            ));
        }
        let num = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| format!("rotary scaling 'llama3' has no {k}"))
        };
        let factor = num("factor")?;
        let low = num("low_freq_factor")?;
        let high = num("high_freq_factor")?;
        let original = num("original_max_position_embeddings")?;
        let (low_wavelen, high_wavelen) = (original / low, original / high);
        let factors = (0..head_dim / 2)
            .map(|i| {
                let inv_freq = 1.0 / (theta as f64).powf((2 * i) as f64 / head_dim as f64);
                let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
                if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    factor as f32
                } else {
                    let smooth = (original / wavelen - low) / (high - low);
                    (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
                }
            })
            .collect();
        Ok(Some(factors))
    }

    /// `rope_theta` where transformers 4 (top level) or 5 (`rope_parameters`, per layer type
    /// for Gemma 3: its `full_attention` entry) keeps it.
    fn theta(&self) -> f32 {
        self.rope_theta
            .or_else(|| self.layer_type_theta("full_attention"))
            .unwrap_or_else(default_theta)
    }

    /// The rotary base transformers 5 keeps for one layer type (or for all, unkeyed).
    fn layer_type_theta(&self, layer_type: &str) -> Option<f32> {
        let r = self.rope_parameters.as_ref()?;
        r.get(layer_type)
            .unwrap_or(r)
            .get("rope_theta")
            .and_then(serde_json::Value::as_f64)
            .map(|t| t as f32)
    }

    /// Gemma 3's sliding-window layers, by index.
    fn sliding_layers(&self) -> Vec<usize> {
        match (&self.layer_types, self.sliding_window_pattern) {
            (Some(types), _) => types
                .iter()
                .enumerate()
                .filter(|(_, t)| t.as_str() == "sliding_attention")
                .map(|(i, _)| i)
                .collect(),
            (None, Some(n)) if n > 0 => (0..self.num_hidden_layers)
                .filter(|i| (i + 1) % n != 0)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A scaling's `rope_type` (or transformers 4's `type`).
fn scaling_kind(v: &serde_json::Value) -> Option<String> {
    v.get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
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
    pub fn model_config(self, arch: Architecture) -> Result<ModelConfig, String> {
        let c = self;
        let head_dim = c
            .head_dim
            .unwrap_or(c.hidden_size / c.num_attention_heads.max(1));
        let rope_theta = c.theta();
        let rope_freq_factors = c.rope_freq_factors(head_dim, rope_theta)?;
        if let Some(cap) = c.attn_logit_softcapping {
            return Err(format!(
                "attention logit soft-capping ({cap}) is not supported (Gemma 2's; Gemma 3 has none)"
            ));
        }
        let gemma = arch.gemma();
        let sliding_layers = if gemma {
            c.sliding_layers()
        } else {
            Vec::new()
        };
        let rope_local_theta = if gemma {
            c.rope_local_base_freq
                .or_else(|| c.layer_type_theta("sliding_attention"))
        } else {
            None
        };
        Ok(ModelConfig {
            sliding_window: c.sliding_window.filter(|_| !sliding_layers.is_empty()),
            sliding_layers,
            rope_local_theta,
            query_pre_attn_scalar: c.query_pre_attn_scalar.filter(|_| gemma),
            final_logit_softcapping: c.final_logit_softcapping,
            arch,
            // Qwen2's attention always has them; elsewhere the config says.
            attention_bias: arch == Architecture::Qwen2 || c.attention_bias.unwrap_or(false),
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_layers: c.num_hidden_layers,
            num_heads: c.num_attention_heads,
            num_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            head_dim,
            rope_theta,
            rms_norm_eps: c.rms_norm_eps,
            max_position_embeddings: c.max_position_embeddings,
            tie_word_embeddings: c.tie_word_embeddings,
            rope_freq_factors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> ModelConfig {
        ModelConfig {
            arch: Architecture::Llama,
            attention_bias: false,
            rope_freq_factors: None,
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
            sliding_layers: Vec::new(),
            sliding_window: None,
            rope_local_theta: None,
            query_pre_attn_scalar: None,
            final_logit_softcapping: None,
        }
    }

    #[test]
    fn smollm2_has_its_published_parameter_count() {
        // SmolLM2-135M: 134,515,008 parameters (embedding tied).
        assert_eq!(smollm2().num_parameters(), 134_515_008);
    }

    #[test]
    fn gemma3_270m_has_its_published_parameter_count() {
        // Gemma 3 270M: 268,098,176 parameters (170M of them the tied embedding).
        let c = ModelConfig {
            arch: Architecture::Gemma3,
            vocab_size: 262_144,
            hidden_size: 640,
            intermediate_size: 2048,
            num_layers: 18,
            num_heads: 4,
            num_kv_heads: 1,
            head_dim: 256,
            ..smollm2()
        };
        assert_eq!(c.num_parameters(), 268_098_176);
    }

    #[test]
    fn bad_head_ratio_is_reported() {
        let mut c = smollm2();
        c.num_kv_heads = 4;
        assert!(c.validate().unwrap_err().contains("num_kv_heads"));
    }
}
