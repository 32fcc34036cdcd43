//! The experiment on a tiny model written by the test: stopped once between steps and once in
//! the middle of a training step, then resumed, it keeps what had finished, redoes the cut-off
//! step from scratch, and ends with the same results as a run that was never stopped.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use seedforge::data::import::Row;
use seedforge::data::task::Task;
use seedforge::eval::experiment::steps::{marker_path, step_names};
use seedforge::eval::experiment::{self, Arm, Cancelled, Context, ExperimentSpec, Hooks, report};
use seedforge::llm::load::{self, LoadedModel};
use seedforge::pipeline::filters::FilterSettings;
use seedforge::pipeline::generate::GenerateSettings;
use seedforge::pipeline::prompt::Templates;
use seedforge::train::trainer::TrainConfig;

fn rows(texts: &[(&str, &str)]) -> Vec<Row> {
    texts
        .iter()
        .enumerate()
        .map(|(i, (t, l))| Row {
            line: i + 1,
            text: t.to_string(),
            label: l.to_string(),
        })
        .collect()
}

fn spec(task: Task) -> ExperimentSpec {
    let mut generate = GenerateSettings {
        per_class: 2,
        batch: 4,
        ..GenerateSettings::default()
    };
    generate.sampling.max_new_tokens = 6;
    ExperimentSpec {
        dataset: "dataset.tsv".into(),
        test: "test.tsv".into(),
        test_rows: 4,
        task,
        seeds_per_class: 3,
        min_words: 0,
        generate,
        filters: FilterSettings {
            min_words: 1,
            ..FilterSettings::default()
        },
        train: TrainConfig {
            epochs: 2,
            batch_size: 2,
            ..TrainConfig::default()
        },
        eval_batch: 4,
        model: "tiny".into(),
        pool: 4,
        annotate_min_confidence: 0.0,
        teacher_temperature: 0.8,
    }
}

struct Setup {
    loaded: LoadedModel,
    templates: Templates,
    spec: ExperimentSpec,
    dataset: Vec<Row>,
    test: Vec<Row>,
}

/// Runs seed 7 until it finishes or `stop_at` says to stop; returns the log.
fn run(s: &Setup, out: &Path, stop_at: &dyn Fn(&str) -> bool) -> (anyhow::Result<()>, Vec<String>) {
    run_arms(s, out, 7, &Arm::ALL, stop_at)
}

fn run_arms(
    s: &Setup,
    out: &Path,
    seed: u64,
    arms: &[Arm],
    stop_at: &dyn Fn(&str) -> bool,
) -> (anyhow::Result<()>, Vec<String>) {
    let ctx = Context {
        model: &s.loaded.model,
        tokenizer: &s.loaded.tokenizer,
        templates: &s.templates,
        model_path: "tiny",
        device: "cpu",
        dataset: &s.dataset,
        test: &s.test,
    };
    let cancel = AtomicBool::new(false);
    let mut lines = Vec::new();
    let mut log = |l: &str| {
        if stop_at(l) {
            cancel.store(true, Ordering::SeqCst);
        }
        eprintln!("{l}");
        lines.push(l.to_string());
    };
    let mut hooks = Hooks {
        log: &mut log,
        cancel: &cancel,
    };
    experiment::claim(out, &s.spec).unwrap();
    let r = experiment::run_seed(&ctx, &mut hooks, &s.spec, out, seed, arms);
    (r, lines)
}

fn accuracies(out: &Path, spec: &ExperimentSpec) -> BTreeMap<Arm, f64> {
    let rep = report::build(out, spec, &[7], &Arm::ALL, "test").unwrap();
    assert!(rep.complete, "{:?}", rep.seeds[0].pending);
    rep.seeds[0]
        .results
        .iter()
        .map(|r| (r.arm, r.accuracy))
        .collect()
}

