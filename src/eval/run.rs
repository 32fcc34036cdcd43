//! Evaluating a method on a labelled test set: zero-shot, in-context learning with the seeds,
//! or the model with a LoRA adapter (zero-shot prompt, as it was trained). One function serves
//! the `eval` command, the workbench and the experiment.

use std::path::Path;
use std::time::Instant;

use super::metrics::Metrics;
use super::report::{EvalReport, Method, RowPrediction};
use crate::data::import::Row;
use crate::data::task::Task;
use crate::llm::model::Llama;
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::classify::{Classifier, ClassifierOptions, Prediction, interleave_by_label};
use crate::pipeline::prompt::Templates;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub method: Method,
    /// Contextual calibration of the label scores.
    pub calibrate: bool,
    /// The share of the content-free prior calibration divides by (1: all of it).
    pub calibration_strength: f64,
    /// ICL: alternate the demonstrations' labels (otherwise the task's order).
    pub interleave: bool,
    pub batch: usize,
}

impl EvalOptions {
    pub fn new(method: Method) -> Self {
        EvalOptions {
            method,
            calibrate: false,
            calibration_strength: 1.0,
            interleave: true,
            batch: 16,
        }
    }
}

/// Classifies every row of `test` with `model` (which carries the adapter for LoRA) and scores
/// the predictions; rows whose label is not one of the task's are left out of the metrics.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &Llama,
    tokenizer: &TextTokenizer,
    task: &Task,
    templates: &Templates,
    test: &[Row],
    test_file: &Path,
    options: &EvalOptions,
    model_name: &str,
    adapter: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<EvalReport> {
    let never = || false;
    evaluate_until(
        model, tokenizer, task, templates, test, test_file, options, model_name, adapter, progress,
        &never,
    )?
    .ok_or_else(|| anyhow::anyhow!("the evaluation was stopped"))
}

/// [`evaluate`], asking `stop` between chunks of rows: `None` when it said to stop (the
/// workbench's stop key; a half-scored test set is no result).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_until(
    model: &Llama,
    tokenizer: &TextTokenizer,
    task: &Task,
    templates: &Templates,
    test: &[Row],
    test_file: &Path,
    options: &EvalOptions,
    model_name: &str,
    adapter: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<Option<EvalReport>> {
    let started = Instant::now();
    let demos = match options.method {
        Method::Icl if options.interleave => interleave_by_label(&task.seeds, &task.labels),
        Method::Icl => task.seeds.clone(),
        Method::ZeroShot | Method::Lora | Method::Student => Vec::new(),
    };
    let shots = demos.len();
    let classifier = Classifier::new(
        model,
        tokenizer,
        task,
        templates,
        ClassifierOptions {
            demos,
            instruction: None,
            calibrate: options.calibrate,
            calibration_strength: options.calibration_strength,
            batch: options.batch.max(1),
        },
    )?;
    let scored = score_rows(
        test,
        chunk_size(options.batch),
        &mut |t| Ok(classifier.classify(t)?),
        progress,
        stop,
    )?;
    let Some((pairs, rows_out)) = scored else {
        return Ok(None);
    };
    let labels: Vec<String> = task.label_names().into_iter().map(str::to_string).collect();
    let metrics = Metrics::compute(&labels, pairs.iter().map(|(g, p)| (g.as_str(), p.as_str())));
    Ok(Some(EvalReport {
        method: options.method,
        task: task.name.clone(),
        test_file: test_file.to_path_buf(),
        shots,
        calibrated: options.calibrate,
        calibration_strength: options.calibrate.then_some(options.calibration_strength),
        adapter: adapter.map(Path::to_path_buf),
        model: model_name.to_string(),
        metrics,
        seconds: started.elapsed().as_secs_f64(),
        finished_at: crate::data::time::now_rfc3339(),
        correct: pairs.iter().map(|(g, p)| g == p).collect(),
        content_free_prior: Some(classifier.content_free_prior()?),
        rows: rows_out,
    }))
}

/// Rows scored per call: chunks keep the progress callback live on large test sets.
fn chunk_size(batch: usize) -> usize {
    (batch.max(1) * 4).max(16)
}

/// What [`score_rows`] asks to label a chunk of texts.
pub type Labeller<'a> = dyn FnMut(&[&str]) -> anyhow::Result<Vec<Prediction>> + 'a;

/// Each row's (gold, predicted) pair and saved prediction: `None` when `stop` said to stop.
type Scored = Option<(Vec<(String, String)>, Vec<RowPrediction>)>;

/// Labels every row of `test` with `label`, in chunks, asking `stop` before each.
fn score_rows(
    test: &[Row],
    chunk: usize,
    label: &mut Labeller,
    progress: &mut dyn FnMut(usize, usize),
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<Scored> {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(test.len());
    let mut rows_out = Vec::with_capacity(test.len());
    for (i, rows) in test.chunks(chunk).enumerate() {
        if stop() {
            return Ok(None);
        }
        let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
        let preds = label(&texts)?;
        anyhow::ensure!(
            preds.len() == rows.len(),
            "the classifier answered {} of {} rows",
            preds.len(),
            rows.len()
        );
        for (r, p) in rows.iter().zip(preds) {
            pairs.push((r.label.clone(), p.label.clone()));
            rows_out.push(RowPrediction {
                line: r.line,
                text: r.text.clone(),
                gold: r.label.clone(),
                predicted: p.label,
                probs: p.probs.into_iter().map(|(_, x)| x).collect(),
                log_likelihoods: p.log_likelihoods,
            });
        }
        progress(((i + 1) * chunk).min(test.len()), test.len());
    }
    Ok(Some((pairs, rows_out)))
}

/// Evaluates the student in `run` on `test`, as [`evaluate`] does a language-model classifier.
pub fn evaluate_student(
    student: &crate::student::Student,
    task: &Task,
    test: &[Row],
    test_file: &Path,
    run: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<EvalReport> {
    let started = Instant::now();
    let never = || false;
    let (pairs, rows) = score_rows(
        test,
        chunk_size(256),
        &mut |t| student.classify(t),
        progress,
        &never,
    )?
    .ok_or_else(|| anyhow::anyhow!("the evaluation was stopped"))?;
    let labels: Vec<String> = task.label_names().into_iter().map(str::to_string).collect();
    let metrics = Metrics::compute(&labels, pairs.iter().map(|(g, p)| (g.as_str(), p.as_str())));
    Ok(EvalReport {
        method: Method::Student,
        task: task.name.clone(),
        test_file: test_file.to_path_buf(),
        shots: 0,
        calibrated: false,
        calibration_strength: None,
        adapter: Some(run.to_path_buf()),
        model: format!("student of {}", student.record.teacher.display()),
        metrics,
        seconds: started.elapsed().as_secs_f64(),
        finished_at: crate::data::time::now_rfc3339(),
        correct: pairs.iter().map(|(g, p)| g == p).collect(),
        content_free_prior: None,
        rows,
    })
}
