//! Where each row's tokens sit in the attention window: the per-token positions for RoPE and
//! the boolean mask (`true` = hidden) for a step of `S` new columns after `past` filled ones.
//!
//! Rows are aligned on their last column (left padding): row `b`'s first real column is
//! `start[b]`, and everything left of it is padding that no query may see. This one rule serves
//! batched prompts of different lengths, decoding with a KV cache, and a new sequence taking a
//! finished one's slot mid-batch.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLayout {
    /// First real column of each row.
    pub start: Vec<usize>,
    /// Columns already in the cache.
    pub past: usize,
    /// New columns in this step.
    pub len: usize,
}

impl StepLayout {
    /// A fresh batch of sequences with these token counts, left-padded to the longest.
    pub fn for_prompts(lengths: &[usize]) -> Self {
        let max = lengths.iter().copied().max().unwrap_or(0);
        StepLayout {
            start: lengths.iter().map(|&l| max - l).collect(),
            past: 0,
            len: max,
        }
    }

    /// One decoding step after `past` columns.
    pub fn decode(start: &[usize], past: usize) -> Self {
        StepLayout {
            start: start.to_vec(),
            past,
            len: 1,
        }
    }

    pub fn batch(&self) -> usize {
        self.start.len()
    }

    /// Position of each new token within its own sequence (padding gets 0).
    pub fn positions(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.batch() * self.len);
        for &start in &self.start {
            for s in 0..self.len {
                let col = self.past + s;
                out.push(col.saturating_sub(start) as i64);
            }
        }
        out
    }

    /// `[B, S, past + S]`, `true` where a query must not look: columns after it (causal) and
    /// the row's padding. A padding query still sees itself, so no softmax row is empty.
    pub fn mask(&self) -> Vec<bool> {
        let total = self.past + self.len;
        let mut out = Vec::with_capacity(self.batch() * self.len * total);
        for &start in &self.start {
            for s in 0..self.len {
                let q = self.past + s;
                for c in 0..total {
                    let visible = c == q || (c <= q && c >= start);
                    out.push(!visible);
                }
            }
        }
        out
    }

    pub fn positions_tensor(&self, device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(
            TensorData::new(self.positions(), [self.batch(), self.len]),
            device,
        )
    }

    /// The mask as `[B, 1, S, past + S]`, broadcast over heads by the attention.
    pub fn mask_tensor(&self, device: &Device) -> Tensor<4, Bool> {
        Tensor::from_data(
            TensorData::new(
                self.mask(),
                [self.batch(), 1, self.len, self.past + self.len],
            ),
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_left_padded_with_positions_from_zero() {
        let l = StepLayout::for_prompts(&[3, 1]);
        assert_eq!(l.start, vec![0, 2]);
        assert_eq!(l.positions(), vec![0, 1, 2, 0, 0, 0]);
        let m = l.mask();
        // Row 0 is plain causal.
        let row0: Vec<bool> = m[..9].to_vec();
        assert_eq!(
            row0,
            vec![false, true, true, false, false, true, false, false, false]
        );
        // Row 1: its one real token (column 2) sees only itself; padding queries see themselves.
        let row1: Vec<bool> = m[9..].to_vec();
        assert_eq!(
            row1,
            vec![false, true, true, true, false, true, true, true, false]
        );
    }

    #[test]
    fn decode_step_sees_own_columns_only() {
        let l = StepLayout::decode(&[0, 2], 3);
        assert_eq!(l.positions(), vec![3, 1]);
        assert_eq!(
            l.mask(),
            vec![false, false, false, false, true, true, false, false]
        );
    }
}
