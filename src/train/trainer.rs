//! The LoRA training loop: a plain blocking function the engine runs on a worker thread.
//!
//! Adapters are attached to the model, which moves to the device's autodiff twin; only the
//! adapter factors require gradients, so the optimizer (AdamW) sees and keeps state for nothing
//! else. Each optimizer step takes `grad_accum` length-grouped micro-batches, weighs their losses
//! by target tokens, clips the global gradient norm and follows the warm-up/decay schedule. After
//! every epoch the held-out real examples give a validation loss and accuracy; the adapter of the
//! best validation loss is kept, and training stops early when it has not improved for
//! `patience` epochs. Stop and pause are atomics checked between micro-batches; a stopped run
//! still returns (and lets the caller save) its best adapter.

use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint::{AdapterState, Best, Checkpoint, Progress};
use super::data::{Batch, Encoded, Padding, length_grouped_batches};
use super::gradients::{Accumulated, loss_and_gradients};
use super::lora::{self, LoraConfig};
use super::metrics::{StopReason, TrainEvent};
use super::schedule::{Decay, Schedule, warmup_steps};
use super::score::{BatchTensors, TermTensors, accuracy, batch_loss, host_f32, label_scores};
use super::weighting::{LossTerms, Weighting};
use crate::llm::model::Llama;
use crate::llm::quant::WeightMode;
use crate::util::rng::Rng;

/// What the adapter learns to say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The label word after the classification prompt (the classifier).
    #[default]
    Classify,
    /// An example after its label's generation prompt (the teacher that writes examples).
    Generate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    #[serde(default)]
    pub objective: Objective,
    pub lora: LoraConfig,
    pub epochs: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub min_lr: f64,
    /// Warm-up as a fraction of all optimizer steps.
    pub warmup: f64,
    pub decay: Decay,
    /// AdamW's decoupled weight decay (PyTorch's default 0.01).
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global L2 norm of the gradients to this (none: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Share of the real examples held out for validation (stratified by label).
    pub val_fraction: f64,
    /// Stop after this many epochs without a better validation loss (0: never stop early).
    pub patience: usize,
    /// An improvement smaller than this does not count.
    pub min_delta: f64,
    /// Longest prompt + label, in tokens (longer texts lose words at their end).
    pub max_len: usize,
    pub padding: Padding,
    pub eval_batch_size: usize,
    pub seed: u64,
    /// Class balance, the synthetic items' share and label smoothing (absent in a run recorded
    /// before they existed: none of them).
    #[serde(default = "Weighting::none")]
    pub weighting: Weighting,
    /// Runs trained and averaged into one adapter (a soup, see [`super::soup`]); 1: one run.
    #[serde(default = "one")]
    pub members: usize,
    /// The share of the real examples this run holds out for validation, when it is a soup's
    /// member (none: the share `seed` draws).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<Fold>,
    /// Recompute each layer's forward pass in the backward pass instead of keeping every
    /// layer's activations ([`super::gradients`]): less memory, one more forward pass a step.
    /// `None`: on when the frozen weights are held in blocks (QLoRA, chosen for its memory),
    /// off over f32 weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recompute: Option<bool>,
}

fn one() -> usize {
    1
}

/// A soup member's validation share: the real examples of each label are shuffled with `seed`
/// (the same for every member) and member `index` holds out the `index`-th share, so the members'
/// held-out shares do not overlap while there are enough examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    pub index: usize,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            objective: Objective::Classify,
            lora: LoraConfig::default(),
            epochs: 20,
            batch_size: 8,
            grad_accum: 1,
            lr: 1e-3,
            min_lr: 0.0,
            warmup: 0.1,
            decay: Decay::Cosine,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: Some(1.0),
            val_fraction: 0.25,
            patience: 3,
            min_delta: 0.0,
            max_len: 128,
            padding: Padding::Packed,
            eval_batch_size: 16,
            seed: 0,
            weighting: Weighting::default(),
            members: 1,
            fold: None,
            recompute: None,
        }
    }
}

