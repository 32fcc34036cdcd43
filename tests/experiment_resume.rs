//! The experiment on a tiny model written by the test: stopped once between steps and once in
//! the middle of a training step, then resumed, it keeps what had finished, redoes the cut-off
//! step from scratch, and ends with the same results as a run that was never stopped.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use seedforge::data::import::fragments::Fragments;
use seedforge::data::import::{Row, SeedRows};
use seedforge::data::task::Task;
use seedforge::engine::JobControl;
use seedforge::experiment::steps::{marker_path, step_names};
use seedforge::experiment::{self, Arm, Cancelled, Context, ExperimentSpec, Hooks, report};
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
        max_attempts_factor: 1,
        ..GenerateSettings::default()
    };
    generate.sampling.max_new_tokens = 6;
    ExperimentSpec {
        dataset: "dataset.tsv".into(),
        test: "test.tsv".into(),
        test_rows: 4,
        validation: None,
        task,
        seeds_per_class: 3,
        min_words: 0,
        seed_rows: SeedRows::Auto,
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
        judge_select: false,
        calibrate_extra: false,
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
        loaded: &s.loaded,
        templates: &s.templates,
        model_path: "tiny",
        device: "cpu",
        dataset: &s.dataset,
        fragments: &Fragments::of(&s.dataset, s.spec.seed_rows),
        test: &s.test,
    };
    let cancel = JobControl::default();
    let mut lines = Vec::new();
    let mut log = |l: &str| {
        if stop_at(l) {
            cancel.stop();
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

/// A tiny model on disk, loaded, and the demo task without its seeds (each draw brings its own).
fn tiny_task() -> (tempfile::TempDir, LoadedModel, Task, Templates) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let loaded = load::load(&model, &Device::flex()).unwrap();
    let mut task = Task::demo();
    task.seeds.clear();
    let templates = Templates::for_task(&task).unwrap();
    (tmp, loaded, task, templates)
}

#[test]
fn a_stopped_experiment_resumes_from_its_last_finished_step() {
    let (tmp, loaded, task, templates) = tiny_task();
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
    let names = step_names(&setup.spec, &Arm::ALL);
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
            "seed 7: eval-lora-synthetic-uncalibrated…",
            "seed 7: train-lora-unfiltered…",
            "seed 7: eval-lora-unfiltered…",
            "seed 7: train-lora-teacher…",
            "seed 7: eval-lora-teacher…",
            "seed 7: train-lora-annotated…",
            "seed 7: eval-lora-annotated…",
            "seed 7: train-lora-mixed…",
            "seed 7: eval-lora-mixed…",
            "seed 7: train-lora-staged…",
            "seed 7: eval-lora-staged…",
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
    // The mixed arm counts only its generated items; the annotated pool none.
    let eval_of =
        |arm: Arm| seedforge::eval::report::EvalReport::load(&seed_dir.join(arm.name())).unwrap();
    let config_of = |arm: Arm| -> serde_json::Value {
        let path = seed_dir.join(arm.name()).join("config.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    assert_eq!(config_of(Arm::LoraAnnotated)["generated_examples"], 0);
    // The pool was labelled by the workbench's annotate job into a workspace of its own, whose
    // items are annotated.jsonl's, each naming its line of the pool file.
    let ws =
        seedforge::data::workspace::Workspace::open(&seed_dir.join("workspace-annotated")).unwrap();
    let annotated: Vec<serde_json::Value> =
        std::fs::read_to_string(seed_dir.join("annotated.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(ws.state().items().len(), annotated.len());
    // The pool: every dataset row that is not one of the 3 + 3 seeds, at most `pool`.
    assert_eq!(
        annotated.len(),
        (setup.dataset.len() - 6).min(setup.spec.pool)
    );
    for (it, a) in ws.state().items().iter().zip(&annotated) {
        assert_eq!(it.source(), seedforge::data::item::Source::Annotated);
        assert_eq!(it.label(), a["label"]);
        assert_eq!(it.verdicts().iter().all(|v| v.pass), a["kept"] == true);
        assert!(
            it.original().meta["input"]
                .as_str()
                .unwrap()
                .contains("pool.jsonl:")
        );
    }
    drop(ws);
    let mixed = config_of(Arm::LoraMixed);
    assert_eq!(
        mixed["generated_examples"],
        config_of(Arm::LoraSynthetic)["extra_examples"]
    );
    assert!(mixed["generated_examples"].as_u64() > Some(0), "{mixed}");
    // The staged run trained on from the synthetic run's adapter, on the seeds alone.
    let staged = config_of(Arm::LoraStaged);
    assert_eq!(
        staged["started_from"].as_str().map(PathBuf::from),
        Some(seed_dir.join(Arm::LoraSynthetic.name()))
    );
    assert_eq!(staged["extra_examples"], 0);
    assert_ne!(
        std::fs::read(seed_dir.join("lora-staged/adapter_model.safetensors")).unwrap(),
        std::fs::read(seed_dir.join("lora-synthetic/adapter_model.safetensors")).unwrap(),
        "the staged run trained"
    );
    // This spec reads every arm raw (`calibrate_extra: false`).
    assert!(!eval_of(Arm::LoraMixed).calibrated);
    // An evaluation saved under another reading (an older default) is scored again, alone.
    let syn_dir = seed_dir.join(Arm::LoraSynthetic.name());
    let mut old = seedforge::eval::report::EvalReport::load(&syn_dir).unwrap();
    (old.calibrated, old.calibration_strength) = (true, None);
    old.save(&syn_dir).unwrap();
    let reopened =
        experiment::reopen_stale_evaluations(&out, &setup.spec, &[7], &Arm::ALL).unwrap();
    assert_eq!(reopened.len(), 1, "{reopened:?}");
    assert!(
        reopened[0].contains("eval-lora-synthetic") && reopened[0].contains("strength 1, now 0"),
        "{reopened:?}"
    );
    assert!(!marker_path(&seed_dir, "eval-lora-synthetic").exists());
    let (r, lines) = run(&setup, &out, &|_| false);
    r.unwrap();
    let redone: Vec<&String> = lines.iter().filter(|l| l.ends_with('…')).collect();
    assert_eq!(redone, ["seed 7: eval-lora-synthetic…"]);
    assert!(!eval_of(Arm::LoraSynthetic).calibrated);
    assert!(
        experiment::reopen_stale_evaluations(&out, &setup.spec, &[7], &Arm::ALL)
            .unwrap()
            .is_empty()
    );
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
    // A folder from before the fragment rule (no `seed_rows` in its spec) drew from every row:
    // it resumes under `--seed-rows any`, and today's default is refused there.
    let path = out.join(experiment::SPEC_FILE);
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("seed_rows");
    std::fs::write(&path, old.to_string()).unwrap();
    let err = experiment::claim(&out, &setup.spec)
        .unwrap_err()
        .to_string();
    assert!(err.contains("seed_rows"), "{err}");
    let mut before = setup.spec.clone();
    before.seed_rows = SeedRows::Any;
    experiment::claim(&out, &before).unwrap();
}

/// The judge chosen by cross-validation on the seeds, generation in rounds until each class has
/// its quota of kept items (or the attempt cap), and the report that says so.
#[test]
fn the_judge_is_measured_and_generation_fills_a_balanced_quota() {
    let (tmp, loaded, task, templates) = tiny_task();
    let mut spec = spec(task);
    spec.judge_select = true;
    spec.calibrate_extra = true;
    spec.generate.max_attempts_factor = 3;
    let setup = Setup {
        loaded,
        templates,
        spec,
        dataset: rows(&[
            ("a warm and funny film", "positive"),
            ("a bright clever story", "positive"),
            ("i loved every minute", "positive"),
            ("dull and far too long", "negative"),
            ("a tired empty plot", "negative"),
            ("i was bored stiff", "negative"),
        ]),
        test: rows(&[
            ("a lovely kind film", "positive"),
            ("a dull mess", "negative"),
        ]),
    };
    let out = tmp.path().join("quota");
    let arms = [
        Arm::LoraReal,
        Arm::LoraSynthetic,
        Arm::LoraSyntheticUncalibrated,
    ];
    let (r, lines) = run_arms(&setup, &out, 7, &arms, &|_| false);
    r.unwrap();
    let dir = experiment::seed_dir(&out, 7);

    // The seeds-only run trained first; every candidate judge was measured on all six seeds in
    // three folds (three seeds per class).
    let first: Vec<&String> = lines.iter().filter(|l| l.ends_with('…')).take(3).collect();
    assert_eq!(
        first,
        [
            "seed 7: seeds…",
            "seed 7: train-lora-real…",
            "seed 7: judge…"
        ]
    );
    let judge: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(marker_path(&dir, "judge")).unwrap())
            .unwrap();
    let measured = judge["detail"]["measured"].as_array().unwrap();
    assert_eq!(measured.len(), 3, "{judge}");
    assert!(measured.iter().all(|m| m["n"] == 6), "{judge}");
    assert_eq!(judge["detail"]["folds"], 3);
    let chosen = judge["detail"]["chosen"].as_str().unwrap().to_string();
    let best = measured
        .iter()
        .map(|m| m["correct"].as_u64().unwrap())
        .max();
    let chosen_correct = measured
        .iter()
        .find(|m| m["judge"] == chosen.as_str())
        .map(|m| m["correct"].as_u64().unwrap());
    assert_eq!(
        chosen_correct, best,
        "the chosen judge is a best-measured one"
    );

    // Per class: never more than the quota kept, every later keeper marked "quota", and a class
    // short of its quota used up the attempt cap (and is reported).
    let items: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("filtered.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let generate: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(marker_path(&dir, "generate")).unwrap())
            .unwrap();
    assert_eq!(generate["detail"]["judge"], chosen.as_str());
    let short = generate["detail"]["short"].as_array().unwrap();
    for label in ["positive", "negative"] {
        let of: Vec<&serde_json::Value> = items.iter().filter(|i| i["label"] == label).collect();
        let kept = of.iter().filter(|i| i["kept"] == true).count();
        assert!(kept <= 2, "{label}: {kept} kept");
        assert!(of.len() <= 6, "{label}: {} attempts", of.len());
        let over: Vec<&&serde_json::Value> = of
            .iter()
            .filter(|i| {
                i["verdicts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["stage"] == "quota")
            })
            .collect();
        assert!(over.iter().all(|i| i["kept"] == false));
        let is_short = short.iter().any(|s| s[0] == label);
        assert_eq!(is_short, kept < 2, "{label}: {generate}");
        if kept < 2 {
            assert_eq!(of.len(), 6, "{label}: short of its quota before the cap");
        }
    }
    // Generation ran as the workbench's job on a workspace of this draw: its seeds are the
    // draw's, each once, and a prompt shows each of its class's seeds once; it opens in the
    // workbench with every item and verdict of filtered.jsonl.
    let ws = seedforge::data::workspace::Workspace::open(&dir.join("workspace")).unwrap();
    let drawn: Vec<seedforge::data::task::Example> =
        std::fs::read_to_string(dir.join("seeds.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(ws.seeds(), drawn.as_slice());
    assert_eq!(ws.state().items().len(), items.len());
    for it in ws.state().items() {
        let prompt = it.original().prompt.clone().unwrap();
        for seed in drawn.iter().filter(|s| s.label == it.label()) {
            assert_eq!(prompt.matches(seed.text.as_str()).count(), 1, "{prompt}");
        }
        let kept = it.verdicts().iter().all(|v| v.pass);
        let listed = items
            .iter()
            .find(|i| i["index"] == it.original().meta["request"])
            .unwrap();
        assert_eq!(listed["kept"], kept);
        assert_eq!(listed["text"], it.text());
    }
    drop(ws);
    // The arm trained on generated items is read calibrated, its ablation from the same adapter
    // without; the seeds-only run uncalibrated.
    let eval = |arm: Arm| seedforge::eval::report::EvalReport::load(&dir.join(arm.name())).unwrap();
    let (syn, raw, real) = (
        eval(Arm::LoraSynthetic),
        eval(Arm::LoraSyntheticUncalibrated),
        eval(Arm::LoraReal),
    );
    assert!(syn.calibrated && !raw.calibrated && !real.calibrated);
    // At the strength the workbench reads a run on generated items with.
    assert_eq!(
        syn.calibration_strength,
        Some(seedforge::eval::reading::GENERATED_STRENGTH)
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("lora-synthetic").join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["generated_examples"], config["extra_examples"]);
    assert_eq!(syn.adapter, raw.adapter);
    assert!(
        !dir.join("lora-synthetic-uncalibrated")
            .join("adapter_model.safetensors")
            .exists()
    );
    // Each class's mean words, kept and seeds, as the report gives them: counted here from the
    // files the steps wrote.
    let filter: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(marker_path(&dir, "filter")).unwrap())
            .unwrap();
    let mean = |texts: Vec<&str>| {
        texts
            .iter()
            .map(|t| t.split_whitespace().count())
            .sum::<usize>() as f64
            / texts.len().max(1) as f64
    };
    let mut cells = Vec::new();
    for label in ["negative", "positive"] {
        let kept = mean(
            items
                .iter()
                .filter(|i| i["label"] == label && i["kept"] == true)
                .map(|i| i["text"].as_str().unwrap())
                .collect(),
        );
        let seeds = mean(
            drawn
                .iter()
                .filter(|s| s.label == label)
                .map(|s| s.text.as_str())
                .collect(),
        );
        let got = &filter["detail"]["mean_words"][label];
        assert!(
            (got[0].as_f64().unwrap() - kept).abs() < 1e-9
                && (got[1].as_f64().unwrap() - seeds).abs() < 1e-9,
            "{label}: {got} against {kept}, {seeds}"
        );
        cells.push(format!("{label} {kept:.1} ({seeds:.1})"));
    }
    let rep = report::build(&out, &setup.spec, &[7], &arms, "test").unwrap();
    let md = report::markdown(&rep);
    assert!(md.contains(&cells.join(", ")), "{md}");
    // A quota of 2 a class holds two of the three default length bins.
    assert!(
        md.contains("generate until 2 kept per class in equal shares of 2 length bins"),
        "{md}"
    );
    assert!(
        md.contains("Seeds: 3 per class, at least 0 words, whole texts where the file is made of phrases (`--seed-rows auto`)."),
        "{md}"
    );
    assert!(!md.contains("Attributes drawn per request"), "{md}");
    let mut with_attributes = setup.spec.clone();
    with_attributes.task.attributes = vec![seedforge::data::task::Attribute {
        name: "genre".into(),
        values: vec!["comedy".into(), "horror".into()],
    }];
    let md2 =
        report::markdown(&report::build(&out, &with_attributes, &[7], &arms, "test").unwrap());
    assert!(
        md2.contains("Attributes drawn per request: genre (comedy | horror)."),
        "{md2}"
    );
    assert!(md.contains("| seed | label-consistency judge |"), "{md}");
    assert!(md.contains(&format!("| 7 | {chosen} |")), "{md}");
    assert!(md.contains("against LoRA on the seeds alone"), "{md}");
}
