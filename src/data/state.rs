//! The current state of a workspace: the replay of its journal. Pure logic, no I/O, so every
//! rule here is tested directly and the file layer only decides what reaches [`State::apply`].
//!
//! # Status of an item
//!
//! * **Accepted** / **Rejected**: the user decided (a human decision beats the filters, so an
//!   accepted item stays accepted even if a later filter fails it).
//! * **AutoRejected**: undecided, some filter verdict failed and the user has not rescued it.
//! * **Pending**: undecided and not auto-rejected; these items, in the order they were added, are
//!   the review queue. An item whose filters have not run yet is pending too: the caller decides
//!   whether to show it before its verdicts arrive ([`ItemState::verdicts`]).
//!
//! # Undo and redo
//!
//! Decisions are `accept`, `reject`, `edit`, `relabel` and `rescue`; `item_added` and `verdict`
//! are facts about the pipeline, not decisions, and are never undone. `undo` reverts the most
//! recent decision not yet undone, restoring that item's decision, text, label and rescue mark
//! exactly as they were; consecutive undos walk further back. `redo` re-applies the most recently
//! undone decision; consecutive redos walk forward again. A new decision after an undo discards
//! what could have been redone (as in any editor), so redo never resurrects a decision the user
//! has since overridden. `undo` with nothing to undo and `redo` with nothing to redo are errors,
//! and nothing is written. Undo/redo history is part of the state, so it survives a restart.

use std::collections::{BTreeSet, HashMap};

use super::item::{Item, ItemId, Source, Verdict};
use super::record::{Record, RecordBody, Seq};

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Accepted,
    Rejected,
    AutoRejected,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Pending,
        Status::Accepted,
        Status::Rejected,
        Status::AutoRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
            Status::AutoRejected => "auto_rejected",
        }
    }
}

/// The user's verdict on an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accepted,
    Rejected { reason: Option<String> },
}

/// Everything a decision can change on an item; undo restores a saved copy of it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Marks {
    decision: Option<Decision>,
    text: Option<String>,
    label: Option<String>,
    rescued: bool,
}

/// An item as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemState {
    item: Item,
    added_seq: Seq,
    verdicts: Vec<Verdict>,
    marks: Marks,
}

impl ItemState {
    pub fn id(&self) -> &ItemId {
        &self.item.id
    }
    /// The text after the user's edits.
    pub fn text(&self) -> &str {
        self.marks.text.as_deref().unwrap_or(&self.item.text)
    }
    /// The label after the user's relabelling.
    pub fn label(&self) -> &str {
        self.marks.label.as_deref().unwrap_or(&self.item.label)
    }
    /// The item as it was added (original text and label, raw output, prompt, meta).
    pub fn original(&self) -> &Item {
        &self.item
    }
    pub fn source(&self) -> Source {
        self.item.source
    }
    /// Sequence number of the record that added the item.
    pub fn added_seq(&self) -> Seq {
        self.added_seq
    }
    /// The latest verdict of each stage, in the order the stages first reported.
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }
    pub fn failed_verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| !v.pass)
    }
    pub fn decision(&self) -> Option<&Decision> {
        self.marks.decision.as_ref()
    }
    pub fn is_rescued(&self) -> bool {
        self.marks.rescued
    }
    pub fn is_edited(&self) -> bool {
        self.marks.text.is_some()
    }
    pub fn is_relabelled(&self) -> bool {
        self.marks.label.is_some()
    }
    /// Some filter failed the item and the user has not rescued it.
    pub fn is_auto_rejected(&self) -> bool {
        !self.marks.rescued && self.verdicts.iter().any(|v| !v.pass)
    }
    pub fn status(&self) -> Status {
        match &self.marks.decision {
            Some(Decision::Accepted) => Status::Accepted,
            Some(Decision::Rejected { .. }) => Status::Rejected,
            None if self.is_auto_rejected() => Status::AutoRejected,
            None => Status::Pending,
        }
    }
}

/// Number of items in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub pending: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub auto_rejected: usize,
}

