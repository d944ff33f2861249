//! Weight matrices and their products: the dispatch from a product to the
//! kernel of its layout and instruction set, split over rayon's pool.

use rayon::prelude::*;

use super::act::Activations;
use super::blocks::block32;
use super::bytes::Bytes;
use super::format::Format;
use super::layout::{ActRow, Interleaved, Packed, PackedK4, PackedK6, PackedKind, Records, TILE};
use super::reference::dot;
use crate::{Isa, KernelError};

/// A weight matrix of `rows` outputs by `cols` inputs, kept in its GGUF
/// encoding.
pub struct QMatrix {
    pub(super) fmt: Format,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_bytes: usize,
    /// Rows in the GGUF layout (empty when `interleaved` holds them).
    pub(super) data: Bytes,
    /// The rows interleaved for AVX-VNNI, when [`QMatrix::repacked`] did so.
    pub(super) interleaved: Option<Interleaved>,
}

/// Output rows for one task of a product.
const ROWS_PER_TASK: usize = 32;

struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint elements (distinct weight rows).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The interleaved layout of a `K`-quant matrix for `isa`, if it has one
/// (see [`QMatrix::repacked`]).
fn k_layout(fmt: Format, rows: usize, cols: usize, data: &[u8], isa: Isa) -> Option<Interleaved> {
    if !isa.has_vnni() || !rows.is_multiple_of(8) {
        return None;
    }
    match fmt {
        Format::Q4K => Some(Interleaved::Q4K(PackedK4::build(rows, cols, data))),
        // Q6_K groups run on AVX-512 alone.
        Format::Q6K if isa == Isa::Avx512Vnni => {
            Some(Interleaved::Q6K(PackedK6::build(rows, cols, data)))
        }
        _ => None,
    }
}

/// How a [`QMatrix`] keeps its values (see [`QMatrix::repacked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Rows as GGUF stores them (`Q4_0` and `Q5_0` widened to `Q8_0`).
    Rows,
    /// `Q8_0` or `Q4_1` rows interleaved eight at a time.
    Packed,
    /// `Q4_K` records of eight rows.
    K4,
    /// `Q6_K` records of eight rows, two groups side by side.
    K6,
}

impl Layout {
    pub const ALL: [Layout; 4] = [Layout::Rows, Layout::Packed, Layout::K4, Layout::K6];

    /// The layout [`QMatrix::repacked`] gives `rows` rows of `fmt` on `isa`
    /// (`fmt` as the result stores it: `Q8_0` for widened `Q4_0` rows).
    pub fn planned(fmt: Format, rows: usize, isa: Isa) -> Layout {
        if !isa.has_vnni() || !rows.is_multiple_of(8) {
            return Layout::Rows;
        }
        match fmt {
            Format::Q4K => Layout::K4,
            Format::Q6K if isa == Isa::Avx512Vnni => Layout::K6,
            Format::Q4_1 if isa.vex_vnni() => Layout::Packed,
            Format::Q8_0 => Layout::Packed,
            _ => Layout::Rows,
        }
    }
}

impl QMatrix {
    pub fn new(
        name: &str,
        fmt: Format,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    ) -> Result<Self, KernelError> {
        let row_bytes = Self::check(name, fmt, rows, cols, data.len())?;
        Ok(Self {
            fmt,
            rows,
            cols,
            row_bytes,
            data: data.into(),
            interleaved: None,
        })
    }

    /// As [`QMatrix::new`] then [`QMatrix::repacked`], from borrowed rows
    /// (a memory-mapped file): the `K`-quant layouts, rebuilt anyway, are
    /// built straight from `data`, with no owned copy of the stored rows.
    pub fn repacked_from(
        name: &str,
        fmt: Format,
        rows: usize,
        cols: usize,
        data: &[u8],
        isa: Isa,
    ) -> Result<Self, KernelError> {
        let row_bytes = Self::check(name, fmt, rows, cols, data.len())?;
        match k_layout(fmt, rows, cols, data, isa) {
            Some(il) => Ok(Self {
                fmt,
                rows,
                cols,
                row_bytes,
                data: Bytes::default(),
                interleaved: Some(il),
            }),
            None => Ok(Self::new(name, fmt, rows, cols, data.to_vec())?.repacked(isa)),
        }
    }

    /// Checks that `len` bytes hold `rows` × `cols` values of `fmt`, and
    /// returns the bytes of a row.
    fn check(
        name: &str,
        fmt: Format,
        rows: usize,
        cols: usize,
        len: usize,
    ) -> Result<usize, KernelError> {
        let bad = |reason: String| KernelError::BadMatrix {
            name: name.to_string(),
            reason,
        };
        let (per, _) = fmt.block();
        if cols == 0 || !cols.is_multiple_of(per) {
            return Err(bad(format!("rows of {cols} are not whole {fmt:?} blocks")));
        }
        let row_bytes = fmt.row_bytes(cols);
        if len != rows * row_bytes {
            return Err(bad(format!(
                "{len} bytes for {rows} × {cols} {fmt:?} values (want {})",
                rows * row_bytes
            )));
        }
        Ok(row_bytes)
    }

