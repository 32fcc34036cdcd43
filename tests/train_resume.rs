//! Training checkpoints and resume, end to end on the tiny model the test writes: `seedforge
//! train` killed with SIGKILL part-way and `--resume`d ends with the uninterrupted run's adapter
//! and one continuous `metrics.jsonl`; a finished run says so; a damaged checkpoint is refused
//! naming the file; and the workbench's `R` on a stopped run resumes it through the engine, its
//! live chart continuing where the run left off.

mod common;
mod tui_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use common::engine::{next, until_end};
use seedforge::data::task::Task;
use seedforge::data::workspace::Workspace;
use seedforge::engine::{Command as EngineCommand, Event, TrainRequest};
use seedforge::train::checkpoint::{self, Status};
use seedforge::train::metrics::{StopReason, TrainEvent, read_metrics};
use seedforge::train::trainer::TrainConfig;
use seedforge::tui::App;
use seedforge::tui::action::Action;
use seedforge::tui::app::Effect;
use seedforge::tui::screens::Screen;
use seedforge::tui::theme::Theme;

const TASK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/task.toml");
const EPOCHS: usize = 12;
/// How far a resumed run's adapter may be from the uninterrupted run's. The resumed run redoes
/// the same float operations in the same order from bit-identical state (factors, AdamW's
/// moments, the batch and dropout streams), so it is measured as exactly 0; this allows for a
/// backend that reorders a reduction.
const TOLERANCE: f32 = 1e-6;

fn seedforge(model: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seedforge"));
    c.env("SEEDFORGE_MODEL", model);
    c
}

fn train_args(out: &Path) -> Vec<String> {
    train_args_for(out, EPOCHS)
}

fn train_args_for(out: &Path, epochs: usize) -> Vec<String> {
    [
        "train",
        "--task",
        TASK,
        "--device",
        "cpu",
        "--epochs",
        &epochs.to_string(),
        "--patience",
        "0",
        "--dropout",
        "0.1",
        "--max-len",
        "768",
        "--seed",
        "3",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

fn ok(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "seedforge failed:\n{err}");
    err
}

/// Runs `train` into `out` and kills it (SIGKILL) once `epochs` epoch lines were printed.
fn train_killed_after(model: &Path, out: &Path, epochs: usize) {
    train_killed_after_of(model, train_args(out), epochs)
}

/// The same for a run of `args`: the run goes on while the test reads the epoch line, so the
/// epochs after `epochs` must outlast the slowest wake-up of the test on a loaded machine.
fn train_killed_after_of(model: &Path, args: Vec<String>, epochs: usize) {
    let mut child = seedforge(model)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut seen = 0;
    let mut lines = Vec::new();
    while seen < epochs {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("train ended before epoch {epochs}: {lines:?}");
        }
        if line.trim_start().starts_with("epoch ") {
            seen += 1;
        }
        lines.push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every adapter factor of a run folder, by tensor name.
fn factors(run: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(run.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let x = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, x)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn max_diff(a: &Path, b: &Path) -> f32 {
    let (fa, fb) = (factors(a), factors(b));
    assert_eq!(fa.len(), fb.len());
    assert!(!fa.is_empty());
    let mut d = 0.0f32;
    for ((na, xa), (nb, xb)) in fa.iter().zip(&fb) {
        assert_eq!(na, nb);
        assert_eq!(xa.len(), xb.len());
        for (x, y) in xa.iter().zip(xb) {
            d = d.max((x - y).abs());
        }
    }
    d
}

fn steps(events: &[TrainEvent]) -> Vec<(usize, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Step { step, loss, .. } => Some((*step, *loss)),
            _ => None,
        })
        .collect()
}

/// A resumed run's metrics are the uninterrupted run's: the same steps in order, none twice,
/// the same losses, one `started`, one `finished`, and the seam marked.
fn assert_one_curve(whole: &[TrainEvent], resumed: &[TrainEvent]) {
    let (a, b) = (steps(whole), steps(resumed));
    let numbers: Vec<usize> = b.iter().map(|s| s.0).collect();
    assert_eq!(numbers, (1..=a.len()).collect::<Vec<_>>(), "step numbers");
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x.1 - y.1).abs() <= 1e-6,
            "step {}: {} vs {}",
            x.0,
            x.1,
            y.1
        );
    }
    let count = |f: &dyn Fn(&TrainEvent) -> bool| resumed.iter().filter(|e| f(e)).count();
    assert_eq!(count(&|e| matches!(e, TrainEvent::Started { .. })), 1);
    assert_eq!(count(&|e| matches!(e, TrainEvent::Restored { .. })), 1);
    assert_eq!(count(&|e| matches!(e, TrainEvent::Finished { .. })), 1);
    let evals = |ev: &[TrainEvent]| -> Vec<usize> {
        ev.iter()
            .filter_map(|e| match e {
                TrainEvent::Eval { epoch, .. } => Some(*epoch),
                _ => None,
            })
            .collect()
    };
    assert_eq!(evals(resumed), evals(whole), "one evaluation per epoch");
}

