//! Key flows on the workbench's state, without a terminal: each decision key changes the
//! workspace and its journal exactly as expected (read back from `journal.jsonl` and by
//! replaying it), the screen moves on only when the write succeeded, and undo jumps to the item
//! it undid.

mod tui_support;

use seedforge::data::state::Status;
use seedforge::data::workspace::Snapshot;
use seedforge::engine::{Command, Event, JobKind};
use seedforge::train::trainer::TrainConfig;
use seedforge::tui::App;
use seedforge::tui::action::Action;
use seedforge::tui::app::{Effect, MessageKind, Overlay};
use seedforge::tui::screens::generate_form::Setting;
use seedforge::tui::screens::{Screen, review, seeds};
use tui_support::*;

fn status(f: &Fixture, n: u32) -> Status {
    let snap = Snapshot::read(&f.dir).unwrap();
    snap.state.get(id(n).as_str()).unwrap().status()
}

fn rechecks(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(Command::Recheck { items, .. }) => Some(
                items
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn accept_reject_undo_redo_walk_the_queue_and_the_journal() {
    let f = fixture();
    let mut app = app(&f);
    let base = journal_kinds(&f).len();
    assert_eq!(app.screen, Screen::Review);
    // The queue holds the items every filter kept: 1, 2, 6, 7.
    assert_eq!(app.review_target(), Some(id(1)));

    press(&mut app, "a");
    assert_eq!(journal_decisions(&f), ["accept g-000001"]);
    assert_eq!(app.review.current, Some(id(2)), "moved on to the next item");

    press(&mut app, "x");
    assert_eq!(
        journal_decisions(&f),
        ["accept g-000001", "reject g-000002"]
    );
    assert_eq!(
        app.review.current,
        Some(id(6)),
        "3 to 5 were rejected by filters"
    );

    press(&mut app, "space");
    assert_eq!(app.review.current, Some(id(7)), "skip writes nothing");
    assert_eq!(journal_kinds(&f).len(), base + 2);

    press(&mut app, "u");
    assert_eq!(
        app.review.current,
        Some(id(2)),
        "undo jumps to the item it undid"
    );
    assert_eq!(status(&f, 2), Status::Pending);
    press(&mut app, "u");
    assert_eq!(app.review.current, Some(id(1)));
    assert_eq!(status(&f, 1), Status::Pending);
    press(&mut app, "u");
    assert_eq!(app.message.as_ref().unwrap().text, "nothing to undo");

    press(&mut app, "U");
    assert_eq!(status(&f, 1), Status::Accepted);
    press(&mut app, "^r");
    assert_eq!(status(&f, 2), Status::Rejected);
    assert_eq!(app.review.current, Some(id(2)));
    assert_eq!(
        journal_decisions(&f),
        [
            "accept g-000001",
            "reject g-000002",
            "undo",
            "undo",
            "redo",
            "redo"
        ]
    );
    assert_eq!(journal_kinds(&f).len(), base + 6);
}

#[test]
fn a_refused_decision_keeps_the_screen_where_it_is() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "a");
    // Back to the accepted item, then accept it again: refused, nothing written, no move.
    app.review.current = Some(id(1));
    let before = journal_kinds(&f).len();
    press(&mut app, "a");
    assert_eq!(journal_kinds(&f).len(), before);
    assert_eq!(app.review.current, Some(id(1)));
    let m = app.message.clone().unwrap();
    assert_eq!(m.kind, MessageKind::Warn);
    assert!(m.text.contains("already accepted"), "{}", m.text);
}

#[test]
fn edit_in_place_saves_on_enter_cancels_on_esc_and_rechecks() {
    let f = fixture();
    let mut app = app(&f);
    app.take_effects();

    // Esc: nothing saved.
    press(&mut app, "e");
    type_text(&mut app, " Truly.");
    press(&mut app, "esc");
    assert!(app.overlay.is_none());
    assert!(journal_decisions(&f).is_empty());

    // Cursor moves and deletes, then Enter.
    press(&mut app, "e end backspace");
    type_text(&mut app, "!");
    press(&mut app, "home right right ^u");
    type_text(&mut app, "A gentle film, truly!");
    press(&mut app, "enter");
    assert!(app.overlay.is_none());
    assert_eq!(journal_decisions(&f), ["edit g-000001"]);
    let snap = Snapshot::read(&f.dir).unwrap();
    let it = snap.state.get("g-000001").unwrap();
    assert_eq!(it.text(), "A gentle film, truly!");
    assert!(it.is_edited());
    assert_eq!(app.review.current, Some(id(1)), "an edit does not move on");
    assert!(app.is_rechecking(&id(1)));
    assert_eq!(rechecks(&app.take_effects()), ["g-000001"]);

    // An empty text is refused and the editor stays open with what was typed.
    press(&mut app, "e ^u enter");
    assert!(matches!(
        app.review.open_dialog(),
        Some(review::Dialog::EditItem { .. })
    ));
    assert_eq!(app.message.as_ref().unwrap().kind, MessageKind::Warn);
    press(&mut app, "esc");
    assert_eq!(journal_decisions(&f), ["edit g-000001"]);

    // The recheck's label verdict releases the item.
    app.update(Action::Engine(Box::new(Event::LabelChecked {
        job: 1,
        items: vec![id(1)],
    })));
    assert!(!app.is_rechecking(&id(1)));

    // Undo of an edit restores the text and checks it again.
    press(&mut app, "u");
    let snap = Snapshot::read(&f.dir).unwrap();
    assert_eq!(
        snap.state.get("g-000001").unwrap().text(),
        tui_support::ITEMS[0].0
    );
    assert_eq!(rechecks(&app.take_effects()), ["g-000001"]);
}

#[test]
fn relabel_by_number_or_picker_and_the_same_label_writes_nothing() {
    let f = fixture();
    let mut app = app(&f);
    app.take_effects();
    // Labels: 1 negative, 2 positive. Item 1 is positive.
    press(&mut app, "l 2");
    assert!(app.overlay.is_none());
    assert!(journal_decisions(&f).is_empty(), "already positive");
    press(&mut app, "l 1");
    assert_eq!(journal_decisions(&f), ["relabel g-000001"]);
    let snap = Snapshot::read(&f.dir).unwrap();
    let it = snap.state.get("g-000001").unwrap();
    assert_eq!(it.label(), "negative");
    assert_eq!(it.original().label, "positive");
    assert_eq!(rechecks(&app.take_effects()), ["g-000001"]);
    // The picker: down, enter → positive again.
    press(&mut app, "l down enter");
    assert_eq!(
        journal_decisions(&f),
        ["relabel g-000001", "relabel g-000001"]
    );
    // Esc cancels.
    press(&mut app, "l up esc");
    assert_eq!(journal_decisions(&f).len(), 2);
    // Undo of a relabel, from another screen, shows the item on Review as its filters run
    // again (they may reject it or let it back in).
    app.take_effects();
    press(&mut app, "4 u");
    assert_eq!(app.screen, Screen::Review);
    assert_eq!(app.review.current, Some(id(1)));
    assert_eq!(rechecks(&app.take_effects()), ["g-000001"]);
    let snap = Snapshot::read(&f.dir).unwrap();
    assert_eq!(snap.state.get("g-000001").unwrap().label(), "negative");
}

