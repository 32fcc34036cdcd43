//! What a training run reports while it runs: [`TrainEvent`]s, sent to the caller (engine, TUI,
//! headless progress bar) and appended to `runs/<id>/metrics.jsonl`, one JSON object a line with
//! an `"event"` tag, so a run can be plotted elsewhere (`jq`, pandas) as well as live.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All epochs ran.
    Completed,
    /// Validation loss stopped improving for `patience` epochs.
    EarlyStopped,
    /// The user (or the engine) asked it to stop.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    Started {
        train_examples: usize,
        val_examples: usize,
        epochs: usize,
        steps_per_epoch: usize,
        total_steps: usize,
        trainable_params: usize,
        device: String,
    },
    /// One optimizer step (after `grad_accum` micro-batches).
    Step {
        step: usize,
        epoch: usize,
        /// Mean loss over the step's target tokens.
        loss: f64,
        lr: f64,
        /// Global L2 norm of the LoRA gradients before clipping.
        grad_norm: f64,
        step_time_s: f64,
        /// Real (non-padding) tokens of the step.
        tokens: usize,
        tokens_per_s: f64,
        elapsed_s: f64,
    },
    /// End of an epoch: validation loss and accuracy on the held-out real examples.
    Eval {
        epoch: usize,
        step: usize,
        train_loss: f64,
        val_loss: Option<f64>,
        val_accuracy: Option<f64>,
        /// This epoch is the best so far (its adapter is kept).
        best: bool,
        eval_time_s: f64,
        elapsed_s: f64,
    },
    Paused {
        step: usize,
    },
    Resumed {
        step: usize,
    },
    Finished {
        reason: StopReason,
        steps: usize,
        epochs: usize,
        best_epoch: Option<usize>,
        best_val_loss: Option<f64>,
        best_val_accuracy: Option<f64>,
        elapsed_s: f64,
    },
}

/// Appends events to a `metrics.jsonl`, flushing each line so a crash or a `tail -f` sees every
/// finished step.
pub struct MetricsWriter {
    out: BufWriter<File>,
    path: String,
}

impl MetricsWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(MetricsWriter {
            out: BufWriter::new(File::create(path)?),
            path: path.display().to_string(),
        })
    }

    pub fn write(&mut self, event: &TrainEvent) -> anyhow::Result<()> {
        let line = serde_json::to_string(event)?;
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path))
    }
}

/// Reads a `metrics.jsonl` back (for plots and tests); errors name the line.
pub fn read_metrics(path: &Path) -> anyhow::Result<Vec<TrainEvent>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_jsonl_with_a_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let events = vec![
            TrainEvent::Step {
                step: 1,
                epoch: 0,
                loss: 2.5,
                lr: 1e-4,
                grad_norm: 0.7,
                step_time_s: 0.3,
                tokens: 140,
                tokens_per_s: 466.0,
                elapsed_s: 0.3,
            },
            TrainEvent::Finished {
                reason: StopReason::EarlyStopped,
                steps: 9,
                epochs: 3,
                best_epoch: Some(1),
                best_val_loss: Some(0.4),
                best_val_accuracy: None,
                elapsed_s: 3.0,
            },
        ];
        let mut w = MetricsWriter::create(&path).unwrap();
        for e in &events {
            w.write(e).unwrap();
        }
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["event"], "step");
        assert_eq!(first["tokens_per_s"], 466.0);
        assert!(text.contains("\"reason\":\"early_stopped\""));
        assert_eq!(read_metrics(&path).unwrap(), events);
    }
}
