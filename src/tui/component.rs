//! The shape of a screen (ratatui's component template, gitui's components): it owns its state
//! and its dialogs, answers the actions routed to it by saying what the App must do ([`Out`]),
//! hears the store's answer to the writes it asked for, and draws from `&self` and the read
//! model alone. The App routes; it keeps nothing that belongs to one screen.

use std::collections::{HashMap, VecDeque};

use ratatui::Frame;
use ratatui::layout::Rect;

use super::action::Action;
use super::app::{JobView, MessageKind, ModelStatus, Then};
use super::keymap::Context;
use super::read_model::ReadModel;
use super::ready_queue::ReadyQueue;
use super::screens::runs::RunInfo;
use super::theme::Theme;
use crate::data::item::ItemId;
use crate::data::state::{Applied, ItemState, Status};
use crate::data::test_set::TestSetChoice;
use crate::engine::{Command, Event, JobId, JobKind, Write, WriteError, WriteId};

/// Why an item is not ready for review yet: its label check is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The engine said so for this job: released by `LabelChecked` or the job's end.
    Job(JobId),
    /// The app asked for a recheck the engine has not started: released when a recheck ends.
    Asked,
}

/// What every screen may read beside its own state: the App's, shared by all screens.
#[derive(Clone, Copy)]
pub struct Shared<'a> {
    pub ws: &'a ReadModel,
    /// The run folders in `<workspace>/runs`.
    pub runs: &'a [RunInfo],
    pub job: Option<&'a JobView>,
    /// A job asked for whose start has not come yet.
    pub queued: Option<JobKind>,
    pub model: &'a ModelStatus,
    /// How the workspace is named in the status bar.
    pub workspace_label: &'a str,
    /// Items whose label check is running (the engine said so, or a recheck was asked for).
    pub held: &'a HashMap<ItemId, Hold>,
    /// Writes handed to the store and not answered yet, with what their answer does.
    pub in_flight: &'a VecDeque<(WriteId, Then)>,
    /// The engine's log lines, newest last.
    pub log: &'a [String],
    /// The word n-grams the near-duplicate filter compares (the Generate form's filters), by
    /// which Review shows the nearest seed.
    pub shingle_words: usize,
}

impl<'a> Shared<'a> {
    /// Whether a write about `id` awaits its answer.
    pub fn deciding(&self, id: &ItemId) -> bool {
        self.in_flight.iter().any(|(_, t)| t.items().contains(id))
    }

    /// Whether a pending item can be shown for review: its filters have all reported and no
    /// decision about it is on its way to the store.
    pub fn is_ready(&self, it: &ItemState) -> bool {
        it.status() == Status::Pending
            && !self.held.contains_key(it.id())
            && !self.deciding(it.id())
    }

    /// The items ready for review: the queue less those [`Self::is_ready`] holds back.
    pub fn ready_queue(&self) -> ReadyQueue<'a> {
        let deciding = self.in_flight.iter().flat_map(|(_, t)| t.items());
        ReadyQueue::new(self.ws, self.held.keys().chain(deciding))
    }

    /// Whether `id` waits for its label check.
    pub fn is_held(&self, id: &ItemId) -> bool {
        self.held.contains_key(id)
    }

    /// Whether `id` waits for a check asked for again (after an edit, a relabel, a restart).
    pub fn is_rechecking(&self, id: &ItemId) -> bool {
        match self.held.get(id) {
            Some(Hold::Asked) => true,
            Some(Hold::Job(j)) => self
                .job
                .is_some_and(|v| v.id == *j && v.kind == JobKind::Recheck),
            None => false,
        }
    }

    /// Whether any item waits for its label check.
    pub fn checking_labels(&self) -> bool {
        !self.held.is_empty()
    }

    /// Why a job cannot start now (one running or waiting, or the model failed), as the message
    /// to show instead of starting it; none when it can.
    pub fn refuse_start(&self, what: &str) -> Option<Out> {
        if let Some(job) = self.job {
            let text = format!("a {} job is running; s stops it", job.kind.name());
            return Some(Out::Say(MessageKind::Warn, text));
        }
        if self.queued.is_some() {
            let text = "a job is already waiting to start".to_string();
            return Some(Out::Say(MessageKind::Warn, text));
        }
        if let ModelStatus::Failed(e) = self.model {
            let text = format!("cannot {what}: the model did not load: {e}");
            return Some(Out::Say(MessageKind::Error, text));
        }
        None
    }
}

/// What a screen asks of the App after an action or an answer.
#[derive(Debug)]
pub enum Out {
    /// Ask the store for `write`; its answer comes back to the screen with `then`. Nothing
    /// shows as done before.
    Write(Write, Then),
    /// A line for the message bar.
    Say(MessageKind, String),
    /// Start a job (the screen asked [`Shared::refuse_start`] first).
    Start(JobKind, Command),
    /// Stop the running job.
    Cancel,
    /// Pause (`true`) or resume the running job.
    Pause(bool),
    /// How far the running job is, as the screen read it from the job's own events.
    Progress {
        done: Option<usize>,
        total: Option<usize>,
        eta_seconds: Option<f64>,
    },
    /// Read the run folders again.
    RefreshRuns,
    /// The run folders as the screen just read them (quietly: no message).
    Runs(Vec<RunInfo>),
    /// Run the filters again on items whose text or label changed; they are held back from
    /// review until the engine reports.
    Recheck(Vec<ItemId>),
    /// Remember the test set in the workspace.
    SaveTestSet(TestSetChoice),
}

impl Out {
    pub fn ok(text: impl Into<String>) -> Out {
        Out::Say(MessageKind::Ok, text.into())
    }

    pub fn info(text: impl Into<String>) -> Out {
        Out::Say(MessageKind::Info, text.into())
    }

    pub fn warn(text: impl Into<String>) -> Out {
        Out::Say(MessageKind::Warn, text.into())
    }

    pub fn error(text: impl Into<String>) -> Out {
        Out::Say(MessageKind::Error, text.into())
    }

    /// A refused write, for the message bar: refusals (nothing to do) are warnings, failures to
    /// write are errors that say nothing was saved.
    pub fn refused(what: &str, e: &WriteError) -> Out {
        if e.refused {
            Out::Say(MessageKind::Warn, format!("{what}: {}", e.message))
        } else {
            Out::Say(
                MessageKind::Error,
                format!("{what} failed, nothing was saved: {}", e.message),
            )
        }
    }
}

pub trait Component {
    /// The keymap section of the dialog open on this screen, if one is: it takes every key.
    fn dialog(&self) -> Option<Context>;

    /// An action of this screen's keymap section, or of its open dialog's.
    fn handle(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>);

    /// The store's answer to a write this screen asked for with `then` (a screen that asks
    /// for none has nothing to hear).
    fn answered(
        &mut self,
        _then: Then,
        _result: Result<&[Applied], &WriteError>,
        _shared: &Shared,
        _out: &mut Vec<Out>,
    ) {
    }

    /// An event of the engine's, after the App has applied it to what it owns (the job, the
    /// read model, the runs), so `shared` is already up to date. Every component hears every
    /// event, shown or not.
    fn on_event(&mut self, _event: &Event, _shared: &Shared, _out: &mut Vec<Out>) {}

    /// A bracketed paste; `false` when no editor of this screen is open to take it.
    fn paste(&mut self, _text: &str) -> bool {
        false
    }

    fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, shared: &Shared);

    /// The open dialog, over the whole frame.
    fn draw_dialog(&self, _frame: &mut Frame, _theme: &Theme, _shared: &Shared) {}
}
