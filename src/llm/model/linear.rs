//! A frozen projection `y = x·W` with an optional low-rank adapter `+ s·(x·A)·B`.
//!
//! The adapter is computed on the low-rank path rather than by materialising `W + s·A·B` on
//! every forward (what Burn's built-in `Lora` reparameterisation does), because the rank-r path
//! costs O(r·(in+out)) per token instead of O(in·out) per call.
//!
//! The frozen weight is either an f32 tensor on the model's device or blocks held in memory
//! (`--weights q8_0|q4`, [`crate::llm::quant`]); the adapter is f32 either way, so training over
//! blocks is QLoRA ([`crate::llm::quant::backward`]).

use std::sync::{Arc, Mutex};

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::llm::quant::QMatrix;
use crate::llm::quant::device::DeviceBlocks;
use crate::util::rng::Rng;

#[derive(Module, Debug)]
pub struct Projection {
    /// `[in, out]`, frozen; `None` when the weight is held quantized.
    pub weight: Option<Param<Tensor<2>>>,
    /// The frozen weight as blocks `[out, in]`, when it is held quantized.
    #[module(skip)]
    pub quant: Option<Quantized>,
    /// `[out]`, frozen (Qwen2's Q, K and V).
    pub bias: Option<Param<Tensor<1>>>,
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
    /// Dropout probability on the adapter's input; applied only on an autodiff (training)
    /// device, with masks drawn from `noise`.
    pub dropout: f64,
    /// `s·A·B` has been added into the base weight: the forward skips the low-rank path
    /// (see `train::lora::merge` / `unmerge`).
    pub merged: bool,
    #[module(skip)]
    pub noise: DropoutNoise,
}

/// `[out, in]` blocks decoded as the `[in, out]` tensor Burn multiplies by.
fn decoded(matrix: &QMatrix, device: &Device) -> Tensor<2> {
    let t: Tensor<2> = Tensor::from_data(
        TensorData::new(matrix.dequantize(), [matrix.rows(), matrix.cols()]),
        device,
    );
    t.transpose()
}

/// The input rows the CPU's integer kernels read.
fn host_values(x: &Tensor<2>) -> Vec<f32> {
    x.clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_else(|e| unreachable!("converted to f32 just above: {e:?}"))
}

/// A quantized frozen weight and the device its products go back to; on a device other than
/// the CPU, the blocks also live there and are decoded there ([`DeviceBlocks`]).
#[derive(Debug, Clone)]
pub struct Quantized {
    pub matrix: Arc<QMatrix>,
    pub device: Device,
    pub on_device: Option<DeviceBlocks>,
}

/// Up to this many input rows a quantized product is taken in integers, block by block;
/// above it the matrix is decoded to f32 for that call and multiplied by Burn's GEMM, which
/// is faster on long prompts (measured: `seedforge bench decode --weights q8_0`).
pub const INTEGER_ROWS: usize = 64;

/// The seeded stream dropout masks come from (seedforge's own xoshiro256**, so a training run
/// is reproducible whatever else uses Burn's global generator meanwhile).
#[derive(Debug, Clone)]
pub struct DropoutNoise(Arc<Mutex<Rng>>);

impl Default for DropoutNoise {
    fn default() -> Self {
        DropoutNoise::new(0)
    }
}

impl DropoutNoise {
    pub fn new(seed: u64) -> Self {
        DropoutNoise(Arc::new(Mutex::new(Rng::new(seed))))
    }

    /// Where the stream stands (a training checkpoint saves it).
    pub fn state(&self) -> [u64; 4] {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).state()
    }

    /// Puts the stream where [`DropoutNoise::state`] said it was (a resumed run), for every
    /// clone of the module sharing it.
    pub fn set_state(&self, state: [u64; 4]) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Rng::from_state(state);
    }

    /// `n` mask values: 0 with probability `p`, else `1 / (1 − p)` (inverted dropout).
    pub fn mask(&self, n: usize, p: f64) -> Vec<f32> {
        let keep = 1.0 / (1.0 - p) as f32;
        // Compare 32-bit draws against p·2³²: two draws per 64-bit output.
        let threshold = (p * 4_294_967_296.0).round() as u64;
        let mut rng = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let r = rng.next_u64();
            for half in [r & 0xFFFF_FFFF, r >> 32] {
                if out.len() < n {
                    out.push(if half < threshold { 0.0 } else { keep });
                }
            }
        }
        out
    }
}

impl Projection {
    pub fn new(weight: Tensor<2>) -> Self {
        Projection {
            weight: Some(Param::from_tensor(weight).set_require_grad(false)),
            quant: None,
            bias: None,
            adapter: None,
        }
    }

    /// A projection whose frozen weight stays in blocks (`matrix` is `[out, in]`).
    pub fn quantized(matrix: Arc<QMatrix>, device: &Device) -> Self {
        Projection {
            weight: None,
            quant: Some(Quantized {
                on_device: (device.clone().inner() != Device::flex())
                    .then(|| DeviceBlocks::upload(&matrix, device)),
                matrix,
                device: device.clone(),
            }),
            bias: None,
            adapter: None,
        }
    }

