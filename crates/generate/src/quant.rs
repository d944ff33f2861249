//! Matrix products over GGUF quantised weights, computed the way llama.cpp
//! computes them on x86: each activation row is quantised to 8 bits per
//! block (`Q8_0`, `Q8_1` or `Q8_K`, whichever the weight format pairs with),
//! rounding to nearest-even, and every block's dot product is an exact
//! integer sum scaled by the two blocks' factors.
//!
//! Quantising the activations is not a detail: on these small models it
//! moves logits by tenths, enough to change a greedy choice, so a float
//! reference would not agree with llama.cpp token for token. Only the order
//! in which block results are added differs from llama.cpp's SIMD code.
//!
//! The layouts are those of the GGUF format (ggml's `block_*` structs).

use half::f16;
use rayon::prelude::*;

use candle_core::quantized::{GgmlDType, QTensor};

use crate::GenerateError;

const QK: usize = 32;
const QK_K: usize = 256;

/// Weight formats docent can multiply by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Format {
    fn from_ggml(t: GgmlDType) -> Option<Self> {
        Some(match t {
            GgmlDType::F32 => Self::F32,
            GgmlDType::F16 => Self::F16,
            GgmlDType::Q4_0 => Self::Q4_0,
            GgmlDType::Q4_1 => Self::Q4_1,
            GgmlDType::Q5_0 => Self::Q5_0,
            GgmlDType::Q5_1 => Self::Q5_1,
            GgmlDType::Q8_0 => Self::Q8_0,
            GgmlDType::Q4K => Self::Q4K,
            GgmlDType::Q5K => Self::Q5K,
            GgmlDType::Q6K => Self::Q6K,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block)
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (QK, 18),
            Self::Q4_1 => (QK, 20),
            Self::Q5_0 => (QK, 22),
            Self::Q5_1 => (QK, 24),
            Self::Q8_0 => (QK, 34),
            Self::Q4K => (QK_K, 144),
            Self::Q5K => (QK_K, 176),
            Self::Q6K => (QK_K, 210),
        }
    }

    fn activation(self) -> ActKind {
        match self {
            Self::F32 => ActKind::F32,
            Self::F16 => ActKind::F16,
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 => ActKind::Q8_0,
            Self::Q4_1 | Self::Q5_1 => ActKind::Q8_1,
            Self::Q4K | Self::Q5K | Self::Q6K => ActKind::Q8K,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActKind {
    F32,
    F16,
    Q8_0,
    Q8_1,
    Q8K,
}

/// One activation row in the form its weight format multiplies with.
struct Act {
    /// f32 (or f16-rounded) values, for float weights.
    f: Vec<f32>,
    qs: Vec<i8>,
    /// Per block: the scale.
    d: Vec<f32>,
    /// Per block: `d * Σq` (Q8_1) — or per 16 values: `Σq` (Q8_K).
    s: Vec<f32>,
    bsums: Vec<i32>,
}

fn f16r(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Round half to even, as `_mm256_round_ps(_MM_ROUND_NEAREST)` does.
fn rne(x: f32) -> i32 {
    x.round_ties_even() as i32
}

fn quantize(x: &[f32], kind: ActKind) -> Act {
    let mut a = Act {
        f: Vec::new(),
        qs: Vec::new(),
        d: Vec::new(),
        s: Vec::new(),
        bsums: Vec::new(),
    };
    match kind {
        ActKind::F32 => a.f = x.to_vec(),
        ActKind::F16 => a.f = x.iter().map(|&v| f16r(v)).collect(),
        ActKind::Q8_0 | ActKind::Q8_1 => {
            a.qs.reserve(x.len());
            for b in x.chunks_exact(QK) {
                let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                let mut sum = 0i32;
                for &v in b {
                    let q = rne(v * id);
                    sum += q;
                    a.qs.push(q as i8);
                }
                a.d.push(f16r(d));
                if kind == ActKind::Q8_1 {
                    a.s.push(f16r(d * sum as f32));
                }
            }
        }
        ActKind::Q8K => {
            a.qs.reserve(x.len());
            for b in x.chunks_exact(QK_K) {
                let (mut amax, mut max) = (0f32, 0f32);
                for &v in b {
                    if v.abs() > amax {
                        amax = v.abs();
                        max = v;
                    }
                }
                if amax == 0.0 {
                    a.d.push(0.0);
                    a.qs.extend(std::iter::repeat_n(0i8, QK_K));
                    a.bsums.extend(std::iter::repeat_n(0, QK_K / 16));
                    continue;
                }
                let iscale = -127.0 / max;
                for g in b.chunks_exact(16) {
                    let mut sum = 0i32;
                    for &v in g {
                        let q = rne(iscale * v).min(127);
                        sum += q;
                        a.qs.push(q as i8);
                    }
                    a.bsums.push(sum);
                }
                a.d.push(1.0 / iscale);
            }
        }
    }
    a
}

#[inline(always)]
fn rd_f16(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

#[cfg(test)]
fn isum(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// The dot product of one weight row with one quantised activation row,
/// block by block: the reference the unpacked path is tested against.
#[cfg(test)]
fn dot(fmt: Format, w: &[u8], a: &Act) -> f32 {
    let mut sum = 0f32;
    match fmt {
        Format::F32 => {
            for (c, x) in w.chunks_exact(4).zip(&a.f) {
                sum += f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * x;
            }
        }
        Format::F16 => {
            for (c, x) in w.chunks_exact(2).zip(&a.f) {
                sum += f16::from_le_bytes([c[0], c[1]]).to_f32() * x;
            }
        }
        Format::Q8_0 => {
            for (i, blk) in w.chunks_exact(34).enumerate() {
                let qs: &[i8] = bytemuck_i8(&blk[2..34]);
                let s = isum(qs, &a.qs[i * QK..(i + 1) * QK]);
                sum += s as f32 * (rd_f16(blk, 0) * a.d[i]);
            }
        }
        Format::Q4_0 | Format::Q4_1 | Format::Q5_0 | Format::Q5_1 => {
            let (_, bytes) = fmt.block();
            let mut q = [0i8; QK];
            for (i, blk) in w.chunks_exact(bytes).enumerate() {
                let d = rd_f16(blk, 0);
                let (m, qh, qs) = match fmt {
                    Format::Q4_0 => (0.0, 0u32, &blk[2..18]),
                    Format::Q4_1 => (rd_f16(blk, 2), 0, &blk[4..20]),
                    Format::Q5_0 => (
                        0.0,
                        u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]),
                        &blk[6..22],
                    ),
                    _ => (
                        rd_f16(blk, 2),
                        u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]),
                        &blk[8..24],
                    ),
                };
                let offset: i32 = match fmt {
                    Format::Q4_0 => 8,
                    Format::Q5_0 => 16,
                    _ => 0,
                };
                let five = matches!(fmt, Format::Q5_0 | Format::Q5_1);
                for j in 0..16 {
                    let (mut lo, mut hi) = ((qs[j] & 0x0F) as i32, (qs[j] >> 4) as i32);
                    if five {
                        lo |= (((qh >> j) << 4) & 0x10) as i32;
                        hi |= ((qh >> (j + 12)) & 0x10) as i32;
                    }
                    q[j] = (lo - offset) as i8;
                    q[j + 16] = (hi - offset) as i8;
                }
                let s = isum(&q, &a.qs[i * QK..(i + 1) * QK]);
                match fmt {
                    Format::Q4_1 | Format::Q5_1 => sum += (d * a.d[i]) * s as f32 + m * a.s[i],
                    _ => sum += s as f32 * (d * a.d[i]),
                }
            }
        }
        Format::Q4K | Format::Q5K => {
            let bytes = fmt.block().1;
            let mut q = [0i8; QK_K];
            for (i, blk) in w.chunks_exact(bytes).enumerate() {
                let d = rd_f16(blk, 0) * a.d[i];
                let dmin = rd_f16(blk, 2) * a.d[i];
                let (sc, mn) = k_scales(&blk[4..16]);
                let (qh, qs) = if fmt == Format::Q5K {
                    (Some(&blk[16..48]), &blk[48..176])
                } else {
                    (None, &blk[16..144])
                };
                for j in 0..QK_K / 64 {
                    for l in 0..32 {
                        let byte = qs[j * 32 + l];
                        let (mut lo, mut hi) = ((byte & 0x0F) as i32, (byte >> 4) as i32);
                        if let Some(qh) = qh {
                            lo += (((qh[l] >> (2 * j)) & 1) as i32) << 4;
                            hi += (((qh[l] >> (2 * j + 1)) & 1) as i32) << 4;
                        }
                        q[j * 64 + l] = lo as i8;
                        q[j * 64 + 32 + l] = hi as i8;
                    }
                }
                let bs = &a.bsums[i * 16..(i + 1) * 16];
                let mut mins = 0i32;
                for (j, b) in bs.iter().enumerate() {
                    mins += b * mn[j / 2] as i32;
                }
                let aq = &a.qs[i * QK_K..(i + 1) * QK_K];
                let mut acc = 0i32;
                for j in 0..8 {
                    acc += sc[j] as i32 * isum(&q[j * 32..(j + 1) * 32], &aq[j * 32..(j + 1) * 32]);
                }
                sum += d * acc as f32 - dmin * mins as f32;
            }
        }
        Format::Q6K => {
            let mut q = [0i8; QK_K];
            for (i, blk) in w.chunks_exact(210).enumerate() {
                let ql = &blk[0..128];
                let qh = &blk[128..192];
                let scales: &[i8] = bytemuck_i8(&blk[192..208]);
                let d = rd_f16(blk, 208) * a.d[i];
                for n in 0..2 {
                    let (ql, qh) = (&ql[n * 64..], &qh[n * 32..]);
                    let out = &mut q[n * 128..];
                    for l in 0..32 {
                        out[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                        out[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                        out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                        out[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                    }
                }
                let aq = &a.qs[i * QK_K..(i + 1) * QK_K];
                let mut acc = 0i32;
                for j in 0..16 {
                    acc += scales[j] as i32
                        * isum(&q[j * 16..(j + 1) * 16], &aq[j * 16..(j + 1) * 16]);
                }
                sum += d * acc as f32;
            }
        }
    }
    sum
}

/// The eight 6-bit scales and eight 6-bit mins packed in 12 bytes (Q4_K, Q5_K).
#[inline(always)]
fn k_scales(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
            mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    (sc, mn)
}

#[inline(always)]
fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size, alignment and validity.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i8, b.len()) }
}

/// A weight matrix of `rows` outputs by `cols` inputs, kept in its GGUF
/// encoding.
pub struct QMatrix {
    fmt: Format,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl QMatrix {
    pub fn from_qtensor(name: &str, q: &QTensor) -> Result<Self, GenerateError> {
        let fmt = Format::from_ggml(q.dtype()).ok_or_else(|| {
            GenerateError::Config(format!(
                "tensor {name} is stored as {:?}, a format docent cannot multiply yet",
                q.dtype()
            ))
        })?;
        let (rows, cols) = q.shape().dims2()?;
        let (per, bytes) = fmt.block();
        if !cols.is_multiple_of(per) {
            return Err(GenerateError::Config(format!(
                "tensor {name}: rows of {cols} are not whole {fmt:?} blocks"
            )));
        }
        let data = q.data()?.into_owned();
        let row_bytes = cols / per * bytes;
        if data.len() != rows * row_bytes {
            return Err(GenerateError::Config(format!(
                "tensor {name}: wrong data size"
            )));
        }
        Ok(Self {
            fmt,
            rows,
            cols,
            row_bytes,
            data,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `x` holds `n` rows of `cols` values; returns `n` rows of `rows` values.
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        assert_eq!(x.len(), n * self.cols, "matmul input size");
        let kind = self.fmt.activation();
        let acts: Vec<Act> = x
            .chunks_exact(self.cols)
            .map(|r| quantize(r, kind))
            .collect();
        let mut out_t = vec![0f32; self.rows * n];
        // Each task takes a run of weight rows and every activation row: a
        // weight row is unpacked once and multiplied by all of them.
        let rows_per_task = (self.rows / (rayon::current_num_threads() * 8)).max(16);
        let avx2 = has_avx2();
        out_t
            .par_chunks_mut(rows_per_task * n)
            .enumerate()
            .for_each(|(t, chunk)| {
                let mut u = Unpacked::default();
                for (k, o) in chunk.chunks_mut(n).enumerate() {
                    let r = t * rows_per_task + k;
                    let w = &self.data[r * self.row_bytes..(r + 1) * self.row_bytes];
                    if avx2 {
                        // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            row_avx2(self.fmt, w, &acts, &mut u, o)
                        }
                    } else {
                        row_portable(self.fmt, w, &acts, &mut u, o);
                    }
                }
            });
        // Transpose to n × rows.
        let mut out = vec![0f32; n * self.rows];
        for r in 0..self.rows {
            for j in 0..n {
                out[j * self.rows + r] = out_t[r * n + j];
            }
        }
        out
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The same code compiled with AVX2 enabled, so that the integer dot
/// products vectorise; chosen at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(fmt: Format, w: &[u8], acts: &[Act], u: &mut Unpacked, out: &mut [f32]) {
    row::<Avx2>(fmt, w, acts, u, out)
}

fn row_portable(fmt: Format, w: &[u8], acts: &[Act], u: &mut Unpacked, out: &mut [f32]) {
    row::<Portable>(fmt, w, acts, u, out)
}

#[inline(always)]
fn row<D: IntDot>(fmt: Format, w: &[u8], acts: &[Act], u: &mut Unpacked, out: &mut [f32]) {
    unpack(fmt, w, u);
    for (o, a) in out.iter_mut().zip(acts) {
        *o = dot_unpacked::<D>(fmt, u, a);
    }
}

/// Exact integer dot products of signed bytes, 32 or 16 at a time.
trait IntDot {
    fn dot32(a: &[i8], b: &[i8]) -> i32;
    fn dot16(a: &[i8], b: &[i8]) -> i32;
}

struct Portable;

impl IntDot for Portable {
    #[inline(always)]
    fn dot32(a: &[i8], b: &[i8]) -> i32 {
        isum32(a, b)
    }
    #[inline(always)]
    fn dot16(a: &[i8], b: &[i8]) -> i32 {
        isum32(a, b)
    }
}

/// `maddubs` on |a| and b carrying a's sign, as llama.cpp does: pairs of
/// products are added in 16 bits, which cannot saturate for |a|, |b| <= 127
/// and never does for |a| = 128 against |b| <= 127 (2 * 128 * 127 < 32768).
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl IntDot for Avx2 {
    #[inline(always)]
    fn dot32(a: &[i8], b: &[i8]) -> i32 {
        use std::arch::x86_64::*;
        assert!(a.len() >= 32 && b.len() >= 32);
        // SAFETY: only reached from `row_avx2`, compiled with AVX2, and the
        // slices hold 32 bytes (checked above).
        unsafe {
            let x = _mm256_loadu_si256(a.as_ptr() as *const __m256i);
            let y = _mm256_loadu_si256(b.as_ptr() as *const __m256i);
            let ax = _mm256_sign_epi8(x, x);
            let sy = _mm256_sign_epi8(y, x);
            let p16 = _mm256_maddubs_epi16(ax, sy);
            let p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
            let lo = _mm256_castsi256_si128(p32);
            let hi = _mm256_extracti128_si256(p32, 1);
            let s = _mm_add_epi32(lo, hi);
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            _mm_cvtsi128_si32(s)
        }
    }
    #[inline(always)]
    fn dot16(a: &[i8], b: &[i8]) -> i32 {
        use std::arch::x86_64::*;
        assert!(a.len() >= 16 && b.len() >= 16);
        // SAFETY: as above, with 16 bytes.
        unsafe {
            let x = _mm_loadu_si128(a.as_ptr() as *const __m128i);
            let y = _mm_loadu_si128(b.as_ptr() as *const __m128i);
            let ax = _mm_sign_epi8(x, x);
            let sy = _mm_sign_epi8(y, x);
            let p16 = _mm_maddubs_epi16(ax, sy);
            let s = _mm_madd_epi16(p16, _mm_set1_epi16(1));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            _mm_cvtsi128_si32(s)
        }
    }
}

/// A weight row decoded once: 8-bit values and per-block factors.
#[derive(Default)]
struct Unpacked {
    f: Vec<f32>,
    q: Vec<i8>,
    /// Per block: d (and m for Q4_1/Q5_1, dmin for K formats).
    d: Vec<f32>,
    m: Vec<f32>,
    /// Per block of K formats: 8 scales and 8 mins (Q4_K/Q5_K) or 16 scales (Q6_K).
    sc: Vec<i32>,
    mn: Vec<i32>,
}

#[inline(always)]
fn unpack(fmt: Format, w: &[u8], u: &mut Unpacked) {
    u.f.clear();
    u.q.clear();
    u.d.clear();
    u.m.clear();
    u.sc.clear();
    u.mn.clear();
    match fmt {
        Format::F32 => u.f.extend(
            w.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        Format::F16 => u.f.extend(
            w.chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        Format::Q8_0 => {
            for blk in w.chunks_exact(34) {
                u.d.push(rd_f16(blk, 0));
                u.q.extend_from_slice(bytemuck_i8(&blk[2..34]));
            }
        }
        Format::Q4_0 | Format::Q4_1 => {
            let (_, bytes) = fmt.block();
            let blocks = w.len() / bytes;
            u.q.resize(blocks * QK, 0);
            let (qs_at, offset) = if fmt == Format::Q4_0 {
                (2, 8i8)
            } else {
                (4, 0)
            };
            for (blk, q) in w.chunks_exact(bytes).zip(u.q.chunks_exact_mut(QK)) {
                let qs = &blk[qs_at..qs_at + 16];
                let (lo, hi) = q.split_at_mut(16);
                for j in 0..16 {
                    lo[j] = (qs[j] & 0x0F) as i8 - offset;
                    hi[j] = (qs[j] >> 4) as i8 - offset;
                }
                u.d.push(rd_f16(blk, 0));
                u.m.push(if fmt == Format::Q4_1 {
                    rd_f16(blk, 2)
                } else {
                    0.0
                });
            }
        }
        Format::Q5_0 | Format::Q5_1 => {
            let (_, bytes) = fmt.block();
            let mut q = [0i8; QK];
            for blk in w.chunks_exact(bytes) {
                let (m, qh, qs) = if fmt == Format::Q5_0 {
                    (
                        0.0,
                        u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]),
                        &blk[6..22],
                    )
                } else {
                    (
                        rd_f16(blk, 2),
                        u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]),
                        &blk[8..24],
                    )
                };
                let offset: i32 = if fmt == Format::Q5_0 { 16 } else { 0 };
                for j in 0..16 {
                    let lo = (qs[j] & 0x0F) as i32 | ((((qh >> j) << 4) & 0x10) as i32);
                    let hi = (qs[j] >> 4) as i32 | (((qh >> (j + 12)) & 0x10) as i32);
                    q[j] = (lo - offset) as i8;
                    q[j + 16] = (hi - offset) as i8;
                }
                u.d.push(rd_f16(blk, 0));
                u.m.push(m);
                u.q.extend_from_slice(&q);
            }
        }
        Format::Q4K | Format::Q5K => {
            let bytes = fmt.block().1;
            let mut q = [0i8; QK_K];
            for blk in w.chunks_exact(bytes) {
                let (sc, mn) = k_scales(&blk[4..16]);
                let (qh, qs) = if fmt == Format::Q5K {
                    (Some(&blk[16..48]), &blk[48..176])
                } else {
                    (None, &blk[16..144])
                };
                for j in 0..QK_K / 64 {
                    for l in 0..32 {
                        let byte = qs[j * 32 + l];
                        let (mut lo, mut hi) = ((byte & 0x0F) as i32, (byte >> 4) as i32);
                        if let Some(qh) = qh {
                            lo += (((qh[l] >> (2 * j)) & 1) as i32) << 4;
                            hi += (((qh[l] >> (2 * j + 1)) & 1) as i32) << 4;
                        }
                        q[j * 64 + l] = lo as i8;
                        q[j * 64 + 32 + l] = hi as i8;
                    }
                }
                u.d.push(rd_f16(blk, 0));
                u.m.push(rd_f16(blk, 2));
                u.sc.extend(sc.iter().map(|&x| x as i32));
                u.mn.extend(mn.iter().map(|&x| x as i32));
                u.q.extend_from_slice(&q);
            }
        }
        Format::Q6K => {
            let mut q = [0i8; QK_K];
            for blk in w.chunks_exact(210) {
                let ql = &blk[0..128];
                let qh = &blk[128..192];
                for n in 0..2 {
                    let (ql, qh) = (&ql[n * 64..], &qh[n * 32..]);
                    let out = &mut q[n * 128..];
                    for l in 0..32 {
                        out[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                        out[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                        out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                        out[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                    }
                }
                u.d.push(rd_f16(blk, 208));
                u.sc.extend(bytemuck_i8(&blk[192..208]).iter().map(|&x| x as i32));
                u.q.extend_from_slice(&q);
            }
        }
    }
}

#[inline(always)]
fn isum32(a: &[i8], b: &[i8]) -> i32 {
    let mut s = 0i32;
    for i in 0..a.len() {
        s += a[i] as i32 * b[i] as i32;
    }
    s
}

/// Same arithmetic, in the same order, as [`dot`] block by block.
#[inline(always)]
fn dot_unpacked<D: IntDot>(fmt: Format, u: &Unpacked, a: &Act) -> f32 {
    let mut sum = 0f32;
    match fmt {
        Format::F32 | Format::F16 => {
            for (w, x) in u.f.iter().zip(&a.f) {
                sum += w * x;
            }
        }
        Format::Q8_0 | Format::Q4_0 | Format::Q5_0 => {
            for (i, (q, aq)) in u.q.chunks_exact(QK).zip(a.qs.chunks_exact(QK)).enumerate() {
                sum += D::dot32(q, aq) as f32 * (u.d[i] * a.d[i]);
            }
        }
        Format::Q4_1 | Format::Q5_1 => {
            for (i, (q, aq)) in u.q.chunks_exact(QK).zip(a.qs.chunks_exact(QK)).enumerate() {
                sum += (u.d[i] * a.d[i]) * D::dot32(q, aq) as f32 + u.m[i] * a.s[i];
            }
        }
        Format::Q4K | Format::Q5K => {
            for (i, (q, aq)) in
                u.q.chunks_exact(QK_K)
                    .zip(a.qs.chunks_exact(QK_K))
                    .enumerate()
            {
                let d = u.d[i] * a.d[i];
                let dmin = u.m[i] * a.d[i];
                let (sc, mn) = (&u.sc[i * 8..i * 8 + 8], &u.mn[i * 8..i * 8 + 8]);
                let mut mins = 0i32;
                for (j, b) in a.bsums[i * 16..(i + 1) * 16].iter().enumerate() {
                    mins += b * mn[j / 2];
                }
                let mut acc = 0i32;
                for j in 0..8 {
                    acc += sc[j] * D::dot32(&q[j * 32..(j + 1) * 32], &aq[j * 32..(j + 1) * 32]);
                }
                sum += d * acc as f32 - dmin * mins as f32;
            }
        }
        Format::Q6K => {
            for (i, (q, aq)) in
                u.q.chunks_exact(QK_K)
                    .zip(a.qs.chunks_exact(QK_K))
                    .enumerate()
            {
                let d = u.d[i] * a.d[i];
                let sc = &u.sc[i * 16..(i + 1) * 16];
                let mut acc = 0i32;
                for j in 0..16 {
                    acc += sc[j] * D::dot16(&q[j * 16..(j + 1) * 16], &aq[j * 16..(j + 1) * 16]);
                }
                sum += d * acc as f32;
            }
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random bytes and values, reproducible.
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn avx2_byte_dots_are_exact_at_the_extremes() {
        if !has_avx2() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let bytes = noise(32 * 64, 5);
            for (i, w) in bytes.chunks_exact(64).enumerate() {
                let mut a: Vec<i8> = w[..32].iter().map(|&b| b as i8).collect();
                // Activations are quantised to [-127, 127].
                let mut b: Vec<i8> = w[32..].iter().map(|&b| (b as i8).max(-127)).collect();
                if i == 0 {
                    a.fill(-128);
                    b.fill(-127);
                }
                if i == 1 {
                    a.fill(-128);
                    b.fill(127);
                }
                assert_eq!(Avx2::dot32(&a, &b), Portable::dot32(&a, &b));
                assert_eq!(
                    Avx2::dot16(&a[..16], &b[..16]),
                    Portable::dot16(&a[..16], &b[..16])
                );
            }
        }
    }

    #[test]
    fn the_unpacked_path_equals_the_blockwise_reference_bit_for_bit() {
        let cols = 512;
        let x: Vec<f32> = noise(cols, 3)
            .iter()
            .map(|&b| (b as f32 - 127.5) / 37.0)
            .collect();
        for fmt in [
            Format::Q4_0,
            Format::Q4_1,
            Format::Q5_0,
            Format::Q5_1,
            Format::Q8_0,
            Format::Q4K,
            Format::Q5K,
            Format::Q6K,
        ] {
            let (per, bytes) = fmt.block();
            let mut w = noise(cols / per * bytes, 11);
            // Keep the f16 factors finite and small: bytes 0-1 (and 2-3).
            for blk in w.chunks_exact_mut(bytes) {
                let at = if fmt == Format::Q6K { 208 } else { 0 };
                blk[at..at + 2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
                if matches!(fmt, Format::Q4_1 | Format::Q5_1 | Format::Q4K | Format::Q5K) {
                    blk[2..4].copy_from_slice(&f16::from_f32(0.003).to_le_bytes());
                }
            }
            let a = quantize(&x, fmt.activation());
            let mut u = Unpacked::default();
            unpack(fmt, &w, &mut u);
            let want = dot(fmt, &w, &a);
            assert!(want.is_finite() && want != 0.0, "{fmt:?}");
            assert_eq!(
                dot_unpacked::<Portable>(fmt, &u, &a).to_bits(),
                want.to_bits(),
                "{fmt:?}"
            );
            let mut out = [0f32];
            row_portable(fmt, &w, std::slice::from_ref(&a), &mut u, &mut out);
            assert_eq!(out[0].to_bits(), want.to_bits(), "{fmt:?}");
            if has_avx2() {
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    row_avx2(fmt, &w, std::slice::from_ref(&a), &mut u, &mut out)
                };
                assert_eq!(out[0].to_bits(), want.to_bits(), "{fmt:?} with AVX2");
            }
        }
    }
}
