//! Writer ↔ reader round trips, and both sides against gguf-py's own writer.

use std::path::Path;

use seedforge::llm::gguf::{
    GgmlType, GgufFile, GgufWriter, MetaArray, MetaValue, Problem, dequantize,
};
use serde::Deserialize;

fn data_path(name: &str) -> String {
    format!("{}/tests/data/gguf/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Deterministic pseudo-random values in [-1, 1) (a 64-bit LCG; no dependency needed).
fn noise(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// One value of every scalar type, arrays of every element type (some empty) and nested arrays.
fn every_kind_of_metadata() -> Vec<(String, MetaValue)> {
    let values: Vec<(&str, MetaValue)> = vec![
        ("t.u8", MetaValue::U8(255)),
        ("t.i8", MetaValue::I8(-128)),
        ("t.u16", MetaValue::U16(65535)),
        ("t.i16", MetaValue::I16(-32768)),
        ("t.u32", MetaValue::U32(u32::MAX)),
        ("t.i32", MetaValue::I32(i32::MIN)),
        ("t.f32", MetaValue::F32(-0.1)),
        ("t.bool.true", MetaValue::Bool(true)),
        ("t.bool.false", MetaValue::Bool(false)),
        ("t.string", MetaValue::from("ünïcödé ✓ \n\t")),
        ("t.string.empty", MetaValue::from("")),
        ("t.u64", MetaValue::U64(u64::MAX)),
        ("t.i64", MetaValue::I64(i64::MIN)),
        ("t.f64", MetaValue::F64(std::f64::consts::PI)),
        ("a.u8", vec![0u8, 1, 255].into()),
        ("a.i8", vec![-1i8, 0, 127].into()),
        ("a.u16", vec![1u16, 65535].into()),
        ("a.i16", vec![-32768i16, 5].into()),
        ("a.u32", vec![7u32].into()),
        ("a.i32", vec![-2i32, 3, i32::MAX].into()),
        ("a.f32", vec![0.5f32, f32::INFINITY, -0.0].into()),
        ("a.bool", vec![true, false, true].into()),
        ("a.string", vec!["a", "", "ç"].into()),
        ("a.u64", vec![u64::MAX, 0].into()),
        ("a.i64", vec![i64::MIN].into()),
        ("a.f64", vec![1e300f64, -1e-300].into()),
        ("a.empty.string", Vec::<String>::new().into()),
        ("a.empty.f64", Vec::<f64>::new().into()),
        (
            "a.nested",
            MetaArray::Array(vec![
                MetaArray::I32(vec![1, 2]),
                MetaArray::String(vec!["x".into()]),
                MetaArray::Array(vec![MetaArray::Bool(vec![true]), MetaArray::U8(vec![])]),
                MetaArray::F32(vec![]),
            ])
            .into(),
        ),
        ("a.nested.empty", MetaArray::Array(vec![]).into()),
    ];
    values
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

struct Tensor {
    name: &'static str,
    shape: Vec<usize>,
    ty: GgmlType,
    values: Vec<f32>,
}

fn several_tensors() -> Vec<Tensor> {
    let t = |name, shape: &[usize], ty, seed| {
        let n = shape.iter().product();
        Tensor {
            name,
            shape: shape.to_vec(),
            ty,
            values: noise(seed, n),
        }
    };
    vec![
        t("f32.vector", &[5], GgmlType::F32, 1),
        t("f32.4d", &[2, 1, 3, 2], GgmlType::F32, 2),
        t("f16.matrix", &[3, 7], GgmlType::F16, 3),
        t("bf16.matrix", &[2, 9], GgmlType::BF16, 4),
        t("q8_0", &[3, 64], GgmlType::Q8_0, 5),
        t("q4_0", &[2, 32], GgmlType::Q4_0, 6),
        t("q4_1", &[4, 96], GgmlType::Q4_1, 7),
        t("q5_0", &[32], GgmlType::Q5_0, 8),
        t("q5_1", &[2, 2, 32], GgmlType::Q5_1, 9),
    ]
}

/// Largest error a value may pick up when stored as `ty`, for values in [-1, 1].
fn tolerance(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::F32 => 0.0,
        GgmlType::F16 => 1.0 / 2048.0,
        GgmlType::BF16 => 1.0 / 256.0,
        GgmlType::Q8_0 => 2.0 / 127.0,
        GgmlType::Q5_0 | GgmlType::Q5_1 => 2.0 / 15.0,
        _ => 2.0 / 7.0,
    }
}

/// A writer holding everything, and what the reader must find in the file.
struct Built {
    writer: GgufWriter,
    meta: Vec<(String, MetaValue)>,
    q4k: Vec<u8>,
    q6k: Vec<u8>,
}

fn build(alignment: Option<u32>) -> Built {
    let mut w = GgufWriter::new();
    let mut expected_meta = vec![];
    w.add_metadata("general.architecture", "test").unwrap();
    expected_meta.push(("general.architecture".to_string(), MetaValue::from("test")));
    if let Some(a) = alignment {
        w.set_alignment(a).unwrap();
        expected_meta.push(("general.alignment".to_string(), MetaValue::U32(a)));
    }
    for (k, v) in every_kind_of_metadata() {
        w.add_metadata(k.clone(), v.clone()).unwrap();
        expected_meta.push((k, v));
    }
    for t in several_tensors() {
        w.add_tensor_quantized(t.name, &t.shape, t.ty, &t.values)
            .unwrap();
    }
    // Raw blocks of types we cannot encode: arbitrary bytes survive unchanged.
    let q4k: Vec<u8> = (0..2 * 144).map(|i| (i * 37 % 251) as u8).collect();
    let q6k: Vec<u8> = (0..210).map(|i| (i * 11 % 253) as u8).collect();
    w.add_tensor_raw("raw.q4_k", &[256, 2], GgmlType::Q4_K, q4k.clone())
        .unwrap()
        .add_tensor_raw("raw.q6_k", &[256], GgmlType::Q6_K, q6k.clone())
        .unwrap();
    Built {
        writer: w,
        meta: expected_meta,
        q4k,
        q6k,
    }
}

fn check_round_trip(file: &GgufFile, alignment: u64, built: &Built) {
    let Built { meta, q4k, q6k, .. } = built;
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), alignment);
    assert_eq!(file.metadata(), meta.as_slice(), "metadata, in order");
    assert_eq!(file.data_offset() % alignment, 0);

    let tensors = several_tensors();
    assert_eq!(file.tensors().len(), tensors.len() + 2);
    for (t, info) in tensors.iter().zip(file.tensors()) {
        assert_eq!(info.name, t.name);
        assert_eq!(info.ggml_type, t.ty);
        let dims: Vec<u64> = t.shape.iter().rev().map(|&d| d as u64).collect();
        assert_eq!(info.dims, dims, "{}: dims are the reversed shape", t.name);
        assert_eq!(info.shape(), t.shape);
        assert_eq!(
            (file.data_offset() + info.offset) % alignment,
            0,
            "{}",
            t.name
        );
        assert_eq!(file.tensor_bytes(info).len() as u64, info.n_bytes());

        let dense = file.dequantize(t.name).unwrap();
        assert_eq!(dense.shape, t.shape);
        let tol = tolerance(t.ty);
        for (i, (x, y)) in t.values.iter().zip(&dense.data).enumerate() {
            assert!((x - y).abs() <= tol, "{}[{i}]: wrote {x}, read {y}", t.name);
        }
    }
    let q4k_info = file.tensor("raw.q4_k").unwrap();
    assert_eq!(file.tensor_bytes(q4k_info), q4k);
    assert_eq!(q4k_info.shape(), vec![2, 256]);
    assert_eq!(file.tensor_bytes(file.tensor("raw.q6_k").unwrap()), q6k);
    // Decoding through the file equals decoding the raw bytes directly.
    let direct = dequantize(GgmlType::Q4_K, q4k, 512).unwrap();
    assert_eq!(file.dequantize("raw.q4_k").unwrap().data, direct);
}

#[test]
fn round_trip_in_memory_with_various_alignments() {
    for alignment in [None, Some(1), Some(8), Some(64), Some(4096)] {
        let built = build(alignment);
        let w = &built.writer;
        let bytes = w.to_bytes().unwrap();
        let expected_alignment = alignment.map_or(32, u64::from);
        assert_eq!(
            bytes.len() as u64 % expected_alignment,
            0,
            "file ends padded"
        );
        let file = GgufFile::from_bytes("mem.gguf", bytes).unwrap();
        check_round_trip(&file, expected_alignment, &built);
    }
}

#[test]
fn round_trip_through_a_file_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    let built = build(Some(64));
    let w = &built.writer;
    w.write(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), w.to_bytes().unwrap());
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.path(), path);
    check_round_trip(&file, 64, &built);
}

