//! Accuracy, macro-F1, confusion matrices, evaluation runs saved as `eval.json`, and comparison
//! of runs, and the cross-validated choice of the judge that checks generated labels.

pub mod judge_selection;
pub mod metrics;
pub mod paired;
pub mod reading;
pub mod report;
pub mod run;
pub mod run_folder;
