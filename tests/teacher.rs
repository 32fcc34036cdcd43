//! A teacher adapter (generation objective) on a tiny model written by the test: training lowers
//! the loss on the examples' own tokens, the adapter changes the logits of the bare generation
//! prompt, reloads from its run folder with the same logits, and `generate --adapter` picks the
//! teacher's prompt (no seeds) and temperature by itself.

mod common;

use std::process::Command;

use burn::tensor::Device;
use common::{last_logits, max_diff};
use seedforge::data::task::Task;
use seedforge::llm::load;
use seedforge::pipeline::generate::{GenerateSettings, prompt_for};
use seedforge::pipeline::prompt::Templates;
use seedforge::train::metrics::TrainEvent;
use seedforge::train::run::{RunSpec, objective_of, train_run};
use seedforge::train::trainer::{Objective, TrainConfig, TrainControl, evaluate};

#[test]
fn a_teacher_adapter_changes_generation_and_reloads_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&path);
    let loaded = load::load(&path, &Device::flex()).unwrap();
    let task = Task::demo();
    let templates = Templates::for_task(&task).unwrap();
    let teacher = GenerateSettings {
        seeds_in_prompt: false,
        ..GenerateSettings::default()
    };
    let prompts: Vec<String> = task
        .labels
        .iter()
        .map(|l| prompt_for(&task, &templates, &loaded.tokenizer, l, &teacher, 0).unwrap())
        .collect();
    let prompt_refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    // The teacher's prompt shows no seed.
    assert!(
        task.seeds
            .iter()
            .all(|s| !prompts.concat().contains(&s.text))
    );

    let out = tmp.path().join("teacher");
    let cfg = TrainConfig {
        objective: Objective::Generate,
        epochs: 20,
        lr: 1e-2,
        val_fraction: 0.0,
        ..TrainConfig::default()
    };
    let mut losses = Vec::new();
    let result = train_run(
        loaded.model.clone(),
        &loaded.tokenizer,
        &RunSpec {
            task: &task,
            templates: &templates,
            real: &task.seeds,
            extra: &[],
            extra_soft: &[],
            extra_sources: Vec::new(),
            generated_extra: 0,
            start_from: None,
            config: &cfg,
            out: &out,
            model_path: "tiny",
            device: "cpu",
        },
        &TrainControl::default(),
        &mut |e| {
            if let TrainEvent::Eval {
                train_loss,
                val_accuracy,
                ..
            } = e
            {
                losses.push(*train_loss);
                assert!(val_accuracy.is_none(), "a teacher has no label accuracy");
            }
        },
    )
    .unwrap();
    assert!(losses.last().unwrap() < &losses[0], "{losses:?}");
    assert_eq!(objective_of(&out).unwrap(), Objective::Generate);

    // What the teacher learned is the examples' own text after their label's bare prompt.
    let enc = seedforge::train::data::encode_generation(
        &task,
        &templates,
        &loaded.tokenizer,
        &task.seeds,
        128,
    )
    .unwrap();
    let pad = loaded.tokenizer.pad_id();
    let (base_loss, _) = evaluate(&loaded.model, &enc, &[], 8, pad).unwrap();
    let (tuned_loss, _) = evaluate(&result.outcome.model, &enc, &[], 8, pad).unwrap();
    assert!(tuned_loss < 0.7 * base_loss, "{base_loss} → {tuned_loss}");

    let base = last_logits(&loaded.model, &loaded.tokenizer, &prompt_refs);
    let tuned = last_logits(&result.outcome.model, &loaded.tokenizer, &prompt_refs);
    assert!(
        max_diff(&base, &tuned) > 1e-2,
        "the adapter changed nothing"
    );
    let mut reloaded = loaded.model.clone();
    seedforge::train::peft::load_adapter(&mut reloaded, &out).unwrap();
    let again = last_logits(&reloaded, &loaded.tokenizer, &prompt_refs);
    assert!(
        max_diff(&tuned, &again) < 1e-5,
        "{}",
        max_diff(&tuned, &again)
    );

    // The command finds out by itself that the adapter is a teacher.
    let o = Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .args([
            "generate",
            "--device",
            "cpu",
            "--per-class",
            "1",
            "--max-tokens",
            "4",
        ])
        .arg("--model")
        .arg(&path)
        .arg("--adapter")
        .arg(&out)
        .arg("--out")
        .arg(tmp.path().join("gen.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("teacher adapter") && stderr.contains("temperature 0.8"),
        "{stderr}"
    );
    let written = std::fs::read_to_string(tmp.path().join("gen.jsonl")).unwrap();
    for line in written.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let prompt = v["prompt"].as_str().unwrap();
        assert!(prompts.iter().any(|p| p == prompt), "{prompt:?}");
    }
}
