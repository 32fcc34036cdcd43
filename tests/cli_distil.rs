//! `seedforge distil` on a tiny model written by the test: a LoRA run teaches a student, which
//! is saved, loaded back by `predict` and `eval` (no language model needed) with the same
//! probabilities it gave when it was trained, and whose damaged files are named in errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_seedforge");

const TEXTS: [&str; 6] = [
    "a warm and kind film",
    "dull and bad, sadly",
    "we had fun",
    "a sad mess of a plot",
    "fine work by all",
    "i was bored",
];

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "should have failed");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A workspace on the demo task, a tiny model and a one-epoch run on it.
fn setup(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let model = dir.join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let ws = dir.join("ws");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .arg("init")
        .output()
        .unwrap());
    let run = ws.join("runs").join("teacher");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args(["train", "--device", "cpu", "--epochs", "1", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap());
    (model, ws, run)
}

#[test]
fn a_student_is_distilled_saved_and_read_back_with_the_same_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, ws, run) = setup(tmp.path());
    // The run recorded what it trained on: the demo's seeds.
    let examples = jsonl(&run.join("examples.jsonl"));
    assert!(!examples.is_empty());
    assert!(examples.iter().all(|e| e["extra"] == false));

    let unl = tmp.path().join("texts.txt");
    std::fs::write(&unl, TEXTS.join("\n") + "\n").unwrap();
    let test = tmp.path().join("test.tsv");
    let mut body = String::from("sentence\tlabel\n");
    for (t, g) in TEXTS.iter().zip(["1", "0", "1", "0", "1", "0"]) {
        body.push_str(&format!("{t}\t{g}\n"));
    }
    std::fs::write(&test, body).unwrap();
    let student = tmp.path().join("student");
    let err = ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args([
            "distil",
            "--device",
            "cpu",
            "--epochs",
            "5",
            "--buckets",
            "4096",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--run")
        .arg(&run)
        .arg("--unlabelled")
        .arg(&unl)
        .arg("--out")
        .arg(&student)
        .arg("--eval")
        .arg(&test)
        .args(["--label-map", "0=negative,1=positive"])
        .output()
        .unwrap());
    assert!(err.contains("6 unlabelled"), "{err}");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(student.join("student.json")).unwrap())
            .unwrap();
    assert_eq!(
        record["labels"],
        serde_json::json!(["negative", "positive"])
    );
    assert_eq!(record["unlabelled_texts"], 6);
    // The seeds keep their own labels; the run trained on nothing else.
    assert_eq!(record["teacher_texts"], 0);
    assert!(record["final_loss"].as_f64().unwrap().is_finite());

    // eval.json's predictions came from the student in memory, right after training.
    let trained: Vec<Value> = jsonl(&student.join("predictions.jsonl"));
    assert_eq!(trained.len(), TEXTS.len());

    // predict loads it from disk, with no model at all: the same probabilities.
    let out = tmp.path().join("answers.jsonl");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args(["predict", "--model", "/nonexistent/model.gguf", "--run"])
        .arg(&student)
        .arg("--input")
        .arg(&unl)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let answers = jsonl(&out);
    assert_eq!(answers.len(), TEXTS.len());
    for (a, t) in answers.iter().zip(&trained) {
        assert_eq!(a["text"], t["text"]);
        assert_eq!(a["label"], t["predicted"]);
        let probs = t["probs"].as_array().unwrap();
        for (i, l) in ["negative", "positive"].iter().enumerate() {
            let (x, y) = (a["probs"][*l].as_f64().unwrap(), probs[i].as_f64().unwrap());
            assert!((x - y).abs() < 1e-6, "{l}: {x} vs {y}");
        }
    }

    // eval reads a student folder as a student, again without a model.
    let again = tmp.path().join("again");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args(["eval", "--model", "/nonexistent/model.gguf", "--adapter"])
        .arg(&student)
        .arg("--test")
        .arg(&test)
        .args(["--label-map", "0=negative,1=positive", "--out"])
        .arg(&again)
        .output()
        .unwrap());
    let first: Value =
        serde_json::from_str(&std::fs::read_to_string(student.join("eval.json")).unwrap()).unwrap();
    let second: Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("eval.json")).unwrap()).unwrap();
    assert_eq!(first["method"], "student");
    assert_eq!(first["correct"], second["correct"]);

    // A damaged weights file is refused, naming it.
    let weights = student.join("student.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = failed(
        &Command::new(BIN)
            .arg("--workspace")
            .arg(&ws)
            .args(["predict", "--run"])
            .arg(&student)
            .arg("--input")
            .arg(&unl)
            .output()
            .unwrap(),
    );
    assert!(err.contains("student.safetensors"), "{err}");
}

