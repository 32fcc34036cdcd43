//! Putting a classifier to work on texts that have no label: read them ([`input`]), check each
//! fits the model's context, label them with [`Classifier`] in batches, write the answers
//! ([`output`]). `seedforge predict` and the workbench's labelling job both use this; which
//! classifier (a LoRA run read as `eval::reading` says, in-context learning, zero-shot) is
//! their choice.

pub mod input;
pub mod output;

use std::path::Path;

pub use input::{BadRows, InFormat, Input, ReadError, ReadOptions, ReadResult};
pub use output::{OutFormat, OutRow, RowWriter};

use crate::data::import::{Problem, ProblemKind};
use crate::llm::tokenizer::TextTokenizer;
use crate::pipeline::classify::{Classifier, ClassifyError, Prediction};

/// Rows handed to the classifier in one call: as `eval` does (four batches, at least 16), so a
/// row is read with the same neighbours and the same numbers by both; the classifier sorts each
/// call's rows by length before batching them.
pub fn rows_per_call(batch: usize) -> usize {
    (batch.max(1) * 4).max(16)
}

/// Measures prompts against the model's context, as the classifier builds them.
pub struct Fit<'a> {
    classifier: &'a Classifier<'a>,
    tokenizer: &'a TextTokenizer,
    /// Tokens of the longest label word.
    longest_label: usize,
    context: usize,
}

impl<'a> Fit<'a> {
    pub fn new(
        classifier: &'a Classifier<'a>,
        tokenizer: &'a TextTokenizer,
        context: usize,
    ) -> Result<Self, ClassifyError> {
        let mut longest_label = 1;
        for l in classifier.labels() {
            let ids = tokenizer
                .encode_continuation(&format!(" {}", l.verbalizer()))
                .map_err(|e| ClassifyError::Tokenizer(e.to_string()))?;
            longest_label = longest_label.max(ids.len());
        }
        Ok(Fit {
            classifier,
            tokenizer,
            longest_label,
            context,
        })
    }

    /// None when `input` fits; else the bad row, naming its length and the context.
    pub fn check(&self, file: &Path, input: &Input) -> Result<Option<Problem>, ClassifyError> {
        let prompt = self.classifier.prompt(&input.text)?;
        let tokens = self
            .tokenizer
            .encode_plain(&prompt)
            .map_err(|e| ClassifyError::Tokenizer(e.to_string()))?
            .len()
            + self.longest_label;
        Ok((tokens > self.context).then(|| Problem {
            file: file.to_path_buf(),
            line: input.line,
            kind: ProblemKind::TooLong,
            message: format!(
                "the text makes a prompt of {tokens} tokens with its label, more than the \
                 model's context of {}",
                self.context
            ),
            kept: false,
        }))
    }

    /// Splits `inputs` into those that fit and the bad rows that do not.
    pub fn split(
        &self,
        file: &Path,
        inputs: Vec<Input>,
    ) -> Result<(Vec<Input>, Vec<Problem>), ClassifyError> {
        let mut fit = Vec::with_capacity(inputs.len());
        let mut long = Vec::new();
        for i in inputs {
            match self.check(file, &i)? {
                None => fit.push(i),
                Some(p) => long.push(p),
            }
        }
        Ok((fit, long))
    }
}

/// What [`label_all`] hands each call's rows and answers to.
pub type Answer<'a> = dyn FnMut(&[Input], Vec<Prediction>) -> anyhow::Result<()> + 'a;

/// Labels a call's texts: a language-model [`Classifier`] or a distilled student.
pub type Label<'a> = dyn Fn(&[&str]) -> anyhow::Result<Vec<Prediction>> + 'a;

/// A [`Label`] for a language-model classifier.
pub fn with_classifier<'a>(
    classifier: &'a Classifier<'a>,
) -> impl Fn(&[&str]) -> anyhow::Result<Vec<Prediction>> + 'a {
    move |texts| Ok(classifier.classify(texts)?)
}

/// Labels `inputs` in calls of [`rows_per_call`] rows, in their order, handing each call's rows
/// and answers to `answer`; `stop` is asked before each call. Returns whether every row was
/// labelled (false: stopped).
pub fn label_all(
    label: &Label,
    inputs: &[Input],
    batch: usize,
    answer: &mut Answer,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<bool> {
    for chunk in inputs.chunks(rows_per_call(batch)) {
        if stop() {
            return Ok(false);
        }
        let texts: Vec<&str> = chunk.iter().map(|i| i.text.as_str()).collect();
        let preds = label(&texts)?;
        anyhow::ensure!(
            preds.len() == chunk.len(),
            "the classifier answered {} of {} texts",
            preds.len(),
            chunk.len()
        );
        answer(chunk, preds)?;
    }
    Ok(true)
}

/// The row [`RowWriter`] writes for an input and its answer.
pub fn out_row<'a>(input: &'a Input, p: &'a Prediction) -> OutRow<'a> {
    OutRow {
        line: input.line,
        id: input.id.as_deref(),
        text: &input.text,
        label: &p.label,
        probs: &p.probs,
    }
}
