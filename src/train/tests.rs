//! LoRA on the tiny random Llama: what attaching, training, merging and saving must (and must
//! not) change. Expected values come from the base model or from first principles, never from
//! the code under test.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::data::{Batch, Encoded, Padding};
use super::lora::{self, LoraConfig, Target};
use super::metrics::{StopReason, TrainEvent};
use super::score::{BatchTensors, batch_loss, label_scores};
use super::trainer::{
    TrainConfig, TrainControl, TrainData, adamw, to_training_device, train, trainable_ids,
};
use super::{peft, schedule::Decay};
use crate::llm::model::tests::tiny_model;
use crate::llm::model::{Llama, StepLayout, tokens_tensor};
use crate::util::rng::Rng;

fn logits(model: &Llama, rows: &[Vec<u32>]) -> Vec<f32> {
    let device = model.device();
    let lens: Vec<usize> = rows.iter().map(Vec::len).collect();
    let layout = StepLayout::for_prompts(&lens);
    model
        .logits(model.forward_hidden(tokens_tensor(rows, 0, &device), &layout, None))
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn rows() -> Vec<Vec<u32>> {
    vec![vec![3, 17, 42, 5, 9], vec![60, 11, 2]]
}

fn all_targets(rank: usize) -> LoraConfig {
    LoraConfig {
        rank,
        alpha: 2.0 * rank as f64,
        dropout: 0.0,
        targets: Target::ALL.to_vec(),
    }
}

/// Fills every `B` with seeded noise so the adapters change the output.
fn randomize_b(model: &mut Llama, seed: u64, std: f64) {
    let mut rng = Rng::new(seed);
    for block in &mut model.layers {
        for t in Target::ALL {
            let proj = lora::projection_mut(block, t);
            if let Some(lr) = proj.adapter.as_mut() {
                let shape = lr.b.shape();
                let n = shape.num_elements();
                let v: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
                let device = lr.b.val().device();
                lr.b = burn::module::Param::from_tensor(Tensor::from_data(
                    TensorData::new(v, shape),
                    &device,
                ));
            }
        }
    }
}

#[test]
fn a_fresh_adapter_leaves_the_logits_of_the_base_model() {
    let device = Device::flex();
    let base = tiny_model(&device);
    let want = logits(&base, &rows());
    let mut m = tiny_model(&device);
    lora::attach(&mut m, &all_targets(4), 3).unwrap();
    assert!(lora::trainable_params(&m) > 0);
    // B = 0 exactly, so the low-rank term adds exact zeros.
    assert_eq!(max_diff(&logits(&m, &rows()), &want), 0.0);
    // Also through the training device (dropout off).
    let t = to_training_device(m);
    let ad = logits(&t, &rows());
    // The autodiff device runs attention as separate ops rather than fused: rounding only.
    let d = max_diff(&ad, &want);
    assert!(d < 1e-4, "{d}");
}

#[test]
fn gradients_reach_only_the_adapters_and_the_optimizer_keeps_state_for_nothing_else() {
    let device = Device::flex();
    let mut m = tiny_model(&device);
    let cfg = LoraConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.1,
        targets: vec![Target::Q, Target::V, Target::Down],
    };
    lora::attach(&mut m, &cfg, 1).unwrap();
    randomize_b(&mut m, 2, 0.1); // so that A receives a non-zero gradient too
    let adapter_ids: Vec<_> = lora::adapters(&m)
        .iter()
        .flat_map(|(_, _, lr)| [lr.a.id, lr.b.id])
        .collect();
    let m = to_training_device(m);
    let mut ids = trainable_ids(&m);
    ids.sort();
    let mut want = adapter_ids.clone();
    want.sort();
    assert_eq!(ids, want, "only adapter factors require gradients");

    let e = Encoded {
        prompt: vec![5, 6, 7, 8],
        target: vec![40],
        label: 0,
        truncated: false,
    };
    let batch = Batch::new(&[&e, &e], Padding::Longest, 0);
    let t = BatchTensors::new(&batch, &m.device());
    let grads = GradientsParams::from_grads(batch_loss(&m, &t).backward(), &m);
    assert_eq!(grads.len(), adapter_ids.len(), "one gradient per factor");
    for &id in &adapter_ids {
        let g = grads.get::<2>(id).expect("every factor has a gradient");
        let norm: f32 = g.square().sum().into_scalar();
        assert!(norm > 0.0, "zero gradient for an adapter factor");
    }
    // Every base parameter: no gradient.
    let mut base_ids = Vec::new();
    struct All<'a>(&'a mut Vec<burn::module::ParamId>);
    impl burn::module::ModuleVisitor for All<'_> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            self.0.push(p.id);
        }
    }
    m.visit(&mut All(&mut base_ids));
    base_ids.retain(|id| !adapter_ids.contains(id));
    assert!(base_ids.len() > 20);
    assert!(base_ids.iter().all(|&id| grads.get::<2>(id).is_none()));

    let mut optim = adamw(&TrainConfig::default());
    let _m = optim.step(1e-3, m, grads);
    // AdamW keeps two moment tensors per optimized parameter: exactly the adapter factors'.
    assert_eq!(
        optim.to_record().len(),
        2 * adapter_ids.len(),
        "optimizer state only for adapter factors"
    );
}

