//! The engine's training and evaluation jobs on a tiny model written by the test: a run folder
//! with everything in it, the trainer's events in order, pause / resume / stop mid-run, the
//! comparison saved as `eval.json` files, test-file errors told in words — and generation
//! afterwards still the base model's, since training works on a clone.

mod common;

use common::engine::{next, until_end};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use seedforge::data::import::ImportOptions;
use seedforge::data::item::{Item, Source};
use seedforge::data::task::Task;
use seedforge::data::workspace::Workspace;
use seedforge::engine::{Command, Engine, EvalRequest, Event, JobKind, TrainRequest};
use seedforge::eval::report::{EvalReport, Method};
use seedforge::pipeline::filters::FilterSettings;
use seedforge::pipeline::generate::GenerateSettings;
use seedforge::train::trainer::TrainConfig;
use tokio::sync::mpsc::UnboundedReceiver;

struct Setup {
    tmp: tempfile::TempDir,
    ws: Arc<Mutex<Workspace>>,
    engine: Engine,
    rx: UnboundedReceiver<Event>,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let mut task = Task::demo();
    let seeds = std::mem::take(&mut task.seeds);
    let mut ws = Workspace::create(&tmp.path().join("ws"), &task, &seeds).unwrap();
    // Two accepted items (the method's extra data) and one rejected (never trained on).
    for (text, label, accept) in [
        ("a warm and funny film", "positive", true),
        ("a dull and empty film", "negative", true),
        ("an odd film", "positive", false),
    ] {
        let id = ws
            .add_item(Item::new(text, label, Source::Generated))
            .unwrap();
        if accept {
            ws.accept(&id).unwrap();
        } else {
            ws.reject(&id, None).unwrap();
        }
    }
    let ws = Arc::new(Mutex::new(ws));
    let (engine, rx) = common::engine::start(model, ws.clone());
    Setup {
        tmp,
        ws,
        engine,
        rx,
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 4,
        // The tiny tokenizer spells most words letter by letter: room for the whole prompt.
        max_len: 768,
        eval_batch_size: 4,
        ..TrainConfig::default()
    }
}

fn train(s: &Setup, epochs: usize, with_accepted: bool) {
    s.engine
        .send(Command::Train(Box::new(TrainRequest {
            config: config(epochs),
            with_accepted,
            then_seeds: false,
        })))
        .unwrap();
}

/// A trainer event's tag, as `metrics.jsonl` spells it.
fn tag(event: &seedforge::train::metrics::TrainEvent) -> String {
    serde_json::to_value(event).unwrap()["event"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The trainer's event tags, in order, of a job's events.
fn tags(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Train { event, .. } => Some(tag(event)),
            _ => None,
        })
        .collect()
}

