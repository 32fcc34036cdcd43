//! A tiny random Llama written by tests themselves: once as a GGUF file (Q/K rows permuted
//! the way llama.cpp's converter does), once as a Hugging Face folder.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use seedforge::llm::gguf::{GgmlType, GgufWriter};
use seedforge::llm::load;
use seedforge::llm::weights::permute_rows;
use seedforge::util::rng::Rng;

pub const VOCAB: usize = 64;
pub const D: usize = 32;
pub const FF: usize = 64;
pub const LAYERS: usize = 2;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 8;

pub fn tokens() -> Vec<String> {
    let mut t: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    t.extend(('a'..='z').map(|c| c.to_string()));
    t.extend(('a'..='z').map(|c| format!("Ġ{c}")));
    t.extend(["Ġ", ".", ",", "!", "?", "Ċ", "ab", "Ġab", "ba"].map(String::from));
    assert_eq!(t.len(), VOCAB);
    t
}

/// Weights in Hugging Face naming and row order.
pub fn hf_weights() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = Rng::new(42);
    let mut w = Vec::new();
    let mut put = |name: String, shape: Vec<usize>, scale: f64, offset: f64| {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| (rng.normal() * scale + offset) as f32)
            .collect();
        w.push((name, shape, data));
    };
    put("model.embed_tokens.weight".into(), vec![VOCAB, D], 1.0, 0.0);
    put("model.norm.weight".into(), vec![D], 0.1, 1.0);
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        put(format!("{p}.input_layernorm.weight"), vec![D], 0.1, 1.0);
        put(
            format!("{p}.self_attn.q_proj.weight"),
            vec![HEADS * HEAD_DIM, D],
            0.3,
            0.0,
        );
        put(
            format!("{p}.self_attn.k_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, D],
            0.3,
            0.0,
        );
        put(
            format!("{p}.self_attn.v_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, D],
            0.3,
            0.0,
        );
        put(
            format!("{p}.self_attn.o_proj.weight"),
            vec![D, HEADS * HEAD_DIM],
            0.3,
            0.0,
        );
        put(
            format!("{p}.post_attention_layernorm.weight"),
            vec![D],
            0.1,
            1.0,
        );
        put(format!("{p}.mlp.gate_proj.weight"), vec![FF, D], 0.3, 0.0);
        put(format!("{p}.mlp.up_proj.weight"), vec![FF, D], 0.3, 0.0);
        put(format!("{p}.mlp.down_proj.weight"), vec![D, FF], 0.3, 0.0);
    }
    w
}

pub fn write_gguf(path: &Path) {
    let mut g = GgufWriter::new();
    let toks = tokens();
    let mut types = vec![1i32; VOCAB];
    types[..3].fill(3);
    g.add_metadata("general.architecture", "llama").unwrap();
    g.add_metadata("general.name", "tiny test llama").unwrap();
    for (k, v) in [
        ("llama.context_length", 1024u32),
        ("llama.embedding_length", D as u32),
        ("llama.block_count", LAYERS as u32),
        ("llama.feed_forward_length", FF as u32),
        ("llama.attention.head_count", HEADS as u32),
        ("llama.attention.head_count_kv", KV_HEADS as u32),
        ("llama.rope.dimension_count", HEAD_DIM as u32),
    ] {
        g.add_metadata(k, v).unwrap();
    }
    g.add_metadata("llama.rope.freq_base", 10_000.0f32).unwrap();
    g.add_metadata("llama.attention.layer_norm_rms_epsilon", 1e-5f32)
        .unwrap();
    g.add_metadata("tokenizer.ggml.model", "gpt2").unwrap();
    g.add_metadata("tokenizer.ggml.pre", "smollm").unwrap();
    g.add_metadata(
        "tokenizer.ggml.tokens",
        toks.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .unwrap();
    g.add_metadata("tokenizer.ggml.token_type", types).unwrap();
    g.add_metadata("tokenizer.ggml.merges", vec!["a b", "Ġ ab", "b a"])
        .unwrap();
    g.add_metadata("tokenizer.ggml.bos_token_id", 1u32).unwrap();
    g.add_metadata("tokenizer.ggml.eos_token_id", 2u32).unwrap();
    g.add_metadata("tokenizer.ggml.padding_token_id", 2u32)
        .unwrap();
    g.add_metadata("tokenizer.ggml.add_bos_token", false)
        .unwrap();
    for (name, shape, data) in hf_weights() {
        let (gname, perm) =
            seedforge::llm::weights::gguf_name(&name, seedforge::llm::config::Architecture::Llama)
                .unwrap();
        let data = match perm {
            seedforge::llm::weights::Permute::QueryHeads => {
                permute_rows(&data, shape[0], shape[1], HEADS)
            }
            seedforge::llm::weights::Permute::KeyValueHeads => {
                permute_rows(&data, shape[0], shape[1], KV_HEADS)
            }
            seedforge::llm::weights::Permute::None => data,
        };
        // Matrices as F16 exercise a quantized path; norms stay F32, as in real files.
        let ty = if shape.len() == 2 {
            GgmlType::F16
        } else {
            GgmlType::F32
        };
        g.add_tensor_quantized(&gname, &shape, ty, &data).unwrap();
    }
    g.write(path).unwrap();
}

pub fn write_hf_dir(dir: &Path, gguf: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "model_type": "llama", "hidden_act": "silu", "vocab_size": VOCAB, "hidden_size": D,
        "intermediate_size": FF, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5, "max_position_embeddings": 1024, "tie_word_embeddings": true
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    // The same values the GGUF holds: round the matrices through f16 as the GGUF did.
    let weights: Vec<(String, Vec<usize>, Vec<u8>)> = hf_weights()
        .into_iter()
        .map(|(name, shape, data)| {
            let bytes = data
                .iter()
                .flat_map(|&x| {
                    let x = if shape.len() == 2 {
                        half::f16::from_f32(x).to_f32()
                    } else {
                        x
                    };
                    x.to_le_bytes()
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = weights
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None::<HashMap<String, String>>).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    let tk = load::tokenizer(gguf).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tk.to_json().unwrap()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "add_bos_token": false}"#,
    )
    .unwrap();
}

/// The tiny model (`dir/tiny.gguf`) and a workspace of the demo task made by `seedforge init`
/// (`dir/ws`), for tests that drive the commands.
pub fn model_and_demo_workspace(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = dir.join("tiny.gguf");
    write_gguf(&model);
    let ws = dir.join("ws");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .arg("--workspace")
        .arg(&ws)
        .arg("init")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (model, ws)
}
