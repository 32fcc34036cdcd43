//! Exponentials over slices, vectorised: the gates of SwiGLU/GeGLU and the softmax of
//! attention. Burn's CPU backend takes the gate's sigmoid as libm's scalar `expf`, one element
//! at a time on the thread that drives the model, which was a sixth of the in-context
//! classifier's time (`perf`: `__expf_fma`, `unary_op`).
//!
//! The loops are plain element-wise arithmetic that the compiler widens to the vector width the
//! wrappers allow (AVX-512 or AVX2 + FMA, detected at run time; the build's baseline is SSE2).

use rayon::prelude::*;

use crate::llm::quant::kernels::{self, Isa};

/// e^x by Cephes' single-precision method: `x = n·ln 2 + r` with |r| ≤ ln 2 / 2, e^r by a
/// degree-7 polynomial, 2^n put into the exponent bits. Within 2 ulp of libm's `expf` over the
/// range where e^x is a normal float (tested); 0 below it, +∞ above it, NaN for NaN.
#[inline(always)]
fn exp1(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const LOWEST: f32 = -87.336_55;
    const HIGHEST: f32 = 88.376_26;
    let c = x.clamp(LOWEST, HIGHEST);
    let n = (c * LOG2E + 0.5).floor();
    let r = c - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    let y = y * f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < LOWEST {
        0.0
    } else if x > HIGHEST {
        f32::INFINITY
    } else {
        y
    }
}

/// Elements handed to one task of the pool: below two of them the slice stays on the caller.
const CHUNK: usize = 16 * 1024;

/// Runs `body` over `CHUNK`-element pieces of `out` and `with` (same length), on the pool's
/// threads when there are several pieces.
fn pieces(out: &mut [f32], with: &[f32], body: impl Fn(&mut [f32], &[f32]) + Sync) {
    if out.len() < 2 * CHUNK {
        body(out, with);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(with.par_chunks(CHUNK))
            .for_each(|(o, w)| body(o, w));
    }
}

/// Expands to a function `$name` that runs the `#[inline(always)]` element-wise body `$body`
/// compiled for the best instruction set this CPU has.
macro_rules! widened {
    ($name:ident, $body:path, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { $body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { $body($($arg),*) }
                match kernels::isa() {
                    // SAFETY: `isa()` found these instruction sets on this CPU.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    Isa::Portable => {}
                }
            }
            $body($($arg),*)
        }
    };
}

/// Accumulators kept side by side in the reductions below, so that the compiler can keep them
/// in one vector register (a float sum in a single accumulator cannot be reordered, so would
/// stay scalar).
const LANES: usize = 16;

#[inline(always)]
fn sum_body(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn max_body(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    acc.iter()
        .chain(chunks.remainder())
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

#[inline(always)]
fn exp_shifted_body(row: &mut [f32], shift: f32) -> f32 {
    for s in row.iter_mut() {
        *s = exp1(*s - shift);
    }
    sum_body(row)
}

#[inline(always)]
fn softmax_visible_body(row: &mut [f32], hidden: &[u8]) {
    for (x, &h) in row.iter_mut().zip(hidden) {
        *x = if h != 0 { f32::NEG_INFINITY } else { *x };
    }
    let max = max_body(row);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let inv = 1.0 / exp_shifted_body(row, max);
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// `act(x)` and `act'(x)` for SiLU (`x·σ(x)`) or, with `GELU`, GELU's tanh approximation
/// (`x·σ(2z)`, `z = √(2/π)(x + 0.044715x³)`).
#[inline(always)]
fn act_parts<const GELU: bool>(x: f32) -> (f32, f32) {
    const TWO_C: f32 = 2.0 * 0.797_884_6;
    const A: f32 = 0.044715;
    if GELU {
        let x2 = x * x;
        let s = 1.0 / (1.0 + exp1(-(x + x2 * x * A) * TWO_C));
        (x * s, s + x * s * (1.0 - s) * TWO_C * (1.0 + 3.0 * A * x2))
    } else {
        let s = 1.0 / (1.0 + exp1(-x));
        (x * s, s * (1.0 + x * (1.0 - s)))
    }
}

#[inline(always)]
fn gated_in_place_body<const GELU: bool>(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = act_parts::<GELU>(*g).0 * u;
    }
}

#[inline(always)]
fn gated_into_body<const GELU: bool>(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = act_parts::<GELU>(g).0 * u;
    }
}

#[inline(always)]
fn gated_back_body<const GELU: bool>(
    gate: &[f32],
    up: &[f32],
    grad: &[f32],
    dgate: &mut [f32],
    dup: &mut [f32],
) {
    for i in 0..gate
        .len()
        .min(up.len())
        .min(grad.len())
        .min(dgate.len())
        .min(dup.len())
    {
        let (a, da) = act_parts::<GELU>(gate[i]);
        dgate[i] = grad[i] * up[i] * da;
        dup[i] = grad[i] * a;
    }
}

widened!(silu_in_place_one, gated_in_place_body::<false>, (gate: &mut [f32], up: &[f32]));
widened!(gelu_in_place_one, gated_in_place_body::<true>, (gate: &mut [f32], up: &[f32]));
widened!(silu_into_one, gated_into_body::<false>, (gate: &[f32], up: &[f32], out: &mut [f32]));
widened!(gelu_into_one, gated_into_body::<true>, (gate: &[f32], up: &[f32], out: &mut [f32]));
widened!(silu_back_one, gated_back_body::<false>, (gate: &[f32], up: &[f32], grad: &[f32], dgate: &mut [f32], dup: &mut [f32]));
widened!(gelu_back_one, gated_back_body::<true>, (gate: &[f32], up: &[f32], grad: &[f32], dgate: &mut [f32], dup: &mut [f32]));
widened!(exp_shifted_one, exp_shifted_body, (row: &mut [f32], shift: f32) -> f32);
widened!(softmax_visible_one, softmax_visible_body, (row: &mut [f32], hidden: &[u8]));

/// `gate ← act(gate) · up` (SiLU, or GELU's tanh approximation with `gelu`), element by
/// element; long slices on the pool.
pub fn gated_in_place(gate: &mut [f32], up: &[f32], gelu: bool) {
    assert_eq!(gate.len(), up.len(), "a gate for every up-projection");
    pieces(
        gate,
        up,
        if gelu {
            gelu_in_place_one
        } else {
            silu_in_place_one
        },
    );
}

/// `out ← act(gate) · up` (SiLU, or GELU's tanh approximation with `gelu`), leaving the inputs
/// as they are for a backward pass.
pub fn gated_into(gate: &[f32], up: &[f32], out: &mut [f32], gelu: bool) {
    assert!(
        gate.len() == up.len() && up.len() == out.len(),
        "one gate, up and output each"
    );
    let one = if gelu { gelu_into_one } else { silu_into_one };
    if out.len() < 2 * CHUNK {
        one(gate, up, out);
    } else {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
            one(
                &gate[c * CHUNK..][..o.len()],
                &up[c * CHUNK..][..o.len()],
                o,
            )
        });
    }
}

