//! Behaviour of the transformer on a tiny random Llama held in memory: the KV cache, padding and
//! batching must not change what the model computes.

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};

use super::*;
use crate::llm::greedy::{argmax, row_logits};
use crate::llm::weights::{Dense, WeightError, WeightSource};

pub(crate) fn tiny_config() -> ModelConfig {
    ModelConfig {
        arch: crate::llm::config::Architecture::Llama,
        attention_bias: false,
        rope_freq_factors: None,
        vocab_size: 61,
        hidden_size: 32,
        intermediate_size: 48,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 128,
        tie_word_embeddings: true,
        sliding_layers: Vec::new(),
        sliding_window: None,
        rope_local_theta: None,
        query_pre_attn_scalar: None,
        final_logit_softcapping: None,
    }
}

/// Deterministic pseudo-random weights (splitmix64), no file involved.
pub(crate) struct MemoryWeights(pub HashMap<String, Dense>);

impl MemoryWeights {
    pub fn random(c: &ModelConfig, seed: u64) -> Self {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        };
        let mut m = HashMap::new();
        let mut put = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
            let n = shape.iter().product();
            let data = (0..n).map(|_| next() * scale + offset).collect();
            m.insert(name, Dense { shape, data });
        };
        let (d, q, kv, ff) = (
            c.hidden_size,
            c.num_heads * c.head_dim,
            c.num_kv_heads * c.head_dim,
            c.intermediate_size,
        );
        put(
            "model.embed_tokens.weight".into(),
            vec![c.vocab_size, d],
            1.0,
            0.0,
        );
        put("model.norm.weight".into(), vec![d], 0.1, 1.0);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            put(format!("{p}.input_layernorm.weight"), vec![d], 0.1, 1.0);
            put(
                format!("{p}.post_attention_layernorm.weight"),
                vec![d],
                0.1,
                1.0,
            );
            put(format!("{p}.self_attn.q_proj.weight"), vec![q, d], 0.3, 0.0);
            put(
                format!("{p}.self_attn.k_proj.weight"),
                vec![kv, d],
                0.3,
                0.0,
            );
            put(
                format!("{p}.self_attn.v_proj.weight"),
                vec![kv, d],
                0.3,
                0.0,
            );
            put(format!("{p}.self_attn.o_proj.weight"), vec![d, q], 0.3, 0.0);
            put(format!("{p}.mlp.gate_proj.weight"), vec![ff, d], 0.3, 0.0);
            put(format!("{p}.mlp.up_proj.weight"), vec![ff, d], 0.3, 0.0);
            put(format!("{p}.mlp.down_proj.weight"), vec![d, ff], 0.3, 0.0);
        }
        MemoryWeights(m)
    }
}

impl WeightSource for MemoryWeights {
    fn load(&self, name: &str) -> Result<Dense, WeightError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| WeightError::Missing {
                file: "memory".into(),
                name: name.into(),
            })
    }
    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

pub(crate) fn tiny_model(device: &Device) -> Llama {
    let c = tiny_config();
    Llama::load(&c, &MemoryWeights::random(&c, 7), device).unwrap()
}

fn all_logits(model: &Llama, rows: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let device = model.device();
    let layout = StepLayout::for_prompts(&rows.iter().map(Vec::len).collect::<Vec<_>>());
    let logits = model.logits(model.forward_hidden(tokens_tensor(rows, 0, &device), &layout, None));
    let [b, s, v] = logits.dims();
    let flat = logits.into_data().try_into_vec::<f32>().unwrap();
    (0..b)
        .map(|i| {
            (0..s)
                .map(|j| flat[(i * s + j) * v..(i * s + j + 1) * v].to_vec())
                .collect()
        })
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: max |diff| {worst} > {tol}");
}

#[test]
fn output_shapes_follow_the_config() {
    let device = Device::flex();
    let model = tiny_model(&device);
    let rows = vec![vec![1, 2, 3], vec![4, 5, 6]];
    let layout = StepLayout::for_prompts(&[3, 3]);
    let hidden = model.forward_hidden(tokens_tensor(&rows, 0, &device), &layout, None);
    assert_eq!(hidden.dims(), [2, 3, 32]);
    assert_eq!(model.logits(hidden).dims(), [2, 3, 61]);
}

