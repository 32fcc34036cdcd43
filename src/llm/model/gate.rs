//! The MLP's gate, `act(gate) · up` (SiLU for SwiGLU, GELU's tanh approximation for Gemma's
//! GeGLU). Burn's CPU backend takes the sigmoid as libm's scalar `expf` on one thread, and under
//! autodiff keeps four tensors of the MLP's width for the backward pass (the gate, its sigmoid,
//! the activation, `up`). On the CPU it is taken here instead: in place over the gate's buffer
//! when nothing will be differentiated, and as one operation with its own backward pass (which
//! keeps the gate and `up` only) in training. Elsewhere (wgpu) it stays tensor operations.

use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};

use super::cpu_buffer::{
    Trained, buffer, new_like, on_plain_cpu, tensor, trained_on_cpu, values, values_mut, whole,
};
use super::vector_math;

/// `act(gate) · up`, `gelu` choosing the activation.
pub fn gated<const D: usize>(gate: Tensor<D>, up: Tensor<D>, gelu: bool) -> Tensor<D> {
    if on_plain_cpu(&gate) && on_plain_cpu(&up) {
        let mut g = buffer(gate);
        let u = buffer(up);
        vector_math::gated_in_place(values_mut(&mut g), values(&u), gelu);
        return tensor(g);
    }
    if trained_on_cpu(&gate) && trained_on_cpu(&up) {
        return differentiable(gate, up, gelu);
    }
    let gate = if gelu { gelu_tanh(gate) } else { silu(gate) };
    gate * up
}

#[derive(Debug)]
struct Gated {
    gelu: bool,
}

impl Backward<Flex, 2> for Gated {
    /// The gate and `up`, as the forward pass read them.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (gate, up) = ops.state;
        let grad = whole(grads.consume::<Flex>(&ops.node));
        let n = gate.layout().num_elements();
        let (mut dgate, mut dup) = (vec![0.0f32; n], vec![0.0f32; n]);
        vector_math::gated_backward(
            values(&gate),
            values(&up),
            values(&grad),
            &mut dgate,
            &mut dup,
            self.gelu,
        );
        let [gate_node, up_node] = ops.parents;
        if let Some(node) = gate_node {
            grads.register::<Flex>(node.id, new_like(&gate, dgate));
        }
        if let Some(node) = up_node {
            grads.register::<Flex>(node.id, new_like(&up, dup));
        }
    }
}

/// [`gated`] as one differentiable operation of the CPU's autodiff backend.
fn differentiable<const D: usize>(gate: Tensor<D>, up: Tensor<D>, gelu: bool) -> Tensor<D> {
    let parts = |t: Tensor<D>| {
        t.try_into_primitive::<Trained>()
            .unwrap_or_else(|e| unreachable!("checked to be on the CPU's autodiff device: {e:?}"))
            .into_parts()
    };
    let (g, g_node) = parts(gate);
    let (u, u_node) = parts(up);
    let (g, u) = (whole(g), whole(u));
    let mut out = vec![0.0f32; g.layout().num_elements()];
    vector_math::gated_into(values(&g), values(&u), &mut out, gelu);
    let out = new_like(&g, out);
    let op = Gated { gelu };
    let out = match op
        .prepare::<NoCheckpointing>([g_node, u_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((g, u), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Trained>(out)
}

/// GELU's tanh approximation, `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`, as
/// `gelu_pytorch_tanh` computes it; the cube as two products, which costs a fraction of the
/// general power Burn's `gelu_approximate` takes (a third of Gemma's prompt processing).
fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube * 0.044715) * SQRT_2_OVER_PI;
    (x * (inner.tanh() + 1)) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn values_of(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// The fused operation and its backward pass against Burn's own operations on the same
    /// autodiff device (`silu(gate) * up` and the tanh GELU), for a loss that weighs every
    /// output differently.
    #[test]
    fn the_fused_gate_trains_as_burns_operations_do() {
        let device = Device::flex().autodiff();
        let (rows, cols) = (5, 37);
        let gate_values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 31 % 113) as f32 - 56.0) / 9.0)
            .collect();
        let up_values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 17 % 29) as f32 - 14.0) / 5.0)
            .collect();
        let weights = Tensor::<2>::from_data(
            TensorData::new(
                (0..rows * cols).map(|i| (i % 11) as f32 - 5.0).collect(),
                [rows, cols],
            ),
            &device,
        );
        for gelu in [false, true] {
            let run = |fused: bool| {
                let gate = Tensor::<2>::from_data(
                    TensorData::new(gate_values.clone(), [rows, cols]),
                    &device,
                )
                .require_grad();
                let up = Tensor::<2>::from_data(
                    TensorData::new(up_values.clone(), [rows, cols]),
                    &device,
                )
                .require_grad();
                let out = if fused {
                    gated(gate.clone(), up.clone(), gelu)
                } else if gelu {
                    gelu_tanh(gate.clone()) * up.clone()
                } else {
                    silu(gate.clone()) * up.clone()
                };
                let grads = (out.clone() * weights.clone()).sum().backward();
                let dg = gate
                    .grad(&grads)
                    .map(|g| g.into_data().try_to_vec::<f32>().unwrap());
                let du = up
                    .grad(&grads)
                    .map(|g| g.into_data().try_to_vec::<f32>().unwrap());
                (values_of(out), dg.unwrap(), du.unwrap())
            };
            let (fused, reference) = (run(true), run(false));
            for (name, a, b) in [
                ("output", &fused.0, &reference.0),
                ("∂gate", &fused.1, &reference.1),
                ("∂up", &fused.2, &reference.2),
            ] {
                let worst = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-5, "gelu {gelu}: {name} off by {worst}");
            }
        }
    }
}
