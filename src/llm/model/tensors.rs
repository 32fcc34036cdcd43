//! The weights of a loaded [`Llama`] read back as files hold them: Hugging Face tensor names,
//! row-major `[out, in]` f32, Q/K rows in transformers' rotate-half order — the convention every
//! [`WeightSource`](crate::llm::weights::WeightSource) answers in, so what this returns loads
//! back through [`Llama::load`] unchanged. Writers (GGUF, safetensors) start from here.
//!
//! Adapters are not read: fold them into the weights first (`train::merge`).

use burn::tensor::Tensor;

use super::Llama;
use super::linear::Projection;
use super::transpose;
use crate::llm::readback::{ReadBackError, f32_values};
use crate::llm::weights::Dense;

/// Every tensor of `model` in load order (embedding, layers, final norm, then `lm_head` unless
/// `tied`, when it is the embedding's copy and files leave it out).
pub fn hf_tensors(model: &Llama, tied: bool) -> Result<Vec<(String, Dense)>, ReadBackError> {
    let mut out = Vec::with_capacity(2 + 9 * model.layers.len());
    let embedding = match (&model.embed_tokens, &model.embed_quant) {
        (Some(e), _) => {
            let [vocab, d] = e.shape().dims::<2>();
            Dense {
                shape: vec![vocab, d],
                data: values(e.val())?,
            }
        }
        (None, Some(q)) => Dense {
            shape: vec![q.rows(), q.cols()],
            data: q.dequantize(),
        },
        (None, None) => unreachable!("the embedding is held one way or the other"),
    };
    out.push(("model.embed_tokens.weight".to_string(), embedding));
    for (i, block) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        let a = &block.self_attn;
        let m = &block.mlp;
        out.push((
            format!("{p}.input_layernorm.weight"),
            vector(block.input_norm.weight.val())?,
        ));
        for (name, proj) in [
            ("self_attn.q_proj", &a.q_proj),
            ("self_attn.k_proj", &a.k_proj),
            ("self_attn.v_proj", &a.v_proj),
            ("self_attn.o_proj", &a.o_proj),
        ] {
            out.push((format!("{p}.{name}.weight"), matrix(proj)?));
            if let Some(b) = &proj.bias {
                out.push((format!("{p}.{name}.bias"), vector(b.val())?));
            }
        }
        for (name, norm) in [("q_norm", &a.q_norm), ("k_norm", &a.k_norm)] {
            if let Some(n) = norm {
                out.push((
                    format!("{p}.self_attn.{name}.weight"),
                    vector(n.weight.val())?,
                ));
            }
        }
        out.push((
            format!("{p}.post_attention_layernorm.weight"),
            vector(block.post_attention_norm.weight.val())?,
        ));
        for (name, proj) in [
            ("mlp.gate_proj", &m.gate_proj),
            ("mlp.up_proj", &m.up_proj),
            ("mlp.down_proj", &m.down_proj),
        ] {
            out.push((format!("{p}.{name}.weight"), matrix(proj)?));
        }
    }
    out.push((
        "model.norm.weight".to_string(),
        vector(model.norm.weight.val())?,
    ));
    if !tied {
        out.push(("lm_head.weight".to_string(), matrix(&model.lm_head)?));
    }
    Ok(out)
}

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ReadBackError> {
    f32_values(t.into_data(), "model weights")
}

fn vector(t: Tensor<1>) -> Result<Dense, ReadBackError> {
    let n = t.dims()[0];
    Ok(Dense {
        shape: vec![n],
        data: values(t)?,
    })
}

/// A projection's `[in, out]` weight as the file's `[out, in]` (blocks decoded).
fn matrix(proj: &Projection) -> Result<Dense, ReadBackError> {
    let (d_in, d_out) = (proj.d_in(), proj.d_out());
    if let Some(q) = &proj.quant {
        return Ok(Dense {
            shape: vec![d_out, d_in],
            data: q.matrix.dequantize(),
        });
    }
    let data = values(proj.dense_weight())?;
    Ok(Dense {
        shape: vec![d_out, d_in],
        data: transpose(&data, d_in, d_out),
    })
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::llm::model::tests::{MemoryWeights, tiny_config};
    use crate::llm::weights::WeightSource;

    #[test]
    fn read_back_tensors_equal_what_was_loaded() {
        let config = tiny_config();
        let source = MemoryWeights::random(&config, 7);
        let model = Llama::load(&config, &source, &Device::flex()).unwrap();
        let tensors = hf_tensors(&model, true).unwrap();
        assert_eq!(tensors.len(), 2 + 9 * config.num_layers);
        for (name, dense) in &tensors {
            assert_eq!(dense, &source.load(name).unwrap(), "{name}");
        }
        let untied = hf_tensors(&model, false).unwrap();
        let (name, head) = untied.last().unwrap();
        assert_eq!(name, "lm_head.weight");
        assert_eq!(head, &source.load("model.embed_tokens.weight").unwrap());
    }
}
