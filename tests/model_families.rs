//! Model families beside SmolLM2's: tiny random Qwen2 (biases on Q, K and V), Qwen3 (each
//! head's queries and keys RMS-normalised), Llama 3.1-style (scaled rotation, `llama3`) and
//! Gemma 3 (scaled embedding, GeGLU, four norms a layer, sliding-window layers with their own
//! rotary base, over a window the prompts outgrow) models made by transformers in the peers' venv
//! (`tests/families_reference.py`, random biases and norms so a loader that drops them shows),
//! as Hugging Face folders and as f32 GGUF files written with the `gguf` library under
//! llama.cpp's names (llama.cpp's own logits on them match transformers', so the files are ones
//! llama.cpp reads as those families). Loaded here from both, compared with what transformers
//! computed: the next-token logits after two prompts and an 8-token greedy continuation. Needs
//! the peers' venv with llama-cpp-python (fails naming the command that builds it).

mod common;

use std::process::Command;

use burn::tensor::Device;
use seedforge::llm::greedy::{greedy, row_logits};
use seedforge::llm::load;
use seedforge::llm::model::{StepLayout, tokens_tensor};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/families_reference.py");
/// Largest |Δ| between transformers' logits and ours, both f32 on the CPU (the Llama golden
/// tests hold 1e-4 on the real model; a tiny model's logits are smaller).
const TOL: f32 = 1e-4;
/// The same for llama.cpp on the GGUF file (its own kernels, f32 weights).
const TOL_LLAMACPP: f32 = 1e-3;
/// llama.cpp on Gemma's GELU: ggml reads it from a table of f16 values, ~1e-3 relative.
const TOL_LLAMACPP_GELU: f32 = 2e-2;

/// The tiny models and transformers' reference, made by `families_reference.py` in a new
/// folder (SmolLM2's tokenizer as their tokenizer.json: they share its vocabulary).
fn tiny_families() -> tempfile::TempDir {
    let py = common::peer_python(&["torch", "transformers", "gguf", "llama_cpp"]);
    let tmp = tempfile::tempdir().unwrap();
    let tokenizer = load::tokenizer(&common::model_path()).unwrap();
    let tok_path = tmp.path().join("tokenizer.json");
    std::fs::write(&tok_path, tokenizer.to_json().unwrap()).unwrap();
    let o = Command::new(&py)
        .arg(SCRIPT)
        .arg("--tokenizer")
        .arg(&tok_path)
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    tmp
}

