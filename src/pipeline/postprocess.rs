//! Turning a raw generation into a candidate example: the model often wraps the example in
//! chatter ("Here is a new review:"), numbering, quotes or an echoed field name. Extraction
//! never drops an output: when nothing usable is left, the candidate is marked malformed with
//! the reason, and the raw text is kept beside it.

use serde::Serialize;

/// What the post-processor made of one raw output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extracted {
    /// The candidate text (possibly empty).
    pub text: String,
    /// Why the output is unusable, if it is.
    pub malformed: Option<String>,
    /// What was removed, for the record ("chatter line", "numbering", "quotes", …).
    pub steps: Vec<String>,
}

/// Words the model puts before the example that are not part of it. Matched
/// case-insensitively at the start of the text, followed by ':'.
fn echo_prefixes(input_noun: &str, field_names: &[&str], labels: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = field_names.iter().map(|f| f.to_lowercase()).collect();
    let full = input_noun.to_lowercase();
    // "movie review" is also echoed as plain "review".
    let short = full
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    let nouns = if short == full {
        vec![full]
    } else {
        vec![full, short]
    };
    for noun in &nouns {
        out.push(noun.clone());
        out.push(format!("new {noun}"));
    }
    out.push("example".into());
    out.push("new example".into());
    out.push("text".into());
    out.push("answer".into());
    out.push("output".into());
    for l in labels {
        let l = l.to_lowercase();
        for noun in &nouns {
            out.push(format!("{l} {noun}"));
            out.push(format!("new {l} {noun}"));
            out.push(format!("a {l} {noun}"));
        }
        out.push(format!("{l} example"));
        out.push(l);
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.len()));
    out
}

/// A line that only introduces what follows: it ends with a colon ("Here's a more detailed
/// version of your tweet:"), or it is a short opener ("Sure!", "Here is one.").
fn is_intro(line: &str) -> bool {
    let l = line.trim().to_lowercase();
    let opener = [
        "here is",
        "here's",
        "here are",
        "sure",
        "certainly",
        "of course",
        "okay",
        "ok,",
        "i'd be happy",
        "i would be happy",
        "as requested",
    ]
    .iter()
    .any(|p| l.starts_with(p));
    l.ends_with(':') || (opener && l.split_whitespace().count() <= 12)
}

fn strip_numbering(s: &str) -> Option<&str> {
    let t = s.trim_start();
    for bullet in ["- ", "* ", "• "] {
        if let Some(rest) = t.strip_prefix(bullet) {
            return Some(rest);
        }
    }
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && digits <= 3 {
        let rest = &t[digits..];
        for sep in [". ", ") ", ": ", " - "] {
            if let Some(r) = rest.strip_prefix(sep) {
                return Some(r);
            }
        }
    }
    if let Some(rest) = t.strip_prefix('#') {
        let d = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if d > 0
            && let Some(r) = rest[d..]
                .strip_prefix(':')
                .or_else(|| rest[d..].strip_prefix(' '))
        {
            return Some(r);
        }
    }
    None
}

fn strip_quotes(s: &str) -> Option<&str> {
    let pairs = [('"', '"'), ('“', '”'), ('\'', '\''), ('«', '»'), ('`', '`')];
    let t = s.trim();
    for (open, close) in pairs {
        if let Some(inner) = t.strip_prefix(open).and_then(|r| r.strip_suffix(close))
            && !inner.contains(open)
        {
            return Some(inner);
        }
    }
    // An opening quote whose closing one was cut off by the token limit.
    for (open, close) in pairs {
        if let Some(inner) = t.strip_prefix(open)
            && !inner.contains(close)
            && open != '\''
        {
            return Some(inner);
        }
    }
    None
}

/// Extracts the example from `raw`.
///
/// - `input_noun`: what an input is called ("movie review"), to recognise echoed prefixes;
/// - `field_names`: prompt field names the model may echo ("Review", "Sentiment");
/// - `labels`: label words, which the model sometimes prefixes ("Positive review: …").
pub fn extract(raw: &str, input_noun: &str, field_names: &[&str], labels: &[&str]) -> Extracted {
    let mut steps = Vec::new();
    let mut lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // Drop leading chatter lines, keep the first line that carries content.
    while lines.len() > 1 && is_intro(lines[0]) {
        steps.push(format!("chatter line {:?}", lines[0]));
        lines.remove(0);
    }
    let Some(first) = lines.first() else {
        return Extracted {
            text: String::new(),
            malformed: Some("empty output".into()),
            steps,
        };
    };
    if lines.len() > 1 {
        steps.push(format!(
            "cut after the first line ({} more)",
            lines.len() - 1
        ));
    }
    let mut text: String = first.to_string();
    let prefixes = echo_prefixes(input_noun, field_names, labels);
    // Repeat: "1. Review: "Great film"" needs numbering, then prefix, then quotes removed.
    loop {
        let before = text.clone();
        if let Some(rest) = strip_numbering(&text) {
            steps.push("numbering".into());
            text = rest.trim().to_string();
        }
        let lower = text.to_lowercase();
        if let Some(p) = prefixes.iter().find(|p| {
            lower.starts_with(p.as_str()) && lower[p.len()..].trim_start().starts_with([':', '-'])
        }) {
            let rest = text[p.len()..].trim_start();
            steps.push(format!("echoed prefix {:?}", &text[..p.len()]));
            text = rest[1..].trim().to_string();
        }
        if let Some(inner) = strip_quotes(&text) {
            steps.push("quotes".into());
            text = inner.trim().to_string();
        }
        if text == before {
            break;
        }
    }
    let malformed = if text.is_empty() {
        Some("nothing left after removing prefixes and quotes".into())
    } else if text.ends_with(':') {
        Some("only an introduction, no example".into())
    } else {
        None
    };
    Extracted {
        text,
        malformed,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(raw: &str) -> Extracted {
        extract(
            raw,
            "movie review",
            &["Review", "Sentiment"],
            &["positive", "negative"],
        )
    }

    #[test]
    fn plain_text_is_kept() {
        let e = ex("A joyous, tender film.");
        assert_eq!(e.text, "A joyous, tender film.");
        assert!(e.malformed.is_none() && e.steps.is_empty());
    }

    #[test]
    fn chatter_numbering_prefix_and_quotes_go() {
        let e = ex(
            "Sure! Here's a new positive movie review:\n\n1. Review: \"A joyous, tender film.\"\n2. Another",
        );
        assert_eq!(e.text, "A joyous, tender film.");
        assert!(e.malformed.is_none());
    }

    #[test]
    fn label_prefix_is_an_echo() {
        assert_eq!(
            ex("Positive review: Loved it from start to end.").text,
            "Loved it from start to end."
        );
        assert_eq!(ex("Negative: dull.").text, "dull.");
    }

    #[test]
    fn truncated_opening_quote_is_removed() {
        assert_eq!(
            ex("\"An endless, dreary slog that").text,
            "An endless, dreary slog that"
        );
    }

    #[test]
    fn empty_and_intro_only_are_malformed_not_dropped() {
        assert_eq!(ex("  \n ").malformed.as_deref(), Some("empty output"));
        let e = ex("Here is a new negative movie review:");
        assert!(e.malformed.is_some(), "{e:?}");
        assert_eq!(e.text, "Here is a new negative movie review:");
    }

    #[test]
    fn inner_quotes_stay() {
        assert_eq!(
            ex("The \"twist\" is obvious.").text,
            "The \"twist\" is obvious."
        );
    }
}
