//! Property tests: mutated valid files and random garbage never make the reader panic.
//!
//! Each case must give either a file whose every accessor (metadata getters, tensor bytes,
//! dequantization) works without panicking, or an error naming the file. The default case count
//! keeps the suite fast; for a long run:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test --release --test gguf_fuzz
//! ```

use std::sync::OnceLock;

use proptest::prelude::*;
use seedforge::llm::gguf::{GgmlType, GgufFile, GgufWriter, MetaArray, MetaValue};

const NAME: &str = "fuzz.gguf";

/// Small valid files covering every metadata type, nested arrays, several tensor types and a
/// non-default alignment: the seeds that mutations start from.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut a = GgufWriter::new();
        a.add_metadata("general.architecture", "llama")
            .unwrap()
            .add_metadata("u8", 1u8)
            .unwrap()
            .add_metadata("i8", -1i8)
            .unwrap()
            .add_metadata("u16", 2u16)
            .unwrap()
            .add_metadata("i16", -2i16)
            .unwrap()
            .add_metadata("u32", 3u32)
            .unwrap()
            .add_metadata("i32", -3i32)
            .unwrap()
            .add_metadata("f32", 0.5f32)
            .unwrap()
            .add_metadata("bool", true)
            .unwrap()
            .add_metadata("u64", 4u64)
            .unwrap()
            .add_metadata("i64", -4i64)
            .unwrap()
            .add_metadata("f64", 0.25f64)
            .unwrap()
            .add_metadata("strs", vec!["a", "bc"])
            .unwrap()
            .add_metadata(
                "nested",
                MetaArray::Array(vec![MetaArray::I32(vec![1]), MetaArray::Bool(vec![false])]),
            )
            .unwrap();
        let v: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        a.add_tensor_f32("f32", &[2, 4], &v[..8])
            .unwrap()
            .add_tensor_quantized("q8", &[32], GgmlType::Q8_0, &v[..32])
            .unwrap()
            .add_tensor_quantized("q41", &[2, 32], GgmlType::Q4_1, &v[..64])
            .unwrap()
            .add_tensor_quantized("f16", &[3], GgmlType::F16, &v[..3])
            .unwrap();

        let mut b = GgufWriter::new();
        b.set_alignment(8).unwrap();
        b.add_metadata("s", "x").unwrap();
        let raw = |n: usize| (0..n).map(|i| (i * 151 % 256) as u8).collect::<Vec<u8>>();
        for (name, ty) in [
            ("k4", GgmlType::Q4_K),
            ("k5", GgmlType::Q5_K),
            ("k6", GgmlType::Q6_K),
            ("k2", GgmlType::Q2_K),
            ("k3", GgmlType::Q3_K),
        ] {
            b.add_tensor_raw(name, &[256], ty, raw(ty.type_size() as usize))
                .unwrap();
        }
        b.add_tensor_raw("q50", &[32], GgmlType::Q5_0, raw(22))
            .unwrap()
            .add_tensor_raw("q51", &[32], GgmlType::Q5_1, raw(24))
            .unwrap()
            .add_tensor_raw("q40", &[32], GgmlType::Q4_0, raw(18))
            .unwrap()
            .add_tensor_raw("bf", &[4], GgmlType::BF16, raw(8))
            .unwrap();

        let c = GgufWriter::new();
        vec![
            a.to_bytes().unwrap(),
            b.to_bytes().unwrap(),
            c.to_bytes().unwrap(),
        ]
    })
}

/// Values that tend to break parsers when written over a length, count or offset field.
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    3,
    4,
    5,
    255,
    65536,
    u32::MAX as u64,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];

#[derive(Debug, Clone)]
enum Mutation {
    SetByte(usize, u8),
    SetU64(usize, u64),
    SetU32(usize, u32),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        2 => (any::<usize>(), prop::sample::select(INTERESTING.to_vec())).prop_map(|(i, v)| Mutation::SetU64(i, v)),
        2 => (any::<usize>(), prop::sample::select(INTERESTING.to_vec())).prop_map(|(i, v)| Mutation::SetU32(i, v as u32)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match m {
        Mutation::SetByte(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x = *b;
            }
        }
        Mutation::SetU64(i, v) => write_at(bytes, i % len, &v.to_le_bytes()),
        Mutation::SetU32(i, v) => write_at(bytes, i % len, &v.to_le_bytes()),
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Insert(i, v) => {
            let at = i % (bytes.len() + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let at = i % len;
            let end = (at + n).min(bytes.len());
            if at < end {
                bytes.drain(at..end);
            }
        }
    }
}

fn write_at(bytes: &mut [u8], at: usize, v: &[u8]) {
    for (k, b) in v.iter().enumerate() {
        if let Some(x) = bytes.get_mut(at + k) {
            *x = *b;
        }
    }
}

/// Opens `bytes` and, if that works, uses everything the file offers.
fn exercise(bytes: Vec<u8>) {
    match GgufFile::from_bytes(NAME, bytes) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.gguf: "), "{msg}");
        }
        Ok(file) => {
            for (key, value) in file.metadata() {
                let _ = (file.get_u64(key), file.get_f32(key), file.get_str(key));
                let _ = (
                    file.get_bool(key),
                    file.get_str_array(key),
                    file.get_i32_array(key),
                );
                let _ = value.describe();
                if let MetaValue::Array(a) = value {
                    let _ = a.get(a.len().saturating_sub(1));
                }
            }
            for info in file.tensors() {
                assert_eq!(file.tensor_bytes(info).len() as u64, info.n_bytes());
                if let Ok(dense) = file.dequantize(&info.name) {
                    assert_eq!(dense.data.len() as u64, info.n_elements());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Honour PROPTEST_CASES for long runs; otherwise stay quick.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_valid_files_never_panic(
        seed in 0usize..3,
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = seeds()[seed].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        exercise(bytes);
    }

    #[test]
    fn garbage_after_a_plausible_header_never_panics(
        version in prop::sample::select(vec![2u32, 3]),
        n_tensors in prop::sample::select(vec![0u64, 1, 2, 3, 1000, u64::MAX]),
        n_kv in prop::sample::select(vec![0u64, 1, 2, 3, 1000, u64::MAX]),
        rest in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&n_tensors.to_le_bytes());
        bytes.extend_from_slice(&n_kv.to_le_bytes());
        bytes.extend_from_slice(&rest);
        exercise(bytes);
    }

    #[test]
    fn pure_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        exercise(bytes);
    }
}

#[test]
fn seeds_are_valid() {
    for (i, s) in seeds().iter().enumerate() {
        let file =
            GgufFile::from_bytes(NAME, s.clone()).unwrap_or_else(|e| panic!("seed {i}: {e}"));
        for info in file.tensors() {
            file.dequantize(&info.name).unwrap();
        }
    }
}

#[test]
fn open_on_disk_handles_mutated_files() {
    // The same parser runs behind `open`; check the mmap path on a handful of broken files.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let seed = &seeds()[0];
    // Cutting only the padding after the last tensor leaves a valid file, so stop before it.
    let file = GgufFile::from_bytes(NAME, seed.clone()).unwrap();
    let data_end = file
        .tensors()
        .iter()
        .map(|t| file.data_offset() + t.offset + t.n_bytes())
        .max()
        .unwrap() as usize;
    for cut in (0..data_end).step_by(7) {
        std::fs::write(&path, &seed[..cut]).unwrap();
        let err = GgufFile::open(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
    }
}
