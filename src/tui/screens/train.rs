//! Train: LoRA settings, start / stop, the train and validation loss as a chart, step time and
//! ETA, and the runs already on disk. Training itself lands with issue 6 (branch `train`);
//! until the engine has a train command this screen says so and shows no made-up numbers.
//!
//! **Wiring points.** Start: `Action::Start` here becomes
//! `Effect::Send(Command::Train { .. })` built from [`TrainSettings`] once the engine has that
//! command. Live metrics: `engine::Event::Train { metrics }` already reaches
//! [`TrainState::live`] through [`super::runs::parse_metric`]; the chart plots them as they come.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, BorderType, Chart, Dataset, GraphType, Paragraph, Row, Table, TableState, Wrap,
};

use super::generate::eta_text;
use super::runs::Curves;
use crate::data::workspace::Workspace;
use crate::engine::JobKind;
use crate::tui::action::Action;
use crate::tui::app::{App, Effect, Overlay};
use crate::tui::theme::Theme;
use crate::tui::widgets::form::{Field, Form, FormState};
use crate::tui::widgets::text::truncate;
use crate::tui::widgets::text_input::EditorState;

/// The settings a training run will take (the trainer's defaults, per the practitioners'
/// guide: rank 8 under 100 examples).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    pub rank: usize,
    pub alpha: f64,
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub val_fraction: f64,
    pub patience: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            rank: 8,
            alpha: 16.0,
            epochs: 20,
            lr: 2e-4,
            batch_size: 8,
            val_fraction: 0.25,
            patience: 3,
        }
    }
}

pub const FIELDS: [&str; 7] = [
    "LoRA rank",
    "alpha",
    "epochs",
    "learning rate",
    "batch size",
    "validation",
    "patience",
];

#[derive(Debug, Clone, Default)]
pub struct TrainState {
    pub settings: TrainSettings,
    pub form: FormState,
    /// The metrics of the training job running now (from `Event::Train`).
    pub live: Curves,
    /// The run on disk shown when nothing is training.
    pub run: usize,
}

/// What the screen says instead of a chart while training is not built.
pub const NOT_AVAILABLE: &str = "Training is not available yet — LoRA training lands with issue 6.";

impl TrainState {
    pub fn fields(&self) -> Vec<Field> {
        let s = &self.settings;
        let f = |i: usize, value: String, hint: &'static str| Field {
            name: FIELDS[i],
            value,
            hint,
            disabled: false,
        };
        vec![
            f(0, s.rank.to_string(), "8 under 100 examples, 16 up to 1000"),
            f(
                1,
                format!("{}", s.alpha),
                "scale α (the update is α/r · AB)",
            ),
            f(2, s.epochs.to_string(), "passes over the training examples"),
            f(3, format!("{:.0e}", s.lr), "peak learning rate"),
            f(4, s.batch_size.to_string(), "examples per step"),
            f(
                5,
                format!("{:.0}%", s.val_fraction * 100.0),
                "real examples held out for validation",
            ),
            f(
                6,
                s.patience.to_string(),
                "epochs without a lower validation loss before stopping",
            ),
        ]
    }

    pub fn adjust(&mut self, field: usize, up: bool) {
        let s = &mut self.settings;
        let step = |v: usize, by: usize, min: usize| {
            if up {
                v.saturating_add(by)
            } else {
                v.saturating_sub(by).max(min)
            }
        };
        match field {
            0 => s.rank = if up { s.rank * 2 } else { (s.rank / 2).max(1) },
            1 => {
                s.alpha = if up {
                    s.alpha * 2.0
                } else {
                    (s.alpha / 2.0).max(1.0)
                }
            }
            2 => s.epochs = step(s.epochs, 1, 1),
            3 => s.lr = if up { s.lr * 2.0 } else { s.lr / 2.0 },
            4 => s.batch_size = step(s.batch_size, 1, 1),
            5 => {
                let v = s.val_fraction + if up { 0.05 } else { -0.05 };
                s.val_fraction = ((v / 0.05).round() * 0.05).clamp(0.0, 0.5);
            }
            6 => s.patience = step(s.patience, 1, 0),
            _ => {}
        }
    }

    pub fn set_field(&mut self, field: usize, text: &str) -> Result<(), String> {
        let t = text.trim().trim_end_matches('%');
        if t.is_empty() {
            return Ok(());
        }
        let name = FIELDS.get(field).copied().unwrap_or("setting");
        let int = |min: usize| {
            t.parse::<usize>()
                .ok()
                .filter(|v| *v >= min)
                .ok_or_else(|| format!("{name}: a whole number ≥ {min}, not `{t}`"))
        };
        let pos = || {
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("{name}: a positive number, not `{t}`"))
        };
        let s = &mut self.settings;
        match field {
            0 => s.rank = int(1)?,
            1 => s.alpha = pos()?,
            2 => s.epochs = int(1)?,
            3 => s.lr = pos()?,
            4 => s.batch_size = int(1)?,
            5 => {
                let v = pos()?;
                s.val_fraction = if v >= 1.0 { v / 100.0 } else { v };
                if s.val_fraction > 0.9 {
                    return Err("validation: at most 90%".into());
                }
            }
            6 => s.patience = int(0)?,
            _ => {}
        }
        Ok(())
    }
}

