//! Writing GGUF version 3 files.
//!
//! The layout is the one ggml's own writer produces and its reader insists on: tensor data in
//! the order the tensors were added, each starting at the next multiple of the alignment, and
//! the last one padded too, so llama.cpp can load what we write.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::error::{GgufError, Problem};
use super::ggml_type::GgmlType;
use super::metadata::{MetaArray, MetaValue};
use super::quant::quantize;
use super::reader::{DEFAULT_ALIGNMENT, MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS, align_up};

/// ggml keeps tensor names in a 64-byte buffer with a terminating NUL.
pub const MAX_TENSOR_NAME_LEN: usize = 63;

const ALIGNMENT_KEY: &str = "general.alignment";

/// Builds a GGUF file in memory, then writes it.
///
/// ```no_run
/// # use seedforge::llm::gguf::{GgufWriter, GgmlType};
/// # fn main() -> Result<(), seedforge::llm::gguf::GgufError> {
/// let mut w = GgufWriter::new();
/// w.add_metadata("general.architecture", "llama")?
///     .add_metadata("llama.block_count", 2u32)?
///     .add_metadata("tokenizer.ggml.tokens", vec!["<s>", "a", "b"])?;
/// // Shapes are row-major, as in PyTorch: [out_features, in_features].
/// w.add_tensor_f32("output_norm.weight", &[64], &[1.0; 64])?
///     .add_tensor_quantized("blk.0.attn_q.weight", &[64, 64], GgmlType::Q8_0, &[0.5; 64 * 64])?;
/// w.write(std::path::Path::new("tiny.gguf"))?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

