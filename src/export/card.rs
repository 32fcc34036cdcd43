//! The classifier card: what another program needs to classify with an exported model the way
//! seedforge does — the prompt around the text, the label words, how their scores are read — as
//! `seedforge.json` beside (GGUF) or inside (Hugging Face) the export, and as `seedforge.*`
//! metadata keys in the GGUF file.
//!
//! The rule it describes: the prompt is `before + text + after`; each label is scored by the
//! summed log-probability of the tokens of `" " + word` right after the prompt; the label with
//! the highest score wins. With `calibration`, scores are first turned into
//! `log softmax(scores) − strength · log(prior)` (contextual calibration, the run's own reading).

use serde::{Deserialize, Serialize};

use crate::data::task::Task;
use crate::pipeline::prompt::Templates;
use crate::train::lora::LoraInfo;

/// The card's `format` value and version.
pub const FORMAT: &str = "seedforge-classifier";
pub const FORMAT_VERSION: u32 = 1;
/// Its file name inside a Hugging Face export.
pub const FILE_NAME: &str = "seedforge.json";
/// The prefix of seedforge's own GGUF metadata keys.
pub const GGUF_PREFIX: &str = "seedforge.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub format: String,
    pub format_version: u32,
    pub task: String,
    /// Label names, in the task's order.
    pub labels: Vec<String>,
    /// The word the model says for each label, in the same order.
    pub label_words: Vec<String>,
    /// What comes between the prompt and the label word (one space).
    pub label_word_prefix: String,
    pub prompt: Prompt,
    /// `None`: the scores are read as they are.
    pub calibration: Option<Calibration>,
    /// Whether the tokenizer puts a BOS token before the prompt (the model's own setting).
    pub add_bos: bool,
    pub scoring: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// The prompt with `{text}` where the text goes (for reading).
    pub template: String,
    /// What comes before the text.
    pub before: String,
    /// What comes after it; the label word follows.
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// How much of the prior is divided out (1 the whole, 0.5 its square root).
    pub strength: f64,
    /// The mean label distribution on `content_free` inputs, in label order.
    pub prior: Vec<f64>,
    pub content_free: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub seedforge_version: String,
    pub run: String,
    pub base_model: String,
    pub lora_rank: usize,
    pub lora_alpha: f64,
    pub lora_targets: Vec<String>,
    /// f32, f16, q8_0 or mixed.
    pub weights: String,
}

pub const SCORING: &str = "score(label) = sum of log p(token) over the tokens of \
    label_word_prefix + label_word, right after before + text + after; with calibration, \
    score = log_softmax(scores) - strength * log(prior); the label is the argmax";

/// The zero-shot classification prompt of `task` (what a LoRA run reads) split around the text.
/// Fails when the template does not put the text in once, as it is.
pub fn prompt_of(task: &Task, templates: &Templates) -> anyhow::Result<Prompt> {
    const MARKS: [&str; 2] = ["\u{1}SEEDFORGE-TEXT-A\u{1}", "\u{2}x y\u{2}"];
    let render = |text: &str| templates.render_classify(task, &[], text, None);
    let first = render(MARKS[0])?;
    let (before, after) = first.split_once(MARKS[0]).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: the classification template does not show the text as it is, so the export \
             cannot say where the text goes",
            templates.classify.source
        )
    })?;
    anyhow::ensure!(
        !after.contains(MARKS[0]) && render(MARKS[1])? == format!("{before}{}{after}", MARKS[1]),
        "{}: the classification template uses the text more than once or changes it; the \
         export describes prompts as before + text + after",
        templates.classify.source
    );
    Ok(Prompt {
        template: format!("{before}{{text}}{after}"),
        before: before.to_string(),
        after: after.to_string(),
    })
}

impl Card {
    pub fn new(
        task: &Task,
        prompt: Prompt,
        calibration: Option<Calibration>,
        add_bos: bool,
        source: Source,
    ) -> Self {
        Card {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            task: task.name.clone(),
            labels: task.labels.iter().map(|l| l.name.clone()).collect(),
            label_words: task
                .labels
                .iter()
                .map(|l| l.verbalizer().to_string())
                .collect(),
            label_word_prefix: " ".to_string(),
            prompt,
            calibration,
            add_bos,
            scoring: SCORING.to_string(),
            source,
        }
    }

    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and lists always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

impl Source {
    pub fn new(run: &str, base_model: &str, lora: &LoraInfo, weights: &str) -> Self {
        Source {
            seedforge_version: env!("CARGO_PKG_VERSION").to_string(),
            run: run.to_string(),
            base_model: base_model.to_string(),
            lora_rank: lora.rank,
            lora_alpha: lora.alpha,
            lora_targets: lora.targets.iter().map(|t| t.to_string()).collect(),
            weights: weights.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_prompt_splits_around_the_text() {
        let p = prompt_of(&Task::demo(), &Templates::bundled()).unwrap();
        assert_eq!(p.before, "Review: ");
        assert_eq!(p.after, "\nSentiment:");
        assert_eq!(p.template, "Review: {text}\nSentiment:");
    }

    #[test]
    fn a_template_that_repeats_or_changes_the_text_is_refused() {
        let task = Task::demo();
        for body in ["{{ text }} / {{ text }}", "{{ text | upper }}:", "no text"] {
            let mut t = Templates::bundled();
            t.classify.text = body.to_string();
            assert!(prompt_of(&task, &t).is_err(), "{body}");
        }
    }

    #[test]
    fn the_card_round_trips_through_json() {
        let task = Task::demo();
        let card = Card::new(
            &task,
            prompt_of(&task, &Templates::bundled()).unwrap(),
            Some(Calibration {
                strength: 0.5,
                prior: vec![0.3, 0.7],
                content_free: vec!["N/A".into()],
            }),
            false,
            Source {
                seedforge_version: "0".into(),
                run: "r".into(),
                base_model: "m".into(),
                lora_rank: 8,
                lora_alpha: 16.0,
                lora_targets: vec!["q_proj".into()],
                weights: "q8_0".into(),
            },
        );
        let back: Card = serde_json::from_str(&card.to_json()).unwrap();
        assert_eq!(back, card);
        assert_eq!(back.label_words, vec!["negative", "positive"]);
    }
}
