//! AVX-512 VNNI products over the interleaved layouts ([`Packed`] `Q8_0`
//! rows and [`PackedK4`]), for CPUs whose 512-bit units run at full width.
//!
//! The layouts are the AVX-VNNI ones (eight rows per group, 32-byte
//! vectors), and for `Q6_K` one of its own ([`PackedK6`]). A 512-bit
//! register holds the same vector of two neighbouring groups side by side,
//! sixteen rows, so each `vpdpbusd` does the work of two while the
//! activation bytes are still broadcast straight from memory, as in the
//! 256-bit kernels. (`PackedK6` stores the two groups' vectors alternating,
//! so that a register is one load; the others join two loads.) Every lane then goes through exactly the
//! operations, in the same order, that its lane of the 256-bit kernel goes
//! through: the two kernels give the same bits. (That matters: Gemma 3,
//! whose residual stream runs into the thousands, moved a logit by 1.0 when
//! an earlier version added the blocks in another order.)
//!
//! A task's odd last group runs here too, paired with itself (half the
//! lanes discarded), so that a CPU with AVX-512 VNNI but without AVX-VNNI
//! (Zen 4, Ice Lake) needs no 256-bit `vpdpbusd`.

// Lanes and blocks are indexed as the formats lay them out.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::avx2::{k4_scales, prefetch_ahead, prefetch_slice, Prefetch};
use crate::quant::layout::{ActRow, Packed, PackedK4, PackedK6, PackedKind};
use crate::quant::{QK, QK_K};

/// Two 256-bit vectors as one 512-bit one.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
}

/// Two sets of eight bytes as sixteen i32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn widen(lo: *const u8, hi: *const u8) -> __m512i {
    _mm512_cvtepu8_epi32(_mm_unpacklo_epi64(
        _mm_loadl_epi64(lo as *const __m128i),
        _mm_loadl_epi64(hi as *const __m128i),
    ))
}

/// Two sets of eight f16 as sixteen f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn join_ph(lo: *const u8, hi: *const u8) -> __m512 {
    _mm512_cvtph_ps(_mm256_set_m128i(
        _mm_loadu_si128(hi as *const __m128i),
        _mm_loadu_si128(lo as *const __m128i),
    ))
}

/// Sixteen weight vectors' worth (eight 512-bit registers) against the
/// 32 activation bytes at `y`: sixteen lanes of `Σ w·y` (two chains, so
/// that the dot products overlap).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot16(w: &[__m512i; 8], y: *const i8) -> __m512i {
    let y = y as *const i32;
    let mut s0 = _mm512_setzero_si512();
    let mut s1 = _mm512_setzero_si512();
    for k in (0..8).step_by(2) {
        s0 = _mm512_dpbusd_epi32(s0, w[k], _mm512_set1_epi32(y.add(k).read_unaligned()));
        s1 = _mm512_dpbusd_epi32(
            s1,
            w[k + 1],
            _mm512_set1_epi32(y.add(k + 1).read_unaligned()),
        );
    }
    _mm512_add_epi32(s0, s1)
}