#[test]
fn tensor_data_is_packed_like_ggml_expects() {
    // ggml's reader requires each offset to be the previous one plus its padded size.
    let w = build(Some(64)).writer;
    let file = GgufFile::from_bytes("mem.gguf", w.to_bytes().unwrap()).unwrap();
    let mut expected = 0u64;
    for info in file.tensors() {
        assert_eq!(info.offset, expected, "{}", info.name);
        expected = (info.offset + info.n_bytes()).div_ceil(64) * 64;
    }
    assert_eq!(file.data_offset() + expected, file.file_len());
}

#[test]
fn a_tiny_random_llama() {
    // The shape of what the model code writes in its own tests: Llama names and keys, Q8_0
    // embeddings, Q4_1 projections, F32 norms.
    let (vocab, dim, ffn, layers) = (64usize, 64usize, 96usize, 2u32);
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .unwrap()
        .add_metadata("llama.block_count", layers)
        .unwrap()
        .add_metadata("llama.embedding_length", dim as u32)
        .unwrap()
        .add_metadata("llama.feed_forward_length", ffn as u32)
        .unwrap()
        .add_metadata("llama.attention.head_count", 4u32)
        .unwrap()
        .add_metadata("llama.attention.head_count_kv", 2u32)
        .unwrap()
        .add_metadata("llama.rope.freq_base", 10000.0f32)
        .unwrap()
        .add_metadata("llama.attention.layer_norm_rms_epsilon", 1e-5f32)
        .unwrap()
        .add_metadata("tokenizer.ggml.model", "gpt2")
        .unwrap()
        .add_metadata(
            "tokenizer.ggml.tokens",
            (0..vocab).map(|i| format!("t{i}")).collect::<Vec<_>>(),
        )
        .unwrap()
        .add_metadata("tokenizer.ggml.token_type", vec![1i32; vocab])
        .unwrap();
    let mut expected = vec![];
    let mut add = |name: String, shape: Vec<usize>, ty: GgmlType| {
        let values = noise(expected.len() as u64, shape.iter().product());
        w.add_tensor_quantized(&name, &shape, ty, &values).unwrap();
        expected.push((name, shape, ty, values));
    };
    add("token_embd.weight".into(), vec![vocab, dim], GgmlType::Q8_0);
    for l in 0..layers {
        add(
            format!("blk.{l}.attn_norm.weight"),
            vec![dim],
            GgmlType::F32,
        );
        add(
            format!("blk.{l}.attn_q.weight"),
            vec![dim, dim],
            GgmlType::Q4_1,
        );
        add(
            format!("blk.{l}.attn_k.weight"),
            vec![dim / 2, dim],
            GgmlType::Q4_1,
        );
        add(
            format!("blk.{l}.ffn_down.weight"),
            vec![dim, ffn],
            GgmlType::Q4_1,
        );
    }
    add("output_norm.weight".into(), vec![dim], GgmlType::F32);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-llama.gguf");
    w.write(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();

    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(file.get_u32("llama.block_count").unwrap(), layers);
    assert_eq!(file.get_usize("llama.embedding_length").unwrap(), dim);
    assert_eq!(file.get_u64("llama.attention.head_count_kv").unwrap(), 2);
    assert_eq!(file.get_f32("llama.rope.freq_base").unwrap(), 10000.0);
    assert_eq!(
        file.get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-5
    );
    assert_eq!(file.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(
        file.get_str_array("tokenizer.ggml.tokens").unwrap()[63],
        "t63"
    );
    assert_eq!(
        file.get_i32_array("tokenizer.ggml.token_type").unwrap(),
        vec![1; vocab]
    );

    assert_eq!(file.tensors().len(), expected.len());
    for (name, shape, ty, values) in &expected {
        let info = file.tensor(name).unwrap();
        assert_eq!((info.shape(), info.ggml_type), (shape.clone(), *ty));
        let dense = file.dequantize(name).unwrap();
        assert_eq!(&dense.shape, shape);
        for (x, y) in values.iter().zip(&dense.data) {
            assert!((x - y).abs() <= tolerance(*ty), "{name}: {x} vs {y}");
        }
    }
}

#[test]
fn typed_getters_convert_and_explain() {
    let mut w = GgufWriter::new();
    w.add_metadata("small", 7u8)
        .unwrap()
        .add_metadata("negative", -3i32)
        .unwrap()
        .add_metadata("double", 0.25f64)
        .unwrap()
        .add_metadata("name", "x")
        .unwrap();
    let file = GgufFile::from_bytes("cfg.gguf", w.to_bytes().unwrap()).unwrap();

    assert_eq!(file.get_u64("small").unwrap(), 7);
    assert_eq!(file.get_i64("negative").unwrap(), -3);
    assert_eq!(file.get_f32("double").unwrap(), 0.25);
    assert_eq!(file.get_f64("double").unwrap(), 0.25);

    let err = file.get_u64("negative").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cfg.gguf: metadata key 'negative' holds -3, which does not fit in u64"
    );
    let err = file.get_str("small").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cfg.gguf: metadata key 'small' is a u8, expected a string"
    );
    let err = file.get_u32("name").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cfg.gguf: metadata key 'name' is a string, expected an integer"
    );
    let err = file.get_bool("absent").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cfg.gguf: metadata key 'absent' is missing"
    );
    assert!(matches!(err.problem(), Problem::MissingKey { key } if key == "absent"));
    let err = file.get_str_array("name").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cfg.gguf: metadata key 'name' is a string, expected an array of string"
    );
    let err = file.dequantize("nope").unwrap_err();
    assert_eq!(err.to_string(), "cfg.gguf: there is no tensor named 'nope'");
}

