//! Review's actions: the item on screen, moving through the queue, the dialogs (edit, reject
//! with a reason, relabel, bulk), the decisions sent to the engine's store as writes, and what
//! the screen does once the store answers.

use super::review::{BULK_THRESHOLD, Dialog, ReviewState, confidence};
use crate::data::item::ItemId;
use crate::data::record::RecordBody;
use crate::data::state::{Applied, ItemState};
use crate::engine::{Write, WriteError};
use crate::tui::action::Action;
use crate::tui::app::{Then, edit_text, label_index, label_names};
use crate::tui::component::{Out, Shared};
use crate::tui::widgets::text_input::EditorState;

impl ReviewState {
    /// The item Review shows: the chosen one, else the first ready for review.
    pub fn target(&self, shared: &Shared) -> Option<ItemId> {
        if let Some(id) = &self.current
            && shared.ws.state().get(id.as_str()).is_some()
            && !shared.deciding(id)
        {
            return Some(id.clone());
        }
        shared.ready_queue().iter().next().map(|i| i.id().clone())
    }

    /// Shows `id` (an undo or redo brought it back).
    pub fn show(&mut self, id: ItemId) {
        self.current = Some(id);
    }

    /// The next item ready for review after `id` in order, wrapping round to skipped ones.
    fn next_ready_after(shared: &Shared, id: &ItemId) -> Option<ItemId> {
        let state = shared.ws.state();
        let pos = state.position(id.as_str());
        let ready = |i: &&ItemState| shared.is_ready(i) && i.id() != id;
        let later = state
            .review_queue()
            .filter(|i| pos.is_none_or(|p| state.position(i.id().as_str()) > Some(p)))
            .find(ready);
        later
            .or_else(|| state.review_queue().find(ready))
            .map(|i| i.id().clone())
    }

    fn advance_from(&mut self, shared: &Shared, id: &ItemId) {
        self.current = Self::next_ready_after(shared, id);
    }

    pub(super) fn on_screen(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        let bulk = || Dialog::Bulk {
            threshold: BULK_THRESHOLD,
            accept: true,
        };
        let Some(id) = self.target(shared) else {
            if matches!(
                action,
                Action::Accept
                    | Action::Reject
                    | Action::RejectWithReason
                    | Action::Skip
                    | Action::EditText
                    | Action::Relabel
            ) {
                out.push(Out::warn("nothing to review: generate items on screen 2"));
            } else if matches!(action, Action::Bulk) {
                self.dialog = Some(bulk());
            }
            return;
        };
        match action {
            Action::Accept => out.push(accept(id)),
            Action::Reject => out.push(reject(id, None)),
            Action::RejectWithReason => {
                self.dialog = Some(Dialog::RejectReason {
                    id,
                    editor: EditorState::default(),
                })
            }
            Action::Skip => {
                self.advance_from(shared, &id);
                match &self.current {
                    Some(next) if *next != id => out.push(Out::info(format!("skipped {id}"))),
                    _ => {
                        self.current = Some(id);
                        out.push(Out::info("no other item to review"));
                    }
                }
            }
            Action::EditText => {
                let text = shared
                    .ws
                    .state()
                    .get(id.as_str())
                    .map(|i| i.text().to_string())
                    .unwrap_or_default();
                self.dialog = Some(Dialog::EditItem {
                    id,
                    editor: EditorState::new(&text),
                });
            }
            Action::Relabel => {
                let labels = label_names(shared.ws);
                let selected = shared
                    .ws
                    .state()
                    .get(id.as_str())
                    .and_then(|i| label_index(&labels, i.label()))
                    .unwrap_or(0);
                self.dialog = Some(Dialog::Relabel { id, selected });
            }
            Action::Bulk => self.dialog = Some(bulk()),
            _ => {}
        }
    }

