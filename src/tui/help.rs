//! The `?` overlay: every key the workbench answers, generated from the keymap table; it opens
//! at the keys of the screen it was asked from.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::App;
use super::keymap::{Context, bindings_of, keys_label};
use super::widgets::popup::{centered, frame_popup};

/// The help text: one section per context, `keys  what they do`.
pub fn lines(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let mut out = Vec::new();
    for context in Context::ALL {
        if !out.is_empty() {
            out.push(Line::raw(""));
        }
        out.push(Line::styled(context.title().to_string(), theme.title()));
        for b in bindings_of(context) {
            out.push(Line::from(vec![
                Span::styled(format!("  {:<18}", keys_label(b)), theme.accent()),
                Span::styled(b.help.to_string(), theme.text()),
            ]));
        }
    }
    out
}

/// The line at which `context`'s section of [`lines`] starts: one title and its bindings per
/// section before it, with a blank line between sections.
pub fn start_of(context: Context) -> u16 {
    let before: usize = Context::ALL
        .iter()
        .take_while(|c| **c != context)
        .map(|c| bindings_of(*c).count() + 2)
        .sum();
    before as u16
}

/// The furthest the help scrolls in a terminal `height` rows tall: its last line at the bottom.
pub fn max_scroll(height: u16) -> u16 {
    let lines: usize = Context::ALL
        .iter()
        .map(|c| bindings_of(*c).count() + 2)
        .sum();
    // The popup leaves a row above and below; its borders and the hint take three more.
    (lines.saturating_sub(1) as u16).saturating_sub(height.saturating_sub(5))
}

pub fn draw(frame: &mut Frame, app: &App, scroll: u16) {
    let area = frame.area();
    let popup = centered(area, 76, area.height.saturating_sub(2));
    let inner = frame_popup(frame, popup, "Keys", &app.theme);
    let [body, hint] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let max = max_scroll(area.height);
    frame.render_widget(
        Paragraph::new(lines(app)).scroll((scroll.min(max), 0)),
        body,
    );
    frame.render_widget(
        Paragraph::new(Line::styled(
            "↑/↓ scroll · esc or ? closes",
            app.theme.dim(),
        )),
        hint,
    );
}
