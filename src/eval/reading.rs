//! How a LoRA run's label scores are read, decided in one place from what the run was trained
//! on, for every command and screen that classifies with a run: `eval`, `train --eval`, the
//! workbench's evaluations, the experiment and `predict`.

use std::path::Path;

use crate::pipeline::classify::ClassifierOptions;
use crate::train::run::{TrainedOn, trained_on};

/// The classifier options for reading `run`'s adapter (zero-shot prompt, as it was trained).
pub fn options_for_run(run: &Path) -> ClassifierOptions {
    options_for(trained_on(run).as_ref())
}

/// [`options_for_run`] from what the run's `config.json` says (`None`: an adapter from
/// elsewhere, read as it is).
pub fn options_for(trained: Option<&TrainedOn>) -> ClassifierOptions {
    // A run trained on judged items learns the judge's lean as a prior over the labels;
    // contextual calibration takes it out (measured on validation rows, docs/results.md).
    ClassifierOptions {
        calibrate: trained.is_some_and(|t| t.extra_examples > 0),
        ..ClassifierOptions::default()
    }
}