/// The most runs one soup averages (each member is a whole training run).
pub const MAX_MEMBERS: usize = 16;

impl TrainConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.lora.validate()?;
        self.weighting.validate()?;
        if self.epochs == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return Err("epochs, batch size and gradient accumulation must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("learning rate must be positive, not {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(format!(
                "validation fraction must be in [0, 1), not {}",
                self.val_fraction
            ));
        }
        if !(0.0..1.0).contains(&self.warmup) {
            return Err(format!("warm-up must be in [0, 1), not {}", self.warmup));
        }
        if self.max_len < 2 {
            return Err("max length must be at least 2 tokens".into());
        }
        if !(1..=MAX_MEMBERS).contains(&self.members) {
            return Err(format!(
                "a soup has 1 to {MAX_MEMBERS} members, not {}",
                self.members
            ));
        }
        Ok(())
    }

    /// Whether the layers' forward passes are recomputed over weights held as `weights`.
    pub fn recomputes(&self, weights: WeightMode) -> bool {
        self.recompute.unwrap_or(weights.is_quantized())
    }

    /// Optimizer steps per epoch for `n` training examples.
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        n.div_ceil(self.batch_size).div_ceil(self.grad_accum)
    }
}

/// Stop/pause requests from the engine or the UI, checked between micro-batches: the same
/// flags every engine job uses.
pub use crate::util::control::JobControl as TrainControl;

/// The data of a run, already encoded.
pub struct TrainData<'a> {
    pub train: &'a [Encoded],
    /// Held-out real examples (may be empty: then the last epoch's adapter is kept).
    pub val: &'a [Encoded],
    /// The verbalizer tokens of each label, for validation accuracy.
    pub label_tokens: &'a [Vec<u32>],
    pub pad: u32,
    /// One weight per training example (empty: every example weighs one).
    pub weights: &'a [f32],
    /// A distribution over the labels per training example to train towards instead of its
    /// label (empty, or `None` for an example: its label).
    pub soft: &'a [Option<Vec<f32>>],
}

/// Early stopping on validation loss: pure bookkeeping, fed one epoch at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    pub patience: usize,
    pub min_delta: f64,
    pub best: Option<(usize, f64)>,
    pub epochs_without_improvement: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new best: keep this epoch's adapter.
    Improved,
    /// Not better; keep going.
    Continue,
    /// Not better for `patience` epochs in a row.
    Stop,
}

impl EarlyStopping {
    pub fn new(patience: usize, min_delta: f64) -> Self {
        EarlyStopping {
            patience,
            min_delta,
            best: None,
            epochs_without_improvement: 0,
        }
    }

    pub fn observe(&mut self, epoch: usize, val_loss: f64) -> Verdict {
        let better = match self.best {
            None => true,
            Some((_, best)) => val_loss < best - self.min_delta,
        };
        if better && val_loss.is_finite() {
            self.best = Some((epoch, val_loss));
            self.epochs_without_improvement = 0;
            return Verdict::Improved;
        }
        self.epochs_without_improvement += 1;
        if self.patience > 0 && self.epochs_without_improvement >= self.patience {
            Verdict::Stop
        } else {
            Verdict::Continue
        }
    }
}

/// What a run leaves: the model on the plain (inference) device with the best adapter attached.
pub struct TrainOutcome {
    pub model: Llama,
    pub reason: StopReason,
    pub steps: usize,
    pub epochs: usize,
    pub best_epoch: Option<usize>,
    pub best_val_loss: Option<f64>,
    pub best_val_accuracy: Option<f64>,
    pub elapsed_s: f64,
}

