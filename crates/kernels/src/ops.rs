//! The float operations of a transformer step, on `f32` rows.
//!
//! Where llama.cpp rounds through f16 (its key/value cache, the inputs of
//! the attention products, its GELU table), these do the same, because
//! those roundings decide greedy choices on small models.

use std::sync::OnceLock;

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::Isa;

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs (llama.cpp's `NORM`; GGUF llama weights are permuted for it).
    Interleaved,
    /// First half with second half (llama.cpp's `NEOX`; Gemma, Qwen).
    Halves,
}

/// `out = x / rms(x) * w` for each row of `w.len()` values; the mean square
/// is summed in f64, as ggml does.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    assert_eq!(x.len(), out.len());
    for (x, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ss: f64 = x.iter().map(|&v| (v * v) as f64).sum();
        let scale = 1.0 / ((ss / d as f64) as f32 + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(x).zip(w) {
            *o = v * scale * w;
        }
    }
}

/// [`rms_norm`] in place.
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let d = w.len();
    for x in x.chunks_exact_mut(d) {
        let ss: f64 = x.iter().map(|&v| (v * v) as f64).sum();
        let scale = 1.0 / ((ss / d as f64) as f32 + eps).sqrt();
        for (v, &w) in x.iter_mut().zip(w) {
            *v = *v * scale * w;
        }
    }
}

pub fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

pub fn scale_in_place(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

/// Layer normalisation of each row of `w.len()` values: `(x - mean) /
/// sqrt(var + eps) * w + b`, in place.
pub fn layer_norm_in_place(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let d = w.len();
    for x in x.chunks_exact_mut(d) {
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / ((var as f32) + eps).sqrt();
        let mean = mean as f32;
        for ((v, &w), &b) in x.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// Adds `bias` to each row of `bias.len()` values.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// The error function, to within 1.5e-7 (Abramowitz and Stegun 7.1.26).
pub fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_4 * t - 1.453_152_1) * t) + 1.421_413_8) * t - 0.284_496_72) * t
            + 0.254_829_6)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

/// GELU with the error function (BERT's `gelu`), in place.
pub fn gelu_erf_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if Isa::detect().has_avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C.
        unsafe { x86::gelu_erf(x) };
        return;
    }
    for v in x {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Softmax attention of one query over f32 keys and values (`n ×
/// q.len()`), scores scaled by `scale`; all in f32.
pub fn attend_f32(
    isa: Isa,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let hd = q.len();
    scores.clear();
    scores.extend(keys.chunks_exact(hd).map(|k| dot(isa, q, k) * scale));
    softmax(scores);
    out.fill(0.0);
    for (&p, v) in scores.iter().zip(values.chunks_exact(hd)) {
        axpy(isa, p, v, out);
    }
}

/// Full (unmasked) softmax attention of `n` queries over the same `n`
/// keys and values, all `n × hd` in f32: `out = softmax(q·kᵀ·scale)·v`.
/// `scratch` is reused between calls.
#[allow(clippy::too_many_arguments)]
pub fn attention_f32(
    isa: Isa,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    hd: usize,
    scale: f32,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let n = q.len() / hd;
    assert!(k.len() == n * hd && v.len() == n * hd && out.len() == n * hd);
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx2() && hd.is_multiple_of(8) {
        // kᵀ, padded to whole vectors of eight keys, then one row of scores.
        let np = n.div_ceil(8) * 8;
        scratch.clear();
        scratch.resize(hd * np + np, 0.0);
        let (kt, row) = scratch.split_at_mut(hd * np);
        for (j, key) in k.chunks_exact(hd).enumerate() {
            for (d, &x) in key.iter().enumerate() {
                kt[d * np + j] = x;
            }
        }
        for i in 0..n {
            // SAFETY: `has_avx2` is only true when the CPU has AVX2, FMA and F16C.
            unsafe {
                x86::scores_t(&q[i * hd..(i + 1) * hd], kt, np, scale, row);
                x86::softmax_f32(&mut row[..n]);
                x86::weigh_f32(&row[..n], v, &mut out[i * hd..(i + 1) * hd]);
            }
        }
        return;
    }
    for i in 0..n {
        attend_f32(
            isa,
            &q[i * hd..(i + 1) * hd],
            k,
            v,
            scale,
            scratch,
            &mut out[i * hd..(i + 1) * hd],
        );
    }
}

/// Rounds each value to f16 and back.
pub fn round_f16(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if Isa::detect().has_avx2() {
        // SAFETY: the AVX2 instruction sets are only chosen when the CPU has AVX2, FMA and F16C.
        unsafe { x86::round_f16(x) };
        return;
    }
    for v in x {
        *v = f16::from_f32(*v).to_f32();
    }
}

/// `gate = silu(gate) * up`. With AVX2, eight at a time on the vector
/// `e^x` of the softmax (scalar `expf` and a division per value took 4% of
/// a decoding step, with the other threads waiting).
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if Isa::detect().has_avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C.
        unsafe { x86::silu_mul(gate, up) };
        return;
    }
    silu_mul_scalar(gate, up);
}

