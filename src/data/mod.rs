//! Tasks, dataset import, the workspace on disk, export. Pure Rust + serde; knows no model.

pub mod task;
