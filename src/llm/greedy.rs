//! Single-sequence greedy decoding with the KV cache: what `inspect generate` and the
//! reference tests use. Sampling and batched decoding live in the generation engine.

use burn::tensor::{Tensor, TensorData};

use crate::llm::model::{KvCache, Llama, StepLayout};
use crate::llm::readback::{ReadBackError, f32_values};

/// Index of the largest value; the first one on ties, as `torch.argmax` does.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Logits of row 0 of `[B, V]` as a vector.
pub fn row_logits(logits: Tensor<2>) -> Result<Vec<f32>, ReadBackError> {
    let [_, v] = logits.dims();
    f32_values(logits.slice([0..1, 0..v]).into_data(), "logits")
}

/// Greedy continuation of `prompt`: exactly `max_new` tokens unless one of `stop` comes first
/// (it is included). An empty `stop` never stops early, as the reference fixture's loop.
pub fn greedy(
    model: &Llama,
    prompt: &[u32],
    max_new: usize,
    stop: &[u32],
) -> Result<Vec<u32>, ReadBackError> {
    if prompt.is_empty() || max_new == 0 {
        return Ok(Vec::new());
    }
    let device = model.device();
    let config_heads = model.layers.first().map(|b| &b.self_attn);
    let Some(attn) = config_heads else {
        return Ok(Vec::new());
    };
    let mut cache = KvCache::with_dims(
        model.layers.len(),
        attn.num_kv_heads,
        attn.head_dim,
        1,
        prompt.len() + max_new,
        &device,
    );
    let ids: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
    let tokens = Tensor::from_data(TensorData::new(ids, [1, prompt.len()]), &device);
    let layout = StepLayout::for_prompts(&[prompt.len()]);
    let mut logits = model.forward_last(tokens, &layout, Some(&mut cache));
    let mut out = Vec::with_capacity(max_new);
    loop {
        let next = argmax(&row_logits(logits)?) as u32;
        out.push(next);
        if out.len() == max_new || stop.contains(&next) {
            return Ok(out);
        }
        let layout = StepLayout::decode(&[0], cache.len());
        let tokens = Tensor::from_data(TensorData::new(vec![next as i64], [1, 1]), &device);
        logits = model.forward_last(tokens, &layout, Some(&mut cache));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_values() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[5.0]), 0);
    }
}
