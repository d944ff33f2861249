//! Activations: the input rows of a product, quantised per block into the
//! form the weight format multiplies with, kept between calls.

use rayon::prelude::*;

use super::format::{ActKind, Format, QK, QK_K};
use super::layout::{ActGroup, ActRow, Interleaved, PackedKind};
use super::reference::{f16r, quantize_q8, quantize_q8k};
use crate::Isa;

/// Activation rows in the form one weight format multiplies with, kept
/// between calls so that a decoding step allocates nothing.
#[derive(Default)]
pub struct Activations {
    pub(super) kind: Option<ActKind>,
    pub(super) cols: usize,
    pub(super) n: usize,
    /// f32 (or f16-rounded) values, for float weights.
    pub(super) f: Vec<f32>,
    pub(super) qs: Vec<i8>,
    /// Per block: the scale.
    pub(super) d: Vec<f32>,
    /// Per block: `d * Σq` (Q8_1).
    pub(super) s: Vec<f32>,
    /// Per 16 values: `Σq` (Q8_K).
    pub(super) sums: Vec<i32>,
    /// Whole groups of four rows interleaved block by block (see
    /// [`ActGroup`]), for the tiled kernels; built on demand.
    pub(super) groups: usize,
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
    /// Per block: the 32-value sums of Q8_K rows two to a word (see
    /// [`ActRow::pairs`]), for interleaved `Q4_K` weights; built on demand.
    pairs: Vec<i32>,
}

/// One row's input, values, scales and sums, as quantisation walks them.
type Q8Rows<'a> = ((&'a [f32], &'a mut [i8]), (&'a mut [f32], &'a mut [f32]));
type Q8KRows<'a> = ((&'a [f32], &'a mut [i8]), (&'a mut [f32], &'a mut [i32]));

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
        self.pairs.clear();
    }

    /// Derives, once per quantisation, what the kernels of `m` read besides
    /// the rows: the four-row interleave of the tiled kernels, or the block
    /// sums of the eight-row interleaved ones.
    pub(super) fn prepare_for(&mut self, fmt: Format, interleaved: Option<&Interleaved>, isa: Isa) {
        match interleaved {
            Some(Interleaved::Rows(p)) if p.kind == PackedKind::Q8 => {
                if self.corr.is_empty() {
                    self.corr.extend(
                        self.qs
                            .chunks_exact(QK)
                            .map(|b| 128 * b.iter().map(|&q| q as i32).sum::<i32>()),
                    );
                }
            }
            // Only the AVX-512 kernel reads them.
            Some(Interleaved::Q4K(_)) if isa == Isa::Avx512Vnni => {
                if self.pairs.is_empty() {
                    // |Σ| ≤ 32·127 fits an i16.
                    self.pairs.extend(self.sums.chunks_exact(4).map(|s| {
                        let lo = (s[0] + s[1]) as i16 as u16 as u32;
                        let hi = (s[2] + s[3]) as i16 as u16 as u32;
                        (lo | hi << 16) as i32
                    }));
                }
            }
            Some(_) => {}
            None => {
                #[cfg(target_arch = "x86_64")]
                let tiled = crate::avx2::tiled(fmt);
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
                    let s = if q8_1 { Some(s) } else { None };
                    #[cfg(target_arch = "x86_64")]
                    if isa.has_avx2() {
                        // SAFETY: the AVX2 instruction sets are only chosen when the CPU
                        // has AVX2, FMA and F16C.
                        unsafe { crate::avx2::quantize_q8(x, qs, d, s) };
                        return;
                    }
                    quantize_q8(x, qs, d, s);
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
                pairs: &[],
            },
            ActKind::Q8_0 | ActKind::Q8_1 => {
                let nb = cols / QK;
                ActRow {
                    f: &[],
                    qs: &self.qs[j * cols..(j + 1) * cols],
                    d: &self.d[j * nb..(j + 1) * nb],
                    s: &self.s[j * nb..(j + 1) * nb],
                    sums: &[],
                    pairs: &[],
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
                    pairs: if self.pairs.is_empty() {
                        &[]
                    } else {
                        &self.pairs[j * nb * 4..(j + 1) * nb * 4]
                    },
                }
            }
        }
    }
}
