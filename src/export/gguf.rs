//! A merged model as a GGUF file llama.cpp loads: the base file's metadata (architecture,
//! hyper-parameters, tokenizer, chat template) copied over, the file type and name set for the
//! export, the classifier card under `seedforge.*` keys, and every tensor under llama.cpp's name
//! with Q/K rows permuted back into its interleaved order (`weights::permute_rows`, the inverse
//! of what the loader undoes). Matrices are stored as the chosen type; norms stay F32, as
//! llama.cpp's converter leaves them.

use std::io::Write;

use anyhow::Context;

use super::Weights;
use super::card::{Card, GGUF_PREFIX};
use crate::llm::config::ModelConfig;
use crate::llm::gguf::{GgmlType, GgufFile, GgufWriter, MetaValue};
use crate::llm::weights::{Dense, Permute, gguf_name, permute_rows};

/// Metadata keys of the base file that the export sets itself.
const REPLACED: [&str; 3] = ["general.file_type", "general.name", "general.alignment"];

/// llama.cpp's `llama_ftype` for a file whose matrices are all `weights`.
fn file_type(weights: Weights) -> u32 {
    match weights {
        Weights::F32 => 0,
        Weights::F16 => 1,
        Weights::Q8_0 => 7,
    }
}

/// The ggml type a tensor of `shape` is stored as: 1-D tensors in F32; a matrix in `weights`,
/// or F16 when its rows do not fill whole Q8_0 blocks.
fn tensor_type(shape: &[usize], weights: Weights) -> GgmlType {
    let ty = match weights {
        Weights::F32 => GgmlType::F32,
        Weights::F16 => GgmlType::F16,
        Weights::Q8_0 => GgmlType::Q8_0,
    };
    match shape {
        [_] => GgmlType::F32,
        [.., cols] if !(*cols as u64).is_multiple_of(ty.block_size()) => GgmlType::F16,
        _ => ty,
    }
}

/// The GGUF file for `tensors` (Hugging Face names and layout, as `llm::model::tensors` gives
/// them), streamed to `out`.
pub fn write(
    base: &GgufFile,
    config: &ModelConfig,
    tensors: Vec<(String, Dense)>,
    weights: Weights,
    card: &Card,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut w = GgufWriter::new();
    let base_name = base.get_str("general.name").unwrap_or("model");
    w.add_metadata("general.name", format!("{base_name} + {name}"))?;
    w.add_metadata("general.file_type", file_type(weights))?;
    for (key, value) in base.metadata() {
        if REPLACED.contains(&key.as_str()) || key.starts_with(GGUF_PREFIX) {
            continue;
        }
        w.add_metadata(key.clone(), value.clone())?;
    }
    add_card(&mut w, card)?;
    for (hf, dense) in tensors {
        let (gname, permute) =
            gguf_name(&hf).ok_or_else(|| anyhow::anyhow!("tensor '{hf}' has no GGUF name"))?;
        let heads = match permute {
            Permute::None => None,
            Permute::QueryHeads => Some(config.num_heads),
            Permute::KeyValueHeads => Some(config.num_kv_heads),
        };
        let data = match heads {
            Some(h) => permute_rows(&dense.data, dense.shape[0], dense.shape[1], h),
            None => dense.data,
        };
        let ty = tensor_type(&dense.shape, weights);
        w.add_tensor_quantized(&gname, &dense.shape, ty, &data)
            .with_context(|| format!("encoding {gname} as {ty}"))?;
    }
    w.write_to(out)?;
    Ok(())
}

/// The card as `seedforge.*` keys: the whole of it as JSON (`seedforge.classifier`), and the
/// parts a program reading GGUF metadata needs most as keys of their own.
fn add_card(w: &mut GgufWriter, card: &Card) -> anyhow::Result<()> {
    let key = |k: &str| format!("{GGUF_PREFIX}{k}");
    w.add_metadata(key("classifier"), card.to_json())?;
    w.add_metadata(key("format_version"), card.format_version)?;
    w.add_metadata(key("task"), card.task.as_str())?;
    w.add_metadata(key("labels"), MetaValue::from(card.labels.clone()))?;
    w.add_metadata(
        key("label_words"),
        MetaValue::from(card.label_words.clone()),
    )?;
    w.add_metadata(key("label_word_prefix"), card.label_word_prefix.as_str())?;
    w.add_metadata(key("prompt.template"), card.prompt.template.as_str())?;
    w.add_metadata(key("prompt.before"), card.prompt.before.as_str())?;
    w.add_metadata(key("prompt.after"), card.prompt.after.as_str())?;
    if let Some(c) = &card.calibration {
        w.add_metadata(key("calibration.strength"), c.strength as f32)?;
        w.add_metadata(
            key("calibration.prior"),
            c.prior.iter().map(|&p| p as f32).collect::<Vec<f32>>(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_stay_f32_and_odd_rows_fall_back_to_f16() {
        assert_eq!(tensor_type(&[576], Weights::Q8_0), GgmlType::F32);
        assert_eq!(tensor_type(&[192, 576], Weights::Q8_0), GgmlType::Q8_0);
        assert_eq!(tensor_type(&[192, 40], Weights::Q8_0), GgmlType::F16);
        assert_eq!(tensor_type(&[192, 40], Weights::F32), GgmlType::F32);
        assert_eq!(tensor_type(&[192, 576], Weights::F16), GgmlType::F16);
    }
}