fn silu_mul_scalar(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// GELU (tanh) as ggml computes it on the CPU: a table indexed by the f16
/// value of the input and holding f16 results, with the tails cut at ±10.
fn gelu_table() -> &'static [f16] {
    static TABLE: OnceLock<Vec<f16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = f16::from_bits(bits).to_f32();
                let g = 0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044_715 * x * x)).tanh());
                f16::from_f32(g)
            })
            .collect()
    })
}

/// GELU of one value, as [`gelu_mul`] computes it.
pub fn gelu(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        gelu_table()[f16::from_f32(x).to_bits() as usize].to_f32()
    }
}

/// `gate = gelu(gate) * up`.
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        let y = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x
        } else {
            table[f16::from_f32(x).to_bits() as usize].to_f32()
        };
        *g = y * u;
    }
}

/// cos and sin of every position up to `positions` for one head size and
/// rotary base: `positions × head_dim/2` each.
pub fn rope_tables(
    head_dim: usize,
    base: f32,
    scale: f32,
    positions: usize,
) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let theta: Vec<f32> = (0..half)
        .map(|i| base.powf(-2.0 * i as f32 / head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(positions * half);
    let mut sin = Vec::with_capacity(positions * half);
    for p in 0..positions {
        for &t in &theta {
            let angle = p as f32 * scale * t;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

/// Rotates every head of `x` (`heads × head_dim`) by one position's angles
/// (`cos`, `sin`: `head_dim/2` each).
pub fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], layout: RopeLayout) {
    let half = head_dim / 2;
    for h in x.chunks_exact_mut(head_dim) {
        match layout {
            RopeLayout::Interleaved => {
                for i in 0..half {
                    let (a, b) = (h[2 * i], h[2 * i + 1]);
                    h[2 * i] = a * cos[i] - b * sin[i];
                    h[2 * i + 1] = a * sin[i] + b * cos[i];
                }
            }
            RopeLayout::Halves => {
                for i in 0..half {
                    let (a, b) = (h[i], h[i + half]);
                    h[i] = a * cos[i] - b * sin[i];
                    h[i + half] = a * sin[i] + b * cos[i];
                }
            }
        }
    }
}

/// Softmax in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Converts f16 values to f32.
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    src.convert_to_f32_slice(dst);
}

/// Converts f32 values to f16 (round to nearest even).
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    dst.convert_from_f32_slice(src);
}

/// `Σ a·b`.
pub fn dot(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the AVX2 instruction sets are only chosen when the CPU has AVX2 and FMA.
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => unsafe { x86::dot(a, b) },
        _ => {
            let mut acc = [0f32; 8];
            let mut ca = a.chunks_exact(8);
            let mut cb = b.chunks_exact(8);
            for (x, y) in (&mut ca).zip(&mut cb) {
                for k in 0..8 {
                    acc[k] += x[k] * y[k];
                }
            }
            let mut s: f32 = acc.iter().sum();
            for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
                s += x * y;
            }
            s
        }
    }
}

/// `y += alpha · x`.
pub fn axpy(isa: Isa, alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => unsafe { x86::axpy(alpha, x, y) },
        _ => {
            for (y, &x) in y.iter_mut().zip(x) {
                *y += alpha * x;
            }
        }
    }
}

