//! The reader and dequantizers against the real SmolLM2-135M-Instruct Q4_1 file.
//!
//! Expected values come from the shared golden fixture (`../shared/fixtures/golden_smollm2.json`,
//! computed with gguf-py / numpy / transformers from the released file). The model is fetched on
//! first use, as a user's first run fetches it.

use std::time::Instant;

use seedforge::llm::gguf::{GgmlType, GgufFile, TensorInfo};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod common;

use common::model_path;

fn golden() -> Value {
    common::fixture("golden_smollm2.json")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fixture's numbers are f32 values printed as f64. serde_json (without its
/// `float_roundtrip` feature) may parse them one f64 ulp off, which rounding to f32 undoes, so
/// comparing as f32 is still exact.
fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

#[track_caller]
fn assert_close(what: &str, got: f64, expected: f64) {
    let tol = 1e-9 * expected.abs().max(1e-30);
    assert!(
        (got - expected).abs() <= tol,
        "{what}: got {got:.17e}, expected {expected:.17e}"
    );
}

#[test]
fn it_is_the_expected_file() {
    let path = model_path();
    let bytes = std::fs::read(&path).unwrap();
    let digest = hex(&Sha256::digest(&bytes));
    assert_eq!(
        digest,
        golden()["gguf_sha256"].as_str().unwrap(),
        "{} is not the released SmolLM2-135M-Instruct.Q4_1.gguf",
        path.display()
    );
}

#[test]
fn header_and_tensor_inventory() {
    let file = GgufFile::open(&model_path()).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    // Counts as gguf-py's GGUFReader reports them for this file.
    assert_eq!(file.metadata().len(), 33);
    assert_eq!(file.tensors().len(), 272);
    let count = |ty| file.tensors().iter().filter(|t| t.ggml_type == ty).count();
    assert_eq!(count(GgmlType::Q4_1), 210);
    assert_eq!(count(GgmlType::F32), 61);
    assert_eq!(count(GgmlType::Q8_0), 1);
    assert!(
        file.tensor("output.weight").is_none(),
        "the output head is tied to token_embd"
    );
    let ends = file
        .tensors()
        .iter()
        .map(|t| file.data_offset() + t.offset + t.n_bytes());
    assert_eq!(ends.max(), Some(file.file_len()));
}

#[test]
fn tensor_checks_from_the_golden_fixture() {
    let file = GgufFile::open(&model_path()).unwrap();
    let golden = golden();
    let checks = golden["gguf_tensor_checks"].as_object().unwrap();
    let mut checked = 0;
    for (name, c) in checks {
        if !c.is_object() || c.get("ggml_type").is_none() {
            continue; // a note, not a tensor
        }
        let info: &TensorInfo = file
            .tensor(name)
            .unwrap_or_else(|| panic!("tensor {name} is missing"));
        assert_eq!(
            info.ggml_type.name(),
            c["ggml_type"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            u64::from(info.ggml_type.id()),
            c["ggml_type_id"].as_u64().unwrap(),
            "{name}"
        );
        let dims: Vec<u64> = c["gguf_dims_ne"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(info.dims, dims, "{name}: dims");
        let shape: Vec<usize> = c["numpy_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.shape(), shape, "{name}: shape");
        assert_eq!(
            info.n_bytes(),
            c["n_bytes"].as_u64().unwrap(),
            "{name}: n_bytes"
        );
        assert_eq!(
            file.data_offset() + info.offset,
            c["data_offset_in_file"].as_u64().unwrap(),
            "{name}: offset"
        );
        if let Some(raw) = c.get("first_block_raw_hex") {
            let block = &file.tensor_bytes(info)[..info.ggml_type.type_size() as usize];
            assert_eq!(hex(block), raw.as_str().unwrap(), "{name}: first block");
        }

        let dense = file.dequantize(name).unwrap();
        assert_eq!(dense.shape, shape);
        let data = &dense.data;
        assert_eq!(data[..8], f32s(&c["first8"]), "{name}: first8");
        assert_eq!(data[data.len() - 8..], f32s(&c["last8"]), "{name}: last8");
        if !c["row1_first8"].is_null() {
            let cols = shape[shape.len() - 1];
            assert_eq!(
                data[cols..cols + 8],
                f32s(&c["row1_first8"]),
                "{name}: row1_first8"
            );
        }
        let (mut sum, mut sum_abs, mut sum_sq) = (0f64, 0f64, 0f64);
        for &v in data {
            let v = f64::from(v);
            sum += v;
            sum_abs += v.abs();
            sum_sq += v * v;
        }
        assert_close(&format!("{name}: sum"), sum, c["sum"].as_f64().unwrap());
        assert_close(
            &format!("{name}: sum_abs"),
            sum_abs,
            c["sum_abs"].as_f64().unwrap(),
        );
        assert_close(
            &format!("{name}: sum_sq"),
            sum_sq,
            c["sum_sq"].as_f64().unwrap(),
        );
        checked += 1;
    }
    assert_eq!(checked, 6, "tensors checked");
}

/// Checks one metadata key against a JSON value of the fixture, by the JSON value's type.
fn check_key(file: &GgufFile, key: &str, expected: &Value) {
    match expected {
        Value::Null => assert!(file.get(key).is_none(), "{key} should be absent"),
        Value::Bool(b) => assert_eq!(file.get_bool(key).unwrap(), *b, "{key}"),
        Value::String(s) => assert_eq!(file.get_str(key).unwrap(), s, "{key}"),
        Value::Number(n) if n.is_u64() => {
            assert_eq!(file.get_u64(key).unwrap(), n.as_u64().unwrap(), "{key}")
        }
        // f32 in the file; see `f32s` for why the comparison is in f32.
        Value::Number(n) => assert_eq!(
            file.get_f32(key).unwrap(),
            n.as_f64().unwrap() as f32,
            "{key}"
        ),
        Value::Array(items) => {
            let expected: Vec<&str> = items.iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(file.get_str_array(key).unwrap(), expected, "{key}");
        }
        Value::Object(_) => panic!("{key}: unexpected object in the fixture"),
    }
}

#[test]
fn architecture_metadata() {
    let file = GgufFile::open(&model_path()).unwrap();
    let golden = golden();
    let arch = golden["gguf_arch_metadata"].as_object().unwrap();
    assert!(arch.len() >= 20);
    for (key, expected) in arch {
        check_key(&file, key, expected);
    }
    // The values the model code will read, through the typed getters it will use.
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(file.get_usize("llama.embedding_length").unwrap(), 576);
    assert_eq!(file.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(file.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(
        file.get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-5
    );
}

#[test]
fn tokenizer_metadata() {
    let file = GgufFile::open(&model_path()).unwrap();
    let golden = golden();
    let tok = golden["gguf_tokenizer_metadata"].as_object().unwrap();
    let tokens = file.get_str_array("tokenizer.ggml.tokens").unwrap();
    let merges = file.get_str_array("tokenizer.ggml.merges").unwrap();
    let types = file.get_i32_array("tokenizer.ggml.token_type").unwrap();
    for (key, expected) in tok {
        match key.as_str() {
            "n_tokens" => assert_eq!(tokens.len() as u64, expected.as_u64().unwrap()),
            "n_merges" => assert_eq!(merges.len() as u64, expected.as_u64().unwrap()),
            "first_merges" => {
                let first: Vec<&str> = expected
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(&merges[..first.len()], first);
            }
            "control_tokens(token_type==3)" => {
                let expected: Vec<(usize, &str)> = expected
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_str().unwrap()))
                    .collect();
                let got: Vec<(usize, &str)> = types
                    .iter()
                    .enumerate()
                    .filter(|&(_, &t)| t == 3)
                    .map(|(i, _)| (i, tokens[i].as_str()))
                    .collect();
                assert_eq!(got, expected);
            }
            _ => check_key(&file, key, expected),
        }
    }
    assert_eq!(types.len(), tokens.len());
}

#[test]
fn open_and_dequantize_the_whole_model() {
    let path = model_path();
    let start = Instant::now();
    let file = GgufFile::open(&path).unwrap();
    let opened = start.elapsed();
    let mut n_values = 0usize;
    for info in file.tensors() {
        let dense = file.dequantize(&info.name).unwrap();
        assert!(dense.data.iter().all(|v| v.is_finite()), "{}", info.name);
        n_values += dense.data.len();
    }
    let total = start.elapsed();
    assert_eq!(n_values, 134_515_008);
    eprintln!(
        "open: {:.1} ms; open + dequantize all {} tensors ({n_values} values): {:.1} ms on {} threads",
        opened.as_secs_f64() * 1e3,
        file.tensors().len(),
        total.as_secs_f64() * 1e3,
        rayon::current_num_threads()
    );
}

/// Rows decoded on their own (how quantized weights encode the embedding in pieces) are those
/// rows of the whole tensor, for the Q8_0 embedding and a Q4_1 projection; rows past the end
/// are refused with the tensor named.
#[test]
fn rows_decoded_alone_equal_the_whole_tensors_rows() {
    let file = GgufFile::open(&model_path()).unwrap();
    for name in ["token_embd.weight", "blk.3.ffn_down.weight"] {
        let whole = file.dequantize(name).unwrap();
        let [rows, cols] = whole.shape[..] else {
            panic!("{name}: {:?}", whole.shape)
        };
        for range in [0..1, 17..40, rows - 5..rows] {
            let part = file.dequantize_rows(name, range.clone()).unwrap();
            assert_eq!(part.shape, [range.len(), cols]);
            assert_eq!(
                part.data,
                whole.data[range.start * cols..range.end * cols],
                "{name} rows {range:?}"
            );
        }
        let err = file.dequantize_rows(name, rows - 1..rows + 1).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}
