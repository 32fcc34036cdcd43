//! Driving the engine from a test: start it on the CPU over a workspace, and read its events
//! with a deadline (a job that hangs fails the test instead of hanging it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seedforge::data::task::Task;
use seedforge::data::workspace::Workspace;
use seedforge::engine::{Engine, EngineConfig, Event, ModelEvent, Sink};
use seedforge::llm::device::DeviceChoice;
use tokio::sync::mpsc::UnboundedReceiver;

/// The engine on `model` (Flex CPU) over `ws`, and its event stream.
pub fn start(model: PathBuf, ws: Arc<Mutex<Workspace>>) -> (Engine, UnboundedReceiver<Event>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::start(
        EngineConfig {
            model: Some(model),
            device: DeviceChoice::Cpu,
            weights: Default::default(),
        },
        ws,
        Sink::new(tx),
    );
    (engine, rx)
}

/// The engine on the tiny model (written to `dir/tiny.gguf`) over a new workspace of the demo
/// task and its seeds in `dir/ws`.
pub fn on_tiny_demo(dir: &Path) -> (Arc<Mutex<Workspace>>, Engine, UnboundedReceiver<Event>) {
    on_tiny(dir, Task::demo())
}

/// [`on_tiny_demo`] with another task (its inline seeds become the workspace's).
pub fn on_tiny(
    dir: &Path,
    mut task: Task,
) -> (Arc<Mutex<Workspace>>, Engine, UnboundedReceiver<Event>) {
    let model = dir.join("tiny.gguf");
    super::tiny::write_gguf(&model);
    let seeds = std::mem::take(&mut task.seeds);
    let ws = Arc::new(Mutex::new(
        Workspace::create(&dir.join("ws"), &task, &seeds).unwrap(),
    ));
    let (engine, rx) = start(model, ws.clone());
    (ws, engine, rx)
}

/// The next event; a model that failed to load fails the test with its error.
pub fn next(rx: &mut UnboundedReceiver<Event>) -> Event {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match rx.try_recv() {
            Ok(Event::Model(ModelEvent::Failed(e))) => panic!("model failed: {e}"),
            Ok(e) => return e,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("no event within 300 s: {e:?}"),
        }
    }
}

/// Every event up to and including the job's end.
pub fn until_end(rx: &mut UnboundedReceiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let e = next(rx);
        let end = matches!(
            e,
            Event::JobFinished { .. } | Event::JobCancelled { .. } | Event::JobFailed { .. }
        );
        out.push(e);
        if end {
            return out;
        }
    }
}
