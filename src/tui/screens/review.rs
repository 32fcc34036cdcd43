//! Review: the kept items one at a time — text, label, the classifier's distribution, the
//! nearest seed, every filter's verdict — with accept / reject / skip / edit / relabel / bulk.
//! Each decision goes to the engine's store, which journals it (one fsync); the screen moves on
//! when the store answers, and when the write fails it stays and says why. This file holds the
//! state and the drawing; [`super::review_actions`] what the keys do.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Paragraph, Row, Table, Wrap};

use super::review_actions::bulk_candidates;
use crate::data::item::{ItemId, Source, Verdict};
use crate::data::state::{Applied, ItemState, Status};
use crate::engine::WriteError;
use crate::pipeline::annotate::CONFIDENCE;
use crate::pipeline::filters::stages::LABEL_CONSISTENCY;
use crate::pipeline::filters::text::{jaccard, shingles};
use crate::tui::action::Action;
use crate::tui::app::{Then, label_index, label_names};
use crate::tui::component::{Component, Out, Shared};
use crate::tui::keymap::Context;
use crate::tui::ready_queue::ReadyQueue;
use crate::tui::theme::Theme;
use crate::tui::widgets::popup::{self, centered, frame_popup};
use crate::tui::widgets::probs::prob_lines;
use crate::tui::widgets::text::{one_line, truncate};
use crate::tui::widgets::text_input::EditorState;

#[derive(Debug, Clone, Default)]
pub struct ReviewState {
    /// Which item is on screen: `None` means "the first one ready for review".
    pub current: Option<ItemId>,
    pub(super) dialog: Option<Dialog>,
}

/// Review's dialogs: each takes every key while open.
#[derive(Debug, Clone)]
pub enum Dialog {
    /// The in-place editor of the item's text.
    EditItem {
        id: ItemId,
        editor: EditorState,
    },
    RejectReason {
        id: ItemId,
        editor: EditorState,
    },
    Relabel {
        id: ItemId,
        selected: usize,
    },
    Bulk {
        threshold: f64,
        accept: bool,
    },
}

impl ReviewState {
    pub fn open_dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }
}

impl Component for ReviewState {
    fn dialog(&self) -> Option<Context> {
        self.dialog.as_ref().map(|d| match d {
            Dialog::EditItem { .. } | Dialog::RejectReason { .. } => Context::TextInput,
            Dialog::Relabel { .. } => Context::Picker,
            Dialog::Bulk { .. } => Context::Bulk,
        })
    }

    fn handle(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        match self.dialog.take() {
            Some(d) => self.on_dialog(d, action, shared, out),
            None => self.on_screen(action, shared, out),
        }
    }

    fn answered(
        &mut self,
        then: Then,
        result: Result<&[Applied], &WriteError>,
        shared: &Shared,
        out: &mut Vec<Out>,
    ) {
        self.on_answer(then, result, shared, out)
    }

    /// An item's text may hold several lines; a reason is one line.
    fn paste(&mut self, text: &str) -> bool {
        match &mut self.dialog {
            Some(Dialog::EditItem { editor, .. }) => editor.paste(text, true),
            Some(Dialog::RejectReason { editor, .. }) => editor.paste(text, false),
            _ => return false,
        }
        true
    }

    fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, shared: &Shared) {
        draw(frame, area, theme, self, shared)
    }

    fn draw_dialog(&self, frame: &mut Frame, theme: &Theme, shared: &Shared) {
        match &self.dialog {
            None => {}
            Some(Dialog::EditItem { id, editor }) => popup::editor(
                frame,
                theme,
                &format!("Edit {id}"),
                editor,
                "enter saves (the filters run again) · esc cancels",
            ),
            Some(Dialog::RejectReason { id, editor }) => popup::editor(
                frame,
                theme,
                &format!("Reject {id}: why?"),
                editor,
                "enter rejects with this reason (empty: none) · esc cancels",
            ),
            Some(Dialog::Relabel { id, selected }) => {
                draw_relabel(frame, theme, shared, id, *selected)
            }
            Some(Dialog::Bulk { threshold, accept }) => {
                draw_bulk(frame, theme, shared, *threshold, *accept)
            }
        }
    }
}

/// Default threshold of the bulk dialog.
pub const BULK_THRESHOLD: f64 = 0.9;

/// The classifier's verdict on the item: a generated item's label check, or an annotated
/// item's confidence stage. Both carry the distribution over labels.
fn classifier_verdict(it: &ItemState) -> Option<&Verdict> {
    it.verdicts()
        .iter()
        .find(|v| v.stage == LABEL_CONSISTENCY || v.stage == CONFIDENCE)
}

