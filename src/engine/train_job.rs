//! The training job: a LoRA run on the workspace's seeds (validation is drawn from them) and,
//! unless asked for the seeds-only baseline, its accepted items, in a new run folder. Every
//! trainer event goes up as [`Event::Train`], the same typed event `metrics.jsonl` holds, so
//! the live chart and a run read back from disk are drawn by the same code.
//!
//! The run trains a clone of the engine's model: Burn modules share their tensors, so the clone
//! costs nothing, and the adapter is attached to the clone only — the model the engine keeps
//! generating with is left as it was.

use std::path::Path;
use std::sync::Mutex;

use super::event::{Event, JobId, JobKind};
use super::{JobControl, Sink, TrainRequest};
use crate::data::item::Source;
use crate::data::state::Status;
use crate::data::task::Example;
use crate::data::workspace::Workspace;
use crate::llm::load::LoadedModel;
use crate::pipeline::prompt::Templates;
use crate::train::metrics::StopReason;
use crate::train::metrics::TrainEvent;
use crate::train::run::{RunResult, RunSpec, resume_run, train_run};

/// The run folder's name after the time: which data trained it, so the comparison can tell the
/// seeds-only baseline from the method at a glance.
pub fn run_kind(with_accepted: bool) -> &'static str {
    if with_accepted {
        "train-accepted"
    } else {
        "train-seeds"
    }
}

pub use super::job::Outcome;

pub fn run(
    job: JobId,
    model: &LoadedModel,
    device: &str,
    ws: &Mutex<Workspace>,
    request: &TrainRequest,
    control: &JobControl,
    events: &Sink,
) -> anyhow::Result<Outcome> {
    request.config.validate().map_err(anyhow::Error::msg)?;
    let (task, extra, generated_extra, out) = {
        let w = ws.lock().unwrap_or_else(|e| e.into_inner());
        let mut task = w.task().clone();
        task.seeds = w.seeds().to_vec();
        let accepted: Vec<(Example, bool)> = if request.with_accepted {
            w.state()
                .with_status(Status::Accepted)
                .map(|it| {
                    let example = Example {
                        text: it.text().to_string(),
                        label: it.label().to_string(),
                    };
                    (example, it.source() == Source::Generated)
                })
                .collect()
        } else {
            Vec::new()
        };
        let generated = accepted.iter().filter(|(_, g)| *g).count();
        let extra: Vec<Example> = accepted.into_iter().map(|(e, _)| e).collect();
        anyhow::ensure!(
            !task.seeds.is_empty() || !extra.is_empty(),
            "nothing to train on: the workspace has no seeds{}",
            if request.with_accepted {
                " and no accepted items"
            } else {
                " (add some on the Seeds screen)"
            }
        );
        let out = w.new_run_dir(run_kind(request.with_accepted))?;
        (task, extra, generated, out)
    };
    events.send(Event::JobStarted {
        job,
        kind: JobKind::Train,
        total: 0,
    });
    let templates = Templates::for_task(&task)?;
    let extra_sources = if request.with_accepted {
        vec![format!("workspace ({} accepted)", extra.len())]
    } else {
        Vec::new()
    };
    let model_path = model.info.path.display().to_string();
    let spec = RunSpec {
        task: &task,
        templates: &templates,
        real: &task.seeds,
        extra: &extra,
        // A user may have relabelled an accepted item: its judge's distribution would then
        // contradict the label they chose, so the workbench trains on labels.
        extra_soft: &[],
        extra_sources,
        generated_extra,
        start_from: None,
        config: &request.config,
        out: &out,
        model_path: &model_path,
        device,
    };
    let result = train(job, model, &spec, control, events)?;
    let data = if request.with_accepted {
        format!("seeds + {} accepted", extra.len())
    } else {
        "seeds only".into()
    };
    let first = outcome(&result, &data);
    if !(request.with_accepted && request.then_seeds) || first.cancelled {
        return Ok(first);
    }
    // Staged: the run's adapter trains on, on the seeds alone, in a run folder of its own (so
    // both are evaluated and compared with the seeds-only twin).
    let out = ws
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .new_run_dir(STAGED_KIND)?;
    events.send(Event::Log(format!(
        "staged: {} trains on, on the seeds alone, into {}",
        result.out.display(),
        out.display()
    )));
    let spec = RunSpec {
        extra: &[],
        extra_sources: vec![format!("continued from {}", result.out.display())],
        generated_extra: 0,
        start_from: Some(&result.out),
        out: &out,
        ..spec
    };
    let second = train(job, model, &spec, control, events)?;
    let then = outcome(&second, "the seeds, on from it");
    Ok(Outcome {
        cancelled: then.cancelled,
        summary: format!("{}; then {}", first.summary, then.summary),
    })
}

