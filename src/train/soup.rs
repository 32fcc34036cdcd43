//! A soup of LoRA runs: the adapters of several runs on the same base model averaged in weight
//! space, `ΔW = (1/k)·Σᵢ sᵢ·Aᵢ·Bᵢ`. The average is kept exact rather than re-factorised: one
//! adapter of rank `Σ rᵢ` whose `A` stacks the members' `A`s and whose `B` stacks their `B`s,
//! each scaled by `sᵢ/k` (scale 1, so PEFT reads it with `lora_alpha = r`).
//!
//! Why: a few-shot run's accuracy moves by several points with its seed and with which seeds it
//! holds out for early stopping (docs/results.md); averaging runs that saw different shares
//! removes much of that luck at inference cost of one adapter.

use burn::tensor::Tensor;

use super::lora::{self, Target};
use crate::llm::model::Llama;

/// `members[0]` with its adapters replaced by the soup of every member's. The members must carry
/// adapters on the same projections of the same base model, none of them merged.
pub fn soup(members: &[Llama]) -> anyhow::Result<Llama> {
    let first = members
        .first()
        .ok_or_else(|| anyhow::anyhow!("a soup needs at least one run"))?;
    let k = members.len() as f32;
    let sites: Vec<(usize, Target)> = lora::adapters(first)
        .iter()
        .map(|(l, t, _)| (*l, *t))
        .collect();
    anyhow::ensure!(!sites.is_empty(), "the runs to average carry no adapters");
    for (i, m) in members.iter().enumerate() {
        let here: Vec<(usize, Target)> =
            lora::adapters(m).iter().map(|(l, t, _)| (*l, *t)).collect();
        anyhow::ensure!(
            here == sites,
            "run {} of the soup has adapters on other projections than run 1",
            i + 1
        );
        anyhow::ensure!(
            lora::adapters(m).iter().all(|(_, _, lr)| !lr.merged),
            "run {} of the soup has its adapter merged into the weights",
            i + 1
        );
    }
    let mut out = first.clone();
    for (layer, target) in sites {
        let mut a_parts: Vec<(Vec<f32>, usize)> = Vec::new();
        let mut b_rows: Vec<f32> = Vec::new();
        let mut rank = 0;
        let mut dropout = 0.0;
        for m in members {
            let lr = lora::projection(&m.layers[layer], target)
                .adapter
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("layer {layer} {target}: no adapter"))?;
            let [_, r] = lr.a.shape().dims::<2>();
            let a = values(lr.a.val())?;
            let scale = (lr.scale as f32) / k;
            b_rows.extend(values(lr.b.val())?.into_iter().map(|x| x * scale));
            a_parts.push((a, r));
            rank += r;
            dropout = lr.dropout;
        }
        // A is [in, r] row-major: each input row concatenates the members' rows.
        let d_in = a_parts[0].0.len() / a_parts[0].1.max(1);
        let mut a = Vec::with_capacity(d_in * rank);
        for row in 0..d_in {
            for (part, r) in &a_parts {
                a.extend_from_slice(&part[row * r..(row + 1) * r]);
            }
        }
        let block = &mut out.layers[layer];
        let proj = lora::projection_mut(block, target);
        proj.adapter = Some(lora::low_rank(
            proj,
            rank,
            a,
            b_rows,
            1.0,
            dropout,
            layer as u64,
        ));
    }
    Ok(out)
}

fn values(t: Tensor<2>) -> anyhow::Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading an adapter factor: {e:?}"))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::llm::model::tests::tiny_model;
    use crate::llm::model::{StepLayout, tokens_tensor};
    use crate::util::rng::Rng;

    fn with_adapter(base: &Llama, rank: usize, alpha: f64, seed: u64) -> Llama {
        let mut m = base.clone();
        let mut rng = Rng::new(seed);
        for block in &mut m.layers {
            for t in [Target::Q, Target::V, Target::Down] {
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
        m
    }

    fn logits(m: &Llama) -> Vec<f32> {
        let ids = [3u32, 17, 9, 40, 2, 11];
        let rows = vec![ids.to_vec()];
        let out = m.forward_last(
            tokens_tensor(&rows, 0, &m.device()),
            &StepLayout::for_prompts(&[ids.len()]),
            None,
        );
        out.into_data().try_into_vec::<f32>().unwrap()
    }

    /// The soup's output is the output of the base weights plus the mean of the members' ΔW:
    /// merged into the weights, the soup and the mean of the merged members agree.
    #[test]
    fn a_soup_computes_the_mean_of_the_members_deltas() {
        let base = tiny_model(&Device::flex());
        let members = [
            with_adapter(&base, 2, 4.0, 1),
            with_adapter(&base, 2, 4.0, 2),
            with_adapter(&base, 3, 3.0, 3),
        ];
        let s = soup(&members).unwrap();
        let info = lora::info(&s).unwrap();
        assert_eq!(info.rank, 7);
        assert!((info.alpha - 7.0).abs() < 1e-9);
        // Merged weights: W + mean(sᵢAᵢBᵢ) against the mean of the merged members' weights.
        let mut merged_soup = s.clone();
        lora::merge(&mut merged_soup);
        let merged: Vec<Llama> = members
            .iter()
            .map(|m| {
                let mut m = m.clone();
                lora::merge(&mut m);
                m
            })
            .collect();
        for (layer, target) in [(0, Target::Q), (1, Target::Down)] {
            let w = |m: &Llama| {
                lora::projection(&m.layers[layer], target)
                    .dense_weight()
                    .into_data()
                    .try_into_vec::<f32>()
                    .unwrap()
            };
            let want: Vec<f32> = (0..w(&merged[0]).len())
                .map(|i| merged.iter().map(|m| w(m)[i]).sum::<f32>() / 3.0)
                .collect();
            let got = w(&merged_soup);
            let d = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(d < 1e-5, "layer {layer} {target}: max |Δ| {d}");
        }
        // A soup of one run is that run.
        let one = soup(&members[..1]).unwrap();
        let (x, y) = (logits(&one), logits(&members[0]));
        let d = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "max |Δ| {d}");
        // And it differs from the base model (the test would pass on a no-op otherwise).
        let base_logits = logits(&base);
        assert!(
            x.iter()
                .zip(&base_logits)
                .any(|(a, b)| (a - b).abs() > 1e-3),
            "the adapter changed nothing"
        );
    }

    #[test]
    fn runs_on_other_projections_do_not_mix() {
        let base = tiny_model(&Device::flex());
        let a = with_adapter(&base, 2, 4.0, 1);
        let mut b = with_adapter(&base, 2, 4.0, 2);
        lora::projection_mut(&mut b.layers[0], Target::Q).adapter = None;
        let err = soup(&[a.clone(), b]).unwrap_err().to_string();
        assert!(
            err.contains("run 2") && err.contains("projections"),
            "{err}"
        );
        assert!(soup(&[]).is_err());
        assert!(
            soup(&[base])
                .unwrap_err()
                .to_string()
                .contains("no adapters")
        );
    }
}
