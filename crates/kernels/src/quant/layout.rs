//! The data layouts the SIMD back ends read: activation rows and groups,
//! and weight rows interleaved eight at a time at load. The portable code
//! builds and decodes them here; `avx2.rs` reads them and imports nothing
//! else from the product's dispatch.

use super::blocks::{block_q6k, k_scales, rd_f16};
use super::bytes::Bytes;
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
    /// Q8_K, for [`PackedK4`] weights: per block, four words each holding
    /// two 32-value sums as i16 (values `64w..64w + 32` low, the next 32
    /// high), for the AVX-512 kernel's `vpdpwssd` against the minimums.
    pub pairs: &'a [i32],
}

/// Weight rows interleaved eight at a time (see [`QMatrix::repacked`]).
pub(crate) enum Interleaved {
    Rows(Packed),
    Q4K(PackedK4),
    Q6K(PackedK6),
}

/// Interleaved `K`-quant blocks as records, one per group of eight rows
/// and 256-value block, stored so that a pair of groups reads as one
/// stream: record `(g, i)` is at index `((g / 2)·nb + i)·2 + g % 2`, the
/// two groups' records of block `i` side by side, and an odd last group
/// gets an empty partner.
///
/// Decoding reads every weight once per token straight from memory, and
/// there one stream is faster than several: with values, scales, minimums
/// and factors in four arrays and the two groups of a pair apart, the
/// AVX-512 kernels read eight streams and moved 13 GB/s on one core where
/// a single stream moved 20 or more.
pub(crate) struct Records {
    pub(crate) nb: usize,
    pub(crate) bytes: usize,
    pub(crate) data: Bytes,
}

impl Records {
    fn new(rows: usize, cols: usize, bytes: usize) -> Records {
        Records {
            nb: cols / QK_K,
            bytes,
            data: vec![0u8; Self::size(rows, cols, bytes)].into(),
        }
    }

    /// The bytes of the records of a `rows` × `cols` matrix, `bytes` each.
    pub(crate) fn size(rows: usize, cols: usize, bytes: usize) -> usize {
        (rows / 8).div_ceil(2) * 2 * (cols / QK_K) * bytes
    }

    /// The offset of record `(g, i)`.
    #[inline(always)]
    pub(crate) fn at(&self, g: usize, i: usize) -> usize {
        (((g / 2) * self.nb + i) * 2 + g % 2) * self.bytes
    }

    /// Record `(g, i)`.
    #[inline(always)]
    pub(crate) fn get(&self, g: usize, i: usize) -> &[u8] {
        &self.data[self.at(g, i)..][..self.bytes]
    }

    fn get_mut(&mut self, g: usize, i: usize) -> &mut [u8] {
        let at = self.at(g, i);
        &mut self.data.building()[at..at + self.bytes]
    }

    /// The records of block `i` of group `g`'s pair (`g` and its partner),
    /// as one.
    #[inline(always)]
    pub(crate) fn pair(&self, g: usize, i: usize) -> &[u8] {
        &self.data[self.at(g - g % 2, i)..][..2 * self.bytes]
    }

    fn pair_mut(&mut self, g: usize, i: usize) -> &mut [u8] {
        let at = self.at(g - g % 2, i);
        &mut self.data.building()[at..at + 2 * self.bytes]
    }

    /// Whether groups `0..=last` are all stored.
    pub(crate) fn holds(&self, last: usize) -> bool {
        self.data.len() >= ((last / 2 + 1) * self.nb * 2) * self.bytes
    }
}

/// A `Q4_K` matrix with eight rows interleaved for the VNNI kernels, like
/// [`Packed`]: exactly the file's 4.5 bits per weight.
///
/// Each [`Records`] record (group of eight rows, 256-value block) holds:
/// * at [`PackedK4::VALS`], four 64-value chunks of eight 32-byte vectors;
///   byte `(row l, p)` of vector `k` of chunk `j` is the row's byte
///   `32j + 4k + p`, whose low nibble is value `64j + 4k + p` and high
///   nibble value `64j + 32 + 4k + p`;
/// * the eight rows' six-bit scales and minimums per 32-value sub-block,
///   numbered `t = 8·sub + l` (sub-block, then row), split for a few
///   vector instructions to join them (see [`PackedK4::scales`]): at
///   [`PackedK4::LO`], byte `t` holds scale `t`'s four low bits and, in its
///   high nibble, minimum `t`'s; at [`PackedK4::HI`], byte `u` holds the
///   two high bits of scale `u`, scale `u + 32`, minimum `u` and minimum
///   `u + 32`, from its lowest bits up. Decoded to a byte each at load,
///   they made the layout 4.625 bits per weight, 2.8% more to read per
///   token;
/// * at [`PackedK4::D`] and [`PackedK4::DMIN`], the eight rows' factors as
///   the file's f16 (widened by the kernels: exact; as f32 they made the
///   layout 4.75 bits per weight).
pub(crate) struct PackedK4 {
    pub(crate) rec: Records,
}