#[test]
fn kv_cache_decoding_equals_full_recomputation() {
    let device = Device::flex();
    let model = tiny_model(&device);
    let seq: Vec<u32> = vec![3, 17, 42, 5, 9, 60, 11, 2];
    let full = all_logits(&model, std::slice::from_ref(&seq));

    let c = tiny_config();
    let mut cache = KvCache::new(&c, 1, 2, &device); // small capacity: exercises growth too
    let prompt = 3;
    let layout = StepLayout::for_prompts(&[prompt]);
    let first = row_logits(model.forward_last(
        tokens_tensor(&[seq[..prompt].to_vec()], 0, &device),
        &layout,
        Some(&mut cache),
    ))
    .unwrap();
    assert_close(&first, &full[0][prompt - 1], 1e-4, "prefill");
    for (t, &tok) in seq.iter().enumerate().skip(prompt) {
        let layout = StepLayout::decode(&[0], cache.len());
        let step = row_logits(model.forward_last(
            Tensor::from_data(TensorData::new(vec![tok as i64], [1, 1]), &device),
            &layout,
            Some(&mut cache),
        ))
        .unwrap();
        assert_close(&step, &full[0][t], 1e-4, &format!("decode step {t}"));
    }
}

#[test]
fn left_padding_in_a_batch_changes_nothing() {
    let device = Device::flex();
    let model = tiny_model(&device);
    let a: Vec<u32> = vec![5, 6, 7, 8, 9];
    let b: Vec<u32> = vec![40, 41];
    let alone_a = all_logits(&model, std::slice::from_ref(&a));
    let alone_b = all_logits(&model, std::slice::from_ref(&b));
    let batch = all_logits(&model, &[a.clone(), b.clone()]);
    for t in 0..a.len() {
        assert_close(&batch[0][t], &alone_a[0][t], 1e-4, "long row");
    }
    // Row b is padded by 3 on the left: its real tokens sit at columns 3 and 4.
    for t in 0..b.len() {
        assert_close(&batch[1][3 + t], &alone_b[0][t], 1e-4, "padded row");
    }
}

#[test]
fn batched_cached_decoding_matches_single_sequences() {
    let device = Device::flex();
    let model = tiny_model(&device);
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3, 4], vec![10, 20], vec![33]];
    let steps = 5;
    let singles: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| crate::llm::greedy::greedy(&model, p, steps, &[]).unwrap())
        .collect();

    let c = tiny_config();
    let lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let layout = StepLayout::for_prompts(&lens);
    let mut cache = KvCache::new(&c, prompts.len(), 16, &device);
    let mut logits = model.forward_last(
        tokens_tensor(&prompts, 0, &device),
        &layout,
        Some(&mut cache),
    );
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    for _ in 0..steps {
        let v = logits.dims()[1];
        let flat = logits.into_data().try_into_vec::<f32>().unwrap();
        let next: Vec<u32> = (0..prompts.len())
            .map(|r| argmax(&flat[r * v..(r + 1) * v]) as u32)
            .collect();
        for (o, &n) in out.iter_mut().zip(&next) {
            o.push(n);
        }
        let step = StepLayout::decode(&layout.start, cache.len());
        let toks = Tensor::from_data(
            TensorData::new(
                next.iter().map(|&t| t as i64).collect::<Vec<_>>(),
                [next.len(), 1],
            ),
            &device,
        );
        logits = model.forward_last(toks, &step, Some(&mut cache));
    }
    assert_eq!(out, singles);
}

#[test]
fn transpose_moves_every_element() {
    let (r, c) = (37, 70);
    let data: Vec<f32> = (0..r * c).map(|i| i as f32).collect();
    let t = transpose(&data, r, c);
    for i in 0..r {
        for j in 0..c {
            assert_eq!(t[j * r + i], data[i * c + j]);
        }
    }
}

/// A byte-level tokenizer matching the tiny model's 61-token vocabulary: three control tokens
/// (id 2 is the end of sequence), letters with and without a leading space, a little punctuation.
pub(crate) fn tiny_tokenizer() -> crate::llm::tokenizer::TextTokenizer {
    tiny_tokenizer_adding_bos(false)
}

