//! `seedforge export-model` on a tiny model written by the test: a run with a strong adapter on
//! every projection (Q and K included, so a wrong row order in the GGUF writer shows) is
//! exported as GGUF (f32, f16, q8_0) and as a Hugging Face folder (f32, f16); each export loads
//! back in seedforge and gives the run's logits (base + adapter) within its stated tolerance,
//! far below what the adapter itself moves them. The card travels with each export. Errors
//! name the path and the reason, and a failed export leaves nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::tensor::Device;
use seedforge::export::card::Card;
use seedforge::llm::gguf::{GgmlType, GgufFile, GgufWriter};
use seedforge::llm::load;
use seedforge::llm::model::{Llama, StepLayout, tokens_tensor};
use seedforge::train::{lora, peft};
use seedforge::util::rng::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_seedforge");

/// Largest |Δ logit| allowed against base + adapter, for f32 weights (measured 2.1e-5: the
/// merged sums rounded once in f32 instead of the low-rank path's separate products).
const TOL_F32: f32 = 1e-4;
/// F16 matrices (measured 2.4e-2 GGUF, 3.1e-2 safetensors, where the adapter moves the logits
/// by up to 25).
const TOL_F16: f32 = 0.1;
/// Q8_0 matrices (measured 0.45; 8-bit blocks with an f16 scale on those same weights).
const TOL_Q8_0: f32 = 1.0;

const PROMPTS: [&str; 3] = ["ab ba, cab!", "Review: a warm film\nSentiment:", "zz top"];

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn export(run: &Path, out: &Path, format: &str, quant: Option<&str>, extra: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.args(["export-model", "--device", "cpu", "--run"])
        .arg(run)
        .arg("--out")
        .arg(out)
        .args(["--format", format]);
    if let Some(q) = quant {
        c.args(["--quant", q]);
    }
    c.args(extra).output().unwrap()
}

/// A workspace on the demo task and a run trained on the tiny model with adapters everywhere,
/// its factors then replaced by random ones large enough to move every logit.
fn strong_run(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("tiny.gguf");
    common::tiny::write_gguf(&model);
    let run = strong_run_on(dir, &model, &lora::Target::ALL);
    (model, run)
}

/// [`strong_run`] on the model at `model`, keeping adapters on `targets` only.
fn strong_run_on(dir: &Path, model: &Path, targets: &[lora::Target]) -> PathBuf {
    let model = model.to_path_buf();
    let ws = dir.join("ws");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .arg("init")
        .output()
        .unwrap());
    let run = ws.join("runs").join("tiny-run");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args([
            "train",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--targets",
            "all",
        ])
        .args(["--rank", "4", "--alpha", "8", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap());
    let mut m = load::load(&model, &Device::flex()).unwrap().model;
    peft::load_adapter(&mut m, &run).unwrap();
    let mut rng = Rng::new(11);
    for block in &mut m.layers {
        for t in lora::Target::ALL {
            let proj = lora::projection_mut(block, t);
            if !targets.contains(&t) {
                proj.adapter = None;
                continue;
            }
            let Some(old) = &proj.adapter else {
                panic!("the run adapts {t}")
            };
            let (scale, rank) = (old.scale, old.a.shape().dims::<2>()[1]);
            let (i, o) = (proj.d_in(), proj.d_out());
            let a = (0..i * rank).map(|_| rng.normal() as f32 * 0.3).collect();
            let b = (0..rank * o).map(|_| rng.normal() as f32 * 0.3).collect();
            proj.adapter = Some(lora::low_rank(proj, rank, a, b, scale, 0.0, 1));
        }
    }
    peft::save(&m, &run, &model.display().to_string()).unwrap();
    run
}

/// The tiny model with its matrices as Q4_1 blocks (norms F32), as the real base file is.
fn write_q4_1(from: &Path, to: &Path) {
    let src = GgufFile::open(from).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        w.add_metadata(k.clone(), v.clone()).unwrap();
    }
    for info in src.tensors() {
        let d = src.dequantize_tensor(info).unwrap();
        let ty = if d.shape.len() == 2 {
            GgmlType::Q4_1
        } else {
            GgmlType::F32
        };
        w.add_tensor_quantized(&info.name, &d.shape, ty, &d.data)
            .unwrap();
    }
    w.write(to).unwrap();
}

