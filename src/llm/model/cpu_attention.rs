//! Attention on the CPU over the backend's buffers. For each row of the batch and each K/V head:
//! the group's query rows times the keys (one GEMM), the mask, scale and softmax over each score
//! row vectorised, then the probabilities times the values (one GEMM). Burn's CPU attention takes
//! the same two products but the mask, scale and exponential one score at a time (libm `expf`
//! behind a mask byte test): a sixth of the in-context classifier's time, whose rows attend over
//! ~270 columns of demonstrations.

use burn::tensor::{Bool, Tensor, TensorData};
use burn_flex::Flex;
use rayon::prelude::*;

use super::cpu_buffer::{buffer, values};
use super::vector_math;

/// `q` `[b, kv, group·s, d]` (the `group` query heads of K/V head `g` stacked as rows, each
/// head's `s` positions in order), `k`/`v` `[b, kv, columns, d]`, `mask` `[b, 1, s, columns]`
/// (`true` = hidden) → `[b, kv, group·s, d]`. Every tensor must be
/// [`super::cpu_buffer::on_plain_cpu`].
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Tensor<4, Bool>,
    scale: f32,
) -> Tensor<4> {
    let device = q.device();
    let [b, kv, rows, d] = q.dims();
    let [_, _, s, columns] = mask.dims();
    debug_assert_eq!(k.dims(), [b, kv, columns, d]);
    debug_assert_eq!(v.dims(), [b, kv, columns, d]);
    debug_assert_eq!(rows % s.max(1), 0, "whole groups of query rows");
    let (q, k, v) = (buffer(q), buffer(k), buffer(v));
    // A mask given once for the whole batch is read as every row's.
    let mask = if mask.dims()[0] == b {
        mask
    } else {
        mask.expand([b, 1, s, columns])
    };
    let mask = mask
        .try_into_primitive::<Flex>()
        .unwrap_or_else(|e| unreachable!("checked to be on the CPU backend: {e:?}"))
        .to_contiguous();
    let (q, k, v, mask) = (values(&q), values(&k), values(&v), mask.storage::<u8>());
    let mut out = vec![0.0f32; b * kv * rows * d];
    if out.is_empty() || columns == 0 {
        return Tensor::from_data(TensorData::new(out, [b, kv, rows, d]), &device);
    }
    // Columns past the last one any position of a row sees (a cache's spare room) are skipped.
    let seen: Vec<usize> = (0..b)
        .map(|bi| {
            mask[bi * s * columns..(bi + 1) * s * columns]
                .chunks_exact(columns)
                .map(|row| row.iter().rposition(|&h| h == 0).map_or(0, |c| c + 1))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let task = |(t, out): (usize, &mut [f32])| {
        let bi = t / kv;
        let n = seen[bi];
        if n == 0 {
            return;
        }
        let q = &q[t * rows * d..(t + 1) * rows * d];
        let k = &k[t * columns * d..(t + 1) * columns * d];
        let v = &v[t * columns * d..(t + 1) * columns * d];
        let mut scores = vec![0.0f32; rows * n];
        // SAFETY: the pointers and strides address `rows × d`, `n × d` and `rows × n` elements
        // inside the slices above.
        unsafe {
            gemm::gemm(
                rows,
                n,
                d,
                scores.as_mut_ptr(),
                1,
                n as isize,
                false,
                q.as_ptr(),
                1,
                d as isize,
                k.as_ptr(),
                d as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (r, row) in scores.chunks_exact_mut(n).enumerate() {
            let position = r % s;
            let hidden = &mask[(bi * s + position) * columns..][..n];
            vector_math::softmax_visible(row, hidden);
        }
        // SAFETY: as above, for `rows × n`, `n × d` and `rows × d`.
        unsafe {
            gemm::gemm(
                rows,
                d,
                n,
                out.as_mut_ptr(),
                1,
                d as isize,
                false,
                scores.as_ptr(),
                1,
                n as isize,
                v.as_ptr(),
                1,
                d as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    out.par_chunks_mut(rows * d).enumerate().for_each(task);
    Tensor::from_data(TensorData::new(out, [b, kv, rows, d]), &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use burn::tensor::module::attention as burn_attention;
    use burn::tensor::ops::AttentionModuleOptions;

    fn filled(shape: [usize; 4], seed: usize) -> Tensor<4> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Tensor::from_data(TensorData::new(data, shape), &Device::flex())
    }

    /// Against Burn's attention on the same stacked layout, with the mask expanded as
    /// `Attention::forward` expands it: left padding (row 1 starts at column 2), causal
    /// positions, spare columns hidden at the end, and one row of a batch seeing nothing.
    #[test]
    fn equals_burns_attention_under_padding_causality_and_spare_columns() {
        let (b, kv, group, s, d, columns) = (3, 2, 3, 4, 8, 9);
        let past = columns - s - 2; // two spare columns
        let mut hidden = Vec::new();
        for bi in 0..b {
            let start = [0, 2, 0][bi];
            for i in 0..s {
                for c in 0..columns {
                    let q = past + i;
                    let visible = bi != 2 && c < past + s && (c == q || (c <= q && c >= start));
                    hidden.push(!visible);
                }
            }
        }
        let mask = Tensor::<4, Bool>::from_data(
            TensorData::new(hidden, [b, 1, s, columns]),
            &Device::flex(),
        );
        let q = filled([b, kv, group * s, d], 1);
        let k = filled([b, kv, columns, d], 2);
        let v = filled([b, kv, columns, d], 3);
        let scale = 0.3;
        let ours = attention(q.clone(), k.clone(), v.clone(), mask.clone(), scale);
        let expanded = mask
            .unsqueeze_dim::<5>(2)
            .expand([b, kv, group, s, columns])
            .reshape([b, kv, group * s, columns]);
        let options = AttentionModuleOptions {
            scale: Some(scale as f64),
            ..AttentionModuleOptions::default()
        };
        let theirs = burn_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            Some(expanded),
            None,
            options,
        );
        let (ours, theirs) = (
            ours.into_data().try_to_vec::<f32>().unwrap(),
            theirs.into_data().try_to_vec::<f32>().unwrap(),
        );
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "largest difference {worst}");
        // One mask for the whole batch is every row's.
        let shared = Tensor::<4, Bool>::from_data(
            TensorData::new(
                (0..s * columns)
                    .map(|i| i % columns > past + i / columns)
                    .collect::<Vec<_>>(),
                [1, 1, s, columns],
            ),
            &Device::flex(),
        );
        let once = attention(q.clone(), k.clone(), v.clone(), shared.clone(), scale);
        let each = attention(q, k, v, shared.expand([b, 1, s, columns]), scale);
        assert_eq!(
            once.into_data().try_to_vec::<f32>().unwrap(),
            each.into_data().try_to_vec::<f32>().unwrap()
        );
        // The batch row that sees nothing gives zeros (Burn gives zeros too).
        let per_row = kv * group * s * d;
        assert!(ours[2 * per_row..].iter().all(|&x| x == 0.0));
        assert!(ours[..2 * per_row].iter().any(|&x| x != 0.0));
    }
}