#[test]
fn reject_with_a_reason_is_journalled_with_it() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "X");
    type_text(&mut app, "off topic");
    press(&mut app, "enter");
    let text = std::fs::read_to_string(f.dir.join("journal.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "reject");
    assert_eq!(last["item_id"], "g-000001");
    assert_eq!(last["reason"], "off topic");
    assert_eq!(app.review.current, Some(id(2)));
}

#[test]
fn bulk_accepts_above_and_rejects_below_the_threshold() {
    let f = fixture();
    let mut app = app(&f);
    // Confidences of the ready items: 1 → 0.91, 2 → 0.84, 6 → 0.66, 7 → 0.97.
    press(&mut app, "b");
    assert!(matches!(
        app.review.open_dialog(),
        Some(review::Dialog::Bulk { accept: true, .. })
    ));
    let appends = app.appends.len();
    press(&mut app, "enter");
    assert_eq!(
        journal_decisions(&f),
        ["accept g-000001", "accept g-000007"]
    );
    assert_eq!(
        app.appends[appends..],
        [2],
        "one journal append for the bulk decision"
    );
    // Reject below 0.70: only item 6.
    press(&mut app, "b m left left left left enter");
    assert_eq!(
        journal_decisions(&f),
        ["accept g-000001", "accept g-000007", "reject g-000006"]
    );
    let text = std::fs::read_to_string(f.dir.join("journal.jsonl")).unwrap();
    assert!(text.contains("bulk: confidence 0.66 below 0.70"), "{text}");
    // Undo takes a bulk decision back whole, newest first, in one journal append each.
    let appends = app.appends.len();
    press(&mut app, "u");
    assert_eq!(status(&f, 6), Status::Pending);
    assert_eq!(status(&f, 7), Status::Accepted);
    press(&mut app, "u");
    assert_eq!(status(&f, 1), Status::Pending);
    assert_eq!(status(&f, 7), Status::Pending);
    assert_eq!(app.appends[appends..], [1, 2], "one append per undone bulk");
    assert!(render(&app, 120, 36).contains("undid the bulk accept of 2 items"));
    // Redo brings it back whole; a single decision on top is undone alone first.
    press(&mut app, "U");
    assert_eq!(status(&f, 1), Status::Accepted);
    assert_eq!(status(&f, 7), Status::Accepted);
    press(&mut app, "3 x");
    let rejected = journal_decisions(&f).last().cloned().unwrap();
    press(&mut app, "u");
    eprintln!("DEBUG {:?}", journal_decisions(&f));
    assert_eq!(
        status(&f, 1),
        Status::Accepted,
        "after undoing {rejected} alone"
    );
    assert_eq!(status(&f, 7), Status::Accepted);
    press(&mut app, "u");
    assert_eq!(status(&f, 1), Status::Pending);
    assert_eq!(status(&f, 7), Status::Pending);
}

#[test]
fn rescue_from_rejected_and_undo_brings_it_back_there() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "4");
    assert_eq!(app.screen, Screen::Rejected);
    let rows = app.rejected.rows(&app.ws);
    let listed: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.id.to_string(), r.stage.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            ("g-000005".into(), "malformed".into()),
            ("g-000004".into(), "near_dup".into()),
            ("g-000003".into(), "label_consistency".into()),
        ]
    );
    assert!(
        rows[1].reason.contains("similar to seed 1"),
        "{}",
        rows[1].reason
    );

    // Filters: by reason, by class, cleared.
    press(&mut app, "f f");
    assert_eq!(app.rejected.reason.as_deref(), Some("exact_dup"));
    assert!(app.rejected.rows(&app.ws).is_empty());
    press(&mut app, "esc c");
    assert_eq!(app.rejected.class.as_deref(), Some("negative"));
    assert_eq!(app.rejected.rows(&app.ws).len(), 1);
    // Clearing the filters keeps the item selected under them, the near duplicate.
    press(&mut app, "esc");
    let rows = app.rejected.rows(&app.ws);
    assert_eq!(rows[app.rejected.selected_row(&rows)].id, id(4));

    // Open the near duplicate, read it, rescue it from there.
    press(&mut app, "enter");
    assert!(app.rejected.open_detail().is_some());
    press(&mut app, "r");
    assert!(app.overlay.is_none());
    assert_eq!(journal_decisions(&f), ["rescue g-000004"]);
    assert_eq!(status(&f, 4), Status::Pending);
    assert!(
        Snapshot::read(&f.dir)
            .unwrap()
            .state
            .get("g-000004")
            .unwrap()
            .is_rescued()
    );

    // Undo takes it back to Rejected, selected.
    press(&mut app, "3 u");
    assert_eq!(app.screen, Screen::Rejected);
    let rows = app.rejected.rows(&app.ws);
    assert_eq!(rows[app.rejected.selected_row(&rows)].id, id(4));

    // A user rejection cannot be rescued; the screen says why and writes nothing.
    press(&mut app, "3 x 4 end r");
    assert_eq!(
        journal_decisions(&f),
        ["rescue g-000004", "undo", "reject g-000001"]
    );
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("rejected by you")
    );
}

#[test]
fn seeds_are_added_edited_and_deleted() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "1 a");
    type_text(&mut app, "A slow, heavy film.");
    press(&mut app, "enter");
    // Added with the selected seed's label (seed 1 is negative).
    let seeds = || f.ws.lock().unwrap().seeds().to_vec();
    assert_eq!(seeds().len(), 9);
    assert_eq!(seeds()[8].text, "A slow, heavy film.");
    assert_eq!(seeds()[8].label, "negative");
    assert_eq!(app.seeds.selected, 8);
    // Edit: new text and label (tab cycles the label).
    press(&mut app, "e ^u");
    type_text(&mut app, "A quick, light film.");
    press(&mut app, "tab enter");
    assert_eq!(seeds()[8].text, "A quick, light film.");
    assert_eq!(seeds()[8].label, "positive");
    // An empty seed is refused.
    press(&mut app, "a enter");
    assert!(matches!(
        app.seeds.open_dialog(),
        Some(seeds::Dialog::Editor { .. })
    ));
    press(&mut app, "esc");
    // Delete asks first.
    press(&mut app, "d n");
    assert_eq!(seeds().len(), 9);
    press(&mut app, "d y");
    assert_eq!(seeds().len(), 8);
    let on_disk = std::fs::read_to_string(f.dir.join("seeds.jsonl")).unwrap();
    assert_eq!(on_disk.lines().count(), 8);
    assert!(!on_disk.contains("light film"));
}

