//! A tiny random Llama written by the test itself, once as a GGUF file (Q/K rows permuted the
//! way llama.cpp's converter does) and once as a Hugging Face folder (safetensors, HF row
//! order): both load, describe themselves, and compute the same function.

mod common;

use burn::tensor::Device;
use common::tiny::*;
use seedforge::llm::greedy::{greedy, row_logits};
use seedforge::llm::load;
use seedforge::llm::model::{StepLayout, tokens_tensor};

#[test]
fn gguf_and_safetensors_folders_compute_the_same_function() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("tiny.gguf");
    let hf = tmp.path().join("tiny-hf");
    write_gguf(&gguf);
    write_hf_dir(&hf, &gguf);

    let info = load::inspect(&gguf).unwrap();
    assert_eq!(info.config.num_layers, LAYERS);
    assert_eq!(info.config.num_kv_heads, KV_HEADS);
    assert!(info.config.tie_word_embeddings);
    assert_eq!(info.tensor_types.get("F16"), Some(&(1 + 7 * LAYERS)));
    let hf_info = load::inspect(&hf).unwrap();
    assert_eq!(hf_info.config, info.config);

    let device = Device::flex();
    let a = load::load(&gguf, &device).unwrap();
    let b = load::load(&hf, &device).unwrap();
    let text = "ab ba, cab!";
    let ids = a.tokenizer.encode(text).unwrap();
    assert_eq!(ids, b.tokenizer.encode(text).unwrap());
    assert!(
        ids.contains(&61),
        "merges apply: 'ab' is one token in {ids:?}"
    );
    let logits = |m: &load::LoadedModel| {
        row_logits(m.model.forward_last(
            tokens_tensor(std::slice::from_ref(&ids), 0, &device),
            &StepLayout::for_prompts(&[ids.len()]),
            None,
        ))
        .unwrap()
    };
    let (la, lb) = (logits(&a), logits(&b));
    let worst = la
        .iter()
        .zip(&lb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-4,
        "GGUF and safetensors logits differ by {worst}"
    );
    assert_eq!(
        greedy(&a.model, &ids, 10, &[]).unwrap(),
        greedy(&b.model, &ids, 10, &[]).unwrap()
    );
}

#[test]
fn a_wrongly_shaped_tensor_is_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("tiny.gguf");
    write_gguf(&gguf);
    let hf = tmp.path().join("hf");
    write_hf_dir(&hf, &gguf);
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    config["intermediate_size"] = serde_json::json!(FF * 2);
    std::fs::write(hf.join("config.json"), config.to_string()).unwrap();
    let err = load::load(&hf, &Device::flex()).err().unwrap().to_string();
    assert!(
        err.contains("mlp.gate_proj.weight") && err.contains("expected"),
        "{err}"
    );
}
