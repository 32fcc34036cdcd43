//! Parsing and validation of the GGUF header: magic, version, metadata, tensor infos, and the
//! placement of every tensor's data in the file.
//!
//! Everything is checked here, once, so that the accessors of `GgufFile` can slice the mapped
//! file without further checks. Allocation is bounded by the file size: every count is checked
//! against the bytes that are left before anything is reserved for it.

use std::collections::HashSet;

use super::cursor::Cursor;
use super::error::Problem;
use super::ggml_type::GgmlType;
use super::metadata::{MetaArray, MetaValue, MetaValueType};
use super::tensor::TensorInfo;

pub(crate) const MAGIC: [u8; 4] = *b"GGUF";

/// Alignment of the data section and of each tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Deepest nesting of arrays accepted (an array of arrays is depth 2). The format allows any
/// depth; a bound keeps recursion finite on hostile input, and real files use at most 1.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// The most tensor dimensions ggml supports.
pub const MAX_DIMS: u64 = 4;

/// Smallest possible encodings, for rejecting absurd counts: a key-value pair is a key length,
/// a type and at least one byte of value; a tensor info is a name length, `n_dims`, one
/// dimension, a type and an offset.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

/// Capacity reserved up front for lists whose in-memory items are larger than their smallest
/// encoding (strings, nested arrays, entries): beyond this, vectors grow only as items are read.
const PREALLOC_LIMIT: u64 = 1 << 16;

/// Longest name or key quoted in a message; hostile files may hold megabyte-long ones.
const MAX_QUOTED: usize = 120;

