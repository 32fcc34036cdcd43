//! The paper's steps as plain functions over `llm` and `data`: prompt building, generation,
//! post-processing, filters, the in-context classifier, and labelling texts with a classifier
//! (`predict`).

pub mod annotate;
pub mod classify;
pub mod filters;
pub mod generate;
pub mod length_strata;
pub mod postprocess;
pub mod predict;
pub mod prompt;
pub mod quota;
pub mod writer;