    pub fn format(&self) -> Format {
        self.fmt
    }

    /// The matrix in the layout `isa`'s kernels run fastest on, holding
    /// the same values:
    ///
    /// * `Q4_0` and `Q5_0` blocks become `Q8_0` blocks with the same values
    ///   and scale (18 or 22 → 34 bytes per 32 values), which the kernels
    ///   decode in one load instead of unpacking nibbles and fifth bits, and
    ///   which AVX-VNNI then interleaves; the integer sums are unchanged;
    /// * with AVX-VNNI, `Q8_0` and `Q4_1` matrices whose rows come in
    ///   eights are interleaved eight rows at a time (see [`Packed`]; same
    ///   size), and `Q4_K` ones too ([`PackedK4`]);
    /// * with AVX-512 VNNI, `Q6_K` ones as well ([`PackedK6`]).
    ///
    /// Other matrices are returned as they are.
    pub fn repacked(self, isa: Isa) -> QMatrix {
        let mut m = self.widened_to_q8_0();
        if !isa.has_vnni() || m.interleaved.is_some() || !m.rows.is_multiple_of(8) {
            return m;
        }
        m.interleaved = match m.fmt {
            Format::Q4K | Format::Q6K => {
                let il = k_layout(m.fmt, m.rows, m.cols, &m.data, isa);
                if il.is_some() {
                    m.data = Bytes::default();
                }
                il
            }
            // Q4_1 groups run on AVX-VNNI alone.
            Format::Q4_1 if !isa.vex_vnni() => None,
            Format::Q8_0 | Format::Q4_1 => match std::mem::take(&mut m.data) {
                Bytes::Owned(rows) => Some(Interleaved::Rows(Packed::build(m.fmt, m.cols, rows))),
                shared => {
                    m.data = shared;
                    None
                }
            },
            _ => None,
        };
        m
    }

    fn widened_to_q8_0(self) -> QMatrix {
        if !matches!(self.fmt, Format::Q4_0 | Format::Q5_0) {
            return self;
        }
        let bytes = self.fmt.block().1;
        let mut data = Vec::with_capacity(self.data.len() / bytes * 34);
        for blk in self.data.chunks_exact(bytes) {
            let (q, _, _) = block32(self.fmt, blk);
            data.extend_from_slice(&blk[0..2]);
            data.extend(q.iter().map(|&v| v as u8));
        }
        QMatrix {
            fmt: Format::Q8_0,
            rows: self.rows,
            cols: self.cols,
            row_bytes: Format::Q8_0.row_bytes(self.cols),
            data: data.into(),
            interleaved: None,
        }
    }

    /// How the matrix is laid out, and its bytes in that layout: with
    /// [`QMatrix::from_layout`], a loaded model's layouts can be saved and
    /// read back without building them again.
    pub fn layout(&self) -> (Layout, &[u8]) {
        match &self.interleaved {
            None => (Layout::Rows, &self.data),
            Some(Interleaved::Rows(p)) => (Layout::Packed, &p.data),
            Some(Interleaved::Q4K(p)) => (Layout::K4, &p.rec.data),
            Some(Interleaved::Q6K(p)) => (Layout::K6, &p.rec.data),
        }
    }

