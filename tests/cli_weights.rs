//! `--weights`: the commands run the tiny model with its weights held in blocks, training over
//! them is QLoRA (a PEFT adapter an f32 model then reads), and the flag before a subcommand is
//! refused.

mod common;

use std::process::Command;

fn seedforge(ws: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seedforge"));
    c.arg("--workspace").arg(ws);
    c
}

#[test]
fn generation_runs_on_quantized_weights_and_training_over_them_is_qlora() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, ws) = common::tiny::model_and_demo_workspace(tmp.path());
    for weights in ["q8_0", "q4", "f16"] {
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

    let train = |weights: &str, epochs: &str, out: &std::path::Path| {
        seedforge(&ws)
            .args(["train", "--device", "cpu", "--epochs", epochs])
            .args(["--weights", weights, "--out"])
            .arg(out)
            .arg("--model")
            .arg(&model)
            .output()
            .unwrap()
    };
    // Over halves too: the base stays f16, the adapters train in f32.
    let f16_run = tmp.path().join("f16-run");
    let o = train("f16", "1", &f16_run);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("QLoRA: the frozen base stays in f16,"),
        "{err}"
    );
    assert!(f16_run.join("adapter_model.safetensors").is_file(), "{err}");

    let run = tmp.path().join("qlora-run");
    let o = train("q8_0", "2", &run);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("QLoRA: the frozen base stays in q8_0 blocks"),
        "{err}"
    );
    // QLoRA is chosen for its memory: by default the layers are recomputed, not kept.
    assert!(
        err.contains("each layer's forward pass is recomputed in the backward pass"),
        "{err}"
    );
    // The run says what its base was held as.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert!(
        config["device"]
            .as_str()
            .is_some_and(|d| d.ends_with("weights q8_0")),
        "{config}"
    );
    // Its adapter is a PEFT adapter like any other: an f32 model reads it and predicts.
    let mut predict = seedforge(&ws)
        .args(["predict", "--device", "cpu", "--input", "-", "--run"])
        .arg(&run)
        .arg("--model")
        .arg(&model)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = predict.stdin.take().unwrap();
        writeln!(stdin, "a warm and funny film\nthe plot is a mess").unwrap();
    }
    let o = predict.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("\"label\""), "{out}");
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

/// `bench train` times each layout with and without recomputing the layers and gives each its
/// own peak memory; recomputing (dropout on, as the peer's settings have it) takes the same
/// steps, so the losses are the same.
#[test]
fn bench_train_measures_recomputing_the_layers_beside_keeping_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, _) = common::tiny::model_and_demo_workspace(tmp.path());
    let o = Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .args([
            "bench",
            "train",
            "--device",
            "cpu",
            "--weights",
            "q8_0",
            "--no-peer",
        ])
        .args([
            "--warmup",
            "0",
            "--repeats",
            "3",
            "--padding",
            "packed",
            "--json",
        ])
        .args(["--recompute", "off,on", "--train-tsv"])
        .arg(common::shared_dir().join("datasets/sst2/train.tsv"))
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["weights"], "q8_0", "{report}");
    let ours = report["ours"].as_array().unwrap();
    assert_eq!(ours.len(), 2, "{report}");
    assert_eq!(ours[0]["recompute"], false);
    assert_eq!(ours[1]["recompute"], true);
    let losses = |o: &serde_json::Value| -> Vec<f64> {
        o["losses_first_round"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (kept, recomputed) = (losses(&ours[0]), losses(&ours[1]));
    assert_eq!(kept.len(), 3);
    for (a, b) in kept.iter().zip(&recomputed) {
        assert!(
            (a - b).abs() < 1e-5 * a.abs().max(1.0),
            "{kept:?} vs {recomputed:?}"
        );
    }
    for o in ours {
        assert!(o["peak_rss_mib"].as_f64().is_some_and(|m| m > 1.0), "{o}");
    }
}