/// The gradients of `act(gate) · up` given the output's gradient `grad`:
/// `dgate ← grad · up · act'(gate)`, `dup ← grad · act(gate)`, in one pass.
pub fn gated_backward(
    gate: &[f32],
    up: &[f32],
    grad: &[f32],
    dgate: &mut [f32],
    dup: &mut [f32],
    gelu: bool,
) {
    let n = gate.len();
    assert!(
        [up.len(), grad.len(), dgate.len(), dup.len()]
            .iter()
            .all(|&l| l == n),
        "one gate, up, gradient and output each"
    );
    let one = if gelu { gelu_back_one } else { silu_back_one };
    if n < 2 * CHUNK {
        one(gate, up, grad, dgate, dup);
    } else {
        dgate
            .par_chunks_mut(CHUNK)
            .zip(dup.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (dg, du))| {
                let r = c * CHUNK..c * CHUNK + dg.len();
                one(&gate[r.clone()], &up[r.clone()], &grad[r], dg, du)
            });
    }
}

/// `row ← e^(row − shift)` and the sum of the new row: a softmax's exponentials after its
/// maximum is known (the caller divides).
pub fn exp_shifted(row: &mut [f32], shift: f32) -> f32 {
    exp_shifted_one(row, shift)
}

/// `row` ← its softmax over the entries `hidden` leaves visible (non-zero = hidden, which get
/// probability 0); a row with none visible becomes all zeros.
pub fn softmax_visible(row: &mut [f32], hidden: &[u8]) {
    assert_eq!(row.len(), hidden.len(), "a mask entry for every score");
    softmax_visible_one(row, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm_where_the_result_is_normal() {
        let mut xs: Vec<f32> = (0..200_001)
            .map(|i| -87.3 + 175.6 * i as f32 / 200_000.0)
            .collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1.0, 20.0, -20.0]);
        let want: Vec<f32> = xs.iter().map(|x| x.exp()).collect();
        let mut got = xs.clone();
        exp_shifted(&mut got, 0.0);
        let worst = got
            .iter()
            .zip(&want)
            .zip(&xs)
            .map(|((&g, &w), &x)| (ulps(g, w), x))
            .max_by_key(|&(u, _)| u)
            .unwrap();
        assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
        // The portable body gives the same values as the widened ones.
        let mut portable = xs.clone();
        exp_shifted_body(&mut portable, 0.0);
        assert_eq!(portable, got);
    }

    #[test]
    fn exp_saturates_to_zero_and_infinity_and_keeps_nan() {
        let mut xs = vec![
            -1000.0,
            -88.0,
            f32::NEG_INFINITY,
            89.0,
            f32::INFINITY,
            f32::NAN,
        ];
        exp_shifted(&mut xs, 0.0);
        assert_eq!(&xs[..5], &[0.0, 0.0, 0.0, f32::INFINITY, f32::INFINITY]);
        assert!(xs[5].is_nan());
    }

    #[test]
    fn gates_follow_their_definitions_on_short_and_pooled_slices() {
        for n in [7, 3 * CHUNK + 5] {
            let gate: Vec<f32> = (0..n).map(|i| (i % 211) as f32 / 10.0 - 10.5).collect();
            let up: Vec<f32> = (0..n).map(|i| (i % 13) as f32 / 4.0 - 1.5).collect();
            let mut silu = gate.clone();
            gated_in_place(&mut silu, &up, false);
            let mut gelu = gate.clone();
            gated_in_place(&mut gelu, &up, true);
            for i in 0..n {
                let (x, u) = (gate[i], up[i]);
                let want_silu = x / (1.0 + (-x).exp()) * u;
                let inner = (x + 0.044715 * x * x * x) * 0.797_884_6;
                let want_gelu = 0.5 * x * (1.0 + inner.tanh()) * u;
                assert!(
                    (silu[i] - want_silu).abs() <= 1e-5 * (1.0 + want_silu.abs()),
                    "silu {x}"
                );
                assert!(
                    (gelu[i] - want_gelu).abs() <= 1e-5 * (1.0 + want_gelu.abs()),
                    "gelu {x}"
                );
            }
        }
    }

    #[test]
    fn the_gates_derivatives_are_their_slopes() {
        // Central differences in f64 of the activations' definitions, at points across both
        // tails and zero; short and pooled slices.
        let silu = |x: f64| x / (1.0 + (-x).exp());
        let gelu = |x: f64| {
            0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)).tanh())
        };
        for n in [9, 2 * CHUNK + 3] {
            let gate: Vec<f32> = (0..n).map(|i| (i % 97) as f32 / 8.0 - 6.0).collect();
            let up: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
            let grad: Vec<f32> = (0..n).map(|i| (i % 7) as f32 / 3.0 - 1.0).collect();
            for (gelu_on, f) in [(false, &silu as &dyn Fn(f64) -> f64), (true, &gelu)] {
                let mut out = vec![0.0; n];
                gated_into(&gate, &up, &mut out, gelu_on);
                let (mut dg, mut du) = (vec![0.0; n], vec![0.0; n]);
                gated_backward(&gate, &up, &grad, &mut dg, &mut du, gelu_on);
                for i in (0..n).step_by(n / 9 + 1).chain([n - 1]) {
                    let (x, u, g) = (gate[i] as f64, up[i] as f64, grad[i] as f64);
                    let h = 1e-4;
                    let slope = (f(x + h) - f(x - h)) / (2.0 * h);
                    let close = |a: f32, b: f64| (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs());
                    assert!(close(out[i], f(x) * u), "act({x})·{u}: {}", out[i]);
                    assert!(close(dg[i], g * u * slope), "∂gate at {x}: {}", dg[i]);
                    assert!(close(du[i], g * f(x)), "∂up at {x}: {}", du[i]);
                }
            }
        }
    }

    #[test]
    fn softmax_hides_what_the_mask_hides() {
        // Longer than the accumulators, with a tail, the largest score hidden.
        let row: Vec<f32> = (0..37).map(|i| ((i * 7) % 11) as f32 / 3.0).collect();
        let hidden: Vec<u8> = (0..37).map(|i| u8::from(i % 5 == 3 || i == 1)).collect();
        let mut got = row.clone();
        softmax_visible(&mut got, &hidden);
        let max = row
            .iter()
            .zip(&hidden)
            .filter(|(_, h)| **h == 0)
            .map(|(x, _)| *x)
            .fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = row
            .iter()
            .zip(&hidden)
            .filter(|(_, h)| **h == 0)
            .map(|(x, _)| (x - max).exp())
            .sum();
        for i in 0..37 {
            let want = if hidden[i] != 0 {
                0.0
            } else {
                (row[i] - max).exp() / total
            };
            assert!((got[i] - want).abs() < 1e-6, "{i}: {} vs {want}", got[i]);
        }
        let mut none = vec![1.0f32; 5];
        softmax_visible(&mut none, &[1; 5]);
        assert_eq!(none, vec![0.0; 5]);
    }

    #[test]
    fn shifted_exponentials_return_their_sum() {
        let mut row = vec![1.0f32, 2.0, 3.0, f32::NEG_INFINITY];
        let sum = exp_shifted(&mut row, 3.0);
        let want = [(-2.0f32).exp(), (-1.0f32).exp(), 1.0, 0.0];
        for (g, w) in row.iter().zip(want) {
            assert!(ulps(*g, w) <= 2, "{g} vs {w}");
        }
        assert!((sum - want.iter().sum::<f32>()).abs() < 1e-6);
    }
}
