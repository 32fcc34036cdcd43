//! The worker thread: loads the model once, then runs commands in order.

use std::sync::{Arc, Mutex, mpsc};

use super::event::{Event, JobKind, ModelEvent};
use super::judge::{Judges, Resolved};
use super::{
    Command, EngineConfig, JobControl, Sink, annotate_job, eval_job, generate_job, predict_job,
    train_job,
};
use crate::data::workspace::Workspace;
use crate::llm::device;
use crate::llm::fetch;
use crate::llm::load::{self, LoadedModel};

/// The model and the label of the device it is on.
fn load_model(config: &EngineConfig, events: &Sink) -> Result<(LoadedModel, String), String> {
    let path = fetch::resolve(config.model.as_deref(), &mut |e| {
        events.send(Event::Model(ModelEvent::Fetching(e)));
    })
    .map_err(|e| e.to_string())?;
    let mut selected = device::select(config.device);
    if config.weights.is_quantized() {
        // The status bar shows the label: a quantized model says so there.
        selected.label = format!("{}, weights {}", selected.label, config.weights);
    }
    events.send(Event::Model(ModelEvent::Loading {
        path: path.display().to_string(),
        device: selected.label.clone(),
    }));
    let loaded =
        load::load_as(&path, &selected.device, config.weights).map_err(|e| e.to_string())?;
    events.send(Event::Model(ModelEvent::Ready {
        device: selected.label.clone(),
        name: loaded
            .info
            .name
            .clone()
            .unwrap_or_else(|| path.display().to_string()),
        seconds: loaded.load_seconds,
    }));
    Ok((loaded, selected.label))
}

/// What a caught panic says (its `&str` or `String` payload).
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `load`, turning a panic into an error: uncaught, it would end the worker thread
/// silently (the panic hook keeps other threads off the screen) and leave the status bar on
/// "Loading" for good, with every job refused without a reason.
fn load_guarded<T>(load: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)).unwrap_or_else(|panic| {
        Err(format!(
            "internal error while loading the model: {}",
            panic_text(&*panic)
        ))
    })
}

type Loader = fn(&EngineConfig, &Sink) -> Result<(LoadedModel, String), String>;

pub(super) fn run(
    config: EngineConfig,
    ws: Arc<Mutex<Workspace>>,
    commands: mpsc::Receiver<Command>,
    control: Arc<JobControl>,
    events: Sink,
) {
    run_with(load_model, config, ws, commands, control, events)
}

