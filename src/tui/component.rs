//! The shape of a screen (ratatui's component template, gitui's components): it owns its state
//! and its dialogs, answers the actions routed to it by saying what the App must do ([`Out`]),
//! hears the store's answer to the writes it asked for, and draws from `&self` and the read
//! model alone. The App routes; it keeps nothing that belongs to one screen.

use ratatui::Frame;
use ratatui::layout::Rect;

use super::action::Action;
use super::app::{MessageKind, Then};
use super::keymap::Context;
use super::read_model::ReadModel;
use super::theme::Theme;
use crate::data::state::Applied;
use crate::engine::{Write, WriteError};

/// What a screen asks of the App after an action or an answer.
#[derive(Debug)]
pub enum Out {
    /// Ask the store for `write`; its answer comes back to the screen with `then`. Nothing
    /// shows as done before.
    Write(Write, Then),
    /// A line for the message bar.
    Say(MessageKind, String),
}

impl Out {
    pub fn ok(text: impl Into<String>) -> Out {
        Out::Say(MessageKind::Ok, text.into())
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
    fn handle(&mut self, action: Action, ws: &ReadModel, out: &mut Vec<Out>);

    /// The store's answer to a write this screen asked for with `then`.
    fn answered(
        &mut self,
        then: Then,
        result: Result<&[Applied], &WriteError>,
        ws: &ReadModel,
        out: &mut Vec<Out>,
    );

    /// A bracketed paste; `false` when no editor of this screen is open to take it.
    fn paste(&mut self, _text: &str) -> bool {
        false
    }

    fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, ws: &ReadModel);

    /// The open dialog, over the whole frame.
    fn draw_dialog(&self, _frame: &mut Frame, _theme: &Theme, _ws: &ReadModel) {}
}
