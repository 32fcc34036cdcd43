//! The `--task` option: a task folder or file, or the bundled demo task.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::data::task::{Attribute, LabelDef, TASK_FORMAT_VERSION, Task};

#[derive(Debug, Clone, Args)]
pub struct TaskArg {
    /// A task folder (task.toml + seeds.jsonl) or a task TOML file. Default: the bundled demo
    /// task (sentiment of short movie reviews).
    #[arg(long, value_name = "DIR_OR_FILE")]
    pub task: Option<PathBuf>,
}

impl TaskArg {
    pub fn load(&self) -> anyhow::Result<Task> {
        match &self.task {
            Some(p) => Task::load(p).with_context(|| format!("loading the task {}", p.display())),
            None => Ok(Task::demo()),
        }
    }
}

/// How prompts speak of a task built from a dataset's labels (`init --from`, `experiment`).
#[derive(Debug, Clone, Args)]
pub struct TaskShape {
    /// What is classified, as prompts say it: "<input noun>s whose <description> is X"
    /// (e.g. "sentiment", "answer type"). Default: "label".
    #[arg(long)]
    pub description: Option<String>,
    /// What one input is called in prompts (e.g. "movie review", "question").
    #[arg(long, default_value = "text")]
    pub input_noun: String,
    /// Field names of the classification prompt, `<input field>: text` then
    /// `<label field>: label` (e.g. Review / Sentiment).
    #[arg(long, default_value = "Text")]
    pub input_field: String,
    #[arg(long, default_value = "Label")]
    pub label_field: String,
    /// A property each generation request draws a value of, said in the prompt's heading:
    /// `--attribute 'genre=comedy|horror|documentary'`; repeat for more.
    #[arg(long = "attribute", value_name = "NAME=V1|V2…", value_parser = attribute)]
    pub attributes: Vec<Attribute>,
}

fn attribute(s: &str) -> Result<Attribute, String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write NAME=VALUE|VALUE…"))?;
    let values: Vec<String> = values
        .split('|')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect();
    if name.trim().is_empty() || values.is_empty() {
        return Err(format!("{s:?}: write NAME=VALUE|VALUE…"));
    }
    Ok(Attribute {
        name: name.trim().to_string(),
        values,
    })
}

impl TaskShape {
    /// A task without seeds over `labels`, each its own verbalizer.
    pub fn task(&self, name: String, labels: &[String]) -> Task {
        Task {
            format_version: TASK_FORMAT_VERSION,
            name,
            description: self
                .description
                .clone()
                .unwrap_or_else(|| "label".to_string()),
            input_noun: self.input_noun.clone(),
            input_field: self.input_field.clone(),
            label_field: self.label_field.clone(),
            labels: labels
                .iter()
                .map(|l| LabelDef {
                    name: l.clone(),
                    verbalizer: None,
                })
                .collect(),
            prompts: None,
            attributes: self.attributes.clone(),
            seeds: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attribute_is_a_name_and_its_values() {
        let a = attribute("genre = horror film| comedy |").unwrap();
        assert_eq!(a.name, "genre");
        assert_eq!(a.values, ["horror film", "comedy"]);
        for bad in ["genre", "=horror", "genre=", "genre= | "] {
            assert!(attribute(bad).unwrap_err().contains("NAME=VALUE"), "{bad}");
        }
    }
}