#[test]
fn generate_settings_are_edited_then_sent_and_events_stream_in() {
    let f = fixture();
    let mut app = app(&f);
    app.take_effects();
    press(&mut app, "2");
    // per class: type 3; batch: +1 twice; temperature: -0.1.
    press(&mut app, "enter");
    type_text(&mut app, "3");
    press(&mut app, "enter down right right down left");
    // A bad value is refused and the prompt stays open.
    press(&mut app, "down enter");
    type_text(&mut app, "-4");
    press(&mut app, "enter");
    assert!(app.generate.open_field().is_some());
    assert_eq!(app.message.as_ref().unwrap().kind, MessageKind::Error);
    press(&mut app, "esc");
    let s = &app.generate.settings;
    assert_eq!((s.per_class, s.batch, s.sampling.temperature), (3, 18, 0.9));
    press(&mut app, "g");
    let effects = app.take_effects();
    match effects.as_slice() {
        [
            Effect::Send(Command::Generate {
                settings,
                filters,
                adapter,
            }),
        ] => {
            assert_eq!(settings.per_class, 3);
            assert!(filters.label_consistency);
            assert_eq!(
                adapter, &None,
                "the base model writes unless a run is chosen"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.queued, Some(JobKind::Generate));
    press(&mut app, "g");
    assert!(app.take_effects().is_empty(), "one job at a time");

    let ev = |e: Event| Action::Engine(Box::new(e));
    app.update(ev(Event::JobStarted {
        job: 1,
        kind: JobKind::Generate,
        total: 6,
    }));
    app.update(ev(Event::SequenceStarted {
        job: 1,
        index: 0,
        label: "negative".into(),
    }));
    for t in [" The", " pacing", " is"] {
        app.update(ev(Event::Delta {
            job: 1,
            index: 0,
            text: t.into(),
        }));
    }
    assert_eq!(app.generate.streams[&0].text, " The pacing is");
    app.update(ev(Event::ItemAdded {
        job: 1,
        index: 0,
        item: id(6),
    }));
    app.update(ev(Event::AwaitingLabelCheck {
        job: 1,
        items: vec![id(6)],
    }));
    assert!(app.generate.streams.is_empty());
    assert!(app.is_held(&id(6)));
    // Not offered for review until its label check reports.
    let target = |app: &seedforge::tui::App| {
        app.ws
            .state()
            .review_queue()
            .filter(|i| app.is_ready(i))
            .map(|i| i.id().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(target(&app), ["g-000001", "g-000002", "g-000007"]);
    // What the frames count without walking the queue says the same.
    let ready = app.ready_queue();
    let listed: Vec<String> = ready.iter().map(|i| i.id().to_string()).collect();
    assert_eq!(listed, target(&app));
    assert_eq!((ready.len(), ready.waiting()), (3, 1));
    assert_eq!(ready.position(&id(6)), None, "held back");
    assert_eq!(ready.position(&id(7)), Some(2));
    app.update(ev(Event::LabelChecked {
        job: 1,
        items: vec![id(6)],
    }));
    assert_eq!(target(&app).len(), 4);
    let ready = app.ready_queue();
    assert_eq!((ready.len(), ready.waiting()), (4, 0));
    assert_eq!(ready.position(&id(6)), Some(2));
    // Stop, then the job reports it was cancelled.
    press(&mut app, "s");
    assert!(matches!(app.take_effects().as_slice(), [Effect::Cancel]));
    app.update(ev(Event::JobCancelled {
        job: 1,
        kind: JobKind::Generate,
        summary: "1 items written, 1 kept by the filters".into(),
    }));
    assert!(app.job.is_none());
    assert!(app.message.as_ref().unwrap().text.contains("stopped"));
}

#[test]
fn quitting_asks_while_a_job_runs_and_help_lists_every_key() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "?");
    assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
    let help: String = seedforge::tui::help::lines(&app)
        .iter()
        .map(|l| l.to_string() + "\n")
        .collect();
    for b in seedforge::tui::keymap::BINDINGS {
        assert!(help.contains(b.help), "help lacks {}", b.help);
    }
    press(&mut app, "q");
    assert!(
        app.overlay.is_none() && !app.should_quit(),
        "q closes the help"
    );

    app.update(Action::Engine(Box::new(Event::JobStarted {
        job: 1,
        kind: JobKind::Generate,
        total: 4,
    })));
    press(&mut app, "q");
    assert!(matches!(app.overlay, Some(Overlay::ConfirmQuit)));
    press(&mut app, "n");
    assert!(!app.should_quit());
    press(&mut app, "q y");
    assert!(app.should_quit());
    assert!(matches!(app.take_effects().as_slice(), [Effect::Cancel]));

    // ctrl-c stops the job first, then quits.
    let mut app = tui_support::app(&f);
    app.update(Action::Engine(Box::new(Event::JobStarted {
        job: 2,
        kind: JobKind::Generate,
        total: 4,
    })));
    press(&mut app, "^c");
    assert!(!app.should_quit());
    assert!(matches!(app.take_effects().as_slice(), [Effect::Cancel]));
    app.update(Action::Engine(Box::new(Event::JobCancelled {
        job: 2,
        kind: JobKind::Generate,
        summary: String::new(),
    })));
    press(&mut app, "^c");
    assert!(app.should_quit());
}

#[test]
fn esc_and_a_key_arriving_together_as_alt_key_are_both_applied() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "4 enter");
    assert!(app.rejected.open_detail().is_some());
    app.handle_key(KeyEvent::new(KeyCode::Char('1'), KeyModifiers::ALT));
    assert!(app.overlay.is_none());
    assert_eq!(app.screen, Screen::Seeds);
}

#[test]
fn screens_switch_by_number_and_tab() {
    let f = fixture();
    let mut app = app(&f);
    let mut seen = vec![app.screen];
    for _ in 0..6 {
        press(&mut app, "tab");
        seen.push(app.screen);
    }
    assert_eq!(seen.first(), seen.last());
    assert_eq!(seen.len(), 7);
    press(&mut app, "backtab");
    assert_eq!(app.screen, Screen::Generate);
    for (k, s) in ["1", "2", "3", "4", "5", "6"].iter().zip(Screen::ALL) {
        press(&mut app, k);
        assert_eq!(app.screen, s);
    }
}

#[test]
fn the_readme_lists_the_keymap() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = seedforge::tui::keymap::markdown();
    assert!(
        readme.contains(&table),
        "README.md's key table is out of date; paste this in its \"The workbench\" section:\n{table}"
    );
}

#[test]
fn train_on_cycles_through_accepted_staged_and_seeds_only() {
    let f = fixture();
    let mut app = app(&f);
    app.take_effects();
    press(&mut app, "5");
    // The default is staged: seeds + accepted, then the seeds alone.
    let s = &app.train.settings;
    assert!(s.with_accepted && s.then_seeds);
    assert_eq!(app.train.fields(2)[0].value, "staged+2");
    press(&mut app, "g");
    match app.take_effects().as_slice() {
        [Effect::Send(Command::Train(req))] => assert!(req.with_accepted && req.then_seeds),
        other => panic!("{other:?}"),
    }
    // → cycles: seeds only, seeds + accepted, staged again; ← goes back.
    let mut app = self::app(&f);
    press(&mut app, "5 right");
    assert!(!app.train.settings.with_accepted);
    press(&mut app, "right");
    let s = &app.train.settings;
    assert!(s.with_accepted && !s.then_seeds);
    press(&mut app, "right");
    let s = &app.train.settings;
    assert!(s.with_accepted && s.then_seeds);
    press(&mut app, "left");
    let s = &app.train.settings;
    assert!(s.with_accepted && !s.then_seeds);
}

