//! The editor of one setting of a form: a dialog a form screen owns while a value is typed.

use ratatui::Frame;

use super::popup::draw_field_editor;
use super::text_input::EditorState;
use crate::tui::action::Action;
use crate::tui::app::edit_text;
use crate::tui::theme::Theme;

#[derive(Debug, Clone)]
pub struct FieldEditor {
    /// The form's row being typed.
    pub field: usize,
    pub editor: EditorState,
}

/// What an action did to the editor.
pub enum Edited {
    /// Still typing.
    Open(FieldEditor),
    Cancelled,
    /// Enter: the value to set (the caller reopens the editor when it refuses it).
    Submitted(FieldEditor),
}

impl FieldEditor {
    pub fn new(field: usize, text: &str) -> FieldEditor {
        FieldEditor {
            field,
            editor: EditorState::new(text),
        }
    }

    pub fn handle(mut self, action: &Action) -> Edited {
        match edit_text(&mut self.editor, action) {
            None => Edited::Open(self),
            Some(false) => Edited::Cancelled,
            Some(true) => Edited::Submitted(self),
        }
    }

    /// A setting is one line: a paste's line breaks become spaces.
    pub fn paste(&mut self, text: &str) {
        self.editor.paste(text, false);
    }

    /// Titled with the form's name for the row (`names`: the form's rows in order).
    pub fn draw(&self, frame: &mut Frame, theme: &Theme, names: &[&str]) {
        let name = names.get(self.field).copied().unwrap_or("value");
        draw_field_editor(frame, theme, name, &self.editor);
    }
}
