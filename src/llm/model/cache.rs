//! Key/value cache for incremental decoding.
//!
//! Every row of a batch writes its next keys and values at the same column, so one
//! `slice_assign` per layer serves the whole batch; rows that started later simply have masked
//! columns before their first token (see [`super::layout`]). Burn's Flex backend assigns in place
//! when the tensor is uniquely owned, so appending costs only the new columns.

use burn::tensor::{Device, Tensor, TensorData};

use super::host_kv::HostLayerKv;
use crate::llm::config::ModelConfig;

#[derive(Debug)]
pub struct KvCache {
    layers: Vec<(Tensor<4>, Tensor<4>)>,
    len: usize,
    capacity: usize,
    batch: usize,
    /// Row 0's filled columns copied to the host, per layer: what the host decoding step
    /// reads (`super::host_step`). The tensors stay the reference; this is `None` until that
    /// step first runs and after any change that moves columns, and may lag the tensors by the
    /// columns the tensor path appended since.
    host: Option<Vec<HostLayerKv>>,
}

impl KvCache {
    pub fn new(config: &ModelConfig, batch: usize, capacity: usize, device: &Device) -> Self {
        Self::with_dims(
            config.num_layers,
            config.num_kv_heads,
            config.head_dim,
            batch,
            capacity,
            device,
        )
    }

    /// A cache shaped for `model`.
    pub fn new_for(model: &crate::llm::model::Llama, batch: usize, capacity: usize) -> Self {
        let (heads, dim) = model
            .layers
            .first()
            .map(|b| (b.self_attn.num_kv_heads, b.self_attn.head_dim))
            .unwrap_or((1, 1));
        Self::with_dims(
            model.layers.len(),
            heads,
            dim,
            batch,
            capacity,
            &model.device(),
        )
    }

    pub fn with_dims(
        num_layers: usize,
        num_kv_heads: usize,
        head_dim: usize,
        batch: usize,
        capacity: usize,
        device: &Device,
    ) -> Self {
        let shape = [batch, num_kv_heads, capacity, head_dim];
        let layers = (0..num_layers)
            .map(|_| (Tensor::zeros(shape, device), Tensor::zeros(shape, device)))
            .collect();
        KvCache {
            layers,
            len: 0,
            capacity,
            batch,
            host: None,
        }
    }

    /// Columns filled so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Makes room for `extra` more columns, growing geometrically so appends stay amortised O(1).
    pub fn reserve(&mut self, extra: usize) {
        let needed = self.len + extra;
        if needed <= self.capacity {
            return;
        }
        let new_cap = needed.max(self.capacity * 2);
        for (k, v) in &mut self.layers {
            k.inplace(|t| grow(t, new_cap));
            v.inplace(|t| grow(t, new_cap));
        }
        self.capacity = new_cap;
    }

    /// Writes the new keys/values `[B, H_kv, S, D]` of `layer` after the filled columns and
    /// returns the keys/values of every column the cache has room for: the filled ones, the new
    /// ones, and zeros past them, which the caller hides. The whole tensors are contiguous, where
    /// the filled columns of a cache with spare room are not, and CPU attention copied those to
    /// make them so (batch-16 q4 decoding 233–240 → 272–273 tok/s). The caller advances the
    /// length once all layers are written ([`KvCache::advance`]).
    pub fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [b, h, s, d] = k.dims();
        let (kc, vc) = &mut self.layers[layer];
        let range = [0..b, 0..h, self.len..self.len + s, 0..d];
        kc.inplace(|t| t.slice_assign(range.clone(), k));
        vc.inplace(|t| t.slice_assign(range, v));
        (kc.clone(), vc.clone())
    }

    pub fn advance(&mut self, s: usize) {
        self.len += s;
    }

    /// Keeps only the given batch rows, in that order (finished sequences leave the batch).
    pub fn retain_rows(&mut self, rows: &[usize]) {
        if rows.is_empty() {
            return;
        }
        self.host = None;
        let device = self.layers[0].0.device();
        let idx = Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(
                rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [rows.len()],
            ),
            &device,
        );
        for (k, v) in &mut self.layers {
            k.inplace(|t| t.select(0, idx.clone()));
            v.inplace(|t| t.select(0, idx.clone()));
        }
        self.batch = rows.len();
    }

    /// Overwrites row `row`'s last `src.len()` columns with another cache's single row, used
    /// when a new sequence takes a finished one's slot: its prompt is prefilled alone, then
    /// placed so that it ends where the batch's shared write column is.
    pub fn place_row(&mut self, row: usize, src: &KvCache) {
        self.host = None;
        let n = src.len;
        assert!(
            n <= self.len,
            "placed row ({n}) longer than the cache ({})",
            self.len
        );
        for ((k, v), (sk, sv)) in self.layers.iter_mut().zip(&src.layers) {
            let [_, h, _, d] = k.dims();
            let from = [0..1, 0..h, 0..n, 0..d];
            let to = [row..row + 1, 0..h, self.len - n..self.len, 0..d];
            k.inplace(|t| t.slice_assign(to.clone(), sk.clone().slice(from.clone())));
            v.inplace(|t| t.slice_assign(to, sv.clone().slice(from)));
        }
    }
}

