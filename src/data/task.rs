//! The task definition every step reads: labels, the word the model says for each label, a
//! one-line description, and the real seed examples.
//!
//! On disk a task is either a folder (`task.toml` + `seeds.jsonl`, the workspace layout) or a
//! single TOML file whose seeds are inline `[[seeds]]` tables (handy for sharing a task).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of the `task.toml` format written by this release.
pub const TASK_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}:{line}: {message}")]
    Seed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: invalid task: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One class of the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelDef {
    /// The label as the user and the data files name it (e.g. `positive`, `LOC`).
    pub name: String,
    /// The word(s) the model is asked to produce for this label. Defaults to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbalizer: Option<String>,
}

impl LabelDef {
    pub fn verbalizer(&self) -> &str {
        self.verbalizer.as_deref().unwrap_or(&self.name)
    }
}

/// A labelled text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub label: String,
}

/// A property varied across generation requests (AttrPrompt, arXiv 2306.15895): each request
/// draws one of `values`, and the generation template says it (the bundled one in the heading:
/// "Negative movie reviews (genre: horror):").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub values: Vec<String>,
}

/// The task as written in `task.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    #[serde(default = "default_version")]
    pub format_version: u32,
    pub name: String,
    /// One line saying what is classified, used in prompts (e.g. "the sentiment of a movie review").
    pub description: String,
    /// What one input is called in prompts (e.g. "movie review", "question").
    #[serde(default = "default_input_noun")]
    pub input_noun: String,
    /// Field names of the classification prompt: `Review: …` / `Sentiment: positive`.
    #[serde(default = "default_input_field")]
    pub input_field: String,
    #[serde(default = "default_label_field")]
    pub label_field: String,
    pub labels: Vec<LabelDef>,
    /// Folder of prompt templates overriding the bundled ones, relative to the task file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PathBuf>,
    /// Properties each generation request draws a value of (`[[attributes]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    /// Seeds given inline (single-file tasks). A workspace keeps them in `seeds.jsonl` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<Example>,
}

fn default_version() -> u32 {
    TASK_FORMAT_VERSION
}

fn default_input_noun() -> String {
    "text".to_string()
}

fn default_input_field() -> String {
    "Text".to_string()
}

fn default_label_field() -> String {
    "Label".to_string()
}

impl Task {
    pub fn label_names(&self) -> Vec<&str> {
        self.labels.iter().map(|l| l.name.as_str()).collect()
    }

    pub fn label_index(&self, name: &str) -> Option<usize> {
        self.labels.iter().position(|l| l.name == name)
    }

    pub fn seeds_of<'a>(&'a self, label: &'a str) -> impl Iterator<Item = &'a Example> + 'a {
        self.seeds.iter().filter(move |e| e.label == label)
    }

    /// Checks what every later step relies on; `path` only names the file in the error.
    pub fn validate(&self, path: &Path) -> Result<(), TaskError> {
        let invalid = |message: String| TaskError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.format_version > TASK_FORMAT_VERSION {
            return Err(invalid(format!(
                "format_version {} is newer than this seedforge understands ({TASK_FORMAT_VERSION})",
                self.format_version
            )));
        }
        if self.labels.len() < 2 {
            return Err(invalid("a task needs at least two labels".into()));
        }
        for (i, l) in self.labels.iter().enumerate() {
            if l.name.trim().is_empty() {
                return Err(invalid(format!("label {} has an empty name", i + 1)));
            }
            if l.verbalizer().trim().is_empty() {
                return Err(invalid(format!(
                    "label `{}` has an empty verbalizer",
                    l.name
                )));
            }
            if self.labels[..i].iter().any(|o| o.name == l.name) {
                return Err(invalid(format!("label `{}` appears twice", l.name)));
            }
        }
        for (i, a) in self.attributes.iter().enumerate() {
            if a.name.trim().is_empty() {
                return Err(invalid(format!("attribute {} has an empty name", i + 1)));
            }
            if a.values.iter().all(|v| v.trim().is_empty()) {
                return Err(invalid(format!(
                    "attribute `{}` has no values: give `values = [\"…\", …]`",
                    a.name
                )));
            }
            if self.attributes[..i].iter().any(|o| o.name == a.name) {
                return Err(invalid(format!("attribute `{}` appears twice", a.name)));
            }
        }
        for s in &self.seeds {
            if self.label_index(&s.label).is_none() {
                return Err(invalid(format!(
                    "seed {:?} has label `{}`, which is not one of {:?}",
                    s.text,
                    s.label,
                    self.label_names()
                )));
            }
        }
        Ok(())
    }

    /// Loads a task from a folder (`task.toml` + optional `seeds.jsonl`) or a single TOML file.
    /// A folder holding [`PENDING_SEEDS_FILE`] is in the middle of moving its inline seeds out
    /// of `task.toml`: that file is then the whole seed list, and the other two hold none of it.
    pub fn load(path: &Path) -> Result<Task, TaskError> {
        let (toml_path, seeds_path) = if path.is_dir() {
            (path.join("task.toml"), Some(path.join("seeds.jsonl")))
        } else {
            (path.to_path_buf(), None)
        };
        let text = std::fs::read_to_string(&toml_path).map_err(|source| TaskError::Io {
            path: toml_path.clone(),
            source,
        })?;
        let mut task: Task = toml::from_str(&text).map_err(|e| TaskError::Parse {
            path: toml_path.clone(),
            message: e.to_string(),
        })?;
        let pending = path.is_dir().then(|| path.join(PENDING_SEEDS_FILE));
        if let Some(pending) = pending.filter(|p| p.exists()) {
            task.seeds = read_seeds_jsonl(&pending)?;
        } else if let Some(seeds_path) = seeds_path.filter(|p| p.exists()) {
            task.seeds.extend(read_seeds_jsonl(&seeds_path)?);
        }
        if let (Some(dir), Some(prompts)) = (toml_path.parent(), task.prompts.as_ref())
            && prompts.is_relative()
        {
            task.prompts = Some(dir.join(prompts));
        }
        task.validate(&toml_path)?;
        Ok(task)
    }

    /// The bundled demo task (sentiment of short movie reviews).
    pub fn demo() -> Task {
        let task: Task = toml::from_str(DEMO_TASK_TOML).expect("the bundled demo task parses");
        task
    }
}