#[test]
fn train_starts_with_the_trainers_defaults_and_pauses_and_stops() {
    let f = fixture();
    let mut app = app(&f);
    app.take_effects();
    press(&mut app, "5");
    // The default data is seeds + accepted (staged); → makes it the seeds-only baseline.
    assert!(app.train.settings.with_accepted);
    press(&mut app, "right g");
    match app.take_effects().as_slice() {
        [Effect::Send(Command::Train(req))] => {
            assert_eq!(req.config, TrainConfig::default());
            assert!(!req.with_accepted);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.queued, Some(JobKind::Train));
    press(&mut app, "g");
    assert!(app.take_effects().is_empty(), "one job at a time");
    let ev = |e: Event| Action::Engine(Box::new(e));
    app.update(ev(Event::JobStarted {
        job: 4,
        kind: JobKind::Train,
        total: 0,
    }));
    app.update(ev(Event::Train {
        job: 4,
        event: train_event(serde_json::json!({"event": "started", "total_steps": 20, "epochs": 2})),
    }));
    app.update(ev(Event::Train {
        job: 4,
        event: train_event(
            serde_json::json!({"event": "step", "step": 1, "epoch": 0, "loss": 2.0,
            "lr": 1e-4, "step_time_s": 0.5}),
        ),
    }));
    let job = app.job.as_ref().unwrap();
    assert_eq!((job.done, job.total), (1, 20));
    press(&mut app, "p");
    assert!(matches!(
        app.take_effects().as_slice(),
        [Effect::Pause(true)]
    ));
    assert!(render(&app, 120, 36).contains("paused (p resumes)"));
    press(&mut app, "p s");
    assert!(matches!(
        app.take_effects().as_slice(),
        [Effect::Pause(false), Effect::Cancel]
    ));
    // The run it wrote is on disk when the job ends: the chart moves to it.
    let run = f.dir.join("runs").join("20990101-000000-train-seeds");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("metrics.jsonl"),
        metrics_jsonl(&[serde_json::json!({"event": "step", "step": 1, "loss": 2.0})]),
    )
    .unwrap();
    std::fs::write(
        run.join("config.json"),
        r#"{"real_examples": 8, "extra_examples": 0}"#,
    )
    .unwrap();
    app.update(ev(Event::JobCancelled {
        job: 4,
        kind: JobKind::Train,
        summary: "1 steps".into(),
    }));
    assert!(app.job.is_none() && app.train.live.is_empty());
    assert_eq!(app.runs[0].name, "20990101-000000-train-seeds");
    let screen = render(&app, 120, 36);
    assert!(
        screen.contains("Loss · run 20990101-000000-train-seeds"),
        "{screen}"
    );
}

#[test]
fn evaluate_takes_a_test_file_and_label_map_remembers_them_and_reports_errors() {
    let f = fixture();
    let mut app = app(&f);
    app.take_effects();
    press(&mut app, "6");
    // Without a test file, g asks for one.
    press(&mut app, "g");
    assert_eq!(app.evaluate.open_field().map(|d| d.field), Some(0));
    assert!(app.take_effects().is_empty());
    let test = f.tmp.path().join("dev.tsv");
    std::fs::write(&test, "sentence\tlabel\ngood\t1\nbad\t0\n").unwrap();
    type_text(&mut app, &test.display().to_string());
    press(&mut app, "enter m");
    // A label map that does not parse is refused, the prompt stays open.
    type_text(&mut app, "0negative");
    press(&mut app, "enter");
    assert!(app.evaluate.open_field().is_some());
    assert_eq!(app.message.as_ref().unwrap().kind, MessageKind::Error);
    press(&mut app, "^u");
    type_text(&mut app, "0=negative,1=positive");
    press(&mut app, "enter n");
    type_text(&mut app, "100");
    press(&mut app, "enter c g");
    match app.take_effects().as_slice() {
        [Effect::Send(Command::Evaluate(req))] => {
            assert_eq!(req.test, test);
            assert_eq!(req.limit, Some(100));
            assert!(req.icl && req.calibrate && !req.zero_shot);
            assert_eq!(req.lora, None);
            let map = req.read.label_map.as_ref().unwrap();
            assert_eq!(map.get("1"), Some("positive"));
        }
        other => panic!("{other:?}"),
    }
    // Remembered for next time.
    let again = tui_support::app_over(&f.ws);
    assert_eq!(again.evaluate.choice.label_map, "0=negative,1=positive");
    assert_eq!(again.evaluate.choice.limit, Some(100));
    assert_eq!(again.evaluate.choice.path, test.display().to_string());
    // The running evaluation's stage and warnings reach the screen from the engine's events.
    let ev = |e: Event| Action::Engine(Box::new(e));
    app.update(ev(Event::JobStarted {
        job: 5,
        kind: JobKind::Evaluate,
        total: 2,
    }));
    app.update(ev(Event::EvalStarted {
        job: 5,
        name: "icl".into(),
        index: 0,
        count: 1,
    }));
    app.update(ev(Event::Log("dev.tsv:3: skipped: no label".into())));
    assert_eq!(app.evaluate.stage, Some(("icl".to_string(), 0, 1)));
    assert_eq!(app.evaluate.notes, ["dev.tsv:3: skipped: no label"]);
    assert!(render(&app, 120, 36).contains("evaluating icl (1/1)"));
    // The job's failure is shown on the screen, not only in the message line.
    app.update(ev(Event::JobFailed {
        job: 5,
        kind: JobKind::Evaluate,
        error: "dev.tsv: no row has one of the task's labels".into(),
    }));
    assert!(app.queued.is_none());
    let screen = render(&app, 120, 36);
    assert!(
        screen.contains("dev.tsv: no row has one of the task's labels"),
        "{screen}"
    );
    // A file that is not there is refused before anything is sent.
    press(&mut app, "f ^u");
    type_text(&mut app, "/no/such/file.tsv");
    press(&mut app, "enter g");
    assert!(app.take_effects().is_empty());
    assert!(
        app.evaluate
            .error
            .as_deref()
            .unwrap()
            .contains("no file at /no/such/file.tsv")
    );
}

