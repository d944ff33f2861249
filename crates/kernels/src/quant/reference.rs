//! The portable reference: activation quantisers and the block-by-block
//! dot product every faster kernel is tested against.

use half::f16;

use super::blocks::{block32, block_k45, block_q6k, bytemuck_i8, isum, rd_f16};
use super::format::{Format, QK, QK_K};
use super::layout::ActRow;

pub(super) fn f16r(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Round half to even, as `_mm256_round_ps(_MM_ROUND_NEAREST)` does.
#[inline(always)]
pub(super) fn rne(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// Quantises 32-value blocks to Q8_0 (and, with `s`, Q8_1's scaled sums):
/// scale `max |x| / 127` rounded to f16, values rounded half to even.
pub(crate) fn quantize_q8(x: &[f32], qs: &mut [i8], d: &mut [f32], mut s: Option<&mut [f32]>) {
    for (i, ((x, qs), d)) in x
        .chunks_exact(QK)
        .zip(qs.chunks_exact_mut(QK))
        .zip(d.iter_mut())
        .enumerate()
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
        if let Some(s) = s.as_deref_mut() {
            s[i] = f16r(dd * sum as f32);
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
