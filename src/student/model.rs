//! The student network (fastText's): the mean of a text's hashed feature embeddings, then one
//! linear layer to the labels.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::util::rng::Rng;

#[derive(Module, Debug)]
pub struct StudentNet {
    /// `[buckets, dim]`
    pub table: Param<Tensor<2>>,
    /// `[dim, labels]`
    pub out: Param<Tensor<2>>,
    /// `[labels]`
    pub bias: Param<Tensor<1>>,
}

/// A batch of texts' feature ids, padded to the longest: `ids` `[B, n]` and `mask` `[B, n]`
/// (1 for a real id, 0 for padding).
pub struct FeatureBatch {
    pub ids: Tensor<2, Int>,
    pub mask: Tensor<2>,
}

impl FeatureBatch {
    pub fn new(rows: &[&[u32]], device: &Device) -> Self {
        let width = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        for r in rows {
            for i in 0..width {
                ids.push(r.get(i).map_or(0, |&x| i64::from(x)));
                mask.push(if i < r.len() { 1.0f32 } else { 0.0 });
            }
        }
        let shape = [rows.len(), width];
        FeatureBatch {
            ids: Tensor::from_data(TensorData::new(ids, shape), device),
            mask: Tensor::from_data(TensorData::new(mask, shape), device),
        }
    }
}

impl StudentNet {
    /// fastText's initialisation: the table uniform in ±1/dim, the output layer zero (so a
    /// fresh student says every label is equally likely).
    pub fn new(buckets: usize, dim: usize, labels: usize, seed: u64, device: &Device) -> Self {
        let mut rng = Rng::new(seed);
        let bound = 1.0 / dim as f64;
        let table: Vec<f32> = (0..buckets * dim)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect();
        StudentNet {
            table: Param::from_tensor(Tensor::from_data(
                TensorData::new(table, [buckets, dim]),
                device,
            )),
            out: Param::from_tensor(Tensor::zeros([dim, labels], device)),
            bias: Param::from_tensor(Tensor::zeros([labels], device)),
        }
    }

    pub fn labels(&self) -> usize {
        self.bias.shape().dims::<1>()[0]
    }

    /// Label logits `[B, labels]`.
    pub fn forward(&self, batch: &FeatureBatch) -> Tensor<2> {
        let [b, n] = batch.ids.shape().dims::<2>();
        let dim = self.table.shape().dims::<2>()[1];
        let rows = self
            .table
            .val()
            .select(0, batch.ids.clone().reshape([b * n]))
            .reshape([b, n, dim]);
        let mask = batch.mask.clone();
        let count = mask.clone().sum_dim(1).clamp_min(1.0);
        let summed = (rows * mask.reshape([b, n, 1]))
            .sum_dim(1)
            .reshape([b, dim]);
        let mean = summed / count;
        mean.matmul(self.out.val()) + self.bias.val().reshape([1, self.labels()])
    }
}