#[test]
fn a_killed_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);

    let whole = tmp.path().join("whole");
    ok(seedforge(&model).args(train_args(&whole)).output().unwrap());
    assert_eq!(
        checkpoint::status(&whole),
        Status::Finished(StopReason::Completed)
    );
    // The finished run keeps only its manifest.
    let left: Vec<_> = std::fs::read_dir(whole.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["state.json"]);

    let broken = tmp.path().join("broken");
    train_killed_after(&model, &broken, 3);
    let Status::Resumable(at) = checkpoint::status(&broken) else {
        panic!("not resumable: {:?}", checkpoint::status(&broken));
    };
    assert!(at.epoch >= 2 && at.epoch < EPOCHS, "{at:?}");
    assert!(
        !broken.join("adapter_config.json").exists(),
        "a killed run has no adapter yet"
    );
    // Without --model: the model the run recorded.
    let err = ok(seedforge(Path::new("/nonexistent"))
        .env_remove("SEEDFORGE_MODEL")
        .args(["train", "--device", "cpu", "--resume"])
        .arg(&broken)
        .output()
        .unwrap());
    assert!(
        err.contains("resuming from the checkpoint after step"),
        "{err}"
    );
    assert_eq!(
        checkpoint::status(&broken),
        Status::Finished(StopReason::Completed)
    );
    let d = max_diff(&whole, &broken);
    println!("resumed vs uninterrupted adapter (CLI, SIGKILL): max |Δ| = {d:e}");
    assert!(d <= TOLERANCE, "max |Δ| = {d}");
    assert_one_curve(
        &read_metrics(&whole.join("metrics.jsonl")).unwrap(),
        &read_metrics(&broken.join("metrics.jsonl")).unwrap(),
    );

    // Again: it has finished.
    let err = ok(seedforge(&model)
        .args(["train", "--device", "cpu", "--resume"])
        .arg(&broken)
        .output()
        .unwrap());
    assert!(err.contains("has finished (completed)"), "{err}");
}

#[test]
fn a_damaged_checkpoint_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let run = tmp.path().join("run");
    // Nothing is compared with an uninterrupted run here, so the run is made far longer than
    // the kill can take to arrive (12 epochs of the tiny model could finish first under load).
    train_killed_after_of(&model, train_args_for(&run, 400), 2);
    let dir = run.join("checkpoint");
    // The tensors the manifest names: a kill while the next generation was being written
    // leaves that generation's files beside them, unreferenced (and harmless to damage).
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    let generation = manifest["generation"]
        .as_u64()
        .expect("a generation number");
    let tensors: PathBuf = dir.join(format!("tensors.{generation}.safetensors"));
    assert!(tensors.exists(), "{}", tensors.display());
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() - 7]).unwrap();
    let out = seedforge(&model)
        .args(["train", "--device", "cpu", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let name = tensors.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name) && err.contains("cut short"), "{err}");
    // The metrics were left as they were.
    assert!(!read_metrics(&run.join("metrics.jsonl")).unwrap().is_empty());

    // A folder that is no run at all.
    let out = seedforge(&model)
        .args(["train", "--device", "cpu", "--resume"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("config.json"), "{err}");
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 4,
        batch_size: 4,
        max_len: 768,
        eval_batch_size: 4,
        patience: 0,
        seed: 7,
        ..TrainConfig::default()
    }
}

