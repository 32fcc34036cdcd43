//! LoRA on the real SmolLM2-135M: parameter counts as PEFT reports them, a fresh adapter is the
//! base model, training lowers the loss, merge/unmerge and save/load keep the logits, and the
//! `train` command writes a complete run folder.

mod common;

use common::max_diff;

use std::process::Command;
use std::sync::OnceLock;

use burn::tensor::Device;
use seedforge::data::task::Task;
use seedforge::llm::load::{self, LoadedModel};
use seedforge::llm::model::Llama;
use seedforge::pipeline::prompt::Templates;
use seedforge::train::data;
use seedforge::train::lora::{self, LoraConfig, Target};
use seedforge::train::metrics::{TrainEvent, read_metrics};
use seedforge::train::peft;
use seedforge::train::trainer::{TrainConfig, TrainControl, TrainData, train};

fn model() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| load::load(&common::model_path(), &Device::flex()).unwrap())
}

const PROMPTS: [&str; 2] = [
    "Review: a gorgeous, witty and deeply moving film.\nSentiment:",
    "The capital of France is",
];

fn last_logits(m: &Llama) -> Vec<Vec<f32>> {
    common::last_logits(m, &model().tokenizer, &PROMPTS)
}

/// The demo task's eight seeds, trained for a few steps at a high rate so `B` is clearly non-zero.
fn trained(steps: usize) -> (Llama, Vec<f64>) {
    let m = model();
    let task = Task::demo();
    let tok = &m.tokenizer;
    let enc = data::encode(&task, &Templates::bundled(), tok, &task.seeds, 64).unwrap();
    let labels = data::label_tokens(&task, tok).unwrap();
    let cfg = TrainConfig {
        epochs: steps,
        lr: 1e-3,
        warmup: 0.0,
        val_fraction: 0.0,
        ..TrainConfig::default()
    };
    let mut losses = Vec::new();
    let out = train(
        m.model.clone(),
        &TrainData {
            train: &enc,
            val: &[],
            label_tokens: &labels,
            pad: tok.pad_id(),
            weights: &[],
            soft: &[],
        },
        &cfg,
        &TrainControl::default(),
        &mut |e| {
            if let TrainEvent::Step { loss, .. } = e {
                losses.push(*loss);
            }
        },
    )
    .unwrap();
    (out.model, losses)
}

#[test]
fn trainable_parameters_match_peft() {
    let mut m = model().model.clone();
    lora::attach(&mut m, &LoraConfig::default(), 0).unwrap();
    // PEFT's count for r=8 on q_proj, v_proj of SmolLM2-135M (peers README).
    assert_eq!(lora::trainable_params(&m), 460_800);
    let all = LoraConfig {
        targets: Target::ALL.to_vec(),
        ..LoraConfig::default()
    };
    lora::attach(&mut m, &all, 0).unwrap();
    assert_eq!(lora::trainable_params(&m), 2_442_240);
}

#[test]
fn step_zero_logits_are_the_base_models() {
    let base = last_logits(&model().model);
    let mut m = model().model.clone();
    lora::attach(&mut m, &LoraConfig::default(), 0).unwrap();
    assert_eq!(max_diff(&last_logits(&m), &base), 0.0);
}

#[test]
fn loss_falls_merge_and_save_keep_the_logits() {
    let (mut m, losses) = trained(8);
    assert_eq!(losses.len(), 8);
    assert!(
        losses[7] < 0.5 * losses[0],
        "the loss should fall on eight examples: {losses:?}"
    );
    let base = last_logits(&model().model);
    let adapted = last_logits(&m);
    assert!(max_diff(&adapted, &base) > 0.5, "training changed nothing");

    // Save → load into a fresh copy of the base model: the same logits, bit for bit.
    let dir = tempfile::tempdir().unwrap();
    let info = peft::save(&m, dir.path(), "SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    assert_eq!(info.trainable_params, 460_800);
    let meta = std::fs::metadata(dir.path().join(peft::WEIGHTS_FILE)).unwrap();
    assert_eq!(
        meta.len(),
        1_858_776,
        "PEFT's file for this adapter is 1,858,776 bytes"
    );
    let mut fresh = model().model.clone();
    peft::load_adapter(&mut fresh, dir.path()).unwrap();
    assert_eq!(max_diff(&last_logits(&fresh), &adapted), 0.0);

    // Merged into the base weights, then taken out again.
    lora::merge(&mut m);
    let merged = last_logits(&m);
    let d = max_diff(&merged, &adapted);
    assert!(d < 1e-3, "merged vs unmerged: {d}");
    lora::unmerge(&mut m);
    let d = max_diff(&last_logits(&m), &adapted);
    assert!(d < 1e-3, "unmerged again: {d}");
}

#[test]
fn train_command_writes_a_run_folder_that_inspect_can_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let task = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/task.toml");
    let synthetic = dir.path().join("accepted.jsonl");
    std::fs::write(
        &synthetic,
        "{\"text\": \"A warm, funny film I will watch again.\", \"label\": \"positive\"}\n\
         {\"text\": \"Dull from the first scene to the last.\", \"label\": \"negative\"}\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_seedforge");
    let o = Command::new(bin)
        .env("SEEDFORGE_MODEL", common::model_path())
        .args(["train", "--task", task, "--epochs", "2", "--device", "cpu"])
        .arg("--data")
        .arg(&synthetic)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("epoch   2"), "{stderr}");
    for f in [
        "config.json",
        "metrics.jsonl",
        "adapter_config.json",
        "adapter_model.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    // 8 seeds: 2 held out, 6 + 2 synthetic for training.
    assert_eq!(config["val_examples"], 2);
    assert_eq!(config["train_examples"], 8);
    let events = read_metrics(&out.join("metrics.jsonl")).unwrap();
    assert!(matches!(events[0], TrainEvent::Started { .. }));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, TrainEvent::Step { .. }))
            .count(),
        2
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, TrainEvent::Eval { .. }))
            .count(),
        2
    );
    assert!(matches!(events.last(), Some(TrainEvent::Finished { .. })));

    let o = Command::new(bin)
        .env("SEEDFORGE_MODEL", common::model_path())
        .args([
            "inspect", "logits", "--json", "--device", "cpu", "--prompt", PROMPTS[0],
        ])
        .arg("--adapter")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["top"].as_array().unwrap().len(), 10);

    // A bad adapter folder is named in the error.
    let o = Command::new(bin)
        .env("SEEDFORGE_MODEL", common::model_path())
        .args(["inspect", "logits", "--device", "cpu", "--prompt", "x"])
        .arg("--adapter")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("adapter_config.json"));
}
