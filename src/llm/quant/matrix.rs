//! A frozen `[out, in]` weight held as blocks of 32 along `in` (each output's row is the run of
//! blocks a dot product reads), and its products with input rows.

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::activations::{BLOCK, QRows};
use super::kernels::{self, Isa};
use super::mode::WeightMode;
use crate::llm::gguf::{GgmlType, quantize};

/// From this many input rows, weight rows are decoded to f32 four at a time and multiplied
/// in f32 with every input row ([`kernels::dots4_f32`]) instead of in integers one weight row at a
/// time (or, for f16, widened inside one product a pair): the decoding is shared by the input
/// rows and the inputs by the weight rows, and the products are f32's.
const F32_ROWS: usize = 8;

#[derive(Debug)]
pub struct QMatrix {
    rows: usize,
    cols: usize,
    blocks: Blocks,
}

/// The blocks, as arrays of scales and of quants (not ggml's interleaved bytes) so each kernel
/// reads its quants with aligned-size loads.
#[derive(Debug)]
enum Blocks {
    Q8_0 {
        d: Vec<f32>,
        q: Vec<i8>,
    },
    /// Scales and minima in f16, as the file and ggml keep them: 20 bytes a block, and
    /// decoding one sequence is bound by the bytes it reads.
    Q4_1 {
        d: Vec<f16>,
        m: Vec<f16>,
        q: Vec<u8>,
    },
    /// The values as halves, row-major: no blocks, no scales (`--weights f16`).
    F16 {
        w: Vec<f16>,
    },
}