#[derive(Debug, Clone)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    data: Vec<u8>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata entry; entries are written in the order they were added.
    ///
    /// `general.alignment` must be a `u32` power of two (see [`GgufWriter::set_alignment`]).
    pub fn add_metadata(
        &mut self,
        key: impl Into<String>,
        value: impl Into<MetaValue>,
    ) -> Result<&mut Self, GgufError> {
        let key = key.into();
        let value = value.into();
        if self.keys.contains(&key) {
            return Err(Problem::DuplicateKey { key }.into());
        }
        if key == ALIGNMENT_KEY {
            match value {
                MetaValue::U32(a) if a.is_power_of_two() => {}
                _ => {
                    return Err(Problem::BadAlignment {
                        detail: format!("must be a u32 power of two, got {value:?}"),
                    }
                    .into());
                }
            }
        }
        if let MetaValue::Array(a) = &value
            && array_depth(a) > MAX_ARRAY_DEPTH
        {
            return Err(Problem::InvalidMetadata {
                key,
                detail: format!("arrays nest deeper than {MAX_ARRAY_DEPTH} levels"),
            }
            .into());
        }
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(self)
    }

    /// Sets `general.alignment` (default 32): the data section and every tensor start at a
    /// multiple of it. Must be a power of two.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self, GgufError> {
        if !alignment.is_power_of_two() {
            return Err(Problem::BadAlignment {
                detail: format!("must be a power of two, got {alignment}"),
            }
            .into());
        }
        if let Some((_, v)) = self.metadata.iter_mut().find(|(k, _)| k == ALIGNMENT_KEY) {
            *v = MetaValue::U32(alignment);
            return Ok(self);
        }
        self.add_metadata(ALIGNMENT_KEY, alignment)
    }

    /// The alignment the file will use.
    pub fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find_map(|(k, v)| match (k.as_str(), v) {
                (ALIGNMENT_KEY, MetaValue::U32(a)) => Some(u64::from(*a)),
                _ => None,
            })
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Adds an F32 tensor. `shape` is row-major (`[rows, cols]`), `values` in row-major order.
    pub fn add_tensor_f32(
        &mut self,
        name: &str,
        shape: &[usize],
        values: &[f32],
    ) -> Result<&mut Self, GgufError> {
        self.add_tensor_quantized(name, shape, GgmlType::F32, values)
    }

    /// Adds a tensor encoded as `ty` (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1; see
    /// [`GgmlType::can_quantize`]). The last (fastest) dimension of the row-major `shape` must be
    /// a multiple of the type's block size.
    pub fn add_tensor_quantized(
        &mut self,
        name: &str,
        shape: &[usize],
        ty: GgmlType,
        values: &[f32],
    ) -> Result<&mut Self, GgufError> {
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let n_elements = self.check_tensor(name, &dims, ty)?;
        if n_elements != values.len() as u64 {
            return Err(invalid(
                name,
                format!(
                    "shape {shape:?} holds {n_elements} values but {} were given",
                    values.len()
                ),
            ));
        }
        let data = quantize(ty, values).map_err(|e| invalid(name, e.to_string()))?;
        self.push(name, dims, ty, data);
        Ok(self)
    }

    /// Adds a tensor from already-encoded bytes. `dims` is in GGUF order (fastest first, the
    /// reverse of a row-major shape), as in [`super::TensorInfo::dims`].
    pub fn add_tensor_raw(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, GgufError> {
        let n_elements = self.check_tensor(name, dims, ty)?;
        let data = bytes.into();
        // check_tensor proved the size is representable.
        let expected = ty.bytes_for(n_elements).unwrap_or(u64::MAX);
        if expected != data.len() as u64 {
            return Err(invalid(
                name,
                format!(
                    "dims {dims:?} of {ty} need {expected} bytes but {} were given",
                    data.len()
                ),
            ));
        }
        self.push(name, dims.to_vec(), ty, data);
        Ok(self)
    }

    /// Checks name and dims; returns the element count.
    fn check_tensor(&self, name: &str, dims: &[u64], ty: GgmlType) -> Result<u64, GgufError> {
        if name.is_empty() || name.len() > MAX_TENSOR_NAME_LEN {
            return Err(invalid(
                name,
                format!("names must be 1 to {MAX_TENSOR_NAME_LEN} bytes long"),
            ));
        }
        if self.names.contains(name) {
            return Err(Problem::DuplicateTensor {
                name: name.to_string(),
            }
            .into());
        }
        if dims.is_empty() || dims.len() as u64 > MAX_DIMS || dims.contains(&0) {
            return Err(invalid(
                name,
                format!("needs 1 to {MAX_DIMS} non-zero dimensions, got {dims:?}"),
            ));
        }
        let overflow = || invalid(name, format!("dims {dims:?} overflow 64 bits"));
        let n = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(overflow)?;
        if !dims[0].is_multiple_of(ty.block_size()) {
            return Err(invalid(
                name,
                format!(
                    "rows of {} values are not a multiple of the {ty} block size {}",
                    dims[0],
                    ty.block_size()
                ),
            ));
        }
        if ty.bytes_for(n).is_none() {
            return Err(overflow());
        }
        Ok(n)
    }

    fn push(&mut self, name: &str, dims: Vec<u64>, ggml_type: GgmlType, data: Vec<u8>) {
        self.names.insert(name.to_string());
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims,
            ggml_type,
            data,
        });
    }

    /// The complete file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let mut out = Vec::new();
        self.write_to(&mut out).map_err(|source| {
            GgufError::new(Problem::Io {
                action: "write to memory",
                source,
            })
        })?;
        Ok(out)
    }

    /// Writes the file to `path`, replacing any file there.
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        let io = |action, source| GgufError::in_file(path, Problem::Io { action, source });
        let file = File::create(path).map_err(|e| io("create the file", e))?;
        let mut w = BufWriter::new(file);
        self.write_to(&mut w).map_err(|e| io("write the file", e))?;
        w.into_inner()
            .map_err(|e| io("write the file", e.into_error()))?
            .sync_all()
            .map_err(|e| io("flush the file", e))
    }

    /// Streams the file to `w`.
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        let alignment = self.alignment();
        let mut head = Vec::new();
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut head, key);
            put_value(&mut head, value);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut head, &t.name);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offset = next_aligned(offset + t.data.len() as u64, alignment)?;
        }
        w.write_all(&head)?;
        write_padding(w, head.len() as u64, alignment)?;
        for t in &self.tensors {
            w.write_all(&t.data)?;
            write_padding(w, t.data.len() as u64, alignment)?;
        }
        Ok(())
    }
}

/// Zeros from `len` up to the next multiple of `alignment`.
fn write_padding(w: &mut impl Write, len: u64, alignment: u64) -> std::io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut left = next_aligned(len, alignment)? - len;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64);
        w.write_all(&ZEROS[..n as usize])?;
        left -= n;
    }
    Ok(())
}

fn next_aligned(pos: u64, alignment: u64) -> std::io::Result<u64> {
    align_up(pos, alignment)
        .ok_or_else(|| std::io::Error::other("the file would be larger than 2^64 bytes"))
}

