//! Which classifier should check the labels of generated items: measured, not assumed. Each
//! candidate judge is scored by stratified k-fold cross-validation over the seeds (the only
//! labelled data a user is sure to have): a fold's seeds are classified by a judge built from
//! the other folds' seeds (the demonstrations of in-context learning, the training set of the
//! seeds' LoRA; zero-shot sees none). The best accuracy wins; ties go to the judge that was
//! best on the validation rows of docs/results.md (in-context, then the seeds' LoRA, then
//! zero-shot: [`PREFERENCE`]). Eight SST-2 seeds rarely separate the judges (7/8 against 7/8),
//! which is why `auto` is offered but the default is the in-context judge.

use serde::{Deserialize, Serialize};

use crate::data::task::{Example, Task};
use crate::llm::model::Llama;
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::classify::Classifier;
use crate::pipeline::filters::stages::{JudgeKind, judge_options};
use crate::pipeline::prompt::Templates;
use crate::train::run::{RunSpec, train_run};
use crate::train::trainer::{TrainConfig, TrainControl};

/// One judge's cross-validated score on the seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub judge: JudgeKind,
    pub correct: usize,
    pub n: usize,
    /// Mean probability the judge gave each seed's own label.
    pub mean_p_gold: f64,
}

impl Measured {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.n.max(1) as f64
    }
}

/// The measurement and the choice it led to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub chosen: JudgeKind,
    pub folds: usize,
    pub measured: Vec<Measured>,
    /// Why the choice was made (shown to the user).
    pub reason: String,
}

/// Stratified fold of each example: within each label, examples are dealt round-robin to
/// `k` folds in their order.
pub fn folds(labels: &[usize], k: usize) -> Vec<usize> {
    let k = k.max(1);
    let mut next = std::collections::HashMap::new();
    labels
        .iter()
        .map(|l| {
            let n = next.entry(*l).or_insert(0usize);
            let f = *n % k;
            *n += 1;
            f
        })
        .collect()
}

/// Folds the seeds allow: at most 4, and no more than the smallest class has seeds (every
/// fold's training side keeps each class).
pub fn fold_count(task: &Task) -> usize {
    let smallest = task
        .labels
        .iter()
        .map(|l| task.seeds_of(&l.name).count())
        .min()
        .unwrap_or(0);
    smallest.min(4)
}

/// Ties go to the earlier judge here.
pub const PREFERENCE: [JudgeKind; 3] = [JudgeKind::Icl, JudgeKind::SeedsLora, JudgeKind::ZeroShot];

/// The best-measured judge: highest accuracy, ties broken by the preference order.
pub fn choose(measured: &[Measured]) -> Option<JudgeKind> {
    let rank = |j: JudgeKind| PREFERENCE.iter().position(|&x| x == j);
    measured
        .iter()
        .max_by(|a, b| {
            a.correct
                .cmp(&b.correct)
                .then_with(|| rank(b.judge).cmp(&rank(a.judge)))
        })
        .map(|m| m.judge)
}

/// What the measurement runs with.
pub struct SelectionContext<'a> {
    pub model: &'a Llama,
    pub tokenizer: &'a TextTokenizer,
    pub templates: &'a Templates,
    pub task: &'a Task,
    /// Calibration of the prompted judges.
    pub calibrate: bool,
    /// How the seeds' LoRA is trained (as for the real judge).
    pub train: &'a TrainConfig,
    pub model_path: &'a str,
    pub device: &'a str,
}

