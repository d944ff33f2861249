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

/// Rounds each value to f16 and back.
pub fn round_f16(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if Isa::detect().has_avx2() {
        // SAFETY: `Isa::Avx2` and `Isa::AvxVnni` are only chosen when the CPU has AVX2, FMA and F16C.
        unsafe { x86::round_f16(x) };
        return;
    }
    for v in x {
        *v = f16::from_f32(*v).to_f32();
    }
}

/// `gate = silu(gate) * up`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
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
        // SAFETY: `Isa::Avx2` and `Isa::AvxVnni` are only chosen when the CPU has AVX2 and FMA.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::dot(a, b) },
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
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::axpy(alpha, x, y) },
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
        // SAFETY: `Isa::Avx2` and `Isa::AvxVnni` are only chosen when the CPU has AVX2, FMA and F16C.
        Isa::Avx2 | Isa::AvxVnni if hd.is_multiple_of(8) => unsafe {
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
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::softmax_f16(scores) },
        _ => {
            softmax(scores);
            round_f16(scores);
        }
    }
    out.fill(0.0);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni if hd.is_multiple_of(8) => unsafe {
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

    /// Softmax in place, then each probability rounded to f16.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn softmax_f16(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mut max = f32::NEG_INFINITY;
        let mut i = 0;
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        while i + 8 <= n {
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p.add(i)));
            i += 8;
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
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
