//! The paper's steps as plain functions over `llm` and `data`: prompt building, generation,
//! post-processing, filters and the in-context classifier.

pub mod annotate;
pub mod classify;
pub mod filters;
pub mod generate;
pub mod postprocess;
pub mod prompt;
