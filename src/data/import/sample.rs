//! The papers' low-resource protocol: k examples per class, drawn with a fixed seed.
//!
//! The draw must give the same sample for the same file and seed in every future release, so it
//! depends on nothing outside this file:
//!
//! 1. Eligible rows: at least `min_words` whitespace-separated tokens, not a duplicate of an
//!    earlier row (texts compared lower-cased with runs of whitespace collapsed; the first
//!    occurrence in the file wins), and — where [`SeedRows`] says so, by default in a file made
//!    of phrases — not a fragment of a longer row ([`super::fragments`]).
//! 2. Each class draws from its own generator, SplitMix64 (Steele, Lea & Flood 2014) seeded with
//!    `seed XOR fnv1a64(label)`, so adding a class to a task leaves the other classes' samples
//!    as they were.
//! 3. A partial Fisher–Yates shuffle over the class's eligible rows in file order: for
//!    `i in 0..k`, swap row `i` with row `i + below(n - i)`, where `below(m)` draws 64-bit values
//!    and rejects those `>= 2^64 - 1 - ((2^64 - 1) mod m)` before taking `value mod m` (no bias).
//! 4. The first k rows after the shuffle, reported in file order.

use std::collections::HashSet;

use super::Row;
use super::fragments::{Fragments, SeedRows};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleOptions {
    pub per_class: usize,
    pub seed: u64,
    /// Minimum number of whitespace-separated tokens (the papers prefer 6 for SST-2).
    pub min_words: usize,
    /// Whether fragments of longer rows may be drawn.
    pub rows: SeedRows,
}

/// How one class fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSample {
    pub label: String,
    /// Rows of this class in the input.
    pub rows: usize,
    /// Rows left after the length and duplicate rules.
    pub eligible: usize,
    /// Rows drawn (`per_class`, or all eligible ones when fewer).
    pub taken: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The drawn rows, class by class in the order of the labels given, each class in file order.
    pub rows: Vec<Row>,
    pub classes: Vec<ClassSample>,
    pub too_short: usize,
    pub duplicates: usize,
    /// Rows left out as fragments of longer rows.
    pub fragments: usize,
    /// What the fragment rule found in the file and did ([`Fragments::summary`]).
    pub fragment_rule: String,
}

impl Sample {
    /// Classes that could not give the rows asked for.
    pub fn short_classes(&self, per_class: usize) -> impl Iterator<Item = &ClassSample> {
        self.classes.iter().filter(move |c| c.taken < per_class)
    }
}

/// Draws `per_class` rows of each label in `labels` (rows with other labels are ignored).
pub fn sample_per_class(rows: &[Row], labels: &[String], opts: &SampleOptions) -> Sample {
    sample_per_class_with(rows, labels, opts, &Fragments::of(rows, opts.rows))
}