impl App {
    pub(crate) fn train_action(&mut self, action: Action) {
        match action {
            Action::Up => self.train.form.up(),
            Action::Down => self.train.form.down(FIELDS.len()),
            Action::Decrease | Action::Increase => {
                let f = self.train.form.selected;
                self.train.adjust(f, matches!(action, Action::Increase));
            }
            Action::EditField => {
                self.overlay = Some(Overlay::FieldEditor {
                    screen: super::Screen::Train,
                    field: self.train.form.selected,
                    editor: EditorState::default(),
                })
            }
            Action::PageUp => self.train.run = self.train.run.saturating_sub(1),
            Action::PageDown => {
                self.train.run = (self.train.run + 1).min(self.runs.len().saturating_sub(1))
            }
            // Wiring point: send Command::Train once the engine has it.
            Action::Start => self.warn(NOT_AVAILABLE),
            Action::Stop => match &mut self.job {
                Some(job) if job.kind == JobKind::Train => {
                    job.stopping = true;
                    self.effect(Effect::Cancel);
                }
                _ => self.info("no training is running"),
            },
            Action::Refresh => self.refresh_runs(),
            _ => {}
        }
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, _ws: &Workspace) {
    let theme = &app.theme;
    let fields = app.train.fields();
    let form_w = if area.width >= 100 { 34 } else { 28 };
    let runs_h = if area.height >= 20 {
        (app.runs.len() as u16 + 3).clamp(4, 8)
    } else {
        0
    };
    let [top, runs_area] =
        Layout::vertical([Constraint::Min(8), Constraint::Length(runs_h)]).areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Length(form_w), Constraint::Min(20)]).areas(top);

    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(true))
        .title(Line::styled(" LoRA settings ", theme.title()));
    let inner = block.inner(left);
    frame.render_widget(block, left);
    let mut fs = app.train.form;
    frame.render_stateful_widget(
        Form {
            fields: &fields,
            style: theme.text(),
            selected_style: theme.selected(),
            dim_style: theme.dim(),
            focused: app.overlay.is_none(),
        },
        inner,
        &mut fs,
    );

    let training = app.job.as_ref().is_some_and(|j| j.kind == JobKind::Train);
    let (curves, source) = if training || !app.train.live.is_empty() {
        (Some(&app.train.live), "live".to_string())
    } else {
        match app.runs.get(app.train.run) {
            Some(r) if !r.curves.is_empty() => (Some(&r.curves), format!("run {}", r.name)),
            _ => (None, String::new()),
        }
    };
    let [chart_area, info_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(1)]).areas(right);
    match curves {
        Some(c) => {
            draw_chart(frame, chart_area, c, &source, theme);
            let mut parts = vec![];
            if let Some(s) = c.last_step {
                parts.push(match c.total_steps {
                    Some(t) => format!("step {s}/{t}"),
                    None => format!("step {s}"),
                });
            }
            if let Some(t) = c.step_seconds {
                parts.push(format!("{t:.2} s/step"));
            }
            if training {
                parts.push(eta_text(c.eta_seconds()));
            }
            if let Some(a) = c.val_accuracy {
                parts.push(format!("val accuracy {:.1}%", a * 100.0));
            }
            if let Some(f) = &c.finished {
                parts.push(f.replace('_', " "));
            }
            frame.render_widget(
                Paragraph::new(Line::styled(parts.join(" · "), theme.dim())),
                info_area,
            );
        }
        None => {
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(false))
                .title(Line::styled(" Loss (train / validation) ", theme.title()));
            let lines = vec![
                Line::raw(""),
                Line::styled(NOT_AVAILABLE, theme.warn()),
                Line::raw(""),
                Line::styled(
                    "This chart will plot the train and validation loss live, with the step \
                     time and ETA. Runs found in the workspace's runs/ folder are plotted \
                     from their metrics.jsonl.",
                    theme.dim(),
                ),
                Line::raw(""),
                Line::styled(
                    format!("runs folder: {}/runs", app.workspace_label),
                    theme.dim(),
                ),
            ];
            frame.render_widget(
                Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
                chart_area,
            );
        }
    }
    if runs_h > 0 {
        draw_runs(frame, runs_area, app, theme);
    }
}