fn invalid(name: &str, detail: String) -> GgufError {
    Problem::InvalidTensor {
        name: name.to_string(),
        detail,
    }
    .into()
}

fn array_depth(a: &MetaArray) -> usize {
    match a {
        MetaArray::Array(inner) => 1 + inner.iter().map(array_depth).max().unwrap_or(0),
        _ => 1,
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &MetaValue) {
    out.extend_from_slice(&value.value_type().id().to_le_bytes());
    put_payload(out, value);
}

/// The value without its type tag (arrays carry their element type inside).
fn put_payload(out: &mut Vec<u8>, value: &MetaValue) {
    match value {
        MetaValue::U8(v) => out.push(*v),
        MetaValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Bool(v) => out.push(u8::from(*v)),
        MetaValue::String(s) => put_string(out, s),
        MetaValue::Array(a) => put_array(out, a),
        MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &MetaArray) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    fn each<T>(out: &mut Vec<u8>, items: &[T], put: impl Fn(&mut Vec<u8>, &T)) {
        items.iter().for_each(|item| put(out, item));
    }
    match a {
        MetaArray::U8(v) => out.extend_from_slice(v),
        MetaArray::I8(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetaArray::U16(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I16(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetaArray::U32(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I32(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetaArray::F32(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetaArray::Bool(v) => each(out, v, |o, x| o.push(u8::from(*x))),
        MetaArray::String(v) => each(out, v, |o, s| put_string(o, s)),
        MetaArray::Array(v) => each(out, v, put_array),
        MetaArray::U64(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I64(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        MetaArray::F64(v) => each(out, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_tensors() {
        let mut w = GgufWriter::new();
        assert!(w.add_tensor_f32("a", &[2, 3], &[0.0; 5]).is_err());
        assert!(w.add_tensor_f32("", &[1], &[0.0]).is_err());
        assert!(w.add_tensor_f32(&"x".repeat(64), &[1], &[0.0]).is_err());
        assert!(w.add_tensor_f32("a", &[0], &[]).is_err());
        assert!(w.add_tensor_f32("a", &[1, 1, 1, 1, 1], &[0.0]).is_err());
        assert!(
            w.add_tensor_quantized("a", &[2, 16], GgmlType::Q8_0, &[0.0; 32])
                .is_err()
        );
        assert!(
            w.add_tensor_raw("a", &[32], GgmlType::Q8_0, vec![0; 33])
                .is_err()
        );
        assert!(
            w.add_tensor_raw("a", &[u64::MAX, 4], GgmlType::F32, vec![])
                .is_err()
        );
        w.add_tensor_f32("a", &[2], &[1.0, 2.0]).unwrap();
        let err = w.add_tensor_f32("a", &[2], &[1.0, 2.0]).unwrap_err();
        assert_eq!(err.to_string(), "tensor 'a' appears twice");
    }

    #[test]
    fn rejects_bad_metadata() {
        let mut w = GgufWriter::new();
        w.add_metadata("k", 1u8).unwrap();
        assert!(w.add_metadata("k", 2u8).is_err());
        assert!(w.add_metadata("general.alignment", 24u32).is_err());
        assert!(w.add_metadata("general.alignment", 32u64).is_err());
        assert!(w.set_alignment(0).is_err());
        let mut deep = MetaArray::U8(vec![1]);
        for _ in 0..MAX_ARRAY_DEPTH {
            deep = MetaArray::Array(vec![deep]);
        }
        assert!(w.add_metadata("deep", deep).is_err());
    }

    #[test]
    fn set_alignment_replaces_the_key() {
        let mut w = GgufWriter::new();
        w.set_alignment(64).unwrap().set_alignment(8).unwrap();
        assert_eq!(w.alignment(), 8);
        assert_eq!(w.metadata.len(), 1);
    }

    #[test]
    fn empty_file_layout() {
        // magic, version 3, 0 tensors, 0 kvs, padded to 32 bytes.
        let bytes = GgufWriter::new().to_bytes().unwrap();
        let mut expected = b"GGUF".to_vec();
        expected.extend_from_slice(&3u32.to_le_bytes());
        expected.extend_from_slice(&[0; 16]);
        expected.resize(32, 0);
        assert_eq!(bytes, expected);
    }
}
