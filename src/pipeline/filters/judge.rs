//! Every stage over a batch of items at once: the cheap stages in order (so an item is a
//! duplicate of an earlier kept one, never of a later one), then one classifier pass over the
//! survivors. The `filter` command and the experiment judge files of items this way; the engine
//! judges items one by one as they stream in.

use super::stages::consistency_classifier;
use super::{FilterSettings, Filters};
use crate::data::item::Verdict;
use crate::data::task::Task;
use crate::llm::model::Llama;
use crate::llm::remote::Remote;
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::classify::{Classifier, ClassifyError};
use crate::pipeline::prompt::Templates;

/// An item to judge.
#[derive(Debug, Clone, Copy)]
pub struct ToJudge<'a> {
    pub text: &'a str,
    /// The label it was generated for.
    pub label: &'a str,
    /// Why the extraction of the text from the raw output failed, if it did.
    pub malformed: Option<&'a str>,
    /// The writer's mean log-probability per token, when it gave one.
    pub mean_logprob: Option<f64>,
}

/// The model the label-consistency stage classifies with.
pub struct Judge<'a> {
    pub model: &'a Llama,
    pub tokenizer: &'a TextTokenizer,
    pub templates: &'a Templates,
}

/// One verdict per stage for each item (the label-consistency verdict only for items that
/// passed the cheap stages, and only when `settings.label_consistency` and a judge is given).
pub fn judge_all(
    task: &Task,
    settings: &FilterSettings,
    judge: Option<Judge>,
    items: &[ToJudge],
) -> Result<Vec<Vec<Verdict>>, ClassifyError> {
    let mut filters = Filters::new(task, settings.clone());
    let classifier = match judge.filter(|_| settings.label_consistency) {
        Some(j) => Some(j.classifier(task, settings)?),
        None => None,
    };
    judge_more(&mut filters, classifier.as_ref(), items, 0)
}

impl<'a> Judge<'a> {
    /// The label-consistency classifier this judge stands for under `settings`.
    pub fn classifier(
        &self,
        task: &Task,
        settings: &FilterSettings,
    ) -> Result<Classifier<'a>, ClassifyError> {
        Classifier::new(
            self.model,
            self.tokenizer,
            task,
            self.templates,
            consistency_classifier(task, settings),
        )
    }
}

/// The label-consistency classifier on an OpenAI-compatible server: the prompt and
/// calibration of `settings.judge`, the label words' log-probabilities from the server.
pub fn remote_classifier<'a>(
    remote: &'a Remote,
    task: &Task,
    templates: &Templates,
    settings: &FilterSettings,
) -> Result<Classifier<'a>, ClassifyError> {
    Classifier::remote(
        remote,
        task,
        templates,
        consistency_classifier(task, settings),
    )
}

/// [`judge_all`] for one more batch of items, against the duplicate indexes of every batch
/// before it (a quota's later rounds); items are named from `first + 1`.
pub fn judge_more(
    filters: &mut Filters,
    classifier: Option<&Classifier>,
    items: &[ToJudge],
    first: usize,
) -> Result<Vec<Vec<Verdict>>, ClassifyError> {
    let mut verdicts: Vec<Vec<Verdict>> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let mut v = filters.cheap(&format!("item {}", first + i + 1), it.text, it.malformed);
            v.extend(it.mean_logprob.and_then(|lp| filters.likelihood(lp)));
            v
        })
        .collect();
    let Some(classifier) = classifier else {
        return Ok(verdicts);
    };
    let todo: Vec<usize> = (0..items.len())
        .filter(|&i| verdicts[i].iter().all(|v| v.pass))
        .collect();
    let texts: Vec<&str> = todo.iter().map(|&i| items[i].text).collect();
    let preds = classifier.classify(&texts)?;
    for (&i, p) in todo.iter().zip(&preds) {
        verdicts[i].push(filters.label_consistency(items[i].label, p));
    }
    Ok(verdicts)
}

/// Kept: every verdict passed.
pub fn kept(verdicts: &[Verdict]) -> bool {
    verdicts.iter().all(|v| v.pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::task::Task;

    #[test]
    fn duplicates_point_back_to_the_first_copy_and_bad_items_never_index() {
        let task = Task::demo();
        let settings = FilterSettings {
            label_consistency: false,
            ..FilterSettings::default()
        };
        let a = "an honest and quietly moving story about two brothers";
        let items = [
            ToJudge {
                text: a,
                label: "positive",
                malformed: None,
                mean_logprob: None,
            },
            ToJudge {
                text: "ok",
                label: "positive",
                malformed: None,
                mean_logprob: None,
            },
            ToJudge {
                text: "ok",
                label: "negative",
                malformed: None,
                mean_logprob: None,
            },
            ToJudge {
                text: a,
                label: "negative",
                malformed: None,
                mean_logprob: None,
            },
            ToJudge {
                text: "fine words",
                label: "negative",
                malformed: Some("no text found"),
                mean_logprob: None,
            },
        ];
        let v = judge_all(&task, &settings, None, &items).unwrap();
        assert!(kept(&v[0]));
        // Too short both times: the first rejected copy must not make the second a duplicate.
        assert!(!v[1][0].pass);
        assert!(v[2][1].pass, "{:?}", v[2]);
        assert!(!v[3][1].pass, "{:?}", v[3]);
        assert!(!v[4][0].pass);
        // No label-consistency verdict without a judge.
        assert!(v.iter().all(|x| x.len() == 3));
    }
}
