//! A frozen quantized weight inside autodiff (QLoRA): `y = x·Wᵀ` whose backward pass decodes
//! the blocks again for `∂x = ∂y·W` instead of keeping a decoded copy of `W` until the backward
//! pass, as Burn's own matmul does with its right-hand side. So training holds each frozen
//! weight once, in blocks, and one decoded matrix at a time; the f32 adapters beside it train as
//! before. No gradient reaches `W` (it is frozen).
//!
//! Burn 0.22's custom operations are written against a concrete backend: this one is the CPU
//! backend (`Flex`) the runtime device dispatches to; elsewhere [`product`] gives `None`.

use std::ops::Range;
use std::sync::Arc;

use burn::tensor::{Slice, Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn_backend::ops::FloatTensorOps;
use burn_flex::{Flex, FlexDevice, FlexTensor};
use rayon::prelude::*;

use super::QMatrix;

type Trained = Autodiff<Flex, NoCheckpointing>;

/// Rows of a weight decoded per call at most: the output head's 49,152 rows decoded whole would
/// be a 113 MB transient on every forward and backward pass of a training step.
const TILE_ROWS: usize = 4096;

/// Rows `rows` of the `[out, in]` blocks decoded into a backend tensor `[rows.len(), in]` (the
/// CPU backend has one device).
fn decoded(w: &QMatrix, rows: Range<usize>) -> FlexTensor {
    let cols = w.cols();
    let mut data = vec![0.0f32; rows.len() * cols];
    data.par_chunks_mut(cols.max(1))
        .zip(rows.clone())
        .for_each(|(out, r)| w.dequantize_row(r, out));
    Flex::float_from_data(TensorData::new(data, [rows.len(), cols]), &FlexDevice)
}

/// The weight's row ranges, a tile each.
fn tiles(w: &QMatrix) -> impl Iterator<Item = Range<usize>> + '_ {
    (0..w.rows())
        .step_by(TILE_ROWS)
        .map(|start| start..(start + TILE_ROWS).min(w.rows()))
}

#[derive(Debug)]
struct QuantizedProduct;

impl Backward<Flex, 1> for QuantizedProduct {
    type State = Arc<QMatrix>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let w = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            // ∂x `[rows, in]` = ∂y `[rows, out]` · W `[out, in]`, summed over tiles of W's rows.
            tiles(&w)
                .map(|t| {
                    let part = if t.len() == w.rows() {
                        grad.clone()
                    } else {
                        Flex::float_slice(grad.clone(), &[Slice::full(), Slice::from(t.clone())])
                    };
                    Flex::float_matmul(part, decoded(&w, t))
                })
                .reduce(Flex::float_add)
                .unwrap_or_else(|| unreachable!("a weight has at least one row"))
        });
    }
}

/// `x` `[rows, in]` · `w`ᵀ → `[rows, out]`, differentiable in `x`. `None` when `x` is not on
/// the autodiff device over the CPU backend without gradient checkpointing (the caller then
/// multiplies by the decoded matrix).
pub fn product(x: Tensor<2>, w: &Arc<QMatrix>) -> Option<Tensor<2>> {
    let x = x.try_into_primitive::<Trained>().ok()?;
    let (primitive, node) = x.into_parts();
    let parts: Vec<FlexTensor> = tiles(w)
        .map(|t| Flex::float_matmul(primitive.clone(), Flex::float_transpose(decoded(w, t))))
        .collect();
    let y = if parts.len() == 1 {
        parts
            .into_iter()
            .next()
            .unwrap_or_else(|| unreachable!("one part"))
    } else {
        Flex::float_cat(parts, 1)
    };
    let out = match QuantizedProduct
        .prepare::<NoCheckpointing>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(w.clone(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(Tensor::from_primitive::<Trained>(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::quant::WeightMode;
    use burn::tensor::Device;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn the_gradient_through_the_blocks_is_the_gradient_through_their_decoded_matrix() {
        // One tile, and a weight of more rows than a tile (an output head).
        gradient_matches(5, 64, 3);
        gradient_matches(3, 32, TILE_ROWS + 5);
    }

    fn gradient_matches(rows: usize, d_in: usize, d_out: usize) {
        let w: Vec<f32> = (0..d_out * d_in)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect();
        let xs: Vec<f32> = (0..rows * d_in)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
            .collect();
        let q = Arc::new(QMatrix::quantize(WeightMode::Q4, &w, d_out, d_in).unwrap());
        let decoded = q.dequantize();
        let device = Device::flex().autodiff();
        let x = || Tensor::<2>::from_data(TensorData::new(xs.clone(), [rows, d_in]), &device);
        // A loss that weighs each output differently, so every entry of ∂y differs.
        let weights = Tensor::<2>::from_data(
            TensorData::new(
                (0..rows * d_out).map(|i| i as f32 - 4.0).collect(),
                [rows, d_out],
            ),
            &device,
        );

        let ours = x().require_grad();
        let y = product(ours.clone(), &q).expect("the CPU's autodiff device is supported");
        let grads = (y.clone() * weights.clone()).sum().backward();
        let ours_grad = ours.grad(&grads).unwrap();

        let reference = x().require_grad();
        let w_t =
            Tensor::<2>::from_data(TensorData::new(decoded, [d_out, d_in]), &device).transpose();
        let y_ref = reference.clone().matmul(w_t);
        let grads = (y_ref.clone() * weights).sum().backward();
        let ref_grad = reference.grad(&grads).unwrap();

        let (got, want) = (values(y.inner()), values(y_ref.inner()));
        assert_eq!(got.len(), rows * d_out);
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let (a, b) = (values(ours_grad), values(ref_grad));
        assert_eq!(a.len(), rows * d_in);
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-3 * b.abs().max(1.0), "{a} vs {b}");
        }
        assert!(
            a.iter().any(|g| g.abs() > 0.1),
            "a gradient that says something"
        );
    }

    #[test]
    fn off_the_autodiff_device_there_is_nothing_to_differentiate() {
        let q = Arc::new(QMatrix::quantize(WeightMode::Q8_0, &[0.5; 64], 1, 64).unwrap());
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0; 64], [1, 64]), &Device::flex());
        assert!(product(x, &q).is_none());
    }
}
