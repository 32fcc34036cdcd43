//! Where the transformer's weights come from. Every source answers in one convention —
//! Hugging Face tensor names, row-major `[out, in]` f32, Q/K rows in transformers' rotate-half
//! order — so the model is built the same way from a GGUF file or a safetensors folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::llm::config::{Architecture, ModelConfig};
use crate::llm::gguf::GgufFile;

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("{file}: tensor '{name}' is missing")]
    Missing { file: PathBuf, name: String },
    #[error("tensor '{name}' has shape {actual:?}, expected {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{0}")]
    Gguf(#[from] crate::llm::gguf::GgufError),
    #[error("{file}: {message}")]
    File { file: PathBuf, message: String },
    #[error("tensor '{name}' {reason}")]
    Invalid { name: String, reason: String },
}

impl WeightError {
    pub fn shape(name: &str, expected: &[usize], actual: &[usize]) -> Self {
        WeightError::Shape {
            name: name.to_string(),
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        }
    }
}

/// Rows `rows` of a 2-D tensor.
fn rows_of(t: Dense, name: &str, rows: std::ops::Range<usize>) -> Result<Dense, WeightError> {
    match t.shape[..] {
        [n, cols] if rows.start <= rows.end && rows.end <= n => Ok(Dense {
            shape: vec![rows.len(), cols],
            data: t.data[rows.start * cols..rows.end * cols].to_vec(),
        }),
        _ => Err(WeightError::Invalid {
            name: name.to_string(),
            reason: format!("of shape {:?} has no rows {rows:?}", t.shape),
        }),
    }
}

/// A dense f32 tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub trait WeightSource: Sync {
    /// The tensor with this Hugging Face name.
    fn load(&self, name: &str) -> Result<Dense, WeightError>;
    fn has(&self, name: &str) -> bool;
    /// Rows `rows` of the 2-D tensor `name`, `[rows.len(), cols]`. By default the whole tensor
    /// is read and cut; a GGUF file decodes only the rows' blocks.
    fn load_rows(&self, name: &str, rows: std::ops::Range<usize>) -> Result<Dense, WeightError> {
        rows_of(self.load(name)?, name, rows)
    }
    /// Whether Gemma's norm weights are stored as `1 + w` (llama.cpp's converter adds the one;
    /// transformers' checkpoints do not).
    fn norms_shifted(&self) -> bool {
        false
    }
}

/// Weights read from a GGUF file.
pub struct GgufWeights<'a> {
    file: &'a GgufFile,
    num_heads: usize,
    num_kv_heads: usize,
    /// Whether the file's Q/K rows are in llama.cpp's interleaved order (Llama files).
    permuted: bool,
    arch: Architecture,
}

impl<'a> GgufWeights<'a> {
    pub fn new(file: &'a GgufFile, config: &ModelConfig) -> Self {
        GgufWeights {
            file,
            num_heads: config.num_heads,
            num_kv_heads: config.num_kv_heads,
            permuted: config.arch.gguf_permuted_qk(),
            arch: config.arch,
        }
    }
}

/// The GGUF name of a Hugging Face tensor of a model of family `arch`, and how many heads its
/// rows are permuted in (llama.cpp's converter interleaves the rotary halves of Llama's Q and K).
pub fn gguf_name(hf: &str, arch: Architecture) -> Option<(String, Permute)> {
    match hf {
        "model.embed_tokens.weight" => return Some(("token_embd.weight".into(), Permute::None)),
        "model.norm.weight" => return Some(("output_norm.weight".into(), Permute::None)),
        "lm_head.weight" => return Some(("output.weight".into(), Permute::None)),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, module) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (short, permute) = match module {
        "input_layernorm.weight" => ("attn_norm", Permute::None),
        "self_attn.q_proj.weight" => ("attn_q", Permute::QueryHeads),
        "self_attn.k_proj.weight" => ("attn_k", Permute::KeyValueHeads),
        "self_attn.v_proj.weight" => ("attn_v", Permute::None),
        "self_attn.q_proj.bias" => return Some(bias(layer, "attn_q", Permute::QueryHeads)),
        "self_attn.k_proj.bias" => return Some(bias(layer, "attn_k", Permute::KeyValueHeads)),
        "self_attn.v_proj.bias" => return Some(bias(layer, "attn_v", Permute::None)),
        "self_attn.q_norm.weight" => ("attn_q_norm", Permute::None),
        "self_attn.k_norm.weight" => ("attn_k_norm", Permute::None),
        "self_attn.o_proj.weight" => ("attn_output", Permute::None),
        // Gemma normalises the attention's output with `post_attention_layernorm`; its norm
        // before the MLP is the one llama.cpp calls `ffn_norm`.
        "post_attention_layernorm.weight" if arch.gemma() => ("post_attention_norm", Permute::None),
        "post_attention_layernorm.weight" => ("ffn_norm", Permute::None),
        "pre_feedforward_layernorm.weight" => ("ffn_norm", Permute::None),
        "post_feedforward_layernorm.weight" => ("post_ffw_norm", Permute::None),
        "mlp.gate_proj.weight" => ("ffn_gate", Permute::None),
        "mlp.up_proj.weight" => ("ffn_up", Permute::None),
        "mlp.down_proj.weight" => ("ffn_down", Permute::None),
        _ => return None,
    };
    Some((format!("blk.{layer}.{short}.weight"), permute))
}

