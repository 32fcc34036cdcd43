//! The test set last used to evaluate a workspace (`<workspace>/test-set.json`): the file, its
//! label map, a row limit and the options, so the Evaluate screen offers them again next time.
//! A convenience, never an error: a missing or unreadable file gives the defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub const TEST_SET_FILE: &str = "test-set.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestSetChoice {
    /// The labelled file, as the user typed it (made absolute when the evaluation starts).
    pub path: String,
    /// `0=negative,1=positive`; empty: the file's labels are the task's.
    pub label_map: String,
    /// Evaluate only the first N rows (none: all).
    pub limit: Option<usize>,
    /// Contextual calibration for ICL and zero-shot.
    pub calibrate: bool,
    /// Zero-shot beside ICL and LoRA.
    pub zero_shot: bool,
}

impl TestSetChoice {
    pub fn load(workspace: &Path) -> TestSetChoice {
        std::fs::read_to_string(workspace.join(TEST_SET_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, workspace: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n";
        super::atomic::write_atomic_bytes(&workspace.join(TEST_SET_FILE), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_falls_back_to_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(TestSetChoice::load(dir.path()), TestSetChoice::default());
        let c = TestSetChoice {
            path: "/data/sst2/dev.tsv".into(),
            label_map: "0=negative,1=positive".into(),
            limit: Some(200),
            calibrate: true,
            zero_shot: false,
        };
        c.save(dir.path()).unwrap();
        assert_eq!(TestSetChoice::load(dir.path()), c);
        std::fs::write(dir.path().join(TEST_SET_FILE), "{not json").unwrap();
        assert_eq!(TestSetChoice::load(dir.path()), TestSetChoice::default());
    }
}
