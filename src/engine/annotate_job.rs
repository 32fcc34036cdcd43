//! The annotate job: the model labels the texts of a file the user already has, a batch at a
//! time; each labelled text goes into the journal as an `annotated` item with its verdicts (the
//! cheap filters, then the confidence of its label) before the UI hears of it, so it joins the
//! same review and rejected views as generated items while the job runs.

use std::sync::Mutex;
use std::time::Instant;

use super::command::AnnotateRequest;
use super::event::{Event, JobId, JobKind};
use super::generate_job::{primed_filters, task_of};
use super::judge::{Judges, judge as resolve_judge};
use super::{JobControl, Sink};
use crate::data::import::import_file;
use crate::data::workspace::Workspace;
use crate::llm::load::LoadedModel;
use crate::pipeline::annotate::judge;
use crate::pipeline::classify::Classifier;
use crate::pipeline::filters::stages::consistency_classifier;
use crate::pipeline::prompt::Templates;
use crate::train::peft::with_adapter;

/// Texts labelled together: big enough to batch, small enough for the UI to see progress.
const BATCH: usize = 16;

pub struct Outcome {
    pub items: usize,
    pub kept: usize,
    pub cancelled: bool,
}

pub fn run(
    job: JobId,
    model: &LoadedModel,
    ws: &Mutex<Workspace>,
    request: &AnnotateRequest,
    control: &JobControl,
    events: &Sink,
    judges: &mut Judges,
) -> anyhow::Result<Outcome> {
    let mut opts = request.read.clone();
    opts.unlabelled = true;
    let mut imported = import_file(&request.input, &opts)?;
    if let Some(n) = request.limit {
        imported.rows.truncate(n);
    }
    for p in &imported.problems {
        events.send(Event::Log(p.to_string()));
    }
    anyhow::ensure!(
        !imported.rows.is_empty(),
        "{}: no text to label",
        request.input.display()
    );
    let task = task_of(ws);
    let templates = Templates::for_task(&task)?;
    // A classifier adapter labels zero-shot, as it was trained; otherwise the label check's
    // judge labels (the same one generation is checked with): a judging server when the
    // filters name one (connected, its model checked, before anything is labelled), else the
    // model here.
    // Read as predict and the Evaluate screen read the run (`eval::reading`).
    let adapted = match request.adapter.as_deref() {
        Some(dir) => Some((
            with_adapter(&model.model, dir)?,
            crate::eval::reading::options_for_run(dir)?,
        )),
        None => None,
    };
    let remote = match (&adapted, &request.filters.remote_judge) {
        (None, Some(r)) => Some(crate::llm::remote::Remote::connect((**r).clone())?),
        _ => None,
    };
    if let Some(r) = &remote {
        events.send(Event::JudgeChosen {
            job,
            summary: super::generate_job::remote_summary(r, &request.filters),
        });
    }
    let resolved = match (&adapted, &remote) {
        (Some(_), _) | (None, Some(_)) => None,
        (None, None) => Some(resolve_judge(
            judges,
            job,
            model,
            &task,
            &templates,
            &request.filters,
            events,
        )?),
    };
    let (options, labeller) = match (&adapted, resolved) {
        (Some((a, options)), _) => (options.clone(), a),
        (None, Some(r)) => (
            consistency_classifier(&task, &r.settings(&request.filters)),
            r.model(model),
        ),
        (None, None) => (
            consistency_classifier(&task, &request.filters),
            &model.model,
        ),
    };
    let classifier = match &remote {
        Some(r) => Classifier::remote(r, &task, &templates, options)?,
        None => Classifier::new(labeller, &model.tokenizer, &task, &templates, options)?,
    };
    let mut cheap = primed_filters(ws, &task, request.filters.clone());

    let total = imported.rows.len();
    events.send(Event::JobStarted {
        job,
        kind: JobKind::Annotate,
        total,
    });
    let started = Instant::now();
    let (mut items, mut kept) = (0usize, 0usize);
    for chunk in imported.rows.chunks(BATCH) {
        control.wait_while_paused();
        if control.is_stopped() {
            break;
        }
        let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
        let predictions = classifier.classify(&texts)?;
        for (row, p) in chunk.iter().zip(predictions) {
            // Named by where it came from, so a later duplicate points at the file's line.
            let input = format!("{}:{}", request.input.display(), row.line);
            let a = judge(&mut cheap, &input, &row.text, p, request.min_confidence);
            let verdicts: Vec<(String, bool)> = a
                .verdicts
                .iter()
                .map(|v| (v.stage.clone(), v.pass))
                .collect();
            // One write: killed between two, the item would reach Review with no verdict.
            let id = ws
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_item_with_verdicts(a.to_item(input), a.verdicts)?;
            items += 1;
            kept += usize::from(a.kept);
            events.send(Event::ItemAdded {
                job,
                index: items as u64 - 1,
                item: id.clone(),
            });
            for (stage, pass) in verdicts {
                events.send(Event::Verdict {
                    item: id.clone(),
                    stage,
                    pass,
                });
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let rate = items as f64 / elapsed.max(1e-9);
        events.send(Event::Progress {
            job,
            done: items,
            total,
            // Texts per second: the job reads, it does not write tokens.
            tokens_per_second: rate,
            eta_seconds: Some((total - items) as f64 / rate.max(1e-9)),
        });
    }
    Ok(Outcome {
        items,
        kept,
        cancelled: control.is_stopped(),
    })
}
