//! A student on disk: `student.safetensors` (its weights) and `student.json` (how it reads
//! texts, its labels, where it came from). The JSON is written last and marks a student run:
//! a folder with only the weights is an unfinished save.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::model::StudentNet;
use super::train::StudentConfig;
use crate::data::atomic::write_atomic_bytes;

pub const WEIGHTS_FILE: &str = "student.safetensors";
pub const CONFIG_FILE: &str = "student.json";

/// What `student.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentRecord {
    pub seedforge_version: String,
    /// The architecture: hashed n-grams, mean embedding, linear (fastText's).
    pub kind: String,
    pub task_name: String,
    /// Label names, in the order of the output layer.
    pub labels: Vec<String>,
    pub config: StudentConfig,
    /// The run whose classifier labelled the training texts.
    pub teacher: PathBuf,
    /// The temperature its probabilities were softened by.
    pub temperature: f64,
    /// Texts trained on: the seeds (their own labels), the teacher's training texts and the
    /// unlabelled texts (both labelled by the teacher).
    pub seeds: usize,
    pub teacher_texts: usize,
    pub unlabelled_texts: usize,
    /// Mean training loss after the last epoch.
    pub final_loss: f64,
}

pub const KIND: &str = "hashed-ngrams-mean-embedding-linear";

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct StoreError {
    pub path: PathBuf,
    pub reason: String,
}

fn err(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether `dir` is a student run (it has `student.json`).
pub fn is_student(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file()
}

fn f32s<const D: usize>(t: Tensor<D>, path: &Path) -> Result<Vec<f32>, StoreError> {
    crate::llm::readback::f32_values(t.into_data(), "the student's weights")
        .map_err(|e| err(path, e.to_string()))
}

/// Saves `net` and `record` into `dir` (created), each file replaced whole.
pub fn save(dir: &Path, net: &StudentNet, record: &StudentRecord) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;
    let [buckets, dim] = net.table.shape().dims::<2>();
    let labels = net.labels();
    let weights = dir.join(WEIGHTS_FILE);
    let bytes = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let tensors = [
        (
            "table",
            vec![buckets, dim],
            bytes(f32s(net.table.val(), &weights)?),
        ),
        (
            "out",
            vec![dim, labels],
            bytes(f32s(net.out.val(), &weights)?),
        ),
        ("bias", vec![labels], bytes(f32s(net.bias.val(), &weights)?)),
    ];
    let views = tensors
        .iter()
        .map(|(k, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (k.to_string(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&weights, e.to_string()))?;
    let meta = HashMap::from([("format".to_string(), "seedforge-student".to_string())]);
    let data =
        safetensors::serialize(views, Some(meta)).map_err(|e| err(&weights, e.to_string()))?;
    write_atomic_bytes(&weights, &data).map_err(|e| err(&weights, e.to_string()))?;
    let config = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(record).map_err(|e| err(&config, e.to_string()))?;
    write_atomic_bytes(&config, (text + "\n").as_bytes()).map_err(|e| err(&config, e.to_string()))
}

/// Reads the record of the student in `dir`.
pub fn read_record(dir: &Path) -> Result<StudentRecord, StoreError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
    let record: StudentRecord = serde_json::from_str(&text)
        .map_err(|e| err(&path, format!("not a student record: {e}")))?;
    if record.kind != KIND {
        return Err(err(
            &path,
            format!("unknown student kind `{}`", record.kind),
        ));
    }
    Ok(record)
}

/// Loads the student in `dir` onto `device`, checking every tensor against the record.
pub fn load(dir: &Path, device: &Device) -> Result<(StudentNet, StudentRecord), StoreError> {
    let record = read_record(dir)?;
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| err(&path, e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| err(&path, format!("not a complete safetensors file: {e}")))?;
    let buckets = record.config.hashing.buckets as usize;
    let dim = record.config.dim;
    let labels = record.labels.len();
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, StoreError> {
        let v = st
            .tensor(name)
            .map_err(|e| err(&path, format!("tensor `{name}`: {e}")))?;
        if v.dtype() != safetensors::Dtype::F32 || v.shape() != shape {
            return Err(err(
                &path,
                format!(
                    "tensor `{name}` is {:?} {:?}, the record says F32 {shape:?}",
                    v.dtype(),
                    v.shape()
                ),
            ));
        }
        Ok(v.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let table = read("table", &[buckets, dim])?;
    let out = read("out", &[dim, labels])?;
    let bias = read("bias", &[labels])?;
    if table
        .iter()
        .chain(&out)
        .chain(&bias)
        .any(|x| !x.is_finite())
    {
        return Err(err(&path, "holds values that are not finite numbers"));
    }
    let net = StudentNet {
        table: Param::from_tensor(Tensor::from_data(
            TensorData::new(table, [buckets, dim]),
            device,
        )),
        out: Param::from_tensor(Tensor::from_data(
            TensorData::new(out, [dim, labels]),
            device,
        )),
        bias: Param::from_tensor(Tensor::from_data(TensorData::new(bias, [labels]), device)),
    };
    Ok((net, record))
}
