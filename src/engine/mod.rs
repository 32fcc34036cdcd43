//! Long jobs (generation with streaming filters, training, evaluation, labelling a file) on a
//! worker thread that owns the model, reported as [`Event`]s on a channel. The UI and the headless
//! commands drive the same engine: commands go down, events come up, and cancel/pause are flags
//! the job checks between decoding or training steps.

pub mod annotate_job;
pub mod command;
pub mod distil_job;
pub mod eval_job;
pub mod event;
pub mod generate_job;
pub mod job;
pub mod judge;
pub mod predict_job;
pub mod train_job;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

pub use crate::util::control::JobControl;
pub use command::{AnnotateRequest, Command, EvalRequest, TrainRequest};
pub use event::{Event, JobId, JobKind, ModelEvent};
pub use predict_job::PredictRequest;

use crate::data::workspace::Workspace;
use crate::llm::device::DeviceChoice;

/// Where events go: a tokio channel, so the UI can `select!` over it; sending never blocks.
#[derive(Clone)]
pub struct Sink(tokio::sync::mpsc::UnboundedSender<Event>);

impl Sink {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<Event>) -> Self {
        Sink(tx)
    }

    /// Sends an event; a closed receiver (the UI quit) is not an error for the job.
    pub fn send(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// The model (default: the default model, fetched on first use).
    pub model: Option<PathBuf>,
    pub device: DeviceChoice,
}

/// The handle the UI holds.
pub struct Engine {
    commands: mpsc::Sender<Command>,
    control: Arc<JobControl>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineStopped;

impl Engine {
    /// Starts the worker: it loads the model (reporting progress as [`ModelEvent`]s), then runs
    /// commands one at a time.
    pub fn start(config: EngineConfig, workspace: Arc<Mutex<Workspace>>, events: Sink) -> Engine {
        let (tx, rx) = mpsc::channel();
        let control = Arc::new(JobControl::default());
        let worker_control = control.clone();
        let thread = std::thread::Builder::new()
            .name("seedforge-engine".into())
            .spawn(move || worker::run(config, workspace, rx, worker_control, events))
            .ok();
        Engine {
            commands: tx,
            control,
            thread,
        }
    }

    pub fn send(&self, command: Command) -> Result<(), EngineStopped> {
        self.commands.send(command).map_err(|_| EngineStopped)
    }

    /// Cancels the running job (it stops within one decoding, training or evaluation step;
    /// a training run still saves its best adapter).
    pub fn cancel(&self) {
        self.control.stop();
    }

    pub fn set_paused(&self, paused: bool) {
        self.control.set_paused(paused);
    }

    pub fn is_paused(&self) -> bool {
        self.control.is_paused()
    }

    /// Cancels any job and waits for the worker to finish.
    pub fn shutdown(mut self) {
        self.cancel();
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
