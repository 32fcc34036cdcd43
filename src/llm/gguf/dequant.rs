//! Decoding ggml blocks to `f32`.
//!
//! Each kernel turns one block into its values with the same float operations, in the same
//! order, as ggml's reference `dequantize_row_*` (and gguf-py), so results are bit-identical.
//! Blocks are independent, so big tensors are split across threads with rayon.

use half::{bf16, f16};
use rayon::prelude::*;

use super::error::{GgufError, Problem};
use super::ggml_type::GgmlType;

/// Decodes `n_elements` values of type `ty` from `bytes`, which must hold exactly their blocks.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n_elements: usize) -> Result<Vec<f32>, GgufError> {
    dequantize_with_context(ty, bytes, n_elements, "")
}

/// Decodes into `out`, whose length gives the number of values.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), GgufError> {
    check_sizes(ty, bytes.len(), out.len(), "")?;
    decode(ty, bytes, out, "")
}

pub(crate) fn dequantize_with_context(
    ty: GgmlType,
    bytes: &[u8],
    n_elements: usize,
    context: &str,
) -> Result<Vec<f32>, GgufError> {
    check_sizes(ty, bytes.len(), n_elements, context)?;
    if !kernel_exists(ty) {
        return Err(unsupported(ty, context));
    }
    let mut out = vec![0.0f32; n_elements];
    decode(ty, bytes, &mut out, context)?;
    Ok(out)
}

pub(crate) fn kernel_exists(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K
    )
}

fn unsupported(ty: GgmlType, context: &str) -> GgufError {
    GgufError::new(Problem::UnsupportedDequant {
        context: context.to_string(),
        ggml_type: ty,
    })
}

fn check_sizes(
    ty: GgmlType,
    n_bytes: usize,
    n_elements: usize,
    context: &str,
) -> Result<(), GgufError> {
    let n_elements = n_elements as u64;
    let Some(expected) = ty.bytes_for(n_elements) else {
        return Err(GgufError::new(Problem::NotWholeBlocks {
            context: context.to_string(),
            ggml_type: ty,
            n_elements,
            block_size: ty.block_size(),
        }));
    };
    if expected != n_bytes as u64 {
        return Err(GgufError::new(Problem::ByteCountMismatch {
            context: context.to_string(),
            ggml_type: ty,
            n_elements,
            expected,
            actual: n_bytes as u64,
        }));
    }
    Ok(())
}

/// Sizes are already checked: `bytes` holds exactly the blocks of `out`.
fn decode(ty: GgmlType, bytes: &[u8], out: &mut [f32], context: &str) -> Result<(), GgufError> {
    use GgmlType::*;
    match ty {
        F32 => run(bytes, out, |b: &[u8; 4], o: &mut [f32; 1]| {
            o[0] = f32::from_le_bytes(*b)
        }),
        F16 => run(bytes, out, |b: &[u8; 2], o: &mut [f32; 1]| {
            o[0] = f16::from_le_bytes(*b).to_f32()
        }),
        BF16 => run(bytes, out, |b: &[u8; 2], o: &mut [f32; 1]| {
            o[0] = bf16::from_le_bytes(*b).to_f32()
        }),
        Q4_0 => run(bytes, out, q4_0),
        Q4_1 => run(bytes, out, q4_1),
        Q5_0 => run(bytes, out, q5_0),
        Q5_1 => run(bytes, out, q5_1),
        Q8_0 => run(bytes, out, q8_0),
        Q2_K => run(bytes, out, q2_k),
        Q3_K => run(bytes, out, q3_k),
        Q4_K => run(bytes, out, q4_k),
        Q5_K => run(bytes, out, q5_k),
        Q6_K => run(bytes, out, q6_k),
        _ => return Err(unsupported(ty, context)),
    }
    Ok(())
}

/// Blocks handed to one rayon task: large enough (about 64 KiB of output) that scheduling costs
/// nothing, small enough that a 576-wide matrix still splits across every core.
const VALUES_PER_TASK: usize = 16 * 1024;

