//! Integer dot products of one weight row with one quantized input row (16-bit quants, see
//! [`super::activations`]), block by block:
//! `Σ_b d_w·d_x·Σ_i w_i·x_i` for Q8_0 weights, plus `m_w·s_x` per block for Q4_1 weights.
//! AVX-512 and AVX2 versions where the CPU has them (chosen once, at first use), and a
//! portable one everywhere else; the three agree to float rounding (tested).

use half::f16;
use std::sync::OnceLock;

/// The instruction set the kernels use on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "AVX-512 (BW)",
            Isa::Avx2 => "AVX2 + FMA",
            Isa::Portable => "portable",
        }
    }
}

/// The best instruction set this CPU offers the kernels.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    // F16C widens Q4_1's f16 scales; every AVX-512 CPU has it, but it is checked all the same.
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("f16c")
    {
        Isa::Avx512
    } else if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        Isa::Avx2
    } else {
        Isa::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Portable
}

/// One Q8_0 weight row (`wq`, per-block scales `wd`) · one quantized input row.
pub fn dot_q8(isa: Isa, wq: &[i8], wd: &[f32], xq: &[i16], xd: &[f32]) -> f32 {
    assert!(wq.len() == xq.len() && wd.len() == xd.len() && wq.len() == wd.len() * 32);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` is what `detect` found on this CPU (or a test's narrower choice), and
        // the lengths were checked above.
        Isa::Avx512 => unsafe { x86::dotn_q8_avx512(wq, wd, [(xq, xd)])[0] },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { x86::dot_q8_avx2(wq, wd, xq, xd) },
        _ => portable::dot_q8(wq, wd, xq, xd),
    }
}

/// One Q4_1 weight row (packed nibbles `wq`, scales `wd`, minima `wm`) · one quantized input
/// row with its block sums `xs`.
pub fn dot_q4(
    isa: Isa,
    wq: &[u8],
    wd: &[f16],
    wm: &[f16],
    xq: &[i16],
    xd: &[f32],
    xs: &[f32],
) -> f32 {
    assert!(
        wq.len() * 2 == xq.len()
            && wd.len() == xd.len()
            && wm.len() == wd.len()
            && xs.len() == xd.len()
            && xq.len() == wd.len() * 32
    );
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_q8`.
        Isa::Avx512 => unsafe { x86::dotn_q4_avx512(wq, wd, wm, [(xq, xd, xs)])[0] },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_q8`.
        Isa::Avx2 => unsafe { x86::dot_q4_avx2(wq, wd, wm, xq, xd, xs) },
        _ => portable::dot_q4(wq, wd, wm, xq, xd, xs),
    }
}

/// One input row against consecutive Q8_0 weight rows of `cols` each: `out[k]` is row `k`'s
/// product. One call for a run of rows (decoding one sequence makes ~200 000 row products a
/// token; a call and its checks per row showed in the profile).
pub fn rows_q8(
    isa: Isa,
    cols: usize,
    wq: &[i8],
    wd: &[f32],
    xq: &[i16],
    xd: &[f32],
    out: &mut [f32],
) {
    let nb = cols / 32;
    assert!(wq.len() == out.len() * cols && wd.len() == out.len() * nb);
    assert!(xq.len() == cols && xd.len() == nb && cols == nb * 32);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_q8`; every row's length was checked above.
        Isa::Avx512 => unsafe { x86::rows_q8_avx512(cols, wq, wd, xq, xd, out) },
        _ => {
            for (k, o) in out.iter_mut().enumerate() {
                *o = dot_q8(isa, &wq[k * cols..][..cols], &wd[k * nb..][..nb], xq, xd);
            }
        }
    }
}

/// One input row against consecutive Q4_1 weight rows (see [`rows_q8`]).
#[allow(clippy::too_many_arguments)]
pub fn rows_q4(
    isa: Isa,
    cols: usize,
    wq: &[u8],
    wd: &[f16],
    wm: &[f16],
    x: (&[i16], &[f32], &[f32]),
    out: &mut [f32],
) {
    let nb = cols / 32;
    let (xq, xd, xs) = x;
    assert!(wq.len() * 2 == out.len() * cols && wd.len() == out.len() * nb && wm.len() == wd.len());
    assert!(xq.len() == cols && xd.len() == nb && xs.len() == nb && cols == nb * 32);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_q8`; every row's length was checked above.
        Isa::Avx512 => unsafe { x86::rows_q4_avx512(cols, wq, wd, wm, x, out) },
        _ => {
            for (k, o) in out.iter_mut().enumerate() {
                let (w, d, m) = (
                    &wq[k * cols / 2..][..cols / 2],
                    &wd[k * nb..][..nb],
                    &wm[k * nb..][..nb],
                );
                *o = dot_q4(isa, w, d, m, xq, xd, xs);
            }
        }
    }
}

/// Four input rows against one Q8_0 weight row: the weight's blocks are widened once for all
/// four (batched decoding). `None` where this machine has no four-row kernel.
pub fn dot4_q8(isa: Isa, wq: &[i8], wd: &[f32], x: [(&[i16], &[f32]); 4]) -> Option<[f32; 4]> {
    assert!(wq.len() == wd.len() * 32);
    assert!(
        x.iter()
            .all(|(q, d)| q.len() == wq.len() && d.len() == wd.len())
    );
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_q8`.
        Isa::Avx512 => Some(unsafe { x86::dotn_q8_avx512(wq, wd, x) }),
        _ => None,
    }
}

