//! What the screens draw: the workbench's own copy of the workspace (task, seeds, replayed
//! state), kept up to date from the engine's events. The engine alone writes the workspace; this
//! copy applies the same journal records, so it never takes a lock and a frame never waits.

use std::path::{Path, PathBuf};

use crate::data::record::{Record, RecordBody};
use crate::data::state::{ItemState, State, StateError};
use crate::data::task::{Example, Task};
use crate::data::workspace::{RUNS_DIR, Workspace};

#[derive(Debug, Clone)]
pub struct ReadModel {
    dir: PathBuf,
    task: Task,
    state: State,
    /// The review queue as positions in the state's items, rebuilt when records arrive: a
    /// frame finds an item's place in the queue by a binary search, not a walk.
    queue: Vec<usize>,
    warnings: Vec<String>,
}

impl ReadModel {
    /// A copy of `ws` as it is now (taken before the engine starts writing to it).
    pub fn of(ws: &Workspace) -> ReadModel {
        let mut task = ws.task().clone();
        task.seeds = ws.seeds().to_vec();
        let state = ws.state().clone();
        ReadModel {
            dir: ws.dir().to_path_buf(),
            task,
            queue: state.review_queue_positions().collect(),
            state,
            warnings: ws.warnings().iter().map(|w| w.to_string()).collect(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The task, with its seeds.
    pub fn task(&self) -> &Task {
        &self.task
    }
    pub fn seeds(&self) -> &[Example] {
        &self.task.seeds
    }
    pub fn state(&self) -> &State {
        &self.state
    }
    /// The review queue's length.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }
    /// The item at place `rank` in the review queue.
    pub fn queued(&self, rank: usize) -> Option<&ItemState> {
        self.queue.get(rank).map(|&i| &self.state.items()[i])
    }
    /// The place of `id` in the review queue, if it is pending.
    pub fn queue_rank(&self, id: &str) -> Option<usize> {
        let i = self.state.position(id)?;
        self.queue.binary_search(&i).ok()
    }
    /// What opening the workspace found worth telling the user.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join(RUNS_DIR)
    }

    /// Whether the store would take `body` now (to say why not without asking it).
    pub fn check(&self, body: &RecordBody) -> Result<(), StateError> {
        self.state.check(body)
    }

    /// Applies records the engine reports durable. The engine's state accepted them, and this
    /// copy went through the same records before, so they apply here too.
    pub fn apply(&mut self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        for record in records {
            let _ = self.state.apply_owned(record);
        }
        self.queue.clear();
        self.queue.extend(self.state.review_queue_positions());
    }

    pub fn set_seeds(&mut self, seeds: Vec<Example>) {
        self.task.seeds = seeds;
    }
}
