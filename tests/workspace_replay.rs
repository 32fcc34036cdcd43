//! Replay at scale, torn lines and journal versions through the public API.

use std::io::Write;
use std::time::Instant;

use seedforge::data::journal::{DROPPED_FILE, JOURNAL_FILE};
use seedforge::data::task::Task;
use seedforge::data::{Item, OpenWarning, RecordBody, Source, Status, Verdict, Workspace};

/// 100,000 items and 200,000 verdicts: how long does opening take? (Printed; asserted loosely.)
#[test]
fn opening_100k_items_and_200k_verdicts_is_fast() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ws");
    let mut ws = Workspace::create(&dir, &Task::demo(), &[]).unwrap();
    let prompt = "Write one new movie review whose sentiment is positive. Examples:\n".repeat(4);
    let build = Instant::now();
    for batch in 0..10 {
        let mut bodies = Vec::with_capacity(30_000);
        for i in batch * 10_000..(batch + 1) * 10_000 {
            let label = ["negative", "positive"][i % 2];
            let mut item = Item::new(
                format!("generated review number {i}, with a few more words to be realistic."),
                label,
                Source::Generated,
            );
            item.raw = Some(format!(" generated review number {i}\n"));
            item.prompt = Some(prompt.clone());
            item.meta.insert("temperature".into(), 1.0.into());
            item.meta.insert("tokens".into(), 23.into());
            bodies.push(RecordBody::ItemAdded { item });
        }
        for i in batch * 10_000..(batch + 1) * 10_000 {
            let id = format!("g-{:06}", i + 1);
            bodies.push(RecordBody::Verdict {
                item_id: id.as_str().into(),
                verdict: Verdict::pass("exact_dup"),
            });
            // Every third item (i = 0, 3, 6, …) fails the label-consistency filter.
            let v = if i % 3 == 0 {
                Verdict::fail("label_consistency", "predicted the other label")
            } else {
                Verdict::pass("label_consistency")
            };
            bodies.push(RecordBody::Verdict {
                item_id: id.as_str().into(),
                verdict: v.with_score("p", 0.5 + (i % 50) as f64 / 100.0),
            });
        }
        ws.append_all(bodies).unwrap();
    }
    let built = build.elapsed();
    drop(ws);
    let size = std::fs::metadata(dir.join(JOURNAL_FILE)).unwrap().len();

    let t = Instant::now();
    let read = seedforge::data::journal::read(&dir.join(JOURNAL_FILE), None).unwrap();
    let parse = t.elapsed();
    assert_eq!(read.records.len(), 300_000);
    drop(read);
    let t = Instant::now();
    let ws = Workspace::open(&dir).unwrap();
    let open = t.elapsed();
    eprintln!(
        "replay: 100,000 items + 200,000 verdicts ({:.1} MB journal) opened in {:.0} ms, of \
         which reading and parsing ~{:.0} ms (written in {:.1} s)",
        size as f64 / 1e6,
        open.as_secs_f64() * 1e3,
        parse.as_secs_f64() * 1e3,
        built.as_secs_f64()
    );
    // 0, 3, …, 99999: 33,334 items fail; the other 66,666 wait for review.
    let totals = ws.state().totals();
    assert_eq!(totals.auto_rejected, 33_334);
    assert_eq!(totals.pending, 66_666);
    assert_eq!(ws.state().last_seq(), 300_000);
    assert_eq!(
        ws.state().review_queue().next().unwrap().id().as_str(),
        "g-000002"
    );
    assert!(open.as_secs_f64() < 10.0, "opening took {open:?}");
}

