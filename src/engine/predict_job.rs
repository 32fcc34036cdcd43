//! The labelling job: a file of unlabelled texts labelled by one classifier (a LoRA run, read as
//! `eval::reading` says; in-context learning with the seeds; or zero-shot) into a result file,
//! with progress. The workbench's Evaluate screen starts it; `seedforge predict` builds its
//! classifier with the same [`classifier_options`].
//!
//! Bad rows (file, line, reason) go up as log lines and are skipped; the result is written to
//! `<out>.part` and renamed when every row is labelled, so a stopped job leaves no half file
//! under the result's name.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;

use super::eval_job::Target;
use super::event::{Event, JobId, JobKind};
use super::generate_job::task_of;
use super::{JobControl, Sink};
use crate::data::import::Problem;
use crate::data::task::Task;
use crate::data::workspace::Workspace;
use crate::llm::load::LoadedModel;
use crate::pipeline::classify::{Classifier, ClassifierOptions, interleave_by_label};
use crate::pipeline::predict::{self, BadRows, Fit, OutFormat, ReadOptions, RowWriter};
use crate::pipeline::prompt::Templates;
use crate::train::peft;

/// Problems sent one by one before the rest are only counted.
const SHOWN_PROBLEMS: usize = 10;
/// Rows scored together in the workbench (the stop key is answered between calls).
const BATCH: usize = 8;

#[derive(Debug, Clone)]
pub struct PredictRequest {
    /// The texts (plain text, TSV, CSV or JSONL).
    pub input: PathBuf,
    /// Where the answers go (JSONL, CSV or TSV by extension).
    pub out: PathBuf,
    pub classifier: Target,
    /// Contextual calibration for in-context learning and zero-shot (a LoRA run is read its own
    /// way).
    pub calibrate: bool,
}

/// The classifier options for `target`: a LoRA run's own reading (`eval::reading`, the one
/// place that decides it), or the seeds as demonstrations (labels alternating, as `eval` does)
/// for in-context learning, nothing for zero-shot.
pub fn classifier_options(
    target: &Target,
    task: &Task,
    calibrate: bool,
    batch: usize,
) -> anyhow::Result<ClassifierOptions> {
    let mut options = match target {
        Target::Lora(run) => crate::eval::reading::options_for_run(run)?,
        Target::Icl => ClassifierOptions {
            demos: interleave_by_label(&task.seeds, &task.labels),
            calibrate,
            ..ClassifierOptions::default()
        },
        Target::ZeroShot => ClassifierOptions {
            calibrate,
            ..ClassifierOptions::default()
        },
    };
    options.batch = batch.max(1);
    Ok(options)
}

pub use super::job::Outcome;

fn log_problems(problems: &[Problem], events: &Sink) {
    for p in problems.iter().take(SHOWN_PROBLEMS) {
        events.send(Event::Log(format!("warning: {p}")));
    }
    if problems.len() > SHOWN_PROBLEMS {
        events.send(Event::Log(format!(
            "warning: {} more bad rows skipped",
            problems.len() - SHOWN_PROBLEMS
        )));
    }
}

/// `<out>.part`, where the result is written until it is complete.
fn part_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    out.with_file_name(name)
}

pub fn run(
    job: JobId,
    model: &LoadedModel,
    ws: &Mutex<Workspace>,
    request: &PredictRequest,
    control: &JobControl,
    events: &Sink,
) -> anyhow::Result<Outcome> {
    let task = task_of(ws);
    let input = &request.input;
    let format = OutFormat::choose(None, Some(&request.out)).map_err(anyhow::Error::msg)?;
    if let Target::Icl = request.classifier {
        anyhow::ensure!(
            !task.seeds.is_empty(),
            "in-context learning needs seeds as demonstrations; add some on the Seeds screen"
        );
    }
    let bytes = std::fs::read(input)
        .with_context(|| format!("cannot read the file to label {}", input.display()))?;
    let read = predict::input::read_bytes(
        input,
        &bytes,
        &ReadOptions {
            task_field: Some(task.input_field.clone()),
            bad_rows: BadRows::Skip,
            ..ReadOptions::default()
        },
    )?;
    log_problems(&read.problems, events);
    let adapted;
    let m = match &request.classifier {
        Target::Lora(dir) => {
            adapted = peft::with_adapter(&model.model, dir)
                .with_context(|| format!("loading the adapter of {}", dir.display()))?;
            &adapted
        }
        _ => &model.model,
    };
    let templates = Templates::for_task(&task)?;
    let classifier = Classifier::new(
        m,
        &model.tokenizer,
        &task,
        &templates,
        classifier_options(&request.classifier, &task, request.calibrate, BATCH)?,
    )?;
    let fit = Fit::new(&classifier, &model.tokenizer, m.max_positions())?;
    let (inputs, long) = fit.split(input, read.inputs)?;
    log_problems(&long, events);
    let skipped = read.problems.len() + long.len();
    anyhow::ensure!(
        !inputs.is_empty(),
        "{}: no text to label ({} bad rows skipped{})",
        input.display(),
        skipped,
        read.problems
            .first()
            .or(long.first())
            .map(|p| format!("; the first: {p}"))
            .unwrap_or_default()
    );
    let total = inputs.len();
    events.send(Event::JobStarted {
        job,
        kind: JobKind::Predict,
        total,
    });
    if let Some(dir) = request.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let part = part_path(&request.out);
    let file =
        std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
    let labels: Vec<String> = task.label_names().into_iter().map(String::from).collect();
    let mut writer = RowWriter::new(BufWriter::new(file), format, labels, false, true, false);
    let started = Instant::now();
    let mut done = 0;
    let finished = predict::label_all(
        &predict::with_classifier(&classifier),
        &inputs,
        BATCH,
        &mut |rows, preds| {
            for (r, p) in rows.iter().zip(&preds) {
                writer
                    .write(&predict::out_row(r, p))
                    .with_context(|| format!("writing {}", part.display()))?;
            }
            done += rows.len();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            events.send(Event::Progress {
                job,
                done,
                total,
                tokens_per_second: done as f64 / secs,
                eta_seconds: Some(secs / done as f64 * total.saturating_sub(done) as f64),
            });
            control.wait_while_paused();
            Ok(())
        },
        &|| control.is_stopped(),
    );
    let finished = match finished {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    writer
        .finish()
        .with_context(|| format!("writing {}", part.display()))?;
    if !finished {
        let _ = std::fs::remove_file(&part);
        return Ok(Outcome {
            cancelled: true,
            summary: format!("{done} of {total} texts labelled; nothing saved"),
        });
    }
    std::fs::rename(&part, &request.out)
        .with_context(|| format!("renaming {} to {}", part.display(), request.out.display()))?;
    let mut summary = format!(
        "{total} texts of {} labelled into {} ({:.1} texts/s)",
        input.display(),
        request.out.display(),
        total as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    if skipped > 0 {
        summary.push_str(&format!("; {skipped} bad rows skipped"));
    }
    Ok(Outcome {
        cancelled: false,
        summary,
    })
}
