//! `seedforge experiment --validation-rows N` on a tiny model written by the test: the rows it
//! scores are carved from the dataset, written beside the report, recorded in the spec, and
//! never among the seeds; a test file and carved rows together are refused.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_seedforge");

fn dataset(dir: &Path) -> std::path::PathBuf {
    let mut body = String::from("sentence\tlabel\n");
    for i in 0..60 {
        let (text, label) = if i % 2 == 0 {
            (format!("a warm and kind film number {i}"), 1)
        } else {
            (format!("a dull and sad plot number {i}"), 0)
        };
        body.push_str(&format!("{text}\t{label}\n"));
    }
    let path = dir.join("train.tsv");
    std::fs::write(&path, body).unwrap();
    path
}

fn experiment(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["experiment", "--device", "cpu", "--arms", "zero-shot"])
        .args([
            "--label-map",
            "0=negative,1=positive",
            "--seeds-per-class",
            "2",
        ])
        .arg("--model")
        .arg(model)
        .arg("--dataset")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn texts_of_jsonl(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn validation_rows_are_carved_from_the_dataset_and_kept_from_the_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let data = dataset(tmp.path());
    let out = tmp.path().join("exp");
    let o = experiment(&model, &data, &out, &["--validation-rows", "12"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("scoring on 12 rows carved from"), "{err}");

    let validation = texts_of_jsonl(&out.join("validation.jsonl"));
    assert_eq!(validation.len(), 12);
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("experiment.json")).unwrap())
            .unwrap();
    assert_eq!(spec["validation"]["rows"], 12);
    assert_eq!(spec["validation"]["seed"], 13);
    assert_eq!(spec["test_rows"], 12);
    assert!(spec["test"].as_str().unwrap().ends_with("validation.jsonl"));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("12 validation rows carved from") && report.contains("(seed 13)"),
        "{report}"
    );

    // The seeds come from the rest of the file.
    let seeds = texts_of_jsonl(&out.join("seed-0").join("seeds.jsonl"));
    assert_eq!(seeds.len(), 4);
    let carved: HashSet<&String> = validation.iter().collect();
    assert!(seeds.iter().all(|s| !carved.contains(s)), "{seeds:?}");

    // The same command resumes the same experiment (the same rows carved).
    let again = experiment(&model, &data, &out, &["--validation-rows", "12"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(texts_of_jsonl(&out.join("validation.jsonl")), validation);

    // Another draw is another experiment: refused in the same folder.
    let other = experiment(
        &model,
        &data,
        &out,
        &["--validation-rows", "12", "--validation-seed", "5"],
    );
    assert!(!other.status.success());

    // A test file and carved rows together, or neither, are refused before any work.
    let both = experiment(
        &model,
        &data,
        &tmp.path().join("both"),
        &["--validation-rows", "12", "--test", data.to_str().unwrap()],
    );
    assert!(!both.status.success());
    let neither = experiment(&model, &data, &tmp.path().join("neither"), &[]);
    assert!(!neither.status.success());
    assert!(
        String::from_utf8_lossy(&neither.stderr).contains("--test"),
        "{}",
        String::from_utf8_lossy(&neither.stderr)
    );
}