fn bias(layer: usize, short: &str, permute: Permute) -> (String, Permute) {
    (format!("blk.{layer}.{short}.bias"), permute)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permute {
    None,
    QueryHeads,
    KeyValueHeads,
}

impl WeightSource for GgufWeights<'_> {
    fn load(&self, name: &str) -> Result<Dense, WeightError> {
        let missing = || WeightError::Missing {
            file: self.file.path().to_path_buf(),
            name: name.to_string(),
        };
        let (gname, permute) = gguf_name(name, self.arch).ok_or_else(missing)?;
        if self.file.tensor(&gname).is_none() {
            return Err(missing());
        }
        let t = self.file.dequantize(&gname)?;
        // The decoded copy is what the model keeps; the file's pages need not stay resident.
        self.file.release(&gname);
        let mut dense = Dense {
            shape: t.shape,
            data: t.data,
        };
        let heads = match permute {
            _ if !self.permuted => return Ok(dense),
            Permute::None => return Ok(dense),
            Permute::QueryHeads => self.num_heads,
            Permute::KeyValueHeads => self.num_kv_heads,
        };
        // A bias is permuted as a one-column matrix.
        let cols = dense.shape.get(1).copied().unwrap_or(1);
        if dense.shape.len() > 2 || heads == 0 || !dense.shape[0].is_multiple_of(2 * heads) {
            return Err(WeightError::File {
                file: self.file.path().to_path_buf(),
                message: format!(
                    "tensor '{gname}' of shape {:?} cannot hold {heads} rotary heads",
                    dense.shape
                ),
            });
        }
        dense.data = unpermute_rows(&dense.data, dense.shape[0], cols, heads);
        Ok(dense)
    }

    fn has(&self, name: &str) -> bool {
        gguf_name(name, self.arch).is_some_and(|(g, _)| self.file.tensor(&g).is_some())
    }

    fn load_rows(&self, name: &str, rows: std::ops::Range<usize>) -> Result<Dense, WeightError> {
        match gguf_name(name, self.arch) {
            // Rows of a permuted Q/K matrix are not the file's rows.
            Some((gname, Permute::None)) if self.file.tensor(&gname).is_some() => {
                let t = self.file.dequantize_rows(&gname, rows)?;
                self.file.release(&gname);
                Ok(Dense {
                    shape: t.shape,
                    data: t.data,
                })
            }
            _ => rows_of(self.load(name)?, name, rows),
        }
    }

    fn norms_shifted(&self) -> bool {
        true
    }
}

/// Undoes llama.cpp's `permute`: within each head, GGUF row `2j + t` holds transformers' row
/// `t·(head_dim/2) + j`.
pub fn unpermute_rows(data: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for t in 0..2 {
            for j in 0..half {
                let hf_row = h * head_dim + t * half + j;
                let gguf_row = h * head_dim + 2 * j + t;
                out[hf_row * cols..(hf_row + 1) * cols]
                    .copy_from_slice(&data[gguf_row * cols..(gguf_row + 1) * cols]);
            }
        }
    }
    out
}

/// The inverse of [`unpermute_rows`], used when writing a GGUF from Hugging Face-order rows.
pub fn permute_rows(data: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for t in 0..2 {
            for j in 0..half {
                let hf_row = h * head_dim + t * half + j;
                let gguf_row = h * head_dim + 2 * j + t;
                out[gguf_row * cols..(gguf_row + 1) * cols]
                    .copy_from_slice(&data[hf_row * cols..(hf_row + 1) * cols]);
            }
        }
    }
    out
}