    /// A key in the open dialog; each arm puts the dialog back while it stays open.
    pub(super) fn on_dialog(
        &mut self,
        dialog: Dialog,
        action: Action,
        shared: &Shared,
        out: &mut Vec<Out>,
    ) {
        match dialog {
            Dialog::EditItem { id, mut editor } => match edit_text(&mut editor, &action) {
                Some(true) => out.push(save_edit(shared, id, editor)),
                Some(false) => {}
                None => self.dialog = Some(Dialog::EditItem { id, editor }),
            },
            Dialog::RejectReason { id, mut editor } => match edit_text(&mut editor, &action) {
                Some(true) => {
                    let reason = editor.text().trim().to_string();
                    out.push(reject(id, (!reason.is_empty()).then_some(reason)));
                }
                Some(false) => {}
                None => self.dialog = Some(Dialog::RejectReason { id, editor }),
            },
            Dialog::Relabel { id, selected } => {
                self.relabel_picker(id, selected, action, shared, out)
            }
            Dialog::Bulk { threshold, accept } => {
                self.bulk_dialog(threshold, accept, action, shared, out)
            }
        }
    }

    fn relabel_picker(
        &mut self,
        id: ItemId,
        selected: usize,
        action: Action,
        shared: &Shared,
        out: &mut Vec<Out>,
    ) {
        let labels = label_names(shared.ws);
        let choice = match action {
            Action::Up => {
                let selected = selected.saturating_sub(1);
                self.dialog = Some(Dialog::Relabel { id, selected });
                return;
            }
            Action::Down => {
                let selected = (selected + 1).min(labels.len().saturating_sub(1));
                self.dialog = Some(Dialog::Relabel { id, selected });
                return;
            }
            Action::Pick(n) if n < labels.len() => n,
            Action::Submit => selected,
            Action::Cancel => return,
            _ => {
                self.dialog = Some(Dialog::Relabel { id, selected });
                return;
            }
        };
        let Some(label) = labels.get(choice).cloned() else {
            return;
        };
        let same = shared
            .ws
            .state()
            .get(id.as_str())
            .is_some_and(|i| i.label() == label);
        if same {
            out.push(Out::info(format!("{id} is already labelled {label}")));
            return;
        }
        let body = RecordBody::Relabel {
            item_id: id.clone(),
            label: label.clone(),
        };
        out.push(Out::Write(
            Write::Records(vec![body]),
            Then::Relabelled { id, label },
        ));
    }

    fn bulk_dialog(
        &mut self,
        threshold: f64,
        accept: bool,
        action: Action,
        shared: &Shared,
        out: &mut Vec<Out>,
    ) {
        let step = 0.05;
        let round = |t: f64| ((t / step).round() * step).clamp(0.0, 1.0);
        let (threshold, accept) = match action {
            Action::Decrease => (round(threshold - step), accept),
            Action::Increase => (round(threshold + step), accept),
            Action::ToggleMode => (threshold, !accept),
            Action::Cancel => return,
            Action::Submit => return out.push(apply_bulk(shared, threshold, accept)),
            _ => (threshold, accept),
        };
        self.dialog = Some(Dialog::Bulk { threshold, accept });
    }

    /// The store's answer to a decision this screen asked for.
    pub(super) fn on_answer(
        &mut self,
        then: Then,
        result: Result<&[Applied], &WriteError>,
        shared: &Shared,
        out: &mut Vec<Out>,
    ) {
        let e = match result {
            Ok(_) => return self.on_written(then, shared, out),
            Err(e) => e,
        };
        let what = match &then {
            Then::Decided { id, verb, .. } => format!("{} {id}", &verb[..verb.len() - 2]),
            Then::Edited { id, .. } => format!("edit {id}"),
            Then::Relabelled { id, .. } => format!("relabel {id}"),
            Then::Bulk { verb, items } => format!("bulk: {verb} 0 of {}", items.len()),
            _ => return,
        };
        out.push(Out::refused(&what, e));
        // An editor whose text was not saved opens again with it, so nothing typed is lost.
        if let Then::Edited { id, editor } = then {
            self.dialog = Some(Dialog::EditItem { id, editor });
        }
    }

