//! Accuracy, macro-F1, confusion matrices, and comparison of runs.

pub mod metrics;
