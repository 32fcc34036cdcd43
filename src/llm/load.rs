//! Opening a model: a GGUF file or a Hugging Face folder becomes a config, a tokenizer, the
//! weights on a device, and a description for `model info`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use crate::llm::config::{Architecture, HfConfig, ModelConfig};
use crate::llm::gguf::GgufFile;
use crate::llm::model::Llama;
use crate::llm::quant::WeightMode;
use crate::llm::tokenizer::{TextTokenizer, TokenizerError};
use crate::llm::weights::{GgufWeights, SafetensorsWeights, WeightError, WeightSource};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Gguf(#[from] crate::llm::gguf::GgufError),
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    Gguf,
    HuggingFace,
}

/// What `seedforge model info` prints; read without loading the weights.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub format: ModelFormat,
    pub architecture: String,
    pub name: Option<String>,
    pub file_bytes: u64,
    pub parameters: usize,
    pub config: ModelConfig,
    /// Tensor type → number of tensors of that type.
    pub tensor_types: BTreeMap<String, usize>,
    pub tokenizer: String,
    pub chat_template: bool,
}

/// A model ready to run.
pub struct LoadedModel {
    pub model: Llama,
    pub tokenizer: TextTokenizer,
    pub config: ModelConfig,
    pub info: ModelInfo,
    pub load_seconds: f64,
}

pub fn format_of(path: &Path) -> Result<ModelFormat, LoadError> {
    if path.is_dir() {
        for needed in ["config.json", "tokenizer.json"] {
            if !path.join(needed).is_file() {
                return Err(LoadError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "a Hugging Face model folder needs {needed} (and *.safetensors)"
                    ),
                });
            }
        }
        Ok(ModelFormat::HuggingFace)
    } else if path.is_file() {
        Ok(ModelFormat::Gguf)
    } else {
        Err(LoadError::Invalid {
            path: path.to_path_buf(),
            message: "no such file or folder".into(),
        })
    }
}

