//! Review's actions: the item on screen, moving through the queue, and the decisions (accept,
//! reject, edit, relabel, bulk) sent to the engine's store as writes; what the screen does once
//! the store answers is [`crate::tui::app::Then`]'s.

use super::review::{BULK_THRESHOLD, confidence};
use crate::data::item::ItemId;
use crate::data::record::RecordBody;
use crate::data::state::ItemState;
use crate::engine::Write;
use crate::tui::action::Action;
use crate::tui::app::{App, Overlay, Then, label_index, label_names};
use crate::tui::read_model::ReadModel;
use crate::tui::widgets::text_input::EditorState;

impl App {
    /// The item Review shows: the chosen one, else the first ready for review.
    pub fn review_target(&self, ws: &ReadModel) -> Option<ItemId> {
        if let Some(id) = &self.review.current
            && ws.state().get(id.as_str()).is_some()
            && !self.deciding(id)
        {
            return Some(id.clone());
        }
        self.ready_queue(ws).iter().next().map(|i| i.id().clone())
    }

    /// The next item ready for review after `id` in order, wrapping round to skipped ones.
    fn next_ready_after(&self, ws: &ReadModel, id: &ItemId) -> Option<ItemId> {
        let pos = ws.state().position(id.as_str());
        let ready = |i: &&ItemState| self.is_ready(i) && i.id() != id;
        let later = ws
            .state()
            .review_queue()
            .filter(|i| pos.is_none_or(|p| ws.state().position(i.id().as_str()) > Some(p)))
            .find(ready);
        later
            .or_else(|| ws.state().review_queue().find(ready))
            .map(|i| i.id().clone())
    }

    pub(crate) fn advance_from(&mut self, id: &ItemId) {
        let next = {
            let ws = &self.ws;
            self.next_ready_after(ws, id)
        };
        self.review.current = next;
    }

    pub(crate) fn ready_count(&self) -> usize {
        self.ready_queue(&self.ws).len()
    }

    pub(crate) fn review_action(&mut self, action: Action) {
        let target = {
            let ws = &self.ws;
            self.review_target(ws)
        };
        let Some(id) = target else {
            if matches!(
                action,
                Action::Accept
                    | Action::Reject
                    | Action::RejectWithReason
                    | Action::Skip
                    | Action::EditText
                    | Action::Relabel
            ) {
                self.warn("nothing to review: generate items on screen 2");
            } else if matches!(action, Action::Bulk) {
                self.overlay = Some(Overlay::Bulk {
                    threshold: BULK_THRESHOLD,
                    accept: true,
                });
            }
            return;
        };
        match action {
            Action::Accept => self.accept(id),
            Action::Reject => self.reject(id, None),
            Action::RejectWithReason => {
                self.overlay = Some(Overlay::RejectReason {
                    id,
                    editor: EditorState::default(),
                })
            }
            Action::Skip => {
                self.advance_from(&id);
                match &self.review.current {
                    Some(next) if *next != id => self.info(format!("skipped {id}")),
                    _ => {
                        self.review.current = Some(id);
                        self.info("no other item to review");
                    }
                }
            }
            Action::EditText => {
                let text = self
                    .ws
                    .state()
                    .get(id.as_str())
                    .map(|i| i.text().to_string())
                    .unwrap_or_default();
                self.overlay = Some(Overlay::EditItem {
                    id,
                    editor: EditorState::new(&text),
                });
            }
            Action::Relabel => {
                let selected = {
                    let ws = &self.ws;
                    let labels = label_names(ws);
                    ws.state()
                        .get(id.as_str())
                        .and_then(|i| label_index(&labels, i.label()))
                        .unwrap_or(0)
                };
                self.overlay = Some(Overlay::Relabel { id, selected });
            }
            Action::Bulk => {
                self.overlay = Some(Overlay::Bulk {
                    threshold: BULK_THRESHOLD,
                    accept: true,
                })
            }
            _ => {}
        }
    }