#[test]
fn q8_0_and_mixed_keep_the_tensors_the_adapter_left_in_their_source_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let f16 = tmp.path().join("tiny-f16.gguf");
    common::tiny::write_gguf(&f16);
    let model = tmp.path().join("tiny-q4_1.gguf");
    write_q4_1(&f16, &model);
    let run = strong_run_on(tmp.path(), &model, &[lora::Target::Q, lora::Target::V]);
    let device = Device::flex();
    let base = load::load(&model, &device).unwrap();
    let mut adapted = base.model.clone();
    peft::load_adapter(&mut adapted, &run).unwrap();
    let want = logits(&adapted, &base.tokenizer);
    let source = GgufFile::open(&model).unwrap();
    for (quant, merged_ty, tol) in [
        ("q8_0", GgmlType::Q8_0, TOL_Q8_0),
        ("mixed", GgmlType::F16, TOL_F16),
    ] {
        let path = tmp.path().join(format!("out-{quant}.gguf"));
        let err = ok(&export(&run, &path, "gguf", Some(quant), &[]));
        let file = GgufFile::open(&path).unwrap();
        let (mut copied, mut merged) = (0, 0);
        for info in file.tensors() {
            let src = source.tensor(&info.name).unwrap();
            if info.name.ends_with("attn_q.weight") || info.name.ends_with("attn_v.weight") {
                assert_eq!(info.ggml_type, merged_ty, "{quant}: {}", info.name);
                merged += 1;
            } else {
                assert_eq!(info.ggml_type, src.ggml_type, "{quant}: {}", info.name);
                assert_eq!(
                    file.tensor_bytes(info),
                    source.tensor_bytes(src),
                    "{quant}: {} is copied bit for bit",
                    info.name
                );
                copied += 1;
            }
        }
        assert_eq!(merged, 2 * common::tiny::LAYERS);
        assert_eq!(copied, source.tensors().len() - merged);
        // Norms are F32 either way; q8_0 copies the quantized blocks, mixed every tensor.
        let norms = 2 * common::tiny::LAYERS + 1;
        let reported = if quant == "q8_0" {
            copied - norms
        } else {
            copied
        };
        assert!(
            err.contains(&format!("{reported} tensors the adapter left unchanged")),
            "{err}"
        );
        let loaded = load::load(&path, &device).unwrap();
        let diff = common::max_diff(&want, &logits(&loaded.model, &loaded.tokenizer));
        println!("{quant} on a Q4_1 base: max |Δ logit| against base + adapter {diff:.2e}");
        assert!(diff < tol, "{quant}: {diff} ≥ {tol}");
    }
}

fn logits(m: &Llama, tok: &seedforge::llm::tokenizer::TextTokenizer) -> Vec<Vec<f32>> {
    PROMPTS
        .iter()
        .map(|p| {
            let ids = tok.encode_plain(p).unwrap();
            m.forward_last(
                tokens_tensor(std::slice::from_ref(&ids), 0, &m.device()),
                &StepLayout::for_prompts(&[ids.len()]),
                None,
            )
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
        })
        .collect()
}

fn no_temporaries(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".seedforge-"))
        .collect();
    assert!(
        left.is_empty(),
        "temporary files left in {}: {left:?}",
        dir.display()
    );
}

#[test]
fn gguf_and_hf_exports_give_the_runs_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, run) = strong_run(tmp.path());
    let device = Device::flex();
    let base = load::load(&model, &device).unwrap();
    let mut adapted = base.model.clone();
    peft::load_adapter(&mut adapted, &run).unwrap();
    let want = logits(&adapted, &base.tokenizer);
    let effect = common::max_diff(&want, &logits(&base.model, &base.tokenizer));
    println!("adapter effect on the logits: max |Δ| {effect:.3}");
    assert!(
        effect > 10.0 * TOL_Q8_0,
        "the adapter must move the logits far beyond every tolerance ({effect})"
    );

    let out = tmp.path().join("exports");
    for (format, quant, tol) in [
        ("gguf", "f32", TOL_F32),
        ("gguf", "f16", TOL_F16),
        ("gguf", "q8_0", TOL_Q8_0),
        ("hf", "f32", TOL_F32),
        ("hf", "f16", TOL_F16),
    ] {
        let path = out.join(match format {
            "gguf" => format!("tiny-{quant}.gguf"),
            _ => format!("tiny-hf-{quant}"),
        });
        ok(&export(&run, &path, format, Some(quant), &[]));
        let loaded = load::load(&path, &device).unwrap();
        let got = logits(&loaded.model, &loaded.tokenizer);
        let diff = common::max_diff(&want, &got);
        println!(
            "{format} {quant}: max |Δ logit| against base + adapter {diff:.2e} (tolerance {tol:.0e})"
        );
        assert!(diff < tol, "{format} {quant}: {diff} ≥ {tol}");
        assert!(
            lora::adapters(&loaded.model).is_empty(),
            "an export is a plain model"
        );

        // The card travels with the export: beside a GGUF (and in its metadata), inside a folder.
        let card_path = match format {
            "gguf" => path.with_file_name(format!("tiny-{quant}.seedforge.json")),
            _ => path.join("seedforge.json"),
        };
        let card: Card =
            serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
        assert_eq!(card.labels, ["negative", "positive"]);
        assert_eq!(card.label_words, ["negative", "positive"]);
        assert_eq!(card.prompt.template, "Review: {text}\nSentiment:");
        assert_eq!(card.source.weights, quant);
        assert_eq!(card.source.lora_targets.len(), 7);
        assert!(card.calibration.is_none(), "a seeds-only run is read raw");
        if format == "gguf" {
            let file = GgufFile::open(&path).unwrap();
            let inner: Card =
                serde_json::from_str(file.get_str("seedforge.classifier").unwrap()).unwrap();
            assert_eq!(inner, card);
            assert_eq!(
                file.get_str("seedforge.prompt.after").unwrap(),
                "\nSentiment:"
            );
            assert_eq!(
                file.get_str_array("seedforge.label_words").unwrap(),
                ["negative", "positive"]
            );
            assert_eq!(
                file.get_str("tokenizer.ggml.pre").unwrap(),
                "smollm",
                "the base file's metadata is copied"
            );
        } else {
            let config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path.join("config.json")).unwrap())
                    .unwrap();
            assert_eq!(config["architectures"][0], "LlamaForCausalLM");
            assert!(path.join("tokenizer_config.json").is_file());
        }
    }
    no_temporaries(&out);
}