/// The classifier's probability of the item's label (the intended one for a generated item,
/// the one the model gave an annotated item), if a classifier stage ran.
pub fn confidence(it: &ItemState) -> Option<f64> {
    let v = classifier_verdict(it)?;
    let key = if v.stage == CONFIDENCE {
        "confidence"
    } else {
        "p_intended"
    };
    v.scores.get(key).copied()
}

/// The seed most like `text`, by the near-duplicate filter's own measure (Jaccard similarity
/// of word `n`-grams): its index and similarity.
pub fn nearest_seed(
    text: &str,
    seeds: &[crate::data::task::Example],
    n: usize,
) -> Option<(usize, f64)> {
    let sh = shingles(text, n.max(1));
    seeds
        .iter()
        .enumerate()
        .map(|(i, s)| (i, jaccard(&sh, &shingles(&s.text, n.max(1)))))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

fn draw(frame: &mut Frame, area: Rect, theme: &Theme, state: &ReviewState, shared: &Shared) {
    let ws = shared.ws;
    let labels = label_names(ws);
    let wide = area.width >= 100;
    let counts_rows = labels.len() as u16 + 4;
    let (main, side) = if wide {
        let [m, s] = Layout::horizontal([Constraint::Min(40), Constraint::Length(34)]).areas(area);
        (m, Some(s))
    } else if area.height >= 14 + counts_rows {
        let [m, s] =
            Layout::vertical([Constraint::Min(10), Constraint::Length(counts_rows)]).areas(area);
        (m, Some(s))
    } else {
        (area, None)
    };
    let ready = shared.ready_queue();
    let waiting = ready.waiting();
    let target = state.target(shared);
    let item = target.as_ref().and_then(|id| ws.state().get(id.as_str()));
    match item {
        Some(it) => {
            let pos = ready.position(it.id());
            let title = match pos {
                Some(p) => format!(" Review · {} of {} to review ", p + 1, ready.len()),
                None => format!(" Review · {} to review ", ready.len()),
            };
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(true))
                .title(Line::styled(title, theme.title()));
            let inner = block.inner(main);
            frame.render_widget(block, main);
            let lines = item_lines(it, shared, &labels, inner.width as usize, theme);
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .style(theme.text()),
                inner,
            );
        }
        None => {
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(true))
                .title(Line::styled(" Review ", theme.title()));
            let mut lines = vec![
                Line::raw(""),
                Line::styled("  Nothing to review.", theme.bold()),
                Line::raw(""),
            ];
            if waiting > 0 {
                lines.push(Line::styled(
                    format!("  {waiting} new items wait for their label check."),
                    theme.info(),
                ));
            }
            let totals = ws.state().totals();
            lines.push(Line::styled(
                format!(
                    "  {} accepted · {} rejected by you · {} rejected by the filters",
                    totals.accepted, totals.rejected, totals.auto_rejected
                ),
                theme.dim(),
            ));
            lines.push(Line::styled(
                "  Press 2 then g to generate items; rejected ones can be rescued on 4.",
                theme.dim(),
            ));
            frame.render_widget(
                Paragraph::new(lines)
                    .block(block)
                    .wrap(Wrap { trim: false }),
                main,
            );
        }
    }
    if let Some(side) = side {
        if wide {
            let [counts, next] =
                Layout::vertical([Constraint::Length(counts_rows), Constraint::Min(0)]).areas(side);
            draw_counts(frame, counts, theme, shared, &labels, waiting);
            if next.height >= 3 {
                draw_up_next(frame, next, theme, &ready, target.as_ref(), &labels);
            }
        } else {
            draw_counts(frame, side, theme, shared, &labels, waiting);
        }
    }
}