/// Ids of the parameters that require gradients (the adapter factors).
pub fn trainable_ids(model: &Llama) -> Vec<ParamId> {
    struct Collect(Vec<ParamId>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0.push(param.id);
            }
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

/// The adapter factors as host data, to restore the best epoch later.
type Snapshot = Vec<(Vec<f32>, Vec<f32>)>;

fn snapshot(model: &Llama) -> anyhow::Result<Snapshot> {
    lora::adapters(model)
        .iter()
        .map(|(_, _, lr)| Ok((host_f32(lr.a.val())?, host_f32(lr.b.val())?)))
        .collect()
}

fn restore(model: &mut Llama, snap: &Snapshot) {
    let mut it = snap.iter();
    for block in &mut model.layers {
        for t in lora::Target::ALL {
            let proj = lora::projection_mut(block, t);
            if let Some(lr) = proj.adapter.as_mut()
                && let Some((a, b)) = it.next()
            {
                let device = lr.a.val().device();
                let (sa, sb) = (lr.a.shape(), lr.b.shape());
                lr.a =
                    Param::from_tensor(Tensor::from_data(TensorData::new(a.clone(), sa), &device));
                lr.b =
                    Param::from_tensor(Tensor::from_data(TensorData::new(b.clone(), sb), &device));
            }
        }
    }
}

/// Validation loss (mean over target tokens) and accuracy of `model` on `items`; no accuracy
/// without labels to score (a generation objective).
pub fn evaluate(
    model: &Llama,
    items: &[Encoded],
    label_tokens: &[Vec<u32>],
    batch_size: usize,
    pad: u32,
) -> anyhow::Result<(f64, Option<f64>)> {
    let device = model.device();
    let mut sum = 0.0;
    let mut n = 0usize;
    for chunk in items.chunks(batch_size.max(1)) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        let batch = Batch::new(&refs, Padding::Packed, pad);
        let t = BatchTensors::new(&batch, &device);
        let loss = batch_loss(model, &t).into_scalar::<f32>() as f64;
        sum += loss * batch.targets.len() as f64;
        n += batch.targets.len();
    }
    let acc = if label_tokens.is_empty() {
        None
    } else {
        let scores = label_scores(model, items, label_tokens, batch_size, pad)?;
        Some(accuracy(&scores, items))
    };
    Ok((sum / n.max(1) as f64, acc))
}

pub fn adamw(cfg: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(cfg.beta1 as f32)
        .with_beta_2(cfg.beta2 as f32)
        .with_epsilon(cfg.eps as f32)
        .with_weight_decay(cfg.weight_decay as f32)
        .init()
}

/// Puts `model` (with adapters attached) on the autodiff twin of its device, trainable.
pub fn to_training_device(model: Llama) -> Llama {
    let device = model.device().inner().autodiff();
    model.fork(&device).train()
}

/// Trains fresh LoRA adapters (`cfg.lora`) on `data.train`; see the module docs.
pub fn train(
    model: Llama,
    data: &TrainData,
    cfg: &TrainConfig,
    control: &TrainControl,
    sink: &mut dyn FnMut(&TrainEvent),
) -> anyhow::Result<TrainOutcome> {
    train_resumable(model, data, cfg, None, control, sink, &mut |_| Ok(()))
}

