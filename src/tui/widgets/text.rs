//! Fitting text into cells: width-aware truncation with an ellipsis, one-line views of
//! multi-line text, and character wrapping for the editor.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Display width of `s` in terminal cells.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// `s` cut to at most `max` cells, ending in `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > max - 1 {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// The end of `s` in at most `max` cells, starting with `…` when something was cut (for text
/// being written: the newest part is what matters).
pub fn tail(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut rev: Vec<char> = Vec::new();
    let mut w = 0;
    for c in s.chars().rev() {
        let cw = c.width().unwrap_or(0);
        if w + cw > max - 1 {
            break;
        }
        rev.push(c);
        w += cw;
    }
    let mut out = String::from("…");
    out.extend(rev.into_iter().rev());
    out
}

/// Multi-line text on one line: newlines shown as `⏎`, tabs as spaces, other control
/// characters dropped.
pub fn one_line(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\n' => Some('⏎'),
            '\t' => Some(' '),
            '\r' => None,
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Pads or cuts `s` to exactly `w` cells.
pub fn fit(s: &str, w: usize) -> String {
    let t = truncate(s, w);
    let pad = w.saturating_sub(width(&t));
    format!("{t}{}", " ".repeat(pad))
}

/// Splits characters into rows of at most `w` cells (wrapping at word boundaries when it can),
/// returning each row's char range. Used by the editor so the cursor can be placed exactly.
pub fn wrap_ranges(chars: &[char], w: usize) -> Vec<(usize, usize)> {
    let w = w.max(1);
    let mut rows = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut cells = 0;
        let mut end = start;
        let mut last_space: Option<usize> = None;
        while end < chars.len() {
            if chars[end] == '\n' {
                break;
            }
            let cw = chars[end].width().unwrap_or(0);
            if cells + cw > w {
                break;
            }
            if chars[end] == ' ' {
                last_space = Some(end);
            }
            cells += cw;
            end += 1;
        }
        if end < chars.len() && chars[end] == '\n' {
            rows.push((start, end));
            start = end + 1;
            if start == chars.len() {
                rows.push((start, start));
            }
            continue;
        }
        if end < chars.len()
            && let Some(sp) = last_space.filter(|&sp| sp > start)
        {
            end = sp + 1;
        }
        if end == start {
            // A character wider than the row: give it a row of its own.
            end = start + 1;
        }
        rows.push((start, end));
        start = end;
    }
    if rows.is_empty() {
        rows.push((0, 0));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_cells_and_marks_the_cut() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello world", 6), "hello…");
        assert_eq!(truncate("日本語です", 5), "日本…");
        assert_eq!(tail("hello world", 6), "…world");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(one_line("a\nb\tc\r"), "a⏎b c");
    }

    #[test]
    fn wrapping_prefers_spaces_and_keeps_every_char() {
        let chars: Vec<char> = "the quick brown fox".chars().collect();
        let rows = wrap_ranges(&chars, 10);
        let text: Vec<String> = rows
            .iter()
            .map(|&(a, b)| chars[a..b].iter().collect())
            .collect();
        assert_eq!(text, ["the quick ", "brown fox"]);
        let chars: Vec<char> = "abcdefghij".chars().collect();
        assert_eq!(wrap_ranges(&chars, 4), [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(wrap_ranges(&[], 4), [(0, 0)]);
    }
}