/// Applies `kernel` to every (block, output block) pair, in parallel for big inputs.
fn run<const TS: usize, const BS: usize>(
    bytes: &[u8],
    out: &mut [f32],
    kernel: impl Fn(&[u8; TS], &mut [f32; BS]) + Sync,
) {
    let (blocks, _) = bytes.as_chunks::<TS>();
    let (outs, _) = out.as_chunks_mut::<BS>();
    let per_task = (VALUES_PER_TASK / BS).max(1);
    let serial = |blocks: &[[u8; TS]], outs: &mut [[f32; BS]]| {
        for (b, o) in blocks.iter().zip(outs.iter_mut()) {
            kernel(b, o);
        }
    };
    if blocks.len() <= per_task {
        serial(blocks, outs);
    } else {
        blocks
            .par_chunks(per_task)
            .zip(outs.par_chunks_mut(per_task))
            .for_each(|(b, o)| serial(b, o));
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Q4_0: `d:f16, qs[16]`; value j is nibble j (low nibbles first) minus 8, times d.
fn q4_0(b: &[u8; 18], o: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        let q = b[2 + j];
        o[j] = ((q & 0xF) as i32 - 8) as f32 * d;
        o[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: `d:f16, m:f16, qs[16]`; value = d·nibble + m.
fn q4_1(b: &[u8; 20], o: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    for j in 0..16 {
        let q = b[4 + j];
        o[j] = d * (q & 0xF) as f32 + m;
        o[j + 16] = d * (q >> 4) as f32 + m;
    }
}

/// The 5-bit quants of Q5_0/Q5_1: low 4 bits from the nibbles, bit 4 of value j from bit j of
/// the little-endian `qh` word.
fn q5_values(qh: [u8; 4], qs: &[u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0u8; 32];
    for j in 0..16 {
        let hi0 = ((qh >> j) & 1) as u8;
        let hi1 = ((qh >> (j + 16)) & 1) as u8;
        q[j] = (qs[j] & 0xF) | (hi0 << 4);
        q[j + 16] = (qs[j] >> 4) | (hi1 << 4);
    }
    q
}

/// Q5_0: `d:f16, qh[4], qs[16]`; value = (q − 16)·d.
fn q5_0(b: &[u8; 22], o: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let q = q5_values([b[2], b[3], b[4], b[5]], &b[6..22]);
    for (o, q) in o.iter_mut().zip(q) {
        *o = (q as i32 - 16) as f32 * d;
    }
}

/// Q5_1: `d:f16, m:f16, qh[4], qs[16]`; value = d·q + m.
fn q5_1(b: &[u8; 24], o: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let q = q5_values([b[4], b[5], b[6], b[7]], &b[8..24]);
    for (o, q) in o.iter_mut().zip(q) {
        *o = d * q as f32 + m;
    }
}

/// Q8_0: `d:f16, qs[32]:i8`; value = q·d.
fn q8_0(b: &[u8; 34], o: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for (o, &q) in o.iter_mut().zip(&b[2..]) {
        *o = (q as i8) as f32 * d;
    }
}

/// Q2_K: `scales[16], qs[64], d:f16, dmin:f16`. Each scale byte covers 16 values: low nibble
/// scales by d, high nibble gives the min (times dmin). Value v uses bits 2s..2s+2 of
/// `qs[32h + l]` where v = 128h + 32s + l.
fn q2_k(b: &[u8; 84], o: &mut [f32; 256]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    for (v, o) in o.iter_mut().enumerate() {
        let (h, s, l) = (v / 128, (v % 128) / 32, v % 32);
        let q = (qs[32 * h + l] >> (2 * s)) & 3;
        let sc = scales[v / 16];
        let dl = d * (sc & 0xF) as f32;
        let ml = dmin * (sc >> 4) as f32;
        *o = dl * q as f32 - ml;
    }
}

/// Q3_K: `hmask[32], qs[64], scales[12], d:f16`. 16 signed 6-bit scales (each for 16 values);
/// value v = 128h + 32s + l takes 2 low bits from `qs[32h + l]` (shift 2s) and subtracts 4
/// unless bit (4h + s) of `hmask[l]` is set.
fn q3_k(b: &[u8; 110], o: &mut [f32; 256]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let packed = &b[96..108];
    let d = f16_at(b, 108);
    let mut scales = [0f32; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        let low = (packed[i % 8] >> (4 * (i / 8))) & 0xF;
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        *s = ((low | (high << 4)) as i32 - 32) as f32;
    }
    for (v, o) in o.iter_mut().enumerate() {
        let (h, s, l) = (v / 128, (v % 128) / 32, v % 32);
        let low = ((qs[32 * h + l] >> (2 * s)) & 3) as i32;
        let high_set = (hmask[l] >> (v / 32)) & 1 == 1;
        let q = if high_set { low } else { low - 4 };
        *o = (d * scales[v / 16]) * q as f32;
    }
}

/// The 6-bit (scale, min) pair `j` of the 12 packed bytes shared by Q4_K and Q5_K: the first
/// four pairs sit in the low 6 bits of bytes 0–7, the last four in nibbles of bytes 8–11 with
/// their top 2 bits borrowed from bytes 0–7.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K: `d:f16, dmin:f16, scales[12], qs[128]`. Each 64-value chunk c takes `qs[32c..32c+32]`:
/// low nibbles with pair 2c, high nibbles with pair 2c+1; value = d·sc·q − dmin·m.
fn q4_k(b: &[u8; 144], o: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            let q = qs[32 * c + l];
            o[64 * c + l] = d1 * (q & 0xF) as f32 - m1;
            o[64 * c + 32 + l] = d2 * (q >> 4) as f32 - m2;
        }
    }
}

/// Q5_K: `d:f16, dmin:f16, scales[12], qh[32], qs[128]`: Q4_K plus a fifth bit, bit 2c (low
/// nibbles) or 2c+1 (high nibbles) of `qh[l]`.
fn q5_k(b: &[u8; 176], o: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            let q = qs[32 * c + l];
            let h1 = ((qh[l] >> (2 * c)) & 1) << 4;
            let h2 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
            o[64 * c + l] = d1 * ((q & 0xF) | h1) as f32 - m1;
            o[64 * c + 32 + l] = d2 * ((q >> 4) | h2) as f32 - m2;
        }
    }
}

