//! The real SmolLM2 with its frozen weights held quantized (`--weights f16|q8_0|q4`) against the
//! f32 reference: next-token agreement and logit distance on the golden prompts, greedy
//! continuations taken one token at a time (the integer kernels' path), and the in-context
//! classifier's labels on SST-2 dev rows through the command line.

mod common;
mod golden;

use burn::tensor::Device;
use serde_json::Value;

use seedforge::llm::greedy::{greedy, row_logits};
use seedforge::llm::load;
use seedforge::llm::model::{StepLayout, tokens_tensor};
use seedforge::llm::quant::WeightMode;

use golden::ids;

/// Per mode: the largest |logit − f32 reference| accepted over the reference's top-10 ids, and
/// on how many of the 8 golden prompts the first 8 greedy tokens must equal the reference's.
/// Measured on the AMD EPYC (prompts this short take the integer path): q8_0 0.263 and 7/8;
/// q4, whose blocks are the file's own, 0.003 and 8/8.
fn bounds(mode: WeightMode) -> (f32, usize) {
    match mode {
        WeightMode::Q8_0 => (0.6, 6),
        WeightMode::F16 => (F16_LOGITS, 8),
        _ => (0.02, 8),
    }
}

/// f16 rounds each of the file's Q4_1 values to the nearest half (relative 2⁻¹¹): measured
/// 0.012, and the first 8 greedy tokens equal on 8/8.
const F16_LOGITS: f32 = 0.05;

#[test]
fn quantized_weights_keep_the_golden_prompts_next_tokens() {
    let device = Device::flex();
    let g = golden::golden();
    let prompts = g["prompts"].as_array().unwrap();
    for mode in [WeightMode::Q8_0, WeightMode::Q4, WeightMode::F16] {
        let loaded = load::load_as(&common::model_path(), &device, mode).unwrap();
        assert_eq!(loaded.model.weight_mode(), mode);
        let (tol, greedy_needed) = bounds(mode);
        let (mut worst, mut top1, mut greedy_same) = (0.0f32, 0, 0);
        for p in prompts {
            let name = p["name"].as_str().unwrap();
            let prompt = ids(&p["token_ids"]);
            let layout = StepLayout::for_prompts(&[prompt.len()]);
            let logits = row_logits(loaded.model.forward_last(
                tokens_tensor(std::slice::from_ref(&prompt), 0, &device),
                &layout,
                None,
            ))
            .unwrap();
            let reference = p["last_logits"]["top10"].as_array().unwrap();
            let best = (0..logits.len())
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                .unwrap();
            if best as u64 == reference[0][0].as_u64().unwrap() {
                top1 += 1;
            }
            for e in reference {
                let id = e[0].as_u64().unwrap() as usize;
                let diff = (logits[id] - e[1].as_f64().unwrap() as f32).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= tol,
                    "{mode} '{name}': |Δlogit| {diff} of token {id}"
                );
            }
            // Greedy decoding runs one row at a time: the integer kernels.
            let want = ids(&p["greedy"]["ids"]);
            let got = greedy(&loaded.model, &prompt, 8, &[]).unwrap();
            if got == want[..8] {
                greedy_same += 1;
            }
        }
        eprintln!(
            "{mode}: top-1 {top1}/{n}, largest |Δlogit| over the top-10s {worst:.3}, greedy \
             first 8 tokens equal on {greedy_same}/{n}",
            n = prompts.len()
        );
        assert_eq!(top1, prompts.len(), "{mode}: every prompt's next token");
        assert!(
            greedy_same >= greedy_needed,
            "{mode}: {greedy_same} greedy continuations equal"
        );
    }
}

#[test]
fn quantized_weights_label_sst2_dev_rows_as_f32_does() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("sst2");
    let sst2 = common::shared_dir().join("datasets/sst2");
    common::sst2_workspace(&ws);
    let labels = |weights: &str| -> Vec<String> {
        let mut c = common::seedforge();
        c.args(["classify", "--task"]).arg(&ws).arg("--input");
        c.arg(sst2.join("dev.tsv"));
        c.args([
            "--limit",
            "200",
            "--demo-order",
            "interleaved",
            "--calibrate",
            "--json",
        ]);
        c.args(["--label-map", "0=negative,1=positive"]);
        c.args(["--device", "cpu", "--weights", weights]);
        let o = common::run(c);
        assert!(o.status.success(), "classify --weights {weights}");
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        eprintln!("--weights {weights}: accuracy {}", v["accuracy"]);
        v["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["predicted"].as_str().unwrap().to_string())
            .collect()
    };
    let reference = labels("f32");
    assert_eq!(reference.len(), 200);
    // q4 holds SmolLM2's own Q4_1 blocks (re-encoding them gives them back), so it is held to
    // the bar, 99% of f32's labels. q8_0 rounds those values a second time onto an 8-bit grid,
    // and calibrated in-context labels move with it: measured 193/200 (95.6% of all 872 dev
    // rows), below the bar; it is for models whose files hold f16 or f32 weights.
    for (weights, needed) in [("q4", 198), ("f16", 198), ("q8_0", 188)] {
        let got = labels(weights);
        let same = got.iter().zip(&reference).filter(|(a, b)| a == b).count();
        eprintln!("--weights {weights}: {same}/200 labels as f32's");
        assert!(
            same >= needed,
            "--weights {weights}: {same}/200 labels equal f32's"
        );
    }
}
