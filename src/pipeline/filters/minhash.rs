//! Near-duplicate search that scales to 100k items: MinHash signatures of word shingles and a
//! banded locality-sensitive index. Candidates found through the bands are confirmed with the
//! exact Jaccard similarity of their shingles, so the index only decides whom to compare, never
//! the verdict.

use std::collections::HashMap;

use super::text::{jaccard, shingles};

const HASHES: usize = 128;
/// 32 bands of 4 rows: two texts with Jaccard s share a band with probability 1-(1-s⁴)³²,
/// 0.96 at s = 0.5 and >0.999 at s = 0.7, so pairs above usual thresholds are not missed.
const BANDS: usize = 32;
const ROWS: usize = HASHES / BANDS;

/// A 64-bit FNV-1a hash, stable across runs and releases (std's hasher is randomly seeded).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn signature(shingles: &[String]) -> [u64; HASHES] {
    let mut sig = [u64::MAX; HASHES];
    for s in shingles {
        let base = fnv1a(s.as_bytes());
        for (i, slot) in sig.iter_mut().enumerate() {
            let h = mix(base ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            if h < *slot {
                *slot = h;
            }
        }
    }
    sig
}

/// Items seen so far, searchable for near duplicates.
pub struct NearDupIndex {
    n: usize,
    shingles: Vec<Vec<String>>,
    names: Vec<String>,
    bands: Vec<HashMap<u64, Vec<usize>>>,
}

/// The closest earlier item above the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct NearMatch {
    pub name: String,
    pub similarity: f64,
}

impl NearDupIndex {
    /// `n`: words per shingle.
    pub fn new(n: usize) -> Self {
        NearDupIndex {
            n,
            shingles: Vec::new(),
            names: Vec::new(),
            bands: (0..BANDS).map(|_| HashMap::new()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn band_keys(sig: &[u64; HASHES]) -> impl Iterator<Item = u64> + '_ {
        (0..BANDS).map(move |b| {
            let mut bytes = [0u8; ROWS * 8];
            for r in 0..ROWS {
                bytes[r * 8..r * 8 + 8].copy_from_slice(&sig[b * ROWS + r].to_le_bytes());
            }
            fnv1a(&bytes)
        })
    }

    /// The most similar indexed item whose Jaccard similarity to `text` is at least `threshold`.
    pub fn most_similar(&self, text: &str, threshold: f64) -> Option<NearMatch> {
        let sh = shingles(text, self.n);
        if sh.is_empty() {
            return None;
        }
        let sig = signature(&sh);
        let mut seen = std::collections::HashSet::new();
        let mut best: Option<(usize, f64)> = None;
        for (b, key) in Self::band_keys(&sig).enumerate() {
            for &i in self.bands[b].get(&key).into_iter().flatten() {
                if !seen.insert(i) {
                    continue;
                }
                let s = jaccard(&sh, &self.shingles[i]);
                if s >= threshold && best.is_none_or(|(_, bs)| s > bs) {
                    best = Some((i, s));
                }
            }
        }
        best.map(|(i, s)| NearMatch {
            name: self.names[i].clone(),
            similarity: s,
        })
    }

    pub fn insert(&mut self, name: impl Into<String>, text: &str) {
        let sh = shingles(text, self.n);
        let sig = signature(&sh);
        let i = self.names.len();
        for (b, key) in Self::band_keys(&sig).enumerate() {
            self.bands[b].entry(key).or_default().push(i);
        }
        self.shingles.push(sh);
        self.names.push(name.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_reworded_copy_and_not_an_unrelated_text() {
        let mut idx = NearDupIndex::new(2);
        idx.insert(
            "s1",
            "The plot wanders for two hours and never finds anything worth saying.",
        );
        idx.insert(
            "s2",
            "A warm, funny film that earns every one of its tears.",
        );
        let m = idx
            .most_similar(
                "the plot wanders for two hours and never finds anything worth seeing",
                0.6,
            )
            .unwrap();
        assert_eq!(m.name, "s1");
        // 11 word bigrams each, 10 shared ("worth saying" vs "worth seeing"): 10/12.
        assert!(
            (m.similarity - 10.0 / 12.0).abs() < 1e-12,
            "{}",
            m.similarity
        );
        assert!(
            idx.most_similar("Completely different words about a cooking show.", 0.3)
                .is_none()
        );
    }

    #[test]
    fn index_recall_on_many_items_matches_brute_force() {
        // 2000 synthetic texts from a small vocabulary; every brute-force pair ≥ 0.7 must be found.
        let vocab: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
        let mut rng = crate::util::rng::Rng::new(9);
        let mut texts: Vec<String> = Vec::new();
        for i in 0..2000 {
            if i % 10 == 0 && i > 0 {
                // a near copy of an earlier text: change one word
                let mut w: Vec<&str> = texts[rng.below(i as u64) as usize].split(' ').collect();
                let j = rng.below(w.len() as u64) as usize;
                w[j] = "changed";
                texts.push(w.join(" "));
            } else {
                let n = 8 + rng.below(8) as usize;
                texts.push(
                    (0..n)
                        .map(|_| vocab[rng.below(60) as usize].as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
        }
        let mut idx = NearDupIndex::new(2);
        let mut all: Vec<Vec<String>> = Vec::new();
        let mut missed = 0;
        let mut expected = 0;
        for (i, t) in texts.iter().enumerate() {
            let sh = shingles(t, 2);
            let brute = all.iter().map(|o| jaccard(&sh, o)).fold(0.0, f64::max);
            if brute >= 0.7 {
                expected += 1;
                match idx.most_similar(t, 0.7) {
                    Some(m) => {
                        // The exact Jaccard of the item it names, above the threshold, and no
                        // more than the best there is.
                        let named = jaccard(&sh, &all[m.name.parse::<usize>().unwrap()]);
                        assert!((m.similarity - named).abs() < 1e-12, "{m:?} vs {named}");
                        assert!(
                            m.similarity >= 0.7 && m.similarity <= brute + 1e-12,
                            "{m:?}"
                        );
                    }
                    None => missed += 1,
                }
            } else {
                assert!(idx.most_similar(t, 0.7).is_none());
            }
            idx.insert(i.to_string(), t);
            all.push(sh);
        }
        assert!(expected >= 100, "{expected}");
        assert!(missed * 100 <= expected, "missed {missed} of {expected}");
    }
}