#[derive(Deserialize)]
struct GgufPyExpected {
    q8_0: String,
    q4_1: String,
}

fn f32s(hex: &str) -> Vec<f32> {
    (0..hex.len())
        .step_by(8)
        .map(|i| {
            let bits = u32::from_str_radix(&hex[i..i + 8], 16).unwrap();
            f32::from_le_bytes(bits.to_be_bytes())
        })
        .collect()
}

/// The metadata and the F32/F16 tensors that gen_reference_file.py wrote.
fn gguf_py_content() -> (Vec<(String, MetaValue)>, Vec<f32>, Vec<f32>) {
    let meta: Vec<(&str, MetaValue)> = vec![
        ("general.architecture", "llama".into()),
        ("general.alignment", MetaValue::U32(64)),
        ("test.u8", MetaValue::U8(200)),
        ("test.i8", MetaValue::I8(-100)),
        ("test.u16", MetaValue::U16(60000)),
        ("test.i16", MetaValue::I16(-30000)),
        ("test.u32", MetaValue::U32(4_000_000_000)),
        ("test.i32", MetaValue::I32(-2_000_000_000)),
        ("test.f32", MetaValue::F32(0.1)),
        ("test.bool", MetaValue::Bool(true)),
        ("test.string", "héllo ✓".into()),
        ("test.u64", MetaValue::U64((1 << 63) + 5)),
        ("test.i64", MetaValue::I64(-(1 << 62))),
        ("test.f64", MetaValue::F64(0.1)),
        ("test.array_i32", vec![1i32, -2, 3].into()),
        ("test.array_str", vec!["a", "", "ü"].into()),
        (
            "test.array_nested",
            MetaArray::Array(vec![MetaArray::I32(vec![1, 2]), MetaArray::I32(vec![3])]).into(),
        ),
    ];
    let meta = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let f32s = (0..24).map(|i| (i as f32 - 10.0) * 0.25).collect();
    let f16s = (0..24).map(|i| i as f32 * -0.5).collect();
    (meta, f32s, f16s)
}