    fn on_written(&mut self, then: Then, shared: &Shared, out: &mut Vec<Out>) {
        match then {
            Then::Decided { id, verb, reason } => {
                self.advance_from(shared, &id);
                let left = shared.ready_queue().len();
                let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                out.push(Out::ok(format!("{verb} {id}{why} · {left} left to review")));
            }
            Then::Edited { id, .. } => {
                self.current = Some(id.clone());
                out.push(Out::Recheck(vec![id.clone()]));
                out.push(Out::ok(format!("edited {id}; its filters run again")));
            }
            Then::Relabelled { id, label } => {
                self.current = Some(id.clone());
                out.push(Out::Recheck(vec![id.clone()]));
                out.push(Out::ok(format!(
                    "relabelled {id} as {label}; its filters run again"
                )));
            }
            Then::Bulk { verb, items } => {
                if self.current.as_ref().is_some_and(|c| items.contains(c)) {
                    self.current = None;
                }
                out.push(Out::ok(format!(
                    "bulk: {verb} {} items (u undoes them all)",
                    items.len()
                )));
            }
            _ => {}
        }
    }
}

fn accept(id: ItemId) -> Out {
    let body = RecordBody::Accept {
        item_id: id.clone(),
    };
    let then = Then::Decided {
        id,
        verb: "accepted",
        reason: None,
    };
    Out::Write(Write::Records(vec![body]), then)
}

fn reject(id: ItemId, reason: Option<String>) -> Out {
    let body = RecordBody::Reject {
        item_id: id.clone(),
        reason: reason.clone(),
    };
    let then = Then::Decided {
        id,
        verb: "rejected",
        reason,
    };
    Out::Write(Write::Records(vec![body]), then)
}

fn save_edit(shared: &Shared, id: ItemId, editor: EditorState) -> Out {
    let text = editor.text();
    let unchanged = shared
        .ws
        .state()
        .get(id.as_str())
        .is_some_and(|i| i.text() == text);
    if unchanged {
        return Out::info("text unchanged");
    }
    let body = RecordBody::Edit {
        item_id: id.clone(),
        text,
    };
    Out::Write(Write::Records(vec![body]), Then::Edited { id, editor })
}

/// The items a bulk decision would touch: (ready items past the threshold, ready items without
/// a classifier score).
pub fn bulk_candidates(
    shared: &Shared,
    threshold: f64,
    accept: bool,
) -> (Vec<(ItemId, f64)>, usize) {
    let mut hits = Vec::new();
    let mut unscored = 0;
    for it in shared
        .ws
        .state()
        .review_queue()
        .filter(|i| shared.is_ready(i))
    {
        match confidence(it) {
            Some(p) if accept && p >= threshold => hits.push((it.id().clone(), p)),
            Some(p) if !accept && p < threshold => hits.push((it.id().clone(), p)),
            Some(_) => {}
            None => unscored += 1,
        }
    }
    (hits, unscored)
}

/// Decides every item past the threshold in one write: one journal append, one fsync.
fn apply_bulk(shared: &Shared, threshold: f64, accept: bool) -> Out {
    let (hits, _) = bulk_candidates(shared, threshold, accept);
    if hits.is_empty() {
        return Out::info("bulk: no item past that threshold");
    }
    let bodies = hits
        .iter()
        .map(|(id, p)| {
            let item_id = id.clone();
            if accept {
                RecordBody::Accept { item_id }
            } else {
                RecordBody::Reject {
                    item_id,
                    reason: Some(format!("bulk: confidence {p:.2} below {threshold:.2}")),
                }
            }
        })
        .collect();
    let then = Then::Bulk {
        verb: if accept { "accepted" } else { "rejected" },
        items: hits.into_iter().map(|(id, _)| id).collect(),
    };
    Out::Write(Write::Records(bodies), then)
}