#[test]
fn torn_last_line_is_dropped_with_a_warning_and_kept_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ws");
    let mut ws = Workspace::create(&dir, &Task::demo(), &[]).unwrap();
    let id = ws
        .add_item(Item::new("fine", "positive", Source::Generated))
        .unwrap();
    drop(ws);
    // A crash in the middle of writing an accept.
    let torn = br#"{"v":1,"seq":2,"ts":"2026-11-21T10:15:00.000Z","type":"accept","item_id":"g-0"#;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(JOURNAL_FILE))
        .unwrap();
    f.write_all(torn).unwrap();
    drop(f);

    let mut ws = Workspace::open(&dir).unwrap();
    assert_eq!(ws.warnings().len(), 1);
    let w = &ws.warnings()[0];
    assert!(
        matches!(w, OpenWarning::TornLine { line: 2, bytes, .. } if *bytes == torn.len()),
        "{w}"
    );
    let msg = w.to_string();
    assert!(
        msg.contains("journal.jsonl:2: dropped an incomplete last record"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(dir.join(DROPPED_FILE)).unwrap(),
        [&torn[..], b"\n"].concat()
    );
    assert_eq!(
        ws.state().get(id.as_str()).unwrap().status(),
        Status::Pending
    );
    // The next record goes where the torn one was, and everything reads back clean.
    ws.accept(&id).unwrap();
    drop(ws);
    let ws = Workspace::open(&dir).unwrap();
    assert!(ws.warnings().is_empty(), "{:?}", ws.warnings());
    assert_eq!(
        ws.state().get(id.as_str()).unwrap().status(),
        Status::Accepted
    );
    assert_eq!(ws.state().last_seq(), 2);
}

#[test]
fn a_journal_from_a_newer_release_is_refused_not_misread() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ws");
    drop(Workspace::create(&dir, &Task::demo(), &[]).unwrap());
    std::fs::write(
        dir.join(JOURNAL_FILE),
        "{\"v\":2,\"seq\":1,\"type\":\"hologram\"}\n",
    )
    .unwrap();
    let err = Workspace::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("journal.jsonl:1") && err.contains("newer seedforge"),
        "{err}"
    );
}

#[test]
fn version_1_journal_written_by_hand_still_reads() {
    // The format as documented for release 0.1; later releases must keep reading it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ws");
    drop(Workspace::create(&dir, &Task::demo(), &[]).unwrap());
    let journal = r#"{"v":1,"seq":1,"ts":"2026-11-21T10:15:00.000Z","type":"item_added","item":{"id":"g-000001","text":"A fine film.","label":"positive","source":"generated","raw":"A fine film.\n","meta":{"temperature":1.0}}}
{"v":1,"seq":2,"ts":"2026-11-21T10:15:01.000Z","type":"verdict","item_id":"g-000001","verdict":{"stage":"label_consistency","pass":false,"reason":"predicted negative","scores":{"p":0.4},"probs":[["negative",0.6],["positive",0.4]]}}
{"v":1,"seq":3,"ts":"2026-11-21T10:15:02.000Z","type":"rescue","item_id":"g-000001"}
{"v":1,"seq":4,"ts":"2026-11-21T10:15:03.000Z","type":"edit","item_id":"g-000001","text":"A truly fine film."}
{"v":1,"seq":5,"ts":"2026-11-21T10:15:04.000Z","type":"accept","item_id":"g-000001"}
{"v":1,"seq":6,"ts":"2026-11-21T10:15:05.000Z","type":"undo"}
{"v":1,"seq":7,"ts":"2026-11-21T10:15:06.000Z","type":"redo"}
{"v":1,"seq":8,"ts":"2026-11-21T10:15:07.000Z","type":"relabel","item_id":"g-000001","label":"negative"}
{"v":1,"seq":9,"ts":"2026-11-21T10:15:08.000Z","type":"reject","item_id":"g-000001","reason":"sarcastic"}
{"v":1,"seq":10,"ts":"2026-11-21T10:15:09.000Z","type":"undo"}
"#;
    std::fs::write(dir.join(JOURNAL_FILE), journal).unwrap();
    let ws = Workspace::open(&dir).unwrap();
    assert!(ws.warnings().is_empty(), "{:?}", ws.warnings());
    let it = ws.state().get("g-000001").unwrap();
    assert_eq!(it.status(), Status::Accepted);
    assert_eq!(it.text(), "A truly fine film.");
    assert_eq!(it.label(), "negative");
    assert!(it.is_rescued());
    assert_eq!(
        it.verdicts()[0].probs.as_ref().unwrap()[0],
        ("negative".to_string(), 0.6)
    );
    assert_eq!(ws.state().counts_of("negative").unwrap().accepted, 1);
}
