//! What the UI (or a headless command) asks the engine to do.

use std::path::PathBuf;

use crate::data::import::ImportOptions;
use crate::data::item::ItemId;
use crate::pipeline::filters::FilterSettings;
use crate::pipeline::generate::GenerateSettings;
use crate::train::trainer::TrainConfig;

#[derive(Debug, Clone)]
pub enum Command {
    /// Write new examples for every class, filter them as they stream in, journal everything.
    Generate {
        settings: GenerateSettings,
        filters: FilterSettings,
        /// A run folder whose LoRA adapter writes (a seed-tuned teacher, or any adapter); the
        /// label check still reads with the base model.
        adapter: Option<PathBuf>,
    },
    /// Run the filters again on these items (after an edit or relabel).
    Recheck {
        items: Vec<ItemId>,
        filters: FilterSettings,
    },
    /// A LoRA training run on the workspace's seeds (and accepted items), in a new run folder.
    Train(Box<TrainRequest>),
    /// Go on with a stopped or interrupted training run (a folder of the workspace's runs) from
    /// its checkpoint, with the settings and data it recorded.
    ResumeTrain { run: PathBuf },
    /// The method's comparison on a labelled test file; each result saved as `eval.json`.
    Evaluate(Box<EvalRequest>),
    /// Label the texts of a file with the model and add them to the workspace as `annotated`
    /// items, judged by the cheap filters and a confidence threshold.
    Annotate(Box<AnnotateRequest>),
    /// Label a file of texts with one classifier into a result file (`predict`).
    Predict(Box<super::PredictRequest>),
    /// Distil a LoRA classifier run into a small, fast student in a new run folder.
    Distil(Box<super::distil_job::DistilRequest>),
    /// Stop the worker once the current job is done.
    Shutdown,
}

#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub config: TrainConfig,
    /// Train on the seeds and the accepted items (the method), or on the seeds alone (the
    /// baseline it is compared with).
    pub with_accepted: bool,
    /// Staged (with the accepted items): then train that run's adapter on, on the seeds alone,
    /// into a second run folder.
    pub then_seeds: bool,
}

#[derive(Debug, Clone)]
pub struct EvalRequest {
    /// The labelled test file (any format the importer reads).
    pub test: PathBuf,
    /// How to read it (the label map above all: SST-2's labels are `0`/`1`).
    pub read: ImportOptions,
    /// Evaluate only the first N rows.
    pub limit: Option<usize>,
    pub zero_shot: bool,
    /// In-context learning with the seeds as demonstrations, labels interleaved.
    pub icl: bool,
    /// Contextual calibration of ICL's and zero-shot's label scores.
    pub calibrate: bool,
    /// LoRA run folders to evaluate; `None`: every run folder of the workspace that holds an
    /// adapter.
    pub lora: Option<Vec<PathBuf>>,
}

#[derive(Debug, Clone)]
pub struct AnnotateRequest {
    /// The texts (any format the importer reads; a label column is ignored).
    pub input: PathBuf,
    pub read: ImportOptions,
    /// A classifier adapter (a run of `train`) labels zero-shot; without one the base model
    /// labels in context, with the seeds as demonstrations.
    pub adapter: Option<PathBuf>,
    /// Label only the first N texts.
    pub limit: Option<usize>,
    /// An item is kept when its label's probability reaches this.
    pub min_confidence: f64,
    /// The cheap filters' settings, and whether the classifier is calibrated.
    pub filters: FilterSettings,
}
