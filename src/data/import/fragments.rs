//! Rows that are pieces of other rows.
//!
//! Some datasets hold every phrase of a parsed sentence as its own row (SST-2's training file:
//! "there are laughs aplenty , and" beside the review it was cut from). Four such fragments make
//! poor seeds: the model continues fragments, the classifier learns from them, and the test rows
//! a user cares about are whole texts. A row is a *fragment* when its words, lower-cased, are a
//! contiguous run of a longer row's words. A file is *made of phrases* when a quarter or more
//! of its distinct texts are fragments; elsewhere (questions, reviews, tickets) a text that
//! happens to sit inside another is an ordinary row and stays.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::Row;

/// Which rows seeds (and carved validation rows) may be drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedRows {
    /// Whole texts only when the file is made of phrases; every row otherwise.
    #[default]
    Auto,
    /// Never a fragment.
    Whole,
    /// Every row, fragments included (how seeds were drawn before this rule).
    Any,
}

impl SeedRows {
    pub const NAMES: [&'static str; 3] = ["auto", "whole", "any"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Whole => "whole",
            Self::Any => "any",
        }
    }

    /// What the draw takes, for a report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auto => "whole texts where the file is made of phrases",
            Self::Whole => "whole texts only",
            Self::Any => "fragments of longer rows included",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "whole" => Ok(Self::Whole),
            "any" => Ok(Self::Any),
            _ => Err(format!(
                "unknown seed rows {s:?}; use one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// The longest fragment looked for: phrase rows are short (SST-2's longest is 56 words), and
/// the bound keeps a file of long documents from costing the cube of their length.
pub const MAX_FRAGMENT_WORDS: usize = 64;

const RUN_START: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over word ids: a run's hash grows one word at a time.
fn step(h: u64, id: u32) -> u64 {
    (h ^ u64::from(id)).wrapping_mul(FNV_PRIME)
}

/// Spreads FNV's state over a table's buckets (the murmur3 finaliser).
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The keys are hashes already; the table takes them as they are.
#[derive(Default)]
struct PreMixed(u64);

impl Hasher for PreMixed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A file is made of phrases from this share of fragments among its distinct texts.
pub const PHRASE_FILE_SHARE: f64 = 0.25;

/// Which rows are fragments, and whether the rule applies to this file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragments {
    /// One flag per row: its text is a run of a longer row's words.
    pub is_fragment: Vec<bool>,
    /// Fragments among the distinct texts, and the distinct texts.
    pub distinct_fragments: usize,
    pub distinct: usize,
    /// Rows are to be skipped when they are fragments.
    pub applies: bool,
}

impl Fragments {
    /// Finds the fragments of `rows` and decides, by `mode`, whether to leave them out.
    pub fn of(rows: &[Row], mode: SeedRows) -> Self {
        if mode == SeedRows::Any {
            return Self {
                is_fragment: vec![false; rows.len()],
                distinct_fragments: 0,
                distinct: 0,
                applies: false,
            };
        }
        // Words as ids, so a run is a slice of integers and hashing one is cheap.
        let mut ids: HashMap<String, u32> = HashMap::new();
        let words: Vec<Vec<u32>> = rows
            .iter()
            .map(|r| {
                r.text
                    .split_whitespace()
                    .map(|w| {
                        let next = ids.len() as u32;
                        *ids.entry(w.to_lowercase()).or_insert(next)
                    })
                    .collect()
            })
            .collect();
        let texts: HashSet<&[u32]> = words
            .iter()
            .map(Vec::as_slice)
            .filter(|w| !w.is_empty())
            .collect();
        // Texts short enough to be fragments, by the hash of their words.
        let mut by_hash: HashMap<u64, Vec<&[u32]>, BuildHasherDefault<PreMixed>> =
            HashMap::default();
        for w in texts.iter().filter(|w| w.len() <= MAX_FRAGMENT_WORDS) {
            let h = w.iter().fold(RUN_START, |h, &id| step(h, id));
            by_hash.entry(finish(h)).or_default().push(w);
        }
        let mut inside: HashSet<&[u32]> = HashSet::new();
        for w in &texts {
            // Every shorter run of this text's words (up to MAX_FRAGMENT_WORDS) that is a row,
            // hashed as it grows: a text of L words costs L·min(L, 64) lookups, not L³.
            for start in 0..w.len() {
                let mut h = RUN_START;
                for end in start..w.len().min(start + MAX_FRAGMENT_WORDS) {
                    h = step(h, w[end]);
                    if start == 0 && end + 1 == w.len() {
                        break;
                    }
                    let Some(found) = by_hash.get(&finish(h)) else {
                        continue;
                    };
                    let run = &w[start..=end];
                    if let Some(text) = found.iter().find(|t| **t == run) {
                        inside.insert(*text);
                    }
                }
            }
        }
        let is_fragment: Vec<bool> = words
            .iter()
            .map(|w| !w.is_empty() && inside.contains(w.as_slice()))
            .collect();
        let distinct = texts.len();
        let distinct_fragments = inside.len();
        let applies = match mode {
            SeedRows::Whole => true,
            SeedRows::Auto => {
                distinct > 0 && distinct_fragments as f64 >= PHRASE_FILE_SHARE * distinct as f64
            }
            SeedRows::Any => false,
        };
        Self {
            is_fragment,
            distinct_fragments,
            distinct,
            applies,
        }
    }

    /// Row `i` is to be left out.
    pub fn skips(&self, i: usize) -> bool {
        self.applies && self.is_fragment[i]
    }

    /// One line for a log: what was found and what was done.
    pub fn summary(&self) -> String {
        if self.distinct == 0 {
            return "every row eligible (fragments not looked for)".into();
        }
        let share = 100.0 * self.distinct_fragments as f64 / self.distinct as f64;
        let verdict = if self.applies {
            "drawing whole texts only"
        } else {
            "every row eligible"
        };
        format!(
            "{} of {} distinct texts ({share:.0}%) are runs of a longer row's words: {verdict}",
            self.distinct_fragments, self.distinct
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(texts: &[&str]) -> Vec<Row> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Row {
                line: i + 2,
                text: (*t).into(),
                label: "x".into(),
            })
            .collect()
    }

    #[test]
    fn a_run_of_a_longer_rows_words_is_a_fragment() {
        let r = rows(&[
            "there are laughs aplenty , and it works .",
            "There are  laughs aplenty , and",
            "laughs aplenty",
            "aplenty laughs",
            "it works .",
            "works",
        ]);
        let f = Fragments::of(&r, SeedRows::Whole);
        assert_eq!(f.is_fragment, [false, true, true, false, true, true]);
        assert!(f.applies);
        assert_eq!(f.distinct, 6);
        assert_eq!(f.distinct_fragments, 4);
        assert!(f.skips(1) && !f.skips(0) && !f.skips(3));
    }

    #[test]
    fn a_text_is_not_a_fragment_of_itself_or_of_a_duplicate() {
        let r = rows(&["a good film", "a good film", "A GOOD film"]);
        let f = Fragments::of(&r, SeedRows::Whole);
        assert_eq!(f.is_fragment, [false, false, false]);
        assert_eq!(f.distinct, 1);
    }

    #[test]
    fn auto_applies_only_to_a_file_made_of_phrases() {
        // One fragment among five distinct texts (20%): an ordinary file, nothing skipped.
        let ordinary = rows(&[
            "what is the capital of peru ?",
            "what is the capital",
            "who wrote hamlet ?",
            "how far is the moon ?",
            "why is the sky blue ?",
        ]);
        let f = Fragments::of(&ordinary, SeedRows::Auto);
        assert_eq!(f.distinct_fragments, 1);
        assert!(!f.applies);
        assert!(!f.skips(1));
        assert!(
            f.summary().ends_with("every row eligible"),
            "{}",
            f.summary()
        );
        // Two of four (50%): phrases; the fragments are left out.
        let phrases = rows(&["a fine , moving film", "a fine", "moving film", "dull"]);
        let f = Fragments::of(&phrases, SeedRows::Auto);
        assert!(f.applies);
        assert!(f.skips(1) && f.skips(2) && !f.skips(3));
        assert_eq!(
            f.summary(),
            "2 of 4 distinct texts (50%) are runs of a longer row's words: drawing whole texts only"
        );
    }

    #[test]
    fn runs_past_the_longest_fragment_looked_for_are_not_looked_up() {
        let long: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
        let window = |a: usize, b: usize| long[a..b].join(" ");
        let r = rows(&[
            &long.join(" "),
            &window(100, 100 + MAX_FRAGMENT_WORDS),
            &window(10, 11 + MAX_FRAGMENT_WORDS),
            &window(150, 153),
        ]);
        let f = Fragments::of(&r, SeedRows::Whole);
        // 64 words inside a 200-word text: found; 65: past the bound; 3 near the end: found.
        assert_eq!(f.is_fragment, [false, true, false, true]);
    }

    #[test]
    fn any_looks_for_nothing() {
        let f = Fragments::of(&rows(&["a b c", "a b"]), SeedRows::Any);
        assert!(!f.applies && !f.skips(1));
        assert_eq!(f.distinct, 0);
    }

    #[test]
    fn names_round_trip() {
        for n in SeedRows::NAMES {
            assert_eq!(SeedRows::parse(n).map(SeedRows::name), Ok(n));
        }
        assert!(SeedRows::parse("all").is_err());
    }
}
