//! GGUF: reading (memory-mapped, validated up front), dequantizing and writing.
//!
//! ```text
//! "GGUF" | version u32 | n_tensors u64 | n_kv u64
//! n_kv × (key string, type u32, value)           metadata, see `MetaValue`
//! n_tensors × (name, n_dims u32, dims u64[n_dims], ggml type u32, offset u64)
//! padding to `general.alignment` (default 32)
//! tensor data, each tensor at data section start + offset (aligned)
//! ```
//!
//! Shapes: `TensorInfo::dims` is GGUF's `ne` order (fastest-varying first), so a PyTorch
//! `[out, in]` weight has dims `[in, out]`; `TensorInfo::shape()` and `DenseTensor::shape` are
//! row-major (`[out, in]`), and `DenseTensor::data` is in row-major order.
//!
//! [`GgufFile::open`] checks the whole header against the file before returning: a truncated,
//! hostile or corrupt file yields a [`GgufError`] naming the file and the problem, never a panic
//! and never an allocation larger than the file justifies.

mod cursor;
mod dequant;
mod error;
mod file;
mod ggml_type;
mod metadata;
mod quant;
mod reader;
mod tensor;
mod writer;

pub use dequant::{dequantize, dequantize_into};
pub use error::{GgufError, Problem};
pub use file::GgufFile;
pub use ggml_type::GgmlType;
pub use metadata::{MetaArray, MetaValue, MetaValueType};
pub use quant::quantize;
pub use reader::{DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
pub use tensor::{DenseTensor, TensorInfo};
pub use writer::{GgufWriter, MAX_TENSOR_NAME_LEN};
