//! LoRA fine-tuning of the model as a classifier (step 4 of the method): adapters on chosen
//! projections ([`lora`]), examples to token batches ([`data`]), the training loop with its
//! schedule, early stopping and live metrics ([`trainer`], [`schedule`], [`metrics`]), class
//! balance, the synthetic share and label smoothing ([`weighting`]), adapters
//! saved and loaded in Hugging Face PEFT's layout ([`peft`]), label scoring for evaluation
//! ([`score`]), gradients through the whole graph or a layer at a time ([`gradients`]) and runs averaged into one adapter ([`soup`]); the step-time benchmark against
//! the PEFT peer is `crate::bench::train_steps`.

pub mod checkpoint;
pub mod data;
pub mod gradients;
pub mod lora;
pub mod merge;
pub mod metrics;
pub mod peft;
pub mod run;
pub mod schedule;
pub mod score;
pub mod soup;
pub mod trainer;
pub mod weighting;

#[cfg(test)]
mod tests;
