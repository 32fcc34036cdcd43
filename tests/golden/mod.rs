//! Checks shared by the CPU and wgpu golden tests.
#![allow(dead_code)] // each test binary uses part of it

use std::sync::OnceLock;

use burn::tensor::Device;
use serde_json::Value;

use super::common;
use seedforge::llm::greedy::{greedy, row_logits};
use seedforge::llm::load::{self, LoadedModel};
use seedforge::llm::model::{StepLayout, tokens_tensor};
use seedforge::llm::tokenizer::TextTokenizer;

/// Largest |logit − reference| accepted over the reference's top-10 ids. The reference runs the
/// same f32 weights through PyTorch; the two differ only in summation order. Measured here:
/// 4.6e-5 on the Flex CPU device and 5.3e-5 on wgpu (llvmpipe), on logits of magnitude 20–40.
/// 5e-4 leaves a 10× margin for other CPUs' SIMD widths while staying 16× below the smallest
/// top-1/top-2 margin on the reference greedy paths (0.008), so matching greedy tokens are not
/// luck.
pub const LOGIT_TOL: f32 = 5e-4;

pub enum Depth {
    /// Every prompt, every greedy token.
    Full,
    /// A few prompts and a short continuation (the slow software-Vulkan device in CI).
    Core,
}

pub fn golden() -> &'static Value {
    static G: OnceLock<Value> = OnceLock::new();
    G.get_or_init(|| common::fixture("golden_smollm2.json"))
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn check_tokenizer() {
    let tk: TextTokenizer = load::tokenizer(&common::model_path()).unwrap();
    let g = golden();
    for p in g["prompts"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let text = p["text"].as_str().unwrap();
        let got = tk.encode(text).unwrap();
        assert_eq!(got, ids(&p["token_ids"]), "token ids of prompt '{name}'");
        let pieces: Vec<String> = got.iter().map(|&i| tk.piece(i)).collect();
        let want: Vec<String> = p["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(pieces, want, "pieces of prompt '{name}'");
        assert_eq!(
            tk.decode(&got, false).unwrap(),
            text,
            "round trip of '{name}'"
        );
    }
    for c in g["decode_checks"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let got = ids(&c["ids"]);
        assert_eq!(
            tk.decode(&got, false).unwrap(),
            c["decoded"].as_str().unwrap(),
            "decode check '{name}'"
        );
        assert_eq!(
            tk.decode(&got, true).unwrap(),
            c["decoded_skip_special"].as_str().unwrap(),
            "decode check '{name}' skipping special tokens"
        );
    }
}

fn load_on(device: &Device) -> LoadedModel {
    load::load(&common::model_path(), device).unwrap()
}

pub fn check_model(device: &Device, depth: Depth) {
    let loaded = load_on(device);
    let g = golden();
    let prompts = g["prompts"].as_array().unwrap();
    let (chosen, greedy_len): (Vec<&Value>, usize) = match depth {
        Depth::Full => (prompts.iter().collect(), 24),
        Depth::Core => (
            prompts
                .iter()
                .filter(|p| {
                    ["plain_sentence", "chat_template_review"]
                        .contains(&p["name"].as_str().unwrap())
                })
                .collect(),
            6,
        ),
    };
    let mut worst = 0.0f32;
    for p in chosen {
        let name = p["name"].as_str().unwrap();
        let prompt = ids(&p["token_ids"]);
        let layout = StepLayout::for_prompts(&[prompt.len()]);
        let logits = row_logits(loaded.model.forward_last(
            tokens_tensor(std::slice::from_ref(&prompt), 0, device),
            &layout,
            None,
        ))
        .unwrap();
        let reference = p["last_logits"]["top10"].as_array().unwrap();
        let ref_ids: Vec<u32> = reference
            .iter()
            .map(|e| e[0].as_u64().unwrap() as u32)
            .collect();
        let mut ours: Vec<u32> = (0..logits.len() as u32).collect();
        ours.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        assert_eq!(&ours[..10], &ref_ids[..], "top-10 ids of '{name}'");
        for e in reference {
            let id = e[0].as_u64().unwrap() as usize;
            let want = e[1].as_f64().unwrap() as f32;
            let diff = (logits[id] - want).abs();
            worst = worst.max(diff);
            assert!(
                diff <= LOGIT_TOL,
                "'{name}': logit of token {id} is {} vs reference {want} (|diff| {diff})",
                logits[id]
            );
        }
        let lse = seedforge::cli::inspect::logsumexp(&logits);
        let want_lse = p["last_logits"]["logsumexp"].as_f64().unwrap();
        assert!(
            (lse - want_lse).abs() < LOGIT_TOL as f64,
            "'{name}': logsumexp {lse} vs {want_lse}"
        );

        let want_greedy = ids(&p["greedy"]["ids"]);
        let got = greedy(&loaded.model, &prompt, greedy_len, &[]).unwrap();
        assert_eq!(
            got,
            want_greedy[..greedy_len],
            "greedy continuation of '{name}'"
        );
    }
    eprintln!("largest |logit diff| over the reference top-10s: {worst:e}");
}
