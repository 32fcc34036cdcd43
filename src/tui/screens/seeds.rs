//! Seeds: the task (labels with the words the model says for them, the description) and its
//! real examples per class in a table; add, edit, delete. Seeds are rewritten atomically in
//! `seeds.jsonl` by the engine's store; a running generation keeps the seeds it started with.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::data::state::Applied;
use crate::data::task::Example;
use crate::engine::{Write, WriteError};
use crate::tui::action::Action;
use crate::tui::app::{Then, edit_text, label_index, label_names};
use crate::tui::component::{Component, Out, Shared};
use crate::tui::keymap::Context;
use crate::tui::read_model::ReadModel;
use crate::tui::theme::Theme;
use crate::tui::widgets::popup::{centered, confirm, frame_popup};
use crate::tui::widgets::text::{one_line, truncate};
use crate::tui::widgets::text_input::{EditorState, TextInput};

#[derive(Debug, Clone, Default)]
pub struct SeedsState {
    pub selected: usize,
    dialog: Option<Dialog>,
}

/// Seeds' dialogs: each takes every key while open.
#[derive(Debug, Clone)]
pub enum Dialog {
    /// A new seed (`index` none) or seed `index` being edited, with the label picked.
    Editor {
        index: Option<usize>,
        editor: EditorState,
        label: usize,
    },
    ConfirmDelete(usize),
}

/// A seed write asked of the store, and what its answer does.
#[derive(Debug, Clone)]
pub enum SeedWrite {
    /// Carries the editor, so a refused save opens it again with nothing typed lost.
    Saved {
        index: Option<usize>,
        editor: EditorState,
        label: usize,
    },
    Deleted(usize),
}

impl SeedsState {
    pub fn open_dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    fn on_list(&mut self, action: Action, ws: &ReadModel) {
        let labels = label_names(ws);
        let n = ws.seeds().len();
        let label = ws
            .seeds()
            .get(self.selected)
            .and_then(|s| label_index(&labels, &s.label))
            .unwrap_or(0);
        let last = n.saturating_sub(1);
        let sel = &mut self.selected;
        match action {
            Action::Up => *sel = sel.saturating_sub(1),
            Action::Down => *sel = (*sel + 1).min(last),
            Action::PageUp => *sel = sel.saturating_sub(10),
            Action::PageDown => *sel = (*sel + 10).min(last),
            Action::First => *sel = 0,
            Action::Last => *sel = last,
            Action::AddSeed => {
                self.dialog = Some(Dialog::Editor {
                    index: None,
                    editor: EditorState::default(),
                    label,
                })
            }
            Action::EditSeed if n > 0 => {
                let index = (*sel).min(last);
                let text = ws.seeds().get(index).map(|s| s.text.as_str());
                self.dialog = Some(Dialog::Editor {
                    index: Some(index),
                    editor: EditorState::new(text.unwrap_or_default()),
                    label,
                });
            }
            Action::DeleteSeed if n > 0 => {
                self.dialog = Some(Dialog::ConfirmDelete((*sel).min(last)))
            }
            _ => {}
        }
    }

    /// Puts the dialog back unless `action` closed it.
    fn on_dialog(&mut self, dialog: Dialog, action: Action, ws: &ReadModel, out: &mut Vec<Out>) {
        match dialog {
            Dialog::ConfirmDelete(index) => match action {
                Action::Yes => out.push(Out::Write(
                    Write::DeleteSeed(index),
                    Then::Seeds(SeedWrite::Deleted(index)),
                )),
                Action::No => {}
                _ => self.dialog = Some(Dialog::ConfirmDelete(index)),
            },
            Dialog::Editor {
                index,
                mut editor,
                label,
            } => {
                let labels = label_names(ws);
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
                        let then = SeedWrite::Saved {
                            index,
                            editor,
                            label,
                        };
                        out.push(Out::Write(write, Then::Seeds(then)));
                        return;
                    }
                    other => {
                        edit_text(&mut editor, &other);
                        label
                    }
                };
                self.dialog = Some(Dialog::Editor {
                    index,
                    editor,
                    label,
                });
            }
        }
    }
}

impl Component for SeedsState {
    fn dialog(&self) -> Option<Context> {
        self.dialog.as_ref().map(|d| match d {
            Dialog::Editor { .. } => Context::TextInput,
            Dialog::ConfirmDelete(_) => Context::Confirm,
        })
    }

    fn handle(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        match self.dialog.take() {
            Some(dialog) => self.on_dialog(dialog, action, shared.ws, out),
            None => self.on_list(action, shared.ws),
        }
    }

    fn answered(
        &mut self,
        then: Then,
        result: Result<&[Applied], &WriteError>,
        shared: &Shared,
        out: &mut Vec<Out>,
    ) {
        let Then::Seeds(write) = then else {
            return;
        };
        let n = shared.ws.seeds().len();
        match (write, result) {
            (SeedWrite::Saved { index: Some(i), .. }, Ok(_)) => {
                out.push(Out::ok(format!("seed {} saved", i + 1)))
            }
            (SeedWrite::Saved { index: None, .. }, Ok(_)) => {
                self.selected = n.saturating_sub(1);
                out.push(Out::ok(format!("seed {n} added")));
            }
            (SeedWrite::Deleted(index), Ok(_)) => {
                self.selected = self.selected.min(n.saturating_sub(1));
                out.push(Out::ok(format!("seed {} deleted", index + 1)));
            }
            (
                SeedWrite::Saved {
                    index,
                    editor,
                    label,
                },
                Err(e),
            ) => {
                out.push(Out::refused("seed", e));
                self.dialog = Some(Dialog::Editor {
                    index,
                    editor,
                    label,
                });
            }
            (SeedWrite::Deleted(_), Err(e)) => out.push(Out::refused("delete seed", e)),
        }
    }

    fn paste(&mut self, text: &str) -> bool {
        match &mut self.dialog {
            Some(Dialog::Editor { editor, .. }) => {
                editor.paste(text, true);
                true
            }
            _ => false,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, shared: &Shared) {
        draw(frame, area, theme, shared.ws, self.selected)
    }

    fn draw_dialog(&self, frame: &mut Frame, theme: &Theme, shared: &Shared) {
        match &self.dialog {
            None => {}
            Some(Dialog::Editor {
                index,
                editor,
                label,
            }) => draw_editor(frame, theme, shared.ws, *index, editor, *label),
            Some(Dialog::ConfirmDelete(i)) => {
                let text = shared.ws.seeds().get(*i).map(|s| truncate(&s.text, 50));
                let text = text.unwrap_or_default();
                confirm(
                    frame,
                    theme,
                    "Delete seed?",
                    &format!("Delete seed {} “{text}”? (y/n)", i + 1),
                )
            }
        }
    }
}

fn draw(frame: &mut Frame, area: Rect, theme: &Theme, ws: &ReadModel, selected: usize) {
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
    let mut state =
        TableState::default().with_selected((n > 0).then_some(selected.min(n.saturating_sub(1))));
    frame.render_stateful_widget(table, table_area, &mut state);
}

fn draw_editor(
    frame: &mut Frame,
    theme: &Theme,
    ws: &ReadModel,
    index: Option<usize>,
    editor: &EditorState,
    label: usize,
) {
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