/// The new seed list while a workspace moves its inline seeds out of `task.toml`
/// (`Workspace::set_seeds`); renamed to `seeds.jsonl` once `task.toml` holds none.
pub const PENDING_SEEDS_FILE: &str = "seeds.jsonl.pending";

/// The bundled demo task, compiled in so the workbench works from any folder.
pub const DEMO_TASK_TOML: &str = include_str!("../../assets/demo/task.toml");

fn read_seeds_jsonl(path: &Path) -> Result<Vec<Example>, TaskError> {
    let text = std::fs::read(path).map_err(|source| TaskError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut seeds = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let seed_err = |message: String| TaskError::Seed {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let line = std::str::from_utf8(line)
            .map_err(|e| seed_err(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(line).map_err(|e| seed_err(e.to_string()))?;
        seeds.push(ex);
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_task_is_valid_with_four_seeds_per_label() {
        let t = Task::demo();
        t.validate(Path::new("demo")).unwrap();
        for l in &t.labels {
            assert_eq!(t.seeds_of(&l.name).count(), 4, "label {}", l.name);
        }
    }

    #[test]
    fn folder_task_reads_seeds_and_names_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("task.toml"),
            "name = \"t\"\ndescription = \"d\"\n[[labels]]\nname = \"a\"\n[[labels]]\nname = \"b\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("seeds.jsonl"),
            "{\"text\":\"x\",\"label\":\"a\"}\n\n{\"text\":\"y\",\"label\":\"b\"}\n",
        )
        .unwrap();
        let t = Task::load(dir.path()).unwrap();
        assert_eq!(t.seeds.len(), 2);

        std::fs::write(
            dir.path().join("seeds.jsonl"),
            "{\"text\":\"x\",\"label\":\"a\"}\n{oops\n",
        )
        .unwrap();
        let err = Task::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("seeds.jsonl:2:"), "{err}");
    }

    #[test]
    fn unknown_seed_label_is_rejected() {
        let mut t = Task::demo();
        t.seeds[0].label = "neutral".into();
        let err = t.validate(Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("neutral"), "{err}");
    }

    #[test]
    fn attributes_are_read_from_toml_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.toml");
        let mut text = toml::to_string(&Task::demo()).unwrap();
        text.push_str(
            "\n[[attributes]]\nname = \"genre\"\nvalues = [\"horror\", \"comedy\"]\n\n\
             [[attributes]]\nname = \"length\"\nvalues = [\"one line\"]\n",
        );
        std::fs::write(&path, &text).unwrap();
        let t = Task::load(&path).unwrap();
        assert_eq!(
            t.attributes,
            [
                Attribute {
                    name: "genre".into(),
                    values: vec!["horror".into(), "comedy".into()]
                },
                Attribute {
                    name: "length".into(),
                    values: vec!["one line".into()]
                }
            ]
        );
        // A task without any writes none back.
        assert!(
            !toml::to_string(&Task::demo())
                .unwrap()
                .contains("attributes")
        );
        let check = |a: Vec<Attribute>| {
            let mut t = Task::demo();
            t.attributes = a;
            t.validate(Path::new("x.toml")).unwrap_err().to_string()
        };
        let attr = |name: &str, values: &[&str]| Attribute {
            name: name.into(),
            values: values.iter().map(|v| (*v).to_string()).collect(),
        };
        assert!(check(vec![attr("genre", &[" "])]).contains("`genre` has no values"));
        assert!(check(vec![attr(" ", &["a"])]).contains("attribute 1 has an empty name"));
        let twice = check(vec![attr("genre", &["a"]), attr("genre", &["b"])]);
        assert!(twice.contains("`genre` appears twice"), "{twice}");
    }
}
