//! The whole frame, drawn from the state and nothing else: tabs, the screen, the message line,
//! the status bar, and the open dialog on top. The workspace is the app's read model: a draw
//! takes no lock and never waits on the engine.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::app::{App, Overlay};
use super::screens::Screen;
use super::status_bar;
use super::widgets::popup::confirm;

/// Below this the screens cannot be laid out; a note asks for a larger terminal.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let theme = &app.theme;
    frame.render_widget(Block::default().style(theme.base()), area);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        frame.render_widget(
            Paragraph::new(format!(
                "seedforge needs at least {MIN_WIDTH}×{MIN_HEIGHT} cells (this is {}×{}). \
                 q quits.",
                area.width, area.height
            ))
            .wrap(Wrap { trim: true })
            .style(theme.text()),
            area,
        );
        return;
    }
    let [tabs, body, message, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let (ready, rejected) = app.tab_counts();
    let mut spans = vec![];
    if area.width >= 90 {
        spans.push(Span::styled(" seedforge ", theme.title()));
    }
    for s in Screen::ALL {
        let count = match s {
            Screen::Review => format!(" ({ready})"),
            Screen::Rejected => format!(" ({rejected})"),
            _ => String::new(),
        };
        let text = format!(" {} {}{count} ", s.index() + 1, s.title());
        if s == app.screen {
            spans.push(Span::styled(
                text,
                theme.selected().fg(theme.tab_active).bg(theme.selection_bg),
            ));
        } else {
            spans.push(Span::styled(text, theme.dim()));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), tabs);
    let shared = app.shared();
    app.component().draw(frame, body, theme, &shared);
    status_bar::draw_message(frame, message, app);
    status_bar::draw_status(frame, status, app);
    app.component().draw_dialog(frame, theme, &shared);

    match &app.overlay {
        None => {}
        Some(Overlay::Help { scroll }) => super::help::draw(frame, app, *scroll),
        Some(Overlay::ConfirmQuit) => confirm(
            frame,
            theme,
            "Quit?",
            "A job is running. Quit anyway? What it wrote so far is kept. (y/n)",
        ),
    }
}
