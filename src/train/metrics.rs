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
        /// In a soup: this member's number (from 1) and how many there are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<[usize; 2]>,
    },
    /// One optimizer step (after `grad_accum` micro-batches).
    Step {
        step: usize,
        epoch: usize,
        /// Mean loss over the step's target tokens.
        #[serde(deserialize_with = "number")]
        loss: f64,
        #[serde(deserialize_with = "number")]
        lr: f64,
        /// Global L2 norm of the LoRA gradients before clipping.
        #[serde(deserialize_with = "number")]
        grad_norm: f64,
        #[serde(deserialize_with = "number")]
        step_time_s: f64,
        /// Real (non-padding) tokens of the step.
        tokens: usize,
        #[serde(deserialize_with = "number")]
        tokens_per_s: f64,
        #[serde(deserialize_with = "number")]
        elapsed_s: f64,
    },
    /// End of an epoch: validation loss and accuracy on the held-out real examples.
    Eval {
        epoch: usize,
        step: usize,
        #[serde(deserialize_with = "number")]
        train_loss: f64,
        val_loss: Option<f64>,
        val_accuracy: Option<f64>,
        /// This epoch is the best so far (its adapter is kept).
        best: bool,
        #[serde(deserialize_with = "number")]
        eval_time_s: f64,
        #[serde(deserialize_with = "number")]
        elapsed_s: f64,
    },
    Paused {
        step: usize,
    },
    Resumed {
        step: usize,
    },
    /// A stopped or interrupted run goes on from its checkpoint (`seedforge train --resume`):
    /// the events before this line are the run's up to that checkpoint, the steps after it
    /// continue from `step`.
    Restored {
        step: usize,
        epoch: usize,
    },
    Finished {
        reason: StopReason,
        steps: usize,
        epochs: usize,
        best_epoch: Option<usize>,
        best_val_loss: Option<f64>,
        best_val_accuracy: Option<f64>,
        #[serde(deserialize_with = "number")]
        elapsed_s: f64,
    },
}

impl TrainEvent {
    /// A soup member's event as the soup reports it: its steps counted after the `before` steps
    /// of the members before it, and `members` runs of about this length planned in all, so a
    /// live chart draws the soup as one curve instead of starting over at each member.
    /// `index` counts members from 0.
    pub fn in_soup(&self, before: usize, index: usize, members: usize) -> TrainEvent {
        let mut e = self.clone();
        match &mut e {
            TrainEvent::Started {
                total_steps,
                member,
                ..
            } => {
                *total_steps *= members.max(1);
                *member = Some([index + 1, members]);
            }
            TrainEvent::Step { step, .. }
            | TrainEvent::Eval { step, .. }
            | TrainEvent::Paused { step }
            | TrainEvent::Resumed { step }
            | TrainEvent::Restored { step, .. } => *step += before,
            TrainEvent::Finished { steps, .. } => *steps += before,
        }
        e
    }
}

/// Appends events to a `metrics.jsonl`, flushing each line so a crash or a `tail -f` sees every
/// finished step.
pub struct MetricsWriter {
    out: BufWriter<File>,
    path: String,
    /// Bytes in the file (what a checkpoint records, to cut the file there on resuming).
    len: u64,
}

impl MetricsWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(MetricsWriter {
            out: BufWriter::new(File::create(path)?),
            path: path.display().to_string(),
            len: 0,
        })
    }

    /// Opens an existing file to go on after its first `len` bytes (a resumed run: what came
    /// after its checkpoint is dropped). Errors when the file is shorter than that.
    pub fn continue_at(path: &Path, len: u64) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let have = file
            .metadata()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            .len();
        anyhow::ensure!(
            have >= len,
            "{}: {have} bytes, but the checkpoint was taken after {len}; the run's metrics were \
             cut short",
            path.display()
        );
        file.set_len(len)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut out = BufWriter::new(file);
        std::io::Seek::seek(&mut out, std::io::SeekFrom::Start(len))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(MetricsWriter {
            out,
            path: path.display().to_string(),
            len,
        })
    }

    pub fn write(&mut self, event: &TrainEvent) -> anyhow::Result<()> {
        let line = serde_json::to_string(event)?;
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path))?;
        self.len += line.len() as u64 + 1;
        Ok(())
    }

    /// Bytes written to the file so far (all flushed).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reads a `metrics.jsonl` back; errors name the file and line. A last line without its
/// newline is one being written (the file of a running job) and is left for the next read.
pub fn read_metrics(path: &Path) -> anyhow::Result<Vec<TrainEvent>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let last = text.lines().count();
    let unterminated = !text.ends_with('\n');
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .filter_map(|(i, l)| match serde_json::from_str(l) {
            Ok(e) => Some(Ok(e)),
            Err(_) if unterminated && i + 1 == last => None,
            Err(e) => Some(Err(anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))),
        })
        .collect()
}

/// A number as JSON writes it: a NaN or infinite value (a diverged loss) is written `null`, and
/// reads back as NaN.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
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

    #[test]
    fn a_resumed_file_is_cut_where_the_checkpoint_was_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut w = MetricsWriter::create(&path).unwrap();
        w.write(&TrainEvent::Paused { step: 1 }).unwrap();
        let cut = w.len();
        assert_eq!(cut, std::fs::metadata(&path).unwrap().len());
        w.write(&TrainEvent::Paused { step: 2 }).unwrap();
        drop(w);
        let mut w = MetricsWriter::continue_at(&path, cut).unwrap();
        w.write(&TrainEvent::Restored { step: 1, epoch: 0 })
            .unwrap();
        assert_eq!(w.len(), std::fs::metadata(&path).unwrap().len());
        drop(w);
        assert_eq!(
            read_metrics(&path).unwrap(),
            [
                TrainEvent::Paused { step: 1 },
                TrainEvent::Restored { step: 1, epoch: 0 }
            ]
        );
        let err = MetricsWriter::continue_at(&path, 10_000).err().unwrap();
        assert!(err.to_string().contains("cut short"), "{err}");
    }
}
