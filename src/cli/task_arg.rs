//! The `--task` option: a task folder or file, or the bundled demo task.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::data::task::Task;

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
