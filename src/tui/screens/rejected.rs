//! Rejected: every item a filter or the user threw away, with the stage and reason and the
//! scores; filters by reason and by class; an item opens to show the raw generation and the
//! exact prompt; a filter-rejected item can be rescued into the review queue.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::data::item::ItemId;
use crate::data::record::RecordBody;
use crate::data::state::{Applied, Decision, ItemState, Status};
use crate::engine::{Write, WriteError};
use crate::pipeline::filters::stages::STAGES;
use crate::tui::action::Action;
use crate::tui::app::{MessageKind, Then, label_index, label_names};
use crate::tui::component::{Component, Out, Shared};
use crate::tui::keymap::Context;
use crate::tui::read_model::ReadModel;
use crate::tui::theme::Theme;
use crate::tui::widgets::popup::{centered, frame_popup};
use crate::tui::widgets::probs::prob_lines;
use crate::tui::widgets::text::{one_line, truncate};

/// What the user rejected by hand is listed under this reason.
pub const BY_YOU: &str = "by you";

#[derive(Debug, Clone, Default)]
pub struct RejectedState {
    /// Row selected in the filtered list when it was last moved; used only when the item
    /// [`Self::item`] has left the list (rescued, undone), so the selection stays in place.
    pub selected: usize,
    /// The selected item. The list is newest first and grows at the top while a job runs, so
    /// the selection follows the item rather than the row: `r` must rescue what is shown.
    pub item: Option<ItemId>,
    /// A stage name or [`BY_YOU`].
    pub reason: Option<String>,
    pub class: Option<String>,
    /// The item opened from the list, and how far its text is scrolled.
    detail: Option<(ItemId, u16)>,
}

/// One row of the list.
#[derive(Debug, Clone)]
pub struct RejectedRow {
    pub id: ItemId,
    pub label: String,
    /// The first stage that failed, or [`BY_YOU`].
    pub stage: String,
    pub reason: String,
    /// The most telling score: (name, value).
    pub score: Option<(String, f64)>,
}

fn row_of(it: &ItemState) -> Option<RejectedRow> {
    let (stage, reason, score) = match it.status() {
        Status::Rejected => {
            let reason = match it.decision() {
                Some(Decision::Rejected { reason: Some(r) }) => r.clone(),
                _ => "(no reason given)".to_string(),
            };
            (BY_YOU.to_string(), reason, None)
        }
        Status::AutoRejected => {
            let v = it.failed_verdicts().next()?;
            let score = [
                "similarity",
                "p_intended",
                "confidence",
                "margin",
                "mean_logprob",
                "words",
            ]
            .iter()
            .find_map(|k| v.scores.get(*k).map(|x| (k.to_string(), *x)))
            .or_else(|| v.scores.iter().next().map(|(k, x)| (k.clone(), *x)));
            (v.stage.clone(), v.reason.clone(), score)
        }
        _ => return None,
    };
    Some(RejectedRow {
        id: it.id().clone(),
        label: it.label().to_string(),
        stage,
        reason,
        score,
    })
}

impl RejectedState {
    /// The rows that pass the filters, newest first.
    pub fn rows(&self, ws: &ReadModel) -> Vec<RejectedRow> {
        ws.state()
            .items()
            .iter()
            .rev()
            .filter_map(row_of)
            .filter(|r| self.reason.as_ref().is_none_or(|s| *s == r.stage))
            .filter(|r| self.class.as_ref().is_none_or(|c| *c == r.label))
            .collect()
    }

    /// The selected row of `rows`: the selected item's, else the remembered row, within the list.
    pub fn selected_row(&self, rows: &[RejectedRow]) -> usize {
        self.item
            .as_ref()
            .and_then(|id| rows.iter().position(|r| r.id == *id))
            .unwrap_or(self.selected)
            .min(rows.len().saturating_sub(1))
    }

    /// Selects row `row` of `rows` (clamped) and the item on it.
    fn select_row(&mut self, rows: &[RejectedRow], row: usize) {
        self.selected = row.min(rows.len().saturating_sub(1));
        self.item = rows.get(self.selected).map(|r| r.id.clone());
    }
}

