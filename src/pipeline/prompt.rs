//! Prompt templates as files (`assets/prompts/*.jinja`, overridable per task through the task's
//! `prompts` folder), rendered with minijinja. One classification template serves in-context
//! learning (with demonstrations) and LoRA training (without), so both see the same format.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::task::{Example, LabelDef, Task};

pub const BUNDLED_GENERATE: &str = include_str!("../../assets/prompts/generate.jinja");
pub const BUNDLED_CLASSIFY: &str = include_str!("../../assets/prompts/classify.jinja");

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: {message}")]
    Template { path: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// Where a template came from, shown with the rendered prompt so the user can find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TemplateSource {
    Bundled(&'static str),
    File(PathBuf),
}

impl std::fmt::Display for TemplateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateSource::Bundled(name) => write!(f, "bundled {name}"),
            TemplateSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Template {
    pub source: TemplateSource,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Templates {
    pub generate: Template,
    pub classify: Template,
}

#[derive(Serialize)]
struct AttributeValue<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct Demo<'a> {
    text: &'a str,
    label_word: &'a str,
}

impl Templates {
    pub fn bundled() -> Self {
        Templates {
            generate: Template {
                source: TemplateSource::Bundled("generate.jinja"),
                text: BUNDLED_GENERATE.to_string(),
            },
            classify: Template {
                source: TemplateSource::Bundled("classify.jinja"),
                text: BUNDLED_CLASSIFY.to_string(),
            },
        }
    }

    /// The bundled templates, with any `generate.jinja` / `classify.jinja` in the task's
    /// `prompts` folder taking their place.
    pub fn for_task(task: &Task) -> Result<Self, PromptError> {
        let mut t = Self::bundled();
        if let Some(dir) = &task.prompts {
            for (name, slot) in [
                ("generate.jinja", &mut t.generate),
                ("classify.jinja", &mut t.classify),
            ] {
                let path = dir.join(name);
                if path.is_file() {
                    *slot = read_template(&path)?;
                }
            }
        }
        // Fail at load, not at the first render, when a user template does not parse.
        for tmpl in [&t.generate, &t.classify] {
            let env = environment();
            env.template_from_str(&tmpl.text)
                .map_err(|e| PromptError::Template {
                    path: tmpl.source.to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(t)
    }

    /// The user message asking for one new example of `label`, with the values this request
    /// drew of the task's attributes (`attributes`: a list of `name`, `value`).
    pub fn render_generate(
        &self,
        task: &Task,
        label: &LabelDef,
        seeds: &[&str],
        attributes: &[(&str, &str)],
    ) -> Result<String, PromptError> {
        let attributes: Vec<AttributeValue> = attributes
            .iter()
            .map(|&(name, value)| AttributeValue { name, value })
            .collect();
        let labels: Vec<&str> = task.labels.iter().map(LabelDef::verbalizer).collect();
        render(
            &self.generate,
            minijinja::context! {
                label => label.name,
                label_word => label.verbalizer(),
                description => task.description,
                input_noun => task.input_noun,
                seeds => seeds,
                labels => labels,
                attributes => attributes,
            },
        )
    }

    /// The classification prompt for `text`, with `demos` in context; the label word follows it.
    pub fn render_classify(
        &self,
        task: &Task,
        demos: &[Example],
        text: &str,
        instruction: Option<&str>,
    ) -> Result<String, PromptError> {
        let word = |label: &str| {
            task.labels
                .iter()
                .find(|l| l.name == label)
                .map(LabelDef::verbalizer)
                .unwrap_or(label)
                .to_string()
        };
        let words: Vec<String> = demos.iter().map(|d| word(&d.label)).collect();
        let demos: Vec<Demo> = demos
            .iter()
            .zip(&words)
            .map(|(d, w)| Demo {
                text: &d.text,
                label_word: w,
            })
            .collect();
        let labels: Vec<&str> = task.labels.iter().map(LabelDef::verbalizer).collect();
        render(
            &self.classify,
            minijinja::context! {
                instruction => instruction.unwrap_or(""),
                demos => demos,
                text => text,
                input_field => task.input_field,
                label_field => task.label_field,
                description => task.description,
                labels => labels,
            },
        )
    }
}

/// The default instruction line for zero-shot prompts that want one.
pub fn default_instruction(task: &Task) -> String {
    let labels: Vec<&str> = task.labels.iter().map(LabelDef::verbalizer).collect();
    format!("Classify {} as {}.", task.description, labels.join(" or "))
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // Templates control their own whitespace; keep a trailing newline if the file has one.
    env.set_keep_trailing_newline(false);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env
}

fn read_template(path: &Path) -> Result<Template, PromptError> {
    let text = std::fs::read_to_string(path).map_err(|e| PromptError::Template {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(Template {
        source: TemplateSource::File(path.to_path_buf()),
        text,
    })
}

fn render(template: &Template, ctx: minijinja::Value) -> Result<String, PromptError> {
    let env = environment();
    let t = env
        .template_from_str(&template.text)
        .map_err(|e| PromptError::Template {
            path: template.source.to_string(),
            message: e.to_string(),
        })?;
    t.render(ctx).map_err(|e| PromptError::Template {
        path: template.source.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_prompt_matches_the_reference_format() {
        let task = Task::demo();
        let t = Templates::bundled();
        let demos = vec![
            Example {
                text: "a gorgeous, witty and deeply moving film.".into(),
                label: "positive".into(),
            },
            Example {
                text: "the plot is a tired collection of clichés and the acting is wooden.".into(),
                label: "negative".into(),
            },
        ];
        let p = t
            .render_classify(
                &task,
                &demos,
                "an utterly charming comedy that had the whole audience laughing.",
                None,
            )
            .unwrap();
        // The golden fixture's few-shot prompt, written by hand in the peers' format.
        assert_eq!(
            p,
            "Review: a gorgeous, witty and deeply moving film.\nSentiment: positive\n\nReview: the plot is a tired collection of clichés and the acting is wooden.\nSentiment: negative\n\nReview: an utterly charming comedy that had the whole audience laughing.\nSentiment:"
        );
        assert_eq!(
            t.render_classify(&task, &[], "x", None).unwrap(),
            "Review: x\nSentiment:"
        );
        assert_eq!(
            t.render_classify(&task, &[], "x", Some("Classify it."))
                .unwrap(),
            "Classify it.\n\nReview: x\nSentiment:"
        );
    }

    #[test]
    fn generate_prompt_lists_the_seeds_of_the_label() {
        let task = Task::demo();
        let t = Templates::bundled();
        let p = t
            .render_generate(&task, &task.labels[1], &["Great.", "Loved it."], &[])
            .unwrap();
        assert_eq!(p, "Positive movie reviews:\n\n- Great.\n- Loved it.\n-");
        let p = t
            .render_generate(
                &task,
                &task.labels[0],
                &["Dull."],
                &[("genre", "horror"), ("length", "one sentence")],
            )
            .unwrap();
        assert_eq!(
            p,
            "Negative movie reviews (genre: horror, length: one sentence):\n\n- Dull.\n-"
        );
    }

    #[test]
    fn a_task_folder_overrides_a_template_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut task = Task::demo();
        task.prompts = Some(dir.path().to_path_buf());
        std::fs::write(
            dir.path().join("generate.jinja"),
            "Write a {{ label_word }} {{ input_noun }}.",
        )
        .unwrap();
        let t = Templates::for_task(&task).unwrap();
        assert_eq!(
            t.render_generate(&task, &task.labels[0], &[], &[]).unwrap(),
            "Write a negative movie review."
        );
        assert!(matches!(t.classify.source, TemplateSource::Bundled(_)));
        std::fs::write(dir.path().join("classify.jinja"), "{% for %}").unwrap();
        let err = Templates::for_task(&task).unwrap_err().to_string();
        assert!(err.contains("classify.jinja"), "{err}");
    }
}