/// [`tiny_tokenizer`], starting every sequence with BOS (id 1) when `add_bos` (as Gemma's does).
pub(crate) fn tiny_tokenizer_adding_bos(add_bos: bool) -> crate::llm::tokenizer::TextTokenizer {
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    tokens.extend(('a'..='z').map(|c| c.to_string()));
    tokens.extend(('a'..='z').map(|c| format!("Ġ{c}")));
    tokens.extend(["Ġ", ".", ",", "!", "?", "Ċ"].map(String::from));
    assert_eq!(tokens.len(), 61);
    let mut token_types = vec![1i64; tokens.len()];
    token_types[..3].fill(3);
    crate::llm::tokenizer::TextTokenizer::from_bpe_parts(crate::llm::tokenizer::BpeParts {
        tokens,
        merges: Vec::new(),
        token_types,
        pre: "gpt2".into(),
        bos: Some(1),
        eos: Some(2),
        pad: Some(2),
        add_bos,
        chat_template: None,
    })
    .unwrap()
}

/// Weights held in blocks: the model follows the f32 one within the blocks' rounding, on a
/// batch long enough to take the decoded-GEMM path; and decoding one token at a time (the
/// integer kernels, inputs rounded to 16 bits) follows a full recomputation on the same blocks.
#[test]
fn quantized_weights_follow_f32_and_decode_like_a_full_recomputation() {
    use crate::llm::quant::WeightMode;
    let device = Device::flex();
    let mut c = tiny_config();
    c.intermediate_size = 64; // rows must be whole blocks of 32
    let source = MemoryWeights::random(&c, 7);
    let reference = Llama::load(&c, &source, &device).unwrap();
    // 3 × 24 = 72 rows: more than `INTEGER_ROWS`, so the batch is multiplied by decoded weights.
    let rows: Vec<Vec<u32>> = (0..3u32)
        .map(|r| (0..24u32).map(|i| (i * 7 + r * 13 + 3) % 61).collect())
        .collect();
    assert!(rows.len() * rows[0].len() > super::linear::INTEGER_ROWS);
    let want = all_logits(&reference, &rows);
    let scale = want
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    // Measured on this random model (logits up to 11.3): q8_0 0.19 from f32, q4 2.6 (random
    // uniform weights are the worst case for 16 levels); one token at a time 1.2e-4 from the
    // batch's decoded-GEMM path (16-bit inputs). A kernel reading the blocks wrong is off by
    // the logits' scale.
    for (mode, tol) in [
        (WeightMode::F16, 0.002),
        (WeightMode::Q8_0, 0.03),
        (WeightMode::Q4, 0.4),
    ] {
        let tol = tol * scale;
        let model = Llama::load_as(&c, &source, &device, mode).unwrap();
        assert_eq!(model.weight_mode(), mode);
        let got = all_logits(&model, &rows);
        let worst = got
            .iter()
            .flatten()
            .flatten()
            .zip(want.iter().flatten().flatten())
            .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
        eprintln!("{mode}: largest |logit − f32| {worst}");
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert_close(g, w, tol, &format!("{mode} against f32"));
        }
        let seq = &rows[0];
        let mut cache = KvCache::new(&c, 1, 4, &device);
        let layout = StepLayout::for_prompts(&[3]);
        model.forward_last(
            tokens_tensor(&[seq[..3].to_vec()], 0, &device),
            &layout,
            Some(&mut cache),
        );
        for (t, &tok) in seq.iter().enumerate().skip(3) {
            let layout = StepLayout::decode(&[0], cache.len());
            let step = row_logits(model.forward_last(
                Tensor::from_data(TensorData::new(vec![tok as i64], [1, 1]), &device),
                &layout,
                Some(&mut cache),
            ))
            .unwrap();
            assert_close(&step, &got[0][t], 1e-4 * scale, &format!("{mode} step {t}"));
        }
    }
}

