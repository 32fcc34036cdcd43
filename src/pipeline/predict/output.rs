//! What `predict` writes: one row per input with its line, its id (when the input has an id
//! column), the text (unless left out), the label and the probability of every label, as JSONL,
//! CSV or TSV.
//!
//! JSONL: `{"line": 3, "id": "a7", "text": "…", "label": "positive", "probs": {"negative":
//! 0.12, "positive": 0.88}}` (labels in the task's order). CSV and TSV: a header row `line, id,
//! text, label, p_<label>…`, then one row per input. CSV quotes as RFC 4180 does; TSV has no
//! quoting, so tabs and line breaks inside a text are written as spaces.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

use serde::ser::{SerializeMap, Serializer};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    Jsonl,
    Csv,
    Tsv,
}

impl OutFormat {
    /// From a file's extension (`.jsonl`/`.ndjson`/`.json`, `.csv`, `.tsv`/`.tab`).
    pub fn from_path(path: &Path) -> Option<OutFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(OutFormat::Jsonl),
            "csv" => Some(OutFormat::Csv),
            "tsv" | "tab" => Some(OutFormat::Tsv),
            _ => None,
        }
    }

    /// `--format` when given, else the output file's extension, else JSONL.
    pub fn choose(asked: Option<OutFormat>, out: Option<&Path>) -> Result<OutFormat, String> {
        match (asked, out) {
            (Some(f), _) => Ok(f),
            (None, None) => Ok(OutFormat::Jsonl),
            (None, Some(p)) => OutFormat::from_path(p).ok_or_else(|| {
                format!(
                    "{}: cannot tell the output format from the extension; name it with \
                     --format jsonl|csv|tsv",
                    p.display()
                )
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutFormat::Jsonl => "jsonl",
            OutFormat::Csv => "csv",
            OutFormat::Tsv => "tsv",
        }
    }
}

impl fmt::Display for OutFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<OutFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Ok(OutFormat::Jsonl),
            "csv" => Ok(OutFormat::Csv),
            "tsv" => Ok(OutFormat::Tsv),
            other => Err(format!(
                "unknown output format `{other}` (jsonl, csv or tsv)"
            )),
        }
    }
}

/// One answer to write.
#[derive(Debug, Clone, Copy)]
pub struct OutRow<'a> {
    /// 1-based line of the input where the row starts.
    pub line: usize,
    pub id: Option<&'a str>,
    pub text: &'a str,
    pub label: &'a str,
    /// Each label's probability, in task order.
    pub probs: &'a [(String, f64)],
}

/// Writes answers in one format; with `flush_each` every row is flushed as it is written (a
/// pipe sees each answer at once).
pub struct RowWriter<W: Write> {
    out: W,
    format: OutFormat,
    labels: Vec<String>,
    with_id: bool,
    with_text: bool,
    flush_each: bool,
    header_done: bool,
}

impl<W: Write> RowWriter<W> {
    pub fn new(
        out: W,
        format: OutFormat,
        labels: Vec<String>,
        with_id: bool,
        with_text: bool,
        flush_each: bool,
    ) -> Self {
        RowWriter {
            out,
            format,
            labels,
            with_id,
            with_text,
            flush_each,
            header_done: false,
        }
    }

    /// The CSV/TSV header (written before the first row, or by [`RowWriter::finish`] when
    /// there was none, so an empty result still names its columns).
    pub fn columns(&self) -> Vec<String> {
        let mut c = vec!["line".to_string()];
        if self.with_id {
            c.push("id".into());
        }
        if self.with_text {
            c.push("text".into());
        }
        c.push("label".into());
        c.extend(self.labels.iter().map(|l| format!("p_{l}")));
        c
    }

    fn header(&mut self) -> io::Result<()> {
        if self.header_done {
            return Ok(());
        }
        self.header_done = true;
        if self.format != OutFormat::Jsonl {
            let cols = self.columns();
            self.delimited(&cols)?;
        }
        Ok(())
    }

    fn delimited(&mut self, fields: &[String]) -> io::Result<()> {
        let line = delimited_line(self.format, fields)?;
        self.out.write_all(&line)
    }

