//! The shape of a screen (ratatui's component template, gitui's components): it owns its state
//! and its dialogs, answers the actions routed to it by saying what the App must do ([`Out`]),
//! hears the store's answer to the writes it asked for, and draws from `&self` and the read
//! model alone. The App routes; it keeps nothing that belongs to one screen.

use ratatui::Frame;
use ratatui::layout::Rect;

use super::action::Action;
use super::app::{JobView, MessageKind, ModelStatus, Then};
use super::keymap::Context;
use super::read_model::ReadModel;
use super::screens::runs::RunInfo;
use super::theme::Theme;
use crate::data::state::Applied;
use crate::data::test_set::TestSetChoice;
use crate::engine::{Command, Event, JobKind, Write, WriteError};

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
}

impl Shared<'_> {
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
