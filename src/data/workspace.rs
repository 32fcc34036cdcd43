//! A task's folder on disk, opened for writing by one seedforge at a time.
//!
//! ```text
//! <workspace>/
//!   task.toml        labels, verbalizers, description (Task, without seeds)
//!   seeds.jsonl      the real examples, one {"text","label"} a line, rewritten atomically
//!   journal.jsonl    append-only records (see `record`); the state is their replay
//!   runs/<run-id>/   one folder per training / evaluation run
//!   .seedforge.lock  pid, host and start time of the instance holding the workspace
//! ```
//!
//! Every change goes through [`Workspace::append`]: the record is checked against the current
//! state, written and fsynced, and only then applied to the in-memory state and reported done.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::atomic::{sync_dir, write_atomic};
use super::item::{Item, ItemId, Verdict};
use super::journal::{self, JOURNAL_FILE, JournalError, JournalWriter, TornLine};
use super::lock::{LockError, LockHolder, WorkspaceLock};
use super::record::{Record, RecordBody, Seq};
use super::state::{Applied, State, StateError};
use super::task::{Example, PENDING_SEEDS_FILE, Task, TaskError};

pub const TASK_FILE: &str = "task.toml";
pub const SEEDS_FILE: &str = "seeds.jsonl";
pub const RUNS_DIR: &str = "runs";

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The operation makes no sense in the current state; nothing was written.
    #[error(transparent)]
    Refused(#[from] StateError),
    /// Disk full, read-only, I/O error: the record was not saved and the state is unchanged.
    #[error("cannot append to {path}: {source}; nothing was recorded")]
    JournalWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} already holds a workspace (task.toml or journal.jsonl exists)")]
    AlreadyExists(PathBuf),
    #[error("{0} is not a workspace (no task.toml)")]
    NotAWorkspace(PathBuf),
    #[error("seed {index}: {message}")]
    Seed { index: usize, message: String },
    #[error("the workspace could not be re-read after a failed write ({0}); close and reopen it")]
    Broken(String),
}

pub type Result<T, E = WorkspaceError> = std::result::Result<T, E>;

/// Something the user should hear about after opening a workspace; none stops the opening.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenWarning {
    /// A partial last line was dropped (an interrupted write, never reported as saved).
    TornLine {
        path: PathBuf,
        line: usize,
        bytes: usize,
        saved_to: Option<PathBuf>,
    },
    /// A record that does not apply (a journal edited by hand, a task whose labels changed).
    SkippedRecord {
        path: PathBuf,
        line: usize,
        seq: Seq,
        error: StateError,
    },
    /// The lock file named a seedforge that is gone; its lock was taken over.
    StaleLock(LockHolder),
}

impl std::fmt::Display for OpenWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenWarning::TornLine {
                path,
                line,
                bytes,
                saved_to,
            } => {
                write!(
                    f,
                    "{}:{line}: dropped an incomplete last record ({bytes} bytes, from a write \
                     that was interrupted before it was confirmed)",
                    path.display()
                )?;
                match saved_to {
                    Some(p) => write!(f, "; its bytes are kept in {}", p.display()),
                    None => Ok(()),
                }
            }
            OpenWarning::SkippedRecord {
                path,
                line,
                seq,
                error,
            } => write!(
                f,
                "{}:{line}: skipped record seq {seq}: {error}",
                path.display()
            ),
            OpenWarning::StaleLock(h) => write!(
                f,
                "took over the lock of seedforge pid {} (since {}), which is no longer running",
                h.pid, h.since
            ),
        }
    }
}

/// A workspace read without taking its lock (for export or inspection while another instance
/// works in it). Nothing is written, not even the cut of a torn line.
#[derive(Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub task: Task,
    pub state: State,
    pub warnings: Vec<OpenWarning>,
}