/// An adapter on a quantized model runs on its low-rank path: it moves the quantized model's
/// logits by what it moves the f32 model's (the base's rounding aside), and `merge` leaves the
/// blocks alone instead of rounding the adapter into them.
#[test]
fn an_adapter_on_quantized_weights_adds_what_it_adds_to_f32() {
    use crate::llm::quant::WeightMode;
    use crate::train::lora::{self, Target};
    use crate::util::rng::Rng;
    let device = Device::flex();
    let mut c = tiny_config();
    c.intermediate_size = 64;
    let source = MemoryWeights::random(&c, 7);
    let with_adapter = |mode: WeightMode| {
        let mut m = Llama::load_as(&c, &source, &device, mode).unwrap();
        let base = m.clone();
        let mut rng = Rng::new(3);
        for block in &mut m.layers {
            for t in [Target::Q, Target::V, Target::Down] {
                let proj = lora::projection_mut(block, t);
                let (i, o) = (proj.d_in(), proj.d_out());
                let a = (0..i * 2).map(|_| rng.normal() as f32 * 0.3).collect();
                let b = (0..2 * o).map(|_| rng.normal() as f32 * 0.3).collect();
                proj.adapter = Some(lora::low_rank(proj, 2, a, b, 1.0, 0.0, 1));
            }
        }
        (base, m)
    };
    let rows = vec![vec![3, 17, 42, 5, 9], vec![4, 4, 21, 7, 50]];
    let (f32_base, f32_lora) = with_adapter(WeightMode::F32);
    let (q_base, mut q_lora) = with_adapter(WeightMode::Q8_0);
    let delta = |a: &Llama, b: &Llama| -> Vec<f32> {
        let (x, y) = (all_logits(a, &rows), all_logits(b, &rows));
        x.iter()
            .flatten()
            .flatten()
            .zip(y.iter().flatten().flatten())
            .map(|(p, q)| p - q)
            .collect()
    };
    let want = delta(&f32_lora, &f32_base);
    let got = delta(&q_lora, &q_base);
    let moved = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(moved > 0.5, "the adapter must move the logits ({moved})");
    assert_close(
        &got,
        &want,
        0.1 * moved,
        "the adapter's effect, q8_0 against f32",
    );
    let before = all_logits(&q_lora, &rows);
    lora::merge(&mut q_lora);
    let after = all_logits(&q_lora, &rows);
    for (a, b) in after.iter().flatten().zip(before.iter().flatten()) {
        assert_close(a, b, 1e-5, "merge on quantized weights changes nothing");
    }
}

