//! A frozen projection `y = x·W` with an optional low-rank adapter `+ s·(x·A)·B`.
//!
//! The adapter is computed on the low-rank path rather than by materialising `W + s·A·B` on
//! every forward (what Burn's built-in `Lora` reparameterisation does), because the rank-r path
//! costs O(r·(in+out)) per token instead of O(in·out) per call.

use burn::module::{Module, Param};
use burn::nn::Dropout;
use burn::tensor::Tensor;
use burn::tensor::module::linear;

#[derive(Module, Debug)]
pub struct Projection {
    /// `[in, out]`, frozen.
    pub weight: Param<Tensor<2>>,
    pub adapter: Option<LowRank>,
}

#[derive(Module, Debug)]
pub struct LowRank {
    /// `[in, r]`
    pub a: Param<Tensor<2>>,
    /// `[r, out]`
    pub b: Param<Tensor<2>>,
    /// `alpha / r`
    pub scale: f64,
    /// Dropout on the adapter's input; active only on an autodiff (training) device.
    pub dropout: Dropout,
}

impl Projection {
    pub fn new(weight: Tensor<2>) -> Self {
        Projection {
            weight: Param::from_tensor(weight).set_require_grad(false),
            adapter: None,
        }
    }

    pub fn d_in(&self) -> usize {
        self.weight.shape().dims::<2>()[0]
    }

    pub fn d_out(&self) -> usize {
        self.weight.shape().dims::<2>()[1]
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let base = linear(x.clone(), self.weight.val(), None);
        match &self.adapter {
            None => base,
            Some(lr) => {
                let x = lr.dropout.forward(x);
                let low = linear(linear(x, lr.a.val(), None), lr.b.val(), None);
                base + low.mul_scalar(lr.scale)
            }
        }
    }
}
