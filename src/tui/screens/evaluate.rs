//! Evaluate: the comparison the method calls for (in-context learning with the seeds, LoRA on
//! the seeds alone, LoRA on seeds + accepted items), a results table per class and a confusion
//! matrix. Evaluation lands with issue 8: until then the comparison says "not available yet",
//! and only results already on disk (`runs/*/eval.json`) are shown.
//!
//! **Wiring point.** An evaluation job's result is an [`crate::eval::metrics::Metrics`]; written
//! to `runs/<id>/eval.json` (or sent in an event) it is read by [`super::runs::parse_eval`] and
//! drawn here as it is.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::runs::{EvalInfo, RunInfo};
use crate::data::workspace::Workspace;
use crate::tui::action::Action;
use crate::tui::app::{App, label_index};
use crate::tui::theme::Theme;
use crate::tui::widgets::text::truncate;

#[derive(Debug, Clone, Default)]
pub struct EvaluateState {
    /// Selected among the runs that have results.
    pub selected: usize,
}

pub const NOT_AVAILABLE: &str = "Evaluation is not available yet — it lands with issue 8 (ICL vs LoRA on seeds vs LoRA on seeds + accepted).";

/// The comparison rows the method asks for.
pub const COMPARISON: [&str; 3] = [
    "in-context learning (the seeds as demonstrations)",
    "LoRA on the seeds alone",
    "LoRA on the seeds + accepted items",
];

fn with_results(runs: &[RunInfo]) -> Vec<&RunInfo> {
    runs.iter().filter(|r| r.eval.is_some()).collect()
}

impl App {
    pub(crate) fn evaluate_action(&mut self, action: Action) {
        let n = with_results(&self.runs).len();
        match action {
            Action::Up => self.evaluate.selected = self.evaluate.selected.saturating_sub(1),
            Action::Down => {
                self.evaluate.selected = (self.evaluate.selected + 1).min(n.saturating_sub(1))
            }
            // Wiring point: send the evaluation command once the engine has it.
            Action::Start => self.warn(NOT_AVAILABLE),
            Action::Refresh => self.refresh_runs(),
            _ => {}
        }
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ws: &Workspace) {
    let theme = &app.theme;
    let runs = with_results(&app.runs);
    let [cmp_area, bottom] =
        Layout::vertical([Constraint::Length(7), Constraint::Min(6)]).areas(area);
    draw_comparison(frame, cmp_area, theme);
    let list_w = if area.width >= 100 { 30 } else { 22 };
    let [list_area, results_area] =
        Layout::horizontal([Constraint::Length(list_w), Constraint::Min(20)]).areas(bottom);
    let rows: Vec<Row> = runs
        .iter()
        .map(|r| Row::new(vec![truncate(&r.name, list_w as usize - 3)]))
        .collect();
    let empty = rows.is_empty();
    let list = Table::new(rows, [Constraint::Min(5)])
        .row_highlight_style(theme.selected())
        .highlight_symbol("›")
        .block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(true))
                .title(Line::styled(" Results on disk ", theme.title())),
        )
        .style(theme.text());
    let sel = app.evaluate.selected.min(runs.len().saturating_sub(1));
    let mut state = TableState::default().with_selected((!empty).then_some(sel));
    frame.render_stateful_widget(list, list_area, &mut state);
    match runs.get(sel).and_then(|r| r.eval.as_ref().map(|e| (r, e))) {
        Some((run, eval)) => draw_results(frame, results_area, run, eval, ws, theme),
        None => {
            let lines = vec![
                Line::styled("No results yet.", theme.bold()),
                Line::raw(""),
                Line::styled(
                    format!(
                        "A run that writes eval.json in {}/runs is listed here with its \
                         per-class results and confusion matrix (r reloads).",
                        app.workspace_label
                    ),
                    theme.dim(),
                ),
            ];
            frame.render_widget(
                Paragraph::new(lines).wrap(Wrap { trim: true }).block(
                    Block::bordered()
                        .border_type(BorderType::Rounded)
                        .border_style(theme.border(false))
                        .title(Line::styled(" Results ", theme.title())),
                ),
                results_area,
            );
        }
    }
}

