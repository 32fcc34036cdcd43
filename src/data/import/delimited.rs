//! TSV and CSV: one reader, two dialects. TSV is read without quoting, as GLUE's files are meant
//! (SST-2 sentences contain bare `"`); CSV follows RFC 4180 quoting.
//!
//! Header row: `--header`/`--no-header` decide when given. Otherwise the first row is a header
//! when a column was chosen by name, or when one of its fields is a usual column name (`text`,
//! `sentence`, `label`, `class`…). Columns: as chosen (a header name or a 1-based number), else
//! the usual names in the header, else, for a two-column file, the one with the longer values is
//! the text. Anything else is ambiguous and asks the user to choose.

use super::decode::decode;
use super::{Collector, ImportError, LABEL_NAMES, ProblemKind, TEXT_NAMES};

pub fn read(
    bytes: &[u8],
    delimiter: u8,
    quoting: bool,
    c: &mut Collector<'_>,
) -> Result<String, ImportError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .quoting(quoting)
        .from_reader(bytes);
    let mut records: Vec<(usize, csv::ByteRecord)> = Vec::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut rec) {
            Ok(true) => records.push((line_of(rec.position()), rec.clone())),
            Ok(false) => break,
            Err(e) => {
                // Reading bytes from memory, flexibly, the parser has no error left to give but
                // an I/O one; record it rather than loop on it.
                c.problem(
                    line_of(e.position()),
                    ProblemKind::Malformed,
                    e.to_string(),
                    false,
                )?;
                break;
            }
        }
    }
    let Some((_, first)) = records.first() else {
        return Ok("no rows".into());
    };
    let first: Vec<String> = first
        .iter()
        .map(|f| decode(f).0.trim().to_string())
        .collect();
    let width = first.len();
    let header = match c.opts().header {
        Some(h) => h,
        None => {
            let by_name =
                |s: &Option<String>| s.as_deref().is_some_and(|s| s.parse::<usize>().is_err());
            by_name(&c.opts().text_col)
                || by_name(&c.opts().label_col)
                || by_name(&c.opts().id_col)
                || first
                    .iter()
                    .any(|f| is_usual(f, TEXT_NAMES) || is_usual(f, LABEL_NAMES))
        }
    };
    let names = header.then_some(first.as_slice());
    let data = if header { &records[1..] } else { &records[..] };

    let chosen = |spec: &Option<String>, usual: &[&str]| -> Result<Option<usize>, ImportError> {
        match spec {
            Some(spec) => resolve(spec, names, width)
                .map(Some)
                .map_err(|m| c.columns_error(m)),
            None => Ok(names.and_then(|n| n.iter().position(|f| is_usual(f, usual)))),
        }
    };
    let text = chosen(&c.opts().text_col, TEXT_NAMES)?;
    let label = chosen(&c.opts().label_col, LABEL_NAMES)?;
    let unlabelled = c.opts().unlabelled;
    let (text, label) = match (text, label, width) {
        (Some(t), Some(l), _) => (t, Some(l)),
        (Some(t), None, _) if unlabelled => (t, None),
        (None, None, 1) if unlabelled => (0, None),
        (Some(t), None, 2) => (t, Some(1 - t)),
        (None, Some(l), 2) => (1 - l, Some(l)),
        (None, None, 2) => {
            let t = longer_column(data);
            (t, Some(1 - t))
        }
        _ => {
            return Err(c.columns_error(format!(
                "cannot tell which of the {width} columns holds the text and which the label; \
                 choose them (text column and label column: a header name or a 1-based number)"
            )));
        }
    };
    if Some(text) == label {
        return Err(c.columns_error("the text and the label cannot be the same column"));
    }
    let id = match &c.opts().id_col {
        Some(spec) => Some(resolve(spec, names, width).map_err(|m| c.columns_error(m))?),
        None => None,
    };
    if id == Some(text) {
        return Err(c.columns_error("the text and the id cannot be the same column"));
    }
    // A two-column file of ids and texts has no label column.
    let label = label.filter(|&l| Some(l) != id);

    let what = if header { "header" } else { "first row" };
    for (line, rec) in data {
        if rec.len() != width {
            let msg = format!("{} fields where the {what} has {width}", rec.len());
            c.problem(*line, ProblemKind::Ragged, msg, false)?;
            continue;
        }
        let t = c.decode(*line, &rec[text])?;
        let l = match label {
            Some(l) => c.decode(*line, &rec[l])?,
            None => String::new(),
        };
        let i = match id {
            Some(i) => Some(c.decode(*line, &rec[i])?),
            None => None,
        };
        c.row_with_id(*line, &t, &l, i)?;
    }
    let describe = |i: usize| match names {
        Some(n) => format!("column {} (\"{}\")", i + 1, n[i]),
        None => format!("column {}", i + 1),
    };
    Ok(format!(
        "text = {}, label = {}{}",
        describe(text),
        label.map_or_else(|| "none".to_string(), describe),
        if header {
            ", header row skipped"
        } else {
            ", no header row"
        }
    ))
}

fn line_of(pos: Option<&csv::Position>) -> usize {
    pos.map_or(0, |p| usize::try_from(p.line()).unwrap_or(usize::MAX))
}

fn is_usual(field: &str, usual: &[&str]) -> bool {
    usual.iter().any(|u| field.eq_ignore_ascii_case(u))
}

/// A header name (exact, then ignoring case), else a 1-based column number.
fn resolve(spec: &str, names: Option<&[String]>, width: usize) -> Result<usize, String> {
    if let Some(names) = names
        && let Some(i) = names
            .iter()
            .position(|n| n == spec)
            .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(spec)))
    {
        return Ok(i);
    }
    match spec.parse::<usize>() {
        Ok(n) if (1..=width).contains(&n) => Ok(n - 1),
        Ok(n) => Err(format!(
            "there is no column {n}: the file has {width} (columns are numbered from 1)"
        )),
        Err(_) => Err(match names {
            Some(names) => format!("no column named `{spec}` (columns: {})", names.join(", ")),
            None => format!("no column named `{spec}`: the file has no header row; give a number"),
        }),
    }
}

/// Of a two-column file, the column whose values are longer on average (the text).
fn longer_column(data: &[(usize, csv::ByteRecord)]) -> usize {
    let mut total = [0usize; 2];
    for (_, rec) in data.iter().filter(|(_, r)| r.len() == 2).take(500) {
        total[0] += rec[0].len();
        total[1] += rec[1].len();
    }
    usize::from(total[1] > total[0])
}
