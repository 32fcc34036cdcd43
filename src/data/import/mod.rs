//! Labelled data from files: TSV, CSV, JSONL and TREC's `LABEL:fine text` lines.
//!
//! Each format module only finds the text and the label of each row; the rules every format
//! shares (empty text, missing or unknown label, the label map, what a bad row does) live in
//! [`Collector`]. Nothing here panics on any input: every problem becomes a [`Problem`] naming
//! the file and line, and the [`OnBadRow`] policy decides whether the import skips the row or
//! stops there.

mod decode;
mod delimited;
pub mod fragments;
mod jsonl;
pub mod label_map;
pub mod sample;
mod trec;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use fragments::SeedRows;
pub use label_map::{LabelMap, LabelMapError};
pub use sample::{ClassSample, Sample, SampleOptions, sample_per_class, sample_per_class_with};

/// A file format we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tsv,
    Csv,
    Jsonl,
    Trec,
    /// One text a line, nothing else (texts to label only: a `.txt` file, or a file whose
    /// first line looks like no other format).
    Lines,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Tsv => "tsv",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Trec => "trec",
            Format::Lines => "lines",
        }
    }

    /// From the file's extension, else from its first non-empty line.
    pub fn guess(path: &Path, bytes: &[u8]) -> Option<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("tsv" | "tab") => return Some(Format::Tsv),
            Some("csv") => return Some(Format::Csv),
            Some("jsonl" | "ndjson" | "json") => return Some(Format::Jsonl),
            Some("label" | "trec") => return Some(Format::Trec),
            _ => {}
        }
        let first = bytes
            .split(|&b| b == b'\n')
            .map(|l| l.trim_ascii())
            .find(|l| !l.is_empty())?;
        if first.starts_with(b"{") {
            Some(Format::Jsonl)
        } else if trec::looks_like_trec(first) {
            Some(Format::Trec)
        } else if first.contains(&b'\t') {
            Some(Format::Tsv)
        } else if first.contains(&b',') {
            Some(Format::Csv)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "tsv" => Ok(Format::Tsv),
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "trec" => Ok(Format::Trec),
            "lines" | "txt" | "text" => Ok(Format::Lines),
            other => Err(format!(
                "unknown format `{other}` (tsv, csv, jsonl, trec or lines)"
            )),
        }
    }
}

/// What to do with a row that has a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBadRow {
    /// Skip the row (or, for text that is not valid UTF-8, keep it repaired) and go on.
    #[default]
    Skip,
    /// Stop at the first problem of any kind.
    Stop,
}

impl FromStr for OnBadRow {
    type Err = String;
    fn from_str(s: &str) -> Result<OnBadRow, String> {
        match s {
            "skip" => Ok(OnBadRow::Skip),
            "stop" => Ok(OnBadRow::Stop),
            other => Err(format!("unknown policy `{other}` (skip or stop)")),
        }
    }
}

/// How to read a file.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// None: guessed from the extension, then the content.
    pub format: Option<Format>,
    /// TSV/CSV: a header name or a 1-based column number. JSONL: a field name (`a.b` for a
    /// nested field). None: a column or field with a usual name (`text`, `sentence`…).
    pub text_col: Option<String>,
    pub label_col: Option<String>,
    /// A column or field holding each row's own id (`predict`'s output names rows by it); a
    /// row without one is a missing-field problem. None: rows are named by their line.
    pub id_col: Option<String>,
    /// TSV/CSV: whether the first row names the columns. None: guessed (see `delimited`).
    pub header: Option<bool>,
    /// Raw label → task label; a row whose label is not in the map is an unknown-label problem.
    pub label_map: Option<LabelMap>,
    /// TREC: use fine labels (`LOC:city`) instead of coarse ones (`LOC`).
    pub trec_fine: bool,
    pub on_bad_row: OnBadRow,
    /// The texts are what matters (annotation): a file may have no label column or field, and
    /// a row without a label is kept with an empty one.
    pub unlabelled: bool,
}

/// A labelled row of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line in the file where the row starts.
    pub line: usize,
    pub text: String,
    /// After the label map.
    pub label: String,
}

/// A labelled row as an example (seeds, extra training data); its line is left behind.
impl From<Row> for crate::data::task::Example {
    fn from(r: Row) -> Self {
        crate::data::task::Example {
            text: r.text,
            label: r.label,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    InvalidUtf8,
    Ragged,
    EmptyText,
    MissingLabel,
    UnknownLabel,
    MissingField,
    Malformed,
    /// The text makes a prompt longer than the model's context (found when classifying).
    TooLong,
}

impl ProblemKind {
    pub fn describe(self) -> &'static str {
        match self {
            ProblemKind::InvalidUtf8 => "invalid UTF-8",
            ProblemKind::Ragged => "wrong number of columns",
            ProblemKind::EmptyText => "empty text",
            ProblemKind::MissingLabel => "missing label",
            ProblemKind::UnknownLabel => "unknown label",
            ProblemKind::MissingField => "missing field",
            ProblemKind::Malformed => "malformed row",
            ProblemKind::TooLong => "too long for the model",
        }
    }
}

/// Something wrong with one row, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub kind: ProblemKind,
    pub message: String,
    /// Whether the row was kept anyway (repaired) rather than skipped.
    pub kept: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {} ({})",
            self.file.display(),
            self.line,
            self.kind.describe(),
            self.message,
            if self.kept { "row kept" } else { "row skipped" }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stopped at the first problem, as asked: {0}")]
    Stopped(Problem),
    #[error("{path}: cannot tell the format; name it (tsv, csv, jsonl or trec)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {message}")]
    Columns { path: PathBuf, message: String },
}

