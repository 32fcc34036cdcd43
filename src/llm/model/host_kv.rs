//! One layer's cached keys and values of a single sequence on the host, laid out for the host
//! decoding step's attention (`super::host_step`): keys by dimension (`[kv head][head_dim]
//! [column]`), so a query's scores over all columns are sums of contiguous rows scaled by one
//! query value each, with no per-column horizontal sum; values by column (`[column][kv head]
//! [head_dim]`), so the weighted sum adds contiguous vectors.

#[derive(Debug, Clone)]
pub struct HostLayerKv {
    heads: usize,
    dim: usize,
    len: usize,
    /// Columns each key row has room for.
    room: usize,
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl HostLayerKv {
    pub fn new(heads: usize, dim: usize) -> Self {
        HostLayerKv {
            heads,
            dim,
            len: 0,
            room: 0,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Columns held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `n` columns given as the cache tensors hold them, `[kv head][column][head_dim]`.
    pub fn extend_from_heads(&mut self, k: &[f32], v: &[f32], n: usize) {
        let (h, d) = (self.heads, self.dim);
        debug_assert!(k.len() == h * n * d && v.len() == k.len());
        self.reserve(n);
        for head in 0..h {
            for c in 0..n {
                let col = self.len + c;
                let src = &k[(head * n + c) * d..][..d];
                for (i, &x) in src.iter().enumerate() {
                    self.keys[(head * d + i) * self.room + col] = x;
                }
            }
        }
        for c in 0..n {
            for head in 0..h {
                self.values.extend_from_slice(&v[(head * n + c) * d..][..d]);
            }
        }
        self.len += n;
    }

    /// Appends one column, `[kv head][head_dim]` each.
    pub fn push(&mut self, k: &[f32], v: &[f32]) {
        self.extend_from_heads(k, v, 1);
    }

    /// Key `dim` of `head` across every held column.
    pub fn key_row(&self, head: usize, dim: usize) -> &[f32] {
        &self.keys[(head * self.dim + dim) * self.room..][..self.len]
    }

    /// The values of `head` at `column`.
    pub fn value(&self, column: usize, head: usize) -> &[f32] {
        &self.values[(column * self.heads + head) * self.dim..][..self.dim]
    }

    /// Room for `extra` more columns in every key row, doubling so appends stay amortised O(1).
    fn reserve(&mut self, extra: usize) {
        let needed = self.len + extra;
        if needed <= self.room {
            return;
        }
        let room = needed.max(self.room * 2).max(16);
        let rows = self.heads * self.dim;
        let mut keys = vec![0.0f32; rows * room];
        for r in 0..rows {
            keys[r * room..][..self.len].copy_from_slice(&self.keys[r * self.room..][..self.len]);
        }
        self.keys = keys;
        self.room = room;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns pushed one at a time and columns copied from the tensors' order land in the
    /// same places, across the key rows' growth.
    #[test]
    fn columns_read_back_as_they_were_written() {
        let (h, d) = (2, 3);
        let key = |c: usize, head: usize, i: usize| (c * 100 + head * 10 + i) as f32;
        let value = |c: usize, head: usize, i: usize| -key(c, head, i);
        let mut kv = HostLayerKv::new(h, d);
        // 20 columns in the tensors' order ([head][column][dim]), then 30 one at a time.
        let n = 20;
        let mut k = Vec::new();
        let mut v = Vec::new();
        for head in 0..h {
            for c in 0..n {
                for i in 0..d {
                    k.push(key(c, head, i));
                    v.push(value(c, head, i));
                }
            }
        }
        kv.extend_from_heads(&k, &v, n);
        for c in n..50 {
            let col = |f: &dyn Fn(usize, usize, usize) -> f32| -> Vec<f32> {
                (0..h)
                    .flat_map(|head| (0..d).map(move |i| (head, i)))
                    .map(|(head, i)| f(c, head, i))
                    .collect()
            };
            kv.push(&col(&key), &col(&value));
        }
        assert_eq!(kv.len(), 50);
        for head in 0..h {
            for i in 0..d {
                let want: Vec<f32> = (0..50).map(|c| key(c, head, i)).collect();
                assert_eq!(kv.key_row(head, i), &want[..]);
            }
            for c in 0..50 {
                let want: Vec<f32> = (0..d).map(|i| value(c, head, i)).collect();
                assert_eq!(kv.value(c, head), &want[..]);
            }
        }
    }
}
