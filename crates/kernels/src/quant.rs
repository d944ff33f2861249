//! Products of GGUF-quantised weight matrices with activation rows.
//!
//! The block layouts are those of the GGUF format (ggml's `block_*`
//! structs). [`dot`] is the reference: one weight row against one
//! activation row, block by block, in plain Rust. The AVX2 kernels compute
//! the same integer block sums and scale them the same way.

use half::f16;
use rayon::prelude::*;

use crate::{Isa, KernelError};

pub const QK: usize = 32;
pub const QK_K: usize = 256;

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
    /// (elements per block, bytes per block)
    pub fn block(self) -> (usize, usize) {
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

    /// Bytes of one row of `cols` values.
    pub fn row_bytes(self, cols: usize) -> usize {
        let (per, bytes) = self.block();
        cols / per * bytes
    }

    pub(crate) fn activation(self) -> ActKind {
        match self {
            Self::F32 => ActKind::F32,
            Self::F16 => ActKind::F16,
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 => ActKind::Q8_0,
            Self::Q4_1 | Self::Q5_1 => ActKind::Q8_1,
            Self::Q4K | Self::Q5K | Self::Q6K => ActKind::Q8K,
        }
    }

    /// Decodes one row to f32 (for embedding lookups).
    pub fn dequantize_row(self, w: &[u8], out: &mut [f32]) {
        match self {
            Self::F32 => {
                for (o, c) in out.iter_mut().zip(w.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            Self::F16 => {
                for (o, c) in out.iter_mut().zip(w.chunks_exact(2)) {
                    *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 => {
                let bytes = self.block().1;
                for (blk, o) in w.chunks_exact(bytes).zip(out.chunks_exact_mut(QK)) {
                    let (q, d, m) = block32(self, blk);
                    for (o, &q) in o.iter_mut().zip(&q) {
                        *o = d * q as f32 + m;
                    }
                }
            }
            Self::Q4K | Self::Q5K => {
                let bytes = self.block().1;
                for (blk, o) in w.chunks_exact(bytes).zip(out.chunks_exact_mut(QK_K)) {
                    let (q, sc, mn) = block_k45(self, blk);
                    let (d, dmin) = (rd_f16(blk, 0), rd_f16(blk, 2));
                    for (i, (o, &q)) in o.iter_mut().zip(&q).enumerate() {
                        let j = i / 32;
                        *o = d * sc[j] as f32 * q as f32 - dmin * mn[j] as f32;
                    }
                }
            }
            Self::Q6K => {
                for (blk, o) in w.chunks_exact(210).zip(out.chunks_exact_mut(QK_K)) {
                    let q = block_q6k(blk);
                    let sc = bytemuck_i8(&blk[192..208]);
                    let d = rd_f16(blk, 208);
                    for (i, (o, &q)) in o.iter_mut().zip(&q).enumerate() {
                        *o = d * sc[i / 16] as f32 * q as f32;
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActKind {
    F32,
    F16,
    Q8_0,
    Q8_1,
    Q8K,
}

/// Activation rows in the form one weight format multiplies with, kept
/// between calls so that a decoding step allocates nothing.
#[derive(Default)]
pub struct Activations {
    kind: Option<ActKind>,
    cols: usize,
    n: usize,
    /// f32 (or f16-rounded) values, for float weights.
    f: Vec<f32>,
    qs: Vec<i8>,
    /// Per block: the scale.
    d: Vec<f32>,
    /// Per block: `d * Σq` (Q8_1).
    s: Vec<f32>,
    /// Per 16 values: `Σq` (Q8_K).
    sums: Vec<i32>,
    /// Whole groups of four rows interleaved block by block (see
    /// [`ActGroup`]), for the tiled kernels; built on demand.
    groups: usize,
    /// Whether `groups` and the buffers below are built for the current rows.
    interleaved: bool,
    qs4: Vec<i8>,
    d4: Vec<f32>,
    s4: Vec<f32>,
    /// Per 32 values: `Σq` (Q8_K), four rows interleaved.
    sums4: Vec<i32>,
    /// Per block: `128·Σq` (Q8_0, for interleaved weights), which the
    /// interleaved kernels subtract from their unsigned-weight sums; built
    /// on demand.
    corr: Vec<i32>,
}

/// Four activation rows interleaved block by block: block `i` holds the
/// four rows' values one after another (`qs`), then their four scales
/// (`d`), Q8_1 sums (`s`) or, for Q8_K, their sums per 32 values (`sums`,
/// eight per row). A tiled kernel then reads one stream instead of four.
#[derive(Clone, Copy)]
pub struct ActGroup<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub sums: &'a [i32],
}

/// One activation row.
#[derive(Clone, Copy)]
pub struct ActRow<'a> {
    pub f: &'a [f32],
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub sums: &'a [i32],
}

/// One row's input, values, scales and sums, as quantisation walks them.
type Q8Rows<'a> = ((&'a [f32], &'a mut [i8]), (&'a mut [f32], &'a mut [f32]));
type Q8KRows<'a> = ((&'a [f32], &'a mut [i8]), (&'a mut [f32], &'a mut [i32]));

fn f16r(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Round half to even, as `_mm256_round_ps(_MM_ROUND_NEAREST)` does.
#[inline(always)]
fn rne(x: f32) -> i32 {
    x.round_ties_even() as i32
}

impl Activations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    /// Whether these activations (`n` rows of `cols`) are in the form
    /// weights in `fmt` multiply with.
    pub fn suits(&self, fmt: Format, cols: usize, n: usize) -> bool {
        self.kind == Some(fmt.activation()) && self.cols == cols && self.n == n
    }

    /// Quantises the rows of `x` (each `cols` long) for products with
    /// weights in `fmt`.
    pub fn quantize(&mut self, x: &[f32], cols: usize, fmt: Format, isa: Isa) {
        self.quantize_rows(x, cols, fmt, isa);
        self.groups = 0;
        self.interleaved = false;
        self.corr.clear();
    }

    /// Derives, once per quantisation, what the kernels of `m` read besides
    /// the rows: the four-row interleave of the tiled kernels, or the block
    /// sums of the eight-row interleaved ones.
    fn prepare_for(&mut self, m: &QMatrix, isa: Isa) {
        match &m.interleaved {
            Some(Interleaved::Rows(p)) if p.kind == PackedKind::Q8 => {
                if self.corr.is_empty() {
                    self.corr.extend(
                        self.qs
                            .chunks_exact(QK)
                            .map(|b| 128 * b.iter().map(|&q| q as i32).sum::<i32>()),
                    );
                }
            }
            Some(_) => {}
            None => {
                #[cfg(target_arch = "x86_64")]
                let tiled = crate::avx2::tiled(m.fmt);
                #[cfg(not(target_arch = "x86_64"))]
                let tiled = false;
                if tiled && isa.has_avx2() && self.n >= 4 && !self.interleaved {
                    self.interleave();
                    self.interleaved = true;
                }
            }
        }
    }

    fn quantize_rows(&mut self, x: &[f32], cols: usize, fmt: Format, isa: Isa) {
        assert!(cols > 0 && x.len().is_multiple_of(cols), "activation size");
        let kind = fmt.activation();
        let n = x.len() / cols;
        self.kind = Some(kind);
        self.cols = cols;
        self.n = n;
        match kind {
            ActKind::F32 => {
                self.f.clear();
                self.f.extend_from_slice(x);
            }
            ActKind::F16 => {
                self.f.clear();
                self.f.extend(x.iter().map(|&v| f16r(v)));
            }
            ActKind::Q8_0 | ActKind::Q8_1 => {
                let nb = cols / QK;
                self.qs.resize(n * cols, 0);
                self.d.resize(n * nb, 0.0);
                self.s.resize(n * nb, 0.0);
                let q8_1 = kind == ActKind::Q8_1;
                let work = |((x, qs), (d, s)): Q8Rows<'_>| {
                    #[cfg(target_arch = "x86_64")]
                    if isa.has_avx2() {
                        let s = if q8_1 { Some(s) } else { None };
                        // SAFETY: `Isa::Avx2` and `Isa::AvxVnni` are only chosen when the CPU
                        // has AVX2, FMA and F16C.
                        unsafe { crate::avx2::quantize_q8(x, qs, d, s) };
                        return;
                    }
                    for ((x, qs), (d, s)) in x
                        .chunks_exact(QK)
                        .zip(qs.chunks_exact_mut(QK))
                        .zip(d.iter_mut().zip(s.iter_mut()))
                    {
                        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                        let dd = amax / 127.0;
                        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                        let mut sum = 0i32;
                        for (q, &v) in qs.iter_mut().zip(x) {
                            let r = rne(v * id);
                            sum += r;
                            *q = r as i8;
                        }
                        *d = f16r(dd);
                        if q8_1 {
                            *s = f16r(dd * sum as f32);
                        }
                    }
                };
                if n >= 8 {
                    x.par_chunks(cols)
                        .zip(self.qs.par_chunks_mut(cols))
                        .zip(self.d.par_chunks_mut(nb).zip(self.s.par_chunks_mut(nb)))
                        .for_each(work);
                } else {
                    x.chunks(cols)
                        .zip(self.qs.chunks_mut(cols))
                        .zip(self.d.chunks_mut(nb).zip(self.s.chunks_mut(nb)))
                        .for_each(work);
                }
            }
            ActKind::Q8K => {
                let nb = cols / QK_K;
                self.qs.resize(n * cols, 0);
                self.d.resize(n * nb, 0.0);
                self.sums.resize(n * nb * 16, 0);
                let work = |((x, qs), (d, sums)): Q8KRows<'_>| {
                    #[cfg(target_arch = "x86_64")]
                    if isa.has_avx2() {
                        // SAFETY: the CPU has AVX2 (`Isa` is only chosen so).
                        unsafe { crate::avx2::quantize_q8k(x, qs, d, sums) };
                        return;
                    }
                    quantize_q8k(x, qs, d, sums);
                };
                if n >= 8 {
                    x.par_chunks(cols)
                        .zip(self.qs.par_chunks_mut(cols))
                        .zip(
                            self.d
                                .par_chunks_mut(nb)
                                .zip(self.sums.par_chunks_mut(nb * 16)),
                        )
                        .for_each(work);
                } else {
                    x.chunks(cols)
                        .zip(self.qs.chunks_mut(cols))
                        .zip(self.d.chunks_mut(nb).zip(self.sums.chunks_mut(nb * 16)))
                        .for_each(work);
                }
            }
        }
    }

    /// Interleaves whole groups of four rows for the tiled kernels.
    fn interleave(&mut self) {
        let kind = self.kind.expect("quantized");
        let (cols, n) = (self.cols, self.n);
        self.groups = n / 4;
        let per = if kind == ActKind::Q8K { QK_K } else { QK };
        let nb = cols / per;
        let g = self.groups;
        self.qs4.resize(g * 4 * cols, 0);
        self.d4.resize(g * 4 * nb, 0.0);
        if kind == ActKind::Q8_1 {
            self.s4.resize(g * 4 * nb, 0.0);
        }
        if kind == ActKind::Q8K {
            self.sums4.resize(g * 4 * nb * 8, 0);
        }
        for grp in 0..g {
            for r in 0..4 {
                let j = grp * 4 + r;
                for i in 0..nb {
                    let at = (grp * nb + i) * 4;
                    let src = j * cols + i * per;
                    self.qs4[(at + r) * per..(at + r + 1) * per]
                        .copy_from_slice(&self.qs[src..src + per]);
                    self.d4[at + r] = self.d[j * nb + i];
                    if kind == ActKind::Q8_1 {
                        self.s4[at + r] = self.s[j * nb + i];
                    }
                    if kind == ActKind::Q8K {
                        let from = &self.sums[(j * nb + i) * 16..(j * nb + i + 1) * 16];
                        for k in 0..8 {
                            self.sums4[(at + r) * 8 + k] = from[2 * k] + from[2 * k + 1];
                        }
                    }
                }
            }
        }
    }

    /// `128·Σq` per block for rows `j..j + count` (empty until a product
    /// with interleaved `Q8_0` weights asks for them).
    pub(crate) fn corr_rows(&self, j: usize, count: usize) -> &[i32] {
        if self.corr.is_empty() {
            return &[];
        }
        let nb = self.cols / QK;
        &self.corr[j * nb..(j + count) * nb]
    }

    /// Group `g` (rows `4g..4g + 4`), interleaved.
    pub fn group(&self, g: usize) -> ActGroup<'_> {
        let kind = self.kind.expect("quantized");
        let per = if kind == ActKind::Q8K { QK_K } else { QK };
        let nb = self.cols / per;
        let (a, b) = (g * 4 * nb, (g + 1) * 4 * nb);
        ActGroup {
            qs: &self.qs4[a * per..b * per],
            d: &self.d4[a..b],
            s: if kind == ActKind::Q8_1 {
                &self.s4[a..b]
            } else {
                &[]
            },
            sums: if kind == ActKind::Q8K {
                &self.sums4[a * 8..b * 8]
            } else {
                &[]
            },
        }
    }

    /// Row `j`.
    pub fn row(&self, j: usize) -> ActRow<'_> {
        let cols = self.cols;
        match self.kind.expect("quantize first") {
            ActKind::F32 | ActKind::F16 => ActRow {
                f: &self.f[j * cols..(j + 1) * cols],
                qs: &[],
                d: &[],
                s: &[],
                sums: &[],
            },
            ActKind::Q8_0 | ActKind::Q8_1 => {
                let nb = cols / QK;
                ActRow {
                    f: &[],
                    qs: &self.qs[j * cols..(j + 1) * cols],
                    d: &self.d[j * nb..(j + 1) * nb],
                    s: &self.s[j * nb..(j + 1) * nb],
                    sums: &[],
                }
            }
            ActKind::Q8K => {
                let nb = cols / QK_K;
                ActRow {
                    f: &[],
                    qs: &self.qs[j * cols..(j + 1) * cols],
                    d: &self.d[j * nb..(j + 1) * nb],
                    s: &[],
                    sums: &self.sums[j * nb * 16..(j + 1) * nb * 16],
                }
            }
        }
    }
}

/// Quantises f32 weights (rows of a multiple of 32 values) to `Q8_0`
/// blocks, as llama.cpp's reference quantiser does: scale = max |x| / 127
/// (stored as f16), values `round(x / scale)`, halves away from zero.
pub fn quantize_q8_0(x: &[f32]) -> Vec<u8> {
    assert!(x.len().is_multiple_of(QK), "whole blocks");
    let mut out = Vec::with_capacity(x.len() / QK * 34);
    for b in x.chunks_exact(QK) {
        let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(
            b.iter()
                .map(|&v| ((v * id).round() as i32).clamp(-127, 127) as i8 as u8),
        );
    }
    out
}

/// Quantises 256-value blocks to Q8_K: scale from the value of largest
/// magnitude (`-127 / max`, so that value maps to -127), values rounded half
/// to even and capped at 127, and the sum of every 16.
#[inline(always)]
pub(crate) fn quantize_q8k(x: &[f32], qs: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
    for ((x, qs), (d, sums)) in x
        .chunks_exact(QK_K)
        .zip(qs.chunks_exact_mut(QK_K))
        .zip(d.iter_mut().zip(sums.chunks_exact_mut(16)))
    {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *d = 0.0;
            qs.fill(0);
            sums.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for ((g, q), s) in x
            .chunks_exact(16)
            .zip(qs.chunks_exact_mut(16))
            .zip(sums.iter_mut())
        {
            let mut sum = 0i32;
            for (q, &v) in q.iter_mut().zip(g) {
                let r = rne(iscale * v).min(127);
                sum += r;
                *q = r as i8;
            }
            *s = sum;
        }
        *d = 1.0 / iscale;
    }
}

#[inline(always)]
pub(crate) fn rd_f16(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

#[inline(always)]
pub(crate) fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size, alignment and validity.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i8, b.len()) }
}

fn isum(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// The 32 values of a 32-block format, with its scale and offset.
fn block32(fmt: Format, blk: &[u8]) -> ([i8; QK], f32, f32) {
    let mut q = [0i8; QK];
    let d = rd_f16(blk, 0);
    if fmt == Format::Q8_0 {
        q.copy_from_slice(bytemuck_i8(&blk[2..34]));
        return (q, d, 0.0);
    }
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
    (q, d, m)
}

/// The 256 values, eight scales and eight mins of a Q4_K or Q5_K block.
fn block_k45(fmt: Format, blk: &[u8]) -> ([i8; QK_K], [u8; 8], [u8; 8]) {
    let mut q = [0i8; QK_K];
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
    (q, sc, mn)
}

/// The 256 values of a Q6_K block, offset removed.
fn block_q6k(blk: &[u8]) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
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
    q
}

/// The eight 6-bit scales and eight 6-bit mins packed in 12 bytes (Q4_K, Q5_K).
#[inline(always)]
pub(crate) fn k_scales(s: &[u8]) -> ([u8; 8], [u8; 8]) {
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

/// The dot product of one weight row with one activation row, block by
/// block: the reference every other kernel is tested against.
pub fn dot(fmt: Format, w: &[u8], a: ActRow<'_>) -> f32 {
    let mut sum = 0f32;
    match fmt {
        Format::F32 => {
            for (c, x) in w.chunks_exact(4).zip(a.f) {
                sum += f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * x;
            }
        }
        Format::F16 => {
            for (c, x) in w.chunks_exact(2).zip(a.f) {
                sum += f16::from_le_bytes([c[0], c[1]]).to_f32() * x;
            }
        }
        Format::Q8_0 | Format::Q4_0 | Format::Q4_1 | Format::Q5_0 | Format::Q5_1 => {
            let (_, bytes) = fmt.block();
            for (i, blk) in w.chunks_exact(bytes).enumerate() {
                let (q, d, m) = block32(fmt, blk);
                let s = isum(&q, &a.qs[i * QK..(i + 1) * QK]);
                match fmt {
                    Format::Q4_1 | Format::Q5_1 => sum += (d * a.d[i]) * s as f32 + m * a.s[i],
                    _ => sum += s as f32 * (d * a.d[i]),
                }
            }
        }
        Format::Q4K | Format::Q5K => {
            let bytes = fmt.block().1;
            for (i, blk) in w.chunks_exact(bytes).enumerate() {
                let d = rd_f16(blk, 0) * a.d[i];
                let dmin = rd_f16(blk, 2) * a.d[i];
                let (q, sc, mn) = block_k45(fmt, blk);
                let mut mins = 0i32;
                for (j, b) in a.sums[i * 16..(i + 1) * 16].iter().enumerate() {
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
            for (i, blk) in w.chunks_exact(210).enumerate() {
                let q = block_q6k(blk);
                let scales = bytemuck_i8(&blk[192..208]);
                let d = rd_f16(blk, 208) * a.d[i];
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

/// A weight matrix of `rows` outputs by `cols` inputs, kept in its GGUF
/// encoding.
pub struct QMatrix {
    fmt: Format,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    /// Rows in the GGUF layout (empty when [`QMatrix::packed`] holds them).
    data: Vec<u8>,
    /// The rows interleaved for AVX-VNNI, when [`QMatrix::repacked`] did so.
    interleaved: Option<Interleaved>,
}

/// Weight rows interleaved eight at a time (see [`QMatrix::repacked`]).
pub(crate) enum Interleaved {
    Rows(Packed),
    Q4K(PackedK4),
}

/// A `Q4_K` matrix with eight rows interleaved for AVX-VNNI, like
/// [`Packed`], with each block's six-bit scales and minimums decoded once at
/// load (so it takes about 40% more room than the rows it replaces).
///
/// Per group of eight rows and 256-value block: `vals` holds four 64-value
/// chunks of eight 32-byte vectors; byte `(row l, p)` of vector `k` of chunk
/// `j` is the row's byte `32j + 4k + p`, whose low nibble is value
/// `64j + 4k + p` and high nibble value `64j + 32 + 4k + p`. `sc` and `mn`
/// hold per block, per 32-value sub-block, the eight rows' scale (i32) and
/// minimum (f32); `d` and `dmin` the eight rows' factors.
pub(crate) struct PackedK4 {
    pub(crate) nb: usize,
    pub(crate) vals: Vec<u8>,
    pub(crate) sc: Vec<i32>,
    pub(crate) mn: Vec<f32>,
    pub(crate) d: Vec<f32>,
    pub(crate) dmin: Vec<f32>,
}

impl PackedK4 {
    fn build(rows: usize, cols: usize, data: &[u8]) -> PackedK4 {
        let nb = cols / QK_K;
        let row_bytes = nb * 144;
        let groups = rows / 8;
        let mut p = PackedK4 {
            nb,
            vals: vec![0u8; groups * nb * 1024],
            sc: vec![0; groups * nb * 64],
            mn: vec![0.0; groups * nb * 64],
            d: vec![0.0; groups * nb * 8],
            dmin: vec![0.0; groups * nb * 8],
        };
        for g in 0..groups {
            for i in 0..nb {
                let gi = g * nb + i;
                for l in 0..8 {
                    let blk = &data[(g * 8 + l) * row_bytes + i * 144..][..144];
                    p.d[gi * 8 + l] = rd_f16(blk, 0);
                    p.dmin[gi * 8 + l] = rd_f16(blk, 2);
                    let (sc, mn) = k_scales(&blk[4..16]);
                    for j in 0..8 {
                        p.sc[gi * 64 + j * 8 + l] = sc[j] as i32;
                        p.mn[gi * 64 + j * 8 + l] = mn[j] as f32;
                    }
                    let qs = &blk[16..144];
                    for j in 0..4 {
                        for k in 0..8 {
                            for q in 0..4 {
                                p.vals[gi * 1024 + j * 256 + k * 32 + l * 4 + q] =
                                    qs[32 * j + 4 * k + q];
                            }
                        }
                    }
                }
            }
        }
        p
    }

    fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (g, l) = (r / 8, r % 8);
        for i in 0..self.nb {
            let gi = g * self.nb + i;
            let (d, dmin) = (self.d[gi * 8 + l], self.dmin[gi * 8 + l]);
            for j in 0..4 {
                for k in 0..8 {
                    for q in 0..4 {
                        let b = self.vals[gi * 1024 + j * 256 + k * 32 + l * 4 + q];
                        for (half, v) in [(0, b & 0x0F), (1, b >> 4)] {
                            let sub = 2 * j + half;
                            let at = i * QK_K + 64 * j + 32 * half + 4 * k + q;
                            out[at] = d * self.sc[gi * 64 + sub * 8 + l] as f32 * v as f32
                                - dmin * self.mn[gi * 64 + sub * 8 + l];
                        }
                    }
                }
            }
        }
    }
}

/// Eight weight rows interleaved for byte dot products that give eight
/// rows' sums in one vector (AVX-VNNI's `vpdpbusd` against four activation
/// bytes broadcast to every lane).
///
/// Each group of eight rows takes the bytes the eight rows took before
/// (the matrix is rewritten in place, group by group): first, per
/// 32-column block, eight 32-byte vectors, vector `k` holding for each of
/// the eight rows in turn the row's values `4k..4k+4`; then the eight rows'
/// f16 scales per block; then, for `Q4_1`, their f16 minimums per block.
/// `Q8` stores `q + 128` as unsigned bytes (from `Q8_0`; the kernels
/// subtract `128·Σy` per block); `Q4_1` keeps the nibble bytes as they are,
/// so that the low nibbles of vector `k` are values `4k..4k+4` and the high
/// nibbles values `16+4k..16+4k+4`, for `k < 4`.
pub(crate) struct Packed {
    pub(crate) kind: PackedKind,
    pub(crate) nb: usize,
    pub(crate) data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PackedKind {
    Q8,
    Q4_1,
}

impl Packed {
    /// Bytes of values per group of eight rows and block.
    pub(crate) fn block_bytes(kind: PackedKind) -> usize {
        match kind {
            PackedKind::Q8 => 256,
            PackedKind::Q4_1 => 128,
        }
    }

    /// Bytes per group of eight rows.
    pub(crate) fn group_bytes(&self) -> usize {
        match self.kind {
            PackedKind::Q8 => self.nb * 8 * 34,
            PackedKind::Q4_1 => self.nb * 8 * 20,
        }
    }

    /// Offsets, within a group, of the values, the scales and the minimums.
    pub(crate) fn layout(&self) -> (usize, usize) {
        let d = self.nb * Self::block_bytes(self.kind);
        (d, d + self.nb * 16)
    }

    /// Rewrites `data` (`Q8_0` or `Q4_1` rows in the GGUF layout, a
    /// multiple of eight of them) in place.
    fn build(fmt: Format, cols: usize, mut data: Vec<u8>) -> Packed {
        let kind = match fmt {
            Format::Q8_0 => PackedKind::Q8,
            Format::Q4_1 => PackedKind::Q4_1,
            _ => unreachable!("only Q8_0 and Q4_1 rows are interleaved in place"),
        };
        let (_, bytes) = fmt.block();
        let nb = cols / QK;
        let row_bytes = nb * bytes;
        let p = Packed {
            kind,
            nb,
            data: Vec::new(),
        };
        let (d_at, m_at) = p.layout();
        let bb = Self::block_bytes(kind);
        let mut src = vec![0u8; 8 * row_bytes];
        for group in data.chunks_exact_mut(8 * row_bytes) {
            src.copy_from_slice(group);
            for i in 0..nb {
                let out = &mut group[i * bb..(i + 1) * bb];
                for l in 0..8 {
                    let blk = &src[l * row_bytes + i * bytes..][..bytes];
                    match kind {
                        PackedKind::Q8 => {
                            for k in 0..8 {
                                for q in 0..4 {
                                    out[k * 32 + l * 4 + q] = blk[2 + 4 * k + q] ^ 0x80;
                                }
                            }
                        }
                        PackedKind::Q4_1 => {
                            for k in 0..4 {
                                for q in 0..4 {
                                    out[k * 32 + l * 4 + q] = blk[4 + 4 * k + q];
                                }
                            }
                        }
                    }
                }
            }
            for i in 0..nb {
                for l in 0..8 {
                    let blk = &src[l * row_bytes + i * bytes..][..bytes];
                    let at = d_at + (i * 8 + l) * 2;
                    group[at..at + 2].copy_from_slice(&blk[0..2]);
                    if kind == PackedKind::Q4_1 {
                        let at = m_at + (i * 8 + l) * 2;
                        group[at..at + 2].copy_from_slice(&blk[2..4]);
                    }
                }
            }
        }
        Packed { data, ..p }
    }

    /// Row `r` decoded to f32.
    fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (g, l) = (r / 8, r % 8);
        let bb = Self::block_bytes(self.kind);
        let (d_at, m_at) = self.layout();
        let group = &self.data[g * self.group_bytes()..(g + 1) * self.group_bytes()];
        for i in 0..self.nb {
            let v = &group[i * bb..(i + 1) * bb];
            let d = rd_f16(group, d_at + (i * 8 + l) * 2);
            let o = &mut out[i * QK..(i + 1) * QK];
            match self.kind {
                PackedKind::Q8 => {
                    for k in 0..8 {
                        for p in 0..4 {
                            let q = (v[k * 32 + l * 4 + p] ^ 0x80) as i8;
                            o[4 * k + p] = d * q as f32;
                        }
                    }
                }
                PackedKind::Q4_1 => {
                    let m = rd_f16(group, m_at + (i * 8 + l) * 2);
                    for k in 0..4 {
                        for p in 0..4 {
                            let b = v[k * 32 + l * 4 + p];
                            o[4 * k + p] = d * (b & 0x0F) as f32 + m;
                            o[16 + 4 * k + p] = d * (b >> 4) as f32 + m;
                        }
                    }
                }
            }
        }
    }
}

/// Activation rows multiplied per pass over a weight row: each weight block
/// is decoded once for all of them. (8 measured slower than 4 here: the
/// accumulators no longer fit the sixteen vector registers.)
pub(crate) const TILE: usize = 4;

/// Output rows for one task of a product.
const ROWS_PER_TASK: usize = 32;

struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint elements (distinct weight rows).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl QMatrix {
    pub fn new(
        name: &str,
        fmt: Format,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    ) -> Result<Self, KernelError> {
        let bad = |reason: String| KernelError::BadMatrix {
            name: name.to_string(),
            reason,
        };
        let (per, _) = fmt.block();
        if cols == 0 || !cols.is_multiple_of(per) {
            return Err(bad(format!("rows of {cols} are not whole {fmt:?} blocks")));
        }
        let row_bytes = fmt.row_bytes(cols);
        if data.len() != rows * row_bytes {
            return Err(bad(format!(
                "{} bytes for {rows} × {cols} {fmt:?} values (want {})",
                data.len(),
                rows * row_bytes
            )));
        }
        Ok(Self {
            fmt,
            rows,
            cols,
            row_bytes,
            data,
            interleaved: None,
        })
    }

    pub fn format(&self) -> Format {
        self.fmt
    }

    /// The matrix in the layout `isa`'s kernels run fastest on, holding
    /// the same values:
    ///
    /// * `Q5_0` blocks become `Q8_0` blocks with the same values and scale
    ///   (22 → 34 bytes per 32 values), which the kernels decode in one load
    ///   instead of reassembling five-bit values;
    /// * with AVX-VNNI, `Q8_0` and `Q4_1` matrices whose rows come in
    ///   eights are interleaved eight rows at a time (see [`Packed`]; same
    ///   size).
    ///
    /// Other matrices are returned as they are.
    pub fn repacked(self, isa: Isa) -> QMatrix {
        let mut m = self.q5_0_as_q8_0();
        if isa != Isa::AvxVnni || m.interleaved.is_some() || !m.rows.is_multiple_of(8) {
            return m;
        }
        m.interleaved = match m.fmt {
            Format::Q4K => Some(Interleaved::Q4K(PackedK4::build(m.rows, m.cols, &m.data))),
            Format::Q8_0 | Format::Q4_1 => Some(Interleaved::Rows(Packed::build(
                m.fmt,
                m.cols,
                std::mem::take(&mut m.data),
            ))),
            _ => None,
        };
        if m.interleaved.is_some() {
            m.data = Vec::new();
        }
        m
    }

    fn q5_0_as_q8_0(self) -> QMatrix {
        if self.fmt != Format::Q5_0 {
            return self;
        }
        let mut data = Vec::with_capacity(self.data.len() / 22 * 34);
        for blk in self.data.chunks_exact(22) {
            let (q, _, _) = block32(Format::Q5_0, blk);
            data.extend_from_slice(&blk[0..2]);
            data.extend(q.iter().map(|&v| v as u8));
        }
        QMatrix {
            fmt: Format::Q8_0,
            rows: self.rows,
            cols: self.cols,
            row_bytes: Format::Q8_0.row_bytes(self.cols),
            data,
            interleaved: None,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The encoded bytes of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Row `r` decoded to f32.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert_eq!(out.len(), self.cols);
        match &self.interleaved {
            Some(Interleaved::Rows(p)) => p.dequantize_row(r, out),
            Some(Interleaved::Q4K(p)) => p.dequantize_row(r, out),
            None => self.fmt.dequantize_row(self.row(r), out),
        }
    }

    /// Quantises `x` (`n` rows of `cols`) into `acts` and multiplies:
    /// `out` gets `n` rows of `rows` values.
    pub fn matmul(&self, x: &[f32], acts: &mut Activations, out: &mut [f32], isa: Isa) {
        acts.quantize(x, self.cols, self.fmt, isa);
        self.matmul_quantized(acts, out, isa);
    }

    /// As [`QMatrix::matmul`], with activations already quantised for this
    /// format (several matrices with the same input share them).
    pub fn matmul_quantized(&self, acts: &mut Activations, out: &mut [f32], isa: Isa) {
        matmul_many(&mut [(self, out)], acts, isa);
    }

    /// Output rows `r0..r1` for every activation row.
    fn rows_range(
        &self,
        isa: Isa,
        acts: &Activations,
        act_rows: &[ActRow<'_>],
        r0: usize,
        r1: usize,
        out: &SendPtr,
    ) {
        let rows = self.rows;
        #[cfg(target_arch = "x86_64")]
        if let Some(il) = &self.interleaved {
            // Only built for `Isa::AvxVnni`, and `r0`, `r1` are multiples
            // of 8 (tasks take whole groups).
            assert!(isa == Isa::AvxVnni && r0.is_multiple_of(8) && r1.is_multiple_of(8));
            for (t, tile) in act_rows.chunks(4).enumerate() {
                for g in r0 / 8..r1 / 8 {
                    let mut o = [[0f32; 8]; 4];
                    // SAFETY: `Isa::AvxVnni` is only chosen when the CPU
                    // has AVX2, FMA, F16C and AVX-VNNI.
                    unsafe {
                        match il {
                            Interleaved::Rows(p) => crate::avx2::packed(
                                p,
                                g,
                                tile,
                                acts.corr_rows(t * 4, tile.len()),
                                &mut o,
                            ),
                            Interleaved::Q4K(p) => crate::avx2::packed_q4k(p, g, tile, &mut o),
                        }
                    };
                    for (k, o) in o[..tile.len()].iter().enumerate() {
                        for (l, &v) in o.iter().enumerate() {
                            // SAFETY: as below.
                            unsafe { *out.0.add((t * 4 + k) * rows + g * 8 + l) = v };
                        }
                    }
                }
            }
            return;
        }
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if acts.groups > 0 && isa.has_avx2() && crate::avx2::tiled(self.fmt) {
            for g in 0..acts.groups {
                let group = acts.group(g);
                for r in r0..r1 {
                    let mut o = [0f32; 4];
                    // SAFETY: the CPU has AVX2, FMA and F16C (and AVX-VNNI
                    // for `Isa::AvxVnni`).
                    unsafe {
                        if isa == Isa::AvxVnni {
                            crate::avx2::dot_group_vnni(self.fmt, self.row(r), group, &mut o)
                        } else {
                            crate::avx2::dot_group(self.fmt, self.row(r), group, &mut o)
                        }
                    };
                    for (k, &v) in o.iter().enumerate() {
                        // SAFETY: as below.
                        unsafe { *out.0.add((g * 4 + k) * rows + r) = v };
                    }
                }
            }
            done = acts.groups * 4;
        }
        for (g, group) in act_rows[done..].chunks(TILE).enumerate() {
            let j = done + g * TILE;
            for r in r0..r1 {
                let mut o = [0f32; TILE];
                self.dot_rows(isa, self.row(r), group, &mut o);
                for (k, &v) in o[..group.len()].iter().enumerate() {
                    // SAFETY: (j + k, r) is inside this product's output,
                    // and only this task writes row r's outputs.
                    unsafe { *out.0.add((j + k) * rows + r) = v };
                }
            }
        }
    }

    /// One weight row against up to [`TILE`] activation rows.
    #[inline]
    fn dot_rows(&self, isa: Isa, w: &[u8], acts: &[ActRow<'_>], out: &mut [f32; TILE]) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: `Isa::Avx2` is only chosen when the CPU has AVX2,
                // FMA and F16C.
                unsafe { crate::avx2::dot_rows(self.fmt, w, acts, out) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => {
                // SAFETY: `Isa::AvxVnni` is only chosen when the CPU has
                // AVX2, FMA, F16C and AVX-VNNI.
                unsafe { crate::avx2::dot_rows_vnni(self.fmt, w, acts, out) }
            }
            _ => {
                for (o, &a) in out.iter_mut().zip(acts) {
                    *o = dot(self.fmt, w, a);
                }
            }
        }
    }
}

/// Several products of the same activations, in one parallel pass: each
/// `(matrix, out)` pair gets `out = acts · matrixᵀ`. One pass instead of
/// several saves the threads a wake-up per product, which on a decoding
/// step costs as much as a small product itself.
pub fn matmul_many(products: &mut [(&QMatrix, &mut [f32])], acts: &mut Activations, isa: Isa) {
    for (m, _) in products.iter() {
        acts.prepare_for(m, isa);
    }
    let acts = &*acts;
    let n = acts.n;
    for (m, out) in products.iter() {
        assert_eq!(acts.cols, m.cols, "activation width");
        assert_eq!(acts.kind, Some(m.fmt.activation()), "activation kind");
        assert_eq!(out.len(), n * m.rows, "output size");
    }
    let act_rows: Vec<ActRow<'_>> = (0..n).map(|j| acts.row(j)).collect();
    let outs: Vec<SendPtr> = products
        .iter_mut()
        .map(|(_, o)| SendPtr(o.as_mut_ptr()))
        .collect();
    // (product, first row) of every task.
    let tasks: Vec<(usize, usize)> = products
        .iter()
        .enumerate()
        .flat_map(|(i, (m, _))| (0..m.rows).step_by(ROWS_PER_TASK).map(move |r| (i, r)))
        .collect();
    let run = |&(i, r0): &(usize, usize)| {
        let m = products[i].0;
        let r1 = (r0 + ROWS_PER_TASK).min(m.rows);
        m.rows_range(isa, acts, &act_rows, r0, r1, &outs[i]);
    };
    if tasks.len() > 1 && rayon::current_num_threads() > 1 {
        tasks.par_iter().for_each(run);
    } else {
        tasks.iter().for_each(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random bytes, reproducible.
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
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

    const ALL: [Format; 10] = [
        Format::F32,
        Format::F16,
        Format::Q4_0,
        Format::Q4_1,
        Format::Q5_0,
        Format::Q5_1,
        Format::Q8_0,
        Format::Q4K,
        Format::Q5K,
        Format::Q6K,
    ];

    /// A matrix of plausible weights: random bytes with small, finite
    /// f16 factors.
    fn matrix(fmt: Format, rows: usize, cols: usize, seed: u64) -> QMatrix {
        let (_, bytes) = fmt.block();
        let mut w = noise(rows * fmt.row_bytes(cols), seed);
        match fmt {
            Format::F32 => {
                for c in w.chunks_exact_mut(4) {
                    let v = (c[0] as f32 - 127.5) / 300.0;
                    c.copy_from_slice(&v.to_le_bytes());
                }
            }
            Format::F16 => {
                for c in w.chunks_exact_mut(2) {
                    let v = (c[0] as f32 - 127.5) / 300.0;
                    c.copy_from_slice(&f16::from_f32(v).to_le_bytes());
                }
            }
            _ => {
                for (i, blk) in w.chunks_exact_mut(bytes).enumerate() {
                    let at = if fmt == Format::Q6K { 208 } else { 0 };
                    let d = 0.004 + (i % 7) as f32 * 0.002;
                    blk[at..at + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                    if matches!(fmt, Format::Q4_1 | Format::Q5_1 | Format::Q4K | Format::Q5K) {
                        blk[2..4].copy_from_slice(&f16::from_f32(-0.003).to_le_bytes());
                    }
                }
            }
        }
        QMatrix::new("test", fmt, rows, cols, w).unwrap()
    }

    fn input(n: usize, cols: usize, seed: u64) -> Vec<f32> {
        noise(n * cols, seed)
            .iter()
            .enumerate()
            .map(|(i, &b)| (b as f32 - 127.5) / 37.0 * if i % 97 == 0 { 9.0 } else { 1.0 })
            .collect()
    }

    #[test]
    fn every_isa_agrees_with_the_reference_for_every_format() {
        let (rows, cols) = (37, 512);
        for fmt in ALL {
            let m = matrix(fmt, rows, cols, 11);
            for n in [1, 3, 4, 9] {
                let x = input(n, cols, 3 + n as u64);
                let mut acts = Activations::new();
                acts.quantize(&x, cols, fmt, Isa::Portable);
                let mut want = vec![0f32; n * rows];
                for j in 0..n {
                    for r in 0..rows {
                        want[j * rows + r] = dot(fmt, m.row(r), acts.row(j));
                    }
                }
                assert!(want.iter().all(|v| v.is_finite()) && want.iter().any(|&v| v != 0.0));
                for isa in Isa::available() {
                    let mut out = vec![0f32; n * rows];
                    m.matmul(&x, &mut acts, &mut out, isa);
                    for (i, (&a, &b)) in out.iter().zip(&want).enumerate() {
                        // Block sums are exact; only their order of addition differs.
                        let tol = 1e-5 * (1.0 + b.abs()) * (cols as f32).sqrt();
                        assert!(
                            (a - b).abs() <= tol,
                            "{fmt:?} {isa:?} n={n} #{i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn repacked_q5_0_gives_the_same_products() {
        let (rows, cols) = (9, 512);
        let m = matrix(Format::Q5_0, rows, cols, 29);
        let x = input(5, cols, 31);
        for isa in Isa::available() {
            let mut acts = Activations::new();
            let mut want = vec![0f32; 5 * rows];
            m.matmul(&x, &mut acts, &mut want, isa);
            let r = matrix(Format::Q5_0, rows, cols, 29).repacked(Isa::Avx2);
            assert_eq!(r.format(), Format::Q8_0);
            let mut got = vec![0f32; 5 * rows];
            r.matmul(&x, &mut acts, &mut got, isa);
            // Same integer block sums, same scales, same order.
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{isa:?}");
        }
    }

    #[test]
    fn interleaved_rows_agree_with_the_reference_and_decode_the_same() {
        if Isa::detect() != Isa::AvxVnni {
            return;
        }
        let (rows, cols) = (24, 512);
        for fmt in [Format::Q8_0, Format::Q4_1, Format::Q5_0] {
            let plain = matrix(fmt, rows, cols, 37).repacked(Isa::Avx2);
            let packed = matrix(fmt, rows, cols, 37).repacked(Isa::AvxVnni);
            assert!(
                packed.interleaved.is_some() && packed.data.is_empty(),
                "{fmt:?}"
            );
            // Same size as the rows it replaces (Q5_0 having become Q8_0).
            let stored = if fmt == Format::Q4_1 {
                Format::Q4_1
            } else {
                Format::Q8_0
            };
            assert_eq!(
                match &packed.interleaved {
                    Some(Interleaved::Rows(p)) => p.data.len(),
                    _ => unreachable!(),
                },
                rows * stored.row_bytes(cols)
            );
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            for r in 0..rows {
                plain.dequantize_row(r, &mut a);
                packed.dequantize_row(r, &mut b);
                assert_eq!(a, b, "{fmt:?} row {r}");
            }
            let n = 6;
            let x = input(n, cols, 41);
            let mut acts = Activations::new();
            let mut got = vec![0f32; n * rows];
            packed.matmul(&x, &mut acts, &mut got, Isa::AvxVnni);
            for j in 0..n {
                for r in 0..rows {
                    let want = dot(plain.fmt, plain.row(r), acts.row(j));
                    let g = got[j * rows + r];
                    let tol = 1e-5 * (1.0 + want.abs()) * (cols as f32).sqrt();
                    assert!(
                        (g - want).abs() <= tol,
                        "{fmt:?} act {j} row {r}: {g} vs {want}"
                    );
                }
                let mut one = vec![0f32; rows];
                let mut single = Activations::new();
                packed.matmul(
                    &x[j * cols..(j + 1) * cols],
                    &mut single,
                    &mut one,
                    Isa::AvxVnni,
                );
                assert!(
                    one.iter()
                        .zip(&got[j * rows..(j + 1) * rows])
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{fmt:?}: act {j} alone differs from act {j} in a tile"
                );
            }
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_or_in_a_tile() {
        // Rows 0-3 go through the tiled kernel, row 4 through the row
        // kernel; alone, each goes through the row kernel.
        let (rows, cols, n) = (19, 512, 5);
        for fmt in ALL {
            let m = matrix(fmt, rows, cols, 17);
            let x = input(n, cols, 23);
            for isa in Isa::available() {
                let mut acts = Activations::new();
                let mut all = vec![0f32; n * rows];
                m.matmul(&x, &mut acts, &mut all, isa);
                for j in 0..n {
                    let mut one = vec![0f32; rows];
                    m.matmul(&x[j * cols..(j + 1) * cols], &mut acts, &mut one, isa);
                    let same = one
                        .iter()
                        .zip(&all[j * rows..(j + 1) * rows])
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{fmt:?} {isa:?} row {j}");
                }
            }
        }
    }

    #[test]
    fn activations_quantise_identically_on_every_isa() {
        let cols = 512;
        // Ties (0.5 steps) and zero blocks included.
        let mut x = input(3, cols, 21);
        x[..32].fill(0.0);
        for (i, v) in x[32..64].iter_mut().enumerate() {
            *v = (i as f32 - 16.0) * 127.0 / 16.0 / 254.0 * 2.0 + 0.5;
        }
        for fmt in [Format::Q8_0, Format::Q4_1, Format::Q4K] {
            let mut want = Activations::new();
            want.quantize(&x, cols, fmt, Isa::Portable);
            for isa in Isa::available() {
                let mut got = Activations::new();
                got.quantize(&x, cols, fmt, isa);
                assert_eq!(got.qs, want.qs, "{fmt:?} {isa:?}");
                assert_eq!(got.d, want.d, "{fmt:?} {isa:?}");
                assert_eq!(got.s, want.s, "{fmt:?} {isa:?}");
                assert_eq!(got.sums, want.sums, "{fmt:?} {isa:?}");
            }
        }
    }

    #[test]
    fn dequantised_rows_give_the_same_products_as_float_weights() {
        // For Q8 activations the product is Σ w·(d·q); rebuilding the
        // activation from its quantised form and the weights from
        // `dequantize_row` must give the reference result.
        let cols = 256;
        for fmt in ALL {
            let m = matrix(fmt, 3, cols, 5);
            let x = input(1, cols, 9);
            let mut acts = Activations::new();
            acts.quantize(&x, cols, fmt, Isa::Portable);
            let a = acts.row(0);
            let xq: Vec<f32> = match fmt {
                Format::F32 | Format::F16 => a.f.to_vec(),
                _ => {
                    let per = fmt.block().0;
                    a.qs.iter()
                        .enumerate()
                        .map(|(i, &q)| q as f32 * a.d[i / per])
                        .collect()
                }
            };
            let mut w = vec![0f32; cols];
            for r in 0..3 {
                m.dequantize_row(r, &mut w);
                let float: f32 = w.iter().zip(&xq).map(|(a, b)| a * b).sum();
                let want = dot(fmt, m.row(r), a);
                assert!(
                    (float - want).abs() <= 1e-3 * (1.0 + want.abs()),
                    "{fmt:?}: {float} vs {want}"
                );
            }
        }
    }
}
