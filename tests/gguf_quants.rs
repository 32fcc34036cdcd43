//! Block formats against gguf-py, the reference Python implementation.
//!
//! `tests/data/gguf/quant_vectors.json` was produced by `gen_quant_vectors.py` in the same
//! folder: random blocks (with sane f16 scales, a zero scale and a subnormal one) and their
//! values as decoded by `gguf.quants.dequantize`, and random inputs with their encoding by
//! `gguf.quants.quantize`. Every comparison is bit-exact.

use seedforge::llm::gguf::{GgmlType, dequantize, dequantize_into, quantize};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    dequantize: Vec<DequantCase>,
    quantize: Vec<QuantCase>,
}

#[derive(Deserialize)]
struct DequantCase {
    #[serde(rename = "type")]
    ty: String,
    type_id: u32,
    n_elements: usize,
    bytes_hex: String,
    expected_f32_hex: String,
}

#[derive(Deserialize)]
struct QuantCase {
    #[serde(rename = "type")]
    ty: String,
    type_id: u32,
    input_f32_hex: String,
    expected_bytes_hex: String,
    dequantized_f32_hex: String,
}

fn vectors() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/gguf/quant_vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn f32s(hex: &str) -> Vec<f32> {
    unhex(hex)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn ggml_type(name: &str, id: u32) -> GgmlType {
    let ty = GgmlType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"));
    assert_eq!(ty.id(), id, "{name}: type id");
    ty
}

fn assert_bits_equal(ty: &str, got: &[f32], expected: &[f32]) {
    assert_eq!(got.len(), expected.len(), "{ty}: value count");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(
            g.to_bits(),
            e.to_bits(),
            "{ty}: value {i} is {g:e}, gguf-py says {e:e}"
        );
    }
}

#[test]
fn every_required_type_has_reference_vectors() {
    let v = vectors();
    let required = [
        "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K",
        "Q5_K", "Q6_K",
    ];
    for name in required {
        assert!(
            v.dequantize.iter().any(|c| c.ty == name),
            "no dequantization vectors for {name}"
        );
    }
    for name in ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"] {
        assert!(
            v.quantize.iter().any(|c| c.ty == name),
            "no quantization vectors for {name}"
        );
    }
}

#[test]
fn dequantize_matches_gguf_py_bit_for_bit() {
    for case in vectors().dequantize {
        let ty = ggml_type(&case.ty, case.type_id);
        let bytes = unhex(&case.bytes_hex);
        let expected = f32s(&case.expected_f32_hex);
        assert_eq!(expected.len(), case.n_elements);

        let got =
            dequantize(ty, &bytes, case.n_elements).unwrap_or_else(|e| panic!("{}: {e}", case.ty));
        assert_bits_equal(&case.ty, &got, &expected);

        let mut into = vec![f32::NAN; case.n_elements];
        dequantize_into(ty, &bytes, &mut into).unwrap();
        assert_bits_equal(&case.ty, &into, &expected);
    }
}

#[test]
fn dequantize_block_by_block_matches_whole_input() {
    // Blocks are independent: decoding each block alone must give the same values.
    for case in vectors().dequantize {
        let ty = ggml_type(&case.ty, case.type_id);
        let bytes = unhex(&case.bytes_hex);
        let expected = f32s(&case.expected_f32_hex);
        let (bs, ts) = (ty.block_size() as usize, ty.type_size() as usize);
        for (i, block) in bytes.chunks_exact(ts).enumerate() {
            let got = dequantize(ty, block, bs).unwrap();
            assert_bits_equal(&case.ty, &got, &expected[i * bs..(i + 1) * bs]);
        }
    }
}

#[test]
fn quantize_matches_gguf_py_byte_for_byte() {
    for case in vectors().quantize {
        let ty = ggml_type(&case.ty, case.type_id);
        let input = f32s(&case.input_f32_hex);
        let expected = unhex(&case.expected_bytes_hex);
        let got = quantize(ty, &input).unwrap_or_else(|e| panic!("{}: {e}", case.ty));
        assert_eq!(got.len(), expected.len(), "{}: byte count", case.ty);
        if let Some(i) = got.iter().zip(&expected).position(|(g, e)| g != e) {
            panic!(
                "{}: byte {i} (block {}) is {:#04x}, gguf-py wrote {:#04x}",
                case.ty,
                i / ty.type_size() as usize,
                got[i],
                expected[i]
            );
        }
        // And what we wrote decodes to what gguf-py decodes its own bytes to.
        let back = dequantize(ty, &got, input.len()).unwrap();
        assert_bits_equal(&case.ty, &back, &f32s(&case.dequantized_f32_hex));
    }
}

#[test]
fn quantization_error_is_within_half_a_step() {
    // Independent of gguf-py: each value must come back within one quantization step of its
    // block (range / levels), with a margin for the f16 scale and for the clamped top level of
    // the symmetric types.
    let input: Vec<f32> = (0..32 * 16)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.45)
        .collect();
    for (ty, levels) in [
        (GgmlType::Q8_0, 255.0),
        (GgmlType::Q4_0, 15.0),
        (GgmlType::Q4_1, 15.0),
        (GgmlType::Q5_0, 31.0),
        (GgmlType::Q5_1, 31.0),
    ] {
        let back = dequantize(ty, &quantize(ty, &input).unwrap(), input.len()).unwrap();
        for (block_in, block_out) in input.chunks(32).zip(back.chunks(32)) {
            let lo = block_in.iter().cloned().fold(f32::MAX, f32::min);
            let hi = block_in.iter().cloned().fold(f32::MIN, f32::max);
            let range = hi.max(0.0) - lo.min(0.0);
            let step = range / levels * 1.25;
            for (x, y) in block_in.iter().zip(block_out) {
                assert!((x - y).abs() <= step, "{ty}: {x} came back as {y}");
            }
        }
    }
}
