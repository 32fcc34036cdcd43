//! The workbench's labelling: `l` on the Evaluate screen sends the selected classifier and the
//! file to the engine, whose job labels the file into `predictions/` with progress, bad rows
//! told with file and line — on a tiny model written by the test, through the real engine, and
//! drawn on ratatui's `TestBackend`.

mod common;
mod tui_support;

use std::path::PathBuf;

use common::engine::until_end;
use seedforge::engine::eval_job::Target;
use seedforge::engine::{Command, Event, JobKind, PredictRequest};
use seedforge::tui::action::Action;
use seedforge::tui::app::Effect;
use seedforge::tui::screens::evaluate::result_path;
use tui_support::*;

#[test]
fn the_evaluate_screen_labels_a_file_through_the_engine() {
    let f = fixture();
    let mut app = app(&f);
    app.take_effects();
    press(&mut app, "6 l");
    assert_eq!(app.evaluate.open_field().map(|d| d.field), Some(3));
    // A file that is not there is refused before anything is sent.
    type_text(&mut app, "/no/such/texts.txt");
    press(&mut app, "enter");
    assert!(app.take_effects().is_empty());
    assert!(
        app.evaluate
            .error
            .as_deref()
            .unwrap()
            .contains("no file at /no/such/texts.txt")
    );

    let input = f.tmp.path().join("texts.txt");
    std::fs::write(
        &input,
        "a warm and kind film\n\nso dull\nwe had fun\nbad \u{0}\n",
    )
    .unwrap();
    press(&mut app, "l ^u");
    type_text(&mut app, &input.display().to_string());
    press(&mut app, "enter");
    // No run evaluated yet: in-context learning with the seeds labels, into the workspace.
    let request: PredictRequest = match app.take_effects().as_slice() {
        [Effect::Send(Command::Predict(req))] => (**req).clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(request.input, input);
    assert_eq!(request.classifier, Target::Icl);
    assert_eq!(
        request.out.parent(),
        Some(f.dir.join("predictions").as_path())
    );
    assert!(
        request
            .out
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("-texts.jsonl"),
        "{}",
        request.out.display()
    );
    assert_eq!(app.queued, Some(JobKind::Predict));

    // The engine runs it on a tiny model; its events drive the screen.
    let model = f.tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let (engine, mut rx) = common::engine::start(model, f.ws.clone());
    engine
        .send(Command::Predict(Box::new(request.clone())))
        .unwrap();
    let events = until_end(&mut rx);
    let mut progress = Vec::new();
    let mut logs = Vec::new();
    for e in &events {
        match e {
            Event::JobStarted { kind, total, .. } => {
                assert_eq!((*kind, *total), (JobKind::Predict, 4));
            }
            Event::Progress { done, total, .. } => progress.push((*done, *total)),
            Event::Log(l) => logs.push(l.clone()),
            Event::JobFailed { error, .. } => panic!("{error}"),
            _ => {}
        }
    }
    assert_eq!(progress.last(), Some(&(4, 4)), "{progress:?}");
    let want = format!("{}:2: empty text", input.display());
    assert!(logs.iter().any(|l| l.contains(&want)), "{logs:?}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&request.out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 3, 4, 5]);
    for r in &rows {
        let p = r["probs"].as_object().unwrap();
        let sum: f64 = p.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{r}");
        let best = p
            .iter()
            .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
            .unwrap()
            .0;
        assert_eq!(r["label"].as_str(), Some(best.as_str()));
    }
    assert!(!PathBuf::from(format!("{}.part", request.out.display())).exists());

    // The screen follows the job: progress while it runs, the result file when it is done.
    for e in events {
        let done = matches!(e, Event::JobFinished { .. });
        if done {
            let screen = render(&app, 120, 36);
            assert!(screen.contains("labelling with icl"), "{screen}");
            assert!(screen.contains("4/4 texts"), "{screen}");
        }
        app.update(Action::Engine(Box::new(e)));
    }
    assert!(app.job.is_none() && app.queued.is_none());
    let msg = &app.message.as_ref().unwrap().text;
    assert!(
        msg.contains("label done") && msg.contains("4 texts"),
        "{msg}"
    );
    assert!(
        msg.contains(
            &request
                .out
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        ),
        "{msg}"
    );
    engine.shutdown();
    // Labelling the same file again writes a new result beside it, never over it.
    assert_eq!(result_path(&f.dir, &input).parent(), request.out.parent());
}
