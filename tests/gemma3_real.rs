//! The real Gemma 3 270M (Q4_K_M GGUF, fetched by name as `seedforge model fetch gemma3-270m`
//! fetches it) against transformers loading the same file (weights dequantized to f32, the
//! tokenizer converted from the file's SentencePiece vocabulary; `tests/gemma3_reference.py` in
//! the peers' venv): the same token ids (and the same continuation ids, label words without
//! the BOS a sequence starts with), the same top-10 next tokens with logits within
//! [`LOGIT_TOL`], the same greedy continuation — on a plain prompt, a chat turn, odd spacing,
//! accents and an emoji, and a prompt past the sliding layers' 512-position window. llama.cpp's
//! figures on the file (its own quantized kernels) are printed beside them.

mod common;

use std::path::PathBuf;
use std::process::Command;

use burn::tensor::Device;
use seedforge::llm::fetch::GEMMA3_270M;
use seedforge::llm::greedy::{greedy, row_logits};
use seedforge::llm::load;
use seedforge::llm::model::{StepLayout, tokens_tensor};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gemma3_reference.py");

/// Largest |logit − transformers'| over transformers' top 10. Both run the same f32 weights and
/// differ in summation order only: measured 1.7e-5–5.0e-5 on the Flex CPU device (logits of
/// 20–30), the 619-token prompt included; the same 5e-4 as SmolLM2's golden test.
const LOGIT_TOL: f32 = 5e-4;

fn gemma3() -> PathBuf {
    GEMMA3_270M
        .ensure(&mut |e| eprintln!("fetch: {e:?}"))
        .unwrap_or_else(|e| {
            panic!(
                "Gemma 3 270M is needed for this test and could not be fetched (seedforge model \
                 fetch gemma3-270m): {e}"
            )
        })
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    numbers(v).into_iter().map(|x| x as u32).collect()
}

#[test]
fn gemma3_270m_matches_transformers_on_the_same_file() {
    let path = gemma3();
    let py = common::peer_python(&["torch", "transformers", "gguf", "llama_cpp"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reference.json");
    let o = Command::new(&py)
        .arg(SCRIPT)
        .arg(&path)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();

    let device = Device::flex();
    let loaded = load::load(&path, &device).unwrap();
    assert_eq!(loaded.config.arch.name(), "gemma3");
    assert_eq!(loaded.config.sliding_layers.len(), 15);
    let tk = &loaded.tokenizer;
    // Label words and training targets continue a prompt: transformers' ids without special
    // tokens (the tokenizer starts a sequence with BOS; a continuation must not).
    for (text, ids_theirs) in reference["continuations"].as_object().unwrap() {
        assert_eq!(
            tk.encode_continuation(text).unwrap(),
            ids(ids_theirs),
            "continuation {text:?}"
        );
    }
    for p in reference["prompts"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let text = p["text"].as_str().unwrap();
        let got = tk.encode(text).unwrap();
        assert_eq!(got, ids(&p["ids"]), "token ids of '{name}'");
        assert_eq!(
            tk.decode(&got[1..], false).unwrap(),
            p["decoded"].as_str().unwrap(),
            "decoding '{name}'"
        );
        let logits = row_logits(loaded.model.forward_last(
            tokens_tensor(std::slice::from_ref(&got), 0, &device),
            &StepLayout::for_prompts(&[got.len()]),
            None,
        ))
        .unwrap();
        let top = ids(&p["top_ids"]);
        let theirs = numbers(&p["top_logits"]);
        let worst = top
            .iter()
            .zip(&theirs)
            .map(|(&i, &l)| (logits[i as usize] - l as f32).abs())
            .fold(0.0f32, f32::max);
        let mut ours: Vec<u32> = (0..logits.len() as u32).collect();
        ours.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        ours.truncate(10);
        let lc_top = ids(&p["llamacpp_top_ids"]);
        let lc_worst = lc_top
            .iter()
            .zip(numbers(&p["llamacpp_top_logits"]))
            .map(|(&i, l)| (logits[i as usize] - l as f32).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{name}: {} tokens, max |Δlogit| vs transformers {worst:.2e}; llama.cpp: same ids {}, \
             same top-10 {}, max |Δlogit| {lc_worst:.2e}, same greedy {}",
            got.len(),
            ids(&p["llamacpp_ids"]) == got,
            lc_top == ours,
            ids(&p["llamacpp_greedy"]) == ids(&p["greedy"]),
        );
        assert!(worst < LOGIT_TOL, "'{name}': max |Δlogit| {worst}");
        assert_eq!(ours, top, "top-10 of '{name}'");
        let expected = ids(&p["greedy"]);
        assert_eq!(
            greedy(&loaded.model, &got, expected.len(), &[]).unwrap(),
            expected,
            "greedy continuation of '{name}'"
        );
    }
}
