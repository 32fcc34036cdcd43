//! One journal record: what happened to which item, with its sequence number and time.
//!
//! On disk a record is one line of JSON:
//!
//! ```text
//! {"v":1,"seq":7,"ts":"2026-11-21T10:15:00.123Z","type":"accept","item_id":"g-000042"}
//! ```
//!
//! `v` is the format version of that line. A reader accepts every version up to its own and
//! refuses newer ones with a clear error, so a later release can read today's journals and an
//! old release never misreads a newer one. Fields this release does not know are ignored, so
//! a later release may add optional fields without bumping `v`.

use serde::{Deserialize, Serialize};

use super::item::{Item, ItemId, Verdict};

/// Version of the journal line format written by this release.
pub const JOURNAL_FORMAT_VERSION: u32 = 1;

/// Position of a record in its journal: strictly increasing, starting at 1.
pub type Seq = u64;

/// What a record says happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordBody {
    /// A candidate entered the workspace (generated or annotated).
    ItemAdded { item: Item },
    /// A filter judged an item. A later verdict of the same stage replaces the earlier one.
    Verdict { item_id: ItemId, verdict: Verdict },
    /// The user kept the item for training.
    Accept { item_id: ItemId },
    /// The user threw the item away.
    Reject {
        item_id: ItemId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Undo the most recent decision that is not undone yet.
    Undo {},
    /// Redo the most recently undone decision (only until a new decision is made).
    Redo {},
    /// The user rewrote the item's text.
    Edit { item_id: ItemId, text: String },
    /// The user moved the item to another class.
    Relabel { item_id: ItemId, label: String },
    /// The user overrode the filters: an auto-rejected item goes back to the review queue.
    Rescue { item_id: ItemId },
}

impl RecordBody {
    /// The record's `type` as written in the journal.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordBody::ItemAdded { .. } => "item_added",
            RecordBody::Verdict { .. } => "verdict",
            RecordBody::Accept { .. } => "accept",
            RecordBody::Reject { .. } => "reject",
            RecordBody::Undo {} => "undo",
            RecordBody::Redo {} => "redo",
            RecordBody::Edit { .. } => "edit",
            RecordBody::Relabel { .. } => "relabel",
            RecordBody::Rescue { .. } => "rescue",
        }
    }

    /// The item a record is about (none for `undo`/`redo`).
    pub fn item_id(&self) -> Option<&ItemId> {
        match self {
            RecordBody::ItemAdded { item } => Some(&item.id),
            RecordBody::Verdict { item_id, .. }
            | RecordBody::Accept { item_id }
            | RecordBody::Reject { item_id, .. }
            | RecordBody::Edit { item_id, .. }
            | RecordBody::Relabel { item_id, .. }
            | RecordBody::Rescue { item_id } => Some(item_id),
            RecordBody::Undo {} | RecordBody::Redo {} => None,
        }
    }

    /// Decisions are the user's acts, which undo and redo walk through.
    pub fn is_decision(&self) -> bool {
        matches!(
            self,
            RecordBody::Accept { .. }
                | RecordBody::Reject { .. }
                | RecordBody::Edit { .. }
                | RecordBody::Relabel { .. }
                | RecordBody::Rescue { .. }
        )
    }
}

/// A journal line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub v: u32,
    pub seq: Seq,
    /// UTC time of writing, RFC 3339 with milliseconds.
    pub ts: String,
    #[serde(flatten)]
    pub body: RecordBody,
}

/// Why a journal line could not be read as a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordParseError {
    #[error(
        "written by a newer seedforge (journal format {found}; this release reads up to {JOURNAL_FORMAT_VERSION})"
    )]
    NewerVersion { found: u32 },
    #[error("{0}")]
    Invalid(String),
}

/// Every field any record version may carry; unknown ones are ignored. Reading through this flat
/// shape (rather than serde's internally tagged enums) is faster and lets the version be checked
/// before the rest is interpreted.
#[derive(Deserialize)]
struct WireRecord {
    v: u32,
    seq: Seq,
    #[serde(default)]
    ts: String,
    #[serde(rename = "type")]
    kind: String,
    item: Option<Item>,
    item_id: Option<ItemId>,
    verdict: Option<Verdict>,
    reason: Option<String>,
    text: Option<String>,
    label: Option<String>,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

impl Record {
    pub fn new(seq: Seq, body: RecordBody) -> Record {
        Record {
            v: JOURNAL_FORMAT_VERSION,
            seq,
            ts: super::time::now_rfc3339(),
            body,
        }
    }

    /// The record as one journal line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // Serialising plain data (strings, finite floats, maps with string keys) cannot fail.
        let mut line = serde_json::to_vec(self).expect("a record always serialises");
        line.push(b'\n');
        line
    }