/// [`train`] with checkpoints: `save` is given one when the run starts (a fresh run), after
/// every epoch, and when the run pauses or is stopped (before the stopped run's last
/// evaluation, so that resuming from it gives what the uninterrupted run would have); an error
/// from it ends the run. With `resume`, the run goes on from that checkpoint (taken from a run
/// of the same model, data and `cfg`) instead of starting: no `Started` event (the caller has
/// the earlier events), then the same steps, batches, dropout masks and optimizer updates as
/// the uninterrupted run.
pub fn train_resumable(
    model: Llama,
    data: &TrainData,
    cfg: &TrainConfig,
    resume: Option<&Checkpoint>,
    control: &TrainControl,
    sink: &mut dyn FnMut(&TrainEvent),
    save: &mut dyn FnMut(&Checkpoint) -> anyhow::Result<()>,
) -> anyhow::Result<TrainOutcome> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(!data.train.is_empty(), "no training examples");
    let clock = Instant::now();
    let elapsed_before = resume.map_or(0.0, |c| c.progress.elapsed_s);
    let elapsed = || elapsed_before + clock.elapsed().as_secs_f64();
    let mut model = model;
    // A model that arrives with adapters of the run's rank and targets (a run started from
    // another run's adapter) trains on from them; any other gets fresh ones.
    let carried = lora::info(&model)
        .is_some_and(|i| i.rank == cfg.lora.rank && i.targets == cfg.lora.targets && !i.merged);
    if !carried || resume.is_some() {
        lora::attach(&mut model, &cfg.lora, cfg.seed).map_err(anyhow::Error::msg)?;
    }
    if let Some(ck) = resume {
        restore_adapters(&mut model, &ck.adapters)?;
    }
    let plain_device = model.device().inner();
    let device_label = format!("{plain_device:?}");
    let mut model = to_training_device(model);
    let ids = trainable_ids(&model);
    let mut optim = adamw(cfg);
    if let Some(ck) = resume {
        optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(ck.optimizer.clone()))
            .map_err(|e| anyhow::anyhow!("the checkpoint's optimizer state: {e:?}"))?;
    }

    let steps_per_epoch = cfg.steps_per_epoch(data.train.len());
    let total_steps = steps_per_epoch * cfg.epochs;
    let schedule = Schedule {
        peak_lr: cfg.lr,
        warmup_steps: warmup_steps(cfg.warmup, total_steps),
        total_steps,
        decay: cfg.decay,
        min_lr: cfg.min_lr,
    };
    if resume.is_none() {
        sink(&TrainEvent::Started {
            train_examples: data.train.len(),
            val_examples: data.val.len(),
            epochs: cfg.epochs,
            steps_per_epoch,
            total_steps,
            trainable_params: lora::trainable_params(&model),
            device: device_label,
            member: None,
        });
    }

    let lengths: Vec<usize> = data.train.iter().map(Encoded::input_len).collect();
    anyhow::ensure!(
        data.weights.is_empty() || data.weights.len() == data.train.len(),
        "{} example weights for {} training examples",
        data.weights.len(),
        data.train.len()
    );
    let weight_of = |i: usize| data.weights.get(i).copied().unwrap_or(1.0);
    // Smoothing spreads the label word's target over every label's first token; the generation
    // objective has no label words to spread over.
    let label_first: Vec<u32> = data
        .label_tokens
        .iter()
        .filter_map(|t| t.first().copied())
        .collect();
    let weighted = !data.weights.is_empty()
        || cfg.weighting.label_smoothing > 0.0
        || data.soft.iter().any(Option::is_some);
    let recompute = cfg.recomputes(model.weight_mode());
    let mut early = EarlyStopping::new(cfg.patience, cfg.min_delta);
    let mut best: Option<(Snapshot, Best)> = None;
    let mut at = match resume {
        Some(ck) => {
            early.best = ck.progress.early_best;
            early.epochs_without_improvement = ck.progress.epochs_without_improvement;
            if let (Some(snap), Some(meta)) = (&ck.best, ck.progress.best) {
                best = Some((snap.clone(), meta));
            }
            ck.progress.clone()
        }
        None => Progress {
            epoch: 0,
            steps_in_epoch: 0,
            step: 0,
            epochs_done: 0,
            epoch_rng: Rng::new(cfg.seed ^ 0x7EA1_5EED).state(),
            epoch_loss: 0.0,
            epoch_targets: 0,
            early_best: None,
            epochs_without_improvement: 0,
            early_stopped: false,
            best: None,
            elapsed_s: 0.0,
        },
    };
    // The checkpoint of where the run stands now.
    let take = |model: &Llama,
                optim: &ModuleOptimizer,
                at: &Progress,
                early: &EarlyStopping,
                best: &Option<(Snapshot, Best)>|
     -> anyhow::Result<Checkpoint> {
        let progress = Progress {
            early_best: early.best,
            epochs_without_improvement: early.epochs_without_improvement,
            best: best.as_ref().map(|(_, b)| *b),
            elapsed_s: elapsed(),
            ..at.clone()
        };
        Ok(Checkpoint {
            progress,
            adapters: adapter_states(model)?,
            best: best.as_ref().map(|(s, _)| s.clone()),
            optimizer: optim
                .into_bytes()
                .map_err(|e| anyhow::anyhow!("recording the optimizer state: {e:?}"))?
                .to_vec(),
        })
    };
    if resume.is_none() {
        save(&take(&model, &optim, &at, &early, &best)?)?;
    }
    let mut reason = if at.early_stopped {
        StopReason::EarlyStopped
    } else {
        StopReason::Completed
    };

    let evaluate_epoch = |model: &Llama,
                          epoch: usize,
                          step: usize,
                          train_loss: f64,
                          early: &mut EarlyStopping,
                          best: &mut Option<(Snapshot, Best)>,
                          sink: &mut dyn FnMut(&TrainEvent)|
     -> anyhow::Result<Verdict> {
        let t0 = Instant::now();
        let plain = model.valid();
        let (val_loss, val_acc) = if data.val.is_empty() {
            (None, None)
        } else {
            let (l, a) = evaluate(
                &plain,
                data.val,
                data.label_tokens,
                cfg.eval_batch_size,
                data.pad,
            )?;
            (Some(l), a)
        };
        let verdict = match val_loss {
            Some(l) => early.observe(epoch, l),
            None => Verdict::Improved,
        };
        if verdict == Verdict::Improved {
            *best = Some((
                snapshot(&plain)?,
                Best {
                    epoch,
                    val_loss: val_loss.filter(|l| l.is_finite()),
                    val_accuracy: val_acc.filter(|a| a.is_finite()),
                },
            ));
        }
        sink(&TrainEvent::Eval {
            epoch,
            step,
            train_loss,
            val_loss,
            val_accuracy: val_acc,
            best: verdict == Verdict::Improved,
            eval_time_s: t0.elapsed().as_secs_f64(),
            elapsed_s: elapsed(),
        });
        Ok(verdict)
    };

    let first_epoch = if at.early_stopped {
        cfg.epochs
    } else {
        at.epoch
    };
    'epochs: for epoch in first_epoch..cfg.epochs {
        // Each epoch draws its batches from the stream where the last one left it; a resumed
        // epoch draws the same ones again and skips those it had done.
        let mut rng = Rng::from_state(at.epoch_rng);
        let batches = length_grouped_batches(&lengths, cfg.batch_size, &mut rng);
        let mut stopped_mid_epoch = false;
        for group in batches.chunks(cfg.grad_accum).skip(at.steps_in_epoch) {
            if control.is_paused() && !control.is_stopped() {
                save(&take(&model, &optim, &at, &early, &best)?)?;
            }
            if wait_if_paused(control, at.step, sink) {
                stopped_mid_epoch = true;
                break;
            }
            let t0 = Instant::now();
            let built: Vec<(Batch, Option<LossTerms>)> = group
                .iter()
                .map(|idx| {
                    let refs: Vec<&Encoded> = idx.iter().map(|&i| &data.train[i]).collect();
                    let terms = weighted.then(|| {
                        let w: Vec<f32> = idx.iter().map(|&i| weight_of(i)).collect();
                        let q: Vec<Option<&[f32]>> = idx
                            .iter()
                            .map(|&i| data.soft.get(i).and_then(|d| d.as_deref()))
                            .collect();
                        LossTerms::new(&refs, &w, &q, &label_first, cfg.weighting.label_smoothing)
                    });
                    (Batch::new(&refs, cfg.padding, data.pad), terms)
                })
                .collect();
            let step_targets: usize = built.iter().map(|(b, _)| b.targets.len()).sum();
            let mut acc = Accumulated::new(&ids);
            let mut step_loss = 0.0;
            for (batch, terms) in &built {
                let device = model.device();
                let t = BatchTensors::new(batch, &device);
                let weight = batch.targets.len() as f64 / step_targets as f64;
                let terms = terms
                    .as_ref()
                    .map(|terms| TermTensors::new(terms, &label_first, &device));
                let (loss, grads) =
                    loss_and_gradients(&model, &t, terms.as_ref(), weight, recompute);
                step_loss += loss * weight;
                for g in grads {
                    acc.add(g);
                }
            }
            let (grads, grad_norm) = acc.finish(cfg.max_grad_norm);
            let lr = schedule.lr(at.step);
            model = optim.step(lr, model, grads);
            at.step += 1;
            at.steps_in_epoch += 1;
            let dt = t0.elapsed().as_secs_f64();
            let tokens: usize = built.iter().map(|(b, _)| b.real_tokens).sum();
            at.epoch_loss += step_loss * step_targets as f64;
            at.epoch_targets += step_targets;
            sink(&TrainEvent::Step {
                step: at.step,
                epoch,
                loss: step_loss,
                lr,
                grad_norm,
                step_time_s: dt,
                tokens,
                tokens_per_s: tokens as f64 / dt.max(1e-9),
                elapsed_s: elapsed(),
            });
            if control.is_stopped() {
                stopped_mid_epoch = true;
                break;
            }
        }
        let train_loss = at.epoch_loss / at.epoch_targets.max(1) as f64;
        if stopped_mid_epoch {
            // Resuming goes on from here; then keep the better of the best epoch so far and
            // where the run stands now.
            save(&take(&model, &optim, &at, &early, &best)?)?;
            if at.epoch_targets > 0 {
                evaluate_epoch(
                    &model, epoch, at.step, train_loss, &mut early, &mut best, sink,
                )?;
                at.epochs_done = epoch + 1;
            }
            reason = StopReason::Stopped;
            break 'epochs;
        }
        let verdict = evaluate_epoch(
            &model, epoch, at.step, train_loss, &mut early, &mut best, sink,
        )?;
        at = Progress {
            epoch: epoch + 1,
            steps_in_epoch: 0,
            epochs_done: epoch + 1,
            epoch_rng: rng.state(),
            epoch_loss: 0.0,
            epoch_targets: 0,
            early_stopped: verdict == Verdict::Stop,
            ..at
        };
        save(&take(&model, &optim, &at, &early, &best)?)?;
        if verdict == Verdict::Stop {
            reason = StopReason::EarlyStopped;
            break;
        }
        if control.is_stopped() {
            reason = StopReason::Stopped;
            break;
        }
    }

    let mut model = model.valid();
    let (best_epoch, best_val_loss, best_val_accuracy) = match &best {
        Some((snap, b)) => {
            restore(&mut model, snap);
            (Some(b.epoch), b.val_loss, b.val_accuracy)
        }
        None => (None, None, None),
    };
    let elapsed_s = elapsed();
    sink(&TrainEvent::Finished {
        reason,
        steps: at.step,
        epochs: at.epochs_done,
        best_epoch,
        best_val_loss,
        best_val_accuracy,
        elapsed_s,
    });
    Ok(TrainOutcome {
        model,
        reason,
        steps: at.step,
        epochs: at.epochs_done,
        best_epoch,
        best_val_loss,
        best_val_accuracy,
        elapsed_s,
    })
}

