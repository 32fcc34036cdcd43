//! Broken and hostile files: each is rejected with an error that names the file and the problem.
//!
//! The files are assembled byte by byte here (not with `GgufWriter`) so each test controls
//! exactly which field is wrong.

use std::path::Path;

use seedforge::llm::gguf::{GgufError, GgufFile, Problem};

const NAME: &str = "hostile.gguf";

/// Little-endian GGUF pieces.
#[derive(Clone, Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    fn pad_to(mut self, alignment: usize) -> Self {
        while !self.0.len().is_multiple_of(alignment) {
            self.0.push(0);
        }
        self
    }
}

fn header(version: u32, n_tensors: u64, n_kv: u64) -> Bytes {
    Bytes::default()
        .raw(b"GGUF")
        .u32(version)
        .u64(n_tensors)
        .u64(n_kv)
}

fn kv_u32(b: Bytes, key: &str, v: u32) -> Bytes {
    b.str(key).u32(4).u32(v)
}

fn tensor_info(b: Bytes, name: &str, dims: &[u64], ty: u32, offset: u64) -> Bytes {
    let mut b = b.str(name).u32(dims.len() as u32);
    for &d in dims {
        b = b.u64(d);
    }
    b.u32(ty).u64(offset)
}

/// A valid file with metadata of several kinds and two F32 tensors; the last tensor ends exactly
/// at the end of the file, so every strict prefix is broken.
fn valid_file() -> Vec<u8> {
    let b = header(3, 2, 4);
    let b = kv_u32(b, "general.alignment", 16);
    let b = b.str("general.name").u32(8).str("tiny");
    let b = b.str("tok").u32(9).u32(8).u64(2).str("a").str("bc");
    let b = b.str("flags").u32(9).u32(7).u64(3).raw(&[1, 0, 1]);
    let b = tensor_info(b, "w", &[4, 2], 0, 0);
    let b = tensor_info(b, "v", &[3], 0, 32);
    let mut b = b.pad_to(16);
    for i in 0..8 {
        b = b.raw(&(i as f32).to_le_bytes());
    }
    b.raw(&1.5f32.to_le_bytes())
        .raw(&2.5f32.to_le_bytes())
        .raw(&3.5f32.to_le_bytes())
        .0
}

fn open(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(NAME, bytes)
}

/// Opens `bytes` and expects an error whose message starts with the file name and contains
/// every one of `fragments`.
#[track_caller]
fn rejected(bytes: Vec<u8>, fragments: &[&str]) -> GgufError {
    let err = match open(bytes) {
        Ok(_) => panic!("accepted a broken file; expected an error mentioning {fragments:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{NAME}: ")), "{msg}");
    for f in fragments {
        assert!(msg.contains(f), "message {msg:?} lacks {f:?}");
    }
    assert_eq!(err.path(), Some(Path::new(NAME)));
    err
}

#[test]
fn the_valid_file_is_valid() {
    let file = open(valid_file()).unwrap();
    assert_eq!(file.alignment(), 16);
    assert_eq!(file.get_str("general.name").unwrap(), "tiny");
    assert_eq!(file.dequantize("v").unwrap().data, vec![1.5, 2.5, 3.5]);
    assert_eq!(file.dequantize("w").unwrap().data[7], 7.0);
}

#[test]
fn every_prefix_of_a_valid_file_is_rejected() {
    let full = valid_file();
    for len in 0..full.len() {
        let err = open(full[..len].to_vec())
            .err()
            .unwrap_or_else(|| panic!("prefix of {len} bytes accepted"));
        let msg = err.to_string();
        assert!(msg.starts_with("hostile.gguf: "), "{len}: {msg}");
        assert!(
            msg.contains("truncated") || msg.contains("cannot fit") || msg.contains("past the end"),
            "prefix {len}: {msg}"
        );
    }
}

#[test]
fn truncation_messages_say_what_and_where() {
    let full = valid_file();
    // Cut inside the first tensor info's name.
    let cut = full
        .windows(1)
        .position(|w| w == b"w")
        .expect("tensor name present");
    let err = rejected(
        full[..cut].to_vec(),
        &[
            "truncated: tensor info 0 of 2",
            &format!("but the file has {cut} bytes"),
        ],
    );
    assert!(
        matches!(err.problem(), Problem::Truncated { file_len, .. } if *file_len == cut as u64)
    );
    // Cut inside the data of the last tensor.
    rejected(
        full[..full.len() - 1].to_vec(),
        &["tensor 'v' data [", "lies past the end of the file"],
    );
    rejected(
        vec![],
        &["truncated: the magic number would end at byte 4 but the file has 0 bytes"],
    );
}

#[test]
fn wrong_magic() {
    let mut bytes = valid_file();
    bytes[..4].copy_from_slice(b"\x7fELF");
    rejected(bytes, &["not a GGUF file (magic is 0x7f454c46"]);
    rejected(
        b"GGML\x01\x00\x00\x00".to_vec(),
        &["not a GGUF file", "GGML"],
    );
}