#[test]
fn qwen2_qwen3_llama3_and_gemma3_folders_and_gguf_files_match_transformers() {
    let tmp = tiny_families();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("reference.json")).unwrap())
            .unwrap();
    let device = Device::flex();
    // Folder and file name, the family they are.
    for (family, arch) in [
        ("qwen2", "qwen2"),
        ("qwen3", "qwen3"),
        ("llama3", "llama"),
        ("gemma3", "gemma3"),
    ] {
        for path in [
            tmp.path().join(family),
            tmp.path().join(format!("{family}.gguf")),
        ] {
            let info = load::inspect(&path).unwrap();
            assert_eq!(info.architecture, arch);
            let loaded = load::load(&path, &device).unwrap();
            assert_eq!(loaded.config.arch.name(), arch);
            assert_eq!(loaded.config.attention_bias, family == "qwen2");
            // Llama 3's scaled rotation, computed from the config or read from the file.
            let factors = loaded.config.rope_freq_factors.clone();
            assert_eq!(factors.is_some(), family == "llama3");
            if let Some(f) = factors {
                assert_eq!(f.len(), 8);
                // The lowest frequency slowed by the whole factor, the highest only in part.
                assert!(f[7] == 8.0 && f[0] > 1.0 && f[0] < 8.0, "{f:?}");
            }
            let what = format!("{family} ({})", path.display());
            for row in reference["families"][family].as_array().unwrap() {
                let ids: Vec<u32> = numbers(&row["ids"]).map(|v| v as u32).collect();
                let theirs: Vec<f32> = numbers(&row["logits"]).map(|v| v as f32).collect();
                let llamacpp: Vec<f32> =
                    numbers(&row["llamacpp_logits"]).map(|v| v as f32).collect();
                let ours = row_logits(loaded.model.forward_last(
                    tokens_tensor(std::slice::from_ref(&ids), 0, &device),
                    &StepLayout::for_prompts(&[ids.len()]),
                    None,
                ))
                .unwrap();
                let lc = max_diff(&llamacpp, &theirs);
                let worst = max_diff(&ours, &theirs);
                println!(
                    "{what}: {} prompt tokens, max |Δlogit| {worst:.2e} (llama.cpp on the GGUF: \
                     {lc:.2e})",
                    ids.len()
                );
                let lc_tol = if family == "gemma3" {
                    TOL_LLAMACPP_GELU
                } else {
                    TOL_LLAMACPP
                };
                assert!(lc < lc_tol, "{family}: llama.cpp's |Δlogit| {lc}");
                assert!(worst < TOL, "{what}: max |Δlogit| {worst}");
                let expected: Vec<u32> = numbers(&row["greedy"]).map(|v| v as u32).collect();
                assert_eq!(
                    greedy(&loaded.model, &ids, expected.len(), &[]).unwrap(),
                    expected,
                    "{what}: greedy continuation"
                );
            }
        }
    }
}

