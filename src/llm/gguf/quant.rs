//! Encoding `f32` values into ggml blocks, for the writer.
//!
//! The block quantizers follow ggml's reference `quantize_row_*_ref` step for step (same scale
//! choice, same float operations, same rounding), so a file we write holds the bytes llama.cpp
//! or gguf-py would have written for the same values.

use half::{bf16, f16};

use super::error::{GgufError, Problem};
use super::ggml_type::GgmlType;

/// Encodes `values` (a whole number of blocks) as `ty`.
pub fn quantize(ty: GgmlType, values: &[f32]) -> Result<Vec<u8>, GgufError> {
    let n = values.len() as u64;
    let Some(n_bytes) = ty.bytes_for(n) else {
        return Err(GgufError::new(Problem::NotWholeBlocks {
            context: String::new(),
            ggml_type: ty,
            n_elements: n,
            block_size: ty.block_size(),
        }));
    };
    let mut out = Vec::with_capacity(n_bytes as usize);
    use GgmlType::*;
    match ty {
        F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        F16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&f16::from_f32(v).to_le_bytes())),
        BF16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&bf16::from_f32(v).to_le_bytes())),
        Q4_0 => blocks(values, &mut out, q4_0),
        Q4_1 => blocks(values, &mut out, q4_1),
        Q5_0 => blocks(values, &mut out, q5_0),
        Q5_1 => blocks(values, &mut out, q5_1),
        Q8_0 => blocks(values, &mut out, q8_0),
        _ => return Err(GgufError::new(Problem::UnsupportedQuant { ggml_type: ty })),
    }
    Ok(out)
}

pub(crate) fn encoder_exists(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0)
}

fn blocks(values: &[f32], out: &mut Vec<u8>, encode: fn(&[f32; 32], &mut Vec<u8>)) {
    let (chunks, _) = values.as_chunks::<32>();
    for block in chunks {
        encode(block, out);
    }
}

fn push_f16(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
}

fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// The value of largest magnitude, keeping its sign (the first one on ties).
fn signed_absmax(x: &[f32; 32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32; 32]) -> (f32, f32) {
    x.iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Packs 32 quants of up to 4 bits: value j in the low nibble of byte j, value j+16 in the high.
fn push_nibbles(q: &[u8; 32], out: &mut Vec<u8>) {
    out.extend((0..16).map(|j| (q[j] & 0xF) | ((q[j + 16] & 0xF) << 4)));
}

/// Bit 4 of each of 32 quants, value j at bit j of a little-endian u32.
fn push_fifth_bits(q: &[u8; 32], out: &mut Vec<u8>) {
    let qh = q
        .iter()
        .enumerate()
        .fold(0u32, |acc, (j, &v)| acc | (u32::from((v >> 4) & 1) << j));
    out.extend_from_slice(&qh.to_le_bytes());
}

/// Symmetric quantization: the signed extreme maps to `-levels/2`, the rest rounds with a bias
/// of `levels/2 + 0.5` and truncation, clamped to `levels - 1`.
fn symmetric(x: &[f32; 32], levels: f32) -> (f32, [u8; 32]) {
    let d = signed_absmax(x) / -(levels / 2.0);
    let id = inverse(d);
    let bias = levels / 2.0 + 0.5;
    let top = levels - 1.0;
    // `as u8` truncates toward zero like ggml's (int8_t) cast; the operand is never negative.
    let q = x.map(|v| (v * id + bias).min(top) as u8);
    (d, q)
}

/// Affine quantization: min maps to 0, max to `levels - 1`, rounding by +0.5 and truncation.
fn affine(x: &[f32; 32], levels: f32) -> (f32, f32, [u8; 32]) {
    let (min, max) = min_max(x);
    let d = (max - min) / (levels - 1.0);
    let id = inverse(d);
    let q = x.map(|v| ((v - min) * id + 0.5).min(levels - 1.0) as u8);
    (d, min, q)
}

fn q4_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let (d, q) = symmetric(x, 16.0);
    push_f16(out, d);
    push_nibbles(&q, out);
}

fn q4_1(x: &[f32; 32], out: &mut Vec<u8>) {
    let (d, min, q) = affine(x, 16.0);
    push_f16(out, d);
    push_f16(out, min);
    push_nibbles(&q, out);
}

fn q5_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let (d, q) = symmetric(x, 32.0);
    push_f16(out, d);
    push_fifth_bits(&q, out);
    push_nibbles(&q, out);
}

fn q5_1(x: &[f32; 32], out: &mut Vec<u8>) {
    let (d, min, q) = affine(x, 32.0);
    push_f16(out, d);
    push_f16(out, min);
    push_fifth_bits(&q, out);
    push_nibbles(&q, out);
}

fn q8_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    push_f16(out, d);
    // f32::round rounds half away from zero, like C's roundf.
    out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::gguf::dequantize;

    #[test]
    fn zero_block_has_zero_scale_not_nan() {
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
        ] {
            let bytes = quantize(ty, &[0.0; 32]).unwrap();
            let back = dequantize(ty, &bytes, 32).unwrap();
            assert!(back.iter().all(|&v| v == 0.0), "{ty}: {back:?}");
        }
    }

    #[test]
    fn rejects_partial_blocks_and_unsupported_types() {
        assert!(quantize(GgmlType::Q8_0, &[0.0; 31]).is_err());
        let err = quantize(GgmlType::Q6_K, &[0.0; 256]).unwrap_err();
        assert_eq!(err.to_string(), "quantizing to Q6_K is not supported");
    }
}