/// Four input rows against one Q4_1 weight row (see [`dot4_q8`]).
pub fn dot4_q4(
    isa: Isa,
    wq: &[u8],
    wd: &[f16],
    wm: &[f16],
    x: [(&[i16], &[f32], &[f32]); 4],
) -> Option<[f32; 4]> {
    assert!(wq.len() * 2 == wd.len() * 32 && wm.len() == wd.len());
    assert!(
        x.iter()
            .all(|(q, d, s)| q.len() == wq.len() * 2 && d.len() == wd.len() && s.len() == wd.len())
    );
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_q8`.
        Isa::Avx512 => Some(unsafe { x86::dotn_q4_avx512(wq, wd, wm, x) }),
        _ => None,
    }
}

/// Q8_0 blocks (`q`, scales `d`) decoded to f32 into `out`: training over blocks and long
/// prompts decode every weight they multiply by, a row at a time.
pub fn decode_q8(isa: Isa, q: &[i8], d: &[f32], out: &mut [f32]) {
    assert!(q.len() == d.len() * 32 && out.len() == q.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_q8`; the lengths were checked above.
        Isa::Avx512 => unsafe { x86::decode_q8_avx512(q, d, out) },
        _ => portable::decode_q8(q, d, out),
    }
}

/// Q4_1 blocks (packed nibbles `q`, scales `d`, minima `m`) decoded to f32 into `out`.
pub fn decode_q4(isa: Isa, q: &[u8], d: &[f16], m: &[f16], out: &mut [f32]) {
    assert!(q.len() == d.len() * 16 && m.len() == d.len() && out.len() == q.len() * 2);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_q8`; the lengths were checked above.
        Isa::Avx512 => unsafe { x86::decode_q4_avx512(q, d, m, out) },
        _ => portable::decode_q4(q, d, m, out),
    }
}

/// f16 weight rows (`cols` each) against one f32 input row: each row widened to f32 (F16C)
/// and multiplied in f32; `out[k]` is row `k`'s product.
pub fn rows_f16(isa: Isa, cols: usize, w: &[f16], x: &[f32], out: &mut [f32]) {
    assert!(w.len() == out.len() * cols && x.len() == cols);
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        for (k, o) in out.iter_mut().enumerate() {
            // SAFETY: `isa()` found AVX-512 and F16C; the row and `x` are `cols` long.
            *o = unsafe { x86::dot_f16_avx512(&w[k * cols..][..cols], x) };
        }
        return;
    }
    let mut row = vec![0.0f32; cols];
    for (k, o) in out.iter_mut().enumerate() {
        widen_f16(isa, &w[k * cols..][..cols], &mut row);
        *o = dot_f32(isa, &row, x);
    }
}

/// One f16 weight row against `out.len()` f32 input rows (`x` row-major): with AVX-512 the
/// halves are widened inside each product as [`rows_f16`] widens them (one instruction per 16,
/// and the same sums as one input row gets); otherwise the row is widened once.
pub fn dots_f16(isa: Isa, w: &[f16], x: &[f32], out: &mut [f32]) {
    let cols = w.len();
    assert!(x.len() == out.len() * cols);
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        for (r, o) in out.iter_mut().enumerate() {
            // SAFETY: `isa()` found AVX-512 and F16C; both rows are `cols` long.
            *o = unsafe { x86::dot_f16_avx512(w, &x[r * cols..][..cols]) };
        }
        return;
    }
    let mut row = vec![0.0f32; cols];
    widen_f16(isa, w, &mut row);
    for (r, o) in out.iter_mut().enumerate() {
        *o = dot_f32(isa, &row, &x[r * cols..][..cols]);
    }
}

/// Halves to floats, 16 an instruction with AVX-512 (`half`'s own conversion, 8 at a time
/// behind a call, was a quarter of f16 batch decoding in `perf`).
pub fn widen_f16(isa: Isa, w: &[f16], out: &mut [f32]) {
    assert_eq!(w.len(), out.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` found AVX-512 and F16C; the lengths were checked above.
        Isa::Avx512 => unsafe { x86::widen_f16_avx512(w, out) },
        _ => half::slice::HalfFloatSliceExt::convert_to_f32_slice(w, out),
    }
}