#[test]
fn a_run_without_recorded_texts_asks_for_them_and_a_missing_run_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, ws, run) = setup(tmp.path());
    std::fs::remove_file(run.join("examples.jsonl")).unwrap();
    let err = failed(
        &Command::new(BIN)
            .arg("--workspace")
            .arg(&ws)
            .args(["distil", "--device", "cpu", "--model"])
            .arg(&model)
            .arg("--run")
            .arg(&run)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("examples.jsonl") && err.contains("--data"),
        "{err}"
    );
    let err = failed(
        &Command::new(BIN)
            .arg("--workspace")
            .arg(&ws)
            .args(["distil", "--device", "cpu", "--model"])
            .arg(&model)
            .args(["--run", "/nonexistent/run"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("/nonexistent/run"), "{err}");
}

fn predicted(dir: &Path) -> Vec<String> {
    jsonl(&dir.join("predictions.jsonl"))
        .iter()
        .map(|r| r["predicted"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn teacher_labels_are_kept_and_reused_and_bench_student_puts_student_beside_teacher() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, ws, run) = setup(tmp.path());
    let unl = tmp.path().join("texts.txt");
    std::fs::write(&unl, TEXTS.join("\n") + "\n").unwrap();
    let test = tmp.path().join("test.tsv");
    let mut body = String::from("sentence\tlabel\n");
    for (t, g) in TEXTS.iter().zip(["1", "0", "1", "0", "1", "0"]) {
        body.push_str(&format!("{t}\t{g}\n"));
    }
    std::fs::write(&test, body).unwrap();
    let cache = tmp.path().join("teacher.jsonl");
    let distil = |out: &Path, temperature: &str| {
        ok(&Command::new(BIN)
            .arg("--workspace")
            .arg(&ws)
            .args([
                "distil",
                "--device",
                "cpu",
                "--epochs",
                "3",
                "--buckets",
                "1024",
            ])
            .arg("--model")
            .arg(&model)
            .arg("--run")
            .arg(&run)
            .arg("--unlabelled")
            .arg(&unl)
            .arg("--teacher-labels")
            .arg(&cache)
            .args(["--temperature", temperature, "--out"])
            .arg(out)
            .output()
            .unwrap())
    };
    let student = tmp.path().join("s1");
    let err = distil(&student, "1");
    assert!(err.contains("0 teacher answers"), "{err}");
    let lines = jsonl(&cache);
    assert_eq!(lines.len(), TEXTS.len());
    for l in &lines {
        assert_eq!(l["probs"].as_array().unwrap().len(), 2);
        let sum: f64 = l["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-6, "{l}");
    }
    // A second student from the same teacher asks it nothing new.
    let err = distil(&tmp.path().join("s2"), "2");
    assert!(err.contains("6 teacher answers"), "{err}");
    assert_eq!(jsonl(&cache).len(), TEXTS.len());

    // The teacher's own evaluation on the test rows, to check the bench's agreement against.
    let teacher_eval = tmp.path().join("teacher-eval");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args(["eval", "--device", "cpu", "--method", "lora", "--model"])
        .arg(&model)
        .arg("--adapter")
        .arg(&run)
        .arg("--test")
        .arg(&test)
        .args(["--label-map", "0=negative,1=positive", "--out"])
        .arg(&teacher_eval)
        .output()
        .unwrap());
    let student_eval = tmp.path().join("student-eval");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args(["eval", "--adapter"])
        .arg(&student)
        .arg("--test")
        .arg(&test)
        .args(["--label-map", "0=negative,1=positive", "--out"])
        .arg(&student_eval)
        .output()
        .unwrap());
    let same = predicted(&teacher_eval)
        .iter()
        .zip(predicted(&student_eval))
        .filter(|(a, b)| **a == *b)
        .count();

    let json = tmp.path().join("bench.json");
    let out = Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args(["bench", "student", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("--run")
        .arg(&student)
        .arg("--test")
        .arg(&test)
        .args([
            "--label-map",
            "0=negative,1=positive",
            "--min-seconds",
            "0.05",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    ok(&out);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.contains("cpu: ") && table.contains("student ÷ teacher"),
        "{table}"
    );
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(b["rows"], TEXTS.len());
    assert_eq!(b["teacher"]["items"], TEXTS.len());
    // The student is timed over whole passes of the same rows.
    let items = b["student"]["items"].as_u64().unwrap() as usize;
    assert!(
        items >= TEXTS.len() && items.is_multiple_of(TEXTS.len()),
        "{b}"
    );
    assert!(b["student"]["seconds"].as_f64().unwrap() >= 0.05, "{b}");
    assert_eq!(b["same_label"], same, "{b}");
    // The teacher was found from the student's record and read as `eval` reads it.
    let teacher: Value =
        serde_json::from_str(&std::fs::read_to_string(teacher_eval.join("eval.json")).unwrap())
            .unwrap();
    assert_eq!(
        b["teacher"]["accuracy"], teacher["metrics"]["accuracy"],
        "{b}"
    );
    let ratio = b["speedup"].as_f64().unwrap();
    let expect = b["student"]["items_per_s"].as_f64().unwrap()
        / b["teacher"]["items_per_s"].as_f64().unwrap();
    assert!((ratio - expect).abs() < 1e-6 * expect, "{b}");

    // A folder with no student is refused in words.
    let err = failed(
        &Command::new(BIN)
            .arg("--workspace")
            .arg(&ws)
            .args(["bench", "student", "--run"])
            .arg(&run)
            .arg("--test")
            .arg(&test)
            .output()
            .unwrap(),
    );
    assert!(err.contains("student.json"), "{err}");
}
