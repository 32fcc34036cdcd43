//! Tensor descriptions and dequantized tensors.

use super::ggml_type::GgmlType;

/// A tensor as the GGUF header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF `ne` order: `dims[0]` varies fastest. A PyTorch `[out, in]` weight is `[in, out]`.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data, relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The row-major shape (dims reversed), as PyTorch, Burn and numpy write it.
    ///
    /// A dimension that does not fit in `usize` saturates; it cannot happen for a tensor read
    /// from a file, whose size is checked against the (mapped) file.
    pub fn shape(&self) -> Vec<usize> {
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }

    /// Number of values. Saturates at `u64::MAX` for a hand-built info whose dims overflow;
    /// infos read from a file never do.
    pub fn n_elements(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// Number of bytes of data. Saturates like [`TensorInfo::n_elements`].
    pub fn n_bytes(&self) -> u64 {
        self.ggml_type
            .bytes_for(self.n_elements())
            .unwrap_or(u64::MAX)
    }
}

/// A tensor decoded to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseTensor {
    /// Row-major shape (see [`TensorInfo::shape`]).
    pub shape: Vec<usize>,
    /// Values in row-major order, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_reverses_dims() {
        let info = TensorInfo {
            name: "token_embd.weight".into(),
            dims: vec![576, 49152],
            ggml_type: GgmlType::Q8_0,
            offset: 0,
        };
        assert_eq!(info.shape(), vec![49152, 576]);
        assert_eq!(info.n_elements(), 576 * 49152);
        assert_eq!(info.n_bytes(), 576 * 49152 / 32 * 34);
    }

    #[test]
    fn hand_built_overflowing_info_saturates() {
        let info = TensorInfo {
            name: "x".into(),
            dims: vec![u64::MAX, 2],
            ggml_type: GgmlType::F32,
            offset: 0,
        };
        assert_eq!(info.n_elements(), u64::MAX);
        assert_eq!(info.n_bytes(), u64::MAX);
    }
}
