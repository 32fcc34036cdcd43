//! Classifier-free guidance for writing examples of one class (Sanchez et al. 2023, "Stay on
//! topic with classifier-free guidance", arXiv 2306.17806; transformers' `guidance_scale` with
//! a negative prompt). Each request decodes beside its negative prompt — for generation, the
//! same template written for another class — and both rows are fed the token drawn from
//! `neg + γ·(own − neg)` of the two rows' log-probabilities: what makes a text of this class
//! rather than of the other is amplified, what both prompts would write alike is not.
//!
//! Requests run in groups of `batch / 2` pairs, each group to its end. Refilling a finished
//! pair's slots as [`decode`] does (both prompts prefilled alone and placed at the shared column)
//! was built and measured: the same text, 5% faster on the 2-core CPU but 9% slower on an H100,
//! where every lone prefill is a new kernel shape (docs/results.md) — so the groups stayed.
//!
//! [`decode`]: crate::llm::decode::decode

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};

use crate::llm::decode::{
    DecodeEvent, DecodeRequest, FinishReason, Finished, Row, fail_all, finish, fits_context,
    log_sum_exp, never_ran, new_row, progress,
};
use crate::llm::model::{KvCache, Llama, StepLayout, tokens_tensor};
use crate::llm::readback::f32_values;
use crate::llm::tokenizer::TextTokenizer;