/// [`run`] with the model loaded by `loader` (a test passes one that panics).
fn run_with(
    loader: Loader,
    config: EngineConfig,
    ws: Arc<Mutex<Workspace>>,
    commands: mpsc::Receiver<Command>,
    control: Arc<JobControl>,
    events: Sink,
) {
    let model = load_guarded(|| loader(&config, &events));
    if let Err(e) = &model {
        events.send(Event::Model(ModelEvent::Failed(e.clone())));
    }
    let mut next_job = 1;
    // The label check's judge, kept while the seeds and its settings stay the same.
    let mut judges: Option<Resolved> = None;
    while let Ok(command) = commands.recv() {
        let job = next_job;
        next_job += 1;
        control.reset();
        let kind = match &command {
            Command::Shutdown => return,
            Command::Generate { .. } => JobKind::Generate,
            Command::Recheck { .. } => JobKind::Recheck,
            Command::Train(_) | Command::ResumeTrain { .. } => JobKind::Train,
            Command::Evaluate(_) => JobKind::Evaluate,
            Command::Annotate(_) => JobKind::Annotate,
            Command::Predict(_) => JobKind::Predict,
            Command::Distil(_) => JobKind::Distil,
        };
        let (model, device) = match &model {
            Ok((m, d)) => (m, d.as_str()),
            Err(e) => {
                events.send(Event::JobFailed {
                    job,
                    kind,
                    error: format!("the model is not loaded: {e}"),
                });
                continue;
            }
        };
        // A bug in a job must not take the worker (and the UI's model) down with it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match command {
            // Handled above, before any job starts.
            Command::Shutdown => Ok((false, String::new())),
            // Said once for the job rather than as a malformed item per request (the decoder
            // still refuses any single prompt that, with max tokens, overflows the context).
            Command::Generate { settings, .. }
                if settings.sampling.max_new_tokens >= model.model.max_positions() =>
            {
                Err(anyhow::anyhow!(
                    "max tokens ({}) does not fit the model's context of {} tokens, which must \
                     hold the prompt too; lower max tokens on the Generate screen",
                    settings.sampling.max_new_tokens,
                    model.model.max_positions()
                ))
            }
            Command::Generate {
                settings,
                filters,
                adapter,
            } => generate_job::run(
                job,
                model,
                &ws,
                &generate_job::Request {
                    settings: &settings,
                    filters: &filters,
                    adapter: adapter.as_deref(),
                },
                &control,
                &events,
                &mut Judges {
                    cache: &mut judges,
                    device,
                },
            )
            .map(|o| (o.cancelled, o.summary())),
            Command::Recheck { items, filters } => generate_job::recheck(
                job,
                model,
                &ws,
                &items,
                &filters,
                &events,
                &mut Judges {
                    cache: &mut judges,
                    device,
                },
            )
            .map(|n| (false, format!("{n} items checked again"))),
            Command::Train(request) => {
                train_job::run(job, model, device, &ws, &request, &control, &events)
                    .map(|o| (o.cancelled, o.summary))
            }
            Command::ResumeTrain { run } => train_job::resume(job, model, &run, &control, &events)
                .map(|o| (o.cancelled, o.summary)),
            Command::Evaluate(request) => {
                eval_job::run(job, model, &ws, &request, &control, &events)
                    .map(|o| (o.cancelled, o.summary))
            }
            Command::Predict(request) => {
                predict_job::run(job, model, &ws, &request, &control, &events)
                    .map(|o| (o.cancelled, o.summary))
            }
            Command::Distil(request) => {
                super::distil_job::run(job, model, &ws, &request, &control, &events)
                    .map(|o| (o.cancelled, o.summary))
            }
            Command::Annotate(request) => annotate_job::run(
                job,
                model,
                &ws,
                &request,
                &control,
                &events,
                &mut Judges {
                    cache: &mut judges,
                    device,
                },
            )
            .map(|o| {
                (
                    o.cancelled,
                    format!("{} texts labelled, {} kept by the filters", o.items, o.kept),
                )
            }),
        }))
        .unwrap_or_else(|panic| {
            Err(anyhow::anyhow!(
                "internal error in the {} job: {}",
                kind.name(),
                panic_text(&*panic)
            ))
        });
        events.send(match result {
            Ok((true, summary)) => Event::JobCancelled { job, kind, summary },
            Ok((false, summary)) => Event::JobFinished { job, kind, summary },
            Err(e) => Event::JobFailed {
                job,
                kind,
                error: format!("{e:#}"),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::item::ItemId;
    use crate::data::task::Task;
    use crate::pipeline::filters::FilterSettings;

    fn panicking_loader(_: &EngineConfig, _: &Sink) -> Result<(LoadedModel, String), String> {
        panic!("tensor shape mismatch in blk.0");
    }

    #[test]
    fn a_panic_while_loading_is_reported_as_the_models_failure_and_jobs_say_why() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::create(&tmp.path().join("ws"), &Task::demo(), &[]).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (commands, inbox) = mpsc::channel();
        commands
            .send(Command::Recheck {
                items: vec![ItemId("g-000001".into())],
                filters: FilterSettings::default(),
            })
            .unwrap();
        commands.send(Command::Shutdown).unwrap();
        // Returns (does not unwind) although the loader panics.
        run_with(
            panicking_loader,
            EngineConfig::default(),
            Arc::new(Mutex::new(ws)),
            inbox,
            Arc::new(JobControl::default()),
            Sink::new(tx),
        );
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        match events.as_slice() {
            [
                Event::Model(ModelEvent::Failed(model)),
                Event::JobFailed { kind, error, .. },
            ] => {
                assert!(
                    model.contains("internal error while loading the model")
                        && model.contains("tensor shape mismatch in blk.0"),
                    "{model}"
                );
                assert_eq!(*kind, JobKind::Recheck);
                assert!(error.contains("tensor shape mismatch"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }
}