#[test]
fn a_stopped_experiment_resumes_from_its_last_finished_step() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let loaded = load::load(&model, &Device::flex()).unwrap();
    let mut task = Task::demo();
    task.seeds.clear();
    let templates = Templates::for_task(&task).unwrap();
    let setup = Setup {
        loaded,
        templates,
        spec: spec(task),
        dataset: rows(&[
            ("a warm and funny film", "positive"),
            ("a bright clever story", "positive"),
            ("i loved every minute", "positive"),
            ("a joy to watch again", "positive"),
            ("dull and far too long", "negative"),
            ("a tired empty plot", "negative"),
            ("i was bored stiff", "negative"),
            ("flat jokes and bad acting", "negative"),
        ]),
        test: rows(&[
            ("a lovely kind film", "positive"),
            ("great fun", "positive"),
            ("a dull mess", "negative"),
            ("bad and boring", "negative"),
        ]),
    };

    // Never stopped.
    let whole = tmp.path().join("whole");
    let (r, _) = run(&setup, &whole, &|_| false);
    r.unwrap();
    let expected = accuracies(&whole, &setup.spec);
    assert_eq!(expected.len(), Arm::ALL.len());

    // Stopped after the filter step finished: the next step does not start.
    let out = tmp.path().join("stopped");
    let (r, _) = run(&setup, &out, &|l| l.contains("filter: finished in"));
    assert!(r.unwrap_err().is::<Cancelled>());
    let names = step_names(&Arm::ALL);
    let seed_dir = experiment::seed_dir(&out, 7);
    let done: Vec<&String> = names
        .iter()
        .filter(|n| marker_path(&seed_dir, n).is_file())
        .collect();
    assert_eq!(done, ["seeds", "generate", "filter"]);
    assert!(!seed_dir.join("teacher").exists());
    let generated = std::fs::read(seed_dir.join("generated.jsonl")).unwrap();
    let filter_marker = std::fs::read(marker_path(&seed_dir, "filter")).unwrap();

    // Stopped in the middle of a training step: no marker, and a partial run folder.
    let (r, lines) = run(&setup, &out, &|l| l.ends_with("train-lora-synthetic…"));
    assert!(r.unwrap_err().is::<Cancelled>());
    assert!(lines.iter().any(|l| l.contains("filter: done earlier")));
    assert!(!lines.iter().any(|l| l.ends_with("generate…")), "{lines:?}");
    assert!(!marker_path(&seed_dir, "train-lora-synthetic").exists());
    assert!(marker_path(&seed_dir, "eval-lora-real").is_file());
    assert!(
        seed_dir
            .join("lora-synthetic")
            .join("metrics.jsonl")
            .is_file()
    );

    // Resumed to the end: finished steps untouched, the cut-off one redone.
    let (r, lines) = run(&setup, &out, &|_| false);
    r.unwrap();
    let redone: Vec<&String> = lines.iter().filter(|l| l.ends_with('…')).collect();
    assert_eq!(
        redone,
        [
            "seed 7: train-lora-synthetic…",
            "seed 7: eval-lora-synthetic…",
            "seed 7: train-lora-unfiltered…",
            "seed 7: eval-lora-unfiltered…",
            "seed 7: train-lora-teacher…",
            "seed 7: eval-lora-teacher…",
            "seed 7: train-lora-annotated…",
            "seed 7: eval-lora-annotated…",
        ]
    );
    assert_eq!(
        std::fs::read(seed_dir.join("generated.jsonl")).unwrap(),
        generated
    );
    assert_eq!(
        std::fs::read(marker_path(&seed_dir, "filter")).unwrap(),
        filter_marker
    );
    assert_eq!(accuracies(&out, &setup.spec), expected);
    // The generations are the same as the uninterrupted run's.
    assert_eq!(
        std::fs::read(experiment::seed_dir(&whole, 7).join("generated.jsonl")).unwrap(),
        generated
    );

    // Another sampling seed takes the zero-shot result over (its prompt holds no seeds) rather
    // than scoring the test file again; its in-context arm is its own.
    let (r, lines) = run_arms(&setup, &whole, 8, &[Arm::ZeroShot, Arm::Icl], &|_| false);
    r.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("zero-shot: the same for every seed")),
        "{lines:?}"
    );
    let report = |seed: u64, arm: Arm| {
        std::fs::read_to_string(
            experiment::seed_dir(&whole, seed)
                .join(arm.name())
                .join("eval.json"),
        )
        .unwrap()
    };
    assert_eq!(report(8, Arm::ZeroShot), report(7, Arm::ZeroShot));
    assert!(marker_path(&experiment::seed_dir(&whole, 8), "eval-icl").is_file());

    // Other settings in the same folder are refused, naming what differs.
    let mut other = setup.spec.clone();
    other.train.lr *= 2.0;
    let err = experiment::claim(&out, &other).unwrap_err().to_string();
    assert!(err.contains("train.lr"), "{err}");
}
