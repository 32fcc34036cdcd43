//! `seedforge runs`: every evaluated run beside its seeds-only twin, including an evaluation
//! saved apart from its run (`eval --adapter RUN --out DIR`), told by the adapter it read.

use std::path::{Path, PathBuf};
use std::process::Command;

use seedforge::eval::metrics::Metrics;
use seedforge::eval::report::{EvalReport, Method};

/// An evaluation of `adapter` on 40 rows of one test file, right on the first `right` rows.
fn report(adapter: &Path, right: usize) -> EvalReport {
    let labels = vec!["negative".to_string(), "positive".to_string()];
    let correct: Vec<bool> = (0..40).map(|i| i < right).collect();
    let pairs: Vec<(&str, &str)> = correct
        .iter()
        .map(|&ok| ("positive", if ok { "positive" } else { "negative" }))
        .collect();
    EvalReport {
        method: Method::Lora,
        task: "t".into(),
        test_file: PathBuf::from("/data/test.tsv"),
        shots: 0,
        calibrated: false,
        calibration_strength: None,
        adapter: Some(adapter.to_path_buf()),
        model: "m.gguf".into(),
        metrics: Metrics::compute(&labels, pairs),
        seconds: 1.0,
        finished_at: "2026-11-26T00:00:00Z".into(),
        correct,
        content_free_prior: None,
        rows: Vec::new(),
    }
}

fn run_folder(dir: &Path, extra: usize) {
    staged_folder(dir, extra, None);
}

fn staged_folder(dir: &Path, extra: usize, from: Option<&Path>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut config = serde_json::json!({"real_examples": 8, "extra_examples": extra});
    if let Some(f) = from {
        config["started_from"] = f.display().to_string().into();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn an_evaluation_saved_apart_is_put_beside_its_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let (seeds, mixed, apart) = (
        runs.join("a-seeds"),
        runs.join("b-mixed"),
        runs.join("c-apart"),
    );
    run_folder(&seeds, 0);
    run_folder(&mixed, 30);
    report(&seeds, 36).save(&seeds).unwrap();
    report(&mixed, 20).save(&mixed).unwrap();
    // Read from the mixed run's adapter, saved in a folder with no config.json.
    report(&mixed, 20).save(&apart).unwrap();
    // Trained on from the mixed run on the seeds alone: no extra examples of its own, yet no
    // seeds-only twin either.
    let staged = runs.join("d-staged");
    staged_folder(&staged, 0, Some(&mixed));
    report(&staged, 20).save(&staged).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .args(["runs", "--runs"])
        .arg(&runs)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    for name in ["b-mixed", "c-apart", "d-staged"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {stdout}"));
        assert!(
            line.contains("-40.0") && line.ends_with("vs a-seeds"),
            "{line}"
        );
        assert!(stderr.contains(&format!("{name} is worse")), "{stderr}");
    }
    let seeds_line = stdout.lines().find(|l| l.starts_with("a-seeds")).unwrap();
    assert!(!seeds_line.contains(" vs "), "{seeds_line}");
}
