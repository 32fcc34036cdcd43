//! What the jobs that end in a summary share: how they end, and how they name a run folder.

use std::path::Path;

/// How a job ended: stopped by the user or not, and its line for the log.
pub struct Outcome {
    pub cancelled: bool,
    pub summary: String,
}

/// A run folder's name (`20260101-120000-train-seeds`), as jobs show it.
pub fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