impl PackedK4 {
    pub(crate) const VALS: usize = 0;
    pub(crate) const LO: usize = 1024;
    pub(crate) const HI: usize = 1088;
    pub(crate) const D: usize = 1120;
    pub(crate) const DMIN: usize = 1136;
    pub(crate) const BYTES: usize = 1152;

    pub(crate) fn build(rows: usize, cols: usize, data: &[u8]) -> PackedK4 {
        let mut rec = Records::new(rows, cols, Self::BYTES);
        let nb = rec.nb;
        let row_bytes = nb * 144;
        for g in 0..rows / 8 {
            for i in 0..nb {
                let out = rec.get_mut(g, i);
                for l in 0..8 {
                    let blk = &data[(g * 8 + l) * row_bytes + i * 144..][..144];
                    out[Self::D + 2 * l..][..2].copy_from_slice(&blk[0..2]);
                    out[Self::DMIN + 2 * l..][..2].copy_from_slice(&blk[2..4]);
                    let (sc, mn) = k_scales(&blk[4..16]);
                    for sub in 0..8 {
                        let t = sub * 8 + l;
                        out[Self::LO + t] = (sc[sub] & 0x0F) | (mn[sub] & 0x0F) << 4;
                        let shift = if t < 32 { 0 } else { 2 };
                        out[Self::HI + t % 32] |=
                            (sc[sub] >> 4) << shift | (mn[sub] >> 4) << (shift + 4);
                    }
                    let qs = &blk[16..144];
                    for j in 0..4 {
                        for k in 0..8 {
                            for q in 0..4 {
                                out[Self::VALS + j * 256 + k * 32 + l * 4 + q] =
                                    qs[32 * j + 4 * k + q];
                            }
                        }
                    }
                }
            }
        }
        PackedK4 { rec }
    }

    /// A record's scales and minimums, byte `t = 8·sub + l` each: what the
    /// kernels' vector form of this computes (`avx2::k4_scales`).
    pub(crate) fn scales(rec: &[u8]) -> ([u8; 64], [u8; 64]) {
        let (mut sc, mut mn) = ([0u8; 64], [0u8; 64]);
        for t in 0..64 {
            let (lo, hi) = (rec[Self::LO + t], rec[Self::HI + t % 32]);
            let hi = if t < 32 { hi } else { hi >> 2 };
            sc[t] = (lo & 0x0F) | (hi & 0x03) << 4;
            mn[t] = (lo >> 4) | (hi >> 4 & 0x03) << 4;
        }
        (sc, mn)
    }

    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (g, l) = (r / 8, r % 8);
        for i in 0..self.rec.nb {
            let rec = self.rec.get(g, i);
            let (d, dmin) = (
                rd_f16(rec, Self::D + 2 * l),
                rd_f16(rec, Self::DMIN + 2 * l),
            );
            let (sc, mn) = Self::scales(rec);
            for j in 0..4 {
                for k in 0..8 {
                    for q in 0..4 {
                        let b = rec[Self::VALS + j * 256 + k * 32 + l * 4 + q];
                        for (half, v) in [(0, b & 0x0F), (1, b >> 4)] {
                            let sub = 2 * j + half;
                            let at = i * QK_K + 64 * j + 32 * half + 4 * k + q;
                            out[at] = d * sc[sub * 8 + l] as f32 * v as f32
                                - dmin * mn[sub * 8 + l] as f32;
                        }
                    }
                }
            }
        }
    }
}