/// Each adapter's factors, parameter ids and dropout stream, as a checkpoint keeps them.
fn adapter_states(model: &Llama) -> anyhow::Result<Vec<AdapterState>> {
    lora::adapters(model)
        .iter()
        .map(|(_, _, lr)| {
            Ok(AdapterState {
                a_id: lr.a.id.val(),
                b_id: lr.b.id.val(),
                a: host_f32(lr.a.val())?,
                b: host_f32(lr.b.val())?,
                noise: lr.noise.state(),
            })
        })
        .collect()
}

/// Puts a checkpoint's adapters on `model` (fresh adapters of the same configuration attached):
/// their factors, the parameter ids the optimizer record is keyed by, and their dropout streams.
fn restore_adapters(model: &mut Llama, states: &[AdapterState]) -> anyhow::Result<()> {
    let n = lora::adapters(model).len();
    anyhow::ensure!(
        n == states.len(),
        "the checkpoint holds {} adapters, the run's configuration makes {n}",
        states.len()
    );
    let mut it = states.iter();
    for (layer, block) in model.layers.iter_mut().enumerate() {
        for t in lora::Target::ALL {
            let proj = lora::projection_mut(block, t);
            if let Some(lr) = proj.adapter.as_mut()
                && let Some(s) = it.next()
            {
                let device = lr.a.val().device();
                let (sa, sb) = (lr.a.shape(), lr.b.shape());
                anyhow::ensure!(
                    s.a.len() == sa.num_elements() && s.b.len() == sb.num_elements(),
                    "the checkpoint's adapter of layer {layer} {t} does not fit the model \
                     ({} and {} values for {sa:?} and {sb:?})",
                    s.a.len(),
                    s.b.len()
                );
                let param = |v: &[f32], shape, id: u64| {
                    let mut p = Param::from_tensor(Tensor::from_data(
                        TensorData::new(v.to_vec(), shape),
                        &device,
                    ));
                    p.id = ParamId::from(id);
                    p
                };
                lr.a = param(&s.a, sa, s.a_id);
                lr.b = param(&s.b, sb, s.b_id);
                lr.noise.set_state(s.noise);
            }
        }
    }
    Ok(())
}

