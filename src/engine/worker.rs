//! The worker thread: loads the model once, then runs commands in order.

use std::sync::{Arc, Mutex, mpsc};

use super::event::{Event, JobKind, ModelEvent};
use super::{
    Command, EngineConfig, JobControl, Sink, annotate_job, eval_job, generate_job, train_job,
};
use crate::data::workspace::Workspace;
use crate::llm::device;
use crate::llm::fetch;
use crate::llm::load::{self, LoadedModel};

/// The model and the label of the device it is on.
fn load_model(config: &EngineConfig, events: &Sink) -> Result<(LoadedModel, String), String> {
    let path = match &config.model {
        Some(p) => p.clone(),
        None => match std::env::var_os("SEEDFORGE_MODEL") {
            Some(p) => p.into(),
            None => fetch::ensure_default_model(&mut |e| {
                events.send(Event::Model(ModelEvent::Fetching(e)));
            })
            .map_err(|e| e.to_string())?,
        },
    };
    let selected = device::select(config.device);
    events.send(Event::Model(ModelEvent::Loading {
        path: path.display().to_string(),
        device: selected.label.clone(),
    }));
    let loaded = load::load(&path, &selected.device).map_err(|e| e.to_string())?;
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

pub(super) fn run(
    config: EngineConfig,
    ws: Arc<Mutex<Workspace>>,
    commands: mpsc::Receiver<Command>,
    control: Arc<JobControl>,
    events: Sink,
) {
    let model = load_model(&config, &events);
    if let Err(e) = &model {
        events.send(Event::Model(ModelEvent::Failed(e.clone())));
    }
    let mut next_job = 1;
    while let Ok(command) = commands.recv() {
        let job = next_job;
        next_job += 1;
        control.reset();
        let kind = match &command {
            Command::Shutdown => return,
            Command::Generate { .. } => JobKind::Generate,
            Command::Recheck { .. } => JobKind::Recheck,
            Command::Train(_) => JobKind::Train,
            Command::Evaluate(_) => JobKind::Evaluate,
            Command::Annotate(_) => JobKind::Annotate,
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
            )
            .map(|o| {
                (
                    o.cancelled,
                    format!("{} items written, {} kept by the filters", o.items, o.kept),
                )
            }),
            Command::Recheck { items, filters } => {
                generate_job::recheck(job, model, &ws, &items, &filters, &events)
                    .map(|n| (false, format!("{n} items checked again")))
            }
            Command::Train(request) => {
                train_job::run(job, model, device, &ws, &request, &control, &events)
                    .map(|o| (o.cancelled, o.summary))
            }
            Command::Evaluate(request) => {
                eval_job::run(job, model, &ws, &request, &control, &events)
                    .map(|o| (o.cancelled, o.summary))
            }
            Command::Annotate(request) => {
                annotate_job::run(job, model, &ws, &request, &control, &events).map(|o| {
                    (
                        o.cancelled,
                        format!("{} texts labelled, {} kept by the filters", o.items, o.kept),
                    )
                })
            }
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(anyhow::anyhow!(
                "internal error in the {} job: {what}",
                kind.name()
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
