//! seedforge: build a text classifier from a handful of labelled examples.
//!
//! The layers, each allowed to use only those below it:
//!
//! ```text
//!  cli/ (headless commands) ─┬──────────────> experiment/ ─┐
//!  tui/ (screens, widgets) ──┴─> engine/ (jobs, events) ───┴─> pipeline/  train/  eval/
//!                                                                └──> llm/   data/
//! ```
//!
//! - [`llm`]: the language model (GGUF/safetensors, tokenizer, Llama in Burn, sampling).
//! - [`data`]: tasks, dataset import, the workspace journal, export. Knows no model.
//! - [`pipeline`]: the paper's steps (generation, filters, in-context classifier).
//! - [`train`]: LoRA fine-tuning and PEFT-compatible adapters.
//! - [`eval`]: metrics and run comparison.
//! - [`export`]: a run's classifier merged into the model, as GGUF or a Hugging Face folder.
//! - [`engine`]: long jobs on worker threads, reported as events.
//! - [`experiment`]: the method against its baselines over several seeds, resumable step by
//!   step (`seedforge experiment`); it sits beside the engine, above the layers it runs.
//! - [`tui`]: the terminal workbench.
//! - [`cli`]: the headless commands.
//! - [`bench`]: `seedforge bench …`, speed measurements beside the reference stacks (peers);
//!   it uses the layers but nothing in them uses it.

pub mod bench;
pub mod cli;
pub mod data;
pub mod engine;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod llm;
pub mod pipeline;
pub mod student;
pub mod train;
pub mod tui;
pub mod util;