fn toy_data() -> (Vec<Encoded>, Vec<Encoded>, Vec<Vec<u32>>) {
    // Label 0 ↔ prompts made of low ids, label 1 ↔ high ids; verbalizers 50 and 51.
    let mut rng = Rng::new(9);
    let mut make = |label: usize| {
        let lo = if label == 0 { 3 } else { 26 };
        let n = 3 + rng.below(4) as usize;
        Encoded {
            prompt: (0..n).map(|_| lo + rng.below(20) as u32).collect(),
            target: vec![50 + label as u32],
            label,
            truncated: false,
        }
    };
    let train: Vec<Encoded> = (0..24).map(|i| make(i % 2)).collect();
    let val: Vec<Encoded> = (0..8).map(|i| make(i % 2)).collect();
    (train, val, vec![vec![50], vec![51]])
}

#[test]
fn loss_falls_and_the_best_adapter_is_kept() {
    let device = Device::flex();
    let (tr, val, labels) = toy_data();
    let cfg = TrainConfig {
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec![Target::Q, Target::V, Target::O],
        },
        epochs: 8,
        batch_size: 6,
        lr: 2e-2,
        warmup: 0.1,
        decay: Decay::Cosine,
        patience: 0,
        ..TrainConfig::default()
    };
    let data = TrainData {
        train: &tr,
        val: &val,
        label_tokens: &labels,
        pad: 0,
        weights: &[],
        soft: &[],
    };
    let mut events = Vec::new();
    let out = train(
        tiny_model(&device),
        &data,
        &cfg,
        &TrainControl::default(),
        &mut |e| events.push(e.clone()),
    )
    .unwrap();
    let evals: Vec<(f64, f64, bool)> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Eval {
                val_loss,
                val_accuracy,
                best,
                ..
            } => Some((val_loss.unwrap(), val_accuracy.unwrap(), *best)),
            _ => None,
        })
        .collect();
    assert_eq!(evals.len(), 8);
    let first = evals[0].0;
    let best = evals.iter().map(|e| e.0).fold(f64::INFINITY, f64::min);
    assert!(best < first * 0.5, "validation loss {first} → best {best}");
    let steps: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Step { loss, .. } => Some(*loss),
            _ => None,
        })
        .collect();
    assert_eq!(steps.len(), 8 * 4);
    assert!(steps[steps.len() - 4..].iter().sum::<f64>() < steps[..4].iter().sum::<f64>() * 0.5);
    assert_eq!(out.reason, StopReason::Completed);
    assert_eq!(out.best_val_loss, Some(best));
    // The returned model is the best epoch's: its validation loss is the best one.
    let (loss, _) = super::trainer::evaluate(&out.model, &val, &labels, 16, 0).unwrap();
    assert!((loss - best).abs() < 1e-4, "{loss} vs {best}");
    assert!(!out.model.device().is_autodiff());
}

fn first_step_loss(events: &[TrainEvent]) -> f64 {
    events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Step { loss, .. } => Some(*loss),
            _ => None,
        })
        .expect("a step")
}

#[test]
fn a_model_carrying_adapters_of_the_runs_shape_trains_on_from_them() {
    let device = Device::flex();
    let (tr, val, labels) = toy_data();
    let cfg = TrainConfig {
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec![Target::Q, Target::V],
        },
        epochs: 6,
        batch_size: 6,
        lr: 2e-2,
        patience: 0,
        ..TrainConfig::default()
    };
    let data = TrainData {
        train: &tr,
        val: &val,
        label_tokens: &labels,
        pad: 0,
        weights: &[],
        soft: &[],
    };
    let run = |model: Llama, cfg: &TrainConfig| {
        let mut events = Vec::new();
        let out = train(model, &data, cfg, &TrainControl::default(), &mut |e| {
            events.push(e.clone())
        })
        .unwrap();
        (out, events)
    };
    let (first, fresh) = run(tiny_model(&device), &cfg);
    let fresh_loss = first_step_loss(&fresh);
    // Staged: the trained adapter goes on training (one epoch), starting where it ended.
    let one = TrainConfig {
        epochs: 1,
        ..cfg.clone()
    };
    let (_, staged) = run(first.model.clone(), &one);
    let staged_loss = first_step_loss(&staged);
    assert!(
        staged_loss < fresh_loss * 0.5,
        "staged first loss {staged_loss} against a fresh run's {fresh_loss}"
    );
    // Adapters of another shape are replaced by fresh ones: the fresh run's first step exactly.
    let mut other = tiny_model(&device);
    lora::attach(&mut other, &all_targets(2), 5).unwrap();
    randomize_b(&mut other, 1, 0.5);
    let (_, replaced) = run(other, &one);
    assert_eq!(first_step_loss(&replaced), fresh_loss);
}