/// Decodes `requests` with guidance, `batch` rows (half of them negative) at a time. A request
/// without a negative prompt is guided by its own prompt, which changes nothing.
pub fn decode(
    model: &Llama,
    tokenizer: &TextTokenizer,
    requests: Vec<DecodeRequest>,
    batch: usize,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(DecodeEvent),
) -> Vec<Finished> {
    let total = requests.len();
    let stop_ids = tokenizer.stop_ids();
    let device = model.device();
    let started = Instant::now();
    let context = model.max_positions();
    let mut finished: Vec<Finished> = Vec::with_capacity(total);
    let mut queue = std::collections::VecDeque::new();
    for req in requests.into_iter().filter(|r| !r.prompt.is_empty()) {
        let negative = req.negative_prompt.as_ref().map_or(0, Vec::len);
        let longest = req.prompt.len().max(negative);
        if fits_context(longest, req.params.max_new_tokens, context) {
            queue.push_back(req);
        } else {
            let error = format!(
                "the prompt or its negative prompt ({longest} tokens) and max tokens ({}) exceed \
                 the model's context ({context} tokens)",
                req.params.max_new_tokens
            );
            let f = never_ran(req, FinishReason::PromptTooLong, Some(error));
            sink(DecodeEvent::Finished(f.clone()));
            finished.push(f);
        }
    }
    let Some(attn) = model.layers.first().map(|b| &b.self_attn) else {
        return finished;
    };
    let pairs = (batch / 2).max(1);
    let mut generated_tokens = 0usize;
    let mut failure: Option<String> = None;
    let mut rows: Vec<Row> = Vec::new();
    'groups: while !queue.is_empty() {
        let group: Vec<DecodeRequest> = (0..pairs).map_while(|_| queue.pop_front()).collect();
        let mut prompts: Vec<Vec<u32>> = group.iter().map(|r| r.prompt.clone()).collect();
        prompts.extend(group.iter().map(|r| {
            r.negative_prompt
                .clone()
                .unwrap_or_else(|| r.prompt.clone())
        }));
        let layout = StepLayout::for_prompts(&prompts.iter().map(Vec::len).collect::<Vec<_>>());
        let longest_new = group
            .iter()
            .map(|r| r.params.max_new_tokens)
            .max()
            .unwrap_or(0);
        let mut cache = KvCache::with_dims(
            model.layers.len(),
            attn.num_kv_heads,
            attn.head_dim,
            prompts.len(),
            layout.len + longest_new + 1,
            &device,
        );
        let mut logits = model.forward_last(
            tokens_tensor(&prompts, tokenizer.pad_id(), &device),
            &layout,
            Some(&mut cache),
        );
        let mut starts = layout.start.clone();
        rows = group
            .into_iter()
            .zip(&layout.start)
            .map(|(req, &start)| {
                sink(DecodeEvent::Started { index: req.index });
                new_row(req, start, tokenizer)
            })
            .collect();
        loop {
            if cancel.load(Ordering::Relaxed) {
                for row in rows.drain(..) {
                    let f = finish(row, FinishReason::Cancelled, tokenizer);
                    sink(DecodeEvent::Finished(f.clone()));
                    finished.push(f);
                }
                break 'groups;
            }
            let flat = match f32_values(logits.into_data(), "logits") {
                Ok(flat) => flat,
                Err(e) => {
                    failure = Some(e.to_string());
                    break 'groups;
                }
            };
            let live = rows.len();
            let v = flat.len() / (2 * live);
            let mut kept = Vec::with_capacity(live);
            for (i, mut row) in std::mem::take(&mut rows).into_iter().enumerate() {
                let own = &flat[i * v..(i + 1) * v];
                let negative = &flat[(live + i) * v..(live + i + 1) * v];
                let (own_lse, negative_lse) = (log_sum_exp(own), log_sum_exp(negative));
                let scale = f64::from(row.sampler.params().guidance_scale);
                let mut guided: Vec<f32> = own
                    .iter()
                    .zip(negative)
                    .map(|(&o, &n)| {
                        let (o, n) = (f64::from(o) - own_lse, f64::from(n) - negative_lse);
                        (n + scale * (o - n)) as f32
                    })
                    .collect();
                row.forbid_stop_early(&mut guided, &stop_ids);
                let token = row.sampler.sample(&mut guided, &row.context);
                generated_tokens += 1;
                // The generator's likelihood of what it wrote stays the unguided model's.
                let logprob = f64::from(own[token as usize]) - own_lse;
                match row.advance(token, logprob, &stop_ids, sink) {
                    Some(reason) => {
                        let f = finish(row, reason, tokenizer);
                        sink(DecodeEvent::Finished(f.clone()));
                        finished.push(f);
                    }
                    None => {
                        kept.push(i);
                        rows.push(row);
                    }
                }
            }
            sink(DecodeEvent::Progress(progress(
                started,
                finished.len(),
                total,
                generated_tokens,
                rows.len(),
            )));
            if rows.is_empty() {
                break;
            }
            if kept.len() < live {
                let keep: Vec<usize> = kept
                    .iter()
                    .copied()
                    .chain(kept.iter().map(|&i| live + i))
                    .collect();
                cache.retain_rows(&keep);
                starts = keep.iter().map(|&i| starts[i]).collect();
            }
            let last: Vec<i64> = rows
                .iter()
                .chain(&rows)
                .map(|r| i64::from(r.last))
                .collect();
            let n = last.len();
            logits = model.forward_last(
                Tensor::from_data(TensorData::new(last, [n, 1]), &device),
                &StepLayout::decode(&starts, cache.len()),
                Some(&mut cache),
            );
        }
    }
    if let Some(error) = failure {
        fail_all(
            &error,
            rows.drain(..),
            queue.drain(..),
            tokenizer,
            sink,
            &mut finished,
        );
    }
    finished
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use burn::tensor::Device;

    use super::*;
    use crate::llm::decode::tests::by_index;
    use crate::llm::greedy::{argmax, row_logits};
    use crate::llm::model::tests::{tiny_model, tiny_tokenizer};
    use crate::llm::sampler::SamplingParams;

    const SCALE: f32 = 2.5;

    fn requests(scale: f32, max_new: usize) -> Vec<DecodeRequest> {
        // Own and negative prompts of different lengths, so rows are padded differently; pairs
        // that stop at different lengths, so a group's finished pairs leave it while others
        // run on.
        let pairs: [(Vec<u32>, Vec<u32>); 6] = [
            (vec![5, 6], vec![7, 8, 9, 10]),
            (vec![11, 12, 13, 14, 15], vec![16]),
            (vec![21, 22, 23], vec![24, 25, 26]),
            (vec![30], vec![31, 32, 33, 34, 35, 36]),
            (vec![40, 41, 42, 43], vec![44, 45]),
            ((41..57).collect(), vec![57, 58]),
        ];
        pairs
            .into_iter()
            .enumerate()
            .map(|(i, (prompt, negative))| DecodeRequest {
                index: i as u64,
                prompt,
                params: SamplingParams {
                    guidance_scale: scale,
                    ..SamplingParams::greedy(max_new - 2 * (i % 3))
                },
                negative_prompt: Some(negative),
            })
            .collect()
    }

    /// The next-token log-probabilities after `tokens`, the whole sequence run alone, no cache.
    fn next_log_probs(model: &Llama, tokens: &[u32]) -> Vec<f64> {
        let layout = StepLayout::for_prompts(&[tokens.len()]);
        let logits = model.forward_last(
            tokens_tensor(&[tokens.to_vec()], 0, &model.device()),
            &layout,
            None,
        );
        let logits = row_logits(logits).expect("logits");
        let lse = log_sum_exp(&logits);
        logits.into_iter().map(|x| f64::from(x) - lse).collect()
    }

    /// Guided greedy decoding the slow way: both full sequences run again at every step, no
    /// cache, no batch.
    fn by_hand(model: &Llama, req: &DecodeRequest, stop: &[u32]) -> Vec<u32> {
        let (mut own, mut negative) = (req.prompt.clone(), req.negative_prompt.clone().unwrap());
        let mut out = Vec::new();
        let scale = f64::from(req.params.guidance_scale);
        for _ in 0..req.params.max_new_tokens {
            let o = next_log_probs(model, &own);
            let n = next_log_probs(model, &negative);
            let guided: Vec<f32> = o
                .iter()
                .zip(&n)
                .map(|(o, n)| (n + scale * (o - n)) as f32)
                .collect();
            let token = argmax(&guided) as u32;
            if stop.contains(&token) {
                break;
            }
            out.push(token);
            own.push(token);
            negative.push(token);
        }
        out
    }

    #[test]
    fn guided_greedy_equals_the_rule_applied_by_hand_in_any_batch() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let stop = tk.stop_ids();
        let expected: Vec<Vec<u32>> = requests(SCALE, 8)
            .iter()
            .map(|r| by_hand(&model, r, &stop))
            .collect();
        let never = AtomicBool::new(false);
        for batch in [1, 2, 4, 6, 16] {
            let got = crate::llm::decode::decode(
                &model,
                &tk,
                requests(SCALE, 8),
                batch,
                &never,
                &mut |_| {},
            );
            assert_eq!(by_index(got), expected, "batch {batch}");
        }
        // Guidance changed what was written: the same requests unguided write something else.
        let plain =
            crate::llm::decode::decode(&model, &tk, requests(1.0, 8), 4, &never, &mut |_| {});
        assert_ne!(by_index(plain), expected);
    }

    #[test]
    fn a_negative_prompt_equal_to_the_own_changes_nothing() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let never = AtomicBool::new(false);
        let same: Vec<DecodeRequest> = requests(SCALE, 8)
            .into_iter()
            .map(|mut r| {
                r.negative_prompt = Some(r.prompt.clone());
                r
            })
            .collect();
        let unguided: Vec<DecodeRequest> = same
            .iter()
            .cloned()
            .map(|mut r| {
                r.negative_prompt = None;
                r
            })
            .collect();
        let guided = decode(&model, &tk, same, 4, &never, &mut |_| {});
        let plain = crate::llm::decode::decode(&model, &tk, unguided, 4, &never, &mut |_| {});
        assert_eq!(by_index(guided), by_index(plain));
    }

    #[test]
    fn the_recorded_likelihood_is_the_unguided_models() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let never = AtomicBool::new(false);
        let mut req = requests(SCALE, 5).remove(0);
        // No end-of-sequence before five tokens, so there is something to score.
        req.params.min_new_tokens = 5;
        let got = decode(&model, &tk, vec![req.clone()], 2, &never, &mut |_| {});
        let f = &got[0];
        // Score the written tokens under the own prompt alone, token by token.
        let mut context = req.prompt.clone();
        let mut want = 0.0;
        for &t in &f.tokens {
            want += next_log_probs(&model, &context)[t as usize];
            context.push(t);
        }
        assert_eq!(f.tokens.len(), 5);
        assert!((f.logprob - want).abs() < 1e-3, "{} vs {want}", f.logprob);
    }

    #[test]
    fn a_pair_past_the_context_is_refused_by_its_longer_prompt() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let tk = tiny_tokenizer();
        let never = AtomicBool::new(false);
        let context = model.max_positions();
        let mut req = requests(SCALE, 10).remove(0);
        req.negative_prompt = Some(vec![7; context - 5]);
        let got = decode(&model, &tk, vec![req], 2, &never, &mut |_| {});
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].reason, FinishReason::PromptTooLong);
        assert!(
            got[0]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("negative prompt")
        );
    }
}