/// Weights read from the `*.safetensors` files of a Hugging Face model folder.
pub struct SafetensorsWeights {
    /// Tensor name → the file holding it.
    index: HashMap<String, PathBuf>,
    maps: HashMap<PathBuf, memmap2::Mmap>,
}

impl SafetensorsWeights {
    pub fn open(dir: &Path) -> Result<Self, WeightError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| WeightError::File {
                file: dir.to_path_buf(),
                message: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(WeightError::File {
                file: dir.to_path_buf(),
                message: "no *.safetensors file in this folder".into(),
            });
        }
        let mut index = HashMap::new();
        let mut maps = HashMap::new();
        for f in files {
            let file = std::fs::File::open(&f).map_err(|e| WeightError::File {
                file: f.clone(),
                message: e.to_string(),
            })?;
            // SAFETY: the map is read-only and the file is not modified while seedforge runs;
            // a concurrent truncation would be the user's doing, as with any mmap-ing loader.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| WeightError::File {
                file: f.clone(),
                message: e.to_string(),
            })?;
            let st =
                safetensors::SafeTensors::deserialize(&map).map_err(|e| WeightError::File {
                    file: f.clone(),
                    message: format!("not a valid safetensors file: {e}"),
                })?;
            for name in st.names() {
                index.insert(name.to_string(), f.clone());
            }
            maps.insert(f, map);
        }
        Ok(SafetensorsWeights { index, maps })
    }
}

impl WeightSource for SafetensorsWeights {
    fn load(&self, name: &str) -> Result<Dense, WeightError> {
        let path = self.index.get(name).ok_or_else(|| WeightError::Missing {
            file: self.maps.keys().next().cloned().unwrap_or_default(),
            name: name.to_string(),
        })?;
        let file_err = |message: String| WeightError::File {
            file: path.clone(),
            message,
        };
        let st = safetensors::SafeTensors::deserialize(&self.maps[path])
            .map_err(|e| file_err(e.to_string()))?;
        let view = st.tensor(name).map_err(|e| file_err(e.to_string()))?;
        let bytes = view.data();
        use safetensors::Dtype;
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(file_err(format!(
                    "tensor '{name}' has dtype {other:?}; only F32, F16 and BF16 are supported"
                )));
            }
        };
        Ok(Dense {
            shape: view.shape().to_vec(),
            data,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_matches_the_documented_row_map() {
        // hf_row r = gguf_row perm[r], perm = arange(n).reshape(heads, half, 2).swapaxes(1, 2)
        let (heads, head_dim, cols) = (3, 8, 2);
        let rows = heads * head_dim;
        let gguf: Vec<f32> = (0..rows * cols).map(|i| (i / cols) as f32).collect();
        let hf = unpermute_rows(&gguf, rows, cols, heads);
        for h in 0..heads {
            for t in 0..2 {
                for j in 0..head_dim / 2 {
                    let r = h * head_dim + t * (head_dim / 2) + j;
                    let perm_r = h * head_dim + j * 2 + t;
                    assert_eq!(hf[r * cols], perm_r as f32);
                }
            }
        }
        assert_eq!(permute_rows(&hf, rows, cols, heads), gguf);
    }

    #[test]
    fn names_map_both_ways_for_every_layer_tensor() {
        let llama = Architecture::Llama;
        assert_eq!(
            gguf_name("model.layers.12.self_attn.k_proj.weight", llama),
            Some(("blk.12.attn_k.weight".to_string(), Permute::KeyValueHeads))
        );
        assert_eq!(gguf_name("model.layers.x.mlp.up_proj.weight", llama), None);
        assert_eq!(gguf_name("something.else", llama), None);
        // The same Hugging Face name is a different norm in Gemma's block.
        let name = |hf: &str, arch| gguf_name(hf, arch).map(|(g, _)| g);
        let post = "model.layers.3.post_attention_layernorm.weight";
        assert_eq!(name(post, llama).as_deref(), Some("blk.3.ffn_norm.weight"));
        let gemma = Architecture::Gemma3;
        assert_eq!(
            name(post, gemma).as_deref(),
            Some("blk.3.post_attention_norm.weight")
        );
        assert_eq!(
            name("model.layers.3.pre_feedforward_layernorm.weight", gemma).as_deref(),
            Some("blk.3.ffn_norm.weight")
        );
    }
}