#[test]
fn training_is_reproducible_with_a_seed() {
    let device = Device::flex();
    let (tr, val, labels) = toy_data();
    let cfg = TrainConfig {
        lora: LoraConfig {
            dropout: 0.2,
            ..LoraConfig::default()
        },
        epochs: 2,
        batch_size: 5,
        grad_accum: 2,
        lr: 1e-2,
        ..TrainConfig::default()
    };
    let data = TrainData {
        train: &tr,
        val: &val,
        label_tokens: &labels,
        pad: 0,
        weights: &[],
        soft: &[],
    };
    let run = |seed: u64| {
        let mut losses = Vec::new();
        let cfg = TrainConfig {
            seed,
            ..cfg.clone()
        };
        train(
            tiny_model(&device),
            &data,
            &cfg,
            &TrainControl::default(),
            &mut |e| {
                if let TrainEvent::Step { loss, .. } = e {
                    losses.push(*loss)
                }
            },
        )
        .unwrap();
        losses
    };
    let a = run(1);
    assert_eq!(a.len(), 2 * 3); // 24 examples / 5 → 5 batches → 3 steps of ≤ 2
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
}

#[test]
fn a_stopped_run_ends_at_once_and_keeps_its_adapter() {
    let device = Device::flex();
    let (tr, val, labels) = toy_data();
    let data = TrainData {
        train: &tr,
        val: &val,
        label_tokens: &labels,
        pad: 0,
        weights: &[],
        soft: &[],
    };
    let control = TrainControl::default();
    let mut steps = 0;
    let out = train(
        tiny_model(&device),
        &data,
        &TrainConfig {
            epochs: 50,
            batch_size: 4,
            ..TrainConfig::default()
        },
        &control,
        &mut |e| {
            if let TrainEvent::Step { .. } = e {
                steps += 1;
                if steps == 3 {
                    control.stop();
                }
            }
        },
    )
    .unwrap();
    assert_eq!(out.reason, StopReason::Stopped);
    assert_eq!(out.steps, 3);
    assert_eq!(out.best_epoch, Some(0));
    assert!(lora::info(&out.model).is_some());
}

#[test]
fn merged_and_unmerged_adapters_give_the_same_logits() {
    let device = Device::flex();
    let mut m = tiny_model(&device);
    let base = logits(&m, &rows());
    lora::attach(&mut m, &all_targets(3), 4).unwrap();
    randomize_b(&mut m, 5, 0.2);
    let unmerged = logits(&m, &rows());
    assert!(
        max_diff(&unmerged, &base) > 1e-2,
        "the adapters change the output"
    );
    lora::merge(&mut m);
    assert!(lora::info(&m).unwrap().merged);
    let merged = logits(&m, &rows());
    assert!(max_diff(&merged, &unmerged) < 1e-4);
    lora::merge(&mut m); // idempotent
    assert!(max_diff(&logits(&m, &rows()), &unmerged) < 1e-4);
    lora::unmerge(&mut m);
    assert!(max_diff(&logits(&m, &rows()), &unmerged) < 1e-4);
    lora::merge(&mut m);
    lora::detach(&mut m); // takes the merged delta out again
    assert!(max_diff(&logits(&m, &rows()), &base) < 1e-4);
}