impl Snapshot {
    pub fn read(dir: &Path) -> Result<Snapshot> {
        if !dir.join(TASK_FILE).is_file() {
            return Err(WorkspaceError::NotAWorkspace(dir.to_path_buf()));
        }
        let task = Task::load(dir)?;
        let journal_path = dir.join(JOURNAL_FILE);
        let read = journal::read(&journal_path, None)?;
        let mut warnings = Vec::new();
        let state = replay(&task, &journal_path, read.records, &mut warnings);
        if let Some(torn) = read.torn {
            warnings.push(torn_warning(&journal_path, &torn, None));
        }
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            task,
            state,
            warnings,
        })
    }
}

/// What a [`Workspace`] tells its watcher once it is on disk.
#[derive(Debug, Clone)]
pub enum Written {
    /// Records appended to the journal (one write, one fsync), in order.
    Records(Vec<Record>),
    /// The seed list after a change.
    Seeds(Vec<Example>),
}

/// Told of every durable change: how a copy of the state (the workbench's read model) follows
/// the workspace without reading it under its lock.
pub type Watcher = Box<dyn FnMut(Written) + Send>;

/// An open workspace: the only writer of its folder while it lives.
#[derive(Debug)]
pub struct Workspace {
    dir: PathBuf,
    task: Task,
    state: State,
    journal: JournalWriter,
    warnings: Vec<OpenWarning>,
    broken: Option<String>,
    watcher: Watch,
    _lock: WorkspaceLock,
}

#[derive(Default)]
struct Watch(Option<Watcher>);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Watch(set)"
        } else {
            "Watch(none)"
        })
    }
}

