//! How to read a labelled (or unlabelled) data file: the options every command that reads one
//! shares (`init`, `classify`, `eval`, `annotate`…), and the one place that reads it and reports
//! the problems it found.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::Args;

use crate::data::import::{
    Format, ImportError, ImportOptions, Imported, LabelMap, OnBadRow, import_file,
};

/// Problems printed one by one before the rest are summarised by kind.
const SHOWN_PROBLEMS: usize = 10;

#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// File format: tsv, csv, jsonl, trec, or lines for texts to label (default: guessed from
    /// the file).
    #[arg(long, value_parser = clap::value_parser!(Format))]
    pub format: Option<Format>,
    /// Column (header name or 1-based number) or JSONL field holding the text.
    #[arg(long, value_name = "C")]
    pub text_col: Option<String>,
    /// Column (header name or 1-based number) or JSONL field holding the label.
    #[arg(long, value_name = "C")]
    pub label_col: Option<String>,
    /// The first row of the TSV/CSV is a header (default: guessed).
    #[arg(long, conflicts_with = "no_header")]
    pub header: bool,
    /// The first row of the TSV/CSV is data.
    #[arg(long)]
    pub no_header: bool,
    /// Labels in the file to task labels, e.g. 0=negative,1=positive. Other labels are problems.
    #[arg(long, value_name = "MAP", value_parser = clap::value_parser!(LabelMap))]
    pub label_map: Option<LabelMap>,
    /// TREC: fine labels (LOC:city) instead of coarse ones (LOC).
    #[arg(long)]
    pub trec_fine: bool,
    /// Bad rows (invalid UTF-8, ragged, empty text, unknown label): skip them with a warning
    /// (invalid UTF-8 is kept, read as Latin-1) or stop at the first.
    #[arg(long, default_value = "skip", value_parser = clap::value_parser!(OnBadRow))]
    pub on_bad_row: OnBadRow,
}

impl InputArgs {
    pub fn options(&self) -> ImportOptions {
        ImportOptions {
            format: self.format,
            text_col: self.text_col.clone(),
            label_col: self.label_col.clone(),
            id_col: None,
            header: match (self.header, self.no_header) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            label_map: self.label_map.clone(),
            trec_fine: self.trec_fine,
            on_bad_row: self.on_bad_row,
            unlabelled: false,
        }
    }

    /// Reads `path`, printing what was read and every problem (file, line, reason) to `out`.
    pub fn read(&self, path: &Path, out: &mut dyn Write) -> anyhow::Result<Imported> {
        let imported = match import_file(path, &self.options()) {
            Ok(i) => i,
            Err(e @ ImportError::Stopped(_)) => {
                return Err(anyhow::Error::new(e)).context(
                    "stopped at the first bad row; use --on-bad-row skip to skip bad rows instead",
                );
            }
            Err(e) => return Err(e.into()),
        };
        writeln!(
            out,
            "read {} rows from {} ({}; {})",
            imported.rows.len(),
            path.display(),
            imported.format,
            imported.columns
        )?;
        report_problems(&imported, out)?;
        Ok(imported)
    }
}

/// Each problem up to a limit, then counts per kind.
pub fn report_problems(imported: &Imported, out: &mut dyn Write) -> std::io::Result<()> {
    for p in imported.problems.iter().take(SHOWN_PROBLEMS) {
        writeln!(out, "warning: {p}")?;
    }
    if imported.problems.len() > SHOWN_PROBLEMS {
        let mut kinds = std::collections::BTreeMap::new();
        for p in &imported.problems[SHOWN_PROBLEMS..] {
            *kinds.entry(p.kind).or_insert(0usize) += 1;
        }
        let summary: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{n} × {}", k.describe()))
            .collect();
        writeln!(
            out,
            "warning: {} more problems: {}",
            imported.problems.len() - SHOWN_PROBLEMS,
            summary.join(", ")
        )?;
    }
    Ok(())
}