#[test]
fn reads_a_file_written_by_gguf_py() {
    let path = data_path("written_by_gguf_py.gguf");
    let file = GgufFile::open(Path::new(&path)).unwrap();
    let (meta, f32s_expected, f16s_expected) = gguf_py_content();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.metadata(), meta);

    let names: Vec<_> = file.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["f32", "f16", "q8_0", "q4_1"]);
    let f32_t = file.dequantize("f32").unwrap();
    assert_eq!((f32_t.shape, f32_t.data), (vec![6, 4], f32s_expected));
    let f16_t = file.dequantize("f16").unwrap();
    assert_eq!((f16_t.shape, f16_t.data), (vec![3, 8], f16s_expected));

    let text = std::fs::read_to_string(data_path("written_by_gguf_py.json")).unwrap();
    let expected: GgufPyExpected = serde_json::from_str(&text).unwrap();
    let q8 = file.dequantize("q8_0").unwrap();
    assert_eq!(q8.shape, vec![2, 64]);
    assert_eq!(q8.data, f32s(&expected.q8_0));
    let q41 = file.dequantize("q4_1").unwrap();
    assert_eq!(q41.shape, vec![3, 32]);
    assert_eq!(q41.data, f32s(&expected.q4_1));
}

#[test]
fn writes_the_same_bytes_as_gguf_py() {
    let path = data_path("written_by_gguf_py.gguf");
    let reference = std::fs::read(&path).unwrap();
    let theirs = GgufFile::from_bytes(path, reference.clone()).unwrap();
    let (meta, f32s, f16s) = gguf_py_content();

    let mut w = GgufWriter::new();
    for (k, v) in meta {
        w.add_metadata(k, v).unwrap();
    }
    w.add_tensor_f32("f32", &[6, 4], &f32s).unwrap();
    w.add_tensor_quantized("f16", &[3, 8], GgmlType::F16, &f16s)
        .unwrap();
    for name in ["q8_0", "q4_1"] {
        let info = theirs.tensor(name).unwrap();
        w.add_tensor_raw(name, &info.dims, info.ggml_type, theirs.tensor_bytes(info))
            .unwrap();
    }
    let ours = w.to_bytes().unwrap();
    assert_eq!(ours.len(), reference.len());
    if let Some(i) = ours.iter().zip(&reference).position(|(a, b)| a != b) {
        panic!(
            "byte {i} differs: ours {:#04x}, gguf-py's {:#04x}",
            ours[i], reference[i]
        );
    }
}
