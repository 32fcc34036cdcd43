//! The workbench distils a run (Train screen, `d`) through the engine's job, which `seedforge
//! distil` shares, and the Evaluate screen scores the student with everything else and shows
//! it under its teacher: accuracy and texts/s of both. Tiny model written by the test.

mod common;
mod tui_support;

use std::path::PathBuf;

use common::engine::until_end;
use seedforge::data::import::{ImportOptions, LabelMap};
use seedforge::engine::{Command, EvalRequest, Event, JobKind, TrainRequest};
use seedforge::student::store;
use seedforge::train::trainer::TrainConfig;
use seedforge::tui::App;
use seedforge::tui::action::Action;
use seedforge::tui::app::Effect;
use seedforge::tui::theme::Theme;

fn feed(app: &mut App, events: &[Event]) {
    for e in events {
        app.update(Action::Engine(Box::new(e.clone())));
    }
}

fn only_send(app: &mut App) -> Option<Command> {
    match app.take_effects().as_slice() {
        [Effect::Send(c)] => Some(c.clone()),
        [] => None,
        other => panic!("unexpected effects {other:?}"),
    }
}

#[test]
fn d_on_the_train_screen_distils_the_run_and_evaluate_shows_the_student_under_its_teacher() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, engine, mut rx) = common::engine::on_tiny_demo(tmp.path());
    let n_seeds = ws.lock().unwrap().seeds().len();
    let runs_dir = ws.lock().unwrap().runs_dir();

    let mut app = App::new(
        seedforge::tui::read_model::ReadModel::of(&ws.lock().unwrap()),
        Theme::dark(),
    );
    app.update(Action::GoTo(seedforge::tui::screens::Screen::Train));
    // Nothing to distil yet: said, nothing sent.
    tui_support::press(&mut app, "d");
    assert!(only_send(&mut app).is_none());
    let shown = tui_support::render(&app, 120, 36);
    assert!(shown.contains("no run on disk to distil"), "{shown}");

    engine
        .send(Command::Train(Box::new(TrainRequest {
            config: TrainConfig {
                epochs: 1,
                batch_size: 4,
                max_len: 768,
                eval_batch_size: 4,
                patience: 0,
                ..TrainConfig::default()
            },
            with_accepted: false,
            then_seeds: false,
        })))
        .unwrap();
    let ended = until_end(&mut rx);
    assert!(
        matches!(ended.last(), Some(Event::JobFinished { .. })),
        "{ended:?}"
    );
    feed(&mut app, &ended);
    let teacher: PathBuf = std::fs::read_dir(&runs_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    // The runs list and the help name the key; `d` sends the distillation of the selected run.
    let shown = tui_support::render(&app, 120, 36);
    assert!(shown.contains("· d distils ·"), "{shown}");
    let help: Vec<String> = seedforge::tui::help::lines(&app)
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert!(
        help.iter()
            .any(|l| l.trim_start().starts_with("d ") && l.contains("distil the selected run")),
        "{help:?}"
    );
    tui_support::press(&mut app, "d");
    let command = only_send(&mut app).expect("d sent nothing");
    match &command {
        Command::Distil(r) => assert_eq!(r.run, teacher),
        other => panic!("d sent {other:?}"),
    }
    engine.send(command).unwrap();
    let events = until_end(&mut rx);
    feed(&mut app, &events);
    let started = events.iter().find_map(|e| match e {
        Event::JobStarted { kind, total, .. } => Some((*kind, *total)),
        _ => None,
    });
    // The run trained on the seeds alone: they keep their own labels, the teacher reads none.
    assert_eq!(started, Some((JobKind::Distil, 0)), "{events:?}");
    let summary = match events.last() {
        Some(Event::JobFinished { summary, .. }) => summary.clone(),
        other => panic!("{other:?}\n{events:?}"),
    };
    assert!(summary.contains("student of"), "{summary}");
    let student = seedforge::engine::eval_job::student_runs(&runs_dir);
    assert_eq!(student.len(), 1, "{student:?}");
    let student = &student[0];
    let record = store::read_record(student).unwrap();
    assert_eq!(record.teacher, std::path::absolute(&teacher).unwrap());
    assert_eq!(record.seeds, n_seeds);
    assert!(
        tui_support::render(&app, 120, 36).contains("distil done"),
        "the message line should say the job finished"
    );

    // Evaluate: `g`'s job scores the student with the LoRA run; the student sits under it.
    let test = tmp.path().join("test.tsv");
    let mut body = String::from("sentence\tlabel\n");
    for (t, g) in [
        ("a warm and kind film", "1"),
        ("dull and bad, sadly", "0"),
        ("we had fun", "1"),
        ("a sad mess of a plot", "0"),
    ] {
        body.push_str(&format!("{t}\t{g}\n"));
    }
    std::fs::write(&test, body).unwrap();
    engine
        .send(Command::Evaluate(Box::new(EvalRequest {
            test: test.clone(),
            read: ImportOptions {
                label_map: Some("0=negative,1=positive".parse::<LabelMap>().unwrap()),
                ..ImportOptions::default()
            },
            limit: None,
            zero_shot: false,
            icl: false,
            calibrate: false,
            lora: None,
        })))
        .unwrap();
    let events = until_end(&mut rx);
    let saved: Vec<PathBuf> = events
        .iter()
        .filter_map(|e| match e {
            Event::EvalSaved { run, .. } => Some(run.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(saved, [teacher.clone(), student.clone()], "{events:?}");
    feed(&mut app, &events);
    app.update(Action::GoTo(seedforge::tui::screens::Screen::Evaluate));
    let shown = tui_support::render(&app, 120, 36);
    let (lora, under) = (
        shown.find("lora seeds").expect(&shown),
        shown.find("└ student").expect(&shown),
    );
    assert!(lora < under, "{shown}");
    // The student's results say what it gives up against its teacher, and how much faster.
    tui_support::press(&mut app, "down");
    let shown = tui_support::render(&app, 120, 36);
    let name = teacher.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        shown.contains(&format!("student of {name}: ")) && shown.contains(" texts/s (×"),
        "{shown}"
    );
    // Evaluated again: both are up to date, nothing is scored twice.
    engine
        .send(Command::Evaluate(Box::new(EvalRequest {
            test,
            read: ImportOptions {
                label_map: Some("0=negative,1=positive".parse::<LabelMap>().unwrap()),
                ..ImportOptions::default()
            },
            limit: None,
            zero_shot: false,
            icl: false,
            calibrate: false,
            lora: None,
        })))
        .unwrap();
    let events = until_end(&mut rx);
    assert!(
        !events.iter().any(|e| matches!(e, Event::EvalSaved { .. })),
        "{events:?}"
    );

    // With unlabelled texts the teacher reads them, with progress, and the student learns them.
    let texts: Vec<String> = ["one fine day", "a bad idea", "so good", "not for me", "meh"]
        .map(String::from)
        .to_vec();
    engine
        .send(Command::Distil(Box::new(
            seedforge::engine::distil_job::DistilRequest {
                run: teacher.clone(),
                unlabelled: texts.clone(),
                settings: Default::default(),
            },
        )))
        .unwrap();
    let events = until_end(&mut rx);
    let last = events.iter().rev().find_map(|e| match e {
        Event::Progress { done, total, .. } => Some((*done, *total)),
        _ => None,
    });
    assert_eq!(last, Some((texts.len(), texts.len())), "{events:?}");
    assert!(
        matches!(events.last(), Some(Event::JobFinished { .. })),
        "{events:?}"
    );
    let students = seedforge::engine::eval_job::student_runs(&runs_dir);
    assert_eq!(students.len(), 2, "{students:?}");
    let newest = store::read_record(&students[1]).unwrap();
    assert_eq!(newest.unlabelled_texts, texts.len());
}
