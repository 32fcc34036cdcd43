//! Distillation into a small, fast student (2310.01119's last step): a fastText-style
//! classifier over hashed word and character n-grams, trained in Burn on the teacher's soft
//! labels, that labels texts a hundred times faster than the language model it learned from.
//!
//! - [`features`]: texts → hashed feature ids (pure);
//! - [`model`]: the network;
//! - [`train`]: soft-target training;
//! - [`store`]: the run folder's `student.safetensors` + `student.json`;
//! - [`distil`]: the whole step, from a teacher run to a saved student.

pub mod distil;
pub mod features;
pub mod model;
pub mod store;
pub mod train;

use std::path::Path;

use burn::tensor::Device;

use crate::pipeline::classify::Prediction;
use model::{FeatureBatch, StudentNet};
use store::StudentRecord;

/// Texts one forward pass scores.
const BATCH: usize = 512;

/// A loaded student, ready to label texts.
pub struct Student {
    pub net: StudentNet,
    pub record: StudentRecord,
    device: Device,
}

impl Student {
    pub fn new(net: StudentNet, record: StudentRecord, device: Device) -> Self {
        Student {
            net,
            record,
            device,
        }
    }

    pub fn load(dir: &Path, device: &Device) -> Result<Self, store::StoreError> {
        let (net, record) = store::load(dir, device)?;
        Ok(Student::new(net, record, device.clone()))
    }

    /// The label distribution of each text, as the language-model classifiers give theirs
    /// (`log_likelihoods` are the student's log-probabilities).
    pub fn classify(&self, texts: &[&str]) -> anyhow::Result<Vec<Prediction>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let feats: Vec<Vec<u32>> = chunk
                .iter()
                .map(|t| self.record.config.hashing.features(t))
                .collect();
            let refs: Vec<&[u32]> = feats.iter().map(Vec::as_slice).collect();
            let logits = self.net.forward(&FeatureBatch::new(&refs, &self.device));
            let k = self.record.labels.len();
            let rows = crate::llm::readback::f32_values(logits.into_data(), "student logits")?;
            for row in rows.chunks_exact(k) {
                out.push(prediction(&self.record.labels, row));
            }
        }
        Ok(out)
    }
}

/// A [`Prediction`] from one row of logits.
fn prediction(labels: &[String], logits: &[f32]) -> Prediction {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = m + logits.iter().map(|x| (x - m).exp()).sum::<f32>().ln();
    let logp: Vec<f64> = logits.iter().map(|x| f64::from(x - lse)).collect();
    let best = logp
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Prediction {
        label: labels[best].clone(),
        probs: labels
            .iter()
            .zip(&logp)
            .map(|(l, p)| (l.clone(), p.exp()))
            .collect(),
        log_likelihoods: logp,
        judge: None,
    }
}
