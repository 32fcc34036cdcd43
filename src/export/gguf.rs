//! A merged model as a GGUF file llama.cpp loads: the base file's metadata (architecture,
//! hyper-parameters, tokenizer, chat template) copied over, the file type and name set for the
//! export, the classifier card under `seedforge.*` keys, and every tensor under llama.cpp's name
//! with Q/K rows permuted back into its interleaved order (`weights::permute_rows`, the inverse
//! of what the loader undoes). Matrices are stored as the chosen type; norms stay F32, as
//! llama.cpp's converter leaves them. At q8_0 and mixed, a tensor the adapter left as it was
//! (its values equal the base file's decoded ones, bit for bit) is not encoded again: the base
//! file's blocks are copied in their own type, as llama.cpp's export-lora and quantize tools
//! leave source tensors, so no second rounding falls on it.

use std::io::Write;

use anyhow::Context;

use super::Weights;
use super::card::{Card, GGUF_PREFIX};
use crate::llm::config::ModelConfig;
use crate::llm::gguf::{GgmlType, GgufFile, GgufWriter, MetaValue, TensorInfo};
use crate::llm::weights::{Dense, Permute, gguf_name, permute_rows};

/// Metadata keys of the base file that the export sets itself.
const REPLACED: [&str; 3] = ["general.file_type", "general.name", "general.alignment"];

/// llama.cpp's `llama_ftype` for a file whose matrices are mostly of type `ty`, if it has one.
fn file_type(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        GgmlType::BF16 => 32,
        _ => return None,
    })
}

/// Whether an unchanged tensor of the base file keeps its blocks at `weights`: at q8_0 when
/// they are quantized (a float tensor is encoded as q8_0 like the rest), always at mixed.
fn keeps_source(source: GgmlType, weights: Weights) -> bool {
    match weights {
        Weights::F32 | Weights::F16 => false,
        Weights::Q8_0 => !matches!(source, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16),
        Weights::Mixed => true,
    }
}

/// The ggml type a tensor of `shape` is encoded as: 1-D tensors in F32; a matrix in `weights`
/// (F16 for mixed), or F16 when its rows do not fill whole Q8_0 blocks.
fn tensor_type(shape: &[usize], weights: Weights) -> GgmlType {
    let ty = match weights {
        Weights::F32 => GgmlType::F32,
        Weights::F16 | Weights::Mixed => GgmlType::F16,
        Weights::Q8_0 => GgmlType::Q8_0,
    };
    match shape {
        [_] => GgmlType::F32,
        [.., cols] if !(*cols as u64).is_multiple_of(ty.block_size()) => GgmlType::F16,
        _ => ty,
    }
}

/// How one tensor goes into the file.
enum Stored<'a> {
    /// The base file's tensor, its bytes copied as they are.
    Copied(&'a TensorInfo),
    /// Values (in GGUF row order) encoded as a type.
    Encoded(Vec<usize>, GgmlType, Vec<f32>),
}

impl Stored<'_> {
    fn ty(&self) -> GgmlType {
        match self {
            Stored::Copied(info) => info.ggml_type,
            Stored::Encoded(_, ty, _) => *ty,
        }
    }
}

/// Whether `data` (GGUF row order) is exactly what `info` of `base` decodes to.
fn unchanged(base: &GgufFile, info: &TensorInfo, shape: &[usize], data: &[f32]) -> bool {
    info.shape() == shape
        && base.dequantize_tensor(info).is_ok_and(|d| {
            d.data
                .iter()
                .map(|x| x.to_bits())
                .eq(data.iter().map(|x| x.to_bits()))
        })
}

/// The GGUF file for `tensors` (Hugging Face names and layout, as `llm::model::tensors` gives
/// them), streamed to `out`. Returns how many tensors were copied from `base` as they were.
pub fn write(
    base: &GgufFile,
    config: &ModelConfig,
    tensors: Vec<(String, Dense)>,
    weights: Weights,
    card: &Card,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let mut stored = Vec::with_capacity(tensors.len());
    for (hf, dense) in tensors {
        let (gname, permute) = gguf_name(&hf, config.arch)
            .ok_or_else(|| anyhow::anyhow!("tensor '{hf}' has no GGUF name"))?;
        let heads = match permute {
            Permute::None => None,
            Permute::QueryHeads => Some(config.num_heads),
            Permute::KeyValueHeads => Some(config.num_kv_heads),
        };
        let data = match heads {
            Some(h) => permute_rows(&dense.data, dense.shape[0], dense.shape[1], h),
            None => dense.data,
        };
        let source = base
            .tensor(&gname)
            .filter(|info| keeps_source(info.ggml_type, weights));
        let s = match source {
            Some(info) if unchanged(base, info, &dense.shape, &data) => Stored::Copied(info),
            _ => Stored::Encoded(
                dense.shape.clone(),
                tensor_type(&dense.shape, weights),
                data,
            ),
        };
        stored.push((gname, s));
    }
    // The file type names the type most matrix values are stored as.
    let mut by_type: Vec<(GgmlType, u64)> = Vec::new();
    for (_, s) in &stored {
        let n = match s {
            Stored::Copied(info) if info.dims.len() > 1 => info.n_elements(),
            Stored::Encoded(shape, _, _) if shape.len() > 1 => {
                shape.iter().product::<usize>() as u64
            }
            _ => continue,
        };
        match by_type.iter_mut().find(|(t, _)| *t == s.ty()) {
            Some((_, total)) => *total += n,
            None => by_type.push((s.ty(), n)),
        }
    }
    let main_type = by_type.iter().max_by_key(|(_, n)| *n).map(|(t, _)| *t);

    let mut w = GgufWriter::new();
    let base_name = base.get_str("general.name").unwrap_or("model");
    w.add_metadata("general.name", format!("{base_name} + {name}"))?;
    if let Some(ft) = main_type.and_then(file_type) {
        w.add_metadata("general.file_type", ft)?;
    }
    for (key, value) in base.metadata() {
        if REPLACED.contains(&key.as_str()) || key.starts_with(GGUF_PREFIX) {
            continue;
        }
        w.add_metadata(key.clone(), value.clone())?;
    }
    add_card(&mut w, card)?;
    let mut copied = 0;
    for (gname, s) in stored {
        match s {
            Stored::Copied(info) => {
                w.add_tensor_raw(&gname, &info.dims, info.ggml_type, base.tensor_bytes(info))
                    .with_context(|| format!("copying {gname} as {}", info.ggml_type))?;
                copied += 1;
            }
            Stored::Encoded(shape, ty, data) => {
                w.add_tensor_quantized(&gname, &shape, ty, &data)
                    .with_context(|| format!("encoding {gname} as {ty}"))?;
            }
        }
    }
    w.write_to(out)?;
    Ok(copied)
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
        assert_eq!(tensor_type(&[192, 576], Weights::Mixed), GgmlType::F16);
        assert!(keeps_source(GgmlType::Q4_1, Weights::Q8_0));
        assert!(!keeps_source(GgmlType::F16, Weights::Q8_0));
        assert!(keeps_source(GgmlType::F16, Weights::Mixed));
        assert!(!keeps_source(GgmlType::Q4_1, Weights::F16));
    }
}