pub fn gguf_config(file: &GgufFile) -> Result<ModelConfig, LoadError> {
    let invalid = |message: String| LoadError::Invalid {
        path: file.path().to_path_buf(),
        message,
    };
    let arch = file.get_str("general.architecture")?.to_string();
    let family = Architecture::from_name(&arch).ok_or_else(|| {
        invalid(format!(
            "architecture '{arch}' is not supported (seedforge runs: {})",
            Architecture::list()
        ))
    })?;
    let key = |k: &str| format!("{arch}.{k}");
    let u = |k: &str| -> Result<usize, LoadError> { Ok(file.get_u64(&key(k))? as usize) };
    let hidden = u("embedding_length")?;
    let heads = u("attention.head_count")?;
    let vocab = match file.get_u64(&key("vocab_size")) {
        Ok(v) => v as usize,
        Err(_) => file.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let head_dim = file
        .get_u64(&key("attention.key_length"))
        .or_else(|_| file.get_u64(&key("rope.dimension_count")))
        .map(|v| v as usize)
        .unwrap_or(hidden / heads.max(1));
    let config = ModelConfig {
        arch: family,
        attention_bias: file.tensor("blk.0.attn_q.bias").is_some(),
        // Llama 3.1/3.2 files carry their rotary scaling as per-frequency divisors.
        rope_freq_factors: match file.tensor("rope_freqs.weight") {
            Some(_) => Some(file.dequantize("rope_freqs.weight")?.data),
            None => None,
        },
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: u("feed_forward_length")?,
        num_layers: u("block_count")?,
        num_heads: heads,
        num_kv_heads: file
            .get_u64(&key("attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(heads),
        head_dim,
        rope_theta: file.get_f32(&key("rope.freq_base")).unwrap_or(10_000.0),
        rms_norm_eps: file.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
        max_position_embeddings: u("context_length")?,
        tie_word_embeddings: file.tensor("output.weight").is_none(),
        sliding_layers: Vec::new(),
        sliding_window: None,
        rope_local_theta: None,
        query_pre_attn_scalar: None,
        final_logit_softcapping: file.get_f32(&key("final_logit_softcapping")).ok(),
    };
    let config = if family.gemma() {
        gemma_gguf(config, file.get_u64(&key("attention.sliding_window")).ok())
    } else {
        config
    };
    config.validate().map_err(invalid)?;
    Ok(config)
}

/// What llama.cpp takes for granted about Gemma 3 files rather than reading it from them:
/// every sixth layer is global and the others slide over `window` positions with a rotary base
/// of 10,000 (`llama-model.cpp`, `LLM_ARCH_GEMMA3`: `set_swa_pattern(6)`,
/// `rope_freq_base_train_swa`), and queries are scaled by the head size.
fn gemma_gguf(config: ModelConfig, window: Option<u64>) -> ModelConfig {
    let Some(window) = window else {
        return config;
    };
    ModelConfig {
        sliding_layers: (0..config.num_layers)
            .filter(|i| (i + 1) % 6 != 0)
            .collect(),
        sliding_window: Some(window as usize),
        rope_local_theta: Some(10_000.0),
        ..config
    }
}

fn hf_config(dir: &Path) -> Result<ModelConfig, LoadError> {
    let path = dir.join("config.json");
    let invalid = |message: String| LoadError::Invalid {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| invalid(e.to_string()))?;
    let raw: HfConfig = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let arch = match raw.model_type.as_deref() {
        None => Architecture::Llama,
        Some(t) => Architecture::from_name(t).ok_or_else(|| {
            invalid(format!(
                "model_type '{t}' is not supported (seedforge runs: {})",
                Architecture::list()
            ))
        })?,
    };
    // Each family's feed-forward has one activation: SiLU, or Gemma's tanh GELU.
    let expected = if arch.gemma() {
        "gelu_pytorch_tanh"
    } else {
        "silu"
    };
    if let Some(act) = raw
        .hidden_activation
        .as_deref()
        .or(raw.hidden_act.as_deref())
        && act != expected
    {
        return Err(invalid(format!(
            "the {} activation '{act}' is not supported ({expected} only)",
            arch.name()
        )));
    }
    let config = raw.model_config(arch).map_err(invalid)?;
    config.validate().map_err(invalid)?;
    Ok(config)
}

/// Reads what `model info` shows, without loading the weights.
pub fn inspect(path: &Path) -> Result<ModelInfo, LoadError> {
    match format_of(path)? {
        ModelFormat::Gguf => {
            let file = GgufFile::open(path)?;
            let config = gguf_config(&file)?;
            let tokenizer = TextTokenizer::from_gguf(&file)?;
            Ok(gguf_info(&file, &config, &tokenizer))
        }
        ModelFormat::HuggingFace => {
            let config = hf_config(path)?;
            let tokenizer = TextTokenizer::from_hf_dir(path)?;
            hf_info(path, &config, &tokenizer)
        }
    }
}

fn gguf_info(file: &GgufFile, config: &ModelConfig, tokenizer: &TextTokenizer) -> ModelInfo {
    let mut tensor_types = BTreeMap::new();
    for t in file.tensors() {
        *tensor_types
            .entry(t.ggml_type.name().to_string())
            .or_insert(0) += 1;
    }
    ModelInfo {
        path: file.path().to_path_buf(),
        format: ModelFormat::Gguf,
        architecture: file
            .get_str("general.architecture")
            .unwrap_or("llama")
            .to_string(),
        name: file.get_str("general.name").ok().map(str::to_string),
        file_bytes: std::fs::metadata(file.path()).map(|m| m.len()).unwrap_or(0),
        parameters: config.num_parameters(),
        config: config.clone(),
        tensor_types,
        tokenizer: tokenizer.kind.clone(),
        chat_template: tokenizer.has_chat_template(),
    }
}

fn hf_info(
    dir: &Path,
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
) -> Result<ModelInfo, LoadError> {
    let mut bytes = 0;
    let mut tensor_types = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LoadError::Invalid {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })? {
        let Ok(entry) = entry else { continue };
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            if let Ok(data) = std::fs::read(&p)
                && let Ok((_, meta)) = safetensors::SafeTensors::read_metadata(&data)
            {
                for info in meta.tensors().values() {
                    *tensor_types.entry(format!("{:?}", info.dtype)).or_insert(0) += 1;
                }
            }
        }
    }
    Ok(ModelInfo {
        path: dir.to_path_buf(),
        format: ModelFormat::HuggingFace,
        architecture: config.arch.name().into(),
        name: dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        file_bytes: bytes,
        parameters: config.num_parameters(),
        config: config.clone(),
        tensor_types,
        tokenizer: tokenizer.kind.clone(),
        chat_template: tokenizer.has_chat_template(),
    })
}

/// Loads the model at `path` (a `.gguf` file or a Hugging Face folder) onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel, LoadError> {
    load_as(path, device, WeightMode::F32)
}

/// [`load`] with the frozen weights held as `mode` says.
pub fn load_as(path: &Path, device: &Device, mode: WeightMode) -> Result<LoadedModel, LoadError> {
    let started = Instant::now();
    let (model, tokenizer, config, info) = match format_of(path)? {
        ModelFormat::Gguf => {
            let file = GgufFile::open(path)?;
            let config = gguf_config(&file)?;
            let tokenizer = TextTokenizer::from_gguf(&file)?;
            let info = gguf_info(&file, &config, &tokenizer);
            let model = Llama::load_as(&config, &GgufWeights::new(&file, &config), device, mode)?;
            (model, tokenizer, config, info)
        }
        ModelFormat::HuggingFace => {
            let config = hf_config(path)?;
            let tokenizer = TextTokenizer::from_hf_dir(path)?;
            let info = hf_info(path, &config, &tokenizer)?;
            let weights = SafetensorsWeights::open(path)?;
            let model = Llama::load_as(&config, &weights as &dyn WeightSource, device, mode)?;
            (model, tokenizer, config, info)
        }
    };
    Ok(LoadedModel {
        model,
        tokenizer,
        config,
        info,
        load_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Only the tokenizer of the model at `path` (no weights), for tokenisation commands.
pub fn tokenizer(path: &Path) -> Result<TextTokenizer, LoadError> {
    match format_of(path)? {
        ModelFormat::Gguf => Ok(TextTokenizer::from_gguf(&GgufFile::open(path)?)?),
        ModelFormat::HuggingFace => Ok(TextTokenizer::from_hf_dir(path)?),
    }
}