impl Workspace {
    /// Makes a new workspace in `dir` (created if missing; refused if it already holds one).
    /// Its seeds are the task's inline seeds followed by `seeds`; they go to `seeds.jsonl`.
    pub fn create(dir: &Path, task: &Task, seeds: &[Example]) -> Result<Workspace> {
        if dir.join(TASK_FILE).exists() || dir.join(JOURNAL_FILE).exists() {
            return Err(WorkspaceError::AlreadyExists(dir.to_path_buf()));
        }
        fs::create_dir_all(dir).map_err(io_err("cannot create workspace folder", dir))?;
        let acquired = WorkspaceLock::acquire(dir)?;
        let mut task = task.clone();
        task.seeds.extend_from_slice(seeds);
        task.validate(&dir.join(TASK_FILE))?;
        let seeds = std::mem::take(&mut task.seeds);
        // task.toml makes the folder a workspace, so it comes last: a create cut short leaves a
        // folder that is not one (and can be created again), never a workspace without seeds.
        write_seeds(dir, &seeds)?;
        write_task_toml(dir, &task)?;
        let journal_path = dir.join(JOURNAL_FILE);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&journal_path)
            .and_then(|f| f.sync_all())
            .map_err(io_err("cannot create journal", &journal_path))?;
        let runs = dir.join(RUNS_DIR);
        fs::create_dir_all(&runs).map_err(io_err("cannot create", &runs))?;
        sync_dir(dir).map_err(io_err("cannot sync folder", dir))?;
        drop(acquired.lock);
        Workspace::open(dir)
    }

    /// Opens an existing workspace: takes the lock, loads the task and replays the journal.
    /// A task folder without a journal becomes a workspace (an empty journal is created).
    pub fn open(dir: &Path) -> Result<Workspace> {
        if !dir.join(TASK_FILE).is_file() {
            return Err(WorkspaceError::NotAWorkspace(dir.to_path_buf()));
        }
        let acquired = WorkspaceLock::acquire(dir)?;
        let mut warnings: Vec<OpenWarning> = Vec::new();
        if let Some(h) = acquired.stale {
            warnings.push(OpenWarning::StaleLock(h));
        }
        // A seed move that a crash interrupted is finished before anything reads the seeds.
        if dir.join(PENDING_SEEDS_FILE).exists() {
            drop_inline_seeds(dir)?;
            commit_pending_seeds(dir)?;
        }
        let task = Task::load(dir)?;
        let journal_path = dir.join(JOURNAL_FILE);
        let read = journal::read(&journal_path, None)?;
        let state = replay(&task, &journal_path, read.records, &mut warnings);
        if let Some(torn) = &read.torn {
            let saved = journal::save_dropped(dir, torn);
            warnings.push(torn_warning(&journal_path, torn, saved));
        }
        let journal = JournalWriter::open(&journal_path, read.valid_len)
            .map_err(io_err("cannot open journal for writing", &journal_path))?;
        let runs = dir.join(RUNS_DIR);
        fs::create_dir_all(&runs).map_err(io_err("cannot create", &runs))?;
        Ok(Workspace {
            dir: dir.to_path_buf(),
            task,
            state,
            journal,
            warnings,
            broken: None,
            watcher: Watch::default(),
            _lock: acquired.lock,
        })
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
    /// What opening found worth telling the user (torn line dropped, stale lock taken over…).
    pub fn warnings(&self) -> &[OpenWarning] {
        &self.warnings
    }
    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    /// Sets the one watcher told of every change after it is durable (replacing any earlier).
    pub fn watch(&mut self, watcher: Watcher) {
        self.watcher = Watch(Some(watcher));
    }

    /// Whether `body` would be accepted now (an `item_added` without an id gets one), without
    /// writing anything: lets a UI grey out what would be refused.
    pub fn check(&self, body: &RecordBody) -> Result<(), StateError> {
        self.state.check(&with_id(&self.state, body.clone()))
    }

    /// Checks, writes durably, then applies one record. When this returns `Ok` the record is on
    /// disk; when it returns `Err` nothing was written and the state is unchanged.
    pub fn append(&mut self, body: RecordBody) -> Result<Seq> {
        Ok(self.write(vec![body])?[0].0)
    }

    /// Several records with one fsync (a batch of generated items and their verdicts): either
    /// all are written and applied, or none. Later records may refer to earlier ones.
    pub fn append_all(&mut self, bodies: Vec<RecordBody>) -> Result<Vec<(Seq, Applied)>> {
        self.write(bodies)
    }

    /// Adds an item, giving it the next free id of its source; returns that id.
    pub fn add_item(&mut self, item: Item) -> Result<ItemId> {
        Ok(self.add_items(vec![item])?.remove(0))
    }

    /// Adds items with one fsync; returns their ids in order.
    pub fn add_items(&mut self, items: Vec<Item>) -> Result<Vec<ItemId>> {
        let bodies = items
            .into_iter()
            .map(|mut item| {
                item.id = ItemId(String::new());
                RecordBody::ItemAdded { item }
            })
            .collect();
        Ok(self
            .write(bodies)?
            .into_iter()
            .map(|(_, a)| a.item_id)
            .collect())
    }

    /// Adds an item and its verdicts in one journal write (one `write`, one fsync): a process
    /// killed between two writes would leave the item without its verdicts, and Review would
    /// offer it unjudged. Returns the item's id.
    pub fn add_item_with_verdicts(
        &mut self,
        mut item: Item,
        verdicts: Vec<Verdict>,
    ) -> Result<ItemId> {
        // The id the write would give it; known first so the verdicts can name it.
        let id = self.state.next_id(item.source);
        item.id = id.clone();
        let mut bodies = vec![RecordBody::ItemAdded { item }];
        bodies.extend(verdicts.into_iter().map(|verdict| RecordBody::Verdict {
            item_id: id.clone(),
            verdict,
        }));
        self.write(bodies)?;
        Ok(id)
    }

    pub fn add_verdict(&mut self, item_id: &ItemId, verdict: Verdict) -> Result<Seq> {
        self.append(RecordBody::Verdict {
            item_id: item_id.clone(),
            verdict,
        })
    }
    pub fn accept(&mut self, item_id: &ItemId) -> Result<Seq> {
        self.append(RecordBody::Accept {
            item_id: item_id.clone(),
        })
    }
    pub fn reject(&mut self, item_id: &ItemId, reason: Option<String>) -> Result<Seq> {
        self.append(RecordBody::Reject {
            item_id: item_id.clone(),
            reason,
        })
    }
    pub fn edit(&mut self, item_id: &ItemId, text: impl Into<String>) -> Result<Seq> {
        self.append(RecordBody::Edit {
            item_id: item_id.clone(),
            text: text.into(),
        })
    }
    pub fn relabel(&mut self, item_id: &ItemId, label: impl Into<String>) -> Result<Seq> {
        self.append(RecordBody::Relabel {
            item_id: item_id.clone(),
            label: label.into(),
        })
    }
    pub fn rescue(&mut self, item_id: &ItemId) -> Result<Seq> {
        self.append(RecordBody::Rescue {
            item_id: item_id.clone(),
        })
    }
    /// Undoes the latest decision; says which item and which kind of decision, so the UI can
    /// show it. `Err(Refused(NothingToUndo))` when there is none.
    pub fn undo(&mut self) -> Result<Applied> {
        Ok(self.write(vec![RecordBody::Undo {}])?.remove(0).1)
    }
    pub fn redo(&mut self) -> Result<Applied> {
        Ok(self.write(vec![RecordBody::Redo {}])?.remove(0).1)
    }

    fn write(&mut self, bodies: Vec<RecordBody>) -> Result<Vec<(Seq, Applied)>> {
        if let Some(why) = &self.broken {
            return Err(WorkspaceError::Broken(why.clone()));
        }
        if let [body] = bodies.as_slice() {
            // The common case: refuse without touching anything.
            self.state.check(&with_id(&self.state, body.clone()))?;
        }
        let mut lines = Vec::new();
        let mut done = Vec::with_capacity(bodies.len());
        let mut written = Vec::new();
        for body in bodies {
            let rec = Record::new(self.state.last_seq() + 1, with_id(&self.state, body));
            let line = rec.to_line();
            let seq = rec.seq;
            if self.watcher.0.is_some() {
                written.push(rec.clone());
            }
            match self.state.apply_owned(rec) {
                Ok(applied) => {
                    lines.extend_from_slice(&line);
                    done.push((seq, applied));
                }
                Err(e) => {
                    self.rebuild()?;
                    return Err(e.into());
                }
            }
        }
        if let Err(source) = self.journal.append(&lines) {
            self.rebuild()?;
            return Err(WorkspaceError::JournalWrite {
                path: self.journal.path().to_path_buf(),
                source,
            });
        }
        if let Some(w) = &mut self.watcher.0 {
            w(Written::Records(written));
        }
        Ok(done)
    }

    /// Re-reads the acknowledged part of the journal after a batch failed halfway through.
    fn rebuild(&mut self) -> Result<()> {
        let path = self.journal.path().to_path_buf();
        let result = journal::read(&path, Some(self.journal.len()))
            .map(|read| replay(&self.task, &path, read.records, &mut Vec::new()));
        match result {
            Ok(state) => {
                self.state = state;
                Ok(())
            }
            Err(e) => {
                self.broken = Some(e.to_string());
                Err(WorkspaceError::Broken(e.to_string()))
            }
        }
    }

    /// Replaces all seeds (atomically: a crash leaves the old or the new list, never a mix).
    pub fn set_seeds(&mut self, seeds: Vec<Example>) -> Result<()> {
        for (index, s) in seeds.iter().enumerate() {
            if s.text.trim().is_empty() {
                return Err(WorkspaceError::Seed {
                    index,
                    message: "the text is empty".into(),
                });
            }
            if self.task.label_index(&s.label).is_none() {
                return Err(WorkspaceError::Seed {
                    index,
                    message: format!(
                        "label `{}` is not one of {}",
                        s.label,
                        self.task.label_names().join(", ")
                    ),
                });
            }
        }
        if has_inline_seeds(&self.dir)? {
            // Two files change, so the order matters: the new list is written whole beside
            // them first, and while it exists it alone is the seed list (`Task::load`); then
            // task.toml loses its inline seeds, then the list takes seeds.jsonl's place. A crash
            // after any step loads either the old list or the new one, nothing lost or doubled.
            write_seeds_to(&self.dir.join(PENDING_SEEDS_FILE), &seeds)?;
            drop_inline_seeds(&self.dir)?;
            commit_pending_seeds(&self.dir)?;
        } else {
            write_seeds(&self.dir, &seeds)?;
        }
        self.task.seeds = seeds;
        if let Some(w) = &mut self.watcher.0 {
            w(Written::Seeds(self.task.seeds.clone()));
        }
        Ok(())
    }
    pub fn add_seed(&mut self, seed: Example) -> Result<()> {
        let mut seeds = self.task.seeds.clone();
        seeds.push(seed);
        self.set_seeds(seeds)
    }
    pub fn edit_seed(&mut self, index: usize, seed: Example) -> Result<()> {
        let mut seeds = self.task.seeds.clone();
        *seeds.get_mut(index).ok_or_else(|| no_seed(index))? = seed;
        self.set_seeds(seeds)
    }
    pub fn delete_seed(&mut self, index: usize) -> Result<()> {
        let mut seeds = self.task.seeds.clone();
        if index >= seeds.len() {
            return Err(no_seed(index));
        }
        seeds.remove(index);
        self.set_seeds(seeds)
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join(RUNS_DIR)
    }

    /// Creates `runs/<utc time>-<kind>/` (with `-2`, `-3`… if that exists) and returns it.
    pub fn new_run_dir(&self, kind: &str) -> Result<PathBuf> {
        let kind: String = kind
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stem = format!(
            "{}-{kind}",
            super::time::compact(std::time::SystemTime::now())
        );
        let runs = self.runs_dir();
        fs::create_dir_all(&runs).map_err(io_err("cannot create", &runs))?;
        for n in 1.. {
            let name = if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let path = runs.join(name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("cannot create run folder", &path)(e)),
            }
        }
        unreachable!("some suffix is free")
    }
}