    pub fn device(&self) -> Device {
        match (&self.weight, &self.quant) {
            (Some(w), _) => w.val().device(),
            (None, Some(q)) => q.device.clone(),
            (None, None) => unreachable!("a projection holds its weight one way or the other"),
        }
    }

    /// The frozen weight as `[in, out]` f32 (decoded when it is held quantized).
    pub fn dense_weight(&self) -> Tensor<2> {
        match (&self.weight, &self.quant) {
            (Some(w), _) => w.val(),
            (None, Some(q)) => decoded(&q.matrix, &q.device),
            (None, None) => unreachable!("a projection holds its weight one way or the other"),
        }
    }

    /// The projection plus a frozen bias.
    pub fn with_bias(mut self, bias: Tensor<1>) -> Self {
        self.bias = Some(Param::from_tensor(bias).set_require_grad(false));
        self
    }

    pub fn d_in(&self) -> usize {
        match (&self.weight, &self.quant) {
            (Some(w), _) => w.shape().dims::<2>()[0],
            (None, Some(q)) => q.matrix.cols(),
            (None, None) => 0,
        }
    }

    pub fn d_out(&self) -> usize {
        match (&self.weight, &self.quant) {
            (Some(w), _) => w.shape().dims::<2>()[1],
            (None, Some(q)) => q.matrix.rows(),
            (None, None) => 0,
        }
    }

    /// `x` `[…, in]` → `[…, out]`. The leading dimensions are folded into the rows of one 2-D
    /// matmul (forward and, in training, backward): a broadcast batched matmul would repack the
    /// weight once per batch entry, which dominated the training step's backward pass.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let x: Tensor<2> = x.reshape([rows, d_in]);
        let base = match (&self.weight, &self.quant) {
            (Some(w), _) => x.clone().matmul(w.val()),
            (
                None,
                Some(Quantized {
                    on_device: Some(blocks),
                    ..
                }),
            ) => {
                let w = blocks.decoded();
                let w = if x.device().is_autodiff() {
                    Tensor::from_inner(w)
                } else {
                    w
                };
                x.clone().matmul(w)
            }
            // Training (QLoRA): the product's own backward pass decodes the blocks again rather
            // than keeping a decoded copy alive until it runs; the integer path below has no
            // backward at all.
            (None, Some(q)) if x.device().is_autodiff() => {
                crate::llm::quant::backward::product(x.clone(), &q.matrix)
                    .unwrap_or_else(|| x.clone().matmul(decoded(&q.matrix, &x.device())))
            }
            (None, Some(q)) if rows <= INTEGER_ROWS => {
                let device = x.device();
                let y = q.matrix.matmul(&host_values(&x), rows);
                Tensor::from_data(TensorData::new(y, [rows, q.matrix.rows()]), &device)
            }
            (None, Some(q)) => x.clone().matmul(decoded(&q.matrix, &x.device())),
            (None, None) => unreachable!("a projection holds its weight one way or the other"),
        };
        self.finish(x, base, dims)
    }

    /// Several projections of the same input `x` (Q, K and V; gate and up). On the CPU with
    /// blocks and few rows, the input is rounded once and one pass of the pool takes every
    /// product ([`QMatrix::matmul_group`]); otherwise each projection takes its own.
    pub fn forward_group<const D: usize>(projs: &[&Projection], x: Tensor<D>) -> Vec<Tensor<D>> {
        let dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let mats: Option<Vec<&QMatrix>> = projs
            .iter()
            .map(|p| match (&p.weight, &p.quant) {
                (None, Some(q)) if q.on_device.is_none() => Some(&*q.matrix),
                _ => None,
            })
            .collect();
        let mats = match mats {
            Some(m) if projs.len() > 1 && rows <= INTEGER_ROWS && !x.device().is_autodiff() => m,
            _ => return projs.iter().map(|p| p.forward(x.clone())).collect(),
        };
        let x: Tensor<2> = x.reshape([rows, d_in]);
        let device = x.device();
        QMatrix::matmul_group(&mats, &host_values(&x), rows)
            .into_iter()
            .zip(projs)
            .map(|(y, p)| {
                let base = Tensor::from_data(TensorData::new(y, [rows, p.d_out()]), &device);
                p.finish(x.clone(), base, dims)
            })
            .collect()
    }

    /// The adapter and the bias added to the frozen product `base` of `x` `[rows, in]`, shaped
    /// as `dims` with the output's width.
    fn finish<const D: usize>(&self, x: Tensor<2>, base: Tensor<2>, dims: [usize; D]) -> Tensor<D> {
        let [rows, d_in] = x.dims();
        let y = match &self.adapter {
            Some(lr) if !lr.merged => {
                let x = if lr.dropout > 0.0 && x.device().is_autodiff() {
                    let mask = lr.noise.mask(rows * d_in, lr.dropout);
                    let mask = Tensor::from_data(TensorData::new(mask, [rows, d_in]), &x.device());
                    x * mask
                } else {
                    x
                };
                let low = x.matmul(lr.a.val()).matmul(lr.b.val());
                base + low.mul_scalar(lr.scale)
            }
            _ => base,
        };
        let y = match &self.bias {
            Some(b) => y + b.val().unsqueeze::<2>(),
            None => y,
        };
        let mut out = dims;
        out[D - 1] = self.d_out();
        y.reshape(out)
    }
}