impl KvCache {
    /// Brings the host copy up to the filled columns (a batch of one), copying only the
    /// columns it lacks.
    pub(super) fn host_sync(&mut self) {
        let len = self.len;
        let layers = &self.layers;
        let host = self.host.get_or_insert_with(|| {
            layers
                .iter()
                .map(|(k, _)| {
                    let [_, h, _, d] = k.dims();
                    HostLayerKv::new(h, d)
                })
                .collect()
        });
        for ((k, v), hk) in layers.iter().zip(host.iter_mut()) {
            let [_, h, _, d] = k.dims();
            let have = hk.len();
            if have >= len {
                continue;
            }
            let read = |t: &Tensor<4>| {
                let cols = t.clone().slice([0..1, 0..h, have..len, 0..d]).into_data();
                crate::llm::readback::f32_values(cols, "cache")
                    .unwrap_or_else(|e| unreachable!("the cache holds f32: {e}"))
            };
            hk.extend_from_heads(&read(k), &read(v), len - have);
        }
    }

    /// Writes one new column's keys and values (`[kv head][head_dim]`) of `layer` after the
    /// filled ones, in the tensors and the host copy, and returns the host copy including it.
    /// [`KvCache::host_sync`] first; the caller advances the length after the last layer.
    pub(super) fn host_push(&mut self, layer: usize, k: &[f32], v: &[f32]) -> &HostLayerKv {
        let [_, h, _, d] = self.layers[layer].0.dims();
        let device = self.layers[layer].0.device();
        let column =
            |x: &[f32]| Tensor::from_data(TensorData::new(x.to_vec(), [1, h, 1, d]), &device);
        // Dropped at once, so the next append still finds the tensors uniquely owned.
        drop(self.append(layer, column(k), column(v)));
        let host = self
            .host
            .get_or_insert_with(Vec::new)
            .get_mut(layer)
            .unwrap_or_else(|| unreachable!("host_sync made one entry a layer"));
        host.push(k, v);
        host
    }
}

fn grow(t: Tensor<4>, new_cap: usize) -> Tensor<4> {
    let [b, h, cap, d] = t.dims();
    let extra = Tensor::zeros([b, h, new_cap - cap, d], &t.device());
    Tensor::cat(vec![t, extra], 2)
}

impl KvCache {
    /// Inserts `n` empty columns before the filled ones (a new sequence's prompt is longer than
    /// the batch's history); the caller shifts every row's start by `n`.
    pub fn pad_left(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.host = None;
        let len = self.len;
        for (k, v) in &mut self.layers {
            for t in [k, v] {
                t.inplace(|t| {
                    let [b, h, cap, d] = t.dims();
                    let filled = t.slice([0..b, 0..h, 0..len, 0..d]);
                    let front = Tensor::zeros([b, h, n, d], &filled.device());
                    let spare = cap.max(len + n) - len - n;
                    let mut parts = vec![front, filled];
                    if spare > 0 {
                        parts.push(Tensor::zeros([b, h, spare, d], &parts[0].device()));
                    }
                    Tensor::cat(parts, 2)
                });
            }
        }
        self.capacity = self.capacity.max(len + n);
        self.len += n;
    }

    /// Forgets the first `n` columns, which no row looks at any more (every row's start is past
    /// them); the caller shifts every row's start back by `n`.
    pub fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.host = None;
        let n = n.min(self.len);
        let len = self.len;
        for (k, v) in &mut self.layers {
            for t in [k, v] {
                t.inplace(|t| {
                    let [b, h, cap, d] = t.dims();
                    let kept = t.slice([0..b, 0..h, n..len, 0..d]);
                    let rest = Tensor::zeros([b, h, cap - (len - n), d], &kept.device());
                    Tensor::cat(vec![kept, rest], 2)
                });
            }
        }
        self.len -= n;
    }
}

impl KvCache {
    /// A cache of `batch` rows that all start with the first `len` columns of `prefix`'s row 0,
    /// with room for `extra` more columns: a shared prompt prefix is computed once and reused.
    pub fn from_prefix(prefix: &KvCache, batch: usize, extra: usize) -> KvCache {
        let n = prefix.len;
        let layers = prefix
            .layers
            .iter()
            .map(|(k, v)| {
                let widen = |t: &Tensor<4>| {
                    let [_, h, _, d] = t.dims();
                    let rows = t
                        .clone()
                        .slice([0..1, 0..h, 0..n, 0..d])
                        .repeat_dim(0, batch);
                    if extra == 0 {
                        rows
                    } else {
                        let room = Tensor::zeros([batch, h, extra, d], &rows.device());
                        Tensor::cat(vec![rows, room], 2)
                    }
                };
                (widen(k), widen(v))
            })
            .collect();
        KvCache {
            layers,
            len: n,
            capacity: n + extra,
            batch,
            host: None,
        }
    }
}
