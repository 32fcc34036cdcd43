//! Timing the model the way the peer scripts time transformers and llama.cpp, so the figures
//! can be put side by side: prompt processing of a fixed 300-token prompt, and end-to-end
//! generation of exactly 64 new tokens after a 24-token prompt, greedy and sampled, at several
//! batch sizes.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::llm::decode::{DecodeRequest, decode};
use crate::llm::model::{Llama, StepLayout, tokens_tensor};
use crate::llm::sampler::SamplingParams;
use crate::llm::tokenizer::TextTokenizer;

/// The peers' 24-token speed prompt.
pub const SPEED_PROMPT: &str = "The following is a short review of a new science fiction film that opened in theaters this weekend, written by a critic who";
pub const NEW_TOKENS: usize = 64;

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub name: String,
    /// Seconds of each timed run (after one warm-up run).
    pub runs: Vec<f64>,
    pub median_s: f64,
    /// Tokens per second at the median (new tokens for generation, prompt tokens for prefill).
    pub tokens_per_s: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn time_it(name: &str, tokens: usize, repeats: usize, mut f: impl FnMut()) -> Timing {
    f();
    let runs: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let median_s = median(&runs);
    Timing {
        name: name.to_string(),
        tokens_per_s: tokens as f64 / median_s,
        runs,
        median_s,
    }
}

/// One forward pass over `ids` (the prompt-processing figure).
pub fn prefill(model: &Llama, ids: &[u32], repeats: usize) -> Timing {
    let device = model.device();
    time_it(
        &format!("prefill_{}", ids.len()),
        ids.len(),
        repeats,
        || {
            let layout = StepLayout::for_prompts(&[ids.len()]);
            let _ = crate::llm::greedy::row_logits(model.forward_last(
                tokens_tensor(&[ids.to_vec()], 0, &device),
                &layout,
                None,
            ));
        },
    )
}

/// `batch` copies of `prompt`, each generating exactly [`NEW_TOKENS`] tokens; aggregate rate.
pub fn generate(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompt: &[u32],
    batch: usize,
    params: &SamplingParams,
    repeats: usize,
) -> Timing {
    let params = SamplingParams {
        max_new_tokens: NEW_TOKENS,
        min_new_tokens: NEW_TOKENS,
        stop: Vec::new(),
        ..params.clone()
    };
    let never = AtomicBool::new(false);
    let kind = if params.temperature == 0.0 {
        "greedy"
    } else {
        "sample"
    };
    time_it(
        &format!("{kind}_b{batch}"),
        batch * NEW_TOKENS,
        repeats,
        || {
            let reqs: Vec<DecodeRequest> = (0..batch)
                .map(|i| DecodeRequest {
                    index: i as u64,
                    prompt: prompt.to_vec(),
                    params: params.clone(),
                    negative_prompt: None,
                })
                .collect();
            let out = decode(model, tokenizer, reqs, batch, &never, &mut |_| {});
            debug_assert!(out.iter().all(|f| f.tokens.len() == NEW_TOKENS));
        },
    )
}
