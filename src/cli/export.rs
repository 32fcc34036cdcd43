//! `seedforge export`: seeds + accepted items (or the rejected ones) as JSONL or CSV. Reads the
//! workspace without locking it, so it works while the workbench has it open.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::data::export::{ExportFormat, export_accepted, export_rejected};
use crate::data::workspace::Snapshot;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// File to write (replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// jsonl or csv (default: from the extension of --out; jsonl unless it ends in .csv).
    #[arg(long, value_parser = clap::value_parser!(ExportFormat))]
    pub format: Option<ExportFormat>,
    /// Export the rejected items (by hand or by the filters) with stage, reason and raw output.
    #[arg(long)]
    pub rejected: bool,
}

pub fn run(args: Args, workspace: Option<PathBuf>, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = workspace.unwrap_or_else(|| PathBuf::from("."));
    let snap =
        Snapshot::read(&dir).with_context(|| format!("cannot read workspace {}", dir.display()))?;
    for w in &snap.warnings {
        writeln!(out, "warning: {w}")?;
    }
    let format = args
        .format
        .unwrap_or_else(|| ExportFormat::from_path(&args.out));
    let summary = if args.rejected {
        export_rejected(&snap.state, &args.out, format)?
    } else {
        export_accepted(&snap.task.seeds, &snap.state, &args.out, format)?
    };
    let per_label: Vec<String> = summary
        .per_label
        .iter()
        .map(|(l, n)| format!("{l}: {n}"))
        .collect();
    writeln!(
        out,
        "wrote {} {} rows to {} ({}; columns: {})",
        summary.rows,
        if args.rejected {
            "rejected"
        } else {
            "seed + accepted"
        },
        args.out.display(),
        per_label.join(", "),
        summary.columns.join(", ")
    )?;
    Ok(())
}
