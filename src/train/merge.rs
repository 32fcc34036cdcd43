//! A run's LoRA adapter folded into the base weights, for export: `W' = W + (alpha/r)·B·A` on
//! every adapted projection (PEFT's convention, `B` `[out, r]`, `A` `[r, in]`; the model holds
//! the transpose, `W [in, out] += s·a·b` with `a` `[in, r]`, `b` `[r, out]`, which is the same
//! sum). The model keeps Q/K rows in transformers' order whatever file it came from, and PEFT's
//! factors are in that order too, so the merge needs no row permutation; a GGUF writer permutes
//! the merged Q/K rows afterwards, as llama.cpp's converter does.
//!
//! The result carries no adapter: it is a plain model that computes what base + adapter
//! computed, at the base model's cost.

use std::path::Path;

use super::lora::{self, LoraInfo, Target};
use super::peft;
use crate::llm::model::Llama;

/// A copy of `base` with the adapter in `adapter_dir` merged into its weights, and what that
/// adapter was. `base` is left as it is.
pub fn merged(base: &Llama, adapter_dir: &Path) -> anyhow::Result<(Llama, LoraInfo)> {
    let mut model = peft::with_adapter(base, adapter_dir)?;
    let info = lora::info(&model).ok_or_else(|| {
        anyhow::anyhow!("{}: the adapter attached nothing", adapter_dir.display())
    })?;
    fold_in(&mut model);
    Ok((model, info))
}

/// Adds every adapter into its base weight and removes it, so the weights alone compute what
/// weights + adapters did.
pub fn fold_in(model: &mut Llama) {
    lora::merge(model);
    for block in &mut model.layers {
        for t in Target::ALL {
            // Dropped, not detached: `lora::detach` would take the merged delta back out.
            lora::projection_mut(block, t).adapter = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::llm::model::tensors::hf_tensors;
    use crate::llm::model::tests::tiny_model;
    use crate::llm::model::{StepLayout, tokens_tensor};
    use crate::util::rng::Rng;

    /// Adapters on every projection with random, clearly non-zero factors (a trained adapter's
    /// `B` is far from PEFT's zero start).
    fn strong_adapter(model: &mut Llama, rank: usize, alpha: f64) {
        let mut rng = Rng::new(3);
        for block in &mut model.layers {
            for t in Target::ALL {
                let proj = lora::projection_mut(block, t);
                let (i, o) = (proj.d_in(), proj.d_out());
                let a = (0..i * rank).map(|_| rng.normal() as f32 * 0.3).collect();
                let b = (0..rank * o).map(|_| rng.normal() as f32 * 0.3).collect();
                proj.adapter = Some(lora::low_rank(
                    proj,
                    rank,
                    a,
                    b,
                    alpha / rank as f64,
                    0.0,
                    1,
                ));
            }
        }
    }

    fn logits(m: &Llama, ids: &[u32]) -> Vec<f32> {
        let rows = vec![ids.to_vec()];
        let out = m.forward_last(
            tokens_tensor(&rows, 0, &m.device()),
            &StepLayout::for_prompts(&[ids.len()]),
            None,
        );
        out.into_data().try_into_vec::<f32>().unwrap()
    }

    fn read_peft(dir: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
        let bytes = std::fs::read(dir.join(peft::WEIGHTS_FILE)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let v = st.tensor(name).unwrap();
        let data = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (v.shape().to_vec(), data)
    }

    #[test]
    fn merged_weights_are_base_plus_scaled_b_times_a_in_peft_layout() {
        let device = Device::flex();
        let base = tiny_model(&device);
        let mut adapted = base.clone();
        let (rank, alpha) = (4, 8.0);
        strong_adapter(&mut adapted, rank, alpha);
        let dir = tempfile::tempdir().unwrap();
        peft::save(&adapted, dir.path(), "tiny").unwrap();

        let (merged_model, info) = merged(&base, dir.path()).unwrap();
        assert_eq!(info.targets, Target::ALL.to_vec());
        assert!(lora::adapters(&merged_model).is_empty());
        let before: std::collections::HashMap<_, _> =
            hf_tensors(&base, true).unwrap().into_iter().collect();
        let after = hf_tensors(&merged_model, true).unwrap();
        let scale = (alpha / rank as f64) as f32;
        for (name, w) in &after {
            let w0 = &before[name];
            let Some(stem) = name.strip_suffix(".weight") else {
                continue;
            };
            let lora_key = |f: &str| format!("base_model.model.{stem}.{f}.weight");
            if !stem.ends_with("_proj") {
                assert_eq!(w, w0, "{name} is not adapted and must not change");
                continue;
            }
            // W + s·B·A from the PEFT file, computed by hand in [out, in].
            let (bs, b) = read_peft(dir.path(), &lora_key("lora_B"));
            let (as_, a) = read_peft(dir.path(), &lora_key("lora_A"));
            let (out, r, inp) = (bs[0], bs[1], as_[1]);
            assert_eq!(w.shape, vec![out, inp]);
            let mut worst = 0.0f32;
            let mut moved = 0.0f32;
            for o in 0..out {
                for i in 0..inp {
                    let delta: f32 = (0..r).map(|k| b[o * r + k] * a[k * inp + i]).sum();
                    let want = w0.data[o * inp + i] + scale * delta;
                    worst = worst.max((w.data[o * inp + i] - want).abs());
                    moved = moved.max((scale * delta).abs());
                }
            }
            assert!(worst < 1e-5, "{name}: off by {worst}");
            assert!(moved > 0.1, "{name}: the adapter must move the weight");
        }

        // The merged model computes what base + adapter computes.
        let ids = [3, 17, 9, 40, 2, 11];
        let want = logits(&adapted, &ids);
        let got = logits(&merged_model, &ids);
        let base_logits = logits(&base, &ids);
        let diff = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        };
        assert!(diff(&want, &got) < 1e-4, "{}", diff(&want, &got));
        assert!(
            diff(&want, &base_logits) > 0.1,
            "the adapter changes the logits"
        );
    }
}
