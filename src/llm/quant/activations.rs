//! Input rows quantized to 16-bit integers per block of 32 before an integer dot product: scale
//! `d = max|x| / 32767`, quants `x / d` rounded to the nearest integer, and for the Q4_1 product
//! the block's sum `d·Σq`.
//!
//! llama.cpp rounds its activations to 8 bits (`quantize_row_q8_1`). The kernels widen the
//! weights to 16 bits for `madd` either way, so 16-bit inputs cost the same arithmetic and read
//! 32 more bytes a block, while their rounding is 256 times finer: with 8-bit inputs the output
//! head alone flipped 12 of SST-2 dev's 872 calibrated in-context labels against f32 (q4, whose
//! projections are the file's own blocks); with 16-bit inputs the labels are f32's.

pub const BLOCK: usize = 32;

/// The largest quant: inputs use the whole signed 16-bit range but one value, so `-q` fits.
const QMAX: f32 = 32767.0;

/// `rows` input rows of `cols` values each, in blocks.
#[derive(Debug, Clone)]
pub struct QRows {
    pub cols: usize,
    /// Per block: the scale.
    pub d: Vec<f32>,
    /// Per block: `d·Σq` (the minimum's term of a Q4_1 product).
    pub s: Vec<f32>,
    pub q: Vec<i16>,
}

/// `y` rounded to the nearest integer, ties to even, for |y| ≤ 2²²: adding and taking away
/// 1.5·2²³ leaves no fraction bits, and the FPU rounds to nearest even on the way. The same
/// result as `f32::round_ties_even`, which without SSE4.1 in the build's baseline is a libm call
/// per value (`rintf`: 2% of q4 decoding in `perf`); this vectorises.
#[inline(always)]
fn round_ties_even(y: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (y + MAGIC) - MAGIC
}

impl QRows {
    pub fn quantize(x: &[f32], cols: usize) -> QRows {
        debug_assert_eq!(cols % BLOCK, 0);
        debug_assert_eq!(x.len() % cols.max(1), 0);
        let blocks = x.len() / BLOCK;
        let mut d = Vec::with_capacity(blocks);
        let mut s = Vec::with_capacity(blocks);
        let mut q = Vec::with_capacity(x.len());
        for block in x.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = amax / QMAX;
            let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for &v in block {
                let qi = round_ties_even(v * inv) as i16;
                sum += i32::from(qi);
                q.push(qi);
            }
            d.push(scale);
            s.push(sum as f32 * scale);
        }
        QRows { cols, d, s, q }
    }

    pub fn rows(&self) -> usize {
        self.q.len() / self.cols.max(1)
    }

    /// Row `r`'s quants and per-block scale and sum.
    pub fn row(&self, r: usize) -> (&[i16], &[f32], &[f32]) {
        let nb = self.cols / BLOCK;
        (
            &self.q[r * self.cols..(r + 1) * self.cols],
            &self.d[r * nb..(r + 1) * nb],
            &self.s[r * nb..(r + 1) * nb],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_round_trips_within_half_a_step_and_keeps_its_sum() {
        let x: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
        let q = QRows::quantize(&x, 64);
        assert_eq!(q.rows(), 1);
        let (qs, d, s) = q.row(0);
        for (i, &v) in x.iter().enumerate() {
            let step = d[i / BLOCK];
            assert!(
                (f32::from(qs[i]) * step - v).abs() <= step * 0.5 + 1e-6,
                "{i}"
            );
        }
        for b in 0..2 {
            let sum: i32 = qs[b * 32..(b + 1) * 32].iter().map(|&v| i32::from(v)).sum();
            assert!((s[b] - sum as f32 * d[b]).abs() <= s[b].abs() * 1e-6 + 1e-6);
        }
        // The extreme maps to ±127 exactly.
        assert!(qs.iter().any(|&v| v.abs() == 32767));
    }

    #[test]
    fn the_rounding_is_ties_to_even_as_the_standard_librarys() {
        for y in [
            0.0f32, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 32766.5, -32766.5, 32767.0,
            -32767.0, 1234.4999, 7.0000005,
        ] {
            assert_eq!(round_ties_even(y), y.round_ties_even(), "{y}");
        }
        let mut v = -32767.0f32;
        while v <= 32767.0 {
            assert_eq!(round_ties_even(v), v.round_ties_even(), "{v}");
            v += 0.371;
        }
    }

    #[test]
    fn a_zero_block_has_zero_scale() {
        let q = QRows::quantize(&[0.0; 32], 32);
        assert_eq!(q.d, [0.0]);
        assert!(q.q.iter().all(|&v| v == 0));
    }
}