/// Gives an `item_added` without an id the next free one.
fn with_id(state: &State, body: RecordBody) -> RecordBody {
    match body {
        RecordBody::ItemAdded { mut item } if item.id.0.is_empty() => {
            item.id = state.next_id(item.source);
            RecordBody::ItemAdded { item }
        }
        other => other,
    }
}

fn replay(
    task: &Task,
    path: &Path,
    records: Vec<(usize, Record)>,
    warnings: &mut Vec<OpenWarning>,
) -> State {
    let mut state = State::new(task.labels.iter().map(|l| l.name.clone()).collect());
    for (line, rec) in records {
        let seq = rec.seq;
        if let Err(error) = state.apply_owned(rec) {
            warnings.push(OpenWarning::SkippedRecord {
                path: path.to_path_buf(),
                line,
                seq,
                error,
            });
        }
    }
    state
}

fn torn_warning(path: &Path, torn: &TornLine, saved_to: Option<PathBuf>) -> OpenWarning {
    OpenWarning::TornLine {
        path: path.to_path_buf(),
        line: torn.line,
        bytes: torn.bytes.len(),
        saved_to,
    }
}

fn write_task_toml(dir: &Path, task: &Task) -> Result<()> {
    let path = dir.join(TASK_FILE);
    let text = toml::to_string(task).map_err(|e| {
        io_err("cannot write", &path)(io::Error::new(io::ErrorKind::InvalidData, e))
    })?;
    super::atomic::write_atomic_bytes(&path, text.as_bytes()).map_err(io_err("cannot write", &path))
}

