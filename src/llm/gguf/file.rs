//! `GgufFile`: an opened, fully validated GGUF file and its accessors.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::dequant;
use super::error::{GgufError, Problem};
use super::metadata::{MetaArray, MetaValue};
use super::reader::{self, Header};
use super::tensor::{DenseTensor, TensorInfo};

/// The bytes of the file: mapped from disk, or owned (tests, files built in memory).
enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A GGUF file whose header has been read and checked: every metadata value decoded, every
/// tensor's data known to lie, aligned and without overlap, inside the file. Tensor data stays in
/// the memory map until asked for.
pub struct GgufFile {
    path: PathBuf,
    backing: Backing,
    header: Header,
    by_name: HashMap<String, usize>,
}

impl GgufFile {
    /// Maps the file at `path` and validates it.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |action, source| GgufError::in_file(path, Problem::Io { action, source });
        let file = File::open(path).map_err(|e| io("open the file", e))?;
        let len = file
            .metadata()
            .map_err(|e| io("read the file size", e))?
            .len();
        let backing = if len == 0 {
            // Some platforms refuse to map an empty file; it is a truncated GGUF either way.
            Backing::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and we never hand out a reference that outlives it.
            // As with every memory-mapped model loader, another process truncating or rewriting
            // the file while it is mapped is undefined behaviour; copying ~100 MB at every load
            // to rule that out is not worth it for a file the user chose to load.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io("map the file", e))?;
            Backing::Mapped(map)
        };
        GgufFile::from_backing(path.to_path_buf(), backing)
    }

    /// Validates GGUF data held in memory. `path` only names it in messages.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        GgufFile::from_backing(path.into(), Backing::Owned(bytes))
    }

    fn from_backing(path: PathBuf, backing: Backing) -> Result<GgufFile, GgufError> {
        let header = reader::parse(backing.bytes()).map_err(|p| GgufError::in_file(&path, p))?;
        let by_name = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path,
            backing,
            header,
            by_name,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// Alignment of the tensor data (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Absolute file offset where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.backing.bytes().len() as u64
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.header.metadata
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.header
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// `general.architecture` (e.g. `"llama"`), which prefixes the model's own keys.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.header.tensors[i])
    }

    /// Like [`GgufFile::tensor`], with an error naming the file when the tensor is absent.
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| {
            self.error(Problem::MissingTensor {
                name: name.to_string(),
            })
        })
    }

    /// The raw (still quantized) data of a tensor of this file, straight from the map.
    ///
    /// `info` must come from this file's [`GgufFile::tensors`]; for any other it returns the
    /// bytes at its offset if they lie in the file, else an empty slice.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let bytes = self.backing.bytes();
        let span = self
            .header
            .data_offset
            .checked_add(info.offset)
            .and_then(|start| Some((start, start.checked_add(info.n_bytes())?)))
            .and_then(|(start, end)| {
                Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
            });
        span.and_then(|r| bytes.get(r)).unwrap_or(&[])
    }

    /// Decodes the tensor `name` to `f32`, in row-major order.
    pub fn dequantize(&self, name: &str) -> Result<DenseTensor, GgufError> {
        self.dequantize_tensor(self.require_tensor(name)?)
    }

    /// Gives the pages holding tensor `name` back to the OS (they count in the process's
    /// resident memory once read). Loading a model calls this after decoding each tensor, so
    /// the file's ~100 MB do not sit beside what was built from them; a later read maps the
    /// same bytes in again. Advisory: failure changes nothing.
    pub fn release(&self, name: &str) {
        let (Backing::Mapped(map), Some(info)) = (&self.backing, self.tensor(name)) else {
            return;
        };
        let Some(start) = usize::try_from(self.header.data_offset + info.offset).ok() else {
            return;
        };
        const PAGE: usize = 4096;
        let first = start - start % PAGE;
        let end = (start + info.n_bytes() as usize).min(map.len());
        // SAFETY: the map is read-only and backed by the file, so MADV_DONTNEED only drops the
        // resident pages and a later access reads the same bytes from the file again; no slice
        // into this range is alive here (decoding it has finished).
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first)
        };
    }

    /// Decodes rows `rows` of the 2-D tensor `name` (row-major `[rows, cols]`) to `f32`: a
    /// large matrix can be encoded in pieces without its whole f32 copy in memory.
    pub fn dequantize_rows(
        &self,
        name: &str,
        rows: std::ops::Range<usize>,
    ) -> Result<DenseTensor, GgufError> {
        let info = self.require_tensor(name)?;
        let shape = info.shape();
        let invalid = |detail: String| {
            self.error(Problem::InvalidTensor {
                name: reader::quoted(&info.name),
                detail,
            })
        };
        let [n_rows, cols] = shape[..] else {
            return Err(invalid(format!(
                "rows asked of a tensor of shape {shape:?}"
            )));
        };
        if rows.start > rows.end || rows.end > n_rows {
            return Err(invalid(format!("rows {rows:?} asked of {n_rows}")));
        }
        let row_bytes = info
            .ggml_type
            .bytes_for(cols as u64)
            .ok_or_else(|| invalid(format!("rows of {cols} are not whole blocks")))?
            as usize;
        let bytes = self.tensor_bytes(info);
        let slice = bytes
            .get(rows.start * row_bytes..rows.end * row_bytes)
            .ok_or_else(|| invalid("its rows lie past its data".into()))?;
        let context = format!("tensor '{}': ", reader::quoted(&info.name));
        let data =
            dequant::dequantize_with_context(info.ggml_type, slice, rows.len() * cols, &context)
                .map_err(|e| e.with_path(&self.path))?;
        Ok(DenseTensor {
            shape: vec![rows.len(), cols],
            data,
        })
    }

    /// Decodes a tensor of this file to `f32`, in row-major order.
    pub fn dequantize_tensor(&self, info: &TensorInfo) -> Result<DenseTensor, GgufError> {
        let context = format!("tensor '{}': ", reader::quoted(&info.name));
        let n_elements = usize::try_from(info.n_elements()).map_err(|_| {
            self.error(Problem::InvalidTensor {
                name: reader::quoted(&info.name),
                detail: "too many elements for this machine's address space".into(),
            })
        })?;
        let data = dequant::dequantize_with_context(
            info.ggml_type,
            self.tensor_bytes(info),
            n_elements,
            &context,
        )
        .map_err(|e| e.with_path(&self.path))?;
        Ok(DenseTensor {
            shape: info.shape(),
            data,
        })
    }

    fn error(&self, problem: Problem) -> GgufError {
        GgufError::in_file(&self.path, problem)
    }

    fn require(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.get(key).ok_or_else(|| {
            self.error(Problem::MissingKey {
                key: key.to_string(),
            })
        })
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &MetaValue) -> GgufError {
        self.error(Problem::WrongType {
            key: key.to_string(),
            expected,
            found: found.describe(),
        })
    }

    /// An integer of any width or signedness, converted to `T` if it fits.
    fn get_int<T: TryFrom<i128>>(&self, key: &str, target: &'static str) -> Result<T, GgufError> {
        let value = self.require(key)?;
        let int = value
            .as_i128()
            .ok_or_else(|| self.wrong_type(key, "an integer", value))?;
        T::try_from(int).map_err(|_| {
            self.error(Problem::OutOfRange {
                key: key.to_string(),
                value: int.to_string(),
                target,
            })
        })
    }

    /// An integer key as `u64`; any integer type is accepted if the value is non-negative.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get_int(key, "u64")
    }

    /// An integer key as `u32`; any integer type is accepted if the value fits.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.get_int(key, "u32")
    }

    /// An integer key as `usize`, handy for dimensions and counts.
    pub fn get_usize(&self, key: &str) -> Result<usize, GgufError> {
        self.get_int(key, "usize")
    }

    /// An integer key as `i64`; any integer type is accepted if the value fits.
    pub fn get_i64(&self, key: &str) -> Result<i64, GgufError> {
        self.get_int(key, "i64")
    }

    /// A float key as `f32`. An `f64` value is rounded to the nearest `f32`.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        match self.require(key)? {
            MetaValue::F32(v) => Ok(*v),
            MetaValue::F64(v) => Ok(*v as f32),
            other => Err(self.wrong_type(key, "a float", other)),
        }
    }

    /// A float key as `f64` (`f32` widens exactly).
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        let value = self.require(key)?;
        value
            .as_f64()
            .ok_or_else(|| self.wrong_type(key, "a float", value))
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let value = self.require(key)?;
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(key, "a string", value))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let value = self.require(key)?;
        value
            .as_bool()
            .ok_or_else(|| self.wrong_type(key, "a bool", value))
    }

    pub fn get_array(&self, key: &str) -> Result<&MetaArray, GgufError> {
        let value = self.require(key)?;
        value
            .as_array()
            .ok_or_else(|| self.wrong_type(key, "an array", value))
    }

    pub fn get_str_array(&self, key: &str) -> Result<&[String], GgufError> {
        match self.require(key)? {
            MetaValue::Array(MetaArray::String(v)) => Ok(v),
            other => Err(self.wrong_type(key, "an array of string", other)),
        }
    }

    pub fn get_i32_array(&self, key: &str) -> Result<&[i32], GgufError> {
        match self.require(key)? {
            MetaValue::Array(MetaArray::I32(v)) => Ok(v),
            other => Err(self.wrong_type(key, "an array of i32", other)),
        }
    }

    pub fn get_u32_array(&self, key: &str) -> Result<&[u32], GgufError> {
        match self.require(key)? {
            MetaValue::Array(MetaArray::U32(v)) => Ok(v),
            other => Err(self.wrong_type(key, "an array of u32", other)),
        }
    }

    pub fn get_f32_array(&self, key: &str) -> Result<&[f32], GgufError> {
        match self.require(key)? {
            MetaValue::Array(MetaArray::F32(v)) => Ok(v),
            other => Err(self.wrong_type(key, "an array of f32", other)),
        }
    }
}

impl fmt::Debug for GgufFile {
    // The metadata can hold a whole vocabulary; summarise instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.header.version)
            .field("file_len", &self.file_len())
            .field("metadata_entries", &self.header.metadata.len())
            .field("tensors", &self.header.tensors.len())
            .field("alignment", &self.header.alignment)
            .field("data_offset", &self.header.data_offset)
            .finish()
    }
}