/// Cycles `current` through `None, options[0], options[1], …`.
fn cycle(current: &Option<String>, options: &[String]) -> Option<String> {
    match current {
        None => options.first().cloned(),
        Some(c) => {
            let i = options.iter().position(|o| o == c);
            i.and_then(|i| options.get(i + 1)).cloned()
        }
    }
}

impl RejectedState {
    /// The item open in the detail dialog, if one is.
    pub fn open_detail(&self) -> Option<&ItemId> {
        self.detail.as_ref().map(|(id, _)| id)
    }

    /// Selects item `id`, clearing the filters when they hide it.
    pub fn select(&mut self, ws: &ReadModel, id: &ItemId) {
        let mut rows = self.rows(ws);
        if !rows.iter().any(|r| r.id == *id) {
            self.reason = None;
            self.class = None;
            rows = self.rows(ws);
        }
        if let Some(i) = rows.iter().position(|r| r.id == *id) {
            self.select_row(&rows, i);
        }
    }

    /// Pins the selection to the item on the selected row, when none is pinned yet (on coming
    /// to the screen, so rejections that arrive while the user reads do not move it).
    pub fn pin(&mut self, ws: &ReadModel) {
        if self.item.is_none() {
            let rows = self.rows(ws);
            self.select_row(&rows, self.selected);
        }
    }

    fn selected_id(&self, ws: &ReadModel) -> Option<ItemId> {
        let rows = self.rows(ws);
        rows.get(self.selected_row(&rows)).map(|r| r.id.clone())
    }

    fn on_list(&mut self, action: Action, ws: &ReadModel, out: &mut Vec<Out>) {
        let rows = self.rows(ws);
        let last = rows.len().saturating_sub(1);
        let now = self.selected_row(&rows);
        match action {
            Action::Up => self.select_row(&rows, now.saturating_sub(1)),
            Action::Down => self.select_row(&rows, (now + 1).min(last)),
            Action::PageUp => self.select_row(&rows, now.saturating_sub(10)),
            Action::PageDown => self.select_row(&rows, (now + 10).min(last)),
            Action::First => self.select_row(&rows, 0),
            Action::Last => self.select_row(&rows, last),
            Action::Open => self.detail = self.selected_id(ws).map(|id| (id, 0)),
            Action::Rescue => {
                if let Some(id) = self.selected_id(ws) {
                    out.push(rescue(ws, id));
                }
            }
            Action::CycleReasonFilter => {
                let mut options: Vec<String> = STAGES.iter().map(|s| s.to_string()).collect();
                options.push(BY_YOU.to_string());
                self.reason = cycle(&self.reason, &options);
                self.refilter(ws);
            }
            Action::CycleClassFilter => {
                self.class = cycle(&self.class, &label_names(ws));
                self.refilter(ws);
            }
            Action::ClearFilters => {
                self.reason = None;
                self.class = None;
            }
            _ => {}
        }
    }

    fn refilter(&mut self, ws: &ReadModel) {
        self.selected = 0;
        self.item = None;
        self.pin(ws);
    }
}

/// Asks to rescue `id` into the review queue, or says why it cannot be.
fn rescue(ws: &ReadModel, id: ItemId) -> Out {
    let body = RecordBody::Rescue {
        item_id: id.clone(),
    };
    let by_user = ws
        .state()
        .get(id.as_str())
        .is_some_and(|i| i.status() == Status::Rejected);
    if by_user {
        return Out::Say(
            MessageKind::Warn,
            format!(
                "{id} was rejected by you, not by a filter: u undoes that, or accept it on Review"
            ),
        );
    }
    match ws.check(&body) {
        Err(r) => Out::Say(MessageKind::Warn, format!("cannot rescue {id}: {r}")),
        Ok(_) => Out::Write(Write::Records(vec![body]), Then::Rescued(id)),
    }
}

impl Component for RejectedState {
    fn dialog(&self) -> Option<Context> {
        self.detail.as_ref().map(|_| Context::Detail)
    }

    fn handle(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        let Some((id, scroll)) = self.detail.take() else {
            return self.on_list(action, shared.ws, out);
        };
        let scroll = match action {
            Action::Up => scroll.saturating_sub(1),
            Action::Down => scroll.saturating_add(1),
            Action::PageUp => scroll.saturating_sub(10),
            Action::PageDown => scroll.saturating_add(10),
            Action::Rescue => return out.push(rescue(shared.ws, id)),
            Action::Cancel => return,
            _ => scroll,
        };
        self.detail = Some((id, scroll));
    }