/// The items that come after the one on screen.
fn draw_up_next(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    ready: &ReadyQueue,
    target: Option<&ItemId>,
    labels: &[String],
) {
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(false))
        .title(Line::styled(" Up next ", theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = inner.width as usize;
    let mut lines: Vec<Line> = ready
        .after(target)
        .take(inner.height as usize)
        .map(|it| {
            let li = label_index(labels, it.label());
            let label = truncate(it.label(), 9);
            let room = w.saturating_sub(label.chars().count() + 1);
            Line::from(vec![
                Span::styled(label, theme.label(li)),
                Span::raw(" "),
                Span::styled(truncate(&one_line(it.text()), room), theme.text()),
            ])
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::styled("nothing else waits", theme.dim()));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn status_span(it: &ItemState, shared: &Shared, theme: &Theme) -> Span<'static> {
    if shared.is_rechecking(it.id()) {
        return Span::styled("re-checking…", theme.info());
    }
    if shared.is_held(it.id()) {
        return Span::styled("waiting for the label check", theme.info());
    }
    match it.status() {
        Status::Pending => Span::styled("to review", theme.accent()),
        Status::Accepted => Span::styled("accepted", theme.ok().add_modifier(Modifier::BOLD)),
        Status::Rejected => Span::styled("rejected by you", theme.error()),
        Status::AutoRejected => Span::styled("rejected by a filter", theme.warn()),
    }
}

fn item_lines(
    it: &ItemState,
    shared: &Shared,
    labels: &[String],
    width: usize,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let ws = shared.ws;
    let mut lines = Vec::new();
    let li = label_index(labels, it.label());
    let mut head = vec![
        Span::styled(it.id().to_string(), theme.dim()),
        Span::raw("  "),
        Span::styled(it.label().to_string(), theme.label(li)),
        Span::raw("  "),
        status_span(it, shared, theme),
    ];
    if it.source() == Source::Annotated {
        head.push(Span::styled(
            "  annotated (the model's label)",
            theme.info(),
        ));
    }
    if it.is_relabelled() {
        head.push(Span::styled(
            format!("  (made for {})", it.original().label),
            theme.dim(),
        ));
    }
    if let Some(said) = it.original().attributes_said() {
        head.push(Span::styled(format!("  ({said})"), theme.dim()));
    }
    if let Some(lp) = it.original().mean_logprob() {
        head.push(Span::styled(format!("  log-p {lp:.2}/token"), theme.dim()));
    }
    if it.is_edited() {
        head.push(Span::styled("  edited", theme.info()));
    }
    if it.is_rescued() {
        head.push(Span::styled("  rescued", theme.info()));
    }
    lines.push(Line::from(head));
    lines.push(Line::raw(""));
    for para in it.text().split('\n') {
        lines.push(Line::styled(format!("  {para}"), theme.bold()));
    }
    lines.push(Line::raw(""));
    // The classifier's distribution.
    match classifier_verdict(it).and_then(|v| v.probs.as_ref().map(|p| (v, p))) {
        Some((v, probs)) => {
            let bars = prob_lines(probs, it.label(), labels, width.saturating_sub(13), theme);
            for (i, bar) in bars.into_iter().enumerate() {
                let mut spans = vec![Span::styled(
                    if i == 0 {
                        "Classifier   "
                    } else {
                        "             "
                    },
                    theme.dim(),
                )];
                spans.extend(bar.spans);
                lines.push(Line::from(spans));
            }
            let score = |k: &str| v.scores.get(k).map(|x| format!("{x:.2}"));
            lines.push(Line::from(vec![
                Span::styled("             ", theme.dim()),
                Span::styled(
                    if v.stage == CONFIDENCE {
                        format!(
                            "labelled by the model · confidence {}",
                            score("confidence").unwrap_or_else(|| "–".into())
                        )
                    } else {
                        format!(
                            "p(intended) {} · margin {}",
                            score("p_intended").unwrap_or_else(|| "–".into()),
                            score("margin").unwrap_or_else(|| "–".into())
                        )
                    },
                    theme.dim(),
                ),
            ]));
        }
        None => lines.push(Line::from(vec![
            Span::styled("Classifier   ", theme.dim()),
            Span::styled(
                if shared.is_held(it.id()) {
                    "not reported yet"
                } else {
                    "no label check for this item"
                },
                theme.dim(),
            ),
        ])),
    }
    // The nearest seed.
    let nearest = nearest_seed(it.text(), ws.seeds(), shared.shingle_words);
    if let Some((i, sim)) = nearest.filter(|(_, sim)| *sim > 0.0) {
        let seed = &ws.seeds()[i];
        let si = label_index(labels, &seed.label);
        let prefix = format!("Nearest seed {:>3.0}% seed {} ", sim * 100.0, i + 1);
        let room = width.saturating_sub(prefix.chars().count() + seed.label.len() + 5);
        lines.push(Line::from(vec![
            Span::styled(format!("Nearest seed {:>3.0}% ", sim * 100.0), theme.dim()),
            Span::styled(format!("seed {} ", i + 1), theme.dim()),
            Span::styled(seed.label.clone(), theme.label(si)),
            Span::styled(
                format!(" “{}”", truncate(&one_line(&seed.text), room)),
                theme.text(),
            ),
        ]));
    } else if nearest.is_some() {
        lines.push(Line::styled(
            "Nearest seed none shares a word pair with it",
            theme.dim(),
        ));
    }
    // Every filter's verdict.
    let mut spans = vec![Span::styled("Filters      ", theme.dim())];
    for v in it.verdicts() {
        let (mark, style) = if v.pass {
            ("✓", theme.ok())
        } else {
            ("✗", theme.error())
        };
        spans.push(Span::styled(
            format!("{mark} {} ", super::rejected::stage_label(&v.stage)),
            style,
        ));
    }
    if it.verdicts().is_empty() {
        spans.push(Span::styled("none yet", theme.dim()));
    }
    lines.push(Line::from(spans));
    for v in it.failed_verdicts() {
        lines.push(Line::styled(
            format!(
                "             {}: {}",
                super::rejected::stage_label(&v.stage),
                v.reason
            ),
            theme.warn(),
        ));
    }
    lines
}

fn draw_counts(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    shared: &Shared,
    labels: &[String],
    waiting: usize,
) {
    let ws = shared.ws;
    let header = Row::new(["class", "todo", "✓", "✗", "auto"]).style(theme.dim());
    let mut rows: Vec<Row> = ws
        .state()
        .counts()
        .map(|(label, c)| {
            let li = label_index(labels, label);
            Row::new(vec![
                Cell::from(Span::styled(label.to_string(), theme.label(li))),
                Cell::from(c.pending.to_string()),
                Cell::from(Span::styled(c.accepted.to_string(), theme.ok())),
                Cell::from(Span::styled(c.rejected.to_string(), theme.error())),
                Cell::from(Span::styled(c.auto_rejected.to_string(), theme.warn())),
            ])
        })
        .collect();
    let t = ws.state().totals();
    rows.push(
        Row::new(vec![
            "all".to_string(),
            t.pending.to_string(),
            t.accepted.to_string(),
            t.rejected.to_string(),
            t.auto_rejected.to_string(),
        ])
        .style(theme.bold()),
    );
    let mut title = " Counts ".to_string();
    if waiting > 0 {
        title = format!(" Counts · {waiting} checking ");
    }
    let label_w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(5);
    let table = Table::new(
        rows,
        [
            Constraint::Length(label_w.clamp(5, 14) as u16),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(5),
        ],
    )
    .header(header)
    .block(
        Block::bordered()
            .border_type(BorderType::Rounded)
            .border_style(theme.border(false))
            .title(Line::styled(title, theme.title())),
    )
    .style(theme.text());
    frame.render_widget(table, area);
}

/// The in-place editor and the reason prompt, over the item.
fn draw_relabel(frame: &mut Frame, theme: &Theme, shared: &Shared, id: &ItemId, selected: usize) {
    let ws = shared.ws;
    let labels = label_names(ws);
    let current = ws.state().get(id.as_str()).map(|i| i.label().to_string());
    let height = labels.len() as u16 + 4;
    let popup = centered(frame.area(), 40, height);
    let inner = frame_popup(frame, popup, &format!("Relabel {id}"), theme);
    let mut lines: Vec<Line> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mark = if current.as_deref() == Some(l.as_str()) {
                " (now)"
            } else {
                ""
            };
            let text = format!(" {} {l}{mark}", i + 1);
            if i == selected {
                Line::styled(format!("›{text}"), theme.selected())
            } else {
                Line::from(vec![
                    Span::raw(" "),
                    Span::styled(text, theme.label(Some(i))),
                ])
            }
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "1-9 or enter chooses · esc cancels",
        theme.dim(),
    ));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_bulk(frame: &mut Frame, theme: &Theme, shared: &Shared, threshold: f64, accept: bool) {
    let (hits, unscored) = bulk_candidates(shared, threshold, accept);
    let popup = centered(frame.area(), 64, 10);
    let inner = frame_popup(frame, popup, "Bulk decision", theme);
    let rule = if accept {
        format!("accept every item to review with confidence ≥ {threshold:.2}")
    } else {
        format!("reject every item to review with confidence < {threshold:.2}")
    };
    let mut lines = vec![
        Line::styled(rule, theme.bold()),
        Line::styled(
            "confidence: the classifier's probability of the item's label",
            theme.dim(),
        ),
        Line::raw(""),
        Line::from(vec![
            Span::styled(format!("{} items", hits.len()), theme.accent()),
            Span::raw(if accept {
                " would be accepted"
            } else {
                " would be rejected"
            }),
        ]),
    ];
    if unscored > 0 {
        lines.push(Line::styled(
            format!("{unscored} items have no classifier score and are left alone"),
            theme.dim(),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "←/→ threshold · m accept/reject · enter apply · esc cancel",
        theme.dim(),
    ));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