#[test]
fn unsupported_versions() {
    for version in [0, 1, 4, 999] {
        let mut bytes = valid_file();
        bytes[4..8].copy_from_slice(&(version as u32).to_le_bytes());
        rejected(
            bytes,
            &[&format!("GGUF version {version} is not supported")],
        );
    }
    let mut v2 = valid_file();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(open(v2).unwrap().version(), 2);
    let mut be = valid_file();
    be[4..8].copy_from_slice(&3u32.to_be_bytes());
    rejected(be, &["big-endian"]);
}

#[test]
fn absurd_counts() {
    rejected(
        header(3, 0, u64::MAX).0,
        &[
            "the header: 18446744073709551615 metadata entries",
            "cannot fit in the 0 bytes left",
        ],
    );
    rejected(
        kv_u32(header(3, 1 << 40, 1), "k", 1).0,
        &["1099511627776 tensor infos", "cannot fit"],
    );
    let mut big = header(3, 0, 4_000_000).0;
    big.resize(1 << 20, 0);
    rejected(
        big,
        &[
            "4000000 metadata entries (at least 13 bytes each) cannot fit",
            "1048576-byte file",
        ],
    );
}

#[test]
fn absurd_string_length() {
    let mut b = header(3, 0, 1).u64(u64::MAX).raw(b"key").0;
    b.resize(64, 0);
    rejected(
        b,
        &["metadata entry 0 of 1: a string of 18446744073709551615 bytes cannot fit"],
    );
    let b = tensor_info(header(3, 1, 0), "t", &[1], 0, 0);
    let mut bytes = b.0;
    bytes[24..32].copy_from_slice(&(1u64 << 50).to_le_bytes());
    rejected(
        bytes,
        &["tensor info 0 of 1: a string of 1125899906842624 bytes"],
    );
}

#[test]
fn absurd_array_length() {
    let mut b = header(3, 0, 1)
        .str("tokenizer.ggml.scores")
        .u32(9)
        .u32(4)
        .u64(4_000_000_000)
        .0;
    b.resize(1 << 20, 0);
    rejected(
        b,
        &[
            "metadata entry 0 of 1 ('tokenizer.ggml.scores')",
            "4000000000 array elements of type u32 (at least 4 bytes each) cannot fit",
            "1048576-byte file",
        ],
    );
    let b = header(3, 0, 1).str("s").u32(9).u32(8).u64(u64::MAX / 2);
    rejected(b.0, &["array elements of type string", "cannot fit"]);
}

#[test]
fn arrays_nested_too_deep() {
    // Ten nested arrays: deeper than the limit of 8.
    let mut b = header(3, 0, 1).str("deep").u32(9);
    for _ in 0..9 {
        b = b.u32(9).u64(1);
    }
    b = b.u32(0).u64(0);
    rejected(
        b.0,
        &["metadata entry 0 of 1 ('deep') nests arrays deeper than 8 levels"],
    );
    // Eight levels are fine.
    let mut b = header(3, 0, 1).str("deep").u32(9);
    for _ in 0..7 {
        b = b.u32(9).u64(1);
    }
    b = b.u32(0).u64(1).u8(42);
    let file = open(b.0).unwrap();
    assert!(file.get("deep").is_some());
}

#[test]
fn bad_metadata_values() {
    rejected(
        header(3, 0, 1).str("k").u32(13).u32(0).0,
        &["metadata entry 0 of 1 ('k') has unknown metadata value type id 13"],
    );
    rejected(
        header(3, 0, 1).str("k").u32(9).u32(77).u64(1).0,
        &["unknown metadata value type id 77"],
    );
    rejected(
        header(3, 0, 1).str("k").u32(7).u8(2).0,
        &["('k') holds the boolean byte 2"],
    );
    rejected(
        header(3, 0, 1).u64(2).raw(&[0xff, 0xfe]).u32(4).u32(0).0,
        &["a string in metadata entry 0 of 1 is not valid UTF-8"],
    );
    let b = kv_u32(kv_u32(header(3, 0, 2), "k", 1), "k", 2);
    rejected(b.0, &["metadata key 'k' appears twice"]);
}

#[test]
fn bad_alignment() {
    for a in [0u32, 24, 3] {
        rejected(
            kv_u32(header(3, 0, 1), "general.alignment", a).0,
            &[&format!(
                "general.alignment is {a}, which is not a power of two"
            )],
        );
    }
    rejected(
        header(3, 0, 1).str("general.alignment").u32(10).u64(32).0,
        &["general.alignment is a u64, expected a u32"],
    );
}

fn one_tensor(dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let mut b = tensor_info(header(3, 1, 0), "blk.0.attn_q.weight", dims, ty, offset)
        .pad_to(32)
        .0;
    b.resize(b.len() + data_len, 0);
    b
}

#[test]
fn bad_dimension_counts() {
    rejected(
        one_tensor(&[], 0, 0, 64),
        &["tensor 'blk.0.attn_q.weight' has 0 dimensions (must be 1 to 4)"],
    );
    rejected(one_tensor(&[1; 5], 0, 0, 64), &["has 5 dimensions"]);
    // An n_dims of 4 billion is rejected before the dims are read.
    let mut b = one_tensor(&[1], 0, 0, 64);
    let at = 24 + 8 + "blk.0.attn_q.weight".len();
    b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    rejected(b, &["has 4294967295 dimensions"]);
}

