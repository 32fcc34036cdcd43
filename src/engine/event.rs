//! What the engine reports. Items and verdicts are in the workspace journal before their event
//! is sent, so a screen that reads the workspace on an event always finds what it announces.

use serde::Serialize;

use crate::data::item::ItemId;
use crate::data::record::Record;
use crate::data::state::Applied;
use crate::data::task::Example;
use crate::llm::fetch::FetchEvent;
use crate::train::metrics::TrainEvent;

pub type JobId = u64;

/// The number the UI gives a [`super::store::Write`] request, echoed in its answer.
pub type WriteId = u64;

/// Why a write request changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    /// The request made no sense in the current state (nothing to undo, already accepted…),
    /// as opposed to a failure to write (disk full).
    pub refused: bool,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Generate,
    Recheck,
    Train,
    Evaluate,
    Annotate,
    /// Labelling a file with a classifier (`predict`).
    Predict,
    /// Distilling a LoRA run into a student.
    Distil,
}

impl JobKind {
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Generate => "generate",
            JobKind::Recheck => "recheck",
            JobKind::Train => "train",
            JobKind::Evaluate => "evaluate",
            JobKind::Annotate => "annotate",
            JobKind::Predict => "label",
            JobKind::Distil => "distil",
        }
    }

    /// What the rate in this job's progress events counts.
    pub fn rate_unit(self) -> &'static str {
        match self {
            JobKind::Annotate | JobKind::Predict | JobKind::Distil => "texts/s",
            _ => "tok/s",
        }
    }
}

/// The model's state, for the status bar.
#[derive(Debug, Clone)]
pub enum ModelEvent {
    Fetching(FetchEvent),
    Loading {
        path: String,
        device: String,
    },
    Ready {
        device: String,
        name: String,
        seconds: f64,
    },
    Failed(String),
}

#[derive(Debug, Clone)]
pub enum Event {
    Model(ModelEvent),
    JobStarted {
        job: JobId,
        kind: JobKind,
        total: usize,
    },
    /// A sequence began decoding (generation: `index` is the request number).
    SequenceStarted {
        job: JobId,
        index: u64,
        label: String,
    },
    /// New text of a sequence being written.
    Delta {
        job: JobId,
        index: u64,
        text: String,
    },
    /// An item reached the journal (the sequence `index` is done).
    ItemAdded {
        job: JobId,
        index: u64,
        item: ItemId,
    },
    /// Records that reached the journal (whoever wrote them), in order: the UI's read model
    /// applies them to its copy of the state.
    Journal(Vec<Record>),
    /// The seeds after a change.
    Seeds(Vec<Example>),
    /// The answer to a write request: what it changed (in the journal, already reported as
    /// [`Event::Journal`]), or why nothing was written.
    Written {
        request: WriteId,
        result: Result<Vec<Applied>, WriteError>,
    },
    /// Items that passed the cheap stages and wait for their label check: not ready for review
    /// until [`Event::LabelChecked`] names them or `job` ends.
    AwaitingLabelCheck {
        job: JobId,
        items: Vec<ItemId>,
    },
    /// Items whose every filter stage has reported (their verdicts are in the journal).
    LabelChecked {
        job: JobId,
        items: Vec<ItemId>,
    },
    /// A filter verdict reached the journal.
    Verdict {
        item: ItemId,
        stage: String,
        pass: bool,
    },
    Progress {
        job: JobId,
        done: usize,
        total: usize,
        tokens_per_second: f64,
        eta_seconds: Option<f64>,
    },
    /// A training-run event (metrics, epoch results), as written to `metrics.jsonl`.
    Train {
        job: JobId,
        event: TrainEvent,
    },
    /// An evaluation job began one of its methods (the `index`-th of `count`, 0-based), e.g.
    /// `icl` or `lora 20260101-120000-train-seeds`.
    EvalStarted {
        job: JobId,
        name: String,
        index: usize,
        count: usize,
    },
    /// An evaluation's `eval.json` is saved in the run folder `run`.
    EvalSaved {
        job: JobId,
        run: std::path::PathBuf,
        summary: String,
    },
    /// A line for the log pane (an evaluation's import warnings, with file and line).
    Log(String),
    /// The label check's judge is being measured or trained before the job's first item.
    JudgeProgress {
        job: JobId,
        text: String,
    },
    /// The judge a job checks labels with, and the measurement that chose it.
    JudgeChosen {
        job: JobId,
        summary: String,
    },
    JobFinished {
        job: JobId,
        kind: JobKind,
        summary: String,
    },
    JobCancelled {
        job: JobId,
        kind: JobKind,
        summary: String,
    },
    JobFailed {
        job: JobId,
        kind: JobKind,
        error: String,
    },
}
