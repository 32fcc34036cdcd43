//! TREC question classification: one `COARSE:fine question text` a line.

use super::{Collector, ImportError, ProblemKind, numbered_lines};

/// `ABBR:exp What does …`: upper-case coarse label, colon, fine label, space.
pub fn looks_like_trec(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return false;
    };
    colon > 0 && colon + 1 < space && line[..colon].iter().all(u8::is_ascii_uppercase)
}

pub fn read(bytes: &[u8], c: &mut Collector<'_>) -> Result<String, ImportError> {
    let fine = c.opts().trec_fine;
    for (line_no, line) in numbered_lines(bytes) {
        let line = c.decode(line_no, line)?;
        let parsed = line.split_once(' ').and_then(|(labels, text)| {
            let (coarse, fine_label) = labels.split_once(':')?;
            (!coarse.is_empty() && !fine_label.is_empty()).then_some((labels, coarse, text))
        });
        match parsed {
            Some((full, coarse, text)) => c.row(line_no, text, if fine { full } else { coarse })?,
            None => c.problem(
                line_no,
                ProblemKind::Malformed,
                format!("expected `COARSE:fine text`, got {:?}", truncate(&line)),
                false,
            )?,
        }
    }
    Ok(if fine {
        "text after the label; fine labels (COARSE:fine)".into()
    } else {
        "text after the label; coarse labels".into()
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}