/// Groups `g0` and `g1` of `Q8_0` rows against up to four activation
/// rows: `out[a][l]` is row `8·g0 + l` (`l` < 8) or `8·g1 + l - 8` times
/// activation `a`. `Q4_1` groups (interleaved only where the CPU has
/// AVX-VNNI) go to the 256-bit kernel, one group at a time.
///
/// # Safety
/// The CPU must have AVX-512 (F, BW, VL, VNNI), AVX2, FMA and F16C, and
/// AVX-VNNI for `Q4_1` groups.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn packed2(
    p: &Packed,
    g0: usize,
    g1: usize,
    acts: &[ActRow<'_>],
    corr: &[i32],
    out: &mut [[f32; 16]; 8],
) {
    if p.kind != PackedKind::Q8 {
        for (half, g) in [g0, g1].into_iter().enumerate() {
            let mut o = [[0f32; 8]; 4];
            crate::avx2::packed(p, g, acts, corr, &mut o);
            for (dst, src) in out.iter_mut().zip(&o) {
                dst[8 * half..8 * half + 8].copy_from_slice(src);
            }
        }
        return;
    }
    let nb = p.nb;
    assert!((1..=4).contains(&acts.len()));
    assert!(p.data.len() >= (g0.max(g1) + 1) * p.group_bytes());
    for a in acts {
        assert!(a.qs.len() >= nb * QK && a.d.len() >= nb);
    }
    assert!(corr.len() >= acts.len() * nb);
    match acts.len() {
        1 => packed2_q8::<1>(p, g0, g1, acts, corr, out),
        2 => packed2_q8::<2>(p, g0, g1, acts, corr, out),
        3 => packed2_q8::<3>(p, g0, g1, acts, corr, out),
        _ => packed2_q8::<4>(p, g0, g1, acts, corr, out),
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn packed2_q8<const NA: usize>(
    p: &Packed,
    g0: usize,
    g1: usize,
    acts: &[ActRow<'_>],
    corr: &[i32],
    out: &mut [[f32; 16]; 8],
) {
    let nb = p.nb;
    let v0 = p.data.as_ptr().add(g0 * p.group_bytes());
    let v1 = p.data.as_ptr().add(g1 * p.group_bytes());
    let at = p.layout().0;
    let (ds0, ds1) = (v0.add(at) as *const u16, v1.add(at) as *const u16);
    let mut acc = [_mm512_setzero_ps(); NA];
    let plan = Prefetch::avx512();
    for i in 0..nb {
        prefetch_ahead(v0.add(i * 256), 256, 256, plan);
        prefetch_ahead(v1.add(i * 256), 256, 256, plan);
        let w: [__m512i; 8] = std::array::from_fn(|k| {
            join(
                _mm256_loadu_si256(v0.add(i * 256 + 32 * k) as *const __m256i),
                _mm256_loadu_si256(v1.add(i * 256 + 32 * k) as *const __m256i),
            )
        });
        // Sixteen scales: group g's eight, then group g + 1's.
        let dw = _mm512_cvtph_ps(_mm256_set_m128i(
            _mm_loadu_si128(ds1.add(i * 8) as *const __m128i),
            _mm_loadu_si128(ds0.add(i * 8) as *const __m128i),
        ));
        for a in 0..NA {
            let r = acts.get_unchecked(a);
            let isum = _mm512_sub_epi32(
                dot16(&w, r.qs.as_ptr().add(i * QK)),
                _mm512_set1_epi32(*corr.get_unchecked(a * nb + i)),
            );
            let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*r.d.get_unchecked(i)));
            acc[a] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(isum), acc[a]);
        }
    }
    for a in 0..NA {
        _mm512_storeu_ps(out[a].as_mut_ptr(), acc[a]);
    }
}