/// The host decoding step (one row, one column, blocks on the CPU) gives the tensor path's
/// logits step after step: on a Llama over Q8_0 and Q4_1 blocks, a Qwen2 with Q/K/V biases, and
/// a Gemma 3 with sliding-window layers (window 3, their own rotary base), q/k norms, the
/// embedding's scale and a logit cap; with the cache grown, a two-token step taken by the tensor
/// path in between (the host copy catches up), and the row shifted right (`pad_left`: its start
/// moves, the host copy is dropped and rebuilt).
#[test]
fn the_host_step_computes_what_the_tensor_ops_compute() {
    use crate::llm::config::Architecture;
    use crate::llm::quant::WeightMode;
    let device = Device::flex();
    let mut llama = tiny_config();
    llama.intermediate_size = 64;
    let mut qwen = llama.clone();
    qwen.arch = Architecture::Qwen2;
    qwen.attention_bias = true;
    let mut gemma = llama.clone();
    gemma.arch = Architecture::Gemma3;
    gemma.num_layers = 3;
    gemma.sliding_layers = vec![0, 2];
    gemma.sliding_window = Some(3);
    gemma.rope_local_theta = Some(1_000.0);
    gemma.query_pre_attn_scalar = Some(16.0);
    gemma.final_logit_softcapping = Some(5.0);
    for (name, c, mode) in [
        ("llama q8_0", llama.clone(), WeightMode::Q8_0),
        ("llama q4", llama.clone(), WeightMode::Q4),
        ("llama f16", llama, WeightMode::F16),
        ("qwen2 q8_0", qwen, WeightMode::Q8_0),
        ("gemma q8_0", gemma, WeightMode::Q8_0),
    ] {
        let mut source = MemoryWeights::random(&c, 5);
        let mut extra = |n: String, len: usize, base: f32| {
            let data = (0..len).map(|j| base + (j % 7) as f32 * 0.05).collect();
            source.0.insert(
                n,
                crate::llm::weights::Dense {
                    shape: vec![len],
                    data,
                },
            );
        };
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
            if c.attention_bias {
                extra(format!("{p}.self_attn.q_proj.bias"), q, -0.1);
                extra(format!("{p}.self_attn.k_proj.bias"), kv, -0.1);
                extra(format!("{p}.self_attn.v_proj.bias"), kv, -0.1);
            }
            if c.arch.gemma() {
                for n in ["pre_feedforward_layernorm", "post_feedforward_layernorm"] {
                    extra(format!("{p}.{n}.weight"), c.hidden_size, 0.9);
                }
                extra(format!("{p}.self_attn.q_norm.weight"), c.head_dim, 0.9);
                extra(format!("{p}.self_attn.k_norm.weight"), c.head_dim, 0.9);
            }
        }
        let model = Llama::load_as(&c, &source, &device, mode).unwrap();
        let prompt: Vec<u32> = vec![3, 17, 42, 5, 9];
        let next: Vec<u32> = (0..12u32).map(|i| (i * 11 + 4) % 61).collect();
        // Capacity 6: the first steps grow the cache.
        let mut host = KvCache::new(&c, 1, 6, &device);
        let mut tensors = KvCache::new(&c, 1, 6, &device);
        let layout = StepLayout::for_prompts(&[prompt.len()]);
        for cache in [&mut host, &mut tensors] {
            model.forward_last(
                tokens_tensor(std::slice::from_ref(&prompt), 0, &device),
                &layout,
                Some(cache),
            );
        }
        let mut start = 0;
        let mut worst = 0.0f32;
        let mut t = 0;
        while t < next.len() {
            if t == 4 {
                // Two columns at once: the tensor path, in both caches.
                let layout = StepLayout {
                    start: vec![start],
                    past: host.len(),
                    len: 2,
                };
                assert!(host_step::HostModel::serves(&model, &layout).is_none());
                for cache in [&mut host, &mut tensors] {
                    model.forward_last(
                        tokens_tensor(&[next[t..t + 2].to_vec()], 0, &device),
                        &layout,
                        Some(cache),
                    );
                }
                t += 2;
                continue;
            }
            if t == 8 {
                host.pad_left(2);
                tensors.pad_left(2);
                start += 2;
            }
            let layout = StepLayout::decode(&[start], host.len());
            assert!(
                host_step::HostModel::serves(&model, &layout).is_some(),
                "{name}: the host step serves a decoding step of one row"
            );
            let token =
                || Tensor::from_data(TensorData::new(vec![next[t] as i64], [1, 1]), &device);
            let got = row_logits(model.forward_last(token(), &layout, Some(&mut host))).unwrap();
            let want =
                row_logits(model.last_by_tensor_ops(token(), &layout, Some(&mut tensors))).unwrap();
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let diff = got
                .iter()
                .zip(&want)
                .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
            worst = worst.max(diff / scale);
            // Measured: 0 to 3e-6 from the order of float sums; 1e-4 to 6e-4 (≤ 6.5e-5 of the
            // largest logit) where that moves one input across a 16-bit rounding step of the
            // integer products. A wrong rotation, mask or norm is off by the logits' scale.
            assert_close(&got, &want, 2e-4 * scale, &format!("{name} step {t}"));
            t += 1;
        }
        assert_eq!(host.len(), tensors.len());
        eprintln!("{name}: largest |host − tensor ops| / max|logit| = {worst:e}");
    }
}

/// The host step stands aside where it would not compute what the tensor path computes: f32
/// weights, a batch of two, an adapter not merged into the weights.
#[test]
fn the_host_step_serves_only_blocks_without_adapters() {
    use crate::llm::quant::WeightMode;
    use crate::train::lora::{self, Target};
    let device = Device::flex();
    let mut c = tiny_config();
    c.intermediate_size = 64;
    let source = MemoryWeights::random(&c, 7);
    let one = StepLayout::decode(&[0], 4);
    let f32_model = Llama::load(&c, &source, &device).unwrap();
    assert!(host_step::HostModel::serves(&f32_model, &one).is_none());
    let mut model = Llama::load_as(&c, &source, &device, WeightMode::Q4).unwrap();
    assert!(host_step::HostModel::serves(&model, &one).is_some());
    let two = StepLayout::decode(&[0, 1], 4);
    assert!(host_step::HostModel::serves(&model, &two).is_none());
    let proj = lora::projection_mut(&mut model.layers[1], Target::V);
    let (i, o) = (proj.d_in(), proj.d_out());
    proj.adapter = Some(lora::low_rank(
        proj,
        2,
        vec![0.1; i * 2],
        vec![0.1; 2 * o],
        1.0,
        0.0,
        1,
    ));
    assert!(host_step::HostModel::serves(&model, &one).is_none());
}
