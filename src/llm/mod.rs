//! Everything about the language model and nothing about the task.

pub mod gguf;