impl QMatrix {
    /// Encodes row-major `data` `[rows, cols]` in `mode`'s blocks with ggml's reference
    /// quantizers (so the blocks are those llama.cpp would write for the same values).
    pub fn quantize(
        mode: WeightMode,
        data: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<QMatrix, String> {
        if !cols.is_multiple_of(BLOCK) || data.len() != rows * cols {
            return Err(format!(
                "a [{rows}, {cols}] matrix cannot be held in blocks of {BLOCK} (its rows must be \
                 a multiple of {BLOCK} long)"
            ));
        }
        let ty = match mode {
            WeightMode::Q8_0 => GgmlType::Q8_0,
            WeightMode::Q4 => GgmlType::Q4_1,
            WeightMode::F16 => {
                let mut w = vec![f16::ZERO; data.len()];
                w.par_chunks_mut(cols.max(1))
                    .zip(data.par_chunks(cols.max(1)))
                    .for_each(|(w, row)| w.convert_from_f32_slice(row));
                return Ok(QMatrix {
                    rows,
                    cols,
                    blocks: Blocks::F16 { w },
                });
            }
            WeightMode::F32 => return Err("f32 weights are not quantized".into()),
        };
        let nb = cols / BLOCK;
        let f16_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
        // Row by row straight into the arrays (no second copy of the whole matrix as bytes).
        let encode = |row: &[f32]| quantize(ty, row).map_err(|e| e.to_string());
        let blocks = match ty {
            GgmlType::Q8_0 => {
                let (mut d, mut q) = (vec![0.0f32; rows * nb], vec![0i8; rows * cols]);
                data.par_chunks(cols.max(1))
                    .zip(d.par_chunks_mut(nb.max(1)))
                    .zip(q.par_chunks_mut(cols.max(1)))
                    .try_for_each(|((row, d), q)| {
                        let bytes = encode(row)?;
                        for (b, block) in bytes.chunks_exact(34).enumerate() {
                            d[b] = f16_at(block, 0);
                            for (o, &v) in q[b * BLOCK..][..BLOCK].iter_mut().zip(&block[2..]) {
                                *o = v as i8;
                            }
                        }
                        Ok::<_, String>(())
                    })?;
                Blocks::Q8_0 { d, q }
            }
            _ => {
                let (mut d, mut m) = (vec![f16::ZERO; rows * nb], vec![f16::ZERO; rows * nb]);
                let mut q = vec![0u8; rows * cols / 2];
                data.par_chunks(cols.max(1))
                    .zip(d.par_chunks_mut(nb.max(1)))
                    .zip(m.par_chunks_mut(nb.max(1)))
                    .zip(q.par_chunks_mut((cols / 2).max(1)))
                    .try_for_each(|(((row, d), m), q)| {
                        let bytes = encode(row)?;
                        for (b, block) in bytes.chunks_exact(20).enumerate() {
                            d[b] = f16::from_le_bytes([block[0], block[1]]);
                            m[b] = f16::from_le_bytes([block[2], block[3]]);
                            q[b * BLOCK / 2..][..BLOCK / 2].copy_from_slice(&block[4..]);
                        }
                        Ok::<_, String>(())
                    })?;
                Blocks::Q4_1 { d, m, q }
            }
        };
        Ok(QMatrix { rows, cols, blocks })
    }

    /// Encodes a `[rows, cols]` matrix `chunk` rows at a time, asking `rows_of` for each range:
    /// the whole matrix is never held as f32 (an embedding of 262k rows is 671 MB as f32).
    pub fn quantize_in_chunks<E>(
        mode: WeightMode,
        rows: usize,
        cols: usize,
        chunk: usize,
        mut rows_of: impl FnMut(std::ops::Range<usize>) -> Result<Vec<f32>, E>,
        invalid: impl Fn(String) -> E,
    ) -> Result<QMatrix, E> {
        let mut whole: Option<QMatrix> = None;
        for start in (0..rows).step_by(chunk.max(1)) {
            let end = (start + chunk.max(1)).min(rows);
            let data = rows_of(start..end)?;
            let part = QMatrix::quantize(mode, &data, end - start, cols).map_err(&invalid)?;
            match &mut whole {
                None => whole = Some(part),
                Some(w) => w.append(part),
            }
        }
        whole.ok_or_else(|| invalid(format!("a [{rows}, {cols}] matrix has no rows")))
    }

    /// `other`'s rows after this matrix's (same mode and width).
    fn append(&mut self, other: QMatrix) {
        debug_assert_eq!(self.cols, other.cols);
        self.rows += other.rows;
        match (&mut self.blocks, other.blocks) {
            (Blocks::Q8_0 { d, q }, Blocks::Q8_0 { d: d2, q: q2 }) => {
                d.extend(d2);
                q.extend(q2);
            }
            (
                Blocks::Q4_1 { d, m, q },
                Blocks::Q4_1 {
                    d: d2,
                    m: m2,
                    q: q2,
                },
            ) => {
                d.extend(d2);
                m.extend(m2);
                q.extend(q2);
            }
            (Blocks::F16 { w }, Blocks::F16 { w: w2 }) => w.extend(w2),
            _ => unreachable!("chunks of one matrix share its mode"),
        }
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn mode(&self) -> WeightMode {
        match self.blocks {
            Blocks::Q8_0 { .. } => WeightMode::Q8_0,
            Blocks::Q4_1 { .. } => WeightMode::Q4,
            Blocks::F16 { .. } => WeightMode::F16,
        }
    }

    /// The blocks as 32-bit words (each word four of the block's quant bytes, little-endian:
    /// 8 words a Q8_0 block, 4 a Q4_1 block; two halves a word for f16), the scales and, for Q4_1, the minima, in f32:
    /// what a device without the CPU's kernels decodes from ([`super::device::DeviceBlocks`]).
    pub fn words(&self) -> (Vec<i32>, Vec<f32>, Option<Vec<f32>>) {
        let word = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        match &self.blocks {
            Blocks::Q8_0 { d, q } => {
                let bytes: Vec<u8> = q.iter().map(|&v| v as u8).collect();
                (bytes.chunks_exact(4).map(word).collect(), d.clone(), None)
            }
            Blocks::Q4_1 { d, m, q } => (
                q.chunks_exact(4).map(word).collect(),
                d.iter().map(|v| v.to_f32()).collect(),
                Some(m.iter().map(|v| v.to_f32()).collect()),
            ),
            // Two halves a word (16 a block of 32), each block's scale 1.
            Blocks::F16 { w } => (
                w.chunks_exact(2)
                    .map(|p| (u32::from(p[0].to_bits()) | (u32::from(p[1].to_bits()) << 16)) as i32)
                    .collect(),
                vec![1.0; w.len() / BLOCK],
                None,
            ),
        }
    }

    /// Row `r` decoded into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / BLOCK;
        let isa = kernels::isa();
        match &self.blocks {
            Blocks::Q8_0 { d, q } => kernels::decode_q8(
                isa,
                &q[r * self.cols..(r + 1) * self.cols],
                &d[r * nb..(r + 1) * nb],
                out,
            ),
            Blocks::Q4_1 { d, m, q } => kernels::decode_q4(
                isa,
                &q[r * self.cols / 2..(r + 1) * self.cols / 2],
                &d[r * nb..(r + 1) * nb],
                &m[r * nb..(r + 1) * nb],
                out,
            ),
            Blocks::F16 { w } => kernels::widen_f16(
                isa,
                &w[r * self.cols..(r + 1) * self.cols],
                &mut out[..self.cols],
            ),
        }
    }

    /// The whole matrix decoded, row-major `[rows, cols]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.rows * self.cols];
        out.par_chunks_mut(self.cols.max(1))
            .enumerate()
            .for_each(|(r, row)| self.dequantize_row(r, row));
        out
    }

