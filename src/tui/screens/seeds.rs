//! Seeds: the task (labels with the words the model says for them, the description) and its
//! real examples per class in a table; add, edit, delete. Seeds are rewritten atomically in
//! `seeds.jsonl` by the engine's store; a running generation keeps the seeds it started with.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::data::task::Example;
use crate::engine::Write;
use crate::tui::action::Action;
use crate::tui::app::{App, Overlay, Then, label_index, label_names};
use crate::tui::read_model::ReadModel;
use crate::tui::widgets::popup::{centered, frame_popup};
use crate::tui::widgets::text::{one_line, truncate};
use crate::tui::widgets::text_input::{EditorState, TextInput};

#[derive(Debug, Clone, Default)]
pub struct SeedsState {
    pub selected: usize,
}

impl App {
    pub(crate) fn seeds_action(&mut self, action: Action) {
        let (n, selected_label) = {
            let ws = &self.ws;
            let labels = label_names(ws);
            let label = ws
                .seeds()
                .get(self.seeds.selected)
                .and_then(|s| label_index(&labels, &s.label))
                .unwrap_or(0);
            (ws.seeds().len(), label)
        };
        let last = n.saturating_sub(1);
        let sel = &mut self.seeds.selected;
        match action {
            Action::Up => *sel = sel.saturating_sub(1),
            Action::Down => *sel = (*sel + 1).min(last),
            Action::PageUp => *sel = sel.saturating_sub(10),
            Action::PageDown => *sel = (*sel + 10).min(last),
            Action::First => *sel = 0,
            Action::Last => *sel = last,
            Action::AddSeed => {
                self.overlay = Some(Overlay::SeedEditor {
                    index: None,
                    editor: EditorState::default(),
                    label: selected_label,
                })
            }
            Action::EditSeed if n > 0 => {
                let index = (*sel).min(last);
                let text = self
                    .ws
                    .seeds()
                    .get(index)
                    .map(|s| s.text.clone())
                    .unwrap_or_default();
                self.overlay = Some(Overlay::SeedEditor {
                    index: Some(index),
                    editor: EditorState::new(&text),
                    label: selected_label,
                });
            }
            Action::DeleteSeed if n > 0 => {
                self.overlay = Some(Overlay::ConfirmDeleteSeed((*sel).min(last)))
            }
            _ => {}
        }
    }

    pub(crate) fn seed_editor(
        &mut self,
        index: Option<usize>,
        mut editor: EditorState,
        label: usize,
        action: Action,
    ) {
        let labels = label_names(&self.ws);
        let n = labels.len().max(1);
        let label = match action {
            Action::Up => (label + n - 1) % n,
            Action::Down => (label + 1) % n,
            Action::Cancel => return,
            Action::Submit => {
                let seed = Example {
                    text: editor.text().trim().to_string(),
                    label: labels.get(label).cloned().unwrap_or_default(),
                };
                let write = match index {
                    Some(i) => Write::EditSeed(i, seed),
                    None => Write::AddSeed(seed),
                };
                let then = Then::SeedSaved {
                    index,
                    editor,
                    label,
                };
                self.write(write, then);
                return;
            }
            other => {
                crate::tui::app::edit_text(&mut editor, &other);
                label
            }
        };
        self.overlay = Some(Overlay::SeedEditor {
            index,
            editor,
            label,
        });
    }

    pub(crate) fn delete_seed(&mut self, index: usize) {
        self.write(Write::DeleteSeed(index), Then::SeedDeleted(index));
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ws: &ReadModel) {
    let theme = &app.theme;
    let task = ws.task();
    let labels = label_names(ws);
    let head_h = if area.height >= 18 { 4 } else { 2 };
    let [head, table_area] =
        Layout::vertical([Constraint::Length(head_h), Constraint::Min(3)]).areas(area);
    let mut label_spans = vec![Span::styled(" labels ", theme.dim())];
    for (i, l) in task.labels.iter().enumerate() {
        let n = ws.seeds().iter().filter(|s| s.label == l.name).count();
        label_spans.push(Span::styled(l.name.clone(), theme.label(Some(i))));
        if l.verbalizer() != l.name {
            label_spans.push(Span::styled(
                format!(" (says “{}”)", l.verbalizer()),
                theme.dim(),
            ));
        }
        label_spans.push(Span::styled(format!(" ×{n}   "), theme.dim()));
    }
    let mut head_lines = vec![
        Line::from(vec![
            Span::styled(" task ", theme.dim()),
            Span::styled(task.name.clone(), theme.bold()),
            Span::styled(
                format!(" · {}s classified by {}", task.input_noun, task.description),
                theme.dim(),
            ),
        ]),
        Line::from(label_spans),
    ];
    if head_h > 2 {
        head_lines.push(Line::styled(
            format!(
                " {} seeds (seeds.jsonl in the workspace) · the prompts show them to the model",
                ws.seeds().len(),
            ),
            theme.dim(),
        ));
    }
    frame.render_widget(Paragraph::new(head_lines).wrap(Wrap { trim: true }), head);

    let label_w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(5) as u16;
    let label_w = label_w.clamp(5, 16);
    // Borders, highlight symbol, the # and label columns and the spaces between them.
    let text_w = (table_area.width as usize).saturating_sub(2 + 1 + 3 + label_w as usize + 2);
    let rows: Vec<Row> = ws
        .seeds()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let li = label_index(&labels, &s.label);
            Row::new(vec![
                Cell::from(Span::styled(format!("{}", i + 1), theme.dim())),
                Cell::from(Span::styled(s.label.clone(), theme.label(li))),
                Cell::from(truncate(&one_line(&s.text), text_w)),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(3),
            Constraint::Length(label_w),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["#", "label", "text"]).style(theme.dim()))
    .row_highlight_style(theme.selected())
    .highlight_symbol("›")
    .block(
        Block::bordered()
            .border_type(BorderType::Rounded)
            .border_style(theme.border(true))
            .title(Line::styled(
                format!(" Seeds ({}) ", ws.seeds().len()),
                theme.title(),
            )),
    )
    .style(theme.text());
    let n = ws.seeds().len();
    let mut state = TableState::default()
        .with_selected((n > 0).then_some(app.seeds.selected.min(n.saturating_sub(1))));
    frame.render_stateful_widget(table, table_area, &mut state);
}

pub fn draw_editor(
    frame: &mut Frame,
    app: &App,
    ws: &ReadModel,
    index: Option<usize>,
    editor: &EditorState,
    label: usize,
) {
    let theme = &app.theme;
    let labels = label_names(ws);
    let area = frame.area();
    let popup = centered(area, area.width.saturating_sub(8).clamp(20, 90), 10);
    let title = match index {
        Some(i) => format!("Edit seed {}", i + 1),
        None => "New seed".to_string(),
    };
    let inner = frame_popup(frame, popup, &title, theme);
    let [label_area, _, text_area, hint] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let mut spans = vec![Span::styled("label ", theme.dim())];
    for (i, l) in labels.iter().enumerate() {
        if i == label {
            spans.push(Span::styled(format!(" {l} "), theme.selected()));
        } else {
            spans.push(Span::styled(format!(" {l} "), theme.label(Some(i))));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), label_area);
    let mut state = editor.clone();
    frame.render_stateful_widget(
        TextInput {
            style: theme.text(),
            cursor_style: theme.accent(),
            placeholder: "the example's text".into(),
            placeholder_style: theme.dim(),
        },
        text_area,
        &mut state,
    );
    frame.render_widget(
        Paragraph::new(Line::styled(
            "↑/↓ label · enter save · esc cancel",
            theme.dim(),
        )),
        hint,
    );
}