/// A LoRA run on a Qwen2 folder, as on SmolLM2: the demo task's seeds, two epochs; the adapter
/// targets PEFT's names, changes the model's answer, and gives the same logits when PEFT
/// applies it to the same folder; the model exported with it merged (a Hugging Face folder)
/// gives them in transformers; a GGUF export is refused rather than written without biases.
#[test]
fn a_qwen2_model_trains_a_lora_adapter() {
    let tmp = tiny_families();
    let model = tmp.path().join("qwen2");
    let run = tmp.path().join("run");
    let bin = env!("CARGO_BIN_EXE_seedforge");
    train_two_epochs(&model, &run, &[]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("adapter_config.json")).unwrap())
            .unwrap();
    let targets = config["target_modules"].to_string();
    assert!(
        targets.contains("q_proj") && targets.contains("v_proj"),
        "{targets}"
    );
    let device = Device::flex();
    let loaded = load::load(&model, &device).unwrap();
    let mut adapted = loaded.model.clone();
    seedforge::train::peft::load_adapter(&mut adapted, &run).unwrap();
    let ids = [1u32, 504, 3436, 314, 253];
    let logits = |m: &seedforge::llm::model::Llama| {
        row_logits(m.forward_last(
            tokens_tensor(&[ids.to_vec()], 0, &device),
            &StepLayout::for_prompts(&[ids.len()]),
            None,
        ))
        .unwrap()
    };
    let ours = logits(&adapted);
    assert!(max_diff(&ours, &logits(&loaded.model)) > 1e-4);
    // PEFT applies the same adapter to the same folder: the same logits.
    let py = common::peer_python(&["torch", "transformers", "peft"]);
    let ids_arg = ids.map(|i| i.to_string()).join(",");
    let d = max_diff(&ours, &peft_logits(&model, &run, &ids));
    println!("qwen2 + LoRA: max |Δlogit| against PEFT {d:.2e}");
    assert!(d < TOL, "PEFT's logits differ by {d}");
    // Exported as a Hugging Face folder (the adapter merged), transformers reads the same model.
    let export = tmp.path().join("export");
    let exporting = |format: &str, out: &std::path::Path| {
        Command::new(bin)
            .args([
                "export-model",
                "--device",
                "cpu",
                "--format",
                format,
                "--model",
            ])
            .arg(&model)
            .arg("--run")
            .arg(&run)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let o = exporting("hf", &export);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(&py)
        .arg(SCRIPT)
        .arg("--logits")
        .arg(&export)
        .args(["--ids", &ids_arg])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let exported: Vec<f32> = serde_json::from_slice::<Vec<f64>>(&o.stdout)
        .unwrap()
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let d = max_diff(&ours, &exported);
    println!("qwen2 + LoRA exported as a folder, in transformers: max |Δlogit| {d:.2e}");
    assert!(d < TOL, "the exported folder's logits differ by {d}");
    // A GGUF export of a Qwen model is refused (the writer knows Llama's layout), not written
    // without its biases.
    let o = exporting("gguf", &tmp.path().join("export.gguf"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("qwen2"), "{err}");
}

/// A LoRA run on a Gemma 3 folder, on every projection PEFT names (q, k, v, o, gate, up,
/// down): PEFT applies the adapter to the same folder and gets the same logits; exporting the
/// model is refused with the reason, not written without its norms' offset or its window.
#[test]
fn a_gemma3_model_trains_a_lora_adapter_that_peft_applies() {
    let tmp = tiny_families();
    let model = tmp.path().join("gemma3");
    let run = tmp.path().join("run");
    let bin = env!("CARGO_BIN_EXE_seedforge");
    train_two_epochs(&model, &run, &["--targets", "all"]);
    let device = Device::flex();
    let loaded = load::load(&model, &device).unwrap();
    let mut adapted = loaded.model.clone();
    seedforge::train::peft::load_adapter(&mut adapted, &run).unwrap();
    let ids = [1u32, 504, 3436, 314, 253, 2556, 30];
    let ours = row_logits(adapted.forward_last(
        tokens_tensor(&[ids.to_vec()], 0, &device),
        &StepLayout::for_prompts(&[ids.len()]),
        None,
    ))
    .unwrap();
    let d = max_diff(&ours, &peft_logits(&model, &run, &ids));
    println!("gemma3 + LoRA on every projection: max |Δlogit| against PEFT {d:.2e}");
    assert!(d < TOL, "PEFT's logits differ by {d}");
    let o = Command::new(bin)
        .args([
            "export-model",
            "--device",
            "cpu",
            "--format",
            "hf",
            "--model",
        ])
        .arg(&model)
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(tmp.path().join("export"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("Gemma 3 models cannot be exported yet"),
        "{err}"
    );
}

/// `seedforge train` for two epochs on the demo task's seeds, the model `model`, into `run`.
fn train_two_epochs(model: &std::path::Path, run: &std::path::Path, extra: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .args(["train", "--device", "cpu", "--epochs", "2"])
        .args(extra)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The last position's logits of the folder `model` with the adapter in `run`, as PEFT applies
/// it (the peers' venv).
fn peft_logits(model: &std::path::Path, run: &std::path::Path, ids: &[u32]) -> Vec<f32> {
    let py = common::peer_python(&["torch", "transformers", "peft"]);
    let ids_arg = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let o = Command::new(&py)
        .arg(SCRIPT)
        .arg("--peft")
        .arg(model)
        .arg(run)
        .args(["--ids", &ids_arg])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Vec<f64>>(&o.stdout)
        .unwrap()
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

fn numbers(v: &serde_json::Value) -> impl Iterator<Item = f64> + '_ {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

#[test]
fn an_unsupported_family_is_refused_naming_the_supported_ones() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"model_type": "gemma2", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2}"#,
    )
    .unwrap();
    std::fs::write(tmp.path().join("tokenizer.json"), "{}").unwrap();
    let e = load::inspect(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("gemma2") && e.contains("llama, qwen2, qwen3, gemma3"),
        "{e}"
    );
    // A rotary scaling seedforge does not compute (YaRN) is refused, not run wrong.
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2,
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}"#,
    )
    .unwrap();
    let e = load::inspect(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("rotary scaling 'yarn' is not supported"), "{e}");
}
