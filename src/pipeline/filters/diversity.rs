//! How varied a set of texts is: distinct n-grams (Li et al., 2016) and the mean pairwise
//! similarity of word bigram sets. The paper leaves open whether synthetic data is less diverse
//! than real data; these figures let a user see it on their own task.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::text::{jaccard, shingles, words};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Diversity {
    pub texts: usize,
    /// Distinct unigrams / all unigrams.
    pub distinct_1: f64,
    /// Distinct bigrams / all bigrams.
    pub distinct_2: f64,
    /// Mean Jaccard similarity of word-bigram sets over all pairs (over a fixed sample of at most
    /// 400 texts for large sets). Lower is more diverse.
    pub mean_pairwise_similarity: f64,
}

pub fn diversity(texts: &[&str]) -> Diversity {
    let mut uni = 0usize;
    let mut bi = 0usize;
    let mut uni_set = HashSet::new();
    let mut bi_set = HashSet::new();
    for t in texts {
        let w = words(t);
        uni += w.len();
        for x in &w {
            uni_set.insert(x.clone());
        }
        for pair in w.windows(2) {
            bi += 1;
            bi_set.insert(pair.join(" "));
        }
    }
    // Evenly spaced sample keeps the quadratic part bounded and deterministic.
    let cap = 400;
    let step = texts.len().div_ceil(cap).max(1);
    let sample: Vec<Vec<String>> = texts.iter().step_by(step).map(|t| shingles(t, 2)).collect();
    let mut total = 0.0;
    let mut pairs = 0usize;
    for i in 0..sample.len() {
        for j in i + 1..sample.len() {
            total += jaccard(&sample[i], &sample[j]);
            pairs += 1;
        }
    }
    let ratio = |d: usize, n: usize| if n == 0 { 0.0 } else { d as f64 / n as f64 };
    Diversity {
        texts: texts.len(),
        distinct_1: ratio(uni_set.len(), uni),
        distinct_2: ratio(bi_set.len(), bi),
        mean_pairwise_similarity: if pairs == 0 {
            0.0
        } else {
            total / pairs as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_by_hand() {
        let d = diversity(&["a b a", "a b c"]);
        // unigrams: 6 total, {a,b,c} distinct; bigrams: ab ba ab bc → 4 total, 3 distinct
        assert!((d.distinct_1 - 3.0 / 6.0).abs() < 1e-12);
        assert!((d.distinct_2 - 3.0 / 4.0).abs() < 1e-12);
        // bigram sets {ab, ba} and {ab, bc}: 1 shared of 3
        assert!((d.mean_pairwise_similarity - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn repeated_text_is_less_diverse() {
        let same = diversity(&["the film is great"; 5]);
        let varied = diversity(&[
            "the film is great",
            "a dull slog",
            "loved every minute",
            "never again",
            "pure joy",
        ]);
        assert!(same.distinct_2 < varied.distinct_2);
        assert!(same.mean_pairwise_similarity > varied.mean_pairwise_similarity);
    }
}