fn run_dirs(ws: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ws.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

/// What a fixed-seed generation writes (its item texts), through the engine.
fn generate_texts(s: &mut Setup) -> Vec<String> {
    generate_with(s, None)
        .into_iter()
        .map(|(text, adapter)| {
            assert_eq!(adapter, None, "a base-model item names no adapter");
            text
        })
        .collect()
}

/// The items a fixed-seed generation writes with `adapter`: (text, the adapter its meta names).
fn generate_with(s: &mut Setup, adapter: Option<PathBuf>) -> Vec<(String, Option<String>)> {
    // One round (no quota): the same requests with and without the adapter.
    let mut settings = GenerateSettings {
        per_class: 1,
        batch: 2,
        max_attempts_factor: 1,
        ..Default::default()
    };
    settings.sampling.max_new_tokens = 10;
    settings.sampling.stop.clear();
    s.engine
        .send(Command::Generate {
            settings,
            filters: FilterSettings {
                label_consistency: false,
                ..Default::default()
            },
            adapter,
        })
        .unwrap();
    let mut ids = Vec::new();
    for e in until_end(&mut s.rx) {
        match e {
            Event::ItemAdded { item, .. } => ids.push(item),
            Event::JobFailed { error, .. } => panic!("generation failed: {error}"),
            _ => {}
        }
    }
    let w = s.ws.lock().unwrap();
    ids.iter()
        .map(|id| {
            let it = w.state().get(id.as_str()).unwrap().original();
            let adapter = it
                .meta
                .get("adapter")
                .and_then(|a| a.as_str())
                .map(String::from);
            (it.text.clone(), adapter)
        })
        .collect()
}

fn write_test_file(dir: &Path) -> PathBuf {
    let path = dir.join("test.tsv");
    std::fs::write(
        &path,
        "sentence\tlabel\n\
         a warm and moving story\t1\n\
         a dull mess\t0\n\
         funny and kind\t1\n\
         a label the map does not know\t7\n\
         boring and long\t0\n\
         \t1\n",
    )
    .unwrap();
    path
}

fn eval_request(test: PathBuf, label_map: Option<&str>) -> Command {
    Command::Evaluate(Box::new(EvalRequest {
        test,
        read: ImportOptions {
            label_map: label_map.map(|m| m.parse().unwrap()),
            ..ImportOptions::default()
        },
        limit: None,
        zero_shot: false,
        icl: true,
        calibrate: false,
        lora: None,
    }))
}

#[test]
fn train_pause_stop_evaluate_and_generate_as_before() {
    let mut s = setup();
    let ws_dir = s.ws.lock().unwrap().dir().to_path_buf();
    let before = generate_texts(&mut s);
    assert_eq!(before.len(), 2);

    // 1. Seeds + accepted, two epochs: the run folder and the events in order.
    train(&s, 2, true);
    let events = until_end(&mut s.rx);
    assert!(
        matches!(
            events.first(),
            Some(Event::JobStarted {
                kind: JobKind::Train,
                ..
            })
        ),
        "{events:?}"
    );
    match events.last() {
        Some(Event::JobFinished { kind, summary, .. }) => {
            assert_eq!(*kind, JobKind::Train);
            assert!(summary.contains("seeds + 2 accepted"), "{summary}");
        }
        other => panic!("training did not finish: {other:?}"),
    }
    let t = tags(&events);
    let steps = t.iter().filter(|x| *x == "step").count();
    let evals = t.iter().filter(|x| *x == "eval").count();
    assert_eq!(t.first().map(String::as_str), Some("started"), "{t:?}");
    assert_eq!(t.last().map(String::as_str), Some("finished"), "{t:?}");
    assert_eq!(evals, 2, "{t:?}");
    // 10 examples less 2 held out, batches of 4: 2 steps an epoch, each epoch ending in eval.
    assert_eq!(steps, 4, "{t:?}");
    assert_eq!(
        t[1..t.len() - 1],
        ["step", "step", "eval", "step", "step", "eval"]
    );
    let dirs = run_dirs(&ws_dir);
    assert_eq!(dirs.len(), 1);
    let run = &dirs[0];
    assert!(
        run.to_string_lossy().ends_with("-train-accepted"),
        "{run:?}"
    );
    for f in [
        "config.json",
        "metrics.jsonl",
        "adapter_config.json",
        "adapter_model.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f} missing in {run:?}");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["extra_examples"], 2);
    assert_eq!(cfg["real_examples"], 8);
    // The events sent are the lines written.
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let sent: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|e| match e {
            Event::Train { event, .. } => Some(serde_json::to_value(event).unwrap()),
            _ => None,
        })
        .collect();
    let written: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent, written);

    // 2. Seeds only, many epochs: pause at the first step, resume, then stop.
    train(&s, 200, false);
    let mut seen = Vec::new();
    let mut paused = false;
    let end = loop {
        let e = next(&mut s.rx);
        if let Event::Train { event, .. } = &e {
            let tag = tag(event);
            match tag.as_str() {
                "step" if !paused => {
                    s.engine.set_paused(true);
                    paused = true;
                }
                "paused" => s.engine.set_paused(false),
                "resumed" => s.engine.cancel(),
                _ => {}
            }
            seen.push(tag);
        }
        if matches!(
            e,
            Event::JobFinished { .. } | Event::JobCancelled { .. } | Event::JobFailed { .. }
        ) {
            break e;
        }
    };
    match &end {
        Event::JobCancelled { kind, summary, .. } => {
            assert_eq!(*kind, JobKind::Train);
            assert!(summary.contains("seeds only"), "{summary}");
        }
        other => panic!("stop did not cancel the run: {other:?}"),
    }
    let p = seen.iter().position(|t| t == "paused").expect("paused");
    assert_eq!(seen[p + 1], "resumed", "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("finished"));
    assert!(
        seen.iter().filter(|t| *t == "step").count() < 20,
        "stopped long before 200 epochs: {seen:?}"
    );
    let dirs = run_dirs(&ws_dir);
    assert_eq!(dirs.len(), 2);
    let seeds_run = dirs
        .iter()
        .find(|d| d.to_string_lossy().ends_with("-train-seeds"))
        .unwrap();
    // A stopped run keeps its best adapter.
    assert!(seeds_run.join("adapter_model.safetensors").is_file());
    let finished = std::fs::read_to_string(seeds_run.join("metrics.jsonl")).unwrap();
    assert!(finished.contains("\"reason\":\"stopped\""));

    // 3. The comparison on a labelled file with 0/1 labels and bad rows.
    let test = write_test_file(s.tmp.path());
    s.engine
        .send(eval_request(test.clone(), Some("0=negative,1=positive")))
        .unwrap();
    let events = until_end(&mut s.rx);
    let mut order = Vec::new();
    let mut logs = Vec::new();
    for e in &events {
        match e {
            Event::JobStarted { kind, total, .. } => {
                assert_eq!(*kind, JobKind::Evaluate);
                // Four scored rows, three methods.
                assert_eq!(*total, 12);
                order.push("started".to_string());
            }
            Event::EvalStarted {
                name, index, count, ..
            } => {
                assert_eq!(*count, 3);
                order.push(format!("{index}:{name}"));
            }
            Event::EvalSaved { run, .. } => {
                assert!(run.join("eval.json").is_file());
                order.push("saved".into());
            }
            Event::Log(l) => logs.push(l.clone()),
            Event::JobFinished { summary, .. } => {
                assert!(summary.contains("icl: accuracy"), "{summary}");
                order.push("finished".into());
            }
            Event::JobFailed { error, .. } => panic!("evaluation failed: {error}"),
            _ => {}
        }
    }
    assert_eq!(order.len(), 8, "{order:?}");
    assert_eq!(order[0], "started");
    assert_eq!(order[1], "0:icl");
    assert_eq!(order[2], "saved");
    assert!(order[3].starts_with("1:lora ") && order[3].ends_with("-train-accepted"));
    assert!(order[5].starts_with("2:lora ") && order[5].ends_with("-train-seeds"));
    assert_eq!(order[7], "finished");
    // The bad rows are named with file and line.
    assert!(
        logs.iter()
            .any(|l| l.contains("test.tsv:5") && l.contains("unknown label")),
        "{logs:?}"
    );
    assert!(logs.iter().any(|l| l.contains("test.tsv:7")), "{logs:?}");
    let mut calibrated = Vec::new();
    for dir in [&dirs[0], &dirs[1]] {
        let r = EvalReport::load(dir).unwrap();
        assert_eq!(r.method, Method::Lora);
        assert_eq!(r.metrics.n, 4);
        assert_eq!(r.adapter.as_deref(), Some(dir.as_path()));
        // A run trained on accepted generated items is read calibrated, the seeds-only run not.
        let extra = seedforge::train::run::read_trained_on(dir)
            .unwrap()
            .unwrap()
            .extra_examples;
        assert_eq!(r.calibrated, extra > 0, "{}", dir.display());
        calibrated.push(r.calibrated);
        assert_eq!(r.correct.len(), 4, "rows kept for the paired comparison");
        // Every row's reading is saved beside the report, and agrees with it.
        let prior = r
            .content_free_prior
            .clone()
            .expect("the content-free prior");
        assert!((prior.iter().sum::<f64>() - 1.0).abs() < 1e-6, "{prior:?}");
        let text = std::fs::read_to_string(dir.join("predictions.jsonl")).unwrap();
        let rows: Vec<seedforge::eval::report::RowPrediction> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 4);
        for (row, &ok) in rows.iter().zip(&r.correct) {
            assert_eq!(row.predicted == row.gold, ok, "{row:?}");
            let z: f64 = row.log_likelihoods.iter().map(|l| l.exp()).sum();
            let raw: Vec<f64> = row.log_likelihoods.iter().map(|l| l.exp() / z).collect();
            // Calibrated: the raw distribution divided by the prior (at the run's strength:
            // half for generated items), renormalised.
            let expect: Vec<f64> = if r.calibrated {
                let strength = r.calibration_strength.unwrap_or(1.0);
                assert_eq!(strength, seedforge::eval::reading::GENERATED_STRENGTH);
                let q: Vec<f64> = raw
                    .iter()
                    .zip(&prior)
                    .map(|(p, c)| p / c.powf(strength))
                    .collect();
                let t: f64 = q.iter().sum();
                q.iter().map(|x| x / t).collect()
            } else {
                raw
            };
            for (a, b) in row.probs.iter().zip(&expect) {
                assert!((a - b).abs() < 1e-6, "{row:?} against {expect:?}");
            }
        }
        let lines: Vec<usize> = rows.iter().map(|x| x.line).collect();
        assert!(
            lines.windows(2).all(|w| w[0] < w[1]),
            "file order: {lines:?}"
        );
    }
    calibrated.sort();
    assert_eq!(calibrated, [false, true], "one run of each kind");
    let icl = run_dirs(&ws_dir)
        .into_iter()
        .find(|d| d.to_string_lossy().ends_with("-eval-icl"))
        .expect("an eval-icl run folder");
    let r = EvalReport::load(&icl).unwrap();
    assert_eq!((r.method, r.shots, r.metrics.n), (Method::Icl, 8, 4));

    // 4. Again on the same file: the LoRA runs are up to date, only ICL runs again.
    s.engine
        .send(eval_request(test, Some("0=negative,1=positive")))
        .unwrap();
    match until_end(&mut s.rx).last() {
        Some(Event::JobFinished { summary, .. }) => {
            assert!(
                summary.contains("2 LoRA run(s) already evaluated"),
                "{summary}"
            )
        }
        other => panic!("{other:?}"),
    }

    // 5. Generation with a run's adapter: every item names it; and the engine's model never
    // kept an adapter, so the base model's generation is as before.
    let with = generate_with(&mut s, Some(dirs[0].clone()));
    assert_eq!(with.len(), before.len());
    for (_, adapter) in &with {
        assert_eq!(adapter.as_deref(), Some(dirs[0].to_str().unwrap()));
    }
    let after = generate_texts(&mut s);
    assert_eq!(before, after);
    // A folder without an adapter fails the job with the folder named.
    s.engine
        .send(Command::Generate {
            settings: GenerateSettings::default(),
            filters: FilterSettings::default(),
            adapter: Some(s.tmp.path().join("no-such-run")),
        })
        .unwrap();
    match until_end(&mut s.rx).last() {
        Some(Event::JobFailed { error, .. }) => {
            assert!(error.contains("no-such-run"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    s.engine.shutdown();
}

#[test]
fn staged_training_trains_the_accepted_run_on_on_the_seeds_into_a_second_folder() {
    let mut s = setup();
    let ws_dir = s.ws.lock().unwrap().dir().to_path_buf();
    s.engine
        .send(Command::Train(Box::new(TrainRequest {
            config: config(2),
            with_accepted: true,
            then_seeds: true,
        })))
        .unwrap();
    let events = until_end(&mut s.rx);
    match events.last() {
        Some(Event::JobFinished { summary, .. }) => {
            assert!(
                summary.contains("seeds + 2 accepted") && summary.contains("; then "),
                "{summary}"
            );
        }
        other => panic!("staged training did not finish: {other:?}"),
    }
    // Both stages' events came up: two starts, two finishes.
    let t = tags(&events);
    assert_eq!(t.iter().filter(|x| *x == "started").count(), 2, "{t:?}");
    assert_eq!(t.iter().filter(|x| *x == "finished").count(), 2, "{t:?}");
    let dirs = run_dirs(&ws_dir);
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    let first = dirs
        .iter()
        .find(|d| d.to_string_lossy().ends_with("-train-accepted"))
        .expect("the first stage's folder");
    let second = dirs
        .iter()
        .find(|d| d.to_string_lossy().ends_with("-train-staged"))
        .expect("the second stage's folder");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(second.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["started_from"], first.display().to_string());
    assert_eq!(config["extra_examples"], 0);
    // It is read as the run it started from: the accepted items were generated.
    let reading = seedforge::eval::reading::reading_of_run(second).unwrap();
    assert!(reading.calibrate, "{reading:?}");
    assert!(second.join("adapter_model.safetensors").is_file());
}

#[test]
fn test_file_problems_are_told_not_panicked() {
    let mut s = setup();
    let missing = s.tmp.path().join("nope.tsv");
    s.engine.send(eval_request(missing, None)).unwrap();
    match until_end(&mut s.rx).last() {
        Some(Event::JobFailed { kind, error, .. }) => {
            assert_eq!(*kind, JobKind::Evaluate);
            assert!(
                error.contains("cannot read the test file") && error.contains("nope.tsv"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    // SST-2's 0/1 labels without a label map: no row has one of the task's labels.
    let test = write_test_file(s.tmp.path());
    s.engine.send(eval_request(test, None)).unwrap();
    match until_end(&mut s.rx).last() {
        Some(Event::JobFailed { error, .. }) => {
            assert!(
                error.contains("no row has one of the task's labels"),
                "{error}"
            );
            assert!(error.contains("0=negative,1=positive"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // A file with no rows at all.
    let empty = s.tmp.path().join("empty.tsv");
    std::fs::write(&empty, "").unwrap();
    s.engine
        .send(eval_request(empty, Some("0=negative,1=positive")))
        .unwrap();
    assert!(matches!(
        until_end(&mut s.rx).last(),
        Some(Event::JobFailed { .. })
    ));
    s.engine.shutdown();
}

/// A run's adapter labelling texts in the annotate job reads them as `predict` and the
/// Evaluate screen read that run (`eval::reading`): a run trained on accepted generated items is
/// read calibrated, and each annotated item's confidence is that reading's probability.
#[test]
fn the_annotate_job_reads_a_run_as_predict_does() {
    let mut s = setup();
    train(&s, 2, true);
    match until_end(&mut s.rx).pop() {
        Some(Event::JobFinished { .. }) => {}
        other => panic!("training did not finish: {other:?}"),
    }
    let ws_dir = s.ws.lock().unwrap().dir().to_path_buf();
    let run = run_dirs(&ws_dir).pop().expect("the run");
    let reading = seedforge::eval::reading::reading_of_run(&run).unwrap();
    assert!(reading.calibrate, "{reading:?}");
    let texts = [
        "we loved the actors",
        "a slow and tired film",
        "the end was fine",
    ];
    // A plain .txt file, one text a line, as a user picks one.
    let input = s.tmp.path().join("texts.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    let before = s.ws.lock().unwrap().state().items().len();
    s.engine
        .send(Command::Annotate(Box::new(
            seedforge::engine::AnnotateRequest {
                input,
                read: ImportOptions::default(),
                adapter: Some(run.clone()),
                limit: None,
                min_confidence: 0.0,
                filters: FilterSettings::default(),
            },
        )))
        .unwrap();
    match until_end(&mut s.rx).pop() {
        Some(Event::JobFinished { .. }) => {}
        other => panic!("{other:?}"),
    }
    // The same texts through the run as predict reads it.
    let device = burn::tensor::Device::flex();
    let loaded = seedforge::llm::load::load(&s.tmp.path().join("tiny.gguf"), &device).unwrap();
    let mut m = loaded.model.clone();
    seedforge::train::peft::load_adapter(&mut m, &run).unwrap();
    let task = Task::load(&ws_dir).unwrap();
    let templates = seedforge::pipeline::prompt::Templates::for_task(&task).unwrap();
    let options = seedforge::engine::predict_job::classifier_options(
        &seedforge::engine::eval_job::Target::Lora(run),
        &task,
        false,
        16,
    )
    .unwrap();
    let classifier = seedforge::pipeline::classify::Classifier::new(
        &m,
        &loaded.tokenizer,
        &task,
        &templates,
        options,
    )
    .unwrap();
    let predicted = classifier.classify(&texts).unwrap();
    let w = s.ws.lock().unwrap();
    let annotated = &w.state().items()[before..];
    assert_eq!(annotated.len(), texts.len());
    for (it, p) in annotated.iter().zip(&predicted) {
        assert_eq!(it.label(), p.label);
        let confidence = it.original().meta["confidence"].as_f64().unwrap();
        let expected = p.prob_of(&p.label).unwrap();
        assert!(
            (confidence - expected).abs() < 1e-5,
            "{}: {confidence} against predict's {expected}",
            it.text()
        );
    }
}