/// One query head against the keys and values it may see, as llama.cpp's
/// attention computes it: `q` and the keys f16-rounded, scores softmaxed in
/// f32, the probabilities rounded to f16 before they weight the values.
/// `keys` and `values` are `n × head_dim` (straight from an f16 cache);
/// `scores` has room for `n`.
pub fn attend(
    isa: Isa,
    q: &[f32],
    keys: &[f16],
    values: &[f16],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = q.len();
    let n = keys.len() / hd;
    let scores = &mut scores[..n];
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the AVX2 instruction sets are only chosen when the CPU has AVX2, FMA and F16C.
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni if hd.is_multiple_of(8) => unsafe {
            x86::scores_f16(q, keys, scores)
        },
        _ => {
            let mut k = vec![0f32; hd];
            for (s, row) in scores.iter_mut().zip(keys.chunks_exact(hd)) {
                row.convert_to_f32_slice(&mut k);
                *s = dot(Isa::Portable, q, &k);
            }
        }
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => unsafe { x86::softmax_f16(scores) },
        _ => {
            softmax(scores);
            round_f16(scores);
        }
    }
    out.fill(0.0);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni if hd.is_multiple_of(8) => unsafe {
            x86::weigh_f16(scores, values, out)
        },
        _ => {
            let mut v = vec![0f32; hd];
            for (&p, row) in scores.iter().zip(values.chunks_exact(hd)) {
                row.convert_to_f32_slice(&mut v);
                axpy(Isa::Portable, p, &v, out);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
// Lanes and accumulators are indexed together, as in the kernels.
#[allow(clippy::needless_range_loop)]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// `e^x` for eight lanes: `x = n·ln2 + r` with |r| ≤ ln2/2, `e^r` by its
    /// Taylor polynomial to degree 6 (relative error below 2e-7), scaled by
    /// 2^n through the exponent bits. Inputs below -87 give e^-87 (the
    /// smallest normal range); softmax inputs are ≤ 0 after the shift by
    /// the maximum.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn exp8(x: __m256) -> __m256 {
        let x = _mm256_max_ps(
            _mm256_min_ps(x, _mm256_set1_ps(88.0)),
            _mm256_set1_ps(-87.0),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        // ln 2 in two parts, so that n·ln2 is subtracted exactly.
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm256_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let scale = _mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
            23,
        );
        _mm256_mul_ps(p, _mm256_castsi256_ps(scale))
    }

    /// [`super::silu_mul`]: `g / (1 + e^-g) · u`, the last `len % 8`
    /// values as the portable code does them.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
        let n = gate.len().min(up.len());
        let one = _mm256_set1_ps(1.0);
        let mut i = 0;
        while i + 8 <= n {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
            let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(s, u));
            i += 8;
        }
        super::silu_mul_scalar(&mut gate[i..n], &up[i..n]);
    }

    /// `row[j] = scale · q · kᵀ[:, j]` for every key `j` (kᵀ is `hd × np`,
    /// `np` a multiple of 8). Sixteen keys at a time when it can, with four
    /// partial sums each, so that the additions overlap.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores_t(q: &[f32], kt: &[f32], np: usize, scale: f32, row: &mut [f32]) {
        let hd = q.len();
        assert!(kt.len() >= hd * np && row.len() >= np);
        let s = _mm256_set1_ps(scale);
        let k = kt.as_ptr();
        let mut j = 0;
        while j + 16 <= np {
            let mut a = [_mm256_setzero_ps(); 8];
            let mut d = 0;
            while d + 4 <= hd {
                for c in 0..4 {
                    let qd = _mm256_set1_ps(*q.get_unchecked(d + c));
                    let at = (d + c) * np + j;
                    a[c] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k.add(at)), a[c]);
                    a[4 + c] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k.add(at + 8)), a[4 + c]);
                }
                d += 4;
            }
            while d < hd {
                let qd = _mm256_set1_ps(*q.get_unchecked(d));
                a[0] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k.add(d * np + j)), a[0]);
                a[4] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k.add(d * np + j + 8)), a[4]);
                d += 1;
            }
            let lo = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
            let hi = _mm256_add_ps(_mm256_add_ps(a[4], a[5]), _mm256_add_ps(a[6], a[7]));
            _mm256_storeu_ps(row.as_mut_ptr().add(j), _mm256_mul_ps(lo, s));
            _mm256_storeu_ps(row.as_mut_ptr().add(j + 8), _mm256_mul_ps(hi, s));
            j += 16;
        }
        while j < np {
            let mut a = [_mm256_setzero_ps(); 4];
            let mut d = 0;
            while d + 4 <= hd {
                for c in 0..4 {
                    let qd = _mm256_set1_ps(*q.get_unchecked(d + c));
                    a[c] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k.add((d + c) * np + j)), a[c]);
                }
                d += 4;
            }
            while d < hd {
                let qd = _mm256_set1_ps(*q.get_unchecked(d));
                a[0] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k.add(d * np + j)), a[0]);
                d += 1;
            }
            let sum = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
            _mm256_storeu_ps(row.as_mut_ptr().add(j), _mm256_mul_ps(sum, s));
            j += 8;
        }
    }

    /// `x[i] = e^(x[i] - max x)`; returns their sum (lanes added in f64).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn exp_shifted(x: &mut [f32]) -> f64 {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i + 8 <= n {
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p.add(i)));
            i += 8;
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
        let mut max = f32::NEG_INFINITY;
        for v in lanes.iter().chain(&x[i..]) {
            max = max.max(*v);
        }
        let vm = _mm256_set1_ps(max);
        let mut vsum = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), vm));
            _mm256_storeu_ps(p.add(i), e);
            vsum = _mm256_add_ps(vsum, e);
            i += 8;
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), vsum);
        let mut sum: f64 = lanes.iter().map(|&v| v as f64).sum();
        for v in &mut x[i..] {
            *v = (*v - max).exp();
            sum += *v as f64;
        }
        sum
    }

    /// Softmax in place, in f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn softmax_f32(x: &mut [f32]) {
        let sum = exp_shifted(x) as f32;
        let n = x.len();
        let p = x.as_mut_ptr();
        let inv = _mm256_set1_ps(1.0 / sum);
        let mut i = 0;
        while i + 8 <= n {
            _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), inv));
            i += 8;
        }
        for v in &mut x[i..] {
            *v /= sum;
        }
    }

    /// `out = Σ p[j] · values[j]` (values `n × out.len()` in f32; `out.len()`
    /// a multiple of 8), up to 32 lanes per pass, even and odd positions
    /// summed apart so that the additions overlap.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weigh_f32(p: &[f32], values: &[f32], out: &mut [f32]) {
        let hd = out.len();
        let n = p.len();
        assert!(values.len() >= n * hd);
        let mut i = 0;
        while i < hd {
            let lanes = ((hd - i) / 8).min(4);
            let mut even = [_mm256_setzero_ps(); 4];
            let mut odd = [_mm256_setzero_ps(); 4];
            let mut j = 0;
            while j + 2 <= n {
                let (w0, w1) = (
                    _mm256_set1_ps(*p.get_unchecked(j)),
                    _mm256_set1_ps(*p.get_unchecked(j + 1)),
                );
                let r0 = values.as_ptr().add(j * hd + i);
                let r1 = r0.add(hd);
                for c in 0..lanes {
                    even[c] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(r0.add(8 * c)), even[c]);
                    odd[c] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(r1.add(8 * c)), odd[c]);
                }
                j += 2;
            }
            if j < n {
                let w0 = _mm256_set1_ps(*p.get_unchecked(j));
                let r0 = values.as_ptr().add(j * hd + i);
                for c in 0..lanes {
                    even[c] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(r0.add(8 * c)), even[c]);
                }
            }
            for c in 0..lanes {
                _mm256_storeu_ps(
                    out.as_mut_ptr().add(i + 8 * c),
                    _mm256_add_ps(even[c], odd[c]),
                );
            }
            i += 8 * lanes;
        }
    }

    /// [`super::gelu_erf_in_place`], eight lanes at a time (the same
    /// Abramowitz–Stegun erf, with the vector exponential).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn gelu_erf(x: &mut [f32]) {
        let mut c = x.chunks_exact_mut(8);
        let sign = _mm256_set1_ps(-0.0);
        let one = _mm256_set1_ps(1.0);
        for v in &mut c {
            let xv = _mm256_loadu_ps(v.as_ptr());
            let z = _mm256_mul_ps(xv, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
            let az = _mm256_andnot_ps(sign, z);
            let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.327_591_1), az, one));
            let mut poly = _mm256_set1_ps(1.061_405_4);
            for coef in [-1.453_152_1f32, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
                poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(coef));
            }
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z)));
            let y = _mm256_sub_ps(one, _mm256_mul_ps(_mm256_mul_ps(poly, t), e));
            // erf(z) carries z's sign.
            let erf = _mm256_or_ps(y, _mm256_and_ps(sign, z));
            let g = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_set1_ps(0.5), xv),
                _mm256_add_ps(one, erf),
            );
            _mm256_storeu_ps(v.as_mut_ptr(), g);
        }
        for v in c.into_remainder() {
            *v = 0.5 * *v * (1.0 + super::erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }

    /// Softmax in place, then each probability rounded to f16.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn softmax_f16(x: &mut [f32]) {
        let sum = exp_shifted(x);
        let n = x.len();
        let p = x.as_mut_ptr();
        let inv = (1.0 / sum) as f32;
        let vinv = _mm256_set1_ps(inv);
        let mut i = 0;
        while i + 8 <= n {
            let y = _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vinv);
            let y = _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(y));
            _mm256_storeu_ps(p.add(i), y);
            i += 8;
        }
        for v in &mut x[i..] {
            *v = f16::from_f32(*v * inv).to_f32();
        }
    }

    /// Rounds each value to f16 and back.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn round_f16(x: &mut [f32]) {
        let mut c = x.chunks_exact_mut(8);
        for v in &mut c {
            let y = _mm256_loadu_ps(v.as_ptr());
            let y = _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(y));
            _mm256_storeu_ps(v.as_mut_ptr(), y);
        }
        for v in c.into_remainder() {
            *v = f16::from_f32(*v).to_f32();
        }
    }

    /// `e^x` for each value (for tests).
    #[cfg(test)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn exp_all(x: &[f32]) -> Vec<f32> {
        x.chunks(8)
            .flat_map(|c| {
                let mut l = [0f32; 8];
                l[..c.len()].copy_from_slice(c);
                let mut o = [0f32; 8];
                _mm256_storeu_ps(o.as_mut_ptr(), exp8(_mm256_loadu_ps(l.as_ptr())));
                o[..c.len()].to_vec()
            })
            .collect()
    }

    /// `scores[j] = q · keys[j]`, keys in f16; `q.len()` a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores_f16(q: &[f32], keys: &[f16], scores: &mut [f32]) {
        let hd = q.len();
        assert!(keys.len() >= scores.len() * hd);
        for (j, s) in scores.iter_mut().enumerate() {
            let k = keys.as_ptr().add(j * hd) as *const __m128i;
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut i = 0;
            while i + 16 <= hd {
                let k0 = _mm256_cvtph_ps(_mm_loadu_si128(k.add(i / 8)));
                let k1 = _mm256_cvtph_ps(_mm_loadu_si128(k.add(i / 8 + 1)));
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), k0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i + 8)), k1, acc1);
                i += 16;
            }
            if i < hd {
                let k0 = _mm256_cvtph_ps(_mm_loadu_si128(k.add(i / 8)));
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), k0, acc0);
            }
            let v = _mm256_add_ps(acc0, acc1);
            let t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let t = _mm_add_ps(t, _mm_movehl_ps(t, t));
            let t = _mm_add_ss(t, _mm_movehdup_ps(t));
            *s = _mm_cvtss_f32(t);
        }
    }

    /// `out += Σ p[j] · values[j]`, values in f16; `out.len()` a multiple of 8.
    /// Up to 64 output lanes at a time in registers, each pass reading every
    /// value row once, front to back.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weigh_f16(p: &[f32], values: &[f16], out: &mut [f32]) {
        let hd = out.len();
        assert!(values.len() >= p.len() * hd);
        let o = out.as_mut_ptr();
        let v0 = values.as_ptr() as *const u16;
        let mut i = 0;
        while i + 64 <= hd {
            let mut acc: [__m256; 8] = std::array::from_fn(|c| _mm256_loadu_ps(o.add(i + 8 * c)));
            for (j, &pj) in p.iter().enumerate() {
                let w = _mm256_set1_ps(pj);
                let row = v0.add(j * hd + i);
                for (c, a) in acc.iter_mut().enumerate() {
                    let v = _mm256_cvtph_ps(_mm_loadu_si128(row.add(8 * c) as *const __m128i));
                    *a = _mm256_fmadd_ps(w, v, *a);
                }
            }
            for (c, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o.add(i + 8 * c), *a);
            }
            i += 64;
        }
        while i < hd {
            let mut acc = _mm256_loadu_ps(o.add(i));
            for (j, &pj) in p.iter().enumerate() {
                let v = _mm256_cvtph_ps(_mm_loadu_si128(v0.add(j * hd + i) as *const __m128i));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(pj), v, acc);
            }
            _mm256_storeu_ps(o.add(i), acc);
            i += 8;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let v = _mm256_add_ps(acc0, acc1);
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        let mut sum = _mm_cvtss_f32(s);
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let a = _mm256_set1_ps(alpha);
        let mut i = 0;
        while i + 8 <= n {
            let p = y.as_mut_ptr().add(i);
            _mm256_storeu_ps(
                p,
                _mm256_fmadd_ps(a, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(p)),
            );
            i += 8;
        }
        while i < n {
            y[i] += alpha * x[i];
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_kernels_agree_across_isas() {
        let a: Vec<f32> = (0..77)
            .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
            .collect();
        let b: Vec<f32> = (0..77)
            .map(|i| ((i * 11) % 19) as f32 / 5.0 - 1.8)
            .collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        for isa in Isa::available() {
            assert!((dot(isa, &a, &b) as f64 - want).abs() < 1e-4, "{isa:?}");
            let mut y = b.clone();
            axpy(isa, 0.5, &a, &mut y);
            for i in 0..77 {
                assert!((y[i] - (b[i] + 0.5 * a[i])).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn attention_weights_values_by_softmaxed_scores() {
        // 72: the AVX2 paths' 64-, 16- and 8-wide loops.
        let hd = 72;
        let q = vec![1.0f32 / 9.0; hd];
        // Key 1 matches the query far better than key 0 (scores 0 and 8).
        let keys: Vec<f16> = (0..2 * hd)
            .map(|i| f16::from_f32(if i < hd { 0.0 } else { 1.0 }))
            .collect();
        let values: Vec<f16> = (0..2 * hd)
            .map(|i| f16::from_f32(if i < hd { -1.0 } else { 2.0 }))
            .collect();
        for isa in Isa::available() {
            let mut scores = vec![0f32; 2];
            let mut out = vec![0f32; hd];
            attend(isa, &q, &keys, &values, &mut scores, &mut out);
            let p1 = 1.0 / (1.0 + (-8.0f32).exp());
            let p1 = f16::from_f32(p1).to_f32();
            let p0 = f16::from_f32(1.0 - 1.0 / (1.0 + (-8.0f32).exp())).to_f32();
            for &o in &out {
                assert!((o - (2.0 * p1 - p0)).abs() < 1e-5, "{o}");
            }
        }
    }

    #[test]
    fn silu_mul_agrees_with_the_scalar_formula() {
        // 203 values: the 8-wide loop and a tail; from far below to far
        // above the exponential's range.
        let gate: Vec<f32> = (0..203).map(|i| -101.0 + i as f32 * 0.997).collect();
        let up: Vec<f32> = (0..203).map(|i| ((i * 13) % 7) as f32 - 3.1).collect();
        let mut want = gate.clone();
        silu_mul_scalar(&mut want, &up);
        let mut got = gate.clone();
        silu_mul(&mut got, &up);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{i}: silu({}) · {} = {g}, want {w}",
                gate[i],
                up[i]
            );
        }
    }

    #[test]
    fn vector_exp_and_softmax_agree_with_the_scalar_ones() {
        #[cfg(target_arch = "x86_64")]
        if Isa::detect().has_avx2() {
            let x: Vec<f32> = (0..400).map(|i| -90.0 + i as f32 * 0.2371).collect();
            let got = unsafe { x86::exp_all(&x) };
            for (&x, &g) in x.iter().zip(&got) {
                let want = x.max(-87.0).exp();
                assert!((g - want).abs() <= 4e-7 * want, "e^{x}: {g} vs {want}");
            }
            let mut a: Vec<f32> = (0..45).map(|i| ((i * 7) % 13) as f32 * 0.9 - 6.0).collect();
            let mut b = a.clone();
            softmax(&mut a);
            round_f16(&mut a);
            unsafe { x86::softmax_f16(&mut b) };
            for (x, y) in a.iter().zip(&b) {
                // At most one f16 step apart.
                assert!((x - y).abs() <= x.abs() / 1024.0, "{x} vs {y}");
            }
            let total: f32 = b.iter().sum();
            assert!((total - 1.0).abs() < 1e-2);
        }
    }

    #[test]
    fn whole_sequence_attention_agrees_with_one_query_at_a_time() {
        let (n, hd) = (13, 32);
        let q: Vec<f32> = (0..n * hd)
            .map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5)
            .collect();
        let k: Vec<f32> = (0..n * hd)
            .map(|i| ((i * 5) % 13) as f32 / 13.0 - 0.5)
            .collect();
        let v: Vec<f32> = (0..n * hd).map(|i| ((i * 3) % 17) as f32 / 17.0).collect();
        let mut want = vec![0f32; n * hd];
        let mut scores = Vec::new();
        for i in 0..n {
            attend_f32(
                Isa::Portable,
                &q[i * hd..(i + 1) * hd],
                &k,
                &v,
                0.3,
                &mut scores,
                &mut want[i * hd..(i + 1) * hd],
            );
        }
        for isa in Isa::available() {
            let mut got = vec![0f32; n * hd];
            attention_f32(isa, &q, &k, &v, hd, 0.3, &mut Vec::new(), &mut got);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{isa:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn vector_gelu_agrees_with_the_scalar_one() {
        let x: Vec<f32> = (0..203).map(|i| i as f32 * 0.07 - 7.0).collect();
        let mut a = x.clone();
        gelu_erf_in_place(&mut a);
        for (&x, &g) in x.iter().zip(&a) {
            let want = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            assert!(
                (g - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{x}: {g} vs {want}"
            );
        }
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
            (3.5, 0.999_999_3),
        ] {
            assert!(
                (erf(x) - want).abs() < 3e-7,
                "erf({x}) = {} vs {want}",
                erf(x)
            );
        }
    }

    #[test]
    fn layer_norm_centres_and_scales() {
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0];
        layer_norm_in_place(&mut x, &[1.0; 4], &[0.5; 4], 0.0);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
        assert!((mean - 0.5).abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }

    #[test]
    fn rotary_halves_and_pairs_rotate_the_same_angles() {
        let (cos, sin) = rope_tables(4, 10000.0, 1.0, 3);
        let mut a = vec![1.0, 0.0, 1.0, 0.0];
        rope(&mut a, 4, &cos[4..6], &sin[4..6], RopeLayout::Interleaved);
        let mut b = vec![1.0, 1.0, 0.0, 0.0];
        rope(&mut b, 4, &cos[4..6], &sin[4..6], RopeLayout::Halves);
        assert!((a[0] - b[0]).abs() < 1e-7 && (a[1] - b[2]).abs() < 1e-7);
        assert!((a[0] - 2f32.cos()).abs() < 1e-6 && (a[1] - 2f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn gelu_follows_the_tanh_formula_within_f16_rounding() {
        for x in [-12.0f32, -3.0, -0.5, 0.0, 0.3, 1.0, 4.0, 11.0] {
            let want = 0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044_715 * x * x)).tanh());
            assert!((gelu(x) - want).abs() <= 2e-3 * (1.0 + want.abs()), "{x}");
        }
    }
}