    fn answered(
        &mut self,
        then: Then,
        result: Result<&[Applied], &WriteError>,
        _shared: &Shared,
        out: &mut Vec<Out>,
    ) {
        let Then::Rescued(id) = then else {
            return;
        };
        out.push(match result {
            Ok(_) => Out::ok(format!(
                "rescued {id}: it is back in the review queue (3 shows it)"
            )),
            Err(e) => Out::refused(&format!("rescue {id}"), e),
        });
    }

    fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, shared: &Shared) {
        draw(frame, area, theme, shared.ws, self)
    }

    fn draw_dialog(&self, frame: &mut Frame, theme: &Theme, shared: &Shared) {
        if let Some((id, scroll)) = &self.detail {
            draw_detail(frame, theme, shared.ws, id, *scroll);
        }
    }
}

fn draw(frame: &mut Frame, area: Rect, theme: &Theme, ws: &ReadModel, list: &RejectedState) {
    let labels = label_names(ws);
    let rows = list.rows(ws);
    let [filter_area, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let filter_span = |v: &Option<String>| match v {
        Some(s) => Span::styled(stage_label(s).to_string(), theme.accent()),
        None => Span::styled("all", theme.dim()),
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" reason (f): ", theme.dim()),
            filter_span(&list.reason),
            Span::styled("   class (c): ", theme.dim()),
            filter_span(&list.class),
            Span::styled(format!("   {} items", rows.len()), theme.dim()),
        ])),
        filter_area,
    );
    let wide = area.width >= 100;
    let header = if wide {
        Row::new(["item", "class", "stage", "score", "reason"])
    } else {
        Row::new(["item", "class", "stage", "reason"])
    }
    .style(theme.dim());
    // Borders, the highlight symbol and the spaces between columns; the reason gets the rest.
    let fixed: usize = if wide { 9 + 10 + 12 + 9 } else { 9 + 9 + 12 };
    let n_cols = if wide { 5 } else { 4 };
    let reason_w = (area.width as usize).saturating_sub(fixed + 2 + 1 + (n_cols - 1));
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|r| {
            let li = label_index(&labels, &r.label);
            let stage_style = if r.stage == BY_YOU {
                theme.error()
            } else {
                theme.warn()
            };
            let mut cells = vec![
                Cell::from(Span::styled(r.id.to_string(), theme.dim())),
                Cell::from(Span::styled(r.label.clone(), theme.label(li))),
                Cell::from(Span::styled(stage_label(&r.stage).to_string(), stage_style)),
            ];
            if wide {
                cells.push(Cell::from(
                    r.score
                        .as_ref()
                        .map(|(k, v)| {
                            if v.fract() == 0.0 {
                                format!("{} {v:.0}", short_score(k))
                            } else {
                                format!("{} {v:.2}", short_score(k))
                            }
                        })
                        .unwrap_or_default(),
                ));
            }
            cells.push(Cell::from(truncate(&one_line(&r.reason), reason_w)));
            Row::new(cells)
        })
        .collect();
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Min(10),
        ]
    } else {
        vec![
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Min(10),
        ]
    };
    let empty = rows.is_empty();
    let table = Table::new(table_rows, widths)
        .header(header)
        .row_highlight_style(theme.selected())
        .highlight_symbol("›")
        .block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(true))
                .title(Line::styled(" Rejected ", theme.title())),
        )
        .style(theme.text());
    let mut state =
        TableState::default().with_selected((!empty).then_some(list.selected_row(&rows)));
    frame.render_stateful_widget(table, table_area, &mut state);
    if empty {
        let msg = if list.reason.is_some() || list.class.is_some() {
            "No rejected item matches the filters (esc clears them)."
        } else {
            "Nothing rejected yet."
        };
        let inner = table_area.inner(ratatui::layout::Margin::new(2, 2));
        frame.render_widget(Paragraph::new(Line::styled(msg, theme.dim())), inner);
    }
}

/// How a stage is named on screen (the journal keeps the stage's own name).
pub fn stage_label(stage: &str) -> &str {
    match stage {
        "malformed" => "malformed",
        "exact_dup" => "duplicate",
        "near_dup" => "near-dup",
        "label_consistency" => "label check",
        other => other,
    }
}