/// One training run as every path runs it — the workbench's job, `seedforge train` and each arm
/// of the experiment: a clone of the loaded model trained as `spec` says, every trainer event
/// sent up as [`Event::Train`]. What differs between the paths is only where `spec`'s data
/// comes from and who shows the events.
pub fn train(
    job: JobId,
    model: &LoadedModel,
    spec: &RunSpec,
    control: &JobControl,
    events: &Sink,
) -> anyhow::Result<RunResult> {
    let weights = model.model.weight_mode();
    if weights.is_quantized() {
        let held = match weights {
            crate::llm::quant::WeightMode::F16 => "f16".to_string(),
            _ => format!("{weights} blocks"),
        };
        events.send(Event::Log(format!(
            "QLoRA: the frozen base stays in {held}, the adapters train in f32"
        )));
    }
    if spec.config.recomputes(weights) {
        events.send(Event::Log(
            "each layer's forward pass is recomputed in the backward pass: one layer's \
             activations in memory at a time, a step about 40% longer (--recompute off)"
                .to_string(),
        ));
    }
    let result = train_run(
        model.model.clone(),
        &model.tokenizer,
        spec,
        control,
        &mut forward(job, events),
    );
    result.inspect_err(|_| {
        // A run that failed before writing anything (its prompt template, say) would leave an
        // empty folder in the runs list; `remove_dir` takes only an empty one, so a run's
        // config and metrics, once written, stay for the user to read.
        let _ = std::fs::remove_dir(spec.out);
    })
}

/// The run folder kind of a staged run's second stage.
pub const STAGED_KIND: &str = "train-staged";

/// Every trainer event up as [`Event::Train`].
fn forward(job: JobId, events: &Sink) -> impl FnMut(&TrainEvent) + '_ {
    move |e| {
        events.send(Event::Train {
            job,
            event: e.clone(),
        })
    }
}

fn outcome(result: &RunResult, data: &str) -> Outcome {
    let o = &result.outcome;
    let name = super::job::folder_name(&result.out);
    let kept = match (o.best_epoch, o.best_val_accuracy) {
        (Some(e), Some(a)) => format!("kept epoch {} (val accuracy {:.1}%)", e + 1, a * 100.0),
        (Some(e), None) => format!("kept epoch {}", e + 1),
        _ => "kept the last adapter".into(),
    };
    Outcome {
        cancelled: o.reason == StopReason::Stopped,
        summary: format!(
            "{} steps, {} epochs on {} ({} examples), {kept}; adapter in runs/{name}",
            o.steps, o.epochs, data, result.train_examples
        ),
    }
}

/// Goes on with the stopped or interrupted run in `run` from its checkpoint, on a clone of the
/// engine's model (which must be the one the run was trained on). The earlier events of the run
/// come up first, so the live chart continues where the run left off.
pub fn resume(
    job: JobId,
    model: &LoadedModel,
    run: &Path,
    control: &JobControl,
    events: &Sink,
) -> anyhow::Result<Outcome> {
    events.send(Event::JobStarted {
        job,
        kind: JobKind::Train,
        total: 0,
    });
    let model_path = model.info.path.display().to_string();
    let result = resume_run(
        model.model.clone(),
        &model_path,
        run,
        control,
        &mut forward(job, events),
    )?;
    let data = match crate::train::run::read_trained_on(run)? {
        Some(t) if t.extra_examples > 0 => format!("seeds + {} extra", t.extra_examples),
        Some(_) => "seeds only".into(),
        None => "the recorded data".into(),
    };
    Ok(outcome(&result, &format!("{data}, resumed")))
}