/// As [`packed2`], for [`PackedK4`] groups `g0` and `g1`, and up to eight
/// activation rows.
///
/// # Safety
/// The CPU must have AVX-512 (F, BW, VL, VNNI), AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn packed2_q4k(
    p: &PackedK4,
    g0: usize,
    g1: usize,
    acts: &[ActRow<'_>],
    out: &mut [[f32; 16]; 8],
) {
    let nb = p.rec.nb;
    assert!(p.rec.holds(g0.max(g1)));
    assert!((1..=8).contains(&acts.len()));
    for a in acts {
        assert!(a.qs.len() >= nb * QK_K && a.d.len() >= nb && a.pairs.len() >= nb * 4);
    }
    match acts.len() {
        1 => packed2_q4k_n::<1>(p, g0, g1, acts, out),
        2 => packed2_q4k_n::<2>(p, g0, g1, acts, out),
        3 => packed2_q4k_n::<3>(p, g0, g1, acts, out),
        4 => packed2_q4k_n::<4>(p, g0, g1, acts, out),
        5 => packed2_q4k_n::<5>(p, g0, g1, acts, out),
        6 => packed2_q4k_n::<6>(p, g0, g1, acts, out),
        7 => packed2_q4k_n::<7>(p, g0, g1, acts, out),
        _ => packed2_q4k_n::<8>(p, g0, g1, acts, out),
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn packed2_q4k_n<const NA: usize>(
    p: &PackedK4,
    g0: usize,
    g1: usize,
    acts: &[ActRow<'_>],
    out: &mut [[f32; 16]; 8],
) {
    let nb = p.rec.nb;
    let m4 = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); NA];
    let plan = Prefetch::avx512();
    for i in 0..nb {
        let (r0, r1) = (
            p.rec.data.as_ptr().add(p.rec.at(g0, i)),
            p.rec.data.as_ptr().add(p.rec.at(g1, i)),
        );
        let (vals0, vals1) = (r0.add(PackedK4::VALS), r1.add(PackedK4::VALS));
        let ((sc0, mn0), (sc1, mn1)) = (k4_scales(r0), k4_scales(r1));
        let (sc0, sc1) = (sc0.as_ptr(), sc1.as_ptr());
        let (mn0, mn1) = (mn0.as_ptr(), mn1.as_ptr());
        let mut iacc = [_mm512_setzero_si512(); NA];
        for j in 0..4 {
            // A pair's two records are one stream, asked for a quarter at
            // a time.
            prefetch_slice(r0, 2 * p.rec.bytes, 2 * p.rec.bytes, plan, (j, 4));
            let x: [__m512i; 8] = std::array::from_fn(|k| {
                join(
                    _mm256_loadu_si256(vals0.add(256 * j + 32 * k) as *const __m256i),
                    _mm256_loadu_si256(vals1.add(256 * j + 32 * k) as *const __m256i),
                )
            });
            for half in 0..2 {
                let w: [__m512i; 8] = std::array::from_fn(|k| {
                    if half == 0 {
                        _mm512_and_si512(x[k], m4)
                    } else {
                        _mm512_and_si512(_mm512_srli_epi16(x[k], 4), m4)
                    }
                });
                let sub = 2 * j + half;
                let scale = widen(sc0.add(8 * sub), sc1.add(8 * sub));
                for a in 0..NA {
                    let y = acts
                        .get_unchecked(a)
                        .qs
                        .as_ptr()
                        .add(i * QK_K + 64 * j + 32 * half);
                    iacc[a] = _mm512_add_epi32(iacc[a], _mm512_mullo_epi32(dot16(&w, y), scale));
                }
            }
        }
        let dv = join_ph(r0.add(PackedK4::D), r1.add(PackedK4::D));
        let dminv = join_ph(r0.add(PackedK4::DMIN), r1.add(PackedK4::DMIN));
        // The minimums of sub-blocks 2w and 2w + 1 as i16 pairs, lane l
        // holding row l's, once for every activation row.
        let mn: [__m512i; 4] = std::array::from_fn(|w| {
            let pair = |sub: usize| {
                _mm_unpacklo_epi64(
                    _mm_loadl_epi64(mn0.add(8 * sub) as *const __m128i),
                    _mm_loadl_epi64(mn1.add(8 * sub) as *const __m128i),
                )
            };
            let (a, b) = (pair(2 * w), pair(2 * w + 1));
            _mm512_cvtepu8_epi16(_mm256_set_m128i(
                _mm_unpackhi_epi8(a, b),
                _mm_unpacklo_epi8(a, b),
            ))
        });
        for a in 0..NA {
            let r = acts.get_unchecked(a);
            let ad = _mm512_set1_ps(*r.d.get_unchecked(i));
            // Σ minimum · sum over the eight sub-blocks, in integers: at most
            // 8·63·4,064, so exact, and the same value the 256-bit kernel's
            // f32 products reach.
            let pairs = r.pairs.as_ptr().add(i * 4);
            let mut m = _mm512_setzero_si512();
            for w in 0..4 {
                m = _mm512_dpwssd_epi32(m, mn[w], _mm512_set1_epi32(*pairs.add(w)));
            }
            let mins = _mm512_cvtepi32_ps(m);
            acc[a] = _mm512_fmadd_ps(_mm512_mul_ps(dv, ad), _mm512_cvtepi32_ps(iacc[a]), acc[a]);
            acc[a] = _mm512_fnmadd_ps(_mm512_mul_ps(dminv, ad), mins, acc[a]);
        }
    }
    for a in 0..NA {
        _mm512_storeu_ps(out[a].as_mut_ptr(), acc[a]);
    }
}

/// As [`packed2`], for [`PackedK6`] groups `g0` (even) and `g1`, its
/// partner or, for an odd last group, `g0` again, and up to eight
/// activation rows. Per 16-value sub-block,
/// `Σ (u - 32)·y = Σ u·y - 32·Σ y` with the activation's sums, times the
/// rows' scales, in integers; one conversion per block.
///
/// # Safety
/// The CPU must have AVX-512 (F, BW, VL, VNNI), AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn packed2_q6k(
    p: &PackedK6,
    g0: usize,
    g1: usize,
    acts: &[ActRow<'_>],
    out: &mut [[f32; 16]; 8],
) {
    let nb = p.rec.nb;
    assert!(g0.is_multiple_of(2) && (g1 == g0 || g1 == g0 + 1));
    assert!(p.rec.holds(g0));
    assert!((1..=8).contains(&acts.len()));
    for a in acts {
        assert!(a.qs.len() >= nb * QK_K && a.d.len() >= nb && a.sums.len() >= nb * 16);
    }
    match acts.len() {
        1 => packed2_q6k_n::<1>(p, g0, acts, out),
        2 => packed2_q6k_n::<2>(p, g0, acts, out),
        3 => packed2_q6k_n::<3>(p, g0, acts, out),
        4 => packed2_q6k_n::<4>(p, g0, acts, out),
        5 => packed2_q6k_n::<5>(p, g0, acts, out),
        6 => packed2_q6k_n::<6>(p, g0, acts, out),
        7 => packed2_q6k_n::<7>(p, g0, acts, out),
        _ => packed2_q6k_n::<8>(p, g0, acts, out),
    }
}

/// As [`dot16`], the first four weight vectors' sums (values `0..16` of
/// the 32) apart from the last four's (`16..32`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot16_halves(w: &[__m512i; 8], y: *const i8) -> (__m512i, __m512i) {
    let y = y as *const i32;
    let mut s = [_mm512_setzero_si512(); 2];
    for k in 0..8 {
        s[k / 4] =
            _mm512_dpbusd_epi32(s[k / 4], w[k], _mm512_set1_epi32(y.add(k).read_unaligned()));
    }
    (s[0], s[1])
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn packed2_q6k_n<const NA: usize>(
    p: &PackedK6,
    g0: usize,
    acts: &[ActRow<'_>],
    out: &mut [[f32; 16]; 8],
) {
    let nb = p.rec.nb;
    let m4 = _mm512_set1_epi8(0x0F);
    let m30 = _mm512_set1_epi8(0x30);
    let mut acc = [_mm512_setzero_ps(); NA];
    let plan = Prefetch::avx512();
    for i in 0..nb {
        let r = p.rec.data.as_ptr().add(p.rec.at(g0, i));
        let mut iacc = [_mm512_setzero_si512(); NA];
        for j in 0..4 {
            for half in 0..2 {
                let step = (2 * j + half, 8);
                prefetch_slice(r, 2 * p.rec.bytes, 2 * p.rec.bytes, plan, step);
                // Values 32t.. of this 128-value half (t = 2(j mod 2) +
                // half): low bits from the nibbles, bits 2t, 2t + 1 of the
                // high-bit vectors moved to 4, 5.
                let w: [__m512i; 8] = std::array::from_fn(|k| {
                    let x = _mm512_loadu_si512(r.add(PackedK6::QL + 512 * j + 64 * k) as *const _);
                    let hq = _mm512_loadu_si512(
                        r.add(PackedK6::QH + 512 * (j / 2) + 64 * k) as *const _
                    );
                    let lo = if half == 0 {
                        _mm512_and_si512(x, m4)
                    } else {
                        _mm512_and_si512(_mm512_srli_epi16(x, 4), m4)
                    };
                    let hi = match 2 * (j % 2) + half {
                        0 => _mm512_slli_epi16(hq, 4),
                        1 => _mm512_slli_epi16(hq, 2),
                        2 => hq,
                        _ => _mm512_srli_epi16(hq, 2),
                    };
                    _mm512_or_si512(lo, _mm512_and_si512(hi, m30))
                });
                let sub = 4 * j + 2 * half;
                let sc = r.add(PackedK6::SC + 16 * sub) as *const __m128i;
                let s_lo = _mm512_cvtepi8_epi32(_mm_loadu_si128(sc));
                let s_hi = _mm512_cvtepi8_epi32(_mm_loadu_si128(sc.add(1)));
                for a in 0..NA {
                    let r = acts.get_unchecked(a);
                    let y = r.qs.as_ptr().add(i * QK_K + 64 * j + 32 * half);
                    let sums = r.sums.as_ptr().add(i * 16 + sub);
                    let (d0, d1) = dot16_halves(&w, y);
                    let d0 = _mm512_sub_epi32(d0, _mm512_set1_epi32(32 * *sums));
                    let d1 = _mm512_sub_epi32(d1, _mm512_set1_epi32(32 * *sums.add(1)));
                    iacc[a] = _mm512_add_epi32(
                        iacc[a],
                        _mm512_add_epi32(
                            _mm512_mullo_epi32(d0, s_lo),
                            _mm512_mullo_epi32(d1, s_hi),
                        ),
                    );
                }
            }
        }
        let dv = _mm512_cvtph_ps(_mm256_loadu_si256(r.add(PackedK6::D) as *const __m256i));
        for a in 0..NA {
            let ad = _mm512_set1_ps(*acts.get_unchecked(a).d.get_unchecked(i));
            acc[a] = _mm512_fmadd_ps(_mm512_mul_ps(dv, ad), _mm512_cvtepi32_ps(iacc[a]), acc[a]);
        }
    }
    for a in 0..NA {
        _mm512_storeu_ps(out[a].as_mut_ptr(), acc[a]);
    }
}
