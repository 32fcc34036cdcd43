//! The workspace's one writer for the workbench: decisions and seed edits arrive as [`Write`]
//! requests, each is one journal append (one fsync) however many records it holds, and every
//! durable change goes out as an event ([`Event::Journal`], [`Event::Seeds`]) that the UI's
//! read model applies. The UI never locks the workspace, so a frame never waits on a job.

use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;

use super::Sink;
use super::event::{Event, WriteError, WriteId};
use crate::data::record::RecordBody;
use crate::data::task::Example;
use crate::data::workspace::{Workspace, WorkspaceError, Written};

/// A change the UI asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Decisions (accept, reject, edit, relabel, rescue, undo, redo): all or none, one append.
    Records(Vec<RecordBody>),
    AddSeed(Example),
    EditSeed(usize, Example),
    DeleteSeed(usize),
}

/// The workspace as the engine holds it.
#[derive(Clone)]
pub struct Store {
    ws: Arc<Mutex<Workspace>>,
    events: Sink,
}

/// Locks the workspace; a panic elsewhere while it was held does not make it unreadable.
pub fn lock(ws: &Mutex<Workspace>) -> MutexGuard<'_, Workspace> {
    ws.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Takes `ws` over: from now on every durable change to it is reported on `events`.
    pub fn new(ws: Arc<Mutex<Workspace>>, events: Sink) -> Store {
        let sink = events.clone();
        lock(&ws).watch(Box::new(move |written| {
            sink.send(match written {
                Written::Records(records) => Event::Journal(records),
                Written::Seeds(seeds) => Event::Seeds(seeds),
            })
        }));
        Store { ws, events }
    }

    pub fn workspace(&self) -> &Arc<Mutex<Workspace>> {
        &self.ws
    }

    /// Carries out `write` and answers with [`Event::Written`] (after the changes' own events).
    pub fn write(&self, request: WriteId, write: Write) {
        let result = {
            let mut ws = lock(&self.ws);
            match write {
                Write::Records(bodies) => ws
                    .append_all(bodies)
                    .map(|done| done.into_iter().map(|(_, applied)| applied).collect()),
                Write::AddSeed(seed) => ws.add_seed(seed).map(|()| Vec::new()),
                Write::EditSeed(i, seed) => ws.edit_seed(i, seed).map(|()| Vec::new()),
                Write::DeleteSeed(i) => ws.delete_seed(i).map(|()| Vec::new()),
            }
        };
        self.events.send(Event::Written {
            request,
            result: result.map_err(|e| WriteError {
                refused: matches!(e, WorkspaceError::Refused(_)),
                message: e.to_string(),
            }),
        });
    }

    /// Serves write requests on a thread of its own until the sender is dropped.
    pub fn spawn(self) -> (mpsc::Sender<(WriteId, Write)>, Option<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel::<(WriteId, Write)>();
        let thread = std::thread::Builder::new()
            .name("seedforge-store".into())
            .spawn(move || {
                while let Ok((request, write)) = rx.recv() {
                    self.write(request, write);
                }
            })
            .ok();
        (tx, thread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::item::{Item, Source};
    use crate::data::task::Task;

    #[test]
    fn a_write_of_many_decisions_is_one_journal_append_reported_before_its_answer() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ws = Workspace::create(&tmp.path().join("ws"), &Task::demo(), &[]).unwrap();
        let ids = ws
            .add_items(
                (0..3)
                    .map(|i| Item::new(format!("text {i}"), "positive", Source::Generated))
                    .collect(),
            )
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let store = Store::new(Arc::new(Mutex::new(ws)), Sink::new(tx));
        let bodies = ids
            .iter()
            .map(|id| RecordBody::Accept {
                item_id: id.clone(),
            })
            .collect();
        store.write(7, Write::Records(bodies));
        // A refused write changes nothing and says why.
        store.write(8, Write::Records(vec![RecordBody::Redo {}]));
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        match events.as_slice() {
            [
                Event::Journal(records),
                Event::Written {
                    request: 7,
                    result: Ok(applied),
                },
                Event::Written {
                    request: 8,
                    result: Err(refusal),
                },
            ] => {
                assert_eq!(records.len(), 3);
                assert_eq!(applied.len(), 3);
                assert!(refusal.refused, "{refusal:?}");
            }
            other => panic!("{other:?}"),
        }
        let text = std::fs::read_to_string(tmp.path().join("ws/journal.jsonl")).unwrap();
        assert_eq!(text.lines().filter(|l| l.contains("\"accept\"")).count(), 3);
    }
}