impl StatusCounts {
    pub fn get(&self, s: Status) -> usize {
        match s {
            Status::Pending => self.pending,
            Status::Accepted => self.accepted,
            Status::Rejected => self.rejected,
            Status::AutoRejected => self.auto_rejected,
        }
    }
    fn slot(&mut self, s: Status) -> &mut usize {
        match s {
            Status::Pending => &mut self.pending,
            Status::Accepted => &mut self.accepted,
            Status::Rejected => &mut self.rejected,
            Status::AutoRejected => &mut self.auto_rejected,
        }
    }
    pub fn total(&self) -> usize {
        self.pending + self.accepted + self.rejected + self.auto_rejected
    }
}

/// What a successfully applied record changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The item concerned (for undo/redo: the item whose decision was undone/redone).
    pub item_id: ItemId,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Verdict,
    /// A decision of this record type (`accept`, `edit`…) took effect.
    Decided(&'static str),
    Undone(&'static str),
    Redone(&'static str),
}

/// Why a record cannot apply. The workspace checks before writing, so a journal it wrote never
/// holds such a record; replay skips them (with a warning) in a journal edited by other hands.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    #[error("record seq {seq} does not follow seq {last}")]
    SeqNotIncreasing { seq: Seq, last: Seq },
    #[error("an item needs an id")]
    EmptyId,
    #[error("item {0} already exists")]
    DuplicateId(ItemId),
    #[error("seeds live in seeds.jsonl, not in the journal")]
    SeedInJournal,
    #[error("no item {0}")]
    UnknownItem(ItemId),
    #[error("label `{label}` is not one of the task's labels ({})", .labels.join(", "))]
    UnknownLabel { label: String, labels: Vec<String> },
    #[error("item {item_id}: {detail}: JSON cannot store it")]
    NonFinite { item_id: ItemId, detail: String },
    #[error("item {0}: the text cannot be empty")]
    EmptyText(ItemId),
    #[error("item {item_id} is already {what}")]
    NoChange { item_id: ItemId, what: &'static str },
    #[error("item {0} was not rejected by a filter, so there is nothing to rescue")]
    NotAutoRejected(ItemId),
    #[error("nothing to undo")]
    NothingToUndo,
    #[error("nothing to redo")]
    NothingToRedo,
}

/// A decision that took effect, with what it replaced.
#[derive(Debug, Clone)]
struct Done {
    item: usize,
    body: RecordBody,
    before: Marks,
}

/// The replayed journal.
#[derive(Debug, Clone)]
pub struct State {
    labels: Vec<String>,
    items: Vec<ItemState>,
    index: HashMap<ItemId, usize>,
    /// Decisions in effect, oldest first: what `undo` walks back through.
    done: Vec<Done>,
    /// Undone decisions, most recently undone last: what `redo` walks forward through.
    undone: Vec<Done>,
    counts: Vec<StatusCounts>,
    queue: BTreeSet<usize>,
    last_seq: Seq,
    /// Highest number used in an id, per source prefix, so new ids never collide.
    max_id_number: HashMap<&'static str, u64>,
}

impl State {
    /// An empty state for a task with these labels (their order is the order of [`Self::counts`]).
    pub fn new(labels: Vec<String>) -> State {
        let counts = vec![StatusCounts::default(); labels.len()];
        State {
            labels,
            items: Vec::new(),
            index: HashMap::new(),
            done: Vec::new(),
            undone: Vec::new(),
            counts,
            queue: BTreeSet::new(),
            last_seq: 0,
            max_id_number: HashMap::new(),
        }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }
    /// Items in the order they were added.
    pub fn items(&self) -> &[ItemState] {
        &self.items
    }
    pub fn get(&self, id: &str) -> Option<&ItemState> {
        self.index.get(id).map(|&i| &self.items[i])
    }
    /// Position of an item in [`Self::items`].
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }
    /// Pending items in the order they were added: what the user reviews next.
    pub fn review_queue(&self) -> impl Iterator<Item = &ItemState> + '_ {
        self.queue.iter().map(|&i| &self.items[i])
    }
    /// Positions in [`Self::items`] of the pending items, in order (the review queue's).
    pub fn review_queue_positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.queue.iter().copied()
    }
    /// The first pending item after position `after` in [`Self::items`] (from the start if None).
    pub fn next_pending(&self, after: Option<usize>) -> Option<&ItemState> {
        let from = after.map_or(0, |a| a + 1);
        self.queue.range(from..).next().map(|&i| &self.items[i])
    }
    pub fn with_status(&self, s: Status) -> impl Iterator<Item = &ItemState> + '_ {
        self.items.iter().filter(move |it| it.status() == s)
    }
    /// Counts per label, in the order of [`Self::labels`].
    pub fn counts(&self) -> impl Iterator<Item = (&str, StatusCounts)> + '_ {
        self.labels
            .iter()
            .map(String::as_str)
            .zip(self.counts.iter().copied())
    }
    pub fn counts_of(&self, label: &str) -> Option<StatusCounts> {
        self.label_index(label).map(|i| self.counts[i])
    }
    pub fn totals(&self) -> StatusCounts {
        let mut t = StatusCounts::default();
        for c in &self.counts {
            for s in Status::ALL {
                *t.slot(s) += c.get(s);
            }
        }
        t
    }
    pub fn can_undo(&self) -> bool {
        !self.done.is_empty()
    }
    pub fn can_redo(&self) -> bool {
        !self.undone.is_empty()
    }
    /// How many decisions `undo` could revert, and `redo` bring back: a decision's place in the
    /// history, for telling whether a group of them is still on top.
    pub fn history_depths(&self) -> (usize, usize) {
        (self.done.len(), self.undone.len())
    }
    /// The decision `undo` would revert: (its record type, its item).
    pub fn undo_target(&self) -> Option<(&'static str, &ItemId)> {
        self.done
            .last()
            .map(|d| (d.body.kind(), self.items[d.item].id()))
    }

    /// A fresh id for an item of this source: one past the highest number used so far.
    pub fn next_id(&self, source: Source) -> ItemId {
        let prefix = source.id_prefix();
        let n = self.max_id_number.get(prefix).copied().unwrap_or(0) + 1;
        ItemId(format!("{prefix}-{n:06}"))
    }

    fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    fn item_index(&self, id: &ItemId) -> Result<usize, StateError> {
        self.index
            .get(id)
            .copied()
            .ok_or_else(|| StateError::UnknownItem(id.clone()))
    }

    fn known_label(&self, label: &str) -> Result<(), StateError> {
        match self.label_index(label) {
            Some(_) => Ok(()),
            None => Err(StateError::UnknownLabel {
                label: label.to_string(),
                labels: self.labels.clone(),
            }),
        }
    }

    /// Whether `body` would apply now, without changing anything.
    pub fn check(&self, body: &RecordBody) -> Result<(), StateError> {
        match body {
            RecordBody::ItemAdded { item } => {
                if item.id.0.is_empty() {
                    return Err(StateError::EmptyId);
                }
                if item.source == Source::Seed {
                    return Err(StateError::SeedInJournal);
                }
                if self.index.contains_key(&item.id) {
                    return Err(StateError::DuplicateId(item.id.clone()));
                }
                self.known_label(&item.label)
            }
            RecordBody::Verdict { item_id, verdict } => {
                self.item_index(item_id)?;
                match verdict.non_finite() {
                    Some(detail) => Err(StateError::NonFinite {
                        item_id: item_id.clone(),
                        detail,
                    }),
                    None => Ok(()),
                }
            }
            RecordBody::Accept { item_id } => {
                let it = &self.items[self.item_index(item_id)?];
                match it.marks.decision {
                    Some(Decision::Accepted) => Err(no_change(item_id, "accepted")),
                    _ => Ok(()),
                }
            }
            RecordBody::Reject { item_id, reason } => {
                let it = &self.items[self.item_index(item_id)?];
                match &it.marks.decision {
                    Some(Decision::Rejected { reason: r }) if r == reason => {
                        Err(no_change(item_id, "rejected"))
                    }
                    _ => Ok(()),
                }
            }
            RecordBody::Edit { item_id, text } => {
                let it = &self.items[self.item_index(item_id)?];
                if text.trim().is_empty() {
                    Err(StateError::EmptyText(item_id.clone()))
                } else if it.text() == text {
                    Err(no_change(item_id, "worded so"))
                } else {
                    Ok(())
                }
            }
            RecordBody::Relabel { item_id, label } => {
                let it = &self.items[self.item_index(item_id)?];
                self.known_label(label)?;
                if it.label() == label {
                    Err(no_change(item_id, "labelled so"))
                } else {
                    Ok(())
                }
            }
            RecordBody::Rescue { item_id } => {
                let it = &self.items[self.item_index(item_id)?];
                if it.is_auto_rejected() && it.marks.decision.is_none() {
                    Ok(())
                } else {
                    Err(StateError::NotAutoRejected(item_id.clone()))
                }
            }
            RecordBody::Undo {} if self.done.is_empty() => Err(StateError::NothingToUndo),
            RecordBody::Redo {} if self.undone.is_empty() => Err(StateError::NothingToRedo),
            RecordBody::Undo {} | RecordBody::Redo {} => Ok(()),
        }
    }

    /// Applies one record. On error the state is unchanged.
    pub fn apply(&mut self, rec: &Record) -> Result<Applied, StateError> {
        self.apply_owned(rec.clone())
    }

    /// [`Self::apply`] without copying the record (replay moves each item into the state).
    pub fn apply_owned(&mut self, rec: Record) -> Result<Applied, StateError> {
        if rec.seq <= self.last_seq {
            return Err(StateError::SeqNotIncreasing {
                seq: rec.seq,
                last: self.last_seq,
            });
        }
        self.check(&rec.body)?;
        self.last_seq = rec.seq;
        Ok(self.apply_checked(rec.body, rec.seq))
    }

    fn apply_checked(&mut self, body: RecordBody, seq: Seq) -> Applied {
        match body {
            RecordBody::ItemAdded { item } => {
                self.note_id_number(&item);
                let i = self.items.len();
                let id = item.id.clone();
                self.index.insert(id.clone(), i);
                self.items.push(ItemState {
                    item,
                    added_seq: seq,
                    verdicts: Vec::new(),
                    marks: Marks::default(),
                });
                self.count(i, 1);
                applied(id, Change::Added)
            }
            RecordBody::Verdict { item_id, verdict } => {
                let i = self.index[&item_id];
                self.update(i, |it| {
                    match it.verdicts.iter_mut().find(|v| v.stage == verdict.stage) {
                        Some(old) => *old = verdict,
                        None => it.verdicts.push(verdict),
                    }
                });
                applied(item_id, Change::Verdict)
            }
            RecordBody::Undo {} => {
                let done = self.done.pop().expect("checked: something to undo");
                let kind = done.body.kind();
                let before = done.before.clone();
                self.update(done.item, |it| it.marks = before);
                let id = self.items[done.item].id().clone();
                self.undone.push(done);
                applied(id, Change::Undone(kind))
            }
            RecordBody::Redo {} => {
                let redo = self.undone.pop().expect("checked: something to redo");
                let kind = redo.body.kind();
                self.decide(redo.item, &redo.body);
                let id = self.items[redo.item].id().clone();
                self.done.push(redo);
                applied(id, Change::Redone(kind))
            }
            decision => {
                let id = decision.item_id().expect("decisions name an item").clone();
                let i = self.index[&id];
                let before = self.items[i].marks.clone();
                self.decide(i, &decision);
                let kind = decision.kind();
                self.done.push(Done {
                    item: i,
                    body: decision,
                    before,
                });
                self.undone.clear();
                applied(id, Change::Decided(kind))
            }
        }
    }

    fn decide(&mut self, i: usize, body: &RecordBody) {
        self.update(i, |it| match body {
            RecordBody::Accept { .. } => it.marks.decision = Some(Decision::Accepted),
            RecordBody::Reject { reason, .. } => {
                it.marks.decision = Some(Decision::Rejected {
                    reason: reason.clone(),
                })
            }
            RecordBody::Edit { text, .. } => {
                it.marks.text = (*text != it.item.text).then(|| text.clone())
            }
            RecordBody::Relabel { label, .. } => {
                it.marks.label = (*label != it.item.label).then(|| label.clone())
            }
            RecordBody::Rescue { .. } => it.marks.rescued = true,
            _ => unreachable!("only decisions are decided"),
        });
    }

    /// Changes item `i`, keeping the counts and the review queue in step.
    fn update(&mut self, i: usize, f: impl FnOnce(&mut ItemState)) {
        self.count(i, -1);
        f(&mut self.items[i]);
        self.count(i, 1);
    }

    fn count(&mut self, i: usize, delta: isize) {
        let it = &self.items[i];
        let status = it.status();
        if let Some(l) = self.label_index(it.label()) {
            let slot = self.counts[l].slot(status);
            *slot = slot.wrapping_add_signed(delta);
        }
        if status == Status::Pending {
            if delta > 0 {
                self.queue.insert(i);
            } else {
                self.queue.remove(&i);
            }
        }
    }

    fn note_id_number(&mut self, item: &Item) {
        let prefix = item.source.id_prefix();
        if let Some(n) = item
            .id
            .0
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|n| n.parse::<u64>().ok())
        {
            let max = self.max_id_number.entry(prefix).or_insert(0);
            *max = (*max).max(n);
        }
    }
}