/// Q6_K: `ql[128], qh[64], scales[16]:i8, d:f16`. Value v = 128h + r: low 4 bits are nibble
/// r/64 of `ql[64h + r%64]`, high 2 bits are bits 2(r/32).. of `qh[32h + r%32]`; value =
/// d·scale[v/16]·(q − 32).
fn q6_k(b: &[u8; 210], o: &mut [f32; 256]) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let scales = &b[192..208];
    let d = f16_at(b, 208);
    for (v, o) in o.iter_mut().enumerate() {
        let (h, r) = (v / 128, v % 128);
        let low = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xF;
        let high = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
        let q = (low | (high << 4)) as i32 - 32;
        *o = (d * (scales[v / 16] as i8) as f32) * q as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_sizes() {
        let err = dequantize(GgmlType::Q4_1, &[0; 20], 33).unwrap_err();
        assert!(
            matches!(err.problem(), Problem::NotWholeBlocks { .. }),
            "{err}"
        );
        let err = dequantize(GgmlType::Q4_1, &[0; 19], 32).unwrap_err();
        assert!(
            matches!(
                err.problem(),
                Problem::ByteCountMismatch {
                    expected: 20,
                    actual: 19,
                    ..
                }
            ),
            "{err}"
        );
        let err = dequantize(GgmlType::IQ2_XXS, &[0; 66], 256).unwrap_err();
        assert!(
            err.to_string()
                .contains("dequantizing IQ2_XXS is not supported")
        );
    }

    #[test]
    fn hand_computed_q4_1_block() {
        // d = 0.5, m = -1: nibble n gives 0.5n − 1.
        let mut b = vec![0u8; 20];
        b[0..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b[2..4].copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        b[4] = 0x3F; // value 0 gets nibble 15, value 16 gets nibble 3
        let v = dequantize(GgmlType::Q4_1, &b, 32).unwrap();
        assert_eq!((v[0], v[16], v[1]), (6.5, 0.5, -1.0));
    }

    #[test]
    fn parallel_and_serial_paths_agree() {
        // Enough Q8_0 blocks to take the rayon path; each block's value j is (j − 16)·d_block.
        let n_blocks = 3 * VALUES_PER_TASK / 32 + 5;
        let mut bytes = Vec::with_capacity(n_blocks * 34);
        for i in 0..n_blocks {
            bytes.extend_from_slice(&f16::from_f32((i % 7) as f32).to_le_bytes());
            bytes.extend((0..32).map(|j| (j as i8 - 16) as u8));
        }
        let v = dequantize(GgmlType::Q8_0, &bytes, n_blocks * 32).unwrap();
        for i in [0, 1, n_blocks / 2, n_blocks - 1] {
            for j in [0, 5, 31] {
                assert_eq!(v[i * 32 + j], (j as f32 - 16.0) * (i % 7) as f32);
            }
        }
    }
}