/// What a file gave.
#[derive(Debug, Clone)]
pub struct Imported {
    pub path: PathBuf,
    pub format: Format,
    pub rows: Vec<Row>,
    pub problems: Vec<Problem>,
    /// Which columns or fields were read, for the user (`text = column "sentence" …`).
    pub columns: String,
    /// Each row's id, in `rows`' order, when an id column or field was asked for (else empty).
    pub ids: Vec<String>,
}

impl Imported {
    /// The labels in the data: the label map's in its order, else those found, sorted
    /// (numerically when all are numbers, so `2` comes before `10`).
    pub fn labels(&self, map: Option<&LabelMap>) -> Vec<String> {
        if let Some(map) = map {
            return map.labels();
        }
        let mut labels: Vec<String> = self.rows.iter().map(|r| r.label.clone()).collect();
        labels.sort();
        labels.dedup();
        if labels.iter().all(|l| l.parse::<i64>().is_ok()) {
            labels.sort_by_key(|l| l.parse::<i64>().unwrap_or_default());
        }
        labels
    }
}

/// Reads a labelled file.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    import_bytes(path, &bytes, opts)
}

/// Reads a file's bytes already in memory (standard input); `path` names it in problems.
pub fn import_bytes(
    path: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    let txt = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"));
    let format = match (opts.format, Format::guess(path, bytes)) {
        (Some(f), _) => f,
        // Texts to label: a .txt file, or prose without tabs, commas or braces, is one text
        // a line (a comma or a tab inside a text does not make columns).
        (None, _) if opts.unlabelled && txt => Format::Lines,
        (None, Some(f)) => f,
        (None, None) if opts.unlabelled => Format::Lines,
        (None, None) => {
            return Err(ImportError::UnknownFormat {
                path: path.to_path_buf(),
            });
        }
    };
    let mut c = Collector {
        path,
        opts,
        rows: Vec::new(),
        problems: Vec::new(),
        ids: Vec::new(),
    };
    let columns = match format {
        Format::Tsv => delimited::read(bytes, b'\t', false, &mut c)?,
        Format::Csv => delimited::read(bytes, b',', true, &mut c)?,
        Format::Jsonl => jsonl::read(bytes, &mut c)?,
        Format::Lines => {
            if !opts.unlabelled {
                return Err(c.columns_error(
                    "a file of plain lines holds texts without labels; name a labelled format",
                ));
            }
            for (line_no, line) in numbered_lines(bytes) {
                let text = c.decode(line_no, line)?;
                c.row(line_no, &text, "")?;
            }
            "one text a line".into()
        }
        Format::Trec => {
            if opts.id_col.is_some() {
                return Err(c.columns_error("TREC lines have no id field"));
            }
            trec::read(bytes, &mut c)?
        }
    };
    Ok(Imported {
        path: path.to_path_buf(),
        format,
        rows: c.rows,
        problems: c.problems,
        columns,
        ids: c.ids,
    })
}

/// Column or field names that usually hold the text, and the label.
pub(crate) const TEXT_NAMES: &[&str] = &[
    "text",
    "sentence",
    "content",
    "review",
    "question",
    "document",
    "body",
    "utterance",
];
pub(crate) const LABEL_NAMES: &[&str] = &[
    "label",
    "labels",
    "class",
    "category",
    "target",
    "sentiment",
    "intent",
    "coarse_label",
    "y",
];

/// Applies the rules every format shares and the bad-row policy.
pub(crate) struct Collector<'a> {
    path: &'a Path,
    opts: &'a ImportOptions,
    rows: Vec<Row>,
    problems: Vec<Problem>,
    ids: Vec<String>,
}

