//! `seedforge --workspace DIR generate` on a tiny model written by the test: the workbench's
//! generation job writes into the workspace (every item with its cheap filters' verdicts, the
//! label check's on those that passed them), a second instance on the same workspace is
//! refused, and `--out` still writes the raw items without judging them.

mod common;

use std::process::Command;

use seedforge::data::item::Source;
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
}