    /// The given rows decoded, one after another (an embedding lookup).
    pub fn gather(&self, rows: &[usize]) -> Vec<f32> {
        let mut out = vec![0.0f32; rows.len() * self.cols];
        for (chunk, &r) in out.chunks_exact_mut(self.cols.max(1)).zip(rows) {
            self.dequantize_row(r, chunk);
        }
        out
    }

    /// `x` `[n, cols]` (row-major) times the matrix's transpose: `[n, rows]`, each input row
    /// quantized to 8 bits per block and multiplied in integers.
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.matmul_with(kernels::isa(), x, n)
    }

    /// Output `o` for every quantized input row, into `out` (`n` values): four rows at a time
    /// where the machine has a four-row kernel, one at a time otherwise.
    fn output_row(&self, isa: Isa, o: usize, x: &[f32], xq: &QRows, out: &mut [f32]) {
        if let Blocks::F16 { w } = &self.blocks {
            kernels::dots_f16(isa, &w[o * self.cols..(o + 1) * self.cols], x, out);
            return;
        }
        let nb = self.cols / BLOCK;
        let (blocks, scales) = (o * self.cols..(o + 1) * self.cols, o * nb..(o + 1) * nb);
        let mut r = 0;
        while r < out.len() {
            if out.len() - r >= 4 {
                let four = match &self.blocks {
                    Blocks::Q8_0 { d, q } => kernels::dot4_q8(
                        isa,
                        &q[blocks.clone()],
                        &d[scales.clone()],
                        std::array::from_fn(|i| {
                            let (q, d, _) = xq.row(r + i);
                            (q, d)
                        }),
                    ),
                    Blocks::Q4_1 { d, m, q } => kernels::dot4_q4(
                        isa,
                        &q[blocks.start / 2..blocks.end / 2],
                        &d[scales.clone()],
                        &m[scales.clone()],
                        std::array::from_fn(|i| xq.row(r + i)),
                    ),
                    Blocks::F16 { .. } => None,
                };
                if let Some(four) = four {
                    out[r..r + 4].copy_from_slice(&four);
                    r += 4;
                    continue;
                }
            }
            let (xq_r, xd, xs) = xq.row(r);
            out[r] = match &self.blocks {
                Blocks::Q8_0 { d, q } => {
                    kernels::dot_q8(isa, &q[blocks.clone()], &d[scales.clone()], xq_r, xd)
                }
                Blocks::Q4_1 { d, m, q } => kernels::dot_q4(
                    isa,
                    &q[blocks.start / 2..blocks.end / 2],
                    &d[scales.clone()],
                    &m[scales.clone()],
                    xq_r,
                    xd,
                    xs,
                ),
                Blocks::F16 { .. } => unreachable!("f16 rows are taken above"),
            };
            r += 1;
        }
    }

    pub fn matmul_with(&self, isa: Isa, x: &[f32], n: usize) -> Vec<f32> {
        QMatrix::matmul_group_with(isa, &[self], x, n)
            .pop()
            .unwrap_or_else(|| unreachable!("one matrix, one product"))
    }

    /// `x` `[n, cols]` times each matrix's transpose (all `cols` wide): the input rows are
    /// quantized once and one pass of the thread pool covers every matrix's rows (Q, K and V,
    /// or gate and up, of one layer: one fork-join instead of three).
    pub fn matmul_group(mats: &[&QMatrix], x: &[f32], n: usize) -> Vec<Vec<f32>> {
        QMatrix::matmul_group_with(kernels::isa(), mats, x, n)
    }

    fn matmul_group_with(isa: Isa, mats: &[&QMatrix], x: &[f32], n: usize) -> Vec<Vec<f32>> {
        let Some(cols) = mats.first().map(|m| m.cols) else {
            return Vec::new();
        };
        assert!(
            mats.iter().all(|m| m.cols == cols),
            "one input for matrices of one width"
        );
        debug_assert_eq!(x.len(), n * cols);
        // Few rows are rounded for the integer kernels; from `F32_ROWS` on they are read as f32.
        let xq = (n < F32_ROWS).then(|| QRows::quantize(x, cols));
        // Outputs in chunks, each chunk's weight rows read once for all `n` inputs; about four
        // chunks a thread keeps the threads busy without a task per row.
        let rows: usize = mats.iter().map(|m| m.rows).sum();
        let chunk = (rows / (rayon::current_num_threads() * 4)).clamp(8, 256);
        let mut by_output: Vec<Vec<f32>> = mats.iter().map(|m| vec![0.0f32; m.rows * n]).collect();
        let nb = cols / BLOCK;
        let work = |(m, c, out): (&QMatrix, usize, &mut [f32])| {
            let first = c * chunk;
            if n == 1 {
                // One input row: the whole run of weight rows in one kernel call.
                let last = first + out.len();
                let Some(xq) = &xq else {
                    unreachable!("one row is fewer than F32_ROWS")
                };
                let row = xq.row(0);
                match &m.blocks {
                    Blocks::Q8_0 { d, q } => kernels::rows_q8(
                        isa,
                        cols,
                        &q[first * cols..last * cols],
                        &d[first * nb..last * nb],
                        row.0,
                        row.1,
                        out,
                    ),
                    Blocks::Q4_1 { d, m, q } => kernels::rows_q4(
                        isa,
                        cols,
                        &q[first * cols / 2..last * cols / 2],
                        &d[first * nb..last * nb],
                        &m[first * nb..last * nb],
                        row,
                        out,
                    ),
                    Blocks::F16 { w } => {
                        kernels::rows_f16(isa, cols, &w[first * cols..last * cols], x, out)
                    }
                }
                return;
            }
            let rows = first..(first + chunk).min(m.rows);
            let Some(xq) = &xq else {
                // Four weight rows decoded to f32 at a time (the last group padded with zero
                // rows), multiplied in f32 with every input row ([`kernels::dots4_f32`]).
                let (mut decoded, mut four) = (vec![0.0f32; 4 * cols], vec![0.0f32; 4 * n]);
                for k in (0..rows.len()).step_by(4) {
                    let take = (rows.len() - k).min(4);
                    if take < 4 {
                        decoded.fill(0.0);
                    }
                    for (i, row) in decoded.chunks_exact_mut(cols).take(take).enumerate() {
                        m.dequantize_row(rows.start + k + i, row);
                    }
                    kernels::dots4_f32(isa, cols, &decoded, x, n, &mut four);
                    out[k * n..(k + take) * n].copy_from_slice(&four[..take * n]);
                }
                return;
            };
            for (k, o) in rows.enumerate() {
                let out = &mut out[k * n..(k + 1) * n];
                m.output_row(isa, o, x, xq, out);
            }
        };
        by_output
            .par_iter_mut()
            .zip(mats.par_iter())
            .flat_map(|(out, &m)| {
                out.par_chunks_mut(chunk * n)
                    .enumerate()
                    .map(move |(c, o)| (m, c, o))
            })
            .for_each(work);
        if n == 1 {
            return by_output;
        }
        by_output
            .into_iter()
            .zip(mats)
            .map(|(by_output, m)| {
                let mut y = vec![0.0f32; n * m.rows];
                for o in 0..m.rows {
                    for r in 0..n {
                        y[r * m.rows + o] = by_output[o * n + r];
                    }
                }
                y
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::gguf::dequantize;
    use crate::util::rng::Rng;

    fn random(seed: u64, n: usize) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
            .collect()
    }

    #[test]
    fn blocks_decode_to_what_ggml_decodes_from_the_same_bytes() {
        let (rows, cols) = (3, 64);
        let w = random(1, rows * cols);
        for (mode, ty) in [
            (WeightMode::Q8_0, GgmlType::Q8_0),
            (WeightMode::Q4, GgmlType::Q4_1),
        ] {
            let m = QMatrix::quantize(mode, &w, rows, cols).unwrap();
            let bytes = quantize(ty, &w).unwrap();
            let want = dequantize(ty, &bytes, rows * cols).unwrap();
            assert_eq!(m.dequantize(), want, "{mode}");
            assert_eq!(m.gather(&[2, 0]), [&want[128..], &want[..64]].concat());
        }
    }

    /// Matrices of one width multiplied together (Q, K and V) give each matrix's own product,
    /// value for value, for one input row and for several.
    #[test]
    fn a_group_of_matrices_gives_each_matrix_s_own_product() {
        let cols = 96;
        for mode in [WeightMode::Q8_0, WeightMode::Q4] {
            let mats: Vec<QMatrix> = [(40, 5), (8, 6), (72, 7)]
                .iter()
                .map(|&(rows, seed)| {
                    QMatrix::quantize(mode, &random(seed, rows * cols), rows, cols).unwrap()
                })
                .collect();
            let refs: Vec<&QMatrix> = mats.iter().collect();
            for n in [1, 3] {
                let x = random(9 + n as u64, n * cols);
                let group = QMatrix::matmul_group(&refs, &x, n);
                assert_eq!(group.len(), 3);
                for (m, y) in mats.iter().zip(&group) {
                    assert_eq!(
                        *y,
                        m.matmul(&x, n),
                        "{mode}, {n} rows, {} outputs",
                        m.rows()
                    );
                }
            }
        }
    }

    /// `x` `[n, cols]` times the decoded `[rows, cols]` matrix's transpose, summed in order.
    fn decoded_product(x: &[f32], dense: &[f32], n: usize, cols: usize) -> Vec<f32> {
        let rows = dense.len() / cols;
        (0..n * rows)
            .map(|i| {
                let (r, o) = (i / rows, i % rows);
                (0..cols)
                    .map(|j| x[r * cols + j] * dense[o * cols + j])
                    .sum()
            })
            .collect()
    }

    #[test]
    fn products_match_the_decoded_matrix_in_f32_within_the_activation_rounding() {
        let (rows, cols, n) = (40, 96, 5);
        let w = random(2, rows * cols);
        let x = random(3, n * cols);
        for mode in [WeightMode::Q8_0, WeightMode::Q4, WeightMode::F16] {
            let m = QMatrix::quantize(mode, &w, rows, cols).unwrap();
            let dense = m.dequantize();
            if mode == WeightMode::F16 {
                // Halves hold each value to the nearest half, nothing more.
                for (d, v) in dense.iter().zip(&w) {
                    assert_eq!(*d, f16::from_f32(*v).to_f32());
                }
            }
            let got = m.matmul(&x, n);
            let exact = decoded_product(&x, &dense, n, cols);
            for r in 0..n {
                for o in 0..rows {
                    let want = exact[r * rows + o];
                    // 8-bit inputs: each term off by at most half a step of its block; f16
                    // weights take f32 inputs as they are.
                    let err = (got[r * rows + o] - want).abs();
                    let tol = if mode == WeightMode::F16 { 1e-5 } else { 0.05 };
                    assert!(
                        err < tol,
                        "{mode} row {r} out {o}: {} vs {want}",
                        got[r * rows + o]
                    );
                }
            }
            // One row at a time gives the same as the batch, with every instruction set.
            let one = m.matmul(&x[cols..2 * cols], 1);
            assert_eq!(one, got[rows..2 * rows]);
            for isa in [Isa::Portable, Isa::Avx2] {
                if isa == Isa::Avx2 && kernels::isa() == Isa::Portable {
                    continue;
                }
                let other = m.matmul_with(isa, &x[cols..2 * cols], 1);
                for (a, b) in other.iter().zip(&one) {
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{isa:?}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// From `F32_ROWS` input rows the products are the decoded matrix's f32 products (no input
    /// rounding), whatever the number of rows and of weight rows (groups of four padded), with
    /// every instruction set, and a group of matrices gives each its own.
    #[test]
    fn many_rows_give_the_decoded_matrix_s_f32_products() {
        let cols = 96;
        for mode in [WeightMode::Q8_0, WeightMode::Q4, WeightMode::F16] {
            for (rows, n) in [(40, F32_ROWS), (42, 11), (9, 64)] {
                let m =
                    QMatrix::quantize(mode, &random(rows as u64, rows * cols), rows, cols).unwrap();
                let dense = m.dequantize();
                let x = random(7 + n as u64, n * cols);
                for isa in [kernels::isa(), Isa::Avx2, Isa::Portable] {
                    if isa == Isa::Avx2 && kernels::isa() == Isa::Portable {
                        continue;
                    }
                    let got = m.matmul_with(isa, &x, n);
                    let exact = decoded_product(&x, &dense, n, cols);
                    for r in 0..n {
                        for o in 0..rows {
                            let want = exact[r * rows + o];
                            let err = (got[r * rows + o] - want).abs();
                            assert!(
                                err <= 1e-5 * want.abs().max(1.0),
                                "{mode} {isa:?} {rows}×{n}, row {r} out {o}: {} vs {want}",
                                got[r * rows + o]
                            );
                        }
                    }
                }
                let other = QMatrix::quantize(mode, &random(99, 13 * cols), 13, cols).unwrap();
                let group = QMatrix::matmul_group(&[&m, &other], &x, n);
                assert_eq!(group[0], m.matmul(&x, n));
                assert_eq!(group[1], other.matmul(&x, n));
            }
        }
    }

    #[test]
    fn a_matrix_encoded_in_chunks_equals_one_encoded_whole() {
        let (rows, cols) = (7, 64);
        let w = random(4, rows * cols);
        for mode in [WeightMode::Q8_0, WeightMode::Q4] {
            let whole = QMatrix::quantize(mode, &w, rows, cols).unwrap();
            let parts = QMatrix::quantize_in_chunks(
                mode,
                rows,
                cols,
                3,
                |r| Ok::<_, String>(w[r.start * cols..r.end * cols].to_vec()),
                |e| e,
            )
            .unwrap();
            assert_eq!(parts.rows(), rows);
            assert_eq!(parts.dequantize(), whole.dequantize(), "{mode}");
        }
    }

    #[test]
    fn rows_not_a_multiple_of_the_block_are_refused() {
        let err = QMatrix::quantize(WeightMode::Q8_0, &[0.0; 30], 1, 30).unwrap_err();
        assert!(err.contains("blocks of 32"), "{err}");
    }
}