#[test]
fn save_then_load_gives_identical_logits() {
    let device = Device::flex();
    let mut m = tiny_model(&device);
    let cfg = LoraConfig {
        rank: 4,
        alpha: 16.0,
        dropout: 0.05,
        targets: vec![Target::Q, Target::K, Target::V, Target::Up],
    };
    lora::attach(&mut m, &cfg, 6).unwrap();
    randomize_b(&mut m, 7, 0.2);
    let want = logits(&m, &rows());
    let dir = tempfile::tempdir().unwrap();
    let info = peft::save(&m, dir.path(), "tiny").unwrap();
    assert_eq!(info.targets, cfg.targets);

    let mut fresh = tiny_model(&device);
    let loaded = peft::load_adapter(&mut fresh, dir.path()).unwrap();
    assert_eq!(loaded, info);
    assert_eq!(loaded.alpha, 16.0);
    assert_eq!(max_diff(&logits(&fresh, &rows()), &want), 0.0);

    let st = std::fs::read(dir.path().join(peft::WEIGHTS_FILE)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    // tiny: 2 layers × 4 targets × 2 factors; q lora_A [r, d], k lora_B [kv, r].
    assert_eq!(st.len(), 16);
    let a = st
        .tensor("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight")
        .unwrap();
    assert_eq!(a.shape(), &[4, 32]);
    let b = st
        .tensor("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight")
        .unwrap();
    assert_eq!(b.shape(), &[16, 4]);
}

#[test]
fn loading_names_the_file_and_tensor_that_do_not_fit() {
    let device = Device::flex();
    let mut m = tiny_model(&device);
    lora::attach(&mut m, &all_targets(2), 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    peft::save(&m, dir.path(), "tiny").unwrap();
    // Claim another rank: every shape is then wrong.
    let cfg_path = dir.path().join(peft::CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, text.replace("\"r\": 2", "\"r\": 3")).unwrap();
    let e = peft::load_adapter(&mut tiny_model(&device), dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("adapter_model.safetensors"), "{e}");
    assert!(e.contains("lora_"), "{e}");
    std::fs::write(&cfg_path, r#"{"peft_type": "LORA", "use_dora": true}"#).unwrap();
    let e = peft::load_adapter(&mut tiny_model(&device), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapter_config.json") && e.contains("DoRA"),
        "{e}"
    );
    let e = peft::load_adapter(&mut tiny_model(&device), &dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope/adapter_config.json"), "{e}");
}

#[test]
fn an_adapter_is_written_whole_and_a_truncated_one_is_refused_naming_the_file() {
    let device = Device::flex();
    let mut m = tiny_model(&device);
    lora::attach(&mut m, &all_targets(2), 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(!peft::check_adapter(dir.path()).unwrap(), "no adapter yet");
    peft::save(&m, dir.path(), "tiny").unwrap();
    // Saved twice (every better epoch saves again): no temp file is left beside the two files.
    peft::save(&m, dir.path(), "tiny").unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [peft::CONFIG_FILE, peft::WEIGHTS_FILE]);
    assert!(peft::check_adapter(dir.path()).unwrap());

    // Cut short, as a crash in the middle of a plain write leaves it.
    let weights = dir.path().join(peft::WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let e = peft::check_adapter(dir.path()).unwrap_err().to_string();
    assert!(e.contains(&weights.display().to_string()), "{e}");
    assert!(e.contains("not a complete safetensors file"), "{e}");
    // A config without its weights is incomplete; weights without the config (a crash between
    // the two files of a first save) are no adapter yet.
    std::fs::remove_file(&weights).unwrap();
    let e = peft::check_adapter(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("missing"),
        "{e}"
    );
    std::fs::write(&weights, &bytes).unwrap();
    std::fs::remove_file(dir.path().join(peft::CONFIG_FILE)).unwrap();
    assert!(!peft::check_adapter(dir.path()).unwrap());
}

#[test]
fn packed_and_padded_batches_give_the_same_loss_and_scores() {
    let device = Device::flex();
    let mut m = tiny_model(&device);
    lora::attach(&mut m, &all_targets(2), 1).unwrap();
    randomize_b(&mut m, 3, 0.1);
    let (tr, _, labels) = toy_data();
    let items: Vec<&Encoded> = tr.iter().take(6).collect();
    let loss = |p: Padding| -> f32 {
        let b = Batch::new(&items, p, 0);
        batch_loss(&m, &BatchTensors::new(&b, &device)).into_scalar()
    };
    let packed = loss(Padding::Packed);
    assert!((packed - loss(Padding::Longest)).abs() < 1e-5);
    assert!((packed - loss(Padding::Fixed(12))).abs() < 1e-5);
    // Scoring in batches of 4 equals scoring one at a time.
    let owned: Vec<Encoded> = items.iter().map(|e| (*e).clone()).collect();
    let batched = label_scores(&m, &owned, &labels, 4, 0).unwrap();
    let single = label_scores(&m, &owned, &labels, 1, 0).unwrap();
    for (a, b) in batched.iter().zip(&single) {
        assert!(max_diff(a, b) < 1e-5);
    }
    // A multi-token verbalizer scores the sum of its tokens' log-probabilities.
    let multi = vec![vec![50, 7], vec![51]];
    let s = label_scores(&m, &owned[..2], &multi, 2, 0).unwrap();
    let two = Encoded {
        target: vec![50, 7],
        ..owned[0].clone()
    };
    let b = Batch::new(&[&two], Padding::Packed, 0);
    let per_token_mean: f32 = batch_loss(&m, &BatchTensors::new(&b, &device)).into_scalar();
    assert!((s[0][0] + 2.0 * per_token_mean).abs() < 1e-4);
}

/// The wgpu device the GPU tests run on (the Vulkan software driver on a machine without a GPU).
fn wgpu() -> Device {
    let selected = crate::llm::device::select(crate::llm::device::DeviceChoice::Wgpu);
    assert!(
        !selected.label.contains("no adapter"),
        "no wgpu adapter: install a Vulkan driver (apt-get install mesa-vulkan-drivers)"
    );
    selected.device
}

/// Two epochs of rank-2 adapters on `targets`, no clipping: short enough for a software GPU.
fn wgpu_config(targets: Vec<Target>) -> TrainConfig {
    TrainConfig {
        lora: LoraConfig {
            rank: 2,
            alpha: 4.0,
            dropout: 0.0,
            targets,
        },
        epochs: 2,
        batch_size: 12,
        lr: 2e-2,
        max_grad_norm: None,
        ..TrainConfig::default()
    }
}

#[test]
fn training_runs_on_wgpu_and_agrees_with_the_cpu() {
    let gpu = wgpu();
    let (tr, val, labels) = toy_data();
    let cfg = wgpu_config(vec![Target::Q, Target::V]);
    let data = TrainData {
        train: &tr,
        val: &val,
        label_tokens: &labels,
        pad: 0,
        weights: &[],
        soft: &[],
    };
    let run = |device: &Device| {
        let mut losses = Vec::new();
        let out = train(
            tiny_model(device),
            &data,
            &cfg,
            &TrainControl::default(),
            &mut |e| {
                if let TrainEvent::Step { loss, .. } = e {
                    losses.push(*loss)
                }
            },
        )
        .unwrap();
        (losses, out)
    };
    let (gpu, out) = run(&gpu);
    let (cpu, _) = run(&Device::flex());
    assert_eq!(gpu.len(), 4);
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!(
            (g - c).abs() < 1e-3 * c.abs().max(1.0),
            "wgpu {gpu:?} vs cpu {cpu:?}"
        );
    }
    assert!(gpu[3] < gpu[0]);
    assert!(!out.model.device().is_autodiff());
}

fn toy_run_data() -> super::checkpoint::RunData {
    let (train, val, label_tokens) = toy_data();
    super::checkpoint::RunData {
        train,
        val,
        label_tokens,
        pad: 0,
        weights: Vec::new(),
        soft: Vec::new(),
    }
}

/// What a run leaves for the resume tests: its adapter factors, its step losses, the events and
/// the checkpoints it offered (read back from disk, as a resumed process would).
struct Ran {
    factors: Vec<f32>,
    losses: Vec<(usize, f64)>,
    events: Vec<TrainEvent>,
    reason: StopReason,
    best_epoch: Option<usize>,
}

/// Trains on the toy data from `resume` (or from scratch), asking the run to stop once `stop`
/// says so, with the checkpoints written to `run` and the last one returned as loaded back.
fn run_resumable(
    cfg: &TrainConfig,
    run: &std::path::Path,
    resume: Option<&super::checkpoint::Checkpoint>,
    stop: &dyn Fn(&TrainEvent) -> bool,
) -> (Ran, Option<super::checkpoint::Checkpoint>) {
    use super::checkpoint::{Checkpoints, load};
    let device = Device::flex();
    let data = toy_run_data();
    let mut writer = match resume {
        None => Checkpoints::start(run, &data).unwrap(),
        Some(_) => Checkpoints::resume(run, &load(run).unwrap().unwrap()),
    };
    let control = TrainControl::default();
    let mut events = Vec::new();
    let out = super::trainer::train_resumable(
        tiny_model(&device),
        &data.as_train_data(),
        cfg,
        resume,
        &control,
        &mut |e| {
            if stop(e) {
                control.stop();
            }
            events.push(e.clone());
        },
        &mut |ck| writer.save(ck, 0),
    )
    .unwrap();
    let factors = lora::adapters(&out.model)
        .iter()
        .flat_map(|(_, _, lr)| {
            let mut v = lr.a.val().into_data().try_into_vec::<f32>().unwrap();
            v.extend(lr.b.val().into_data().try_into_vec::<f32>().unwrap());
            v
        })
        .collect();
    let losses = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Step { step, loss, .. } => Some((*step, *loss)),
            _ => None,
        })
        .collect();
    let last = load(run).unwrap().map(|l| l.checkpoint);
    (
        Ran {
            factors,
            losses,
            events,
            reason: out.reason,
            best_epoch: out.best_epoch,
        },
        last,
    )
}

fn resume_config() -> TrainConfig {
    TrainConfig {
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            // Dropout and accumulation on: the masks' stream and the step grouping must carry
            // over the break too.
            dropout: 0.2,
            targets: vec![Target::Q, Target::V],
        },
        epochs: 4,
        batch_size: 5,
        grad_accum: 2,
        lr: 2e-2,
        patience: 2,
        seed: 5,
        ..TrainConfig::default()
    }
}

/// The largest difference between a resumed run's adapter and the uninterrupted run's: the
/// resumed run repeats the same float operations in the same order from bit-identical state,
/// so nothing but exact equality is expected; the tolerance only allows for a backend that
/// reorders a reduction.
const RESUME_TOLERANCE: f32 = 1e-6;

fn assert_resumed_equals(whole: &Ran, first: &Ran, second: &Ran) {
    assert!(!first.factors.is_empty());
    let d = max_diff(&whole.factors, &second.factors);
    println!("resumed vs uninterrupted adapter: max |Δ| = {d:e}");
    assert!(d <= RESUME_TOLERANCE, "max |Δ| = {d}");
    assert_eq!(second.reason, whole.reason);
    assert_eq!(second.best_epoch, whole.best_epoch);
    // The resumed run's steps continue the first part's: no step twice, none missing, each
    // with the uninterrupted run's loss.
    let steps: Vec<usize> = first
        .losses
        .iter()
        .chain(&second.losses)
        .map(|s| s.0)
        .collect();
    assert_eq!(steps, (1..=whole.losses.len()).collect::<Vec<_>>());
    let resumed_from = first.losses.len();
    for (a, b) in whole.losses[resumed_from..].iter().zip(&second.losses) {
        assert_eq!(a.0, b.0);
        assert!(
            (a.1 - b.1).abs() <= 1e-6,
            "step {}: {} vs {}",
            a.0,
            a.1,
            b.1
        );
    }
    assert!(
        !second
            .events
            .iter()
            .any(|e| matches!(e, TrainEvent::Started { .. })),
        "a resumed run does not start again"
    );
}

#[test]
fn a_run_stopped_after_an_epoch_and_resumed_ends_as_the_uninterrupted_run() {
    let cfg = resume_config();
    let dir = tempfile::tempdir().unwrap();
    let (whole, _) = run_resumable(&cfg, &dir.path().join("whole"), None, &|_| false);
    assert_eq!(whole.losses.len(), 4 * 3); // 24 examples / 5 → 5 batches → 3 steps of ≤ 2
    let run = dir.path().join("broken");
    // Stopped when the second epoch's evaluation comes in.
    let (first, ck) = run_resumable(&cfg, &run, None, &|e| {
        matches!(e, TrainEvent::Eval { epoch: 1, .. })
    });
    assert_eq!(first.reason, StopReason::Stopped);
    let ck = ck.unwrap();
    assert_eq!((ck.progress.epoch, ck.progress.steps_in_epoch), (2, 0));
    assert_eq!(ck.progress.step, 6);
    let (second, _) = run_resumable(&cfg, &run, Some(&ck), &|_| false);
    assert_resumed_equals(&whole, &first, &second);
}

#[test]
fn a_run_stopped_mid_epoch_and_resumed_ends_as_the_uninterrupted_run() {
    let cfg = resume_config();
    let dir = tempfile::tempdir().unwrap();
    let (whole, _) = run_resumable(&cfg, &dir.path().join("whole"), None, &|_| false);
    let run = dir.path().join("broken");
    // Stopped after step 5: the second step of the second epoch. The stopped run evaluates
    // where it stands (and may keep that adapter); the checkpoint was taken before.
    let (first, ck) = run_resumable(&cfg, &run, None, &|e| {
        matches!(e, TrainEvent::Step { step: 5, .. })
    });
    let ck = ck.unwrap();
    assert_eq!((ck.progress.epoch, ck.progress.steps_in_epoch), (1, 2));
    let (second, _) = run_resumable(&cfg, &run, Some(&ck), &|_| false);
    assert_resumed_equals(&whole, &first, &second);
    // Stopped twice: the resumed run stopped again, resumed again.
    let run = dir.path().join("twice");
    let (a, ck) = run_resumable(&cfg, &run, None, &|e| {
        matches!(e, TrainEvent::Step { step: 2, .. })
    });
    let (b, ck) = run_resumable(&cfg, &run, ck.as_ref(), &|e| {
        matches!(e, TrainEvent::Step { step: 8, .. })
    });
    let (c, _) = run_resumable(&cfg, &run, ck.as_ref(), &|_| false);
    let ab = Ran {
        losses: a.losses.iter().chain(&b.losses).copied().collect(),
        ..a
    };
    assert_resumed_equals(&whole, &ab, &c);
}

#[test]
fn a_paused_run_leaves_a_checkpoint_to_resume_from() {
    let cfg = resume_config();
    let dir = tempfile::tempdir().unwrap();
    let (whole, _) = run_resumable(&cfg, &dir.path().join("whole"), None, &|_| false);
    let run = dir.path().join("paused");
    let device = Device::flex();
    let data = toy_run_data();
    let mut writer = super::checkpoint::Checkpoints::start(&run, &data).unwrap();
    let control = TrainControl::default();
    let mut saved: Vec<usize> = Vec::new();
    let mut first = Vec::new();
    // Paused after step 4; the checkpoint written on pausing is the process's last act (as if
    // it were killed while paused): the test stops it there.
    super::trainer::train_resumable(
        tiny_model(&device),
        &data.as_train_data(),
        &cfg,
        None,
        &control,
        &mut |e| {
            if let TrainEvent::Step { step, loss, .. } = e {
                first.push((*step, *loss));
                if *step == 4 {
                    control.pause();
                }
            }
        },
        &mut |ck| {
            saved.push(ck.progress.step);
            if control.is_paused() {
                control.stop();
                control.resume();
            }
            writer.save(ck, 0)
        },
    )
    .unwrap();
    // Fresh, after epochs 1 (step 3), the pause at step 4, the stop.
    assert_eq!(saved, [0, 3, 4, 4]);
    let loaded = super::checkpoint::load(&run).unwrap().unwrap();
    // The stop's checkpoint is the pause's: resume from it.
    let (second, _) = run_resumable(&cfg, &run, Some(&loaded.checkpoint), &|_| false);
    let first = Ran {
        factors: vec![0.0],
        losses: first,
        events: Vec::new(),
        reason: StopReason::Stopped,
        best_epoch: None,
    };
    assert_resumed_equals(&whole, &first, &second);
}

/// QLoRA: the base held in 8-bit blocks trains the same adapters, step for step, as f32 weights
/// holding exactly the blocks' values — the blocks' own backward pass gives the gradient f32's
/// matmul gives — and the trained model stays in blocks.
#[test]
fn qlora_trains_over_the_blocks_as_lora_over_the_same_values() {
    use crate::llm::model::tests::{MemoryWeights, tiny_config};
    use crate::llm::quant::{QMatrix, WeightMode};
    let device = Device::flex();
    let mut c = tiny_config();
    c.intermediate_size = 64; // rows of whole blocks of 32
    let mut source = MemoryWeights::random(&c, 7);
    for t in source.0.values_mut().filter(|t| t.shape.len() == 2) {
        let q = QMatrix::quantize(WeightMode::Q8_0, &t.data, t.shape[0], t.shape[1]).unwrap();
        t.data = q.dequantize();
    }
    let (tr, val, labels) = toy_data();
    let cfg = TrainConfig {
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec![Target::Q, Target::V, Target::Down],
        },
        epochs: 4,
        batch_size: 6,
        lr: 2e-2,
        patience: 0,
        ..TrainConfig::default()
    };
    let data = TrainData {
        train: &tr,
        val: &val,
        label_tokens: &labels,
        pad: 0,
        weights: &[],
        soft: &[],
    };
    let run = |mode: WeightMode| {
        let model = Llama::load_as(&c, &source, &device, mode).unwrap();
        let mut losses = Vec::new();
        let out = train(model, &data, &cfg, &TrainControl::default(), &mut |e| {
            if let TrainEvent::Step { loss, .. } = e {
                losses.push(*loss);
            }
        })
        .unwrap();
        (out, losses)
    };
    let (reference, want) = run(WeightMode::F32);
    let (qlora, got) = run(WeightMode::Q8_0);
    assert_eq!(qlora.model.weight_mode(), WeightMode::Q8_0);
    assert_eq!(got.len(), 4 * 4);
    assert!(
        want[want.len() - 4..].iter().sum::<f64>() < want[..4].iter().sum::<f64>() * 0.7,
        "the reference learns: {want:?}"
    );
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() < 1e-3 * w.abs().max(1.0),
            "step {step}: {g} vs {w}"
        );
    }
    let (a, b) = (
        logits(&qlora.model, &rows()),
        logits(&reference.model, &rows()),
    );
    assert!(
        max_diff(&a, &b) < 1e-3,
        "trained logits differ by {}",
        max_diff(&a, &b)
    );
}