    pub(crate) fn accept(&mut self, id: ItemId) {
        let body = RecordBody::Accept {
            item_id: id.clone(),
        };
        let then = Then::Decided {
            id,
            verb: "accepted",
            reason: None,
        };
        self.write(Write::Records(vec![body]), then);
    }

    pub(crate) fn reject(&mut self, id: ItemId, reason: Option<String>) {
        let body = RecordBody::Reject {
            item_id: id.clone(),
            reason: reason.clone(),
        };
        let then = Then::Decided {
            id,
            verb: "rejected",
            reason,
        };
        self.write(Write::Records(vec![body]), then);
    }

    pub(crate) fn save_edit(&mut self, id: ItemId, editor: EditorState) {
        let text = editor.text();
        let unchanged = self
            .ws
            .state()
            .get(id.as_str())
            .is_some_and(|i| i.text() == text);
        if unchanged {
            self.info("text unchanged");
            return;
        }
        let body = RecordBody::Edit {
            item_id: id.clone(),
            text,
        };
        self.write(Write::Records(vec![body]), Then::Edited { id, editor });
    }

    pub(crate) fn relabel_picker(&mut self, id: ItemId, selected: usize, action: Action) {
        let labels = label_names(&self.ws);
        let choice = match action {
            Action::Up => {
                self.overlay = Some(Overlay::Relabel {
                    id,
                    selected: selected.saturating_sub(1),
                });
                return;
            }
            Action::Down => {
                self.overlay = Some(Overlay::Relabel {
                    id,
                    selected: (selected + 1).min(labels.len().saturating_sub(1)),
                });
                return;
            }
            Action::Pick(n) if n < labels.len() => n,
            Action::Submit => selected,
            Action::Cancel => return,
            _ => {
                self.overlay = Some(Overlay::Relabel { id, selected });
                return;
            }
        };
        let Some(label) = labels.get(choice).cloned() else {
            return;
        };
        let same = self
            .ws
            .state()
            .get(id.as_str())
            .is_some_and(|i| i.label() == label);
        if same {
            self.info(format!("{id} is already labelled {label}"));
            return;
        }
        let body = RecordBody::Relabel {
            item_id: id.clone(),
            label: label.clone(),
        };
        self.write(Write::Records(vec![body]), Then::Relabelled { id, label });
    }

    /// The items a bulk decision would touch: (ready items past the threshold, ready items
    /// without a classifier score).
    pub fn bulk_candidates(
        &self,
        ws: &ReadModel,
        threshold: f64,
        accept: bool,
    ) -> (Vec<(ItemId, f64)>, usize) {
        let mut hits = Vec::new();
        let mut unscored = 0;
        for it in ws.state().review_queue().filter(|i| self.is_ready(i)) {
            match confidence(it) {
                Some(p) if accept && p >= threshold => hits.push((it.id().clone(), p)),
                Some(p) if !accept && p < threshold => hits.push((it.id().clone(), p)),
                Some(_) => {}
                None => unscored += 1,
            }
        }
        (hits, unscored)
    }

    pub(crate) fn bulk_dialog(&mut self, threshold: f64, accept: bool, action: Action) {
        let step = 0.05;
        let round = |t: f64| ((t / step).round() * step).clamp(0.0, 1.0);
        let (threshold, accept) = match action {
            Action::Decrease => (round(threshold - step), accept),
            Action::Increase => (round(threshold + step), accept),
            Action::ToggleMode => (threshold, !accept),
            Action::Cancel => return,
            Action::Submit => {
                self.apply_bulk(threshold, accept);
                return;
            }
            _ => (threshold, accept),
        };
        self.overlay = Some(Overlay::Bulk { threshold, accept });
    }

    /// Decides every item past the threshold in one write: one journal append, one fsync.
    fn apply_bulk(&mut self, threshold: f64, accept: bool) {
        let (hits, _) = self.bulk_candidates(&self.ws, threshold, accept);
        if hits.is_empty() {
            self.info("bulk: no item past that threshold");
            return;
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
        self.write(Write::Records(bodies), then);
    }
}