    /// Reads one journal line (without its newline).
    pub fn from_line(line: &[u8]) -> Result<Record, RecordParseError> {
        let wire: WireRecord = match serde_json::from_slice(line) {
            Ok(w) => w,
            Err(e) => {
                // A newer release may have changed the shape; say so rather than "corrupt".
                if let Ok(VersionOnly { v }) = serde_json::from_slice(line)
                    && v > JOURNAL_FORMAT_VERSION
                {
                    return Err(RecordParseError::NewerVersion { found: v });
                }
                return Err(RecordParseError::Invalid(e.to_string()));
            }
        };
        let WireRecord {
            v,
            seq,
            ts,
            kind,
            item,
            item_id,
            verdict,
            reason,
            text,
            label,
        } = wire;
        if v > JOURNAL_FORMAT_VERSION {
            return Err(RecordParseError::NewerVersion { found: v });
        }
        if v == 0 {
            return Err(RecordParseError::Invalid(
                "format version 0 does not exist".into(),
            ));
        }
        let missing =
            |field: &str| RecordParseError::Invalid(format!("`{kind}` record without `{field}`"));
        let body = match kind.as_str() {
            "item_added" => RecordBody::ItemAdded {
                item: item.ok_or_else(|| missing("item"))?,
            },
            "verdict" => RecordBody::Verdict {
                item_id: item_id.ok_or_else(|| missing("item_id"))?,
                verdict: verdict.ok_or_else(|| missing("verdict"))?,
            },
            "accept" => RecordBody::Accept {
                item_id: item_id.ok_or_else(|| missing("item_id"))?,
            },
            "reject" => RecordBody::Reject {
                item_id: item_id.ok_or_else(|| missing("item_id"))?,
                reason,
            },
            "undo" => RecordBody::Undo {},
            "redo" => RecordBody::Redo {},
            "edit" => RecordBody::Edit {
                item_id: item_id.ok_or_else(|| missing("item_id"))?,
                text: text.ok_or_else(|| missing("text"))?,
            },
            "relabel" => RecordBody::Relabel {
                item_id: item_id.ok_or_else(|| missing("item_id"))?,
                label: label.ok_or_else(|| missing("label"))?,
            },
            "rescue" => RecordBody::Rescue {
                item_id: item_id.ok_or_else(|| missing("item_id"))?,
            },
            other => {
                return Err(RecordParseError::Invalid(format!(
                    "unknown record type `{other}`"
                )));
            }
        };
        Ok(Record { v, seq, ts, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::item::Source;

    #[test]
    fn accept_line_has_the_documented_shape() {
        let rec = Record {
            v: 1,
            seq: 7,
            ts: "2026-11-21T10:15:00.123Z".into(),
            body: RecordBody::Accept {
                item_id: "g-000042".into(),
            },
        };
        assert_eq!(
            String::from_utf8(rec.to_line()).unwrap(),
            "{\"v\":1,\"seq\":7,\"ts\":\"2026-11-21T10:15:00.123Z\",\"type\":\"accept\",\"item_id\":\"g-000042\"}\n"
        );
    }

    #[test]
    fn every_body_round_trips() {
        let mut item = Item::new("a fine film", "positive", Source::Generated);
        item.id = "g-000001".into();
        item.raw = Some(" a fine film\n".into());
        item.meta
            .insert("temperature".into(), serde_json::json!(1.0));
        let verdict = Verdict {
            probs: Some(vec![("positive".into(), 0.75), ("negative".into(), 0.25)]),
            ..Verdict::fail("label_consistency", "predicted negative").with_score("p", 0.25)
        };
        let id = ItemId::from("g-000001");
        let bodies = vec![
            RecordBody::ItemAdded { item },
            RecordBody::Verdict {
                item_id: id.clone(),
                verdict,
            },
            RecordBody::Accept {
                item_id: id.clone(),
            },
            RecordBody::Reject {
                item_id: id.clone(),
                reason: Some("off topic".into()),
            },
            RecordBody::Reject {
                item_id: id.clone(),
                reason: None,
            },
            RecordBody::Undo {},
            RecordBody::Redo {},
            RecordBody::Edit {
                item_id: id.clone(),
                text: "new \"text\"\n".into(),
            },
            RecordBody::Relabel {
                item_id: id.clone(),
                label: "negative".into(),
            },
            RecordBody::Rescue { item_id: id },
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let rec = Record::new(i as u64 + 1, body);
            let line = rec.to_line();
            assert_eq!(
                line.iter().filter(|&&b| b == b'\n').count(),
                1,
                "one line per record"
            );
            let back = Record::from_line(&line[..line.len() - 1]).unwrap();
            assert_eq!(back, rec);
        }
    }

    #[test]
    fn newer_version_is_refused_by_name_and_unknown_fields_are_ignored() {
        let err = Record::from_line(br#"{"v":2,"seq":1,"type":"teleport"}"#).unwrap_err();
        assert_eq!(err, RecordParseError::NewerVersion { found: 2 });
        let rec =
            Record::from_line(br#"{"v":1,"seq":3,"ts":"x","type":"undo","added_later":[1,2]}"#)
                .unwrap();
        assert_eq!(rec.body, RecordBody::Undo {});
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for line in [
            &b""[..],
            b"{",
            b"{\"v\":1,\"seq\":1,\"type\":\"accept\"}",
            b"{\"v\":1,\"seq\":1,\"type\":\"fly\",\"item_id\":\"x\"}",
            b"{\"v\":0,\"seq\":1,\"type\":\"undo\"}",
            b"\xff\xfe",
            b"[1,2]",
        ] {
            assert!(
                matches!(Record::from_line(line), Err(RecordParseError::Invalid(_))),
                "{line:?}"
            );
        }
    }
}