#[test]
fn a_run_read_calibrated_carries_its_prior() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, run) = strong_run(tmp.path());
    // Recorded as trained on generated items: read at half strength (eval::reading).
    let cfg_path = run.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["extra_examples"] = 5.into();
    cfg["generated_examples"] = 5.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();

    let out = tmp.path().join("clf.gguf");
    ok(&export(&run, &out, "gguf", Some("f32"), &[]));
    let card: Card = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("clf.seedforge.json")).unwrap(),
    )
    .unwrap();
    let cal = card.calibration.expect("the run is read calibrated");
    assert_eq!(cal.strength, 0.5);

    // The prior is what predict divides by with the run.
    let loaded = load::load(&model, &Device::flex()).unwrap();
    let mut m = loaded.model.clone();
    peft::load_adapter(&mut m, &run).unwrap();
    let task = seedforge::data::task::Task::load(&tmp.path().join("ws")).unwrap();
    let templates = seedforge::pipeline::prompt::Templates::for_task(&task).unwrap();
    let classifier = seedforge::pipeline::classify::Classifier::new(
        &m,
        &loaded.tokenizer,
        &task,
        &templates,
        seedforge::eval::reading::options_for_run(&run).unwrap(),
    )
    .unwrap();
    let prior = classifier.content_free_prior().unwrap();
    for (a, b) in cal.prior.iter().zip(&prior) {
        assert!(
            (a - b).abs() < 1e-4,
            "card prior {:?} vs {prior:?}",
            cal.prior
        );
    }
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(file.get_f32("seedforge.calibration.strength").unwrap(), 0.5);
    assert_eq!(
        file.get_f32_array("seedforge.calibration.prior")
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn errors_name_the_path_and_a_failed_export_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, run) = strong_run(tmp.path());
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();

    let missing = tmp.path().join("no-such-run");
    let e = failed(&export(
        &missing,
        &out_dir.join("a.gguf"),
        "gguf",
        None,
        &[],
    ));
    assert!(
        e.contains("no-such-run") && e.contains("no such run folder"),
        "{e}"
    );

    let bare = tmp.path().join("bare-run");
    std::fs::create_dir_all(&bare).unwrap();
    let e = failed(&export(&bare, &out_dir.join("a.gguf"), "gguf", None, &[]));
    assert!(e.contains("bare-run") && e.contains("no adapter"), "{e}");

    // An existing destination is kept unless --force.
    let existing = out_dir.join("keep.gguf");
    std::fs::write(&existing, "mine").unwrap();
    let e = failed(&export(&run, &existing, "gguf", None, &[]));
    assert!(e.contains("keep.gguf") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "mine");
    ok(&export(&run, &existing, "gguf", Some("f16"), &["--force"]));
    GgufFile::open(&existing).unwrap();

    // A destination under a file cannot be written.
    let e = failed(&export(&run, &existing.join("x.gguf"), "gguf", None, &[]));
    assert!(e.contains("x.gguf"), "{e}");
    // q8_0 is a GGUF type.
    let e = failed(&export(&run, &out_dir.join("hf"), "hf", Some("q8_0"), &[]));
    assert!(e.contains("q8_0"), "{e}");
    let e = failed(&export(&run, &out_dir.join("hf"), "hf", Some("mixed"), &[]));
    assert!(e.contains("mixed"), "{e}");

    // An adapter that does not fit the model fails after the checks, while merging: nothing is
    // left under the destination's name, and no temporary file either.
    let broken = tmp.path().join("broken-run");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["config.json", peft::CONFIG_FILE, peft::WEIGHTS_FILE] {
        std::fs::copy(run.join(f), broken.join(f)).unwrap();
    }
    let cfg_path = broken.join(peft::CONFIG_FILE);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["r"] = 3.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    for (format, name) in [("gguf", "broken.gguf"), ("hf", "broken-hf")] {
        let e = failed(&export(&broken, &out_dir.join(name), format, None, &[]));
        assert!(e.contains("broken-run"), "{e}");
        assert!(!out_dir.join(name).exists(), "{name} must not exist");
    }
    assert!(!out_dir.join("broken.seedforge.json").exists());
    no_temporaries(&out_dir);
}