fn bounds(points: &[&[(f64, f64)]]) -> ([f64; 2], [f64; 2]) {
    let all = points.iter().flat_map(|p| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ([0.0, 1.0], [0.0, 1.0]);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    ([x0, x1], [(y0 - pad).max(0.0), y1 + pad])
}

fn draw_chart(frame: &mut Frame, area: Rect, c: &Curves, source: &str, theme: &Theme) {
    let (xb, yb) = bounds(&[&c.train, &c.val]);
    let datasets = vec![
        Dataset::default()
            .name("train")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(theme.train_line))
            .data(&c.train),
        Dataset::default()
            .name("validation")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(theme.val_line))
            .data(&c.val),
    ];
    let label = |v: f64| Span::styled(format!("{v:.2}"), theme.dim());
    let chart = Chart::new(datasets)
        .block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(false))
                .title(Line::styled(format!(" Loss · {source} "), theme.title())),
        )
        .x_axis(
            Axis::default()
                .title(Span::styled("step", theme.dim()))
                .bounds(xb)
                .labels([
                    Span::styled(format!("{:.0}", xb[0]), theme.dim()),
                    Span::styled(format!("{:.0}", xb[1]), theme.dim()),
                ])
                .style(theme.dim()),
        )
        .y_axis(
            Axis::default()
                .bounds(yb)
                .labels([label(yb[0]), label((yb[0] + yb[1]) / 2.0), label(yb[1])])
                .style(theme.dim()),
        )
        .style(theme.text());
    frame.render_widget(chart, area);
}

fn draw_runs(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let rows: Vec<Row> = app
        .runs
        .iter()
        .map(|r| {
            let c = &r.curves;
            let best_val = c
                .val
                .iter()
                .map(|p| p.1)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
            Row::new(vec![
                truncate(&r.name, 28),
                c.last_step
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "–".into()),
                best_val
                    .map(|v| format!("{v:.3}"))
                    .unwrap_or_else(|| "–".into()),
                r.eval
                    .as_ref()
                    .and_then(|e| e.accuracy)
                    .map(|a| format!("{:.1}%", a * 100.0))
                    .unwrap_or_else(|| "–".into()),
                r.metrics_error.clone().unwrap_or_default(),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Length(28),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Min(0),
        ],
    )
    .header(Row::new(["run", "steps", "best val", "accuracy", ""]).style(theme.dim()))
    .row_highlight_style(theme.selected())
    .block(
        Block::bordered()
            .border_type(BorderType::Rounded)
            .border_style(theme.border(false))
            .title(Line::styled(
                format!(
                    " Runs on disk ({}) · [ ] choose · r reloads ",
                    app.runs.len()
                ),
                theme.title(),
            )),
    )
    .style(theme.text());
    let mut state =
        TableState::default().with_selected((!empty).then_some(app.train.run.min(app.runs.len())));
    frame.render_stateful_widget(table, area, &mut state);
    if empty {
        let inner = area.inner(ratatui::layout::Margin::new(2, 2));
        frame.render_widget(
            Paragraph::new(Line::styled("no run folders yet", theme.dim())),
            inner,
        );
    }
}
