//! The review queue as the workbench shows it: the pending items less the few it holds back
//! (waiting for their label check, or with a decision on its way to the store). Made per frame
//! from the read model's queue and those few, so counting it, or finding an item's place in it,
//! costs what the held-back items cost rather than what the workspace holds.

use std::ops::Range;

use crate::data::item::ItemId;
use crate::data::state::ItemState;
use crate::tui::read_model::ReadModel;

pub struct ReadyQueue<'a> {
    ws: &'a ReadModel,
    /// Queue places of the pending items held back, ascending, without repeats.
    held_back: Vec<usize>,
}

impl<'a> ReadyQueue<'a> {
    /// The queue of `ws` less the items `held_back` (those not pending are ignored).
    pub fn new<'i>(
        ws: &'a ReadModel,
        held_back: impl IntoIterator<Item = &'i ItemId>,
    ) -> ReadyQueue<'a> {
        let mut held_back: Vec<usize> = held_back
            .into_iter()
            .filter_map(|id| ws.queue_rank(id.as_str()))
            .collect();
        held_back.sort_unstable();
        held_back.dedup();
        ReadyQueue { ws, held_back }
    }

    /// How many items are ready for review.
    pub fn len(&self) -> usize {
        self.ws.queue_len() - self.held_back.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many pending items are held back.
    pub fn waiting(&self) -> usize {
        self.held_back.len()
    }

    /// The place of `id` among the ready items, if it is one.
    pub fn position(&self, id: &ItemId) -> Option<usize> {
        let rank = self.ws.queue_rank(id.as_str())?;
        self.held_back
            .binary_search(&rank)
            .err()
            .map(|before| rank - before)
    }

    /// The ready items in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a ItemState> + '_ {
        self.ready_in(0..self.ws.queue_len(), 0..0)
    }

    /// The ready items after `id`, wrapping round to those before it; all of them, in order,
    /// when `id` is not a ready item.
    pub fn after(&self, id: Option<&ItemId>) -> impl Iterator<Item = &'a ItemState> + '_ {
        let len = self.ws.queue_len();
        let at = id
            .filter(|id| self.position(id).is_some())
            .and_then(|id| self.ws.queue_rank(id.as_str()));
        match at {
            Some(r) => self.ready_in(r + 1..len, 0..r),
            None => self.ready_in(0..len, 0..0),
        }
    }

    fn ready_in(
        &self,
        first: Range<usize>,
        then: Range<usize>,
    ) -> impl Iterator<Item = &'a ItemState> + '_ {
        let ws = self.ws;
        first
            .chain(then)
            .filter(|r| self.held_back.binary_search(r).is_err())
            .filter_map(move |r| ws.queued(r))
    }
}
