//! Dialogs drawn over a screen: a centred box that clears what is under it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

use crate::tui::theme::Theme;
use crate::tui::widgets::text_input::{EditorState, TextInput};

/// A rectangle of `width`×`height` cells centred in `area` (shrunk to fit).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    )
}

/// Clears `area` and draws a focused bordered box titled `title`; returns the inner area.
pub fn frame_popup(frame: &mut Frame, area: Rect, title: &str, theme: &Theme) -> Rect {
    frame.render_widget(Clear, area);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(true))
        .title(Line::styled(format!(" {title} "), theme.title()))
        .style(theme.base());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}

/// A yes/no question in a small box.
pub fn confirm(frame: &mut Frame, theme: &Theme, title: &str, text: &str) {
    let popup = centered(frame.area(), 60, 6);
    let inner = frame_popup(frame, popup, title, theme);
    frame.render_widget(
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: true })
            .style(theme.text()),
        inner,
    );
}

/// A text editor in a box, with a line saying what enter and esc do.
pub fn editor(frame: &mut Frame, theme: &Theme, title: &str, editor: &EditorState, hint: &str) {
    let area = frame.area();
    let width = area.width.saturating_sub(8).clamp(20, 90);
    let popup = centered(area, width, 9);
    let inner = frame_popup(frame, popup, title, theme);
    let [text_area, _, hint_area] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let mut state = editor.clone();
    frame.render_stateful_widget(
        TextInput {
            style: theme.text(),
            cursor_style: theme.accent(),
            placeholder: "type here".into(),
            placeholder_style: theme.dim(),
        },
        text_area,
        &mut state,
    );
    frame.render_widget(
        Paragraph::new(Line::styled(hint.to_string(), theme.dim())),
        hint_area,
    );
}

/// The editor of a form's setting `name`.
pub fn draw_field_editor(frame: &mut Frame, theme: &Theme, name: &str, value: &EditorState) {
    editor(
        frame,
        theme,
        &format!("New value: {name}"),
        value,
        "enter sets it (empty keeps it) · esc cancels",
    )
}