/// Blocks while paused; returns `true` when a stop was requested.
fn wait_if_paused(control: &TrainControl, step: usize, sink: &mut dyn FnMut(&TrainEvent)) -> bool {
    if control.is_stopped() {
        return true;
    }
    if !control.is_paused() {
        return false;
    }
    sink(&TrainEvent::Paused { step });
    while control.is_paused() && !control.is_stopped() {
        std::thread::sleep(Duration::from_millis(50));
    }
    if control.is_stopped() {
        return true;
    }
    sink(&TrainEvent::Resumed { step });
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_waits_for_patience_and_ignores_tiny_gains() {
        let mut e = EarlyStopping::new(2, 0.01);
        assert_eq!(e.observe(0, 1.0), Verdict::Improved);
        assert_eq!(e.observe(1, 0.8), Verdict::Improved);
        assert_eq!(e.observe(2, 0.795), Verdict::Continue); // within min_delta
        assert_eq!(e.observe(3, 0.7), Verdict::Improved);
        assert_eq!(e.observe(4, 0.9), Verdict::Continue);
        assert_eq!(e.observe(5, 0.75), Verdict::Stop);
        assert_eq!(e.best, Some((3, 0.7)));
        let mut never = EarlyStopping::new(0, 0.0);
        never.observe(0, 1.0);
        assert!((1..20).all(|k| never.observe(k, 2.0) == Verdict::Continue));
        let mut nan = EarlyStopping::new(3, 0.0);
        assert_eq!(nan.observe(0, f64::NAN), Verdict::Continue);
    }

    #[test]
    fn steps_per_epoch_rounds_batches_and_accumulation_up() {
        let cfg = TrainConfig {
            batch_size: 8,
            grad_accum: 2,
            ..TrainConfig::default()
        };
        assert_eq!(cfg.steps_per_epoch(8), 1);
        assert_eq!(cfg.steps_per_epoch(17), 2);
        assert_eq!(cfg.steps_per_epoch(33), 3);
        assert!(TrainConfig::default().validate().is_ok());
        let bad = TrainConfig {
            val_fraction: 1.0,
            ..TrainConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("validation"));
    }
}
