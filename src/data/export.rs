//! The dataset out of a workspace: seeds + accepted items for training elsewhere, or the
//! rejected items with why, for inspection.
//!
//! Both are flat tables loadable as they are by Hugging Face `datasets` (`load_dataset("json",
//! data_files=…)` or `"csv"`): every row has the same columns in the same order, and each column
//! holds one type (strings, or floats with `null` where a row has no value; floats are always
//! written with a decimal point so no reader takes a score column for integers).
//!
//! Accepted: `text, label, source, id`, then one `score_<stage>_<name>` column per score any
//! exported item has. Rejected: `id, text, label, source, status, stage, reason, raw, prompt`,
//! then the scores; `stage` lists the failed filters (`manual` for a hand rejection) and `reason`
//! their reasons, `; `-separated.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::atomic::write_atomic;
use super::item::{Source, Verdict};
use super::state::{Decision, ItemState, State, Status};
use super::task::Example;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    /// `.csv` means CSV; anything else JSONL.
    pub fn from_path(path: &Path) -> ExportFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => ExportFormat::Csv,
            _ => ExportFormat::Jsonl,
        }
    }
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<ExportFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "json" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(format!("unknown export format `{other}` (jsonl or csv)")),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct ExportError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub rows: usize,
    pub columns: Vec<String>,
    /// Rows per label, in the task's label order.
    pub per_label: Vec<(String, usize)>,
}

/// A cell of the flat table.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Str(String),
    Num(f64),
    Null,
}

struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

/// Seeds (first) and accepted items, with their current text and label.
pub fn export_accepted(
    seeds: &[Example],
    state: &State,
    out: &Path,
    format: ExportFormat,
) -> Result<ExportSummary, ExportError> {
    let accepted: Vec<&ItemState> = state.with_status(Status::Accepted).collect();
    let scores = score_columns(&accepted);
    let mut columns: Vec<String> = ["text", "label", "source", "id"].map(String::from).to_vec();
    columns.extend(scores.iter().map(|(c, _, _)| c.clone()));
    let mut rows = Vec::new();
    for (i, s) in seeds.iter().enumerate() {
        let mut row = vec![
            Cell::Str(s.text.clone()),
            Cell::Str(s.label.clone()),
            Cell::Str(Source::Seed.as_str().into()),
            Cell::Str(format!("s-{:06}", i + 1)),
        ];
        row.extend(scores.iter().map(|_| Cell::Null));
        rows.push(row);
    }
    for it in &accepted {
        let mut row = vec![
            Cell::Str(it.text().into()),
            Cell::Str(it.label().into()),
            Cell::Str(it.source().as_str().into()),
            Cell::Str(it.id().to_string()),
        ];
        row.extend(score_cells(it.verdicts(), &scores));
        rows.push(row);
    }
    write_table(&Table { columns, rows }, out, format, state, 1)
}