impl Collector<'_> {
    pub fn opts(&self) -> &ImportOptions {
        self.opts
    }

    /// Records a problem; under [`OnBadRow::Stop`] it ends the import.
    pub fn problem(
        &mut self,
        line: usize,
        kind: ProblemKind,
        message: impl Into<String>,
        kept: bool,
    ) -> Result<(), ImportError> {
        let p = Problem {
            file: self.path.to_path_buf(),
            line,
            kind,
            message: message.into(),
            kept,
        };
        if self.opts.on_bad_row == OnBadRow::Stop {
            return Err(ImportError::Stopped(p));
        }
        self.problems.push(p);
        Ok(())
    }

    /// Bytes to text, reporting (and repairing) invalid UTF-8.
    pub fn decode(&mut self, line: usize, bytes: &[u8]) -> Result<String, ImportError> {
        let (text, bad_at) = decode::decode(bytes);
        if let Some(at) = bad_at {
            let shown: String = text.chars().take(80).collect();
            self.problem(
                line,
                ProblemKind::InvalidUtf8,
                format!(
                    "byte {} is not UTF-8; read it as Latin-1: {shown:?}",
                    at + 1
                ),
                true,
            )?;
        }
        Ok(text)
    }

    /// A row's text and raw label: checks them, maps the label and keeps the row.
    pub fn row(&mut self, line: usize, text: &str, label: &str) -> Result<(), ImportError> {
        self.row_with_id(line, text, label, None)
    }

    /// [`Collector::row`] with the row's id (read when an id column was asked for).
    pub fn row_with_id(
        &mut self,
        line: usize,
        text: &str,
        label: &str,
        id: Option<String>,
    ) -> Result<(), ImportError> {
        let text = text.trim();
        let label = label.trim();
        if text.is_empty() {
            return self.problem(line, ProblemKind::EmptyText, "the text is empty", false);
        }
        if label.is_empty() && !self.opts.unlabelled {
            return self.problem(line, ProblemKind::MissingLabel, "the label is empty", false);
        }
        let label = match &self.opts.label_map {
            _ if label.is_empty() => String::new(),
            None => label.to_string(),
            Some(map) => match map.get(label) {
                Some(mapped) => mapped.to_string(),
                None => {
                    let msg = format!(
                        "label `{label}` is not in the label map ({})",
                        map.keys().collect::<Vec<_>>().join(", ")
                    );
                    return self.problem(line, ProblemKind::UnknownLabel, msg, false);
                }
            },
        };
        if self.opts.id_col.is_some() {
            match id.map(|i| i.trim().to_string()).filter(|i| !i.is_empty()) {
                Some(id) => self.ids.push(id),
                None => {
                    return self.problem(line, ProblemKind::MissingField, "the id is empty", false);
                }
            }
        }
        self.rows.push(Row {
            line,
            text: text.to_string(),
            label,
        });
        Ok(())
    }

    pub fn columns_error(&self, message: impl Into<String>) -> ImportError {
        ImportError::Columns {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Lines of a file with their 1-based numbers, without `\r\n`/`\n`, skipping blank ones.
pub(crate) fn numbered_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, decode::strip_cr(l)))
        .filter(|(_, l)| !l.trim_ascii().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_guessed_from_extension_then_content() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(Format::guess(&p("a.TSV"), b""), Some(Format::Tsv));
        assert_eq!(
            Format::guess(&p("train_5500.label"), b""),
            Some(Format::Trec)
        );
        assert_eq!(
            Format::guess(&p("x"), b"\n{\"text\":1}"),
            Some(Format::Jsonl)
        );
        assert_eq!(
            Format::guess(&p("x"), b"NUM:dist How far ?"),
            Some(Format::Trec)
        );
        assert_eq!(Format::guess(&p("x"), b"a\tb"), Some(Format::Tsv));
        assert_eq!(Format::guess(&p("x"), b"a,b"), Some(Format::Csv));
        assert_eq!(Format::guess(&p("x"), b"plain words"), None);
        assert_eq!(Format::guess(&p("x"), b""), None);
    }

    #[test]
    fn texts_to_label_in_a_txt_file_are_one_a_line_commas_and_tabs_included() {
        let unlabelled = ImportOptions {
            unlabelled: true,
            ..ImportOptions::default()
        };
        let bytes = b"a slow, tired film\n\nwe laughed\tand cried\r\nfine\n";
        let got = import_bytes(Path::new("reviews.txt"), bytes, &unlabelled).unwrap();
        assert_eq!(got.format, Format::Lines);
        let rows: Vec<(usize, &str)> = got.rows.iter().map(|r| (r.line, r.text.as_str())).collect();
        assert_eq!(
            rows,
            [
                (1, "a slow, tired film"),
                (3, "we laughed\tand cried"),
                (4, "fine")
            ]
        );
        // Prose with no extension to go by, texts to label: lines too.
        let got = import_bytes(Path::new("-"), b"plain words\nmore words\n", &unlabelled).unwrap();
        assert_eq!(got.rows.len(), 2);
        // A labelled import never reads a .txt as bare lines: a TSV saved as .txt is still one.
        let labelled = import_bytes(
            Path::new("data.txt"),
            b"text\tlabel\ngood\tpositive\n",
            &ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(labelled.format, Format::Tsv);
        assert_eq!(labelled.rows[0].label, "positive");
        let e = import_bytes(Path::new("-"), b"plain words\n", &ImportOptions::default());
        assert!(matches!(e, Err(ImportError::UnknownFormat { .. })));
    }

    #[test]
    fn numeric_labels_sort_as_numbers() {
        let row = |l: &str| Row {
            line: 1,
            text: "t".into(),
            label: l.into(),
        };
        let imp = Imported {
            path: "x".into(),
            format: Format::Csv,
            rows: vec![row("10"), row("2"), row("2"), row("1")],
            problems: vec![],
            columns: String::new(),
            ids: vec![],
        };
        assert_eq!(imp.labels(None), ["1", "2", "10"]);
    }
}
