//! A merged model as a Hugging Face folder transformers loads with
//! `AutoModelForCausalLM.from_pretrained`: `model.safetensors` (F32 or F16, transformers'
//! names and row order), `config.json` (`LlamaForCausalLM`, or the Qwen family's class),
//! `tokenizer.json` and `tokenizer_config.json`. The card goes beside them as `seedforge.json`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::Weights;
use crate::llm::config::{Architecture, ModelConfig};
use crate::llm::gguf::GgufFile;
use crate::llm::tokenizer::TextTokenizer;
use crate::llm::weights::Dense;

pub const WEIGHTS_FILE: &str = "model.safetensors";

/// transformers' `config.json` for a model of `config`'s family.
pub fn config_json(config: &ModelConfig, tokenizer: &TextTokenizer, weights: Weights) -> Value {
    let dtype = match weights {
        Weights::F16 => "float16",
        _ => "float32",
    };
    let class = match config.arch {
        Architecture::Llama => "LlamaForCausalLM",
        Architecture::Qwen2 => "Qwen2ForCausalLM",
        Architecture::Qwen3 => "Qwen3ForCausalLM",
        // Refused before anything is written (`export::export_model`).
        Architecture::Gemma3 => "Gemma3ForCausalLM",
    };
    json!({
        "architectures": [class],
        "model_type": config.arch.name(),
        "attention_bias": config.attention_bias,
        "attention_dropout": 0.0,
        "bos_token_id": tokenizer.bos_id(),
        "eos_token_id": tokenizer.eos_id(),
        "pad_token_id": tokenizer.pad_id(),
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "hidden_size": config.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "mlp_bias": false,
        "num_attention_heads": config.num_heads,
        "num_hidden_layers": config.num_layers,
        "num_key_value_heads": config.num_kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_scaling": null,
        "rope_theta": config.rope_theta,
        "tie_word_embeddings": config.tie_word_embeddings,
        "torch_dtype": dtype,
        "use_cache": true,
        "vocab_size": config.vocab_size,
    })
}

/// `tokenizer_config.json` for a tokenizer read from the GGUF file `base`: its special tokens,
/// whether it adds BOS, and its chat template.
pub fn tokenizer_config_from_gguf(base: &GgufFile, tokenizer: &TextTokenizer) -> Value {
    let piece = |id: Option<u32>| id.map(|i| tokenizer.piece(i));
    let mut v = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": base.get_bool("tokenizer.ggml.add_bos_token").unwrap_or(false),
        "add_eos_token": false,
        "bos_token": piece(tokenizer.bos_id()),
        "eos_token": piece(tokenizer.eos_id()),
        "pad_token": piece(Some(tokenizer.pad_id())),
        "clean_up_tokenization_spaces": false,
        "model_max_length": base
            .get_u64(&format!(
                "{}.context_length",
                base.get_str("general.architecture").unwrap_or("llama")
            ))
            .unwrap_or(2048),
    });
    if let Ok(unk) = base.get_u64("tokenizer.ggml.unknown_token_id") {
        v["unk_token"] = json!(tokenizer.piece(unk as u32));
    }
    if let Ok(t) = base.get_str("tokenizer.chat_template") {
        v["chat_template"] = json!(t);
    }
    v
}

/// The tokenizer files of the export: those of a Hugging Face base folder as they are, else
/// built from the loaded tokenizer and the GGUF metadata.
pub struct TokenizerFiles {
    pub tokenizer_json: String,
    pub tokenizer_config: String,
}

impl TokenizerFiles {
    pub fn from_folder(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        Ok(TokenizerFiles {
            tokenizer_json: read("tokenizer.json")?,
            tokenizer_config: read("tokenizer_config.json").unwrap_or_else(|_| "{}".into()),
        })
    }

    pub fn from_gguf(base: &GgufFile, tokenizer: &TextTokenizer) -> anyhow::Result<Self> {
        Ok(TokenizerFiles {
            tokenizer_json: tokenizer.to_json()?,
            tokenizer_config: serde_json::to_string_pretty(&tokenizer_config_from_gguf(
                base, tokenizer,
            ))?,
        })
    }
}

/// Writes the folder's files into `dir` (a temporary folder the caller renames into place).
pub fn write(
    dir: &Path,
    tensors: &[(String, Dense)],
    config: Value,
    tokenizer: &TokenizerFiles,
    weights: Weights,
    card_json: &str,
) -> anyhow::Result<()> {
    let (dtype, bytes): (safetensors::Dtype, Vec<Vec<u8>>) = match weights {
        Weights::F16 => (
            safetensors::Dtype::F16,
            tensors
                .iter()
                .map(|(_, d)| {
                    d.data
                        .iter()
                        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                        .collect()
                })
                .collect(),
        ),
        Weights::F32 => (
            safetensors::Dtype::F32,
            tensors
                .iter()
                .map(|(_, d)| d.data.iter().flat_map(|x| x.to_le_bytes()).collect())
                .collect(),
        ),
        Weights::Q8_0 | Weights::Mixed => anyhow::bail!(
            "a Hugging Face export holds f32 or f16 weights; q8_0 is a GGUF type (--format gguf)"
        ),
    };
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, d), b)| {
            safetensors::tensor::TensorView::new(dtype, d.shape.clone(), b)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .context("building model.safetensors")?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights_path = dir.join(WEIGHTS_FILE);
    safetensors::serialize_to_file(views, Some(metadata), &weights_path)
        .with_context(|| format!("writing {}", weights_path.display()))?;
    // safetensors writes through a file of its own, readable by the owner alone.
    #[cfg(unix)]
    std::fs::set_permissions(
        &weights_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .with_context(|| format!("writing {}", weights_path.display()))?;
    let files = [
        ("config.json", serde_json::to_string_pretty(&config)? + "\n"),
        ("tokenizer.json", tokenizer.tokenizer_json.clone()),
        ("tokenizer_config.json", tokenizer.tokenizer_config.clone()),
        (super::card::FILE_NAME, card_json.to_string()),
    ];
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