    pub fn write(&mut self, row: &OutRow) -> io::Result<()> {
        self.header()?;
        match self.format {
            OutFormat::Jsonl => {
                let mut line = json_line(row, self.with_id, self.with_text)?;
                line.push(b'\n');
                self.out.write_all(&line)?;
            }
            OutFormat::Csv | OutFormat::Tsv => {
                let mut fields = vec![row.line.to_string()];
                if self.with_id {
                    fields.push(row.id.unwrap_or_default().to_string());
                }
                if self.with_text {
                    fields.push(row.text.to_string());
                }
                fields.push(row.label.to_string());
                fields.extend(row.probs.iter().map(|(_, p)| p.to_string()));
                self.delimited(&fields)?;
            }
        }
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes the header if no row came, flushes, and hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.header()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A JSON object for `row` (no line break).
fn json_line(row: &OutRow, with_id: bool, with_text: bool) -> io::Result<Vec<u8>> {
    struct Probs<'a>(&'a [(String, f64)]);
    impl serde::Serialize for Probs<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (l, p) in self.0 {
                m.serialize_entry(l, p)?;
            }
            m.end()
        }
    }
    struct Obj<'a>(&'a OutRow<'a>, bool, bool);
    impl serde::Serialize for Obj<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let Obj(r, with_id, with_text) = self;
            let mut m = s.serialize_map(None)?;
            m.serialize_entry("line", &r.line)?;
            if *with_id {
                m.serialize_entry("id", &r.id)?;
            }
            if *with_text {
                m.serialize_entry("text", r.text)?;
            }
            m.serialize_entry("label", r.label)?;
            m.serialize_entry("probs", &Probs(r.probs))?;
            m.end()
        }
    }
    serde_json::to_vec(&Obj(row, with_id, with_text)).map_err(io::Error::other)
}

/// One CSV (quoted as needed) or TSV (tabs and line breaks as spaces) line.
fn delimited_line(format: OutFormat, fields: &[String]) -> io::Result<Vec<u8>> {
    let tsv = format == OutFormat::Tsv;
    let mut w = csv::WriterBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        .quote_style(if tsv {
            csv::QuoteStyle::Never
        } else {
            csv::QuoteStyle::Necessary
        })
        .from_writer(Vec::new());
    let clean: Vec<String> = fields
        .iter()
        .map(|f| {
            if tsv {
                f.replace(['\t', '\n', '\r'], " ")
            } else {
                f.clone()
            }
        })
        .collect();
    w.write_record(&clean).map_err(io::Error::other)?;
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs() -> Vec<(String, f64)> {
        vec![("neg".into(), 0.25), ("pos".into(), 0.75)]
    }

    fn write_all(format: OutFormat, with_id: bool, with_text: bool, rows: &[OutRow]) -> String {
        let mut w = RowWriter::new(
            Vec::new(),
            format,
            vec!["neg".into(), "pos".into()],
            with_id,
            with_text,
            true,
        );
        for r in rows {
            w.write(r).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn format_is_chosen_by_flag_then_extension_then_jsonl() {
        let p = Path::new("out.CSV");
        assert_eq!(OutFormat::choose(None, Some(p)), Ok(OutFormat::Csv));
        assert_eq!(
            OutFormat::choose(Some(OutFormat::Tsv), Some(p)),
            Ok(OutFormat::Tsv)
        );
        assert_eq!(OutFormat::choose(None, None), Ok(OutFormat::Jsonl));
        assert_eq!(
            OutFormat::choose(None, Some(Path::new("a.ndjson"))),
            Ok(OutFormat::Jsonl)
        );
        let e = OutFormat::choose(None, Some(Path::new("labels.out"))).unwrap_err();
        assert!(e.contains("labels.out") && e.contains("--format"), "{e}");
        assert!("xml".parse::<OutFormat>().is_err());
    }

    #[test]
    fn jsonl_rows_keep_the_task_order_of_labels() {
        let p = probs();
        let row = OutRow {
            line: 3,
            id: Some("a7"),
            text: "so \"good\"",
            label: "pos",
            probs: &p,
        };
        let got = write_all(OutFormat::Jsonl, true, true, &[row]);
        assert_eq!(
            got,
            "{\"line\":3,\"id\":\"a7\",\"text\":\"so \\\"good\\\"\",\"label\":\"pos\",\
             \"probs\":{\"neg\":0.25,\"pos\":0.75}}\n"
        );
        let got = write_all(OutFormat::Jsonl, false, false, &[row]);
        assert_eq!(
            got,
            "{\"line\":3,\"label\":\"pos\",\"probs\":{\"neg\":0.25,\"pos\":0.75}}\n"
        );
    }

    #[test]
    fn csv_quotes_and_tsv_flattens_and_both_have_a_header() {
        let p = probs();
        let row = OutRow {
            line: 9,
            id: None,
            text: "a, b\t\"c\"\nd",
            label: "neg",
            probs: &p,
        };
        assert_eq!(
            write_all(OutFormat::Csv, false, true, &[row]),
            "line,text,label,p_neg,p_pos\n9,\"a, b\t\"\"c\"\"\nd\",neg,0.25,0.75\n"
        );
        assert_eq!(
            write_all(OutFormat::Tsv, true, true, &[row]),
            "line\tid\ttext\tlabel\tp_neg\tp_pos\n9\t\ta, b \"c\" d\tneg\t0.25\t0.75\n"
        );
        // No rows: the header alone.
        assert_eq!(
            write_all(OutFormat::Csv, false, false, &[]),
            "line,label,p_neg,p_pos\n"
        );
        assert_eq!(write_all(OutFormat::Jsonl, false, false, &[]), "");
    }
}
