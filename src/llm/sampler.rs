//! Choosing the next token from logits: repetition penalty, temperature, top-k, top-p, then a
//! draw from the remaining distribution — the order transformers' `generate` applies them in.
//! Each sequence owns its random stream, so its output depends only on its seed and settings.

use serde::{Deserialize, Serialize};

use crate::util::rng::Rng;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p (nucleus) filtering.
    pub top_p: f32,
    /// 1.0 disables it; > 1 discourages tokens already in the prompt or the output.
    pub repetition_penalty: f32,
    pub max_new_tokens: usize,
    /// End-of-sequence tokens are suppressed until this many tokens exist (as transformers'
    /// `min_new_tokens`; benchmarks use it to make every run the same length).
    pub min_new_tokens: usize,
    /// Text that ends a generation (not included in the output).
    pub stop: Vec<String>,
    pub seed: u64,
    /// Classifier-free guidance (transformers' `guidance_scale`): with a negative prompt, the
    /// next token is drawn from `neg + γ·(own − neg)` of the two prompts' log-probabilities.
    /// 1 turns it off.
    pub guidance_scale: f32,
}

impl Default for SamplingParams {
    /// The paper's settings: temperature 1.0, top-k 50.
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.0,
            max_new_tokens: 64,
            min_new_tokens: 0,
            stop: Vec::new(),
            seed: 0,
            guidance_scale: 1.0,
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_new_tokens: usize) -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            max_new_tokens,
            ..Default::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!("temperature must be ≥ 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top-p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(format!(
                "repetition penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        if !(self.guidance_scale.is_finite() && (1.0..=MAX_GUIDANCE).contains(&self.guidance_scale))
        {
            return Err(format!(
                "guidance must be in [1, 10] (1 is off), got {}",
                self.guidance_scale
            ));
        }
        Ok(())
    }
}

/// The strongest guidance accepted (a bound for typed values; the guidance paper's useful
/// range is 1–3, and only 2 was measured here).
pub const MAX_GUIDANCE: f32 = 10.0;

/// One sequence's sampling state.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    /// `index` tells sequences of one run apart: each gets its own stream under the run's seed.
    pub fn new(params: SamplingParams, index: u64) -> Self {
        let rng = Rng::for_item(params.seed, index);
        Sampler { params, rng }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token. `context` holds the tokens the repetition penalty looks at.
    pub fn sample(&mut self, logits: &mut [f32], context: &[u32]) -> u32 {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            apply_repetition_penalty(logits, context, p.repetition_penalty);
        }
        if p.temperature == 0.0 {
            return crate::llm::greedy::argmax(logits) as u32;
        }
        let candidates = filtered_candidates(logits, p.temperature, p.top_k, p.top_p);
        let u = self.rng.next_f64();
        draw(&candidates, u)
    }
}

/// transformers' rule: a seen token's logit is divided by the penalty when positive and
/// multiplied when negative, so both move towards "less likely".
pub fn apply_repetition_penalty(logits: &mut [f32], context: &[u32], penalty: f32) {
    let mut seen = std::collections::HashSet::new();
    for &t in context {
        if seen.insert(t)
            && let Some(l) = logits.get_mut(t as usize)
        {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// The tokens that survive top-k and top-p, with their probabilities (summing to 1), most
/// likely first.
pub fn filtered_candidates(
    logits: &[f32],
    temperature: f32,
    top_k: usize,
    top_p: f32,
) -> Vec<(u32, f64)> {
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let k = if top_k == 0 {
        logits.len()
    } else {
        top_k.min(logits.len())
    };
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, by_logit);
        idx.truncate(k);
    }
    idx.sort_by(by_logit);
    let t = temperature as f64;
    let max = logits[idx[0] as usize] as f64 / t;
    let weights: Vec<f64> = idx
        .iter()
        .map(|&i| (logits[i as usize] as f64 / t - max).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut out = Vec::with_capacity(idx.len());
    let mut cumulative = 0.0;
    for (&i, w) in idx.iter().zip(weights) {
        let p = w / total;
        out.push((i, p));
        cumulative += p;
        // transformers keeps the smallest prefix whose mass reaches top_p (always ≥ 1 token).
        if top_p < 1.0 && cumulative >= top_p as f64 {
            break;
        }
    }
    let kept: f64 = out.iter().map(|(_, p)| p).sum();
    for (_, p) in &mut out {
        *p /= kept;
    }
    out
}

/// Inverse-CDF draw with `u` in `[0, 1)`.
pub fn draw(candidates: &[(u32, f64)], u: f64) -> u32 {
    let mut acc = 0.0;
    for &(id, p) in candidates {
        acc += p;
        if u < acc {
            return id;
        }
    }
    candidates.last().map(|c| c.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_k_best_renormalised() {
        let logits = [0.0f32, 2.0, 1.0, 3.0];
        let c = filtered_candidates(&logits, 1.0, 2, 1.0);
        assert_eq!(c.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 1]);
        let e = 1f64.exp();
        assert!((c[0].1 - e / (e + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_reaching_p() {
        // probabilities 0.5, 0.3, 0.2 (logits are their logs)
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let c = filtered_candidates(&logits, 1.0, 0, 0.7);
        assert_eq!(c.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((c[0].1 - 0.625).abs() < 1e-6);
    }

    #[test]
    fn temperature_sharpens() {
        let logits = [1.0f32, 0.0];
        let hot = filtered_candidates(&logits, 2.0, 0, 1.0)[0].1;
        let cold = filtered_candidates(&logits, 0.5, 0, 1.0)[0].1;
        let e = |x: f64| 1.0 / (1.0 + (-x).exp());
        assert!((hot - e(0.5)).abs() < 1e-12 && (cold - e(2.0)).abs() < 1e-12);
    }

    #[test]
    fn repetition_penalty_follows_transformers() {
        let mut l = [2.0f32, -2.0, 1.0];
        apply_repetition_penalty(&mut l, &[0, 1, 1], 2.0);
        assert_eq!(l, [1.0, -4.0, 1.0]);
    }

    #[test]
    fn same_seed_same_draws_and_greedy_is_argmax() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 / 3.0).collect();
        let run = |seed| {
            let mut s = Sampler::new(
                SamplingParams {
                    seed,
                    ..Default::default()
                },
                0,
            );
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let mut g = Sampler::new(SamplingParams::greedy(5), 0);
        assert_eq!(
            g.sample(&mut logits.clone(), &[]),
            crate::llm::greedy::argmax(&logits) as u32
        );
    }

    #[test]
    fn draws_follow_the_distribution() {
        let c = vec![(7, 0.25), (9, 0.75)];
        let mut rng = Rng::new(11);
        let n = 20_000;
        let sevens = (0..n).filter(|_| draw(&c, rng.next_f64()) == 7).count();
        let share = sevens as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.015, "{share}");
    }
}
