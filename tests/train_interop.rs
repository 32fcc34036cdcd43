//! An adapter trained and saved by seedforge, loaded by Hugging Face PEFT on the transformers
//! peer (`shared/peers/peft_logits.py`), gives the same next-token ranking and logits as
//! seedforge with the adapter loaded. Needs the peers' Python venv (`../shared/peers/setup.sh`,
//! which `.ci/run` runs); it fails (never passes silently) when the venv is missing, saying so.

mod common;

use std::process::Command;

#[test]
fn seedforge_adapter_loads_in_peft_with_the_same_logits() {
    common::peer_python(&["torch", "transformers", "peft"]);
    let bin = env!("CARGO_BIN_EXE_seedforge");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let task = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/task.toml");
    // Eight examples, 20 steps at a high rate: an adapter that clearly moves the logits.
    let o = Command::new(bin)
        .env("SEEDFORGE_MODEL", common::model_path())
        .args(["train", "--task", task, "--device", "cpu"])
        .args(["--epochs", "20", "--lr", "1e-3", "--val-fraction", "0"])
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let o = Command::new(bin)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SEEDFORGE_MODEL", common::model_path())
        .args(["bench", "peft", "--json", "--device", "cpu"])
        .arg("--peers")
        .arg(common::shared_dir().join("peers"))
        .arg("--adapter")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        println!(
            "{:?}: top-10 equal {}, max |Δlogit| {:.2e}, adapter effect {:.3}",
            r["text"].as_str().unwrap(),
            r["top_ids_equal"],
            r["max_abs_logit_diff"].as_f64().unwrap(),
            r["max_abs_adapter_effect"].as_f64().unwrap()
        );
        assert_eq!(r["prompt_ids_equal"], true, "{r}");
        assert_eq!(r["top_ids_equal"], true, "{r}");
        assert!(r["max_abs_logit_diff"].as_f64().unwrap() < 1e-3, "{r}");
        assert!(r["max_abs_adapter_effect"].as_f64().unwrap() > 0.1, "{r}");
    }
}