/// [`sample_per_class`] with the file's fragments already found (by `opts.rows`), for a caller
/// that draws from the same rows more than once.
pub fn sample_per_class_with(
    rows: &[Row],
    labels: &[String],
    opts: &SampleOptions,
    fragments: &Fragments,
) -> Sample {
    let mut seen = HashSet::new();
    let mut too_short = 0;
    let mut duplicates = 0;
    let mut fragment_rows = 0;
    let mut eligible: Vec<Vec<&Row>> = vec![Vec::new(); labels.len()];
    let mut counts = vec![0usize; labels.len()];
    for (i, row) in rows.iter().enumerate() {
        let Some(class) = labels.iter().position(|l| *l == row.label) else {
            continue;
        };
        counts[class] += 1;
        if row.text.split_whitespace().count() < opts.min_words {
            too_short += 1;
            continue;
        }
        if fragments.skips(i) {
            fragment_rows += 1;
            continue;
        }
        if !seen.insert(normalise(&row.text)) {
            duplicates += 1;
            continue;
        }
        eligible[class].push(row);
    }
    let mut out = Vec::new();
    let mut classes = Vec::new();
    for ((label, mut pool), count) in labels.iter().zip(eligible).zip(counts) {
        let mut rng = SplitMix64(opts.seed ^ fnv1a64(label.as_bytes()));
        let k = opts.per_class.min(pool.len());
        for i in 0..k {
            let j = i + rng.below((pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        let mut drawn: Vec<Row> = pool[..k].iter().map(|r| (*r).clone()).collect();
        drawn.sort_by_key(|r| r.line);
        classes.push(ClassSample {
            label: label.clone(),
            rows: count,
            eligible: pool.len(),
            taken: k,
        });
        out.extend(drawn);
    }
    Sample {
        rows: out,
        classes,
        too_short,
        duplicates,
        fragments: fragment_rows,
        fragment_rule: fragments.summary(),
    }
}

/// Splits off `n` rows drawn at random over the whole file (the classes as they come, unlike
/// [`sample_per_class`]), among rows of at least `min_words` tokens, no duplicate text and no
/// fragment where `kinds` leaves them out (validation rows should look like the test rows a
/// user has, whole texts): a validation set carved from a training file. Returns (the drawn
/// rows, the rest), each in file order; the rest holds no row whose text equals a drawn one's,
/// nor, where fragments are left out, a fragment of one.
pub fn carve(
    rows: &[Row],
    n: usize,
    seed: u64,
    min_words: usize,
    kinds: SeedRows,
) -> (Vec<Row>, Vec<Row>) {
    let mut seen = HashSet::new();
    let fragments = Fragments::of(rows, kinds);
    let mut pool: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].text.split_whitespace().count() >= min_words)
        .filter(|&i| !fragments.skips(i))
        .filter(|&i| seen.insert(normalise(&rows[i].text)))
        .collect();
    let mut rng = SplitMix64(seed);
    let k = n.min(pool.len());
    for i in 0..k {
        let j = i + rng.below((pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    let mut drawn = pool[..k].to_vec();
    drawn.sort_unstable();
    let mut texts: HashSet<String> = drawn.iter().map(|&i| normalise(&rows[i].text)).collect();
    if fragments.applies {
        // A phrase of a validation row left among the training rows would put that row's words
        // and label in the seeds or the pool.
        for &i in &drawn {
            let words: Vec<String> = rows[i]
                .text
                .split_whitespace()
                .map(str::to_lowercase)
                .collect();
            for start in 0..words.len() {
                for end in start + 1..=words.len() {
                    texts.insert(words[start..end].join(" "));
                }
            }
        }
    }
    let rest = rows
        .iter()
        .filter(|r| !texts.contains(&normalise(&r.text)))
        .cloned()
        .collect();
    (drawn.into_iter().map(|i| rows[i].clone()).collect(), rest)
}

fn normalise(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// FNV-1a, 64-bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64: tiny, fast, and fixed forever by its published definition.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..m` (`m > 0`), by rejection of the biased top values.
    fn below(&mut self, m: u64) -> u64 {
        let limit = u64::MAX - u64::MAX % m;
        loop {
            let x = self.next();
            if x < limit {
                return x % m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: usize, text: &str, label: &str) -> Row {
        Row {
            line,
            text: text.into(),
            label: label.into(),
        }
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The reference C implementation (Vigna's splitmix64.c) seeded with 0.
        let mut r = SplitMix64(0);
        assert_eq!(r.next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn fnv1a64_matches_published_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn two_candidates_one_draw_follows_the_first_random_number() {
        // One class, two eligible rows, k = 1: row index `below(2)` of the first number.
        // Seed chosen so the class generator starts from state 0: seed = fnv1a64("a").
        let rows = [row(1, "first", "a"), row(2, "second", "a")];
        let opts = SampleOptions {
            per_class: 1,
            seed: 0xaf63_dc4c_8601_ec8c,
            min_words: 0,
            rows: SeedRows::Auto,
        };
        let s = sample_per_class(&rows, &["a".into()], &opts);
        // 0xe220a8397b1dcdaf is odd, so below(2) = 1: the second row.
        assert_eq!(s.rows, [row(2, "second", "a")]);
    }

    #[test]
    fn a_carved_validation_set_is_drawn_once_and_shares_no_text_with_the_rest() {
        let rows: Vec<Row> = (1..=40)
            .map(|i| {
                let label = if i % 3 == 0 { "n" } else { "p" };
                row(i, &format!("text number {}", i % 30), label)
            })
            .chain([row(41, "short", "p")])
            .collect();
        let (val, rest) = carve(&rows, 10, 13, 3, SeedRows::Auto);
        assert_eq!(val.len(), 10);
        assert!(val.windows(2).all(|w| w[0].line < w[1].line));
        assert!(val.iter().all(|r| r.text != "short"));
        // Rows 31..=40 repeat the texts of rows 1..=10: a drawn text leaves the rest whole.
        for v in &val {
            assert!(rest.iter().all(|r| r.text != v.text), "{} in both", v.text);
        }
        let drawn_texts: HashSet<&str> = val.iter().map(|r| r.text.as_str()).collect();
        let copies = rows
            .iter()
            .filter(|r| drawn_texts.contains(r.text.as_str()))
            .count();
        assert_eq!(rest.len(), rows.len() - copies);
        // The same file and seed carve the same rows; another seed carves others.
        assert_eq!(carve(&rows, 10, 13, 3, SeedRows::Auto).0, val);
        assert_ne!(carve(&rows, 10, 14, 3, SeedRows::Auto).0, val);
        // Asking for more than there is takes every eligible text once.
        assert_eq!(carve(&rows, 1000, 13, 3, SeedRows::Auto).0.len(), 30);
    }

    #[test]
    fn length_duplicates_and_shortfalls() {
        let rows = [
            row(1, "one two three", "p"),
            row(2, "One  two three", "p"),
            row(3, "short", "p"),
            row(4, "four five six", "n"),
            row(5, "seven eight nine", "p"),
            row(6, "ten eleven twelve", "x"),
        ];
        let opts = SampleOptions {
            per_class: 4,
            seed: 7,
            min_words: 3,
            rows: SeedRows::Auto,
        };
        let s = sample_per_class(&rows, &["p".into(), "n".into()], &opts);
        assert_eq!((s.too_short, s.duplicates), (1, 1));
        assert_eq!(
            s.classes,
            [
                ClassSample {
                    label: "p".into(),
                    rows: 4,
                    eligible: 2,
                    taken: 2
                },
                ClassSample {
                    label: "n".into(),
                    rows: 1,
                    eligible: 1,
                    taken: 1
                },
            ]
        );
        let lines: Vec<usize> = s.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 5, 4]);
        assert_eq!(s.short_classes(4).count(), 2);
    }

    #[test]
    fn same_seed_same_sample_other_seed_other_sample() {
        let rows: Vec<Row> = (1..=200)
            .map(|i| row(i, &format!("text {i}"), ["a", "b"][i % 2]))
            .collect();
        let labels = ["a".to_string(), "b".to_string()];
        let opts = |seed| SampleOptions {
            per_class: 4,
            seed,
            min_words: 0,
            rows: SeedRows::Auto,
        };
        let a = sample_per_class(&rows, &labels, &opts(1));
        assert_eq!(a, sample_per_class(&rows, &labels, &opts(1)));
        assert_ne!(a.rows, sample_per_class(&rows, &labels, &opts(2)).rows);
        assert_eq!(a.rows.len(), 8);
        // Adding a class does not change the draw of the others.
        let three = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(sample_per_class(&rows, &three, &opts(1)).rows, a.rows);
    }

    #[test]
    fn fragments_of_a_phrase_file_are_neither_drawn_nor_carved() {
        // A treebank-like file: each review with its phrases.
        let rows = [
            row(1, "a fine , moving film .", "p"),
            row(2, "a fine , moving film", "p"),
            row(3, "moving film", "p"),
            row(4, "a dull , lifeless mess .", "n"),
            row(5, "a dull , lifeless mess", "n"),
            row(6, "lifeless", "n"),
        ];
        let labels = ["p".to_string(), "n".to_string()];
        let opts = |rows| SampleOptions {
            per_class: 4,
            seed: 3,
            min_words: 0,
            rows,
        };
        let s = sample_per_class(&rows, &labels, &opts(SeedRows::Auto));
        let lines: Vec<usize> = s.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 4]);
        assert_eq!(s.fragments, 4);
        assert!(s.fragment_rule.starts_with("4 of 6 distinct texts (67%)"));
        // `any` draws every row, as before the rule.
        let s = sample_per_class(&rows, &labels, &opts(SeedRows::Any));
        assert_eq!((s.rows.len(), s.fragments), (6, 0));
        let (val, rest) = carve(&rows, 1, 1, 0, SeedRows::Auto);
        assert_eq!(val.len(), 1);
        // The carved review's phrases leave with it; the other review keeps its own.
        let other = if val[0].line == 1 {
            [4, 5, 6]
        } else {
            [1, 2, 3]
        };
        assert_eq!(rest.iter().map(|r| r.line).collect::<Vec<_>>(), other);
        let (val, rest) = carve(&rows, 10, 1, 0, SeedRows::Auto);
        assert_eq!(val.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 4]);
        assert!(rest.is_empty());
        // Without the rule only the carved texts themselves leave.
        let (val, rest) = carve(&rows, 2, 1, 0, SeedRows::Any);
        assert_eq!((val.len(), rest.len()), (2, 4));
    }
}
