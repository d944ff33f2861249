//! The data layouts the SIMD back ends read: activation rows and groups,
//! and weight rows interleaved eight at a time at load. The portable code
//! builds and decodes them here; `avx2.rs` reads them and imports nothing
//! else from the product's dispatch.

use super::blocks::{block_q6k, k_scales, rd_f16};
use super::format::{Format, QK, QK_K};

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

/// Weight rows interleaved eight at a time (see [`QMatrix::repacked`]).
pub(crate) enum Interleaved {
    Rows(Packed),
    Q4K(PackedK4),
    Q6K(PackedK6),
}

/// A `Q4_K` matrix with eight rows interleaved for AVX-VNNI, like
/// [`Packed`], with each block's six-bit scales and minimums decoded once at
/// load (so it takes about 40% more room than the rows it replaces).
///
/// Per group of eight rows and 256-value block: `vals` holds four 64-value
/// chunks of eight 32-byte vectors; byte `(row l, p)` of vector `k` of chunk
/// `j` is the row's byte `32j + 4k + p`, whose low nibble is value
/// `64j + 4k + p` and high nibble value `64j + 32 + 4k + p`. `sc` and `mn`
/// hold per block, per 32-value sub-block, the eight rows' six-bit scale
/// and minimum, a byte each (widened by the kernels: kept as i32 and f32
/// they made the layout 6.25 bits per weight, and decoding, which reads
/// every weight once per token, a third slower); `d` and `dmin` the eight
/// rows' factors.
pub(crate) struct PackedK4 {
    pub(crate) nb: usize,
    pub(crate) vals: Vec<u8>,
    pub(crate) sc: Vec<u8>,
    pub(crate) mn: Vec<u8>,
    pub(crate) d: Vec<f32>,
    pub(crate) dmin: Vec<f32>,
}

impl PackedK4 {
    pub(crate) fn build(rows: usize, cols: usize, data: &[u8]) -> PackedK4 {
        let nb = cols / QK_K;
        let row_bytes = nb * 144;
        let groups = rows / 8;
        let mut p = PackedK4 {
            nb,
            vals: vec![0u8; groups * nb * 1024],
            sc: vec![0; groups * nb * 64],
            mn: vec![0; groups * nb * 64],
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
                        p.sc[gi * 64 + j * 8 + l] = sc[j];
                        p.mn[gi * 64 + j * 8 + l] = mn[j];
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

    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
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
                                - dmin * self.mn[gi * 64 + sub * 8 + l] as f32;
                        }
                    }
                }
            }
        }
    }
}

/// A `Q6_K` matrix with eight rows interleaved, for the AVX-512 VNNI
/// kernel (6.625 bits per weight against the file's 6.5625).
///
/// Per group of eight rows and 256-value block, values are stored unsigned
/// (`q + 32`, in `0..64`) and split as the file splits them, four low bits
/// and two high bits:
///
/// * `ql`, as [`PackedK4`]'s `vals`: four 64-value chunks of eight 32-byte
///   vectors; byte `(row l, p)` of vector `k` of chunk `j` holds the low
///   bits of value `64j + 4k + p` in its low nibble and of value
///   `64j + 32 + 4k + p` in its high nibble;
/// * `qh`: two 128-value halves of eight 32-byte vectors; bits `2t, 2t + 1`
///   of byte `(row l, p)` of vector `k` of half `h` are the high bits of
///   value `128h + 32t + 4k + p`, so one load serves four nibble vectors;
/// * `sc`: per 16-value sub-block, the eight rows' signed scales;
/// * `d`: the eight rows' factors.
pub(crate) struct PackedK6 {
    pub(crate) nb: usize,
    pub(crate) ql: Vec<u8>,
    pub(crate) qh: Vec<u8>,
    pub(crate) sc: Vec<i8>,
    pub(crate) d: Vec<f32>,
}

impl PackedK6 {
    pub(crate) fn build(rows: usize, cols: usize, data: &[u8]) -> PackedK6 {
        let nb = cols / QK_K;
        let row_bytes = nb * 210;
        let groups = rows / 8;
        let mut p = PackedK6 {
            nb,
            ql: vec![0u8; groups * nb * 1024],
            qh: vec![0u8; groups * nb * 512],
            sc: vec![0; groups * nb * 128],
            d: vec![0.0; groups * nb * 8],
        };
        for g in 0..groups {
            for i in 0..nb {
                let gi = g * nb + i;
                for l in 0..8 {
                    let blk = &data[(g * 8 + l) * row_bytes + i * 210..][..210];
                    p.d[gi * 8 + l] = rd_f16(blk, 208);
                    for sub in 0..16 {
                        p.sc[gi * 128 + sub * 8 + l] = blk[192 + sub] as i8;
                    }
                    let u = block_q6k(blk).map(|q| (q + 32) as u8);
                    for k in 0..8 {
                        for q in 0..4 {
                            let at = l * 4 + q;
                            for j in 0..4 {
                                let v = 64 * j + 4 * k + q;
                                p.ql[gi * 1024 + j * 256 + k * 32 + at] =
                                    (u[v] & 0x0F) | (u[v + 32] << 4);
                            }
                            for h in 0..2 {
                                let mut bits = 0u8;
                                for t in 0..4 {
                                    bits |= (u[128 * h + 32 * t + 4 * k + q] >> 4) << (2 * t);
                                }
                                p.qh[gi * 512 + h * 256 + k * 32 + at] = bits;
                            }
                        }
                    }
                }
            }
        }
        p
    }

    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (g, l) = (r / 8, r % 8);
        for i in 0..self.nb {
            let gi = g * self.nb + i;
            let d = self.d[gi * 8 + l];
            for v in 0..QK_K {
                let (j, half, k, q) = (v / 64, (v / 32) % 2, (v % 32) / 4, v % 4);
                let lo = (self.ql[gi * 1024 + j * 256 + k * 32 + l * 4 + q] >> (4 * half)) & 0x0F;
                let t = (v % 128) / 32;
                let hi = (self.qh[gi * 512 + (v / 128) * 256 + k * 32 + l * 4 + q] >> (2 * t)) & 3;
                let q = (lo | (hi << 4)) as i32 - 32;
                out[i * QK_K + v] = d * self.sc[gi * 128 + (v / 16) * 8 + l] as f32 * q as f32;
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
    pub(crate) fn build(fmt: Format, cols: usize, mut data: Vec<u8>) -> Packed {
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
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
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
