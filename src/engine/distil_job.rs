//! The distillation job: a LoRA classifier run (the teacher) labels the texts it trained on and
//! any unlabelled texts, and a small student learns its probabilities (`student::distil`).
//! [`teach`] is the one path from a loaded teacher to a saved student: `seedforge distil` calls
//! it with a progress bar, the workbench's Train screen (`d`) through [`run`] with progress
//! events and the stop key.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use anyhow::Context;

use super::eval_job::Target;
use super::event::{Event, JobId, JobKind};
use super::generate_job::task_of;
use super::predict_job::classifier_options;
use super::{JobControl, Sink};
use crate::data::task::Task;
use crate::data::workspace::Workspace;
use crate::llm::load::LoadedModel;
use crate::llm::model::Llama;
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::classify::Classifier;
use crate::pipeline::predict::rows_per_call;
use crate::pipeline::prompt::Templates;
use crate::student::Student;
use crate::student::distil::{DistilSettings, DistilTexts, Provenance, TeacherLabels, distil};
use crate::train::peft;
use crate::train::run::run_examples;

/// Texts the teacher scores together in the workbench (the stop key is answered between
/// calls of four such batches).
const BATCH: usize = 8;

#[derive(Debug, Clone)]
pub struct DistilRequest {
    /// The teacher: a LoRA classifier run of the workspace.
    pub run: PathBuf,
    /// Texts nobody labelled, for the teacher to label too.
    pub unlabelled: Vec<String>,
    pub settings: DistilSettings,
}

/// Where a student of `teacher` goes by default: `<time>-student` beside it (`-2`, `-3`… when
/// a student was made in the same second: two distils in one second wrote into one folder).
pub fn default_out(teacher: &Path) -> PathBuf {
    let dir = teacher.parent().unwrap_or(Path::new("."));
    let stem = format!("{}-student", crate::data::time::compact(SystemTime::now()));
    (1..)
        .map(|n| match n {
            1 => dir.join(&stem),
            n => dir.join(format!("{stem}-{n}")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(stem))
}

/// What [`teach`] reports as it goes.
pub struct Hooks<'a> {
    /// Texts the teacher has labelled so far, of how many it will (texts whose answer the
    /// `--teacher-labels` file holds are not asked again and not counted).
    pub labelled: &'a mut dyn FnMut(usize, usize),
    /// A line about what is happening (each epoch's loss among them).
    pub say: &'a mut dyn FnMut(String),
    /// Asked between the teacher's calls: stop now (nothing is saved).
    pub stop: &'a dyn Fn() -> bool,
}

/// The teacher `m` (the base model with the run's adapter) labels `texts` as the workbench reads
/// that run, through the `cache` file of earlier answers when one is named; the student learns
/// them and is saved in `out`. `None` when `hooks.stop` said to stop.
#[allow(clippy::too_many_arguments)]
pub fn teach(
    m: &Llama,
    tokenizer: &TextTokenizer,
    task: &Task,
    run: &Path,
    texts: DistilTexts,
    settings: &DistilSettings,
    out: &Path,
    cache: Option<&Path>,
    batch: usize,
    hooks: Hooks,
) -> anyhow::Result<Option<Student>> {
    let templates = Templates::for_task(task)?;
    let options = classifier_options(&Target::Lora(run.to_path_buf()), task, false, batch)?;
    let classifier = Classifier::new(m, tokenizer, task, &templates, options)?;
    let Hooks {
        labelled,
        say,
        stop,
    } = hooks;
    let mut stopped = false;
    let mut teacher = |all: &[&str]| {
        let mut preds = Vec::with_capacity(all.len());
        labelled(0, all.len());
        for chunk in all.chunks(rows_per_call(batch)) {
            if stop() {
                stopped = true;
                anyhow::bail!("stopped");
            }
            preds.extend(classifier.classify(chunk)?);
            labelled(preds.len(), all.len());
        }
        Ok(preds)
    };
    let labels: Vec<String> = task.label_names().into_iter().map(String::from).collect();
    let mut cache = match cache {
        Some(p) => {
            let c = TeacherLabels::open(p, run, &labels)?;
            say(format!("{} teacher answers in {}", c.known(), p.display()));
            Some(c)
        }
        None => None,
    };
    let mut asked = |all: &[&str]| match &mut cache {
        Some(c) => c.label(all, &mut teacher),
        None => teacher(all),
    };
    let result = distil(
        task,
        texts,
        &mut asked,
        settings,
        Provenance {
            teacher_run: run,
            out,
        },
        &burn::tensor::Device::flex(),
        say,
    );
    match result {
        Ok(s) => Ok(Some(s)),
        Err(_) if stopped => Ok(None),
        Err(e) => Err(e),
    }
}

pub use super::job::Outcome;

/// The workbench's distillation of `request.run`, with progress events; the student goes in a
/// new `<time>-student` folder beside the run.
pub fn run(
    job: JobId,
    model: &LoadedModel,
    ws: &Mutex<Workspace>,
    request: &DistilRequest,
    control: &JobControl,
    events: &Sink,
) -> anyhow::Result<Outcome> {
    let task = task_of(ws);
    let run = &request.run;
    let name = super::job::folder_name(run);
    let texts = DistilTexts {
        teacher: run_examples(run)?.into_iter().map(|e| e.text).collect(),
        unlabelled: request.unlabelled.clone(),
    };
    let total = texts.clone().dedup(&task).all().len();
    let adapted = peft::with_adapter(&model.model, run)
        .with_context(|| format!("loading the adapter of {}", run.display()))?;
    let out = default_out(run);
    events.send(Event::JobStarted {
        job,
        kind: JobKind::Distil,
        total,
    });
    let started = Instant::now();
    let epochs = request.settings.student.epochs;
    let student = teach(
        &adapted,
        &model.tokenizer,
        &task,
        run,
        texts,
        &request.settings,
        &out,
        None,
        BATCH,
        Hooks {
            labelled: &mut |done, total| {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                events.send(Event::Progress {
                    job,
                    done,
                    total,
                    tokens_per_second: done as f64 / secs,
                    eta_seconds: (done > 0)
                        .then(|| secs / done as f64 * total.saturating_sub(done) as f64),
                });
                control.wait_while_paused();
            },
            say: &mut |line| {
                // One line per epoch would fill the log: the first and the last are kept.
                if !line.starts_with("epoch ")
                    || line.starts_with("epoch 1:")
                    || line.starts_with(&format!("epoch {epochs}:"))
                {
                    events.send(Event::Log(format!("distil {name}: {line}")));
                }
            },
            stop: &|| control.is_stopped(),
        },
    )?;
    let Some(student) = student else {
        return Ok(Outcome {
            cancelled: true,
            summary: format!("the student of {name} was not trained; nothing saved"),
        });
    };
    let r = &student.record;
    Ok(Outcome {
        cancelled: false,
        summary: format!(
            "student of {name} saved in {} ({} seeds + {} texts the teacher labelled, loss {:.3}, \
             {:.0} s); g on Evaluate scores it beside its teacher",
            super::job::folder_name(&out),
            r.seeds,
            r.teacher_texts + r.unlabelled_texts,
            r.final_loss,
            started.elapsed().as_secs_f64()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_student_in_the_same_second_gets_its_own_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let teacher = tmp.path().join("runs").join("20260101-000000-train");
        std::fs::create_dir_all(&teacher).unwrap();
        let first = default_out(&teacher);
        std::fs::create_dir_all(&first).unwrap();
        let second = default_out(&teacher);
        assert_ne!(first, second);
        assert_eq!(first.parent(), second.parent());
        assert!(!second.exists());
    }
}
