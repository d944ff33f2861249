//! Decoding GGUF blocks into their integer values, scales and minimums:
//! the plain-Rust meaning of each format, shared by the reference product,
//! the repacking at load and the row decoder.

use half::f16;

use super::format::{Format, QK, QK_K};

impl Format {
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

#[inline(always)]
pub(crate) fn rd_f16(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

#[inline(always)]
pub(crate) fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size, alignment and validity.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i8, b.len()) }
}

pub(super) fn isum(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// The 32 values of a 32-block format, with its scale and offset.
pub(super) fn block32(fmt: Format, blk: &[u8]) -> ([i8; QK], f32, f32) {
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
pub(super) fn block_k45(fmt: Format, blk: &[u8]) -> ([i8; QK_K], [u8; 8], [u8; 8]) {
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
pub(super) fn block_q6k(blk: &[u8]) -> [i8; QK_K] {
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
