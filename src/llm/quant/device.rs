//! Blocks held on a device that is not the CPU (wgpu): the quant bytes as 32-bit words, the
//! scales and minima as f32, all resident there (about a fifth of the f32 matrix), and decoded
//! there by tensor operations into the f32 matrix a product needs, for that call only. The
//! CPU's integer kernels do not run on a GPU; this keeps the weights' memory on the device at
//! the blocks' size and leaves the arithmetic to the device's GEMM.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{QMatrix, WeightMode};

#[derive(Debug, Clone)]
pub struct DeviceBlocks {
    mode: WeightMode,
    rows: usize,
    cols: usize,
    /// `[rows, blocks, words a block]`
    words: Tensor<3, Int>,
    /// `[rows, blocks, 1]`
    scales: Tensor<3>,
    /// `[rows, blocks, 1]` (Q4_1)
    minima: Option<Tensor<3>>,
}

impl DeviceBlocks {
    pub fn upload(matrix: &QMatrix, device: &Device) -> DeviceBlocks {
        let (rows, cols) = (matrix.rows(), matrix.cols());
        let nb = cols / 32;
        let (words, d, m) = matrix.words();
        let per_block = words.len() / (rows * nb).max(1);
        let column = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [rows, nb, 1]), device);
        DeviceBlocks {
            mode: matrix.mode(),
            rows,
            cols,
            words: Tensor::from_data(TensorData::new(words, [rows, nb, per_block]), device),
            scales: column(d),
            minima: m.map(column),
        }
    }

    /// The matrix decoded, `[in, out]` as Burn multiplies by it.
    pub fn decoded(&self) -> Tensor<2> {
        let w = self.words.clone();
        // Byte k of every word, 0–255, `[rows, blocks, words, 4]`: the quant bytes in order.
        let bytes = |w: Tensor<3, Int>, shift: u32, mask: i32| -> Tensor<4, Int> {
            let parts: Vec<Tensor<3, Int>> = (0..4)
                .map(|k| {
                    w.clone()
                        .bitwise_right_shift_scalar(8 * k + shift)
                        .bitwise_and_scalar(mask)
                })
                .collect();
            Tensor::stack(parts, 3)
        };
        let [rows, nb, _] = w.dims();
        let values: Tensor<3> = match self.mode {
            WeightMode::F16 => {
                // Two halves a word, low then high; each half's sign, exponent and mantissa
                // taken apart and put together as f32 with exact powers of two from a table.
                let half = |shift: u32| {
                    w.clone()
                        .bitwise_right_shift_scalar(shift)
                        .bitwise_and_scalar(0xFFFF)
                };
                let halves: Tensor<4, Int> = Tensor::stack(vec![half(0), half(16)], 3);
                let halves = halves.reshape([rows, nb, 32]);
                halves_to_f32(halves, &self.words.device())
            }
            WeightMode::Q4 => {
                // Byte j of a block holds value j in its low nibble and value j + 16 in its high.
                let low = bytes(w.clone(), 0, 0x0F).reshape([rows, nb, 16]);
                let high = bytes(w, 4, 0x0F).reshape([rows, nb, 16]);
                Tensor::cat(vec![low, high], 2).float()
            }
            _ => {
                // Signed bytes: 128–255 are −128–−1, whatever the width of the device's ints.
                let b = bytes(w, 0, 0xFF).reshape([rows, nb, 32]);
                let negative = b
                    .clone()
                    .bitwise_right_shift_scalar(7)
                    .bitwise_left_shift_scalar(8);
                (b - negative).float()
            }
        };
        let scaled = values * self.scales.clone();
        let decoded = match &self.minima {
            Some(m) => scaled + m.clone(),
            None => scaled,
        };
        decoded.reshape([self.rows, self.cols]).transpose()
    }
}

/// IEEE half bit patterns (0–65535 in ints) as f32: `(−1)^s · (m + 1024·[e > 0]) · 2^(max(e,1) − 25)`.
/// Infinities and NaNs (e = 31), which no weight file holds, come out as large finite values.
fn halves_to_f32(bits: Tensor<3, Int>, device: &Device) -> Tensor<3> {
    let dims = bits.dims();
    let sign = bits.clone().bitwise_right_shift_scalar(15).float();
    let exponent = bits
        .clone()
        .bitwise_right_shift_scalar(10)
        .bitwise_and_scalar(0x1F);
    let mantissa = bits.bitwise_and_scalar(0x3FF).float();
    let scale: Vec<f32> = (0..32).map(|e: i32| 2f32.powi(e.max(1) - 25)).collect();
    let implicit: Vec<f32> = (0..32).map(|e| if e > 0 { 1024.0 } else { 0.0 }).collect();
    let table = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [32]), device);
    let flat = exponent.reshape([dims.iter().product::<usize>()]);
    let pick = |t: Tensor<1>| t.select(0, flat.clone()).reshape(dims);
    (mantissa + pick(table(implicit))) * pick(table(scale)) * (sign * -2.0 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoded on a device by tensor operations, the blocks give the CPU's decoding exactly.
    #[test]
    fn blocks_decoded_by_tensor_operations_equal_the_cpu_s_decoding() {
        let device = Device::flex();
        let (rows, cols) = (5, 96);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        for mode in [WeightMode::Q4, WeightMode::Q8_0, WeightMode::F16] {
            let q = QMatrix::quantize(mode, &w, rows, cols).unwrap();
            let want = q.dequantize();
            let got = DeviceBlocks::upload(&q, &device)
                .decoded()
                .transpose()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap();
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{mode} [{i}]: {a} vs {b}"
                );
            }
            assert!(
                want.iter().any(|v| *v < -1.0),
                "negative values are decoded"
            );
        }
    }
}
