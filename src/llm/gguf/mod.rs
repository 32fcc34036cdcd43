//! TEMPORARY interface stub; the real reader lands from the `gguf` branch.
#![allow(dead_code, unused_variables)]

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GgufError(pub String);

#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    String(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
}
impl GgmlType {
    pub fn name(&self) -> &'static str {
        "F32"
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub offset: u64,
}

pub struct DenseTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub struct GgufFile {
    path: PathBuf,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        todo!()
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        todo!()
    }
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        todo!()
    }
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        todo!()
    }
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        todo!()
    }
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        todo!()
    }
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        todo!()
    }
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>, GgufError> {
        todo!()
    }
    pub fn tensors(&self) -> &[TensorInfo] {
        todo!()
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        todo!()
    }
    pub fn dequantize(&self, name: &str) -> Result<DenseTensor, GgufError> {
        todo!()
    }
}