/// Recomputing each layer's forward pass in the backward pass trains the same adapters as
/// keeping the whole graph: the same losses step for step (dropout on, so the recomputation
/// must draw the masks the first pass drew), the same trained logits — on a Llama, a Gemma 3
/// with a sliding-window layer and q/k norms, and over 8-bit blocks (QLoRA's default).
#[test]
fn recomputing_the_layers_trains_what_the_whole_graph_trains() {
    use crate::llm::config::Architecture;
    use crate::llm::model::tests::{MemoryWeights, tiny_config};
    use crate::llm::quant::WeightMode;
    use crate::llm::weights::Dense;
    let device = Device::flex();
    let llama = tiny_config();
    let mut gemma = tiny_config();
    gemma.arch = Architecture::Gemma3;
    gemma.num_layers = 3;
    gemma.sliding_layers = vec![0, 2];
    gemma.sliding_window = Some(3);
    gemma.rope_local_theta = Some(1_000.0);
    let mut blocks = tiny_config();
    blocks.intermediate_size = 64; // rows of whole blocks of 32
    let (tr, val, labels) = toy_data();
    let data = TrainData {
        train: &tr,
        val: &val,
        label_tokens: &labels,
        pad: 0,
        weights: &[],
        soft: &[],
    };
    let cfg = TrainConfig {
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.3,
            targets: Target::ALL.to_vec(),
        },
        epochs: 3,
        batch_size: 6,
        grad_accum: 2,
        lr: 2e-2,
        patience: 0,
        ..TrainConfig::default()
    };
    for (name, c, mode) in [
        ("llama", llama, WeightMode::F32),
        ("gemma", gemma, WeightMode::F32),
        ("q8_0 blocks", blocks, WeightMode::Q8_0),
    ] {
        let mut source = MemoryWeights::random(&c, 11);
        if c.arch.gemma() {
            for i in 0..c.num_layers {
                let p = format!("model.layers.{i}");
                let mut norm = |n: String, len: usize| {
                    let data = (0..len).map(|j| 0.9 + (j % 5) as f32 * 0.05).collect();
                    source.0.insert(
                        n,
                        Dense {
                            shape: vec![len],
                            data,
                        },
                    );
                };
                norm(
                    format!("{p}.pre_feedforward_layernorm.weight"),
                    c.hidden_size,
                );
                norm(
                    format!("{p}.post_feedforward_layernorm.weight"),
                    c.hidden_size,
                );
                norm(format!("{p}.self_attn.q_norm.weight"), c.head_dim);
                norm(format!("{p}.self_attn.k_norm.weight"), c.head_dim);
            }
        }
        let run = |recompute: bool| {
            let model = Llama::load_as(&c, &source, &device, mode).unwrap();
            let cfg = TrainConfig {
                recompute: Some(recompute),
                ..cfg.clone()
            };
            let mut losses = Vec::new();
            let out = train(model, &data, &cfg, &TrainControl::default(), &mut |e| {
                if let TrainEvent::Step { loss, .. } = e {
                    losses.push(*loss);
                }
            })
            .unwrap();
            (logits(&out.model, &rows()), losses)
        };
        let (whole_logits, whole) = run(false);
        let (layered_logits, layered) = run(true);
        assert_eq!(whole.len(), 3 * 2, "{name}");
        assert!(
            whole.last().unwrap() < whole.first().unwrap(),
            "{name}: the run learns: {whole:?}"
        );
        for (step, (a, b)) in layered.iter().zip(&whole).enumerate() {
            assert!(
                (a - b).abs() < 1e-5 * b.abs().max(1.0),
                "{name}, step {step}: {a} vs {b}"
            );
        }
        let diff = max_diff(&layered_logits, &whole_logits);
        assert!(diff < 1e-4, "{name}: trained logits differ by {diff}");
    }
}

