//! The two bottom lines: the message line (the last result or error, else the keys of the
//! screen) and the status bar (model, device, job progress, workspace).

use std::mem::discriminant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::action::Action;
use super::app::{App, MessageKind, ModelStatus};
use super::keymap::{BINDINGS, Context};
use super::screens::Screen;
use super::screens::generate::eta_text;
use super::widgets::text::{one_line, truncate, width};

/// The actions the hint line names for a screen, with their short names.
fn hints(screen: Screen) -> Vec<(Action, &'static str)> {
    match screen {
        Screen::Seeds => vec![
            (Action::AddSeed, "add"),
            (Action::EditSeed, "edit"),
            (Action::DeleteSeed, "delete"),
        ],
        Screen::Generate => vec![
            (Action::Start, "start"),
            (Action::Stop, "stop"),
            (Action::Pause, "pause"),
            (Action::Increase, "change"),
            (Action::EditField, "type value"),
            (Action::ToggleTemplate, "template"),
        ],
        Screen::Review => vec![
            (Action::Accept, "accept"),
            (Action::Reject, "reject"),
            (Action::Skip, "skip"),
            (Action::Undo, "undo"),
            (Action::EditText, "edit"),
            (Action::Relabel, "relabel"),
            (Action::Bulk, "bulk"),
        ],
        Screen::Rejected => vec![
            (Action::Open, "open"),
            (Action::Rescue, "rescue"),
            (Action::CycleReasonFilter, "reason"),
            (Action::CycleClassFilter, "class"),
        ],
        Screen::Train => vec![
            (Action::Start, "start"),
            (Action::Pause, "pause"),
            (Action::Stop, "stop"),
            (Action::Increase, "change"),
            (Action::PageDown, "next run"),
            (Action::Refresh, "reload"),
        ],
        Screen::Evaluate => vec![
            (Action::Start, "start"),
            (Action::Stop, "stop"),
            (Action::SetField(0), "test file"),
            (Action::Refresh, "reload"),
        ],
    }
}

/// The first key bound to `action` in `context` (or everywhere), as the help names it.
fn key_for(context: Context, action: &Action) -> Option<String> {
    [context, Context::Global].iter().find_map(|c| {
        BINDINGS
            .iter()
            .find(|b| b.context == *c && discriminant(&b.action) == discriminant(action))
            .and_then(|b| b.keys.first())
            .map(|k| k.label())
    })
}

pub fn draw_message(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let w = area.width as usize;
    let line = match &app.message {
        Some(m) => {
            let style = match m.kind {
                MessageKind::Info => theme.info(),
                MessageKind::Ok => theme.ok(),
                MessageKind::Warn => theme.warn(),
                MessageKind::Error => theme.error(),
            };
            Line::styled(truncate(&format!(" {}", m.text), w), style)
        }
        None => {
            let context = Context::of_screen(app.screen);
            let mut spans = vec![Span::raw(" ")];
            let mut used = 1;
            let mut items: Vec<(String, &str)> = hints(app.screen)
                .iter()
                .filter_map(|(a, name)| key_for(context, a).map(|k| (k, *name)))
                .collect();
            items.push(("?".into(), "all keys"));
            items.push(("q".into(), "quit"));
            for (key, name) in items {
                let piece = width(&key) + width(name) + 3;
                if used + piece > w {
                    break;
                }
                spans.push(Span::styled(key, theme.accent()));
                spans.push(Span::styled(format!(" {name}   "), theme.dim()));
                used += piece;
            }
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// What the status bar says about the model.
pub fn model_text(model: &ModelStatus) -> String {
    match model {
        ModelStatus::Starting => "model: starting…".into(),
        ModelStatus::Fetching(what) => format!("model: fetching ({what})"),
        ModelStatus::Loading { device, .. } => format!("model: loading on {device}…"),
        ModelStatus::Ready {
            name,
            device,
            seconds,
        } => format!("{name} · {device} · loaded in {seconds:.1} s"),
        // The reason stays in view: the message line is taken by whatever happens next.
        ModelStatus::Failed(e) => format!("model failed to load: {}", one_line(e)),
    }
}

pub fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let bar = theme.bar();
    let job = match (&app.job, &app.queued) {
        (Some(j), _) => {
            let mut s = format!("{} {}/{}", j.kind.name(), j.done, j.total);
            if j.tokens_per_second > 0.0 {
                s.push_str(&format!(
                    " · {:.1} {}",
                    j.tokens_per_second,
                    j.kind.rate_unit()
                ));
            }
            if j.eta_seconds.is_some() {
                s.push_str(&format!(" · {}", eta_text(j.eta_seconds)));
            }
            if j.stopping {
                s.push_str(" · stopping");
            } else if j.paused {
                s.push_str(" · paused");
            }
            s
        }
        (None, Some(kind)) => format!("{} queued", kind.name()),
        (None, None) => "idle".into(),
    };
    let ws = format!(" │ ws: {} ", app.workspace_label);
    let right_w = (width(&ws) as u16).min(area.width / 3);
    let [left, right] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(right_w)]).areas(area);
    let model_style = match app.model {
        ModelStatus::Failed(_) => theme.error().bg(theme.bar_bg),
        ModelStatus::Ready { .. } => bar,
        _ => theme.info().bg(theme.bar_bg),
    };
    let job_w = width(&job) + 3;
    let model = truncate(
        &model_text(&app.model),
        (left.width as usize).saturating_sub(job_w + 1),
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" ", bar),
            Span::styled(model, model_style),
            Span::styled(" │ ", bar),
            Span::styled(job, bar),
        ]))
        .style(bar),
        left,
    );
    frame.render_widget(
        Paragraph::new(Line::styled(truncate(&ws, right_w as usize), bar))
            .style(bar)
            .right_aligned(),
        right,
    );
}