/// Four decoded f32 weight rows (`w`, row-major, `cols` each) against `n` f32 input rows (`x`,
/// row-major): `out[k·n + r]` = weight row `k` · input row `r`. With AVX-512 four input rows at
/// a time meet the four weight rows in sixteen sums held in registers, so each load of a weight
/// or an input serves four products and the inputs stream through L1 once per four weight rows
/// (one weight row at a time, every input row came from L2 again for each: that, not the
/// arithmetic, bounded the integer kernels at 17–64 rows). Elsewhere one [`dot_f32`] a pair.
/// The products are the f32 products of the decoded weights, in another order of summation
/// than the GEMM's.
pub fn dots4_f32(isa: Isa, cols: usize, w: &[f32], x: &[f32], n: usize, out: &mut [f32]) {
    assert!(w.len() == 4 * cols && x.len() == n * cols && out.len() == 4 * n);
    let wrow = |k: usize| &w[k * cols..][..cols];
    let xrow = |r: usize| &x[r * cols..][..cols];
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        let ws = [wrow(0), wrow(1), wrow(2), wrow(3)];
        for r in (0..n).step_by(4) {
            let take = (n - r).min(4);
            // The last group repeats its last row in the places it lacks.
            let xs = std::array::from_fn(|i| xrow(r + i.min(take - 1)));
            // SAFETY: `isa()` found AVX-512; every row is `cols` long.
            let sums = unsafe { x86::dot4x4_f32_avx512(ws, xs) };
            for (i, four) in sums.iter().take(take).enumerate() {
                for (k, &v) in four.iter().enumerate() {
                    out[k * n + r + i] = v;
                }
            }
        }
        return;
    }
    for k in 0..4 {
        for r in 0..n {
            out[k * n + r] = dot_f32(isa, wrow(k), xrow(r));
        }
    }
}

/// `a · b` in f32, in 16 lanes, compiled for the widest vectors the CPU has.
pub fn dot_f32(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` found AVX-512 on this CPU.
        Isa::Avx512 => unsafe { x86::dot_f32_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` found AVX2 and FMA on this CPU.
        Isa::Avx2 => unsafe { x86::dot_f32_avx2(a, b) },
        _ => portable::dot_f32(a, b),
    }
}

