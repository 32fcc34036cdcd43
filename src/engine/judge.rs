//! The judge of label consistency as the engine's jobs use it: resolved once for the
//! workspace's current seeds and filter settings — chosen by cross-validation on the seeds when
//! the settings ask for it, with a LoRA trained on the seeds when that judge is chosen — and
//! kept until either changes, so a recheck after an edit does not measure or train again.

use crate::data::task::Task;
use crate::eval::judge_selection::{Selection, SelectionContext, resolve};
use crate::llm::load::LoadedModel;
use crate::llm::model::Llama;
use crate::pipeline::filters::FilterSettings;
use crate::pipeline::filters::stages::JudgeKind;
use crate::pipeline::prompt::Templates;
use crate::train::trainer::TrainConfig;

use super::{Event, JobId, Sink};

/// A resolved judge and what it was resolved for.
pub struct Resolved {
    key: String,
    pub kind: JudgeKind,
    /// The model with the seeds' LoRA, when the judge reads with it.
    adapted: Option<Llama>,
}

impl Resolved {
    /// The model the judge reads with.
    pub fn model<'a>(&'a self, base: &'a LoadedModel) -> &'a Llama {
        self.adapted.as_ref().unwrap_or(&base.model)
    }

    /// A judge resolved elsewhere (the experiment's seeds-only run as the seeds' LoRA): taken
    /// as it is by [`judge`] while the seeds and settings stay these.
    pub fn given(task: &Task, filters: &FilterSettings, adapted: Llama) -> Resolved {
        Resolved {
            key: key(task, filters),
            kind: filters.judge,
            adapted: filters.judge.needs_adapter().then_some(adapted),
        }
    }

    /// The filter settings with the resolved judge in them.
    pub fn settings(&self, filters: &FilterSettings) -> FilterSettings {
        FilterSettings {
            judge: self.kind,
            ..filters.clone()
        }
    }
}

/// What a resolution depends on: the seeds and the judge's settings.
fn key(task: &Task, filters: &FilterSettings) -> String {
    serde_json::json!([
        task.seeds,
        filters.judge,
        filters.select_judge,
        filters.calibrate
    ])
    .to_string()
}

/// The engine's judge cache and the device a judge trains on.
pub struct Judges<'a> {
    pub cache: &'a mut Option<Resolved>,
    pub device: &'a str,
}

/// The judge for `task` under `filters`: the cached one when nothing it depends on changed.
pub fn judge<'c>(
    judges: &'c mut Judges<'_>,
    job: JobId,
    model: &LoadedModel,
    task: &Task,
    templates: &Templates,
    filters: &FilterSettings,
    events: &Sink,
) -> anyhow::Result<&'c Resolved> {
    let device = judges.device;
    let cache = &mut *judges.cache;
    let k = key(task, filters);
    if cache.as_ref().is_none_or(|c| c.key != k) {
        let needs_work = filters.select_judge || filters.judge.needs_adapter();
        if needs_work {
            events.send(Event::JudgeProgress {
                job,
                text: if filters.select_judge {
                    "measuring the judges on the seeds (cross-validation)…".into()
                } else {
                    "training the seeds' LoRA for the label check…".into()
                },
            });
        }
        let model_path = model.info.path.display().to_string();
        let train = TrainConfig::default();
        let ctx = SelectionContext {
            model: &model.model,
            tokenizer: &model.tokenizer,
            templates,
            task,
            calibrate: filters.calibrate,
            train: &train,
            model_path: &model_path,
            device,
        };
        let choice = (!filters.select_judge).then_some(filters.judge);
        let (kind, selection, adapted) = if needs_work {
            let (kind, sel, m) = resolve(&ctx, choice, &mut |l| events.send(Event::Log(l.into())))?;
            (kind, sel, kind.needs_adapter().then_some(m))
        } else {
            (filters.judge, None, None)
        };
        events.send(Event::JudgeChosen {
            job,
            summary: summary(kind, selection.as_ref()),
        });
        *cache = Some(Resolved {
            key: k,
            kind,
            adapted,
        });
    }
    cache
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the judge was not resolved"))
}

/// One line for the screen: the judge and, when it was measured, every candidate's score.
pub fn summary(kind: JudgeKind, selection: Option<&Selection>) -> String {
    match selection {
        Some(s) if !s.measured.is_empty() => format!(
            "judge {} (cross-validation on the seeds: {})",
            kind.name(),
            s.measured
                .iter()
                .map(|m| format!("{} {}/{}", m.judge.name(), m.correct, m.n))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(s) => format!("judge {} ({})", kind.name(), s.reason),
        None => format!("judge {}", kind.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::judge_selection::Measured;

    #[test]
    fn the_summary_names_the_judge_and_every_measurement() {
        assert_eq!(summary(JudgeKind::Icl, None), "judge icl");
        let sel = Selection {
            chosen: JudgeKind::SeedsLora,
            folds: 4,
            measured: vec![
                Measured {
                    judge: JudgeKind::Icl,
                    correct: 6,
                    n: 8,
                    mean_p_gold: 0.6,
                },
                Measured {
                    judge: JudgeKind::SeedsLora,
                    correct: 7,
                    n: 8,
                    mean_p_gold: 0.7,
                },
            ],
            reason: String::new(),
        };
        assert_eq!(
            summary(JudgeKind::SeedsLora, Some(&sel)),
            "judge seeds-lora (cross-validation on the seeds: icl 6/8, seeds-lora 7/8)"
        );
    }

    #[test]
    fn a_resolution_is_for_its_seeds_and_settings() {
        let task = Task::demo();
        let f = FilterSettings::default();
        assert_eq!(key(&task, &f), key(&task, &f.clone()));
        let mut other = task.clone();
        other.seeds.pop();
        assert_ne!(key(&task, &f), key(&other, &f));
        let g = FilterSettings {
            select_judge: !f.select_judge,
            ..f.clone()
        };
        assert_ne!(key(&task, &f), key(&task, &g));
    }
}
