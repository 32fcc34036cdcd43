//! What every screen shows, drawn on ratatui's `TestBackend` at 80×24 (the smallest size the
//! workbench promises) and at 120×36, from a workspace holding real items and verdicts.
//! Snapshots live in `tests/snapshots/`; `INSTA_UPDATE=always cargo test --release --test
//! tui_render` rewrites them after a deliberate change (review the diff).

mod tui_support;

use seedforge::engine::{Event, JobKind};
use seedforge::tui::action::Action;
use seedforge::tui::app::App;
use tui_support::*;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 36)];

fn snap(name: &str, app: &App) {
    for (w, h) in SIZES {
        let text = render(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

fn ev(app: &mut App, e: Event) {
    app.update(Action::Engine(Box::new(e)));
}

/// A generation in full flow: two sequences being written, five items finished with their
/// verdicts, progress and speed.
fn generating(app: &mut App) {
    press(app, "2 enter");
    type_text(app, "3");
    press(app, "enter");
    press(app, "g");
    ev(
        app,
        Event::JobStarted {
            job: 1,
            kind: JobKind::Generate,
            total: 6,
        },
    );
    for (index, n) in [(0u64, 3u32), (1, 4), (2, 5), (3, 6), (4, 7)] {
        ev(
            app,
            Event::ItemAdded {
                job: 1,
                index,
                item: id(n),
            },
        );
    }
    for n in [6, 7] {
        ev(
            app,
            Event::Verdict {
                item: id(n),
                stage: "label_consistency".into(),
                pass: true,
            },
        );
    }
    ev(
        app,
        Event::SequenceStarted {
            job: 1,
            index: 5,
            label: "positive".into(),
        },
    );
    for t in [" An", " unexpected", "ly", " moving", " story", " about"] {
        ev(
            app,
            Event::Delta {
                job: 1,
                index: 5,
                text: t.into(),
            },
        );
    }
    ev(
        app,
        Event::Progress {
            job: 1,
            done: 5,
            total: 6,
            tokens_per_second: 21.4,
            eta_seconds: Some(7.5),
        },
    );
}

#[test]
fn review_screen() {
    let f = fixture();
    let app = app(&f);
    snap("review", &app);
}

#[test]
fn review_after_decisions_and_an_edit() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "a x e ^u");
    type_text(
        &mut app,
        "Flat characters and clumsy dialogue, but the ending lands.",
    );
    press(&mut app, "enter");
    snap("review_edited", &app);
}

#[test]
fn review_with_nothing_left() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "a a a a");
    snap("review_empty", &app);
}

#[test]
fn review_dialogs() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "e");
    snap("review_editor", &app);
    press(&mut app, "esc l");
    snap("review_relabel", &app);
    press(&mut app, "esc b");
    snap("review_bulk", &app);
}

#[test]
fn seeds_screen_and_editor() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "1 down down");
    snap("seeds", &app);
    press(&mut app, "e");
    snap("seeds_editor", &app);
}

#[test]
fn generate_screen_idle() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "2");
    snap("generate_idle", &app);
}

#[test]
fn generate_screen_while_generating() {
    let f = fixture();
    let mut app = app(&f);
    generating(&mut app);
    snap("generate_running", &app);
    press(&mut app, "t");
    snap("generate_template", &app);
}

#[test]
fn rejected_screen_and_detail() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "x 4");
    snap("rejected", &app);
    press(&mut app, "down enter");
    snap("rejected_detail", &app);
}

#[test]
fn train_and_evaluate_before_any_run() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "5");
    snap("train_empty", &app);
    press(&mut app, "6");
    snap("evaluate_empty", &app);
}

