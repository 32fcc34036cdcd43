//! `--weights`: the commands run the tiny model with its weights held in blocks, training
//! refuses them with what to do instead, and the flag before a subcommand is refused.

mod common;

use std::process::Command;

fn seedforge(ws: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seedforge"));
    c.arg("--workspace").arg(ws);
    c
}

#[test]
fn generation_runs_on_quantized_weights_and_training_refuses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, ws) = common::tiny::model_and_demo_workspace(tmp.path());
    for weights in ["q8_0", "q4"] {
        let o = seedforge(&ws)
            .args(["generate", "--device", "cpu", "--per-class", "2"])
            .args([
                "--max-tokens",
                "8",
                "--max-attempts-factor",
                "1",
                "--min-words",
                "1",
            ])
            .args(["--weights", weights, "--model"])
            .arg(&model)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains(&format!("weights held as {weights}")), "{err}");
        assert!(err.contains("4 items written"), "{err}");
    }

    let o = seedforge(&ws)
        .args([
            "train",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--weights",
            "q8_0",
            "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "training on q8_0 weights must be refused"
    );
    assert!(err.contains("--weights f32"), "{err}");
    let runs = std::fs::read_dir(ws.join("runs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(runs, 0, "a refused run leaves no folder");
}

#[test]
fn weights_before_a_subcommand_are_refused() {
    let o = Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .args(["--weights", "q8_0", "model", "info"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("before a subcommand"), "{err}");
}
