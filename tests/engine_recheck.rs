//! "A duplicate of what?" has one answer: an item edited and checked again by the engine gets
//! the verdicts it would have got had it been written that way — compared with the seeds and
//! the items written before it that passed the cheap stages (whatever the label check said of
//! them), never with the items written after it.

mod common;

use common::engine::until_end;
use std::sync::{Arc, Mutex};

use seedforge::data::item::{Item, ItemId, Source, Verdict};
use seedforge::data::task::Task;
use seedforge::data::workspace::Workspace;
use seedforge::engine::{Command, Event};
use seedforge::pipeline::filters::{FilterSettings, Filters};

const A: &str = "an honest and quietly moving story about two brothers";
const B: &str = "a loud and clumsy action film with nothing at all to say";
const D: &str = "the soundtrack is lovely but the pacing drags badly";
const E: &str = "a gentle comedy that finds warmth in small everyday moments";

fn settings() -> FilterSettings {
    FilterSettings {
        label_consistency: false,
        ..FilterSettings::default()
    }
}

/// A workspace with `texts` written in order as generation writes them (each judged by the
/// cheap stages against what came before); the second is then rejected by the label check.
fn written(dir: &std::path::Path, task: &Task, texts: &[&str]) -> (Workspace, Vec<ItemId>) {
    let mut task = task.clone();
    let seeds = std::mem::take(&mut task.seeds);
    let mut ws = Workspace::create(dir, &task, &seeds).unwrap();
    task.seeds = seeds;
    let mut filters = Filters::new(&task, settings());
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let verdicts = filters.cheap(&format!("item {i}"), text, None);
        let item = Item::new(*text, "positive", Source::Generated);
        ids.push(ws.add_item_with_verdicts(item, verdicts).unwrap());
    }
    ws.add_verdict(
        &ids[1],
        Verdict::fail("label_consistency", "the model reads it as negative"),
    )
    .unwrap();
    (ws, ids)
}

/// What decides a verdict: stage, outcome and scores (the reasons name other items by ids that
/// differ between the two workspaces).
type Outcome = (String, bool, Vec<(String, u64)>);

fn outcome(vs: &[Verdict]) -> Vec<Outcome> {
    vs.iter()
        .map(|v| {
            let scores = v
                .scores
                .iter()
                .map(|(k, x)| (k.clone(), x.to_bits()))
                .collect();
            (v.stage.clone(), v.pass, scores)
        })
        .collect()
}

#[test]
fn an_edited_item_is_judged_as_if_it_had_been_written_that_way() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let task = Task::demo();
    let seed = task.seeds[0].text.clone();
    // C repeats A: it fails the cheap stages and so is nobody's reference.
    let (ws, ids) = written(&tmp.path().join("ws"), &task, &[A, B, A, D, E]);
    let d = ids[3].clone();
    let ws = Arc::new(Mutex::new(ws));
    let (engine, mut rx) = common::engine::start(model, ws.clone());

    let near_b = format!("{B} here");
    // (new text of D, whether it should pass the duplicate stages)
    let cases = [
        // A near copy of an item the label check rejected: still a duplicate.
        (near_b.as_str(), false),
        // A copy of an item written after it: not a duplicate.
        (E, true),
        // A copy of a seed.
        (seed.as_str(), false),
        // A copy of the rejected copy C: a duplicate of A, which C copied.
        (A, false),
    ];
    for (i, (text, passes)) in cases.iter().enumerate() {
        ws.lock().unwrap().edit(&d, *text).unwrap();
        engine
            .send(Command::Recheck {
                items: vec![d.clone()],
                filters: settings(),
            })
            .unwrap();
        let events = until_end(&mut rx);
        assert!(
            matches!(events.last(), Some(Event::JobFinished { .. })),
            "{events:?}"
        );
        let rechecked = ws
            .lock()
            .unwrap()
            .state()
            .get(d.as_str())
            .unwrap()
            .verdicts()
            .to_vec();

        let dir = tmp.path().join(format!("written-{i}"));
        let (fresh, fresh_ids) = written(&dir, &task, &[A, B, A, text, E]);
        let as_written = fresh
            .state()
            .get(fresh_ids[3].as_str())
            .unwrap()
            .verdicts()
            .to_vec();
        assert_eq!(
            outcome(&rechecked),
            outcome(&as_written),
            "{text:?}: rechecked {rechecked:?}, written {as_written:?}"
        );
        assert_eq!(
            rechecked.iter().all(|v| v.pass),
            *passes,
            "{text:?}: {rechecked:?}"
        );
    }
    engine.shutdown();
}
