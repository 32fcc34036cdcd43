//! Text normalisation shared by the duplicate filters and the diversity figures.

/// Lower case, punctuation removed, whitespace collapsed: two texts that differ only in case,
/// spacing or punctuation normalise to the same string.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| {
            c.is_whitespace() || (c.is_ascii_punctuation() && c != '\'') || is_unicode_punct(c)
        })
        .filter(|w| !w.is_empty())
    {
        let w: String = word
            .chars()
            .filter(|c| *c != '\'')
            .flat_map(char::to_lowercase)
            .collect();
        if w.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&w);
    }
    out
}

fn is_unicode_punct(c: char) -> bool {
    matches!(
        c,
        '“' | '”' | '‘' | '’' | '—' | '–' | '…' | '«' | '»' | '¡' | '¿'
    )
}

/// The normalised words of `text`.
pub fn words(text: &str) -> Vec<String> {
    normalize(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Word `n`-grams of `text` joined by spaces; a text shorter than `n` words gives itself, so
/// very short texts still compare.
pub fn shingles(text: &str, n: usize) -> Vec<String> {
    let w = words(text);
    if w.is_empty() {
        return Vec::new();
    }
    if w.len() <= n {
        return vec![w.join(" ")];
    }
    w.windows(n).map(|g| g.join(" ")).collect()
}

/// Jaccard similarity of two sets of shingles.
pub fn jaccard(a: &[String], b: &[String]) -> f64 {
    use std::collections::HashSet;
    let a: HashSet<&String> = a.iter().collect();
    let b: HashSet<&String> = b.iter().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let inter = a.intersection(&b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_space_and_punctuation_do_not_matter() {
        assert_eq!(normalize("  A  GREAT film!!  "), "a great film");
        assert_eq!(normalize("A great, film."), normalize("a great film"));
        assert_eq!(normalize("Don't — stop"), "dont stop");
        assert_eq!(normalize("“Quoted”"), "quoted");
    }

    #[test]
    fn shingles_and_jaccard_by_hand() {
        assert_eq!(shingles("a b c d", 3), vec!["a b c", "b c d"]);
        assert_eq!(shingles("Hi there", 3), vec!["hi there"]);
        let a = shingles("the film is great fun", 2); // the film, film is, is great, great fun
        let b = shingles("the film is dull", 2); // the film, film is, is dull
        assert!((jaccard(&a, &b) - 2.0 / 5.0).abs() < 1e-12);
    }
}