    /// A matrix from bytes [`QMatrix::layout`] gave, for the same `isa`:
    /// what [`QMatrix::repacked`] would have built, without building it.
    ///
    /// The layout must be plain rows or the one `repacked` gives `fmt` and
    /// `rows` on `isa`, and `bytes` its exact size; anything else (a file of layouts
    /// that is damaged, or was made for another instruction set) is a
    /// [`KernelError::BadMatrix`], so the caller can build them again.
    pub fn from_layout(
        name: &str,
        fmt: Format,
        rows: usize,
        cols: usize,
        layout: Layout,
        bytes: Bytes,
        isa: Isa,
    ) -> Result<Self, KernelError> {
        let bad = |reason: String| KernelError::BadMatrix {
            name: name.to_string(),
            reason,
        };
        let row_bytes = Self::check(name, fmt, rows, cols, rows * fmt.row_bytes(cols))?;
        // Plain rows multiply on every instruction set; the interleaved
        // layouts only on the one that built them.
        let planned = Layout::planned(fmt, rows, isa);
        if layout != Layout::Rows && layout != planned {
            return Err(bad(format!(
                "laid out as {layout:?}, where {fmt:?} rows on {} are {planned:?}",
                isa.name()
            )));
        }
        let want = match layout {
            Layout::Rows | Layout::Packed => rows * row_bytes,
            Layout::K4 => Records::size(rows, cols, PackedK4::BYTES),
            Layout::K6 => Records::size(rows, cols, PackedK6::BYTES),
        };
        if bytes.len() != want {
            return Err(bad(format!(
                "{} bytes laid out as {layout:?}, where {rows} × {cols} {fmt:?} values take {want}",
                bytes.len()
            )));
        }
        let nb = cols / fmt.block().0;
        let records = |bytes, size| Records {
            nb,
            bytes: size,
            data: bytes,
        };
        let (data, interleaved) = match layout {
            Layout::Rows => (bytes, None),
            Layout::Packed => {
                let kind = if fmt == Format::Q8_0 {
                    PackedKind::Q8
                } else {
                    PackedKind::Q4_1
                };
                let p = Packed {
                    kind,
                    nb,
                    data: bytes,
                };
                (Bytes::default(), Some(Interleaved::Rows(p)))
            }
            Layout::K4 => {
                let rec = records(bytes, PackedK4::BYTES);
                (Bytes::default(), Some(Interleaved::Q4K(PackedK4 { rec })))
            }
            Layout::K6 => {
                let rec = records(bytes, PackedK6::BYTES);
                (Bytes::default(), Some(Interleaved::Q6K(PackedK6 { rec })))
            }
        };
        Ok(Self {
            fmt,
            rows,
            cols,
            row_bytes,
            data,
            interleaved,
        })
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
            Some(Interleaved::Q6K(p)) => p.dequantize_row(r, out),
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
            // Only built for the VNNI instruction sets, and `r0`, `r1` are
            // multiples of 8 (tasks take whole groups).
            assert!(isa.has_vnni() && r0.is_multiple_of(8) && r1.is_multiple_of(8));
            // Activation rows per call: eight for the 512-bit `K`-quant
            // kernels (the weights' unpacking shared by more rows; prompts
            // read 10% faster than with four), else four.
            let width = match il {
                Interleaved::Q4K(_) | Interleaved::Q6K(_) if isa == Isa::Avx512Vnni => 8,
                _ => 4,
            };
            for (t, tile) in act_rows.chunks(width).enumerate() {
                let first = t * width;
                let corr = acts.corr_rows(first, tile.len());
                let mut g = r0 / 8;
                while g < r1 / 8 {
                    // Two groups at a time on 512 bits (an odd last one
                    // paired with itself), else one on 256.
                    if isa == Isa::Avx512Vnni {
                        let g1 = if g + 1 < r1 / 8 { g + 1 } else { g };
                        let mut o = [[0f32; 16]; 8];
                        // SAFETY: `Isa::Avx512Vnni` is only chosen when the
                        // CPU has AVX-512 F, BW, VL and VNNI, AVX2, FMA and
                        // F16C; `Q4_1` is interleaved only with AVX-VNNI.
                        unsafe {
                            match il {
                                Interleaved::Rows(p) => {
                                    crate::avx512::packed2(p, g, g1, tile, corr, &mut o)
                                }
                                Interleaved::Q4K(p) => {
                                    crate::avx512::packed2_q4k(p, g, g1, tile, &mut o)
                                }
                                Interleaved::Q6K(p) => {
                                    crate::avx512::packed2_q6k(p, g, g1, tile, &mut o)
                                }
                            }
                        };
                        let lanes = if g1 == g { 8 } else { 16 };
                        for (k, o) in o[..tile.len()].iter().enumerate() {
                            for (l, &v) in o[..lanes].iter().enumerate() {
                                // SAFETY: as below.
                                unsafe { *out.0.add((first + k) * rows + g * 8 + l) = v };
                            }
                        }
                        g += lanes / 8;
                        continue;
                    }
                    let mut o = [[0f32; 8]; 4];
                    // SAFETY: the VNNI instruction sets are only chosen when
                    // the CPU has AVX2, FMA, F16C and AVX-VNNI.
                    unsafe {
                        match il {
                            Interleaved::Rows(p) => crate::avx2::packed(p, g, tile, corr, &mut o),
                            Interleaved::Q4K(p) => crate::avx2::packed_q4k(p, g, tile, &mut o),
                            Interleaved::Q6K(_) => {
                                unreachable!("Q6_K is interleaved for AVX-512 VNNI alone")
                            }
                        }
                    };
                    for (k, o) in o[..tile.len()].iter().enumerate() {
                        for (l, &v) in o.iter().enumerate() {
                            // SAFETY: as below.
                            unsafe { *out.0.add((first + k) * rows + g * 8 + l) = v };
                        }
                    }
                    g += 1;
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
                        if isa.vex_vnni() {
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
            Isa::AvxVnni | Isa::Avx512Vnni if isa.vex_vnni() => {
                // SAFETY: `vex_vnni` holds only when the CPU has AVX2, FMA,
                // F16C and AVX-VNNI.
                unsafe { crate::avx2::dot_rows_vnni(self.fmt, w, acts, out) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512Vnni => {
                // SAFETY: `Isa::Avx2` and `Isa::Avx512Vnni` are only chosen
                // when the CPU has AVX2, FMA and F16C.
                unsafe { crate::avx2::dot_rows(self.fmt, w, acts, out) }
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
        acts.prepare_for(m.fmt, m.interleaved.as_ref(), isa);
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