/// Cross-validates every candidate judge on the task's seeds and chooses one. With fewer than
/// two seeds in some class there is nothing to hold out: the default judge, and the reason.
pub fn select(
    ctx: &SelectionContext,
    candidates: &[JudgeKind],
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<Selection> {
    let k = fold_count(ctx.task);
    if k < 2 {
        return Ok(Selection {
            chosen: JudgeKind::default(),
            folds: 0,
            measured: Vec::new(),
            reason: "a class has fewer than 2 seeds: nothing to cross-validate, the default judge"
                .into(),
        });
    }
    let labels: Vec<usize> = ctx
        .task
        .seeds
        .iter()
        .map(|s| ctx.task.label_index(&s.label).unwrap_or(0))
        .collect();
    let fold_of = folds(&labels, k);
    let n_seeds = ctx.task.seeds.len();
    let mut measured = Vec::new();
    for &judge in candidates {
        let mut correct = 0usize;
        let mut p_gold = 0.0;
        for f in 0..k {
            let in_fold = |i: &usize| fold_of[*i] == f;
            let held: Vec<&Example> = (0..n_seeds)
                .filter(in_fold)
                .map(|i| &ctx.task.seeds[i])
                .collect();
            let mut fold_task = ctx.task.clone();
            fold_task.seeds = (0..n_seeds)
                .filter(|i| !in_fold(i))
                .map(|i| ctx.task.seeds[i].clone())
                .collect();
            let texts: Vec<&str> = held.iter().map(|e| e.text.as_str()).collect();
            let opts = judge_options(&fold_task, judge, ctx.calibrate);
            let preds = if judge.needs_adapter() {
                let tuned = seeds_lora(ctx, &fold_task)?;
                Classifier::new(&tuned, ctx.tokenizer, &fold_task, ctx.templates, opts)?
                    .classify(&texts)?
            } else {
                Classifier::new(ctx.model, ctx.tokenizer, &fold_task, ctx.templates, opts)?
                    .classify(&texts)?
            };
            for (e, p) in held.iter().zip(&preds) {
                correct += usize::from(p.label == e.label);
                p_gold += p.prob_of(&e.label).unwrap_or(0.0);
            }
        }
        let n = ctx.task.seeds.len();
        let m = Measured {
            judge,
            correct,
            n,
            mean_p_gold: p_gold / n.max(1) as f64,
        };
        log(&format!(
            "judge {}: {}/{} seeds right in {k}-fold cross-validation (mean p(label) {:.2})",
            judge.name(),
            m.correct,
            m.n,
            m.mean_p_gold
        ));
        measured.push(m);
    }
    let chosen = choose(&measured).unwrap_or_default();
    let best = measured.iter().find(|m| m.judge == chosen);
    let reason = match best {
        Some(b) => format!(
            "{}: {}/{} seeds right in {k}-fold cross-validation, the best of {}",
            chosen.name(),
            b.correct,
            b.n,
            measured.len()
        ),
        None => "no candidate measured: the default judge".into(),
    };
    Ok(Selection {
        chosen,
        folds: k,
        measured,
        reason,
    })
}

/// The model with a LoRA trained on `task`'s seeds alone (its run folder is temporary).
fn seeds_lora(ctx: &SelectionContext, task: &Task) -> anyhow::Result<Llama> {
    let tmp = tempfile::tempdir()?;
    let spec = RunSpec {
        task,
        templates: ctx.templates,
        real: &task.seeds,
        extra: &[],
        extra_soft: &[],
        extra_sources: Vec::new(),
        generated_extra: 0,
        start_from: None,
        config: ctx.train,
        out: tmp.path(),
        model_path: ctx.model_path,
        device: ctx.device,
    };
    let run = train_run(
        ctx.model.clone(),
        ctx.tokenizer,
        &spec,
        &TrainControl::default(),
        &mut |_| {},
    )?;
    Ok(run.outcome.model)
}

/// The judge `choice` names, or the one cross-validation on the seeds chooses (`None`), with
/// the model it reads with: the base model, or a LoRA trained on all the seeds.
pub fn resolve(
    ctx: &SelectionContext,
    choice: Option<JudgeKind>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<(JudgeKind, Option<Selection>, Llama)> {
    let (judge, selection) = match choice {
        Some(j) => (j, None),
        None => {
            let sel = select(ctx, &JudgeKind::ALL, log)?;
            log(&format!("judge: {}", sel.reason));
            (sel.chosen, Some(sel))
        }
    };
    let model = if judge.needs_adapter() {
        seeds_lora(ctx, ctx.task)?
    } else {
        ctx.model.clone()
    };
    Ok((judge, selection, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_round_robin() {
        let labels = [0, 0, 0, 0, 1, 1, 1, 1, 1];
        assert_eq!(folds(&labels, 4), vec![0, 1, 2, 3, 0, 1, 2, 3, 0]);
        assert_eq!(folds(&[0, 1, 0, 1], 2), vec![0, 0, 1, 1]);
    }

    #[test]
    fn the_most_accurate_judge_wins_and_ties_follow_the_preference() {
        let m = |judge, correct| Measured {
            judge,
            correct,
            n: 8,
            mean_p_gold: 0.5,
        };
        assert_eq!(
            choose(&[m(JudgeKind::Icl, 7), m(JudgeKind::SeedsLora, 6)]),
            Some(JudgeKind::Icl)
        );
        assert_eq!(
            choose(&[
                m(JudgeKind::ZeroShot, 6),
                m(JudgeKind::SeedsLora, 6),
                m(JudgeKind::Icl, 6)
            ]),
            Some(JudgeKind::Icl)
        );
        assert_eq!(
            choose(&[m(JudgeKind::ZeroShot, 6), m(JudgeKind::SeedsLora, 6)]),
            Some(JudgeKind::SeedsLora)
        );
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn fold_count_is_bounded_by_the_smallest_class() {
        let mut task = Task::demo();
        let n = task
            .labels
            .iter()
            .map(|l| task.seeds_of(&l.name).count())
            .min()
            .unwrap();
        assert_eq!(fold_count(&task), n.min(4));
        let first = task.labels[0].name.clone();
        let keep_one = task.seeds.iter().position(|s| s.label == first).unwrap();
        let one = task.seeds[keep_one].clone();
        task.seeds.retain(|s| s.label != first);
        task.seeds.push(one);
        assert_eq!(fold_count(&task), 1);
    }
}
