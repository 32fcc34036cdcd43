//! The student's input: a text as a bag of hashed word, word-pair and character n-gram ids
//! (fastText's features). Pure: the same text gives the same ids on every machine.

use serde::{Deserialize, Serialize};

/// How texts become feature ids; saved with the student, since a different hashing reads a
/// different vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashing {
    /// Number of hash buckets (rows of the embedding table).
    pub buckets: u32,
    /// Word n-grams up to this length (1: words only, 2: also adjacent pairs).
    pub word_ngrams: usize,
    /// Character n-grams of each word with its boundary marks (`<word>`), from `char_min`
    /// to `char_max` characters; `char_max` 0 turns them off.
    pub char_min: usize,
    pub char_max: usize,
}

impl Default for Hashing {
    fn default() -> Self {
        Hashing {
            buckets: 1 << 17,
            word_ngrams: 2,
            char_min: 3,
            char_max: 5,
        }
    }
}

/// FNV-1a, 64-bit: stable across platforms and versions, unlike `std`'s hasher.
fn fnv1a(kind: u8, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    eat(kind);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            eat(0x1f);
        }
        p.bytes().for_each(&mut eat);
    }
    h
}

/// Lower-cased words: runs of letters, digits and inner apostrophes; every other visible
/// character is a word of its own ("?" says question, "!" says feeling).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || (c == '\'' && !cur.is_empty()) {
            cur.extend(c.to_lowercase());
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Hashing {
    /// The feature ids of `text`, repeated as often as they occur (the bag is averaged).
    pub fn features(&self, text: &str) -> Vec<u32> {
        let buckets = u64::from(self.buckets.max(1));
        let ws = words(text);
        let mut out = Vec::new();
        let mut push = |h: u64| out.push((h % buckets) as u32);
        for w in &ws {
            push(fnv1a(b'w', &[w]));
            if self.char_max >= self.char_min.max(1) {
                let marked: Vec<char> = format!("<{w}>").chars().collect();
                for n in self.char_min.max(1)..=self.char_max {
                    for g in marked.windows(n) {
                        // The whole marked word is already the word feature.
                        if g.len() < marked.len() {
                            let s: String = g.iter().collect();
                            push(fnv1a(b'c', &[&s]));
                        }
                    }
                }
            }
        }
        for n in 2..=self.word_ngrams {
            for g in ws.windows(n) {
                let parts: Vec<&str> = g.iter().map(String::as_str).collect();
                push(fnv1a(b'n', &parts));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_and_punctuation_stands_alone() {
        assert_eq!(
            words("What's the BEST film?  Not this!"),
            ["what's", "the", "best", "film", "?", "not", "this", "!"]
        );
        assert_eq!(words("  "), Vec::<String>::new());
    }

    #[test]
    fn features_count_words_pairs_and_character_grams() {
        let h = Hashing {
            buckets: 1 << 20,
            word_ngrams: 2,
            char_min: 3,
            char_max: 3,
        };
        // "<ab>" has two 3-grams; "<c>" has one and it is the whole word, so none.
        let f = h.features("ab c");
        assert_eq!(f.len(), 2 + 2 + 1, "{f:?}");
        assert!(f.iter().all(|&x| x < 1 << 20));
        // Same text, same ids; case does not matter; order of words does (pairs).
        assert_eq!(h.features("AB C"), f);
        assert_ne!(h.features("c ab"), f);
        let words_only = Hashing {
            word_ngrams: 1,
            char_max: 0,
            ..h
        };
        assert_eq!(words_only.features("ab c ab").len(), 3);
        assert_eq!(
            words_only.features("ab c ab")[0],
            words_only.features("ab c ab")[2]
        );
    }

    #[test]
    fn hashing_is_stable_across_builds() {
        // Fixed by FNV-1a's definition (computed independently of this code): a saved student
        // must read texts the same way forever.
        assert_eq!(fnv1a(b'w', &["film"]), 17_222_032_252_563_157_384);
        assert_eq!(Hashing::default().features("film")[0], 61_832);
        assert_ne!(fnv1a(b'w', &["film"]), fnv1a(b'c', &["film"]));
        assert_ne!(fnv1a(b'n', &["a", "bc"]), fnv1a(b'n', &["ab", "c"]));
    }
}