mod portable {
    /// Sixteen running sums, so the compiler may widen the loop (one sum would fix its order).
    #[inline(always)]
    pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let mut lanes = [0.0f32; 16];
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..16 {
                lanes[i] += x[i] * y[i];
            }
        }
        lanes.iter().sum::<f32>() + tail
    }

    use half::f16;

    pub fn decode_q8(q: &[i8], d: &[f32], out: &mut [f32]) {
        for ((o, qs), &scale) in out.chunks_exact_mut(32).zip(q.chunks_exact(32)).zip(d) {
            for (o, &v) in o.iter_mut().zip(qs) {
                *o = scale * f32::from(v);
            }
        }
    }

    pub fn decode_q4(q: &[u8], d: &[f16], m: &[f16], out: &mut [f32]) {
        for (b, (o, qs)) in out.chunks_exact_mut(32).zip(q.chunks_exact(16)).enumerate() {
            let (scale, min) = (d[b].to_f32(), m[b].to_f32());
            for j in 0..16 {
                o[j] = scale * f32::from(qs[j] & 0xF) + min;
                o[j + 16] = scale * f32::from(qs[j] >> 4) + min;
            }
        }
    }

    pub fn dot_q8(wq: &[i8], wd: &[f32], xq: &[i16], xd: &[f32]) -> f32 {
        let mut acc = 0.0f32;
        for (b, (w, x)) in wq.chunks_exact(32).zip(xq.chunks_exact(32)).enumerate() {
            let sum: i32 = w
                .iter()
                .zip(x)
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum();
            acc += wd[b] * xd[b] * sum as f32;
        }
        acc
    }

    pub fn dot_q4(wq: &[u8], wd: &[f16], wm: &[f16], xq: &[i16], xd: &[f32], xs: &[f32]) -> f32 {
        let mut acc = 0.0f32;
        for (b, (w, x)) in wq.chunks_exact(16).zip(xq.chunks_exact(32)).enumerate() {
            let mut sum = 0i32;
            for j in 0..16 {
                sum += i32::from(w[j] & 0xF) * i32::from(x[j]);
                sum += i32::from(w[j] >> 4) * i32::from(x[j + 16]);
            }
            acc += wd[b].to_f32() * xd[b] * sum as f32 + wm[b].to_f32() * xs[b];
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f32_avx512(a: &[f32], b: &[f32]) -> f32 {
        super::portable::dot_f32(a, b)
    }

    /// [`super::dots4_f32`]'s kernel: four input rows against four weight rows, sixteen sums;
    /// `result[i][k]` = input row `i` · weight row `k`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot4x4_f32_avx512(w: [&[f32]; 4], x: [&[f32]; 4]) -> [[f32; 4]; 4] {
        let n = w[0].len();
        let full = n / 16 * 16;
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        for i in (0..full).step_by(16) {
            // SAFETY: 16 floats from `i < full ≤ n` in every row (each `n` long, the caller's
            // check).
            unsafe {
                let wv = w.map(|row| _mm512_loadu_ps(row.as_ptr().add(i)));
                for (a, row) in acc.iter_mut().zip(&x) {
                    let xv = _mm512_loadu_ps(row.as_ptr().add(i));
                    for (a, &wv) in a.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(wv, xv, *a);
                    }
                }
            }
        }
        let mut out = [[0.0f32; 4]; 4];
        for (o, (a, row)) in out.iter_mut().zip(acc.iter().zip(&x)) {
            for (k, (o, a)) in o.iter_mut().zip(a).enumerate() {
                *o = _mm512_reduce_add_ps(*a) + (full..n).map(|j| w[k][j] * row[j]).sum::<f32>();
            }
        }
        out
    }

    /// [`super::widen_f16`]: 16 halves an instruction, the tail one at a time.
    #[target_feature(enable = "avx512f,f16c")]
    pub unsafe fn widen_f16_avx512(w: &[f16], out: &mut [f32]) {
        let full = w.len() / 16 * 16;
        for i in (0..full).step_by(16) {
            // SAFETY: 16 halves and 16 floats from `i < full ≤ len`.
            unsafe {
                let h = _mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i);
                _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            }
        }
        for i in full..w.len() {
            out[i] = w[i].to_f32();
        }
    }

    /// An f16 row · an f32 row, the halves widened 16 at a time straight into two sums.
    #[target_feature(enable = "avx512f,f16c")]
    pub unsafe fn dot_f16_avx512(w: &[f16], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let full = n / 32 * 32;
        let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for i in (0..full).step_by(32) {
            // SAFETY: 32 halves and 32 floats from `i < full ≤ n`.
            unsafe {
                let h0 = _mm512_cvtph_ps(_mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i));
                let h1 =
                    _mm512_cvtph_ps(_mm256_loadu_si256(w.as_ptr().add(i + 16) as *const __m256i));
                a0 = _mm512_fmadd_ps(h0, _mm512_loadu_ps(x.as_ptr().add(i)), a0);
                a1 = _mm512_fmadd_ps(h1, _mm512_loadu_ps(x.as_ptr().add(i + 16)), a1);
            }
        }
        let tail: f32 = (full..n).map(|i| w[i].to_f32() * x[i]).sum();
        _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + tail
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
        super::portable::dot_f32(a, b)
    }

    use half::f16;

    /// `N` input rows against one Q8_0 weight row: the weight's blocks are widened once for
    /// all `N` (one row: decoding; four: batches).
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub unsafe fn dotn_q8_avx512<const N: usize>(
        wq: &[i8],
        wd: &[f32],
        x: [(&[i16], &[f32]); N],
    ) -> [f32; N] {
        let mut acc = [_mm512_setzero_ps(); N];
        for b in 0..wd.len() {
            // SAFETY: the caller checked 32 bytes per block in the weight and every input row.
            let w = unsafe {
                _mm512_cvtepi8_epi16(_mm256_loadu_si256(wq.as_ptr().add(b * 32) as *const __m256i))
            };
            for (a, (xq, xd)) in acc.iter_mut().zip(&x) {
                // SAFETY: as above.
                let v = unsafe { _mm512_loadu_si512(xq.as_ptr().add(b * 32) as *const __m512i) };
                let p = _mm512_madd_epi16(w, v);
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_set1_ps(wd[b] * xd[b]), *a);
            }
        }
        acc.map(|a| _mm512_reduce_add_ps(a))
    }

    /// `N` input rows against one Q4_1 weight row (see [`dotn_q8_avx512`]); each block's f16
    /// scale and minimum are widened together in a register as the block is read.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    pub unsafe fn dotn_q4_avx512<const N: usize>(
        wq: &[u8],
        wd: &[f16],
        wm: &[f16],
        x: [(&[i16], &[f32], &[f32]); N],
    ) -> [f32; N] {
        let low = _mm_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); N];
        let mut mins = [0.0f32; N];
        for b in 0..wd.len() {
            // SAFETY: the caller checked 16 packed bytes a block.
            let packed = unsafe { _mm_loadu_si128(wq.as_ptr().add(b * 16) as *const __m128i) };
            // Byte j holds value j (low nibble) and value j + 16 (high nibble).
            let lo = _mm_and_si128(packed, low);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(packed), low);
            let w = _mm512_cvtepu8_epi16(_mm256_set_m128i(hi, lo));
            let bits = u32::from(wd[b].to_bits()) | (u32::from(wm[b].to_bits()) << 16);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
            let (d, m) = (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)));
            for ((a, sum), (xq, xd, xs)) in acc.iter_mut().zip(mins.iter_mut()).zip(&x) {
                // SAFETY: the caller checked 32 bytes a block in every input row.
                let v = unsafe { _mm512_loadu_si512(xq.as_ptr().add(b * 32) as *const __m512i) };
                let p = _mm512_madd_epi16(w, v);
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_set1_ps(d * xd[b]), *a);
                *sum += m * xs[b];
            }
        }
        let mut out = acc.map(|a| _mm512_reduce_add_ps(a));
        for (o, m) in out.iter_mut().zip(mins) {
            *o += m;
        }
        out
    }

    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub unsafe fn rows_q8_avx512(
        cols: usize,
        wq: &[i8],
        wd: &[f32],
        xq: &[i16],
        xd: &[f32],
        out: &mut [f32],
    ) {
        let nb = cols / 32;
        for (k, o) in out.iter_mut().enumerate() {
            let (w, d) = (&wq[k * cols..][..cols], &wd[k * nb..][..nb]);
            // SAFETY: the caller checked `out.len()` rows of `cols` weights and `nb` scales.
            *o = unsafe { dotn_q8_avx512(w, d, [(xq, xd)]) }[0];
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    pub unsafe fn rows_q4_avx512(
        cols: usize,
        wq: &[u8],
        wd: &[f16],
        wm: &[f16],
        x: (&[i16], &[f32], &[f32]),
        out: &mut [f32],
    ) {
        let nb = cols / 32;
        for (k, o) in out.iter_mut().enumerate() {
            let (w, d, m) = (
                &wq[k * cols / 2..][..cols / 2],
                &wd[k * nb..][..nb],
                &wm[k * nb..][..nb],
            );
            // SAFETY: the caller checked `out.len()` rows of `cols / 2` bytes and `nb` scales.
            *o = unsafe { dotn_q4_avx512(w, d, m, [x]) }[0];
        }
    }

    /// [`super::decode_q8`]: a block's 32 bytes widened to two vectors of 16 floats.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn decode_q8_avx512(q: &[i8], d: &[f32], out: &mut [f32]) {
        for (b, &scale) in d.iter().enumerate() {
            let s = _mm512_set1_ps(scale);
            for half in 0..2 {
                let at = b * 32 + half * 16;
                // SAFETY: the caller checked 32 bytes and 32 outputs a block.
                unsafe {
                    let v =
                        _mm512_cvtepi8_epi32(_mm_loadu_si128(q.as_ptr().add(at) as *const __m128i));
                    _mm512_storeu_ps(
                        out.as_mut_ptr().add(at),
                        _mm512_mul_ps(_mm512_cvtepi32_ps(v), s),
                    );
                }
            }
        }
    }

    /// [`super::decode_q4`]: a block's low nibbles (values 0–15) and high nibbles (16–31),
    /// each widened to 16 floats, `d·q + m`.
    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    pub unsafe fn decode_q4_avx512(q: &[u8], d: &[f16], m: &[f16], out: &mut [f32]) {
        let low = _mm_set1_epi8(0x0F);
        for b in 0..d.len() {
            let bits = u32::from(d[b].to_bits()) | (u32::from(m[b].to_bits()) << 16);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
            let scale = _mm512_set1_ps(_mm_cvtss_f32(dm));
            let min = _mm512_set1_ps(_mm_cvtss_f32(_mm_movehdup_ps(dm)));
            // SAFETY: the caller checked 16 packed bytes and 32 outputs a block.
            unsafe {
                let packed = _mm_loadu_si128(q.as_ptr().add(b * 16) as *const __m128i);
                let lo = _mm512_cvtepu8_epi32(_mm_and_si128(packed, low));
                let hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16::<4>(packed), low));
                let o = out.as_mut_ptr().add(b * 32);
                _mm512_storeu_ps(o, _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), scale, min));
                _mm512_storeu_ps(
                    o.add(16),
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), scale, min),
                );
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let one = _mm_add_ss(pair, _mm_shuffle_ps::<0x55>(pair, pair));
        _mm_cvtss_f32(one)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8_avx2(wq: &[i8], wd: &[f32], xq: &[i16], xd: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for b in 0..wd.len() {
            // SAFETY: the caller checked 32 weights and 32 inputs per block.
            let (w0, w1, x0, x1) = unsafe {
                (
                    _mm_loadu_si128(wq.as_ptr().add(b * 32) as *const __m128i),
                    _mm_loadu_si128(wq.as_ptr().add(b * 32 + 16) as *const __m128i),
                    _mm256_loadu_si256(xq.as_ptr().add(b * 32) as *const __m256i),
                    _mm256_loadu_si256(xq.as_ptr().add(b * 32 + 16) as *const __m256i),
                )
            };
            let p = _mm256_add_epi32(
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(w0), x0),
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(w1), x1),
            );
            let scale = _mm256_set1_ps(wd[b] * xd[b]);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_avx2(
        wq: &[u8],
        wd: &[f16],
        wm: &[f16],
        xq: &[i16],
        xd: &[f32],
        xs: &[f32],
    ) -> f32 {
        let low = _mm_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0.0f32;
        for b in 0..wd.len() {
            // SAFETY: the caller checked 16 packed bytes and 32 input bytes per block.
            let (packed, x0, x1) = unsafe {
                (
                    _mm_loadu_si128(wq.as_ptr().add(b * 16) as *const __m128i),
                    _mm256_loadu_si256(xq.as_ptr().add(b * 32) as *const __m256i),
                    _mm256_loadu_si256(xq.as_ptr().add(b * 32 + 16) as *const __m256i),
                )
            };
            let lo = _mm256_cvtepu8_epi16(_mm_and_si128(packed, low));
            let hi = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), low));
            let p = _mm256_add_epi32(_mm256_madd_epi16(lo, x0), _mm256_madd_epi16(hi, x1));
            let bits = u32::from(wd[b].to_bits()) | (u32::from(wm[b].to_bits()) << 16);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
            let (d, m) = (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)));
            let scale = _mm256_set1_ps(d * xd[b]);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc);
            mins += m * xs[b];
        }
        hsum(acc) + mins
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rng::Rng;

    fn bytes(rng: &mut Rng, n: usize) -> Vec<i8> {
        (0..n).map(|_| (rng.next_u64() % 255) as i8).collect()
    }

    /// Inputs over the whole range the activations use (±32767).
    fn inputs(rng: &mut Rng, n: usize) -> Vec<i16> {
        (0..n)
            .map(|_| (rng.next_u64() % 65535) as i32 - 32767)
            .map(|v| v as i16)
            .collect()
    }

    fn scales(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.next_f64() as f32 * 0.01).collect()
    }

    /// Q4_1's scales and minima are held in f16.
    fn halves(v: &[f32]) -> Vec<f16> {
        v.iter().map(|&x| f16::from_f32(x)).collect()
    }

    /// Every instruction set this machine has gives the portable kernel's answer.
    #[test]
    fn every_instruction_set_here_agrees_with_the_portable_kernels() {
        let mut rng = Rng::new(7);
        let nb = 18;
        let (wq, xq) = (bytes(&mut rng, nb * 32), inputs(&mut rng, nb * 32));
        let (wd, wm, xd, xs) = (
            scales(&mut rng, nb),
            scales(&mut rng, nb),
            scales(&mut rng, nb),
            scales(&mut rng, nb),
        );
        let packed: Vec<u8> = bytes(&mut rng, nb * 16).iter().map(|&v| v as u8).collect();
        let want8 = portable::dot_q8(&wq, &wd, &xq, &xd);
        let (wd4, wm4) = (halves(&wd), halves(&wm));
        let want4 = portable::dot_q4(&packed, &wd4, &wm4, &xq, &xd, &xs);
        // The exact sum in f64, for the portable kernels themselves.
        let exact8: f64 = (0..nb)
            .map(|b| {
                let s: i64 = (0..32)
                    .map(|i| i64::from(wq[b * 32 + i]) * i64::from(xq[b * 32 + i]))
                    .sum();
                f64::from(wd[b]) * f64::from(xd[b]) * s as f64
            })
            .sum();
        assert!((f64::from(want8) - exact8).abs() < 1e-4 * exact8.abs().max(1e-3));
        let mut tried = vec![Isa::Portable];
        if isa() != Isa::Portable {
            tried.push(isa());
        }
        if isa() == Isa::Avx512 {
            tried.push(Isa::Avx2);
        }
        for i in tried {
            let got8 = dot_q8(i, &wq, &wd, &xq, &xd);
            let got4 = dot_q4(i, &packed, &wd4, &wm4, &xq, &xd, &xs);
            assert!((got8 - want8).abs() <= 1e-5 * want8.abs().max(1.0), "{i:?}");
            assert!((got4 - want4).abs() <= 1e-5 * want4.abs().max(1.0), "{i:?}");
        }
    }

    #[test]
    fn four_rows_at_once_give_each_row_s_own_product() {
        let mut rng = Rng::new(9);
        let nb = 6;
        let wq = bytes(&mut rng, nb * 32);
        let packed: Vec<u8> = bytes(&mut rng, nb * 16).iter().map(|&v| v as u8).collect();
        let (wd, wm) = (scales(&mut rng, nb), scales(&mut rng, nb));
        let (wd4, wm4) = (halves(&wd), halves(&wm));
        let xs: Vec<(Vec<i16>, Vec<f32>, Vec<f32>)> = (0..4)
            .map(|_| {
                (
                    inputs(&mut rng, nb * 32),
                    scales(&mut rng, nb),
                    scales(&mut rng, nb),
                )
            })
            .collect();
        let q8 = dot4_q8(
            isa(),
            &wq,
            &wd,
            std::array::from_fn(|i| (&xs[i].0[..], &xs[i].1[..])),
        );
        let q4 = dot4_q4(
            isa(),
            &packed,
            &wd4,
            &wm4,
            std::array::from_fn(|i| (&xs[i].0[..], &xs[i].1[..], &xs[i].2[..])),
        );
        if isa() != Isa::Avx512 {
            assert!(q8.is_none() && q4.is_none());
            return;
        }
        for (i, (xq, xd, xsum)) in xs.iter().enumerate() {
            let one8 = portable::dot_q8(&wq, &wd, xq, xd);
            let one4 = portable::dot_q4(&packed, &wd4, &wm4, xq, xd, xsum);
            assert!((q8.unwrap()[i] - one8).abs() <= 1e-5 * one8.abs().max(1.0));
            assert!((q4.unwrap()[i] - one4).abs() <= 1e-5 * one4.abs().max(1.0));
        }
    }

    /// Rows of any length: the f16 scales are widened a segment of 64 blocks at a time, 16 an
    /// instruction, the last ones through a copy.
    #[test]
    fn rows_longer_than_a_segment_of_scales_give_the_portable_product() {
        let mut rng = Rng::new(13);
        for nb in [1, 15, 16, 17, 64, 70, 130] {
            let packed: Vec<u8> = bytes(&mut rng, nb * 16).iter().map(|&v| v as u8).collect();
            let (wd, wm) = (halves(&scales(&mut rng, nb)), halves(&scales(&mut rng, nb)));
            let (xq, xd, xs) = (
                inputs(&mut rng, nb * 32),
                scales(&mut rng, nb),
                scales(&mut rng, nb),
            );
            let want = portable::dot_q4(&packed, &wd, &wm, &xq, &xd, &xs);
            let got = dot_q4(isa(), &packed, &wd, &wm, &xq, &xd, &xs);
            // The blocks' terms cancel: compare against their magnitude.
            let magnitude = q4_magnitude(&wd, &wm, &xd, &xs);
            assert!(
                (got - want).abs() <= 1e-6 * magnitude.max(1.0),
                "{nb} blocks: {got} vs {want}"
            );
        }
    }

    /// The largest a Q4_1 row's product with 16-bit inputs can be, block by block: what its
    /// rounding is measured against.
    fn q4_magnitude(wd: &[f16], wm: &[f16], xd: &[f32], xs: &[f32]) -> f32 {
        (0..wd.len())
            .map(|b| wd[b].to_f32() * xd[b] * 32.0 * 15.0 * 32767.0 + wm[b].to_f32() * xs[b].abs())
            .sum()
    }

    /// Runs of rows against one input row (the one-sequence kernel: blocks in pairs, scales
    /// and minima 16 at a time) give the portable products, for odd and even block counts and
    /// counts past 16.
    #[test]
    fn runs_of_rows_give_the_portable_products() {
        let mut rng = Rng::new(19);
        for nb in [1, 2, 3, 15, 16, 17, 18, 33, 48, 70] {
            let (rows, cols) = (5, nb * 32);
            let packed: Vec<u8> = bytes(&mut rng, rows * nb * 16)
                .iter()
                .map(|&v| v as u8)
                .collect();
            let (wd, wm) = (
                halves(&scales(&mut rng, rows * nb)),
                halves(&scales(&mut rng, rows * nb)),
            );
            let (xq, xd, xs) = (
                inputs(&mut rng, cols),
                scales(&mut rng, nb),
                scales(&mut rng, nb),
            );
            let mut got = vec![0.0f32; rows];
            rows_q4(isa(), cols, &packed, &wd, &wm, (&xq, &xd, &xs), &mut got);
            for (r, g) in got.iter().enumerate() {
                let (w, d, m) = (
                    &packed[r * nb * 16..][..nb * 16],
                    &wd[r * nb..][..nb],
                    &wm[r * nb..][..nb],
                );
                let want = portable::dot_q4(w, d, m, &xq, &xd, &xs);
                let magnitude = q4_magnitude(d, m, &xd, &xs);
                assert!(
                    (g - want).abs() <= 1e-6 * magnitude.max(1.0),
                    "{nb} blocks, row {r}: {g} vs {want}"
                );
            }
        }
    }

    /// f16 rows against f32 inputs, one input row and several, give the f32 products of the
    /// widened values, for lengths with and without a tail.
    #[test]
    fn f16_rows_give_the_products_of_their_widened_values() {
        let mut rng = Rng::new(23);
        for cols in [16, 32, 40, 96, 576] {
            let rows = 3;
            let w: Vec<f16> = (0..rows * cols)
                .map(|_| f16::from_f32(rng.next_f64() as f32 * 2.0 - 1.0))
                .collect();
            let x: Vec<f32> = (0..2 * cols).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let want = |r: usize, i: usize| -> f32 {
                (0..cols)
                    .map(|c| w[r * cols + c].to_f32() * x[i * cols + c])
                    .sum()
            };
            let mut one = vec![0.0f32; rows];
            rows_f16(isa(), cols, &w, &x[..cols], &mut one);
            for (r, g) in one.iter().enumerate() {
                assert!(
                    (g - want(r, 0)).abs() < 1e-4,
                    "{cols}: row {r} {g} vs {}",
                    want(r, 0)
                );
            }
            for r in 0..rows {
                let mut two = [0.0f32; 2];
                dots_f16(isa(), &w[r * cols..][..cols], &x, &mut two);
                for (i, g) in two.iter().enumerate() {
                    assert!((g - want(r, i)).abs() < 1e-4, "{cols}: row {r} input {i}");
                }
            }
        }
    }

    /// Decoding rows with this machine's instructions gives the portable decoding exactly.
    #[test]
    fn decoding_gives_the_portable_values() {
        let mut rng = Rng::new(17);
        let nb = 7;
        let q8 = bytes(&mut rng, nb * 32);
        let q4: Vec<u8> = bytes(&mut rng, nb * 16).iter().map(|&v| v as u8).collect();
        let d = scales(&mut rng, nb);
        let (d4, m4) = (halves(&d), halves(&scales(&mut rng, nb)));
        let (mut want8, mut want4) = (vec![0.0f32; nb * 32], vec![0.0f32; nb * 32]);
        portable::decode_q8(&q8, &d, &mut want8);
        portable::decode_q4(&q4, &d4, &m4, &mut want4);
        assert_eq!(want8[33], d[1] * f32::from(q8[33]));
        assert_eq!(
            want4[16],
            d4[0].to_f32() * f32::from(q4[0] >> 4) + m4[0].to_f32()
        );
        let (mut got8, mut got4) = (vec![0.0f32; nb * 32], vec![0.0f32; nb * 32]);
        decode_q8(isa(), &q8, &d, &mut got8);
        decode_q4(isa(), &q4, &d4, &m4, &mut got4);
        assert_eq!(got8, want8);
        for (a, b) in got4.iter().zip(&want4) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{a} vs {b}");
        }
    }

    #[test]
    fn nibbles_are_read_as_ggml_packs_them() {
        // Byte j: value j low, value j + 16 high. Weights 1 for the low values, 2 for the high.
        let packed = vec![0x21u8; 16];
        let mut xq = vec![0i16; 32];
        xq[3] = 5; // a low value: 1 × 5
        xq[20] = 7; // a high value: 2 × 7
        for i in [Isa::Portable, isa()] {
            let got = dot_q4(
                i,
                &packed,
                &[f16::ONE],
                &[f16::from_f32(0.5)],
                &xq,
                &[1.0],
                &[4.0],
            );
            assert_eq!(got, 5.0 + 14.0 + 2.0, "{i:?}");
        }
    }
}