/// A run folder as `train_run` and `EvalReport::save` leave it (only what the screens read).
fn eval_run(dir: &std::path::Path, name: &str, method: &str, extra: Option<usize>, right: usize) {
    let run = dir.join("runs").join(name);
    std::fs::create_dir_all(&run).unwrap();
    if let Some(extra) = extra {
        std::fs::write(
            run.join("config.json"),
            serde_json::json!({"real_examples": 8, "extra_examples": extra}).to_string(),
        )
        .unwrap();
    }
    let labels = vec!["negative".to_string(), "positive".to_string()];
    // 10 rows, the first `right` right.
    let pairs: Vec<(&str, &str)> = (0..10)
        .map(|i| {
            let gold = if i % 2 == 0 { "negative" } else { "positive" };
            let other = if i % 2 == 0 { "positive" } else { "negative" };
            (gold, if i < right { gold } else { other })
        })
        .collect();
    let m = seedforge::eval::metrics::Metrics::compute(&labels, pairs);
    let report = serde_json::json!({
        "method": method, "task": "demo", "test_file": "/data/sst2/dev.tsv", "shots": 8,
        "calibrated": false, "model": "smollm2", "metrics": m, "seconds": 3.5,
        "finished_at": "2026-01-01T00:00:00Z"
    });
    std::fs::write(run.join("eval.json"), report.to_string()).unwrap();
}

