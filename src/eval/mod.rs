//! Accuracy, macro-F1, confusion matrices, evaluation runs saved as `eval.json`, and comparison
//! of runs.

pub mod experiment;
pub mod metrics;
pub mod report;
pub mod run;
