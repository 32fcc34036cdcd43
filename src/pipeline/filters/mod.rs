//! Filters: every generation gets a verdict from each stage — kept or rejected, with the reason
//! and its scores — and nothing is ever deleted.

pub mod diversity;
pub mod judge;
pub mod minhash;
pub mod stages;
pub mod stats;
pub mod text;

pub use stages::{FilterSettings, Filters};
