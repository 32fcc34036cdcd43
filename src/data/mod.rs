//! Tasks, dataset import, the workspace on disk, export. Pure Rust + serde; knows no model.
//!
//! - [`task`]: labels, verbalizers, description, seeds (`task.toml`).
//! - [`item`]: the candidate examples and the filters' verdicts: the pipeline's contract.
//! - [`record`]: one journal line; [`state`]: their replay (pure logic, undo/redo rules);
//!   [`journal`]: the append-only file; [`lock`]: one writer per workspace;
//!   [`workspace`]: all of it behind one type.
//! - [`import`]: TSV/CSV/JSONL/TREC reading and the seeded k-per-class sample.
//! - [`export`]: seeds + accepted items (and rejected ones) as JSONL or CSV.
//! - [`test_set`]: the test file last evaluated on, offered again.

pub mod atomic;
pub mod export;
pub mod import;
pub mod item;
pub mod journal;
pub mod lock;
pub mod record;
pub mod state;
pub mod task;
pub mod test_set;
pub mod time;
pub mod workspace;

pub use item::{Item, ItemId, Source, Verdict};
pub use record::{JOURNAL_FORMAT_VERSION, Record, RecordBody, Seq};
pub use state::{Applied, Change, Decision, ItemState, State, StateError, Status, StatusCounts};
pub use workspace::{OpenWarning, Snapshot, Workspace, WorkspaceError};