pub(crate) struct Header {
    pub version: u32,
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Header, Problem> {
    let mut c = Cursor::new(bytes, "the magic number");
    let magic: [u8; 4] = c.array()?;
    if magic != MAGIC {
        return Err(Problem::NotGguf { magic });
    }

    c.set_context("the header".to_string());
    let version = c.u32()?;
    check_version(version)?;
    let n_tensors = c.u64()?;
    let n_kv = c.u64()?;
    c.check_count(n_kv, MIN_KV_BYTES, "metadata entries".to_string())?;
    let kv_floor = n_kv * MIN_KV_BYTES; // cannot overflow: checked just above
    match n_tensors.checked_mul(MIN_TENSOR_INFO_BYTES) {
        Some(need) if need <= c.remaining() - kv_floor => {}
        _ => {
            return Err(Problem::CountTooLarge {
                what: "the header".to_string(),
                count: n_tensors,
                items: format!("tensor infos (after {n_kv} metadata entries)"),
                min_bytes: MIN_TENSOR_INFO_BYTES,
                available: c.remaining() - kv_floor,
                file_len: c.file_len(),
            });
        }
    }

    let metadata = read_metadata(&mut c, n_kv)?;
    let alignment = alignment_of(&metadata)?;
    let tensors = read_tensor_infos(&mut c, n_tensors)?;
    let data_offset = align_up(c.pos(), alignment).ok_or(Problem::FileTooLarge)?;
    check_tensor_placement(&tensors, data_offset, alignment, c.file_len())?;

    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

fn check_version(version: u32) -> Result<(), Problem> {
    // A big-endian version 3 reads as 0x03000000 on a little-endian host.
    if version != 0 && version & 0xFFFF == 0 {
        return Err(Problem::BigEndian { version });
    }
    // Version 1 used 32-bit counts and lengths; 2 and 3 share one layout (3 only added the
    // possibility of big-endian files, rejected above).
    match version {
        2 | 3 => Ok(()),
        _ => Err(Problem::UnsupportedVersion { version }),
    }
}

fn read_metadata(c: &mut Cursor<'_>, n_kv: u64) -> Result<Vec<(String, MetaValue)>, Problem> {
    let mut metadata = Vec::with_capacity(prealloc(n_kv));
    let mut seen = HashSet::new();
    for i in 0..n_kv {
        c.set_context(format!("metadata entry {i} of {n_kv}"));
        let key = c.string()?;
        c.set_context(format!("metadata entry {i} of {n_kv} ('{}')", quoted(&key)));
        if !seen.insert(key.clone()) {
            return Err(Problem::DuplicateKey { key: quoted(&key) });
        }
        let type_id = c.u32()?;
        let value = read_value(c, type_id, 0)?;
        metadata.push((key, value));
    }
    Ok(metadata)
}

fn value_type(c: &Cursor<'_>, id: u32) -> Result<MetaValueType, Problem> {
    MetaValueType::from_id(id).ok_or_else(|| Problem::UnknownValueType {
        what: c.context().to_string(),
        id,
    })
}

/// One value of type `type_id`; `depth` is the number of arrays it is inside.
fn read_value(c: &mut Cursor<'_>, type_id: u32, depth: usize) -> Result<MetaValue, Problem> {
    use MetaValueType as T;
    let ty = value_type(c, type_id)?;
    Ok(match ty {
        T::U8 => MetaValue::U8(c.u8()?),
        T::I8 => MetaValue::I8(i8::from_le_bytes(c.array()?)),
        T::U16 => MetaValue::U16(u16::from_le_bytes(c.array()?)),
        T::I16 => MetaValue::I16(i16::from_le_bytes(c.array()?)),
        T::U32 => MetaValue::U32(c.u32()?),
        T::I32 => MetaValue::I32(i32::from_le_bytes(c.array()?)),
        T::F32 => MetaValue::F32(f32::from_le_bytes(c.array()?)),
        T::Bool => {
            let byte = c.u8()?;
            MetaValue::Bool(to_bool(c, byte)?)
        }
        T::String => MetaValue::String(c.string()?),
        T::Array => MetaValue::Array(read_array(c, depth + 1)?),
        T::U64 => MetaValue::U64(c.u64()?),
        T::I64 => MetaValue::I64(i64::from_le_bytes(c.array()?)),
        T::F64 => MetaValue::F64(f64::from_le_bytes(c.array()?)),
    })
}

fn to_bool(c: &Cursor<'_>, byte: u8) -> Result<bool, Problem> {
    // The spec calls anything but 0 and 1 invalid; accepting it would hide a broken writer.
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(Problem::InvalidBool {
            what: c.context().to_string(),
            value,
        }),
    }
}

/// An array body (element type, count, elements) at nesting level `depth` (1 = outermost).
fn read_array(c: &mut Cursor<'_>, depth: usize) -> Result<MetaArray, Problem> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(Problem::ArrayTooDeep {
            what: c.context().to_string(),
            max: MAX_ARRAY_DEPTH,
        });
    }
    let elem_id = c.u32()?;
    let elem = value_type(c, elem_id)?;
    let count = c.u64()?;
    c.check_count(
        count,
        elem.min_encoded_len(),
        format!("array elements of type {elem}"),
    )?;
    // Fixed-size elements: the check above proved all their bytes are present.
    let mut fixed = |size: u64| c.take(count * size);

    use MetaValueType as T;
    Ok(match elem {
        T::U8 => MetaArray::U8(fixed(1)?.to_vec()),
        T::I8 => MetaArray::I8(fixed(1)?.iter().map(|&b| b as i8).collect()),
        T::U16 => MetaArray::U16(decode(fixed(2)?, u16::from_le_bytes)),
        T::I16 => MetaArray::I16(decode(fixed(2)?, i16::from_le_bytes)),
        T::U32 => MetaArray::U32(decode(fixed(4)?, u32::from_le_bytes)),
        T::I32 => MetaArray::I32(decode(fixed(4)?, i32::from_le_bytes)),
        T::F32 => MetaArray::F32(decode(fixed(4)?, f32::from_le_bytes)),
        T::U64 => MetaArray::U64(decode(fixed(8)?, u64::from_le_bytes)),
        T::I64 => MetaArray::I64(decode(fixed(8)?, i64::from_le_bytes)),
        T::F64 => MetaArray::F64(decode(fixed(8)?, f64::from_le_bytes)),
        T::Bool => {
            let bytes = fixed(1)?;
            let bools = bytes
                .iter()
                .map(|&b| to_bool(c, b))
                .collect::<Result<_, _>>()?;
            MetaArray::Bool(bools)
        }
        T::String => {
            let mut items = Vec::with_capacity(prealloc(count));
            for _ in 0..count {
                items.push(c.string()?);
            }
            MetaArray::String(items)
        }
        T::Array => {
            let mut items = Vec::with_capacity(prealloc(count));
            for _ in 0..count {
                items.push(read_array(c, depth + 1)?);
            }
            MetaArray::Array(items)
        }
    })
}

fn decode<const N: usize, T>(bytes: &[u8], from_le: fn([u8; N]) -> T) -> Vec<T> {
    let (chunks, _) = bytes.as_chunks::<N>();
    chunks.iter().map(|&chunk| from_le(chunk)).collect()
}

fn alignment_of(metadata: &[(String, MetaValue)]) -> Result<u64, Problem> {
    let Some((_, value)) = metadata.iter().find(|(k, _)| k == "general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    match value {
        MetaValue::U32(a) if a.is_power_of_two() => Ok(u64::from(*a)),
        MetaValue::U32(a) => Err(Problem::BadAlignment {
            detail: format!("is {a}, which is not a power of two"),
        }),
        other => Err(Problem::BadAlignment {
            detail: format!("is {}, expected a u32", other.describe()),
        }),
    }
}

