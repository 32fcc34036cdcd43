//! `seedforge --workspace DIR generate` on a tiny model written by the test: the workbench's
//! generation job writes into the workspace (every item with its cheap filters' verdicts, the
//! label check's on those that passed them), a second instance on the same workspace is
//! refused, and `--out` still writes the raw items without judging them. `--workspace DIR
//! filter` judges the items that await a decision again with the recheck job, journalling the
//! new verdicts and leaving decided items alone.

mod common;

use std::process::Command;

use seedforge::data::item::Source;
use seedforge::data::state::Status;
use seedforge::data::workspace::Workspace;

#[test]
fn generate_into_a_workspace_runs_the_workbench_job() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, ws) = common::tiny::model_and_demo_workspace(tmp.path());
    let bin = env!("CARGO_BIN_EXE_seedforge");
    let generate = |extra: &[&str]| {
        Command::new(bin)
            .arg("--workspace")
            .arg(&ws)
            .args(["generate", "--device", "cpu", "--per-class", "2"])
            .args([
                "--max-tokens",
                "8",
                "--max-attempts-factor",
                "1",
                "--min-words",
                "1",
            ])
            .arg("--model")
            .arg(&model)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = generate(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("4 items written"), "{err}");

    let w = Workspace::open(&ws).unwrap();
    let items = w.state().items();
    assert_eq!(items.len(), 4);
    for it in items {
        assert_eq!(it.source(), Source::Generated);
        let stages: Vec<&str> = it.verdicts().iter().map(|v| v.stage.as_str()).collect();
        assert!(
            stages.starts_with(&["malformed", "exact_dup", "near_dup"]),
            "{stages:?}"
        );
        let cheap_passed = it.verdicts().iter().take(3).all(|v| v.pass);
        assert_eq!(
            stages.contains(&"label_consistency"),
            cheap_passed,
            "{stages:?}"
        );
        assert!(it.original().meta.contains_key("request"));
    }
    // The workspace is held: a second generation is refused before the model loads.
    let o = generate(&[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("opening the workspace"), "{err}");
    drop(w);

    // With --out the raw items go to the file and the workspace is left alone.
    let out = tmp.path().join("raw.jsonl");
    let o = generate(&["--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);
    assert_eq!(Workspace::open(&ws).unwrap().state().items().len(), 4);

    // Filter the workspace again with a rule no item meets: every item still awaiting a
    // decision is rejected as malformed in the journal; the accepted one is left as it was.
    let malformed_pass = |w: &Workspace| -> Vec<(String, bool)> {
        w.state()
            .items()
            .iter()
            .map(|it| {
                let v = it.verdicts().iter().find(|v| v.stage == "malformed");
                (it.id().to_string(), v.unwrap().pass)
            })
            .collect()
    };
    let (accepted, generated) = {
        let mut w = Workspace::open(&ws).unwrap();
        let id = w.state().items()[0].id().clone();
        w.accept(&id).unwrap();
        (id.to_string(), malformed_pass(&w))
    };
    let filter = |min_words: &str| {
        Command::new(bin)
            .arg("--workspace")
            .arg(&ws)
            .args(["filter", "--device", "cpu", "--min-words", min_words])
            .arg("--model")
            .arg(&model)
            .output()
            .unwrap()
    };
    let o = filter("1000");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("kept 0 of 3 (3 rejected)"), "{stdout}");
    let w = Workspace::open(&ws).unwrap();
    for ((id, pass), (_, before)) in malformed_pass(&w).iter().zip(&generated) {
        let expected = if id == &accepted { *before } else { false };
        assert_eq!(*pass, expected, "{id}");
    }
    for it in w.state().items() {
        let expected = if it.id().to_string() == accepted {
            Status::Accepted
        } else {
            Status::AutoRejected
        };
        assert_eq!(it.status(), expected, "{}", it.id());
    }
    drop(w);
    // And back: with the generation's rule each item gets the verdict it was written with.
    let o = filter("1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(malformed_pass(&Workspace::open(&ws).unwrap()), generated);
}

#[test]
fn filter_judges_a_file_by_the_writers_log_probability_and_names_a_line_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, _ws) = common::tiny::model_and_demo_workspace(tmp.path());
    let bin = env!("CARGO_BIN_EXE_seedforge");
    let raw = tmp.path().join("raw.jsonl");
    let o = Command::new(bin)
        .args(["generate", "--device", "cpu", "--per-class", "3"])
        .args(["--max-tokens", "8", "--out"])
        .arg(&raw)
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&raw)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lps: Vec<f64> = lines
        .iter()
        .map(|l| {
            l["mean_logprob"]
                .as_f64()
                .expect("the model here writes it")
        })
        .collect();
    let mut sorted = lps.clone();
    sorted.sort_by(f64::total_cmp);
    let floor = (sorted[2] + sorted[3]) / 2.0;
    let judged = tmp.path().join("judged.jsonl");
    let filter = |items: &std::path::Path| {
        Command::new(bin)
            .args(["filter", "--device", "cpu", "--no-label-consistency"])
            .args([
                "--min-words",
                "1",
                "--min-logprob",
                &floor.to_string(),
                "--items",
            ])
            .arg(items)
            .arg("--out")
            .arg(&judged)
            .output()
            .unwrap()
    };
    let o = filter(&raw);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Vec<serde_json::Value> = std::fs::read_to_string(&judged)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), lps.len());
    for (o, lp) in out.iter().zip(&lps) {
        let v = o["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["stage"] == "likelihood")
            .expect("the band judged it");
        assert_eq!(v["pass"].as_bool().unwrap(), *lp >= floor, "{o}");
    }
    // A line without the writer's log-probability cannot be judged by the band: said, with
    // the file and line, before anything is written.
    let mut second = lines[1].clone();
    second.as_object_mut().unwrap().remove("mean_logprob");
    let bare = tmp.path().join("bare.jsonl");
    std::fs::write(&bare, format!("{}\n{second}\n", lines[0])).unwrap();
    std::fs::remove_file(&judged).unwrap();
    let o = filter(&bare);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:2: no \"mean_logprob\"", bare.display())),
        "{err}"
    );
    assert!(!judged.exists());
}