/// Quantized weights on wgpu (q4, q8_0 and f16): the blocks are uploaded and decoded on the
/// device for each product, and QLoRA there (recomputing the layers, as `auto` does over blocks) trains what it
/// trains on the CPU from the same blocks; the trained models give the same logits.
#[test]
fn qlora_runs_on_wgpu_over_blocks_held_there_and_agrees_with_the_cpu() {
    use crate::llm::model::tests::{MemoryWeights, tiny_config};
    use crate::llm::quant::WeightMode;
    let gpu = wgpu();
    let mut c = tiny_config();
    c.intermediate_size = 64; // rows of whole blocks of 32
    let source = MemoryWeights::random(&c, 7);
    let (tr, val, labels) = toy_data();
    let cfg = wgpu_config(vec![Target::Q, Target::V, Target::Down]);
    let data = TrainData {
        train: &tr,
        val: &val,
        label_tokens: &labels,
        pad: 0,
        weights: &[],
        soft: &[],
    };
    for mode in [WeightMode::Q4, WeightMode::Q8_0, WeightMode::F16] {
        let run = |device: &Device| {
            let model = Llama::load_as(&c, &source, device, mode).unwrap();
            let held_there = model.layers[0]
                .self_attn
                .q_proj
                .quant
                .as_ref()
                .is_some_and(|q| q.on_device.is_some());
            let mut losses = Vec::new();
            let out = train(model, &data, &cfg, &TrainControl::default(), &mut |e| {
                if let TrainEvent::Step { loss, .. } = e {
                    losses.push(*loss)
                }
            })
            .unwrap();
            (losses, logits(&out.model, &rows()), held_there)
        };
        let (gpu, gpu_logits, on_gpu) = run(&gpu);
        let (cpu, cpu_logits, on_cpu) = run(&Device::flex());
        assert!(
            on_gpu && !on_cpu,
            "{mode}: blocks on the device only off the CPU"
        );
        assert_eq!(gpu.len(), 4, "{mode}");
        for (g, c) in gpu.iter().zip(&cpu) {
            assert!(
                (g - c).abs() < 1e-3 * c.abs().max(1.0),
                "{mode}: wgpu {gpu:?} vs cpu {cpu:?}"
            );
        }
        assert!(gpu[3] < gpu[0], "{mode}: {gpu:?}");
        let diff = max_diff(&gpu_logits, &cpu_logits);
        assert!(diff < 2e-3, "{mode}: trained logits differ by {diff}");
    }
}