fn read_tensor_infos(c: &mut Cursor<'_>, n_tensors: u64) -> Result<Vec<TensorInfo>, Problem> {
    let mut tensors = Vec::with_capacity(prealloc(n_tensors));
    let mut seen = HashSet::new();
    for i in 0..n_tensors {
        c.set_context(format!("tensor info {i} of {n_tensors}"));
        let name = c.string()?;
        let shown = quoted(&name);
        c.set_context(format!("tensor info {i} of {n_tensors} ('{shown}')"));
        if !seen.insert(name.clone()) {
            return Err(Problem::DuplicateTensor { name: shown });
        }

        let n_dims = c.u32()?;
        if n_dims == 0 || u64::from(n_dims) > MAX_DIMS {
            return Err(Problem::BadDimCount {
                name: shown,
                n_dims: n_dims.into(),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64()?);
        }
        if dims.contains(&0) {
            return Err(Problem::ZeroDim { name: shown, dims });
        }
        let Some(n_elements) = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)) else {
            return Err(Problem::TooManyElements { name: shown, dims });
        };

        let type_id = c.u32()?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| Problem::UnknownTensorType {
            name: shown.clone(),
            id: type_id,
        })?;
        let block_size = ggml_type.block_size();
        if !dims[0].is_multiple_of(block_size) {
            return Err(Problem::RowNotBlockMultiple {
                name: shown,
                ggml_type,
                row_len: dims[0],
                block_size,
            });
        }
        if ggml_type.bytes_for(n_elements).is_none() {
            return Err(Problem::TooManyElements { name: shown, dims });
        }

        let offset = c.u64()?;
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    Ok(tensors)
}

/// Every tensor's data must be aligned, inside the file, and not overlap another's.
fn check_tensor_placement(
    tensors: &[TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_len: u64,
) -> Result<(), Problem> {
    let mut spans = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        if !t.offset.is_multiple_of(alignment) {
            return Err(Problem::MisalignedOffset {
                name: quoted(&t.name),
                offset: t.offset,
                alignment,
            });
        }
        // u128: offsets and sizes come from the file and may sum past u64.
        let start = u128::from(data_offset) + u128::from(t.offset);
        let end = start + u128::from(t.n_bytes());
        if end > u128::from(file_len) {
            return Err(Problem::DataPastEnd {
                name: quoted(&t.name),
                start,
                end,
                file_len,
            });
        }
        // Both fit in u64 now: end <= file_len.
        spans.push((start as u64, end as u64, i));
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let [(_, prev_end, prev), (start, end, cur)] = pair else {
            continue;
        };
        if start < prev_end {
            return Err(Problem::OverlappingTensors {
                name: quoted(&tensors[*cur].name),
                start: *start,
                end: *end,
                other: quoted(&tensors[*prev].name),
                other_end: *prev_end,
            });
        }
    }
    Ok(())
}

pub(crate) fn align_up(pos: u64, alignment: u64) -> Option<u64> {
    let rem = pos % alignment;
    if rem == 0 {
        Some(pos)
    } else {
        pos.checked_add(alignment - rem)
    }
}

fn prealloc(count: u64) -> usize {
    count.min(PREALLOC_LIMIT) as usize
}

/// A name from the file made safe to print: control characters escaped, length bounded.
pub(crate) fn quoted(s: &str) -> String {
    let escaped: String = s.escape_debug().collect();
    if escaped.chars().count() <= MAX_QUOTED {
        escaped
    } else {
        let head: String = escaped.chars().take(MAX_QUOTED).collect();
        format!("{head}… ({} bytes)", s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_to_the_next_multiple() {
        assert_eq!(align_up(0, 32), Some(0));
        assert_eq!(align_up(1, 32), Some(32));
        assert_eq!(align_up(64, 32), Some(64));
        assert_eq!(align_up(u64::MAX, 32), None);
    }

    #[test]
    fn versions() {
        assert!(check_version(2).is_ok());
        assert!(check_version(3).is_ok());
        assert!(matches!(
            check_version(1),
            Err(Problem::UnsupportedVersion { version: 1 })
        ));
        assert!(matches!(
            check_version(0x0300_0000),
            Err(Problem::BigEndian { .. })
        ));
    }

    #[test]
    fn quoted_escapes_and_truncates() {
        assert_eq!(quoted("a\nb"), "a\\nb");
        let long = "x".repeat(1000);
        let q = quoted(&long);
        assert!(q.len() < 200 && q.ends_with("(1000 bytes)"), "{q}");
    }
}