fn short_score(name: &str) -> &str {
    match name {
        "similarity" => "sim",
        "p_intended" => "p",
        "confidence" => "p",
        "mean_logprob" => "lp",
        other => other,
    }
}

/// The item opened from the list: everything about it, including the raw output and prompt.
fn draw_detail(frame: &mut Frame, theme: &Theme, ws: &ReadModel, id: &ItemId, scroll: u16) {
    let area = frame.area();
    let popup = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    let inner = frame_popup(frame, popup, &format!("Item {id}"), theme);
    let Some(it) = ws.state().get(id.as_str()) else {
        frame.render_widget(Paragraph::new("the item is gone"), inner);
        return;
    };
    let labels = label_names(ws);
    let li = label_index(&labels, it.label());
    let w = inner.width as usize;
    let mut lines = vec![
        Line::from(vec![
            Span::styled("label   ", theme.dim()),
            Span::styled(it.label().to_string(), theme.label(li)),
            Span::styled(
                format!(
                    "   status {}   source {}",
                    it.status().as_str(),
                    it.source().as_str()
                ),
                theme.dim(),
            ),
        ]),
        Line::styled("text", theme.dim()),
    ];
    for l in it.text().split('\n') {
        lines.push(Line::styled(format!("  {l}"), theme.bold()));
    }
    lines.push(Line::styled("verdicts", theme.dim()));
    for v in it.verdicts() {
        let (mark, style) = if v.pass {
            ("✓", theme.ok())
        } else {
            ("✗", theme.error())
        };
        let scores: Vec<String> = v
            .scores
            .iter()
            .map(|(k, x)| {
                if x.fract() == 0.0 {
                    format!("{k} {x:.0}")
                } else {
                    format!("{k} {x:.3}")
                }
            })
            .collect();
        lines.push(Line::from(vec![
            Span::styled(format!("  {mark} {:<18}", v.stage), style),
            Span::raw(v.reason.clone()),
            Span::styled(
                if scores.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", scores.join(", "))
                },
                theme.dim(),
            ),
        ]));
        if let Some(p) = &v.probs {
            for bar in prob_lines(p, it.label(), &labels, w.saturating_sub(6), theme) {
                let mut spans = vec![Span::raw("      ")];
                spans.extend(bar.spans);
                lines.push(Line::from(spans));
            }
        }
    }
    if let Some(Decision::Rejected { reason }) = it.decision() {
        lines.push(Line::styled(
            format!(
                "rejected by you{}",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            theme.error(),
        ));
    }
    let orig = it.original();
    let meta = |k: &str| orig.meta.get(k).map(|v| v.to_string());
    lines.push(Line::styled(
        format!(
            "generation: finish {} · {} new tokens · {} prompt tokens · {} s{}",
            meta("finish").unwrap_or_else(|| "–".into()),
            meta("new_tokens").unwrap_or_else(|| "–".into()),
            meta("prompt_tokens").unwrap_or_else(|| "–".into()),
            orig.meta
                .get("seconds")
                .and_then(|s| s.as_f64())
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "–".into()),
            orig.mean_logprob()
                .map(|lp| format!(" · log-p {lp:.2}/token"))
                .unwrap_or_default(),
        ),
        theme.dim(),
    ));
    if let Some(said) = orig.attributes_said() {
        lines.push(Line::styled(format!("attributes: {said}"), theme.dim()));
    }
    lines.push(Line::styled("raw generation", theme.dim()));
    match &orig.raw {
        Some(raw) => lines.push(Line::styled(
            format!("  {}", truncate(&format!("{raw:?}"), 4000)),
            theme.text(),
        )),
        None => lines.push(Line::styled("  (none recorded)", theme.dim())),
    }
    lines.push(Line::styled("prompt", theme.dim()));
    match &orig.prompt {
        Some(p) => {
            for l in p.split('\n') {
                lines.push(Line::styled(format!("  {l}"), theme.text()));
            }
        }
        None => lines.push(Line::styled("  (none recorded)", theme.dim())),
    }
    let [body, hint] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        body,
    );
    frame.render_widget(
        Paragraph::new(Line::styled(
            "↑/↓ scroll · r rescue · esc close",
            theme.dim(),
        )),
        hint,
    );
}