#[test]
fn bad_dimensions() {
    rejected(
        one_tensor(&[4, 0], 0, 0, 64),
        &["tensor 'blk.0.attn_q.weight' has a dimension of 0 (dims [4, 0])"],
    );
    rejected(
        one_tensor(&[1 << 32, 1 << 32], 0, 0, 64),
        &["dims [4294967296, 4294967296], whose element count or byte size overflows 64 bits"],
    );
    // The count fits in 64 bits but the size in bytes does not.
    rejected(one_tensor(&[1 << 62], 0, 0, 64), &["overflows 64 bits"]);
    // Large but representable: the data is simply not there.
    rejected(
        one_tensor(&[1 << 20, 1 << 20], 0, 0, 64),
        &["lies past the end of the file"],
    );
}

#[test]
fn unknown_tensor_types() {
    rejected(
        one_tensor(&[32], 99, 0, 64),
        &["tensor 'blk.0.attn_q.weight' has unknown type id 99"],
    );
    rejected(one_tensor(&[32], 4, 0, 64), &["unknown type id 4"]);
    rejected(
        one_tensor(&[32], u32::MAX, 0, 64),
        &["unknown type id 4294967295"],
    );
}

#[test]
fn rows_must_be_whole_blocks() {
    rejected(
        one_tensor(&[31, 2], 8, 0, 128),
        &[
            "tensor 'blk.0.attn_q.weight' of type Q8_0 has rows of 31 values, not a multiple of its block size 32",
        ],
    );
}

#[test]
fn offsets_past_the_end() {
    rejected(
        one_tensor(&[8], 0, 64, 64),
        &[
            "tensor 'blk.0.attn_q.weight' data [",
            "lies past the end of the file",
        ],
    );
    // Offsets near u64::MAX must not overflow.
    let big = u64::MAX - 31;
    rejected(
        one_tensor(&[8], 0, big, 64),
        &["lies past the end of the file"],
    );
}

#[test]
fn misaligned_offsets() {
    rejected(
        one_tensor(&[4], 0, 4, 64),
        &[
            "tensor 'blk.0.attn_q.weight' has data offset 4, which is not a multiple of the alignment 32",
        ],
    );
}

#[test]
fn duplicated_tensor_names() {
    let b = tensor_info(
        tensor_info(header(3, 2, 0), "x", &[4], 0, 0),
        "x",
        &[4],
        0,
        32,
    );
    let mut bytes = b.pad_to(32).0;
    bytes.resize(bytes.len() + 64, 0);
    rejected(bytes, &["tensor 'x' appears twice"]);
}

#[test]
fn overlapping_tensors() {
    let b = tensor_info(
        tensor_info(header(3, 2, 0), "a", &[16], 0, 0),
        "b",
        &[4],
        0,
        32,
    );
    let mut bytes = b.pad_to(32).0;
    bytes.resize(bytes.len() + 64, 0);
    rejected(bytes, &["tensor 'b' data [", "overlaps tensor 'a' data"]);
}

#[test]
fn names_in_messages_are_escaped_and_bounded() {
    let name = format!("evil\x1b[2J{}", "n".repeat(5000));
    let bytes = one_tensor_named(&name, 99);
    let err = open(bytes).err().unwrap().to_string();
    assert!(err.contains("evil\\u{1b}[2J"), "{err}");
    assert!(err.len() < 400, "{} bytes of message", err.len());
}

fn one_tensor_named(name: &str, ty: u32) -> Vec<u8> {
    let mut b = tensor_info(header(3, 1, 0), name, &[32], ty, 0)
        .pad_to(32)
        .0;
    b.resize(b.len() + 128, 0);
    b
}

#[test]
fn files_that_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    let err = GgufFile::open(&missing).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot open the file: ", missing.display())),
        "{err}"
    );

    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let err = GgufFile::open(&empty).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: truncated: the magic number would end at byte 4 but the file has 0 bytes",
            empty.display()
        )
    );

    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, &valid_file()[..40]).unwrap();
    let err = GgufFile::open(&broken).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: ", broken.display())), "{err}");
    assert!(err.contains("cannot fit"), "{err}");

    let err = GgufFile::open(dir.path()).unwrap_err().to_string();
    assert!(err.starts_with(&dir.path().display().to_string()), "{err}");
}

#[test]
fn unsupported_tensor_types_are_readable_but_not_decodable() {
    // IQ2_XXS (16): a known layout, so the file is valid, but there is no dequantizer.
    let bytes = one_tensor(&[256], 16, 0, 66);
    let file = open(bytes).unwrap();
    let info = &file.tensors()[0];
    assert_eq!(file.tensor_bytes(info).len(), 66);
    let err = file.dequantize(&info.name).unwrap_err().to_string();
    assert_eq!(
        err,
        "hostile.gguf: tensor 'blk.0.attn_q.weight': dequantizing IQ2_XXS is not supported"
    );
}