/// Rejected items, by hand or by the filters (not rescued), with stage, reason, raw output.
pub fn export_rejected(
    state: &State,
    out: &Path,
    format: ExportFormat,
) -> Result<ExportSummary, ExportError> {
    let items: Vec<&ItemState> = state
        .items()
        .iter()
        .filter(|it| matches!(it.status(), Status::Rejected | Status::AutoRejected))
        .collect();
    let scores = score_columns(&items);
    let mut columns: Vec<String> = [
        "id", "text", "label", "source", "status", "stage", "reason", "raw", "prompt",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(scores.iter().map(|(c, _, _)| c.clone()));
    let mut rows = Vec::new();
    for it in &items {
        let (stage, reason) = match it.decision() {
            Some(Decision::Rejected { reason }) => {
                ("manual".to_string(), reason.clone().unwrap_or_default())
            }
            _ => {
                let failed: Vec<&Verdict> = it.failed_verdicts().collect();
                (
                    failed
                        .iter()
                        .map(|v| v.stage.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    failed
                        .iter()
                        .map(|v| v.reason.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        };
        let opt = |s: &Option<String>| s.clone().map_or(Cell::Null, Cell::Str);
        let mut row = vec![
            Cell::Str(it.id().to_string()),
            Cell::Str(it.text().into()),
            Cell::Str(it.label().into()),
            Cell::Str(it.source().as_str().into()),
            Cell::Str(it.status().as_str().into()),
            Cell::Str(stage),
            Cell::Str(reason),
            opt(&it.original().raw),
            opt(&it.original().prompt),
        ];
        row.extend(score_cells(it.verdicts(), &scores));
        rows.push(row);
    }
    write_table(&Table { columns, rows }, out, format, state, 2)
}

/// Column name, stage and score name of every score the items carry, sorted.
fn score_columns(items: &[&ItemState]) -> Vec<(String, String, String)> {
    let mut set = BTreeSet::new();
    for it in items {
        for v in it.verdicts() {
            for name in v.scores.keys() {
                set.insert((v.stage.clone(), name.clone()));
            }
        }
    }
    let mut seen = BTreeSet::new();
    set.into_iter()
        .map(|(stage, name)| {
            let mut col = format!("score_{}_{}", column_safe(&stage), column_safe(&name));
            // Two names that clean up to the same column keep apart.
            let base = col.clone();
            let mut n = 2;
            while !seen.insert(col.clone()) {
                col = format!("{base}_{n}");
                n += 1;
            }
            (col, stage, name)
        })
        .collect()
}

fn column_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn score_cells<'a>(
    verdicts: &'a [Verdict],
    scores: &'a [(String, String, String)],
) -> impl Iterator<Item = Cell> + 'a {
    scores.iter().map(move |(_, stage, name)| {
        verdicts
            .iter()
            .find(|v| v.stage == *stage)
            .and_then(|v| v.scores.get(name))
            .filter(|x| x.is_finite())
            .map_or(Cell::Null, |&x| Cell::Num(x))
    })
}

/// Writes the table; `label_col` is where the label sits, for the per-label summary.
fn write_table(
    table: &Table,
    out: &Path,
    format: ExportFormat,
    state: &State,
    label_col: usize,
) -> Result<ExportSummary, ExportError> {
    write_atomic(out, |w| match format {
        ExportFormat::Jsonl => write_jsonl(table, w),
        ExportFormat::Csv => write_csv(table, w),
    })
    .map_err(|source| ExportError {
        path: out.to_path_buf(),
        source,
    })?;
    let per_label = state
        .labels()
        .iter()
        .map(|l| {
            let n = table
                .rows
                .iter()
                .filter(|r| matches!(&r[label_col], Cell::Str(s) if s == l))
                .count();
            (l.clone(), n)
        })
        .collect();
    Ok(ExportSummary {
        rows: table.rows.len(),
        columns: table.columns.clone(),
        per_label,
    })
}

fn write_jsonl(table: &Table, w: &mut impl Write) -> io::Result<()> {
    for row in &table.rows {
        w.write_all(b"{")?;
        for (i, (col, cell)) in table.columns.iter().zip(row).enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            serde_json::to_writer(&mut *w, col)?;
            w.write_all(b":")?;
            match cell {
                Cell::Str(s) => serde_json::to_writer(&mut *w, s)?,
                Cell::Num(x) => write!(w, "{}", float(*x))?,
                Cell::Null => w.write_all(b"null")?,
            }
        }
        w.write_all(b"}\n")?;
    }
    Ok(())
}

fn write_csv(table: &Table, w: &mut impl Write) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    csv.write_record(&table.columns)?;
    for row in &table.rows {
        csv.write_record(row.iter().map(|c| match c {
            Cell::Str(s) => s.clone(),
            Cell::Num(x) => float(*x),
            Cell::Null => String::new(),
        }))?;
    }
    csv.flush()
}

/// A finite float with a decimal point always (`1.0`, not `1`), so it reads back as a float.
fn float(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::item::{Item, ItemId};
    use crate::data::record::{Record, RecordBody};

    fn state() -> State {
        let mut s = State::new(vec!["neg".into(), "pos".into()]);
        let mut seq = 0;
        let mut apply = |s: &mut State, body| {
            seq += 1;
            s.apply(&Record::new(seq, body)).unwrap();
        };
        for (id, text, label) in [
            ("g-000001", "good, \"really\"\nfine", "pos"),
            ("g-000002", "bad", "neg"),
            ("g-000003", "meh", "pos"),
        ] {
            let mut item = Item::new(text, label, Source::Generated);
            item.id = id.into();
            item.raw = Some(format!("raw {id}"));
            apply(&mut s, RecordBody::ItemAdded { item });
        }
        let id = |s: &str| ItemId::from(s);
        apply(
            &mut s,
            RecordBody::Verdict {
                item_id: id("g-000001"),
                verdict: Verdict::pass("label consistency").with_score("p", 1.0),
            },
        );
        apply(
            &mut s,
            RecordBody::Verdict {
                item_id: id("g-000002"),
                verdict: Verdict::fail("near_dup", "like g-000001").with_score("sim", 0.5),
            },
        );
        apply(
            &mut s,
            RecordBody::Accept {
                item_id: id("g-000001"),
            },
        );
        apply(
            &mut s,
            RecordBody::Reject {
                item_id: id("g-000003"),
                reason: Some("dull".into()),
            },
        );
        s
    }

    #[test]
    fn accepted_jsonl_has_the_same_keys_on_every_row_and_floats_with_a_point() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("train.jsonl");
        let seeds = [Example {
            text: "seed text".into(),
            label: "neg".into(),
        }];
        let sum = export_accepted(&seeds, &state(), &out, ExportFormat::Jsonl).unwrap();
        assert_eq!(sum.rows, 2);
        assert_eq!(
            sum.per_label,
            [("neg".to_string(), 1), ("pos".to_string(), 1)]
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"text":"seed text","label":"neg","source":"seed","id":"s-000001","score_label_consistency_p":null}"#
        );
        assert_eq!(
            lines[1],
            r#"{"text":"good, \"really\"\nfine","label":"pos","source":"generated","id":"g-000001","score_label_consistency_p":1.0}"#
        );
    }

    #[test]
    fn rejected_csv_has_stage_reason_and_raw() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rejected.csv");
        let sum = export_rejected(&state(), &out, ExportFormat::Csv).unwrap();
        assert_eq!(sum.rows, 2);
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            "id,text,label,source,status,stage,reason,raw,prompt,score_near_dup_sim\n\
             g-000002,bad,neg,generated,auto_rejected,near_dup,like g-000001,raw g-000002,,0.5\n\
             g-000003,meh,pos,generated,rejected,manual,dull,raw g-000003,,\n"
        );
    }

    #[test]
    fn accepted_csv_quotes_commas_quotes_and_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("train.csv");
        export_accepted(&[], &state(), &out, ExportFormat::Csv).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "text,label,source,id,score_label_consistency_p\n\"good, \"\"really\"\"\nfine\",pos,generated,g-000001,1.0\n"
        );
    }

    #[test]
    fn floats_always_read_back_as_floats() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(1e300), "1e300");
        assert_eq!(float(-3.0), "-3.0");
    }
}