#[test]
fn the_writer_field_picks_a_run_adapter_and_a_teacher_writes_without_seeds_at_0_8() {
    let f = fixture();
    let runs = f.dir.join("runs");
    // Two run folders with complete adapters, one without and one whose weights were cut short
    // (a crash while writing): only the first two are offered, newest first.
    let make = |name: &str, objective: Option<&str>, weights: bool| {
        let d = runs.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let cfg = match objective {
            Some(o) => serde_json::json!({"train": {"objective": o}}),
            None => serde_json::json!({"train": {}}),
        };
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
        if weights {
            write_adapter(&d);
        }
        d
    };
    let teacher = make("20261121-100000-teacher", Some("generate"), true);
    let classifier = make("20261121-090000-train-seeds", None, true);
    make("20261121-110000-stopped", None, false);
    let cut = make("20261121-120000-crashed", Some("generate"), true);
    let weights = cut.join("adapter_model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 5]).unwrap();
    let mut app = app(&f);
    press(&mut app, "2");
    press(&mut app, &moves(Setting::PerClass, Setting::Writer));
    assert!((app.generate.settings.sampling.temperature - 1.0).abs() < 1e-6);
    assert!(app.generate.settings.seeds_in_prompt);

    press(&mut app, "right");
    let w = app.generate.writer.clone().expect("a writer chosen");
    assert_eq!((w.dir.clone(), w.teacher), (teacher.clone(), true));
    let said = app.message.clone().unwrap();
    assert_eq!(said.kind, MessageKind::Warn);
    assert!(
        said.text.contains("20261121-120000-crashed")
            && said.text.contains("adapter_model.safetensors"),
        "the cut adapter is named: {said:?}"
    );
    let s = &app.generate.settings;
    assert!(
        !s.seeds_in_prompt,
        "a teacher writes from the bare instruction"
    );
    assert!((s.sampling.temperature - 0.8).abs() < 1e-6);
    assert_eq!(
        app.generate.fields()[Setting::Writer.row()].value,
        "teacher 10:00:00"
    );

    press(&mut app, "right");
    let w = app.generate.writer.clone().expect("a writer chosen");
    assert_eq!((w.dir.clone(), w.teacher), (classifier.clone(), false));
    let s = &app.generate.settings;
    assert!(s.seeds_in_prompt);
    assert!((s.sampling.temperature - 1.0).abs() < 1e-6);

    // Back through the teacher to the base model; a temperature set by hand stays.
    press(&mut app, "left");
    press(&mut app, &moves(Setting::Writer, Setting::Temperature));
    press(&mut app, "enter");
    type_text(&mut app, "0.5");
    press(&mut app, "enter");
    press(&mut app, &moves(Setting::Temperature, Setting::Writer));
    press(&mut app, "left");
    assert_eq!(app.generate.writer, None);
    assert!((app.generate.settings.sampling.temperature - 0.5).abs() < 1e-6);
    assert!(app.generate.settings.seeds_in_prompt);

    press(&mut app, "right");
    app.take_effects();
    press(&mut app, "g");
    match app.take_effects().as_slice() {
        [Effect::Send(Command::Generate { adapter, .. })] => {
            assert_eq!(adapter.as_deref(), Some(teacher.as_path()))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn annotate_sends_the_file_the_threshold_and_a_classifier_adapter_but_not_a_teacher() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "2");
    app.take_effects();
    // Without a file, A says what is missing and sends nothing.
    press(&mut app, "A");
    assert!(app.take_effects().is_empty());
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("`annotate` setting")
    );

    let pool = f.tmp.path().join("pool.tsv");
    std::fs::write(&pool, "sentence\nfirst text here\n").unwrap();
    // The annotate file: type the path; min confidence (the next row): one step down.
    press(&mut app, &moves(Setting::PerClass, Setting::AnnotateFile));
    press(&mut app, "enter");
    type_text(&mut app, pool.to_str().unwrap());
    press(&mut app, "enter down left");
    assert!((app.generate.min_confidence - 0.55).abs() < 1e-9);
    // A teacher writer does not label: the base model does, with the seeds.
    app.generate.writer = Some(seedforge::tui::screens::generate::Writer {
        run: "t".into(),
        dir: f.tmp.path().join("t"),
        teacher: true,
    });
    press(&mut app, "A");
    match app.take_effects().as_slice() {
        [Effect::Send(Command::Annotate(r))] => {
            assert_eq!(r.input, pool);
            assert_eq!(r.adapter, None);
            assert!((r.min_confidence - 0.55).abs() < 1e-9);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.queued, Some(JobKind::Annotate));
    press(&mut app, "A");
    assert!(app.take_effects().is_empty(), "one job at a time");

    // A classifier adapter labels.
    app.update(Action::Engine(Box::new(Event::JobFinished {
        job: 1,
        kind: JobKind::Annotate,
        summary: "1 texts labelled".into(),
    })));
    let dir = f.tmp.path().join("c");
    app.generate.writer = Some(seedforge::tui::screens::generate::Writer {
        run: "c".into(),
        dir: dir.clone(),
        teacher: false,
    });
    press(&mut app, "A");
    match app.take_effects().as_slice() {
        [Effect::Send(Command::Annotate(r))] => assert_eq!(r.adapter, Some(dir)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_paste_goes_into_the_editor_as_text_and_runs_no_command() {
    use ratatui::crossterm::event::Event as TermEvent;
    use seedforge::tui::event_loop::on_terminal;
    let paste = |app: &mut App, text: &str| on_terminal(app, TermEvent::Paste(text.into()));

    let f = fixture();
    let mut app = app(&f);
    app.take_effects();
    // In the item editor: the text lands as typed, line break included; `a`, `x` and `q`
    // are letters there, not accept, reject and quit.
    press(&mut app, "e");
    paste(&mut app, "a better line\nax");
    paste(&mut app, "q");
    assert!(!app.should_quit(), "a pasted q quit");
    assert!(journal_decisions(&f).is_empty(), "a paste made a decision");
    match app.review.open_dialog() {
        Some(review::Dialog::EditItem { id: edited, editor }) => {
            assert_eq!(*edited, id(1));
            assert_eq!(
                editor.text(),
                format!("{}a better line\naxq", tui_support::ITEMS[0].0)
            );
        }
        other => panic!("the editor closed: {other:?}"),
    }
    press(&mut app, "enter");
    assert_eq!(journal_decisions(&f), ["edit g-000001"]);
    let snap = Snapshot::read(&f.dir).unwrap();
    assert!(
        snap.state
            .get("g-000001")
            .unwrap()
            .text()
            .ends_with("line\naxq")
    );
    assert!(
        app.take_effects()
            .iter()
            .all(|e| !matches!(e, Effect::Cancel))
    );

    // Outside an editor a paste does nothing but say so.
    paste(&mut app, "ax q");
    assert!(!app.should_quit());
    assert_eq!(journal_decisions(&f), ["edit g-000001"]);
    assert_eq!(app.review.current, Some(id(1)));
    let message = app.message.as_ref().unwrap();
    assert!(message.text.starts_with("paste ignored"), "{message:?}");

    // A reason is one line: the line break becomes a space.
    press(&mut app, "3 space X");
    paste(&mut app, "off\ntopic");
    press(&mut app, "enter");
    let text = std::fs::read_to_string(f.dir.join("journal.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "reject");
    assert_eq!(last["reason"], "off topic");
}

#[test]
fn the_rejected_selection_stays_on_its_item_while_rejections_stream_in() {
    let f = fixture();
    let mut app = app(&f);
    let selected = |app: &App| {
        let rows = app.rejected.rows(&app.ws);
        rows[app.rejected.selected_row(&rows)].id.clone()
    };
    // Items a filter rejects arrive, as a running job adds them, at the top of the list.
    let reject = |text: &str| {
        let (_, passed) = add_with_cheap_verdicts(&f, text, "negative");
        assert!(!passed, "{text} must be rejected");
    };
    // Newest first: 5, 4, 3. Opening the screen shows 5 selected, and it stays so.
    press(&mut app, "4");
    assert_eq!(selected(&app), id(5));
    reject("Bad.");
    app.pump();
    assert_eq!(
        selected(&app),
        id(5),
        "the first row's item changed under the user"
    );
    // Select the near duplicate, 4; another rejection arrives.
    press(&mut app, "down");
    assert_eq!(selected(&app), id(4));
    reject("Meh.");
    app.pump();
    assert_eq!(app.rejected.rows(&app.ws).len(), 5);
    assert_eq!(selected(&app), id(4), "the selection moved to another item");
    // Moving is relative to the item, and `r` rescues the item shown.
    press(&mut app, "down up r");
    assert_eq!(journal_decisions(&f), ["rescue g-000004"]);
    // The rescued item left the list: the selection stays on its row, the next item.
    assert_eq!(selected(&app), id(3));
}

#[test]
fn items_whose_label_check_never_ran_are_checked_again_on_opening() {
    let f = fixture();
    // A generation killed between an item's cheap verdicts and its label check.
    let text = "A warm and quietly funny story about two brothers on a long road trip.";
    let (unchecked, passed) = add_with_cheap_verdicts(&f, text, "positive");
    assert!(passed, "the cheap stages keep {text:?}");
    let mut app = app(&f);
    assert_eq!(rechecks(&app.take_effects()), [unchecked.to_string()]);
    assert!(app.is_rechecking(&unchecked), "shown as checking");
    // Review never offers it meanwhile: accept the four checked items, and the queue is empty.
    press(&mut app, "a a a a");
    assert_eq!(app.review_target(), None);
    assert!(!journal_decisions(&f).contains(&format!("accept {unchecked}")));
    // Its label check reports: now it is ready.
    app.update(Action::Engine(Box::new(Event::LabelChecked {
        job: 1,
        items: vec![unchecked.clone()],
    })));
    assert_eq!(app.review_target(), Some(unchecked));
}

#[test]
fn batch_and_max_tokens_have_upper_bounds_that_are_said() {
    use seedforge::llm::decode::{MAX_BATCH, MAX_NEW_TOKENS};
    let f = fixture();
    let mut app = app(&f);
    // batch is the 2nd setting, max tokens the 6th.
    press(&mut app, "2 down enter ^u");
    type_text(&mut app, "100000");
    press(&mut app, "enter");
    let said = app.message.clone().unwrap();
    assert_eq!(said.kind, MessageKind::Error);
    assert_eq!(
        said.text,
        format!("batch: a whole number from 1 to {MAX_BATCH}, not `100000`")
    );
    assert!(app.generate.open_field().is_some(), "still typing");
    press(&mut app, "^u");
    type_text(&mut app, &MAX_BATCH.to_string());
    press(&mut app, "enter right");
    assert_eq!(
        app.generate.settings.batch, MAX_BATCH,
        "→ stops at the bound"
    );

    press(&mut app, &moves(Setting::Batch, Setting::MaxTokens));
    press(&mut app, "enter ^u");
    type_text(&mut app, "999999999999");
    press(&mut app, "enter");
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains(&format!("from 1 to {MAX_NEW_TOKENS}")),
        "{:?}",
        app.message
    );
    press(&mut app, "esc");
    for _ in 0..(MAX_NEW_TOKENS / 8 + 2) {
        press(&mut app, "right");
    }
    assert_eq!(
        app.generate.settings.sampling.max_new_tokens,
        MAX_NEW_TOKENS
    );
}

#[test]
fn a_model_that_failed_to_load_says_why_in_the_status_bar() {
    use seedforge::engine::ModelEvent;
    let f = fixture();
    let mut app = tui_support::app_over(&f.ws);
    app.update(Action::Engine(Box::new(Event::Model(ModelEvent::Failed(
        "internal error while loading the model: tensor shape mismatch".into(),
    )))));
    let screen = render(&app, 120, 36);
    // The two bottom lines: the message line and the status bar.
    let status: String = screen.lines().rev().take(2).collect();
    assert!(
        status.contains("model failed to load: internal error while loading"),
        "{screen}"
    );
    assert!(!screen.contains("loading on"), "{screen}");
    // A job asked for now is refused with the reason.
    press(&mut app, "2 g");
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("tensor shape mismatch"),
        "{:?}",
        app.message
    );
}

#[test]
fn run_selections_stay_on_their_run_while_new_runs_appear() {
    let f = fixture();
    let runs = f.dir.join("runs");
    // A training run with a result: listed on Train (its metrics) and on Evaluate (its eval.json).
    let run = |name: &str| {
        let d = runs.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("metrics.jsonl"),
            metrics_jsonl(&[serde_json::json!({"event": "step", "step": 1, "loss": 2.0})]),
        )
        .unwrap();
        let eval = serde_json::json!({"file": "test.tsv", "examples": 4, "accuracy": 0.75,
            "per_label": [["negative", 2, 1.0], ["positive", 2, 0.5]]});
        std::fs::write(d.join("eval.json"), eval.to_string()).unwrap();
        d
    };
    run("20261121-090000-train");
    let chosen = run("20261121-100000-train");
    let mut app = app(&f);
    // Newest first: select the older one on both screens.
    press(&mut app, "6 down 5 ]");
    let selected = |app: &App| {
        let eval = seedforge::tui::screens::evaluate::comparison(&app.runs);
        let train = seedforge::tui::screens::train::training_runs(&app.runs);
        (
            eval[app.evaluate.selected.row(&eval)].name.clone(),
            train[app.train.run.row(&train)].name.clone(),
        )
    };
    let older = "20261121-090000-train".to_string();
    assert_eq!(selected(&app), (older.clone(), older.clone()));
    // A newer run appears (an evaluation saves its result): it comes first in both lists.
    run("20261121-110000-train");
    app.update(Action::Engine(Box::new(Event::EvalSaved {
        job: 1,
        run: chosen,
        summary: "saved".into(),
    })));
    assert_eq!(app.runs.len(), 3);
    assert_eq!(
        selected(&app),
        (older.clone(), older.clone()),
        "the selection moved"
    );
    // Moving is from the run shown.
    press(&mut app, "[");
    assert_eq!(selected(&app).1, "20261121-100000-train");
}

#[test]
fn the_judge_and_attempts_rows_reach_the_generation_command_and_the_choice_is_shown() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "2");
    // The judge row, then the attempts row.
    press(&mut app, &moves(Setting::PerClass, Setting::Judge));
    assert_eq!(app.generate.fields()[Setting::Judge.row()].name, "judge");
    let start = app.generate.judge_name();
    // ←/→ cycle auto → icl → zero-shot → seeds-lora → auto.
    let mut seen = vec![start];
    for _ in 0..4 {
        press(&mut app, "right");
        seen.push(app.generate.judge_name());
    }
    assert_eq!(seen.first(), seen.last(), "{seen:?}");
    let mut names = seen[..4].to_vec();
    names.sort_unstable();
    assert_eq!(names, ["auto", "icl", "seeds-lora", "zero-shot"]);
    // Typed: auto turns on the measurement; a name picks that judge.
    press(&mut app, "enter ^u");
    type_text(&mut app, "auto");
    press(&mut app, "enter");
    assert!(app.generate.filters.select_judge);
    press(&mut app, "enter ^u");
    type_text(&mut app, "seeds-lora");
    press(&mut app, "enter");
    assert!(!app.generate.filters.select_judge);
    assert_eq!(app.generate.filters.judge.name(), "seeds-lora");
    press(&mut app, "enter ^u");
    type_text(&mut app, "a coin");
    press(&mut app, "enter");
    assert_eq!(app.message.as_ref().unwrap().kind, MessageKind::Error);
    press(&mut app, "esc");
    assert_eq!(app.generate.filters.judge.name(), "seeds-lora");

    // Attempts: bounded, and sent with the settings.
    press(&mut app, "down enter ^u");
    type_text(&mut app, "99");
    press(&mut app, "enter");
    assert_eq!(app.message.as_ref().unwrap().kind, MessageKind::Error);
    press(&mut app, "^u");
    type_text(&mut app, "4");
    press(&mut app, "enter");
    // Length bins: thirds (3) by default, bounded below and above, stepped by ←/→.
    press(&mut app, &moves(Setting::Attempts, Setting::LengthStrata));
    assert_eq!(
        app.generate.fields()[Setting::LengthStrata.row()].value,
        "3"
    );
    press(&mut app, "left left left");
    assert_eq!(app.generate.settings.length_strata, 1);
    press(&mut app, "enter ^u");
    type_text(&mut app, "11");
    press(&mut app, "enter");
    assert_eq!(app.message.as_ref().unwrap().kind, MessageKind::Error);
    press(&mut app, "esc right right right");
    assert_eq!(app.generate.settings.length_strata, 4);
    app.take_effects();
    press(&mut app, "g");
    match app.take_effects().as_slice() {
        [
            Effect::Send(Command::Generate {
                settings, filters, ..
            }),
        ] => {
            assert_eq!(settings.max_attempts_factor, 4);
            assert_eq!(settings.length_strata, 4);
            assert_eq!(filters.judge.name(), "seeds-lora");
        }
        other => panic!("{other:?}"),
    }
    // The engine says which judge it chose and why; the screen shows it.
    let ev = |e: Event| Action::Engine(Box::new(e));
    app.update(ev(Event::JudgeChosen {
        job: 1,
        summary: "judge icl (cross-validation on the seeds: icl 7/8, zero-shot 6/8)".into(),
    }));
    let screen = render(&app, 120, 36);
    assert!(
        screen.contains("judge icl (cross-validation on the")
            && screen.contains("icl 7/8, zero-shot 6/8)"),
        "{screen}"
    );
}

#[test]
fn a_frame_draws_from_the_read_model_while_the_engine_holds_the_workspace() {
    use std::time::{Duration, Instant};
    let f = fixture();
    let mut app = app(&f);
    // A job writes an item: the screen shows it once the store's event reached the app.
    press(&mut app, "4");
    let (added, passed) = add_with_cheap_verdicts(&f, "Bad.", "negative");
    assert!(
        !passed,
        "a filter rejects it, so the Rejected screen lists it"
    );
    assert!(!render(&app, 120, 36).contains(added.as_str()));
    app.pump();
    assert!(app.ws.state().get(added.as_str()).is_some());
    // The engine holds the workspace for two seconds (as a job building signatures would):
    // the frame does not wait for it.
    let ws = f.ws.clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let _guard = ws.lock().unwrap();
        held_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    held_rx.recv().unwrap();
    let start = Instant::now();
    let shown = render(&app, 120, 36);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the frame waited {took:?} on the engine's lock"
    );
    assert!(
        f.ws.try_lock().is_err(),
        "the engine still held the workspace"
    );
    holder.join().unwrap();
    // The item the job wrote is drawn on the Rejected screen (newest first).
    assert!(shown.contains(added.as_str()), "{shown}");
}

#[test]
fn help_opens_at_the_keys_of_the_screen_it_was_asked_from() {
    use seedforge::tui::keymap::{Context, bindings_of};
    let f = fixture();
    let mut app = app(&f);
    for screen in Screen::ALL {
        app.update(Action::GoTo(screen));
        press(&mut app, "?");
        let shown = render(&app, 120, 36);
        for b in bindings_of(Context::of_screen(screen)) {
            let start: String = b.help.chars().take(30).collect();
            assert!(
                shown.contains(&start),
                "{screen:?}: `{start}` not shown:\n{shown}"
            );
        }
        press(&mut app, "esc");
    }
}

#[test]
fn help_scrolls_no_further_than_its_last_line_and_comes_back_at_once() {
    let f = fixture();
    let mut app = app(&f);
    app.update(Action::Resize {
        width: 80,
        height: 24,
    });
    press(&mut app, "?");
    press(&mut app, &"down ".repeat(400));
    let bottom = render(&app, 80, 24);
    let Some(Overlay::Help { scroll }) = app.overlay else {
        panic!("help closed");
    };
    assert!(scroll > 0 && scroll < 400, "{scroll}");
    // The last binding of the last section is on screen.
    let last = seedforge::tui::keymap::bindings_of(seedforge::tui::keymap::Context::Help)
        .last()
        .unwrap();
    let start: String = last.help.chars().take(20).collect();
    assert!(bottom.contains(&start), "{bottom}");
    // One press up moves the view (it used to take as many presses as went past the end).
    press(&mut app, "up");
    assert_ne!(render(&app, 80, 24), bottom);
    // A taller terminal shows more, so the furthest scroll shrinks with it.
    press(&mut app, &"down ".repeat(400));
    app.update(Action::Resize {
        width: 80,
        height: 40,
    });
    let Some(Overlay::Help { scroll: taller }) = app.overlay else {
        panic!("help closed");
    };
    assert_eq!(taller, scroll - 16);
}

#[test]
fn the_field_editor_sets_the_field_of_the_screen_it_was_opened_on() {
    let f = fixture();
    let mut app = app(&f);
    let generate_before: Vec<String> = app.generate.fields().into_iter().map(|f| f.value).collect();
    // Train's second row (the LoRA rank) and Evaluate's row limit, typed.
    app.update(Action::GoTo(Screen::Train));
    press(&mut app, "down enter ^u");
    type_text(&mut app, "12");
    press(&mut app, "enter");
    assert!(app.overlay.is_none(), "{:?}", app.message);
    assert_eq!(app.train.fields(0)[1].value, "12");
    app.update(Action::GoTo(Screen::Evaluate));
    press(&mut app, "n ^u");
    // Pasted into Evaluate's own editor, as text.
    app.paste("40");
    press(&mut app, "enter");
    assert_eq!(app.evaluate.choice.limit, Some(40));
    // Generate's settings are untouched.
    let generate_after: Vec<String> = app.generate.fields().into_iter().map(|f| f.value).collect();
    assert_eq!(generate_before, generate_after);
    // And Generate's editor sets Generate's row (its second: the batch).
    app.update(Action::GoTo(Screen::Generate));
    press(&mut app, "down enter ^u");
    type_text(&mut app, "3");
    press(&mut app, "enter");
    assert_eq!(app.generate.fields()[1].value, "3");
    assert_eq!(app.train.fields(0)[1].value, "12");
}

/// The arrow presses that move the Generate form's selection from one row to another.
fn moves(from: Setting, to: Setting) -> String {
    let key = if to.row() >= from.row() { "down" } else { "up" };
    vec![key; from.row().abs_diff(to.row())].join(" ")
}

#[test]
fn the_guidance_row_is_bounded_stepped_and_sent_with_the_generation_command() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "2");
    press(&mut app, &moves(Setting::PerClass, Setting::Guidance));
    assert_eq!(app.generate.fields()[Setting::Guidance.row()].value, "2.0");
    // ← steps by 0.5 down to 1 (off); below 1 would steer towards the other class: refused,
    // and said why.
    press(&mut app, "left left left");
    assert_eq!(app.generate.settings.sampling.guidance_scale, 1.0);
    press(&mut app, "enter ^u");
    type_text(&mut app, "0.5");
    press(&mut app, "enter");
    let said = app.message.clone().unwrap();
    assert_eq!(said.kind, MessageKind::Error);
    assert_eq!(said.text, "guidance: a number from 1 to 10, not `0.5`");
    press(&mut app, "esc right right right");
    assert_eq!(app.generate.settings.sampling.guidance_scale, 2.5);
    app.take_effects();
    press(&mut app, "g");
    match app.take_effects().as_slice() {
        [Effect::Send(Command::Generate { settings, .. })] => {
            assert_eq!(settings.sampling.guidance_scale, 2.5);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_attributes_and_log_probability_of_a_request_show_on_review_and_in_the_rejected_detail() {
    use seedforge::data::item::{Item, Source};
    use seedforge::pipeline::filters::stages::label_consistency;
    let f = fixture();
    {
        let mut ws = f.ws.lock().unwrap();
        let task = ws.task().clone();
        for (text, p, lp) in [
            (
                "a slow , gloomy ghost story that never finds a single scare .",
                Some(0.9),
                -2.314,
            ),
            ("!!! ??? ...", None, -3.871),
        ] {
            let mut item = Item::new(text, "negative", Source::Generated);
            item.meta.insert(
                "attributes".into(),
                serde_json::json!({ "genre": "horror", "length": "one line" }),
            );
            item.meta
                .insert("mean_logprob".into(), serde_json::json!(lp));
            let id = ws.add_item(item).unwrap();
            let mut verdicts = seedforge::pipeline::filters::Filters::new(
                &task,
                Default::default(),
            )
            .cheap(id.as_str(), text, None);
            if let Some(p) = p {
                verdicts.push(label_consistency(
                    0.0,
                    "negative",
                    &prediction(&task, "negative", p),
                ));
            }
            for v in verdicts {
                ws.add_verdict(&id, v).unwrap();
            }
        }
    }
    let mut app = app(&f);
    // The queue: 1, 2, 6, 7, then the new item 8.
    press(&mut app, "space space space space");
    assert_eq!(app.review.current, Some(id(8)));
    let screen = render(&app, 120, 36);
    assert!(
        screen.contains("(genre: horror, length: one line)  log-p -2.31/token"),
        "{screen}"
    );
    // Item 9 failed the malformed filter: its detail on Rejected says what its request drew.
    press(&mut app, "4");
    let rows = app.rejected.rows(&app.ws);
    assert_eq!(rows[app.rejected.selected_row(&rows)].id, id(9));
    press(&mut app, "enter");
    let screen = render(&app, 120, 36);
    assert!(
        screen.contains("attributes: genre: horror, length: one line"),
        "{screen}"
    );
    // And what the writer made of its tokens, beside the generation's figures.
    assert!(screen.contains(" s · log-p -3.87/token"), "{screen}");
}

#[test]
fn the_generate_screen_says_which_attributes_each_request_draws() {
    use seedforge::data::task::{Attribute, Task};
    use seedforge::data::workspace::Workspace;
    let tmp = tempfile::tempdir().unwrap();
    let mut task = Task::demo();
    let seeds = std::mem::take(&mut task.seeds);
    task.attributes = vec![
        Attribute {
            name: "genre".into(),
            values: vec!["comedy".into(), "horror".into(), "documentary".into()],
        },
        Attribute {
            name: "length".into(),
            values: vec!["one line".into()],
        },
    ];
    let ws = Workspace::create(&tmp.path().join("ws"), &task, &seeds).unwrap();
    let ws = std::sync::Arc::new(std::sync::Mutex::new(ws));
    let mut app = tui_support::app_over(&ws);
    press(&mut app, "2");
    assert_eq!(app.screen, Screen::Generate);
    let screen = render(&app, 120, 36);
    assert!(
        screen.contains(" attributes: genre (3), length (1)"),
        "{screen}"
    );
}

#[test]
fn the_log_probability_rows_turn_on_step_stay_ordered_and_go_with_the_generation_command() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "2");
    let value = |app: &App, s: Setting| app.generate.fields()[s.row()].value.clone();
    assert_eq!(value(&app, Setting::MinLogprob), "off");
    assert_eq!(value(&app, Setting::MaxLogprob), "off");
    // → turns the floor on where the validation rows put SmolLM2's 10th percentile.
    press(&mut app, &moves(Setting::PerClass, Setting::MinLogprob));
    press(&mut app, "right");
    assert_eq!(value(&app, Setting::MinLogprob), "-3.4");
    press(&mut app, "left left");
    assert_eq!(app.generate.filters.min_logprob, Some(-3.6));
    // The ceiling, typed, cannot go below the floor: refused, and said why.
    press(&mut app, "down enter ^u");
    type_text(&mut app, "-4");
    press(&mut app, "enter");
    let said = app.message.clone().unwrap();
    assert_eq!(said.kind, MessageKind::Error);
    assert!(said.text.contains("not below the ceiling"), "{}", said.text);
    assert_eq!(app.generate.filters.max_logprob, None);
    press(&mut app, "esc enter ^u");
    type_text(&mut app, "-3.5");
    press(&mut app, "enter");
    assert_eq!(app.generate.filters.max_logprob, Some(-3.5));
    // ← on the ceiling stops at the floor rather than crossing it.
    press(&mut app, "left left left");
    assert_eq!(app.generate.filters.max_logprob, Some(-3.5));
    press(&mut app, "enter ^u");
    type_text(&mut app, "off");
    press(&mut app, "enter");
    assert_eq!(value(&app, Setting::MaxLogprob), "off");
    app.take_effects();
    press(&mut app, "g");
    match app.take_effects().as_slice() {
        [Effect::Send(Command::Generate { filters, .. })] => {
            assert_eq!(filters.min_logprob, Some(-3.6));
            assert_eq!(filters.max_logprob, None);
        }
        other => panic!("{other:?}"),
    }
}
