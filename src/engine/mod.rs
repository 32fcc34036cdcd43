//! Long jobs (generation with streaming filters, training, evaluation, labelling a file) on a
//! worker thread that owns the model, reported as [`Event`]s on a channel: commands go down,
//! events come up, and cancel/pause are flags the job checks between decoding or training steps.
//! A headless command runs the same job function on its own thread through [`headless::run`],
//! showing the same events as lines or a bar: `generate`, `filter` and `annotate` on a
//! workspace, `train`, `eval`, `distil`, and the experiment's steps (docs/architecture.md has
//! the table). The engine owns the workspace: its jobs and its [`store`] thread (the
//! user's decisions) are the only writers, and every durable change is reported as an event, so
//! the UI draws from its own copy and never waits on a job's lock.

pub mod annotate_job;
pub mod command;
pub mod distil_job;
pub mod eval_job;
pub mod event;
pub mod generate_job;
pub mod headless;
pub mod job;
pub mod judge;
pub mod predict_job;
pub mod store;
pub mod train_job;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

pub use crate::util::control::JobControl;
pub use command::{AnnotateRequest, Command, EvalRequest, TrainRequest};
pub use event::{Event, JobId, JobKind, ModelEvent, WriteError, WriteId};
pub use predict_job::PredictRequest;
pub use store::{Store, Write};

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
    /// How the frozen weights are held (`--weights`).
    pub weights: crate::llm::quant::WeightMode,
}

/// The handle the UI holds.
pub struct Engine {
    commands: mpsc::Sender<Command>,
    writes: mpsc::Sender<(WriteId, Write)>,
    control: Arc<JobControl>,
    thread: Option<JoinHandle<()>>,
    store_thread: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineStopped;

impl Engine {
    /// Starts the worker: it loads the model (reporting progress as [`ModelEvent`]s), then runs
    /// commands one at a time; and the store, which writes the user's decisions meanwhile.
    pub fn start(config: EngineConfig, workspace: Arc<Mutex<Workspace>>, events: Sink) -> Engine {
        let (writes, store_thread) = Store::new(workspace.clone(), events.clone()).spawn();
        let (tx, rx) = mpsc::channel();
        let control = Arc::new(JobControl::default());
        let worker_control = control.clone();
        let thread = std::thread::Builder::new()
            .name("seedforge-engine".into())
            .spawn(move || worker::run(config, workspace, rx, worker_control, events))
            .ok();
        Engine {
            commands: tx,
            writes,
            control,
            thread,
            store_thread,
        }
    }

    pub fn send(&self, command: Command) -> Result<(), EngineStopped> {
        self.commands.send(command).map_err(|_| EngineStopped)
    }

    /// Asks the store for `write`; the answer comes as [`Event::Written`] with `request`.
    pub fn write(&self, request: WriteId, write: Write) -> Result<(), EngineStopped> {
        self.writes
            .send((request, write))
            .map_err(|_| EngineStopped)
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
        // Its queue closed, the store finishes the writes already asked for, then ends.
        let Engine {
            writes,
            store_thread,
            ..
        } = self;
        drop(writes);
        if let Some(t) = store_thread {
            let _ = t.join();
        }
    }
}