fn draw_comparison(frame: &mut Frame, area: Rect, theme: &Theme) {
    let rows: Vec<Row> = COMPARISON
        .iter()
        .map(|name| {
            Row::new(vec![
                Cell::from(*name),
                Cell::from(Span::styled("not run", theme.dim())),
                Cell::from(Span::styled("not run", theme.dim())),
            ])
        })
        .collect();
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(false))
        .title(Line::styled(" Comparison ", theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [note, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    frame.render_widget(
        Paragraph::new(Line::styled(
            truncate(NOT_AVAILABLE, note.width as usize),
            theme.warn(),
        )),
        note,
    );
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(20),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
        )
        .header(Row::new(["model", "accuracy", "macro-F1"]).style(theme.dim()))
        .style(theme.text()),
        table_area,
    );
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}", x * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn draw_results(
    frame: &mut Frame,
    area: Rect,
    run: &RunInfo,
    eval: &EvalInfo,
    ws: &Workspace,
    theme: &Theme,
) {
    let labels: Vec<String> = ws.task().labels.iter().map(|l| l.name.clone()).collect();
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(false))
        .title(Line::styled(
            format!(" Results · {} ", run.name),
            theme.title(),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let confusion_h = eval
        .confusion
        .as_ref()
        .map(|(l, _)| l.len() as u16 + 2)
        .unwrap_or(0);
    let [head, table_area, conf_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(eval.per_class.len() as u16 + 1),
        Constraint::Length(confusion_h),
    ])
    .areas(inner);
    let mut head_text = format!(
        "accuracy {}%  macro-F1 {}%",
        pct(eval.accuracy),
        pct(eval.macro_f1)
    );
    if let Some(n) = eval.n {
        head_text.push_str(&format!("  on {n} examples"));
    }
    if let Some(on) = &eval.on {
        head_text.push_str(&format!(" ({on})"));
    }
    frame.render_widget(
        Paragraph::new(Line::styled(
            truncate(&head_text, head.width as usize),
            theme.bold(),
        )),
        head,
    );
    let rows: Vec<Row> = eval
        .per_class
        .iter()
        .map(|c| {
            Row::new(vec![
                Cell::from(Span::styled(
                    c.label.clone(),
                    theme.label(label_index(&labels, &c.label)),
                )),
                Cell::from(pct(c.precision)),
                Cell::from(pct(c.recall)),
                Cell::from(pct(c.f1)),
                Cell::from(c.support.map(|s| s.to_string()).unwrap_or_default()),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(8),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Length(6),
            ],
        )
        .header(Row::new(["class", "precision", "recall", "F1", "n"]).style(theme.dim()))
        .style(theme.text()),
        table_area,
    );
    if let Some((cl, matrix)) = &eval.confusion {
        let w = cl
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 12)
            + 2;
        let mut lines = vec![Line::styled(
            "confusion: gold ↓ / predicted →".to_string(),
            theme.dim(),
        )];
        let mut header = vec![Span::raw(format!("{:<12}", ""))];
        for l in cl {
            header.push(Span::styled(
                format!("{:>w$}", truncate(l, w - 1)),
                theme.label(label_index(&labels, l)),
            ));
        }
        lines.push(Line::from(header));
        for (g, row) in matrix.iter().enumerate() {
            let mut spans = vec![Span::styled(
                format!(
                    "{:<12}",
                    truncate(cl.get(g).map(String::as_str).unwrap_or(""), 11)
                ),
                theme.label(cl.get(g).and_then(|l| label_index(&labels, l))),
            )];
            for (p, n) in row.iter().enumerate() {
                let style = if p == g { theme.ok() } else { theme.text() };
                spans.push(Span::styled(format!("{n:>w$}"), style));
            }
            lines.push(Line::from(spans));
        }
        frame.render_widget(Paragraph::new(lines), conf_area);
    }
}