/// The engine's training job over a workspace, stopped by the user (`s`) after the second
/// epoch; the workbench lists it as resumable and `R` sends the resume, which the engine runs:
/// the live chart gets the whole run, the adapter is the uninterrupted run's.
#[test]
fn the_workbench_resumes_a_stopped_run_through_the_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let mut task = Task::demo();
    let seeds = std::mem::take(&mut task.seeds);
    let ws = Arc::new(Mutex::new(
        Workspace::create(&tmp.path().join("ws"), &task, &seeds).unwrap(),
    ));
    let (engine, mut rx) = common::engine::start(model, ws.clone());
    let runs_dir = ws.lock().unwrap().runs_dir();
    let train = || {
        EngineCommand::Train(Box::new(TrainRequest {
            config: config(),
            with_accepted: false,
            then_seeds: false,
        }))
    };

    // Uninterrupted.
    engine.send(train()).unwrap();
    let ended = until_end(&mut rx);
    assert!(
        matches!(ended.last(), Some(Event::JobFinished { .. })),
        "{ended:?}"
    );
    let whole = std::fs::read_dir(&runs_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    // Stopped after epoch 2's evaluation.
    engine.send(train()).unwrap();
    loop {
        match next(&mut rx) {
            Event::Train {
                event: TrainEvent::Eval { epoch: 1, .. },
                ..
            } => {
                engine.cancel();
                break;
            }
            Event::JobFailed { error, .. } => panic!("{error}"),
            _ => {}
        }
    }
    let ended = until_end(&mut rx);
    assert!(
        matches!(ended.last(), Some(Event::JobCancelled { .. })),
        "{ended:?}"
    );
    let stopped = std::fs::read_dir(&runs_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| *p != whole)
        .unwrap();
    assert!(matches!(checkpoint::status(&stopped), Status::Resumable(_)));
    // The stopped run's best adapter so far is saved, usable meanwhile.
    assert!(seedforge::train::peft::check_adapter(&stopped).unwrap());

    // The workbench: the run is listed as resumable; R on it sends the resume.
    let mut app = App::new(
        seedforge::tui::read_model::ReadModel::of(&ws.lock().unwrap()),
        Theme::dark(),
    );
    app.update(Action::GoTo(Screen::Train));
    let screen = tui_support::render(&app, 120, 36);
    assert!(screen.contains("R resumes"), "{screen}");
    let name = stopped.file_name().unwrap().to_string_lossy().into_owned();
    // Select the stopped run (the list is newest first; both runs share the second).
    for _ in 0..2 {
        let runs = seedforge::tui::screens::train::training_runs(&app.runs);
        let row = app.train.run.row(&runs);
        if runs[row].name == name {
            break;
        }
        tui_support::press(&mut app, "]");
    }
    let shown = tui_support::render(&app, 120, 36);
    assert!(shown.contains("resumable from step"), "{shown}");
    tui_support::press(&mut app, "R");
    let effects = app.take_effects();
    let command = match effects.as_slice() {
        [Effect::Send(c @ EngineCommand::ResumeTrain { run })] => {
            assert_eq!(*run, stopped);
            c.clone()
        }
        other => panic!("R sent {other:?}"),
    };
    engine.send(command).unwrap();
    let events = until_end(&mut rx);
    for e in &events {
        app.update(Action::Engine(Box::new(e.clone())));
    }
    assert!(
        matches!(events.last(), Some(Event::JobFinished { .. })),
        "{events:?}"
    );
    // The job's events: the stopped run's up to its checkpoint, the seam, then the rest.
    let train_events: Vec<TrainEvent> = events
        .iter()
        .filter_map(|e| match e {
            Event::Train { event, .. } => Some(event.clone()),
            _ => None,
        })
        .collect();
    let whole_events = read_metrics(&whole.join("metrics.jsonl")).unwrap();
    assert_one_curve(&whole_events, &train_events);
    assert_one_curve(
        &whole_events,
        &read_metrics(&stopped.join("metrics.jsonl")).unwrap(),
    );
    let d = max_diff(&whole, &stopped);
    println!("resumed vs uninterrupted adapter (engine, stopped): max |Δ| = {d:e}");
    assert!(d <= TOLERANCE, "max |Δ| = {d}");
    // The app now shows that run, finished, with every step.
    let runs = seedforge::tui::screens::train::training_runs(&app.runs);
    let shown = &runs[app.train.run.row(&runs)];
    assert_eq!(shown.dir, stopped);
    assert_eq!(shown.curves.train.len(), steps(&whole_events).len());
    assert_eq!(
        checkpoint::status(&stopped),
        Status::Finished(StopReason::Completed)
    );
}