/// The comparison while an evaluation runs: ICL and the two LoRA runs side by side, the
/// selected one's per-class results and confusion matrix, the job's progress above.
#[test]
fn evaluate_compares_icl_and_lora_runs() {
    let f = fixture();
    eval_run(&f.dir, "20260101-100000-train-seeds", "lora", Some(0), 7);
    eval_run(
        &f.dir,
        "20260101-110000-train-accepted",
        "lora",
        Some(12),
        9,
    );
    eval_run(&f.dir, "20260101-120000-eval-icl", "icl", None, 6);
    seedforge::data::test_set::TestSetChoice {
        path: "/data/sst2/dev.tsv".into(),
        label_map: "0=negative,1=positive".into(),
        limit: Some(10),
        calibrate: false,
        zero_shot: false,
    }
    .save(&f.dir)
    .unwrap();
    let mut app = app(&f);
    press(&mut app, "6");
    let text = render(&app, 120, 36);
    let order: Vec<usize> = ["icl ", "lora seeds ", "lora seeds+12"]
        .iter()
        .map(|m| {
            text.find(m)
                .unwrap_or_else(|| panic!("{m} missing:\n{text}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains("0=negative,1=positive"), "{text}");
    snap("evaluate_comparison", &app);
    press(&mut app, "down down");
    assert!(render(&app, 120, 36).contains("lora seeds+12 · 20260101-110000-train-accepted"));
    ev(
        &mut app,
        Event::JobStarted {
            job: 2,
            kind: JobKind::Evaluate,
            total: 30,
        },
    );
    ev(
        &mut app,
        Event::EvalStarted {
            job: 2,
            name: "lora 20260101-100000-train-seeds".into(),
            index: 1,
            count: 3,
        },
    );
    ev(
        &mut app,
        Event::Progress {
            job: 2,
            done: 14,
            total: 30,
            tokens_per_second: 0.0,
            eta_seconds: Some(16.0),
        },
    );
    let text = render(&app, 120, 36);
    assert!(
        text.contains("evaluating lora 20260101-100000-train-seeds (2/3) · 14/30 rows · ETA 16s"),
        "{text}"
    );
    snap("evaluate_running", &app);
}

/// A distilled student under its teacher: the teacher's and the student's accuracy and texts/s
/// side by side in the student's results.
#[test]
fn evaluate_shows_a_student_under_its_teacher() {
    let f = fixture();
    let teacher = "20260101-100000-train-seeds";
    eval_run(&f.dir, teacher, "lora", Some(0), 8);
    eval_run(
        &f.dir,
        "20260101-110000-train-accepted",
        "lora",
        Some(12),
        9,
    );
    let student = "20260101-120000-student";
    eval_run(&f.dir, student, "student", None, 7);
    let dir = f.dir.join("runs").join(student);
    // The student labelled its 10 rows in 0.5 ms; the teacher took 3.5 s.
    let path = dir.join("eval.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["seconds"] = serde_json::json!(0.0005);
    std::fs::write(&path, v.to_string()).unwrap();
    let record = seedforge::student::store::StudentRecord {
        seedforge_version: "0.1.0".into(),
        kind: seedforge::student::store::KIND.into(),
        task_name: "demo".into(),
        labels: vec!["negative".into(), "positive".into()],
        config: Default::default(),
        teacher: f.dir.join("runs").join(teacher),
        temperature: 1.0,
        seeds: 8,
        teacher_texts: 0,
        unlabelled_texts: 0,
        final_loss: 0.1,
    };
    std::fs::write(
        dir.join(seedforge::student::store::CONFIG_FILE),
        serde_json::to_string(&record).unwrap(),
    )
    .unwrap();
    let mut app = app(&f);
    press(&mut app, "6");
    let text = render(&app, 120, 36);
    let at = |m: &str| {
        text.find(m)
            .unwrap_or_else(|| panic!("{m} missing:\n{text}"))
    };
    // Under its teacher, not under the newer run it was not distilled from.
    assert!(at("lora seeds ") < at("└ student") && at("└ student") < at("lora seeds+12"));
    press(&mut app, "down");
    let text = render(&app, 120, 36);
    assert!(
        text.contains("student of 20260101-100000-train-seeds: 70.0% vs 80.0% (-10.0"),
        "{text}"
    );
    assert!(text.contains("20000 vs 2.9 texts/s (×7000)"), "{text}");
    snap("evaluate_student", &app);
}

#[test]
fn train_and_evaluate_read_runs_on_disk() {
    let f = fixture();
    let run = f.dir.join("runs").join("20261121-101500-train");
    std::fs::create_dir_all(&run).unwrap();
    let mut lines = vec![serde_json::json!({
        "event": "started", "train_examples": 6, "val_examples": 2, "epochs": 4,
        "steps_per_epoch": 5, "total_steps": 20, "trainable_params": 16384, "device": "cpu"
    })];
    for step in 1..=12u32 {
        let loss = 0.35 + 2.0 * (-(step as f64) / 4.0).exp();
        lines.push(serde_json::json!({
            "event": "step", "step": step, "epoch": (step - 1) / 5, "loss": loss, "lr": 2e-4,
            "grad_norm": 0.8, "step_time_s": 0.42, "tokens": 300, "tokens_per_s": 714.0,
            "elapsed_s": 0.42 * step as f64
        }));
        if step % 5 == 0 {
            lines.push(serde_json::json!({
                "event": "eval", "epoch": step / 5 - 1, "step": step, "train_loss": loss,
                "val_loss": loss + 0.1, "val_accuracy": 0.75, "best": true,
                "eval_time_s": 0.3, "elapsed_s": 0.42 * step as f64
            }));
        }
    }
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    std::fs::write(run.join("metrics.jsonl"), text).unwrap();
    let labels = vec!["negative".to_string(), "positive".to_string()];
    let pairs = [
        ("negative", "negative"),
        ("negative", "negative"),
        ("negative", "positive"),
        ("positive", "positive"),
        ("positive", "positive"),
        ("positive", "positive"),
        ("positive", "negative"),
        ("negative", "negative"),
    ];
    let m = seedforge::eval::metrics::Metrics::compute(&labels, pairs);
    let report = serde_json::json!({
        "method": "lora", "task": "demo", "test_file": "/data/sst2/dev.tsv", "shots": 0,
        "calibrated": false, "model": "smollm2", "metrics": m, "seconds": 3.5,
        "finished_at": "2026-01-01T00:00:00Z"
    });
    std::fs::write(run.join("eval.json"), report.to_string()).unwrap();
    let mut app = app(&f);
    press(&mut app, "5");
    snap("train_run_on_disk", &app);
    press(&mut app, "6");
    snap("evaluate_run_on_disk", &app);
}

/// The wiring the training issue will use: a train job's metric events, as the trainer writes
/// them, drawn live. (The events are the test's; the app shows only what it is sent.)
#[test]
fn train_screen_plots_live_metric_events() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "5");
    ev(
        &mut app,
        Event::JobStarted {
            job: 3,
            kind: JobKind::Train,
            total: 40,
        },
    );
    let train = |app: &mut App, fields: serde_json::Value| {
        ev(
            app,
            Event::Train {
                job: 3,
                event: train_event(fields),
            },
        );
    };
    train(
        &mut app,
        serde_json::json!({"event": "started", "total_steps": 40, "epochs": 4}),
    );
    for step in 1..=15u32 {
        let loss = 0.4 + 1.6 / (1.0 + step as f64 / 3.0);
        train(
            &mut app,
            serde_json::json!({
                "event": "step", "step": step, "epoch": (step - 1) / 10, "loss": loss,
                "lr": 2e-4, "step_time_s": 0.5
            }),
        );
        if step == 10 {
            train(
                &mut app,
                serde_json::json!({
                    "event": "eval", "epoch": 0, "step": 10, "val_loss": 0.95, "val_accuracy": 0.625
                }),
            );
        }
    }
    let text = render(&app, 120, 36);
    assert!(text.contains("Loss · live"), "{text}");
    assert!(
        text.contains("step 15/40 · 0.50 s/step · ETA 13s · val accuracy 62.5%"),
        "{text}"
    );
    snap("train_live", &app);
}

#[test]
fn help_overlay() {
    let f = fixture();
    let mut app = app(&f);
    press(&mut app, "?");
    snap("help", &app);
}

#[test]
fn a_terminal_too_small_says_so() {
    let f = fixture();
    let app = app(&f);
    let text = render(&app, 50, 12);
    assert!(text.contains("needs at least 60×16"), "{text}");
}

#[test]
fn every_screen_and_dialog_draws_at_any_size() {
    let f = fixture();
    let mut states: Vec<(&str, TestApp)> = Vec::new();
    for keys in [
        "1", "1 e", "2", "2 t", "3", "3 e", "3 l", "3 b", "3 X", "4", "4 enter", "5", "5 enter",
        "6", "6 f", "6 g", "?", "q",
    ] {
        let mut a = app(&f);
        generating(&mut a);
        press(&mut a, "esc");
        press(&mut a, keys);
        states.push((keys, a));
    }
    for (keys, a) in &states {
        for w in (1..=130).step_by(7) {
            for h in (1..=40).step_by(3) {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render(a, w, h)))
                    .unwrap_or_else(|_| panic!("drawing after `{keys}` at {w}×{h} panicked"));
            }
        }
    }
}

#[test]
fn an_annotated_item_shows_the_label_the_model_gave_and_its_distribution() {
    use seedforge::data::item::{Item, Source};
    use seedforge::data::record::RecordBody;
    use seedforge::pipeline::annotate::confidence_verdict;
    let f = fixture();
    // Decide the generated items first, so the annotated one is next in the queue.
    let mut app = app(&f);
    press(&mut app, "a a a a");
    {
        let mut ws = f.ws.lock().unwrap();
        let task = ws.task().clone();
        let id = ws
            .add_item(Item::new(
                "an overlong, self-regarding mess of a film",
                "negative",
                Source::Annotated,
            ))
            .unwrap();
        let verdict = confidence_verdict(0.6, &prediction(&task, "negative", 0.83));
        ws.append(RecordBody::Verdict {
            item_id: id,
            verdict,
        })
        .unwrap();
    }
    // The job's writes reach the screen as the store's events.
    app.pump();
    let text = render(&app, 120, 36);
    assert!(text.contains("self-regarding mess"), "{text}");
    assert!(text.contains("annotated (the model's label)"), "{text}");
    assert!(
        text.contains("labelled by the model · confidence 0.83"),
        "{text}"
    );
    assert!(!text.contains("no label check"), "{text}");
    assert!(text.contains("0.83 ◂"), "the distribution is drawn: {text}");
}
