//! What `predict` reads: plain text (one text a line), or TSV/CSV/JSONL with a text column or
//! field and an optional id. TSV/CSV/JSONL go through the dataset importer (its line numbers,
//! column rules and problems); plain text is read here, line by line, which is also how
//! standard input streams (plain text and JSONL: each line is answered as it arrives).
//!
//! Every bad row (invalid UTF-8, empty text, a malformed or ragged row, a missing id) is a
//! [`Problem`] with the file and line: `predict` skips it or stops there, never labels a
//! repaired text.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::data::import::{
    Format, ImportError, ImportOptions, OnBadRow, Problem, ProblemKind, import_bytes,
};

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFormat {
    /// One text a line.
    Text,
    Tsv,
    Csv,
    Jsonl,
}

impl InFormat {
    /// `.txt`, `.tsv`/`.tab`, `.csv`, `.jsonl`/`.ndjson`/`.json` by extension; another file is
    /// JSONL when its first non-blank line is a JSON object, else plain text.
    pub fn guess(path: &Path, bytes: &[u8]) -> InFormat {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("txt" | "text") => InFormat::Text,
            Some("tsv" | "tab") => InFormat::Tsv,
            Some("csv") => InFormat::Csv,
            Some("jsonl" | "ndjson" | "json") => InFormat::Jsonl,
            _ => match Format::guess(Path::new(""), bytes) {
                Some(Format::Jsonl) => InFormat::Jsonl,
                _ => InFormat::Text,
            },
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InFormat::Text => "text",
            InFormat::Tsv => "tsv",
            InFormat::Csv => "csv",
            InFormat::Jsonl => "jsonl",
        }
    }

    /// Whether standard input in this format is answered line by line.
    pub fn streams(self) -> bool {
        matches!(self, InFormat::Text | InFormat::Jsonl)
    }
}

impl fmt::Display for InFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<InFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" | "lines" => Ok(InFormat::Text),
            "tsv" => Ok(InFormat::Tsv),
            "csv" => Ok(InFormat::Csv),
            "jsonl" | "ndjson" => Ok(InFormat::Jsonl),
            other => Err(format!(
                "unknown input format `{other}` (text, tsv, csv or jsonl)"
            )),
        }
    }
}

/// What to do with a bad row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Report it (file, line, reason) and go on without it.
    #[default]
    Skip,
    /// Stop at it.
    Fail,
}

impl FromStr for BadRows {
    type Err = String;
    fn from_str(s: &str) -> Result<BadRows, String> {
        match s {
            "skip" => Ok(BadRows::Skip),
            "fail" | "stop" => Ok(BadRows::Fail),
            other => Err(format!("unknown policy `{other}` (skip or fail)")),
        }
    }
}

/// How to read the input.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// None: guessed (see [`InFormat::guess`]).
    pub format: Option<InFormat>,
    /// The text's column (a header name or 1-based number) or field. None: the task's input
    /// field when the file has it (`task_field`), else a usual name (`text`, `sentence`…).
    pub text_field: Option<String>,
    /// The task's input field (`Review`), tried first when no text field is named.
    pub task_field: Option<String>,
    /// A column or field with each row's id.
    pub id_field: Option<String>,
    pub bad_rows: BadRows,
}

/// One text to label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// 1-based line where the row starts.
    pub line: usize,
    pub id: Option<String>,
    pub text: String,
}

/// The rows read and the bad rows skipped.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub inputs: Vec<Input>,
    pub problems: Vec<Problem>,
    /// Which column or field held the text (for the user).
    pub columns: String,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0} (--on-bad-row skip goes on without such rows)")]
    BadRow(Problem),
    #[error(transparent)]
    Import(ImportError),
}

impl From<ImportError> for ReadError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Stopped(p) => ReadError::BadRow(p),
            other => ReadError::Import(other),
        }
    }
}

fn problem(file: &Path, line: usize, kind: ProblemKind, message: String) -> Problem {
    Problem {
        file: file.to_path_buf(),
        line,
        kind,
        message,
        kept: false,
    }
}

/// One line of plain text: the text, or why it is a bad row.
pub fn text_line(file: &Path, line: usize, bytes: &[u8]) -> Result<Input, Problem> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        problem(
            file,
            line,
            ProblemKind::InvalidUtf8,
            format!("byte {} is not UTF-8", e.valid_up_to() + 1),
        )
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(problem(
            file,
            line,
            ProblemKind::EmptyText,
            "the line is empty".into(),
        ));
    }
    Ok(Input {
        line,
        id: None,
        text: text.to_string(),
    })
}