/// A `Q6_K` matrix with eight rows interleaved and two groups of eight
/// side by side, for the AVX-512 VNNI kernel alone: exactly the file's
/// 6.5625 bits per weight.
///
/// Values are stored unsigned (`q + 32`, in `0..64`) and split as the file
/// splits them, four low bits and two high bits. A pair of groups (`2p`
/// and `2p + 1`) takes two [`Records`] records per block, read as one,
/// whose every field holds the first group's unit and then the second's,
/// so that one 64-byte load fills a 512-bit register with the same unit of
/// both groups:
/// * at [`PackedK6::QL`], four 64-value chunks of eight vector pairs; byte
///   `(row l, p)` of a group's vector `k` of chunk `j` holds the low bits
///   of value `64j + 4k + p` in its low nibble and of value
///   `64j + 32 + 4k + p` in its high nibble;
/// * at [`PackedK6::QH`], two 128-value halves of eight vector pairs;
///   bits `2t, 2t + 1` of byte `(row l, p)` of a group's vector `k` of half
///   `h` are the high bits of value `128h + 32t + 4k + p`, so that one load
///   serves four nibble vectors;
/// * at [`PackedK6::SC`], per 16-value sub-block, each group's eight rows'
///   signed scales;
/// * at [`PackedK6::D`], each group's eight rows' factors, as the file's
///   f16 (widened by the kernel: exact).
///
/// An earlier layout kept each group's record whole (the two 1.2 KB
/// apart) with f32 factors; joining the halves of every register cost the
/// kernel as much as the arithmetic (docs/benchmarks.md).
pub(crate) struct PackedK6 {
    pub(crate) rec: Records,
}

impl PackedK6 {
    pub(crate) const QL: usize = 0;
    pub(crate) const QH: usize = 2048;
    pub(crate) const SC: usize = 3072;
    pub(crate) const D: usize = 3328;
    /// Bytes per group and block (a pair's record is twice this).
    pub(crate) const BYTES: usize = 1680;

    pub(crate) fn build(rows: usize, cols: usize, data: &[u8]) -> PackedK6 {
        let mut rec = Records::new(rows, cols, Self::BYTES);
        let nb = rec.nb;
        let row_bytes = nb * 210;
        for g in 0..rows / 8 {
            let side = g % 2;
            for i in 0..nb {
                let out = rec.pair_mut(g, i);
                for l in 0..8 {
                    let blk = &data[(g * 8 + l) * row_bytes + i * 210..][..210];
                    let d = Self::D + 16 * side + 2 * l;
                    out[d..d + 2].copy_from_slice(&blk[208..210]);
                    for sub in 0..16 {
                        out[Self::SC + 16 * sub + 8 * side + l] = blk[192 + sub];
                    }
                    let u = block_q6k(blk).map(|q| (q + 32) as u8);
                    for k in 0..8 {
                        for q in 0..4 {
                            let at = 64 * k + 32 * side + 4 * l + q;
                            for j in 0..4 {
                                let v = 64 * j + 4 * k + q;
                                out[Self::QL + 512 * j + at] = (u[v] & 0x0F) | (u[v + 32] << 4);
                            }
                            for h in 0..2 {
                                let mut bits = 0u8;
                                for t in 0..4 {
                                    bits |= (u[128 * h + 32 * t + 4 * k + q] >> 4) << (2 * t);
                                }
                                out[Self::QH + 512 * h + at] = bits;
                            }
                        }
                    }
                }
            }
        }
        PackedK6 { rec }
    }

    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (g, l) = (r / 8, r % 8);
        let side = g % 2;
        for i in 0..self.rec.nb {
            let rec = self.rec.pair(g, i);
            let d = rd_f16(rec, Self::D + 16 * side + 2 * l);
            for v in 0..QK_K {
                let (j, half, k, q) = (v / 64, (v / 32) % 2, (v % 32) / 4, v % 4);
                let at = 64 * k + 32 * side + 4 * l + q;
                let lo = (rec[Self::QL + 512 * j + at] >> (4 * half)) & 0x0F;
                let t = (v % 128) / 32;
                let hi = (rec[Self::QH + 512 * (v / 128) + at] >> (2 * t)) & 3;
                let q = (lo | (hi << 4)) as i32 - 32;
                let sc = rec[Self::SC + 16 * (v / 16) + 8 * side + l] as i8;
                out[i * QK_K + v] = d * sc as f32 * q as f32;
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
    pub(crate) data: Bytes,
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
            data: Bytes::default(),
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
        Packed {
            data: data.into(),
            ..p
        }
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