/// Whether task.toml carries seeds inline (a task folder made by hand); a workspace keeps them
/// in seeds.jsonl, where they would otherwise be read twice once it holds them all.
fn has_inline_seeds(dir: &Path) -> Result<bool> {
    let path = dir.join(TASK_FILE);
    let text = fs::read_to_string(&path).map_err(io_err("cannot read", &path))?;
    Ok(toml::from_str::<Task>(&text).is_ok_and(|t| !t.seeds.is_empty()))
}

/// Rewrites task.toml without its inline seeds, from its own text (so a relative `prompts`
/// path stays relative).
fn drop_inline_seeds(dir: &Path) -> Result<()> {
    let path = dir.join(TASK_FILE);
    let text = fs::read_to_string(&path).map_err(io_err("cannot read", &path))?;
    let mut task: Task = toml::from_str(&text).map_err(|e| TaskError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if task.seeds.is_empty() {
        return Ok(());
    }
    task.seeds.clear();
    write_task_toml(dir, &task)
}

/// The last step of a seed move: the pending list becomes seeds.jsonl.
fn commit_pending_seeds(dir: &Path) -> Result<()> {
    let pending = dir.join(PENDING_SEEDS_FILE);
    let seeds = dir.join(SEEDS_FILE);
    fs::rename(&pending, &seeds).map_err(io_err("cannot rename to seeds.jsonl", &pending))?;
    sync_dir(dir).map_err(io_err("cannot sync folder", dir))
}

fn write_seeds(dir: &Path, seeds: &[Example]) -> Result<()> {
    write_seeds_to(&dir.join(SEEDS_FILE), seeds)
}

fn write_seeds_to(path: &Path, seeds: &[Example]) -> Result<()> {
    write_atomic(path, |w| {
        for s in seeds {
            serde_json::to_writer(&mut *w, s)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
    .map_err(io_err("cannot write seeds to", path))
}

fn no_seed(index: usize) -> WorkspaceError {
    WorkspaceError::Seed {
        index,
        message: "no such seed".into(),
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WorkspaceError {
    let path = path.to_path_buf();
    move |source| WorkspaceError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::item::Source;
    use crate::data::state::{Change, Status};

    fn new_ws() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create(&dir.path().join("ws"), &Task::demo(), &[]).unwrap();
        (dir, ws)
    }

    #[test]
    fn create_writes_the_layout_and_open_reads_it_back() {
        let (dir, mut ws) = new_ws();
        let root = dir.path().join("ws");
        for f in [
            TASK_FILE,
            SEEDS_FILE,
            JOURNAL_FILE,
            RUNS_DIR,
            ".seedforge.lock",
        ] {
            assert!(root.join(f).exists(), "{f}");
        }
        assert_eq!(ws.seeds().len(), 8);
        assert_eq!(
            fs::read_to_string(root.join(SEEDS_FILE))
                .unwrap()
                .lines()
                .count(),
            8
        );
        assert!(
            !fs::read_to_string(root.join(TASK_FILE))
                .unwrap()
                .contains("[[seeds]]")
        );
        let id = ws
            .add_item(Item::new("fine", "positive", Source::Generated))
            .unwrap();
        assert_eq!(id.as_str(), "g-000001");
        ws.accept(&id).unwrap();
        drop(ws);
        let ws = Workspace::open(&root).unwrap();
        assert!(ws.warnings().is_empty(), "{:?}", ws.warnings());
        assert_eq!(
            ws.state().get("g-000001").unwrap().status(),
            Status::Accepted
        );
        assert_eq!(ws.seeds().len(), 8, "inline demo seeds are not read twice");
        assert!(matches!(
            Workspace::create(&root, &Task::demo(), &[]),
            Err(WorkspaceError::AlreadyExists(_))
        ));
    }

    #[test]
    fn refused_decision_writes_nothing() {
        let (_dir, mut ws) = new_ws();
        let len = fs::metadata(ws.journal_path()).unwrap().len();
        assert!(matches!(
            ws.undo(),
            Err(WorkspaceError::Refused(StateError::NothingToUndo))
        ));
        assert!(matches!(
            ws.accept(&"g-000009".into()),
            Err(WorkspaceError::Refused(StateError::UnknownItem(_)))
        ));
        assert_eq!(fs::metadata(ws.journal_path()).unwrap().len(), len);
    }

    #[test]
    fn a_create_cut_short_leaves_no_workspace_without_its_seeds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        // seeds.jsonl cannot be written: a folder stands in its place.
        fs::create_dir_all(root.join(SEEDS_FILE)).unwrap();
        assert!(Workspace::create(&root, &Task::demo(), &[]).is_err());
        assert!(
            !root.join(TASK_FILE).exists(),
            "a workspace without seeds was left"
        );
        assert!(matches!(
            Workspace::open(&root),
            Err(WorkspaceError::NotAWorkspace(_))
        ));
        fs::remove_dir(root.join(SEEDS_FILE)).unwrap();
        let ws = Workspace::create(&root, &Task::demo(), &[]).unwrap();
        assert_eq!(ws.seeds().len(), 8);
    }

    #[test]
    fn an_item_and_its_verdicts_are_written_together() {
        let (_dir, mut ws) = new_ws();
        ws.add_item(Item::new("first", "positive", Source::Generated))
            .unwrap();
        let len = fs::metadata(ws.journal_path()).unwrap().len();
        let id = ws
            .add_item_with_verdicts(
                Item::new("second", "negative", Source::Annotated),
                vec![
                    Verdict::pass("malformed"),
                    Verdict::fail("label_consistency", "p 0.40 < 0.60"),
                ],
            )
            .unwrap();
        assert_eq!(id.as_str(), "a-000001");
        let it = ws.state().get(id.as_str()).unwrap();
        assert_eq!(it.verdicts().len(), 2);
        assert_eq!(it.status(), Status::AutoRejected);
        // Three records after the first item's, in order, all naming the new id.
        let text = fs::read_to_string(ws.journal_path()).unwrap();
        let added: Vec<serde_json::Value> = text.as_bytes()[len as usize..]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let kinds: Vec<&str> = added.iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["item_added", "verdict", "verdict"]);
        assert_eq!(added[1]["item_id"], "a-000001");
        // An item whose id is taken is refused, nothing written.
        let before = fs::metadata(ws.journal_path()).unwrap().len();
        let mut dup = Item::new("third", "negative", Source::Generated);
        dup.id = id.clone();
        assert!(
            ws.append_all(vec![RecordBody::ItemAdded { item: dup }])
                .is_err()
        );
        assert_eq!(fs::metadata(ws.journal_path()).unwrap().len(), before);
    }

    #[test]
    fn a_batch_that_fails_halfway_leaves_neither_file_nor_state_changed() {
        let (_dir, mut ws) = new_ws();
        ws.add_item(Item::new("a", "positive", Source::Generated))
            .unwrap();
        let len = fs::metadata(ws.journal_path()).unwrap().len();
        let err = ws
            .append_all(vec![
                RecordBody::ItemAdded {
                    item: Item::new("b", "negative", Source::Generated),
                },
                RecordBody::Accept {
                    item_id: "g-000002".into(),
                },
                RecordBody::Accept {
                    item_id: "nope".into(),
                },
            ])
            .unwrap_err();
        assert!(
            matches!(err, WorkspaceError::Refused(StateError::UnknownItem(_))),
            "{err}"
        );
        assert_eq!(ws.state().items().len(), 1);
        assert_eq!(ws.state().last_seq(), 1);
        assert_eq!(fs::metadata(ws.journal_path()).unwrap().len(), len);
        // And the batch works when valid: later records may name items added earlier in it.
        let done = ws
            .append_all(vec![
                RecordBody::ItemAdded {
                    item: Item::new("b", "negative", Source::Generated),
                },
                RecordBody::Verdict {
                    item_id: "g-000002".into(),
                    verdict: Verdict::pass("malformed"),
                },
            ])
            .unwrap();
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn undo_reports_what_it_undid() {
        let (_dir, mut ws) = new_ws();
        let id = ws
            .add_item(Item::new("a", "positive", Source::Generated))
            .unwrap();
        ws.reject(&id, Some("dull".into())).unwrap();
        let undone = ws.undo().unwrap();
        assert_eq!(
            (undone.item_id, undone.change),
            (id.clone(), Change::Undone("reject"))
        );
        assert_eq!(ws.redo().unwrap().change, Change::Redone("reject"));
        assert_eq!(
            ws.state().get(id.as_str()).unwrap().status(),
            Status::Rejected
        );
    }

    #[test]
    fn seeds_are_validated_and_rewritten() {
        let (dir, mut ws) = new_ws();
        let ex = |t: &str, l: &str| Example {
            text: t.into(),
            label: l.into(),
        };
        assert!(matches!(
            ws.add_seed(ex("x", "neutral")),
            Err(WorkspaceError::Seed { index: 8, .. })
        ));
        assert!(matches!(
            ws.add_seed(ex(" ", "positive")),
            Err(WorkspaceError::Seed { .. })
        ));
        ws.add_seed(ex("Loved it.", "positive")).unwrap();
        ws.edit_seed(0, ex("Hated it.", "negative")).unwrap();
        ws.delete_seed(1).unwrap();
        assert!(ws.delete_seed(99).is_err());
        drop(ws);
        let t = Task::load(&dir.path().join("ws")).unwrap();
        assert_eq!(t.seeds.len(), 8);
        assert_eq!(t.seeds[0].text, "Hated it.");
        assert_eq!(t.seeds[7].text, "Loved it.");
    }

    #[test]
    fn moving_inline_seeds_loses_and_doubles_nothing_wherever_a_crash_stops_it() {
        // task.toml written by hand with two seeds inline, the other six in seeds.jsonl; adding
        // a seed moves the inline ones out. `done` is how many of the move's three steps ran
        // before the crash.
        for done in 0..=3 {
            let (dir, ws) = new_ws();
            let root = dir.path().join("ws");
            let old = ws.seeds().to_vec();
            let mut inline = Task::demo();
            inline.seeds = old[..2].to_vec();
            fs::write(root.join(TASK_FILE), toml::to_string(&inline).unwrap()).unwrap();
            write_seeds(&root, &old[2..]).unwrap();
            drop(ws);
            let mut ws = Workspace::open(&root).unwrap();
            assert_eq!(ws.seeds(), old, "inline seeds come first");
            let mut new = old.clone();
            new[0].text = "Edited: a warm film.".into();
            new.push(Example {
                text: "Loved it.".into(),
                label: "positive".into(),
            });
            if done == 3 {
                ws.set_seeds(new.clone()).unwrap();
            } else {
                if done >= 1 {
                    write_seeds_to(&root.join(PENDING_SEEDS_FILE), &new).unwrap();
                }
                if done >= 2 {
                    drop_inline_seeds(&root).unwrap();
                }
            }
            drop(ws);
            // What any reader sees at the crash: the old list before the first step is done,
            // the new one after it.
            let want = if done == 0 { &old } else { &new };
            assert_eq!(
                &Task::load(&root).unwrap().seeds,
                want,
                "after {done} steps"
            );
            // Opening again finishes the move.
            let ws = Workspace::open(&root).unwrap();
            assert_eq!(ws.seeds(), want.as_slice(), "reopened after {done} steps");
            assert!(!root.join(PENDING_SEEDS_FILE).exists());
            if done > 0 {
                assert!(!has_inline_seeds(&root).unwrap(), "after {done} steps");
                let jsonl = fs::read_to_string(root.join(SEEDS_FILE)).unwrap();
                assert_eq!(jsonl.lines().count(), new.len());
            }
        }
    }

    #[test]
    fn run_dirs_are_unique_and_named_by_kind() {
        let (_dir, ws) = new_ws();
        let a = ws.new_run_dir("train").unwrap();
        let b = ws.new_run_dir("train").unwrap();
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name.len(), "20261121-101500-train".len(), "{name}");
        assert!(name.ends_with("-train"));
        assert!(ws.new_run_dir("../x").unwrap().starts_with(ws.runs_dir()));
    }

    #[test]
    fn snapshot_reads_a_workspace_that_is_open_elsewhere() {
        let (dir, mut ws) = new_ws();
        let id = ws
            .add_item(Item::new("a", "positive", Source::Generated))
            .unwrap();
        ws.accept(&id).unwrap();
        let snap = Snapshot::read(&dir.path().join("ws")).unwrap();
        assert_eq!(snap.state.totals().accepted, 1);
        assert!(
            Workspace::open(&dir.path().join("ws")).is_err(),
            "still locked"
        );
    }
}
