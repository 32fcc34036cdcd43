//! The one error type of the GGUF module.
//!
//! Every error that concerns a file carries its path, and its message starts with it, so a user
//! who has several models lying around knows which one is broken. Errors from pure in-memory
//! operations (quantizing a slice, building a writer) have no path until a file is involved.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ggml_type::GgmlType;

/// An error reading, decoding or writing GGUF data.
///
/// `Display` gives `"<path>: <problem>"`; [`GgufError::problem`] gives the problem to match on.
#[derive(Debug)]
pub struct GgufError {
    path: Option<PathBuf>,
    problem: Problem,
}

impl GgufError {
    pub(crate) fn new(problem: Problem) -> Self {
        GgufError {
            path: None,
            problem,
        }
    }

    pub(crate) fn in_file(path: &Path, problem: Problem) -> Self {
        GgufError {
            path: Some(path.to_path_buf()),
            problem,
        }
    }

    /// Attaches the file this error is about, unless it already names one.
    pub(crate) fn with_path(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What is wrong.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

// The problem's text is already part of `Display`; returning it (or the io::Error inside it) as
// `source()` would make `{:#}` chains print it twice.
impl std::error::Error for GgufError {}

impl From<Problem> for GgufError {
    fn from(problem: Problem) -> Self {
        GgufError::new(problem)
    }
}

/// What is wrong with a GGUF file or with a request made to this module.
///
/// Byte positions are absolute offsets in the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("cannot {action}: {source}")]
    Io {
        action: &'static str,
        source: std::io::Error,
    },

    #[error("not a GGUF file (magic is 0x{} {:?}, expected 0x47475546 \"GGUF\")", hex(.magic), String::from_utf8_lossy(.magic))]
    NotGguf { magic: [u8; 4] },

    #[error(
        "the version field reads 0x{version:08x}: this looks like a big-endian GGUF file, which is not supported"
    )]
    BigEndian { version: u32 },

    #[error("GGUF version {version} is not supported (only versions 2 and 3 are)")]
    UnsupportedVersion { version: u32 },

    #[error("truncated: {what} would end at byte {end} but the file has {file_len} bytes")]
    Truncated {
        what: String,
        end: u64,
        file_len: u64,
    },

    #[error(
        "{what}: {count} {items} (at least {min_bytes} bytes each) cannot fit in the {available} bytes left of the {file_len}-byte file"
    )]
    CountTooLarge {
        what: String,
        count: u64,
        items: String,
        min_bytes: u64,
        available: u64,
        file_len: u64,
    },

    #[error(
        "{what}: a string of {len} bytes cannot fit in the {available} bytes left of the {file_len}-byte file"
    )]
    StringTooLong {
        what: String,
        len: u64,
        available: u64,
        file_len: u64,
    },

    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },

    #[error("{what} has unknown metadata value type id {id}")]
    UnknownValueType { what: String, id: u32 },

    #[error("{what} holds the boolean byte {value}, which is neither 0 nor 1")]
    InvalidBool { what: String, value: u8 },

    #[error("{what} nests arrays deeper than {max} levels")]
    ArrayTooDeep { what: String, max: usize },

    #[error("metadata key '{key}' appears twice")]
    DuplicateKey { key: String },

    #[error("general.alignment {detail}")]
    BadAlignment { detail: String },

    #[error("tensor '{name}' appears twice")]
    DuplicateTensor { name: String },

    #[error("tensor '{name}' has {n_dims} dimensions (must be 1 to 4)")]
    BadDimCount { name: String, n_dims: u64 },

    #[error("tensor '{name}' has a dimension of 0 (dims {dims:?})")]
    ZeroDim { name: String, dims: Vec<u64> },

    #[error(
        "tensor '{name}' has dims {dims:?}, whose element count or byte size overflows 64 bits"
    )]
    TooManyElements { name: String, dims: Vec<u64> },

    #[error("tensor '{name}' has unknown type id {id}")]
    UnknownTensorType { name: String, id: u32 },

    #[error(
        "tensor '{name}' of type {ggml_type} has rows of {row_len} values, not a multiple of its block size {block_size}"
    )]
    RowNotBlockMultiple {
        name: String,
        ggml_type: GgmlType,
        row_len: u64,
        block_size: u64,
    },

    #[error(
        "tensor '{name}' has data offset {offset}, which is not a multiple of the alignment {alignment}"
    )]
    MisalignedOffset {
        name: String,
        offset: u64,
        alignment: u64,
    },

    #[error(
        "tensor '{name}' data [{start}, {end}) lies past the end of the file ({file_len} bytes)"
    )]
    DataPastEnd {
        name: String,
        start: u128,
        end: u128,
        file_len: u64,
    },

    #[error(
        "tensor '{name}' data [{start}, {end}) overlaps tensor '{other}' data, which ends at {other_end}"
    )]
    OverlappingTensors {
        name: String,
        start: u64,
        end: u64,
        other: String,
        other_end: u64,
    },

    #[error("metadata key '{key}' is missing")]
    MissingKey { key: String },

    #[error("metadata key '{key}' is {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },

    #[error("metadata key '{key}' holds {value}, which does not fit in {target}")]
    OutOfRange {
        key: String,
        value: String,
        target: &'static str,
    },

    #[error("there is no tensor named '{name}'")]
    MissingTensor { name: String },

    #[error("{context}dequantizing {ggml_type} is not supported")]
    UnsupportedDequant {
        context: String,
        ggml_type: GgmlType,
    },

    #[error("quantizing to {ggml_type} is not supported")]
    UnsupportedQuant { ggml_type: GgmlType },

    #[error(
        "{context}{n_elements} values are not a whole number of {ggml_type} blocks of {block_size}"
    )]
    NotWholeBlocks {
        context: String,
        ggml_type: GgmlType,
        n_elements: u64,
        block_size: u64,
    },

    #[error("{context}{n_elements} {ggml_type} values need {expected} bytes, got {actual}")]
    ByteCountMismatch {
        context: String,
        ggml_type: GgmlType,
        n_elements: u64,
        expected: u64,
        actual: u64,
    },

    #[error("tensor '{name}': {detail}")]
    InvalidTensor { name: String, detail: String },

    #[error("metadata key '{key}': {detail}")]
    InvalidMetadata { key: String, detail: String },

    #[error("the file would be larger than 2^64 bytes")]
    FileTooLarge,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