fn applied(item_id: ItemId, change: Change) -> Applied {
    Applied { item_id, change }
}

fn no_change(item_id: &ItemId, what: &'static str) -> StateError {
    StateError::NoChange {
        item_id: item_id.clone(),
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Replay {
        state: State,
        seq: Seq,
    }

    impl Replay {
        fn new() -> Replay {
            Replay {
                state: State::new(vec!["negative".into(), "positive".into()]),
                seq: 0,
            }
        }
        fn try_apply(&mut self, body: RecordBody) -> Result<Applied, StateError> {
            self.seq += 1;
            self.state.apply(&Record::new(self.seq, body))
        }
        fn apply(&mut self, body: RecordBody) -> Applied {
            self.try_apply(body).unwrap()
        }
        fn add(&mut self, id: &str, text: &str, label: &str) {
            let mut item = Item::new(text, label, Source::Generated);
            item.id = id.into();
            self.apply(RecordBody::ItemAdded { item });
        }
        fn status(&self, id: &str) -> Status {
            self.state.get(id).unwrap().status()
        }
        fn queue(&self) -> Vec<&str> {
            self.state.review_queue().map(|i| i.id().as_str()).collect()
        }
    }

    fn id(s: &str) -> ItemId {
        s.into()
    }
    fn accept(s: &str) -> RecordBody {
        RecordBody::Accept { item_id: id(s) }
    }
    fn reject(s: &str) -> RecordBody {
        RecordBody::Reject {
            item_id: id(s),
            reason: None,
        }
    }
    fn fail(s: &str, stage: &str) -> RecordBody {
        RecordBody::Verdict {
            item_id: id(s),
            verdict: Verdict::fail(stage, "because"),
        }
    }
    fn pass(s: &str, stage: &str) -> RecordBody {
        RecordBody::Verdict {
            item_id: id(s),
            verdict: Verdict::pass(stage),
        }
    }

    #[test]
    fn statuses_and_queue_follow_verdicts_and_decisions() {
        let mut r = Replay::new();
        r.add("g-000001", "good", "positive");
        r.add("g-000002", "bad", "negative");
        r.add("g-000003", "meh", "positive");
        assert_eq!(r.queue(), ["g-000001", "g-000002", "g-000003"]);
        r.apply(pass("g-000001", "malformed"));
        r.apply(fail("g-000002", "exact_dup"));
        assert_eq!(r.status("g-000002"), Status::AutoRejected);
        r.apply(accept("g-000001"));
        assert_eq!(r.queue(), ["g-000003"]);
        assert_eq!(r.status("g-000001"), Status::Accepted);
        let pos = r.state.counts_of("positive").unwrap();
        assert_eq!((pos.accepted, pos.pending), (1, 1));
        let neg = r.state.counts_of("negative").unwrap();
        assert_eq!(neg.auto_rejected, 1);
        assert_eq!(r.state.totals().total(), 3);
        // A later failing verdict does not override the user's acceptance.
        r.apply(fail("g-000001", "near_dup"));
        assert_eq!(r.status("g-000001"), Status::Accepted);
        // A later verdict of the same stage replaces the earlier one.
        r.apply(pass("g-000002", "exact_dup"));
        assert_eq!(r.status("g-000002"), Status::Pending);
        assert_eq!(r.state.get("g-000002").unwrap().verdicts().len(), 1);
        assert_eq!(r.queue(), ["g-000002", "g-000003"]);
        assert_eq!(
            r.state.next_pending(Some(1)).unwrap().id().as_str(),
            "g-000003"
        );
        assert!(r.state.next_pending(Some(2)).is_none());
    }

    #[test]
    fn multi_level_undo_restores_each_earlier_state_and_redo_walks_forward() {
        let mut r = Replay::new();
        r.add("g-000001", "good", "positive");
        r.add("g-000002", "bad", "negative");
        r.apply(accept("g-000001"));
        r.apply(RecordBody::Edit {
            item_id: id("g-000002"),
            text: "very bad".into(),
        });
        r.apply(RecordBody::Relabel {
            item_id: id("g-000002"),
            label: "positive".into(),
        });
        r.apply(reject("g-000002"));
        assert_eq!(r.state.counts_of("positive").unwrap().rejected, 1);

        let u = r.apply(RecordBody::Undo {});
        assert_eq!(u, applied(id("g-000002"), Change::Undone("reject")));
        assert_eq!(r.status("g-000002"), Status::Pending);
        assert_eq!(r.state.get("g-000002").unwrap().label(), "positive");
        r.apply(RecordBody::Undo {});
        assert_eq!(r.state.get("g-000002").unwrap().label(), "negative");
        assert!(!r.state.get("g-000002").unwrap().is_relabelled());
        r.apply(RecordBody::Undo {});
        assert_eq!(r.state.get("g-000002").unwrap().text(), "bad");
        let u = r.apply(RecordBody::Undo {});
        assert_eq!(u.change, Change::Undone("accept"));
        assert_eq!(r.status("g-000001"), Status::Pending);
        assert_eq!(
            r.try_apply(RecordBody::Undo {}),
            Err(StateError::NothingToUndo)
        );

        // Redo walks forward in the original order.
        assert_eq!(
            r.apply(RecordBody::Redo {}).change,
            Change::Redone("accept")
        );
        assert_eq!(r.status("g-000001"), Status::Accepted);
        assert_eq!(r.apply(RecordBody::Redo {}).change, Change::Redone("edit"));
        assert_eq!(r.state.get("g-000002").unwrap().text(), "very bad");
        // A new decision discards the rest of the redo history.
        r.apply(accept("g-000002"));
        assert_eq!(
            r.try_apply(RecordBody::Redo {}),
            Err(StateError::NothingToRedo)
        );
        assert_eq!(r.state.get("g-000002").unwrap().label(), "negative");
        // And undo now reverts that new decision first.
        r.apply(RecordBody::Undo {});
        assert_eq!(r.status("g-000002"), Status::Pending);
        assert_eq!(r.state.get("g-000002").unwrap().text(), "very bad");
        let neg = r.state.counts_of("negative").unwrap();
        let pos = r.state.counts_of("positive").unwrap();
        assert_eq!((neg.pending, pos.accepted, pos.pending), (1, 1, 0));
    }

    #[test]
    fn rescue_moves_an_auto_rejected_item_back_to_the_queue_and_undo_takes_it_out() {
        let mut r = Replay::new();
        r.add("g-000001", "x", "positive");
        assert_eq!(
            r.try_apply(RecordBody::Rescue {
                item_id: id("g-000001")
            }),
            Err(StateError::NotAutoRejected(id("g-000001")))
        );
        r.apply(fail("g-000001", "label_consistency"));
        assert!(r.queue().is_empty());
        r.apply(RecordBody::Rescue {
            item_id: id("g-000001"),
        });
        assert_eq!(r.queue(), ["g-000001"]);
        assert!(r.state.get("g-000001").unwrap().is_rescued());
        // A rescued item stays rescued whatever the filters say next.
        r.apply(fail("g-000001", "confidence"));
        assert_eq!(r.status("g-000001"), Status::Pending);
        r.apply(RecordBody::Undo {});
        assert_eq!(r.status("g-000001"), Status::AutoRejected);
        assert_eq!(r.state.counts_of("positive").unwrap().auto_rejected, 1);
        assert_eq!(r.state.counts_of("positive").unwrap().pending, 0);
    }

    #[test]
    fn invalid_records_are_refused_and_leave_the_state_unchanged() {
        let mut r = Replay::new();
        r.add("g-000001", "x", "positive");
        let before = (r.state.items().to_vec(), r.state.last_seq());
        let mut item = Item::new("y", "neutral", Source::Generated);
        item.id = "g-000002".into();
        assert!(matches!(
            r.try_apply(RecordBody::ItemAdded { item }),
            Err(StateError::UnknownLabel { .. })
        ));
        let mut dup = Item::new("y", "positive", Source::Generated);
        dup.id = "g-000001".into();
        assert_eq!(
            r.try_apply(RecordBody::ItemAdded { item: dup }),
            Err(StateError::DuplicateId(id("g-000001")))
        );
        let mut seed = Item::new("y", "positive", Source::Seed);
        seed.id = "s-1".into();
        assert_eq!(
            r.try_apply(RecordBody::ItemAdded { item: seed }),
            Err(StateError::SeedInJournal)
        );
        assert_eq!(
            r.try_apply(accept("g-000009")),
            Err(StateError::UnknownItem(id("g-000009")))
        );
        let nan = RecordBody::Verdict {
            item_id: id("g-000001"),
            verdict: Verdict::pass("confidence").with_score("p", f64::NAN),
        };
        assert!(matches!(
            r.try_apply(nan),
            Err(StateError::NonFinite { .. })
        ));
        let empty = RecordBody::Edit {
            item_id: id("g-000001"),
            text: "  ".into(),
        };
        assert_eq!(
            r.try_apply(empty),
            Err(StateError::EmptyText(id("g-000001")))
        );
        assert!(matches!(
            r.try_apply(RecordBody::Relabel {
                item_id: id("g-000001"),
                label: "positive".into()
            }),
            Err(StateError::NoChange { .. })
        ));
        assert_eq!(
            r.try_apply(RecordBody::Undo {}),
            Err(StateError::NothingToUndo)
        );
        assert_eq!((r.state.items().to_vec(), r.state.last_seq()), before);
        // A replayed record must come after the last one.
        let stale = Record::new(1, accept("g-000001"));
        assert!(matches!(
            r.state.apply(&stale),
            Err(StateError::SeqNotIncreasing { .. })
        ));
        assert_eq!(r.status("g-000001"), Status::Pending);
    }

    #[test]
    fn new_ids_never_collide_with_existing_ones() {
        let mut r = Replay::new();
        assert_eq!(r.state.next_id(Source::Generated).as_str(), "g-000001");
        r.add("g-000041", "x", "positive");
        assert_eq!(r.state.next_id(Source::Generated).as_str(), "g-000042");
        assert_eq!(r.state.next_id(Source::Annotated).as_str(), "a-000001");
    }

    #[test]
    fn editing_back_to_the_original_text_clears_the_edited_mark() {
        let mut r = Replay::new();
        r.add("g-000001", "orig", "positive");
        r.apply(RecordBody::Edit {
            item_id: id("g-000001"),
            text: "changed".into(),
        });
        assert!(r.state.get("g-000001").unwrap().is_edited());
        r.apply(RecordBody::Edit {
            item_id: id("g-000001"),
            text: "orig".into(),
        });
        assert!(!r.state.get("g-000001").unwrap().is_edited());
        assert_eq!(r.state.get("g-000001").unwrap().text(), "orig");
    }
}