/// The column or field to read the text from: the one named, else the task's input field when
/// the first non-blank line names it (a header cell or a JSON key, any case), else none (the
/// importer's usual names).
pub fn text_field(format: InFormat, bytes: &[u8], opts: &ReadOptions) -> Option<String> {
    if opts.text_field.is_some() {
        return opts.text_field.clone();
    }
    let want = opts.task_field.as_deref()?;
    let first = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .find(|l| !l.is_empty())?;
    let names: Vec<String> = match format {
        InFormat::Text => return None,
        InFormat::Jsonl => match serde_json::from_slice::<serde_json::Value>(first) {
            Ok(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
            _ => return None,
        },
        InFormat::Tsv | InFormat::Csv => {
            let delimiter = if format == InFormat::Tsv { b'\t' } else { b',' };
            let mut r = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .quoting(format == InFormat::Csv)
                .from_reader(first);
            let mut rec = csv::StringRecord::new();
            match r.read_record(&mut rec) {
                Ok(true) => rec.iter().map(|f| f.trim().to_string()).collect(),
                _ => return None,
            }
        }
    };
    names.into_iter().find(|n| n.eq_ignore_ascii_case(want))
}

/// Reads a whole input (a file, or standard input read to its end): every text to label and
/// every bad row. Under [`BadRows::Fail`] the first bad row is the error.
pub fn read_bytes(file: &Path, bytes: &[u8], opts: &ReadOptions) -> Result<ReadResult, ReadError> {
    let format = opts.format.unwrap_or_else(|| InFormat::guess(file, bytes));
    let mut out = ReadResult::default();
    let import_format = match format {
        InFormat::Text => {
            let mut parts: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
            // The line break that ends the last line does not start another.
            if parts.last().is_some_and(|l| l.is_empty()) {
                parts.pop();
            }
            for (i, l) in parts.into_iter().enumerate() {
                match text_line(file, i + 1, l) {
                    Ok(input) => out.inputs.push(input),
                    Err(p) if opts.bad_rows == BadRows::Fail => return Err(ReadError::BadRow(p)),
                    Err(p) => out.problems.push(p),
                }
            }
            out.columns = "one text a line".into();
            return Ok(out);
        }
        InFormat::Tsv => Format::Tsv,
        InFormat::Csv => Format::Csv,
        InFormat::Jsonl => Format::Jsonl,
    };
    let import = ImportOptions {
        format: Some(import_format),
        text_col: text_field(format, bytes, opts),
        id_col: opts.id_field.clone(),
        on_bad_row: match opts.bad_rows {
            BadRows::Skip => OnBadRow::Skip,
            BadRows::Fail => OnBadRow::Stop,
        },
        unlabelled: true,
        ..ImportOptions::default()
    };
    let imported = import_bytes(file, bytes, &import)?;
    // The importer keeps a row with invalid UTF-8, read as Latin-1; a label for a text that
    // may not be the one meant is not given: the row is skipped like any bad one.
    let repaired: std::collections::HashSet<usize> = imported
        .problems
        .iter()
        .filter(|p| p.kept)
        .map(|p| p.line)
        .collect();
    let ids = imported.ids;
    for (i, row) in imported.rows.into_iter().enumerate() {
        if repaired.contains(&row.line) {
            continue;
        }
        out.inputs.push(Input {
            line: row.line,
            id: ids.get(i).cloned(),
            text: row.text,
        });
    }
    out.problems = imported
        .problems
        .into_iter()
        .map(|p| Problem { kept: false, ..p })
        .collect();
    out.columns = imported.columns;
    Ok(out)
}

/// One line of a streamed input (plain text or JSONL), numbered `line`: the text to label, none
/// for a blank JSONL line, or the bad row.
pub fn stream_line(
    file: &Path,
    line: usize,
    bytes: &[u8],
    opts: &ReadOptions,
) -> Result<Option<Input>, Problem> {
    let format = opts.format.unwrap_or(InFormat::Text);
    if format != InFormat::Jsonl {
        return text_line(file, line, bytes).map(Some);
    }
    if bytes.trim_ascii().is_empty() {
        return Ok(None);
    }
    let one = ReadOptions {
        format: Some(InFormat::Jsonl),
        bad_rows: BadRows::Fail,
        ..opts.clone()
    };
    let renumber = |p: Problem| Problem { line, ..p };
    match read_bytes(file, bytes, &one) {
        Ok(r) => Ok(r.inputs.into_iter().next().map(|i| Input { line, ..i })),
        Err(ReadError::BadRow(p)) => Err(renumber(p)),
        Err(ReadError::Import(e)) => {
            Err(problem(file, line, ProblemKind::Malformed, e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ReadOptions {
        ReadOptions {
            task_field: Some("Review".into()),
            ..ReadOptions::default()
        }
    }

    fn kinds(r: &ReadResult) -> Vec<(usize, ProblemKind)> {
        r.problems.iter().map(|p| (p.line, p.kind)).collect()
    }

    #[test]
    fn the_format_is_guessed_from_the_extension_then_a_json_object() {
        let g = |p: &str, b: &[u8]| InFormat::guess(Path::new(p), b);
        assert_eq!(g("a.txt", b"{\"text\": 1}"), InFormat::Text);
        assert_eq!(g("a.TSV", b""), InFormat::Tsv);
        assert_eq!(g("a.csv", b""), InFormat::Csv);
        assert_eq!(g("a.ndjson", b""), InFormat::Jsonl);
        assert_eq!(g("-", b"\n{\"text\": 1}"), InFormat::Jsonl);
        // Commas and tabs in an unnamed file are plain text, not columns.
        assert_eq!(g("notes", b"well, it was\tfine"), InFormat::Text);
    }

    #[test]
    fn plain_text_lines_are_numbered_and_bad_ones_named() {
        let bytes = b"good film\r\n\n  \nbad \xff byte\nlast one\n";
        let r = read_bytes(Path::new("in.txt"), bytes, &opts()).unwrap();
        let got: Vec<(usize, &str)> = r.inputs.iter().map(|i| (i.line, i.text.as_str())).collect();
        assert_eq!(got, [(1, "good film"), (5, "last one")]);
        assert_eq!(
            kinds(&r),
            [
                (2, ProblemKind::EmptyText),
                (3, ProblemKind::EmptyText),
                (4, ProblemKind::InvalidUtf8)
            ]
        );
        assert!(
            r.problems[2]
                .to_string()
                .starts_with("in.txt:4: invalid UTF-8")
        );
        let fail = ReadOptions {
            bad_rows: BadRows::Fail,
            ..opts()
        };
        let e = read_bytes(Path::new("in.txt"), bytes, &fail).unwrap_err();
        assert!(e.to_string().starts_with("in.txt:2: empty text"), "{e}");
    }

    #[test]
    fn delimited_files_take_the_task_field_ids_and_skip_repaired_rows() {
        let tsv = b"id\tReview\tlabel\nr1\ta fine film\t1\nr2\tso \xe9 bad\t0\n\tno id\t1\nr4\t\t1\nr5\ttoo\tmany\tcols\nr6\tthe end\t\n";
        let o = ReadOptions {
            id_field: Some("id".into()),
            ..opts()
        };
        let r = read_bytes(Path::new("x.tsv"), tsv, &o).unwrap();
        let got: Vec<(usize, Option<&str>, &str)> = r
            .inputs
            .iter()
            .map(|i| (i.line, i.id.as_deref(), i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [(2, Some("r1"), "a fine film"), (7, Some("r6"), "the end")]
        );
        assert_eq!(
            kinds(&r),
            [
                (3, ProblemKind::InvalidUtf8),
                (4, ProblemKind::MissingField),
                (5, ProblemKind::EmptyText),
                (6, ProblemKind::Ragged)
            ]
        );
        assert!(r.problems.iter().all(|p| !p.kept));
        // CSV with quoted line breaks: the row's first line; the text field named.
        let csv = b"key,body,other\nk1,\"two\nlines\",x\nk2,\"unterminated\n";
        let o = ReadOptions {
            text_field: Some("body".into()),
            id_field: Some("key".into()),
            ..opts()
        };
        let r = read_bytes(Path::new("x.csv"), csv, &o).unwrap();
        assert_eq!(r.inputs[0].text, "two\nlines");
        assert_eq!(
            (r.inputs[0].line, r.inputs[0].id.as_deref()),
            (2, Some("k1"))
        );
        assert_eq!(r.inputs.len(), 1, "{:?}", r.inputs);
        assert_eq!(kinds(&r), [(4, ProblemKind::Ragged)]);
    }

    #[test]
    fn jsonl_lines_stream_with_their_own_numbers() {
        let o = ReadOptions {
            format: Some(InFormat::Jsonl),
            id_field: Some("n".into()),
            ..opts()
        };
        let f = Path::new("-");
        let ok = stream_line(f, 7, br#"{"review": "great", "n": 3}"#, &o).unwrap();
        assert_eq!(
            ok,
            Some(Input {
                line: 7,
                id: Some("3".into()),
                text: "great".into()
            })
        );
        assert_eq!(stream_line(f, 8, b"  ", &o).unwrap(), None);
        let bad = stream_line(f, 9, b"{\"review\": ", &o).unwrap_err();
        assert_eq!((bad.line, bad.kind), (9, ProblemKind::Malformed));
        let bad = stream_line(f, 10, br#"{"text": "x"}"#, &o).unwrap_err();
        assert_eq!((bad.line, bad.kind), (10, ProblemKind::MissingField));
        assert!(bad.to_string().starts_with("-:10: missing field"), "{bad}");
        let text = stream_line(f, 2, b"plain\r", &ReadOptions::default()).unwrap();
        assert_eq!(text.map(|i| i.text), Some("plain".to_string()));
    }

    #[test]
    fn the_task_field_is_found_in_any_case_and_a_named_field_wins() {
        let o = opts();
        assert_eq!(
            text_field(InFormat::Csv, b"\nid,REVIEW\n1,a\n", &o),
            Some("REVIEW".into())
        );
        assert_eq!(text_field(InFormat::Tsv, b"id\ttext\n", &o), None);
        assert_eq!(
            text_field(InFormat::Jsonl, br#"{"review": "a"}"#, &o),
            Some("review".into())
        );
        let named = ReadOptions {
            text_field: Some("body".into()),
            ..opts()
        };
        assert_eq!(
            text_field(InFormat::Jsonl, br#"{"review": "a"}"#, &named),
            Some("body".into())
        );
    }
}
