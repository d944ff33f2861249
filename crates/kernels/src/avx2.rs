//! AVX2 (+FMA, F16C) products over quantised weights.
//!
//! Each kernel takes one weight row and up to [`TILE`] activation rows, so a
//! weight block is decoded once for all of them. Block sums are exact
//! integer sums (`maddubs` then `madd`; no pair of products can saturate
//! 16 bits for these value ranges), scaled by the product of the two block
//! factors and accumulated in eight f32 lanes.

// Lanes and blocks are indexed as the formats lay them out.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::quant::layout::{ActGroup, ActRow, Packed, PackedK4, PackedKind, TILE};
use crate::quant::reference::dot;
use crate::quant::{k_scales, Format, QK, QK_K};

const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q4_1: u8 = 2;
const Q5_0: u8 = 3;
const Q5_1: u8 = 4;

/// The kernel for as many activation rows as there are (one to [`TILE`]).
macro_rules! by_rows {
    ($w:ident, $acts:ident, $out:ident; $kernel:ident $(, $c:expr)?) => {
        match $acts.len() {
            1 => $kernel::<$($c,)? 1>($w, rows($acts), $out),
            2 => $kernel::<$($c,)? 2>($w, rows($acts), $out),
            3 => $kernel::<$($c,)? 3>($w, rows($acts), $out),
            _ => $kernel::<$($c,)? 4>($w, rows($acts), $out),
        }
    };
}

macro_rules! entry {
    ($(#[$doc:meta])* $name:ident, $features:literal, $k32:ident) => {
        $(#[$doc])*
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(
            fmt: Format,
            w: &[u8],
            acts: &[ActRow<'_>],
            out: &mut [f32; TILE],
        ) {
            match fmt {
                Format::Q8_0 => by_rows!(w, acts, out; $k32, Q8_0),
                Format::Q4_0 => by_rows!(w, acts, out; $k32, Q4_0),
                Format::Q4_1 => by_rows!(w, acts, out; $k32, Q4_1),
                Format::Q5_0 => by_rows!(w, acts, out; $k32, Q5_0),
                Format::Q5_1 => by_rows!(w, acts, out; $k32, Q5_1),
                Format::Q4K => by_rows!(w, acts, out; q4k),
                Format::Q6K => by_rows!(w, acts, out; q6k),
                Format::F32 | Format::F16 | Format::Q5K => {
                    for (o, &a) in out.iter_mut().zip(acts) {
                        *o = dot(fmt, w, a);
                    }
                }
            }
        }
    };
}

entry!(
    /// Weight row `w` against up to [`TILE`] activation rows.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    dot_rows,
    "avx2,fma,f16c",
    k32
);

entry!(
    /// As [`dot_rows`], with AVX-VNNI's `vpdpbusd` (four byte products
    /// added into each 32-bit lane, exactly) for the 32-value formats.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA, F16C and AVX-VNNI.
    dot_rows_vnni,
    "avx2,fma,f16c,avxvnni",
    k32_vnni
);

#[inline(always)]
fn rows<'a, const NR: usize>(acts: &[ActRow<'a>]) -> [ActRow<'a>; NR] {
    std::array::from_fn(|k| acts[k])
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The largest of eight lanes (a NaN in the first operand of each `max`
/// passed over, as `maxps` does).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// The sum of eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0b01_00_11_10));
    let t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0b10_11_00_01));
    _mm_cvtsi128_si32(t)
}

/// 16 bytes of packed nibbles as 32 values: low nibbles first.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let x = _mm_loadu_si128(p as *const __m128i);
    let m = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(x, m);
    let hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
    _mm256_set_m128i(hi, lo)
}

/// Bit `i` of `bits` as 0x10 (set) or 0 in byte `i`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bits(bits: u32) -> __m256i {
    // Byte i takes byte i/8 of `bits`, then keeps its bit i%8.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// A 32-value block: its values (signed, or unsigned for the formats with
/// a minimum), scale and minimum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block32<const F: u8>(b: *const u8) -> (__m256i, f32, f32) {
    let d = f16_at(b);
    match F {
        Q8_0 => (_mm256_loadu_si256(b.add(2) as *const __m256i), d, 0.0),
        Q4_0 => (
            _mm256_sub_epi8(nibbles(b.add(2)), _mm256_set1_epi8(8)),
            d,
            0.0,
        ),
        Q4_1 => (nibbles(b.add(4)), d, f16_at(b.add(2))),
        Q5_0 => {
            let qh = (b.add(2) as *const u32).read_unaligned();
            let q = _mm256_or_si256(nibbles(b.add(6)), fifth_bits(qh));
            (_mm256_sub_epi8(q, _mm256_set1_epi8(16)), d, 0.0)
        }
        _ => {
            let qh = (b.add(4) as *const u32).read_unaligned();
            let q = _mm256_or_si256(nibbles(b.add(8)), fifth_bits(qh));
            (q, d, f16_at(b.add(2)))
        }
    }
}

const fn block_bytes(f: u8) -> usize {
    match f {
        Q8_0 => 34,
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        _ => 24,
    }
}

/// A 32-value-block kernel: `$dp(acc, u, s)` adds the byte products of
/// unsigned `u` and signed `s` into the 32-bit lanes of `acc`.
macro_rules! k32 {
    ($name:ident, $features:literal, $dp:ident) => {
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $name<const F: u8, const NR: usize>(
            w: &[u8],
            a: [ActRow<'_>; NR],
            out: &mut [f32; TILE],
        ) {
            let bytes = block_bytes(F);
            let nb = w.len() / bytes;
            let signed = !matches!(F, Q4_1 | Q5_1);
            for r in &a {
                assert!(r.qs.len() >= nb * QK && r.d.len() >= nb && (signed || r.s.len() >= nb));
            }
            let mut acc = [_mm256_setzero_ps(); NR];
            let mut mins = [0f32; NR];
            for i in 0..nb {
                let (q, d, m) = block32::<F>(w.as_ptr().add(i * bytes));
                let abs = _mm256_sign_epi8(q, q);
                for r in 0..NR {
                    let y = _mm256_loadu_si256(a[r].qs.as_ptr().add(i * QK) as *const __m256i);
                    let zero = _mm256_setzero_si256();
                    let p = if signed {
                        $dp(zero, abs, _mm256_sign_epi8(y, q))
                    } else {
                        $dp(zero, q, y)
                    };
                    let p = _mm256_cvtepi32_ps(p);
                    let ad = *a[r].d.get_unchecked(i);
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * ad), p, acc[r]);
                    if !signed {
                        // Fused, as the tiled kernel adds them.
                        mins[r] = m.mul_add(*a[r].s.get_unchecked(i), mins[r]);
                    }
                }
            }
            for r in 0..NR {
                out[r] = hsum(acc[r]) + mins[r];
            }
        }
    };
}

/// `acc + Σ4 u·s` per lane with `maddubs` (pairs in 16 bits, which cannot
/// saturate for these ranges) and `madd`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dp_avx2(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    _mm256_add_epi32(
        acc,
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)),
    )
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn dp_vnni(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(acc, u, s)
}

k32!(k32, "avx2,fma,f16c", dp_avx2);
k32!(k32_vnni, "avx2,fma,f16c,avxvnni", dp_vnni);

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k<const NR: usize>(w: &[u8], a: [ActRow<'_>; NR], out: &mut [f32; TILE]) {
    let nb = w.len() / 144;
    for r in &a {
        assert!(r.qs.len() >= nb * QK_K && r.d.len() >= nb && r.sums.len() >= nb * 16);
    }
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); NR];
    let mut macc = [_mm256_setzero_ps(); NR];
    for i in 0..nb {
        let blk = &w[i * 144..(i + 1) * 144];
        let b = blk.as_ptr();
        let (d, dmin) = (f16_at(b), f16_at(b.add(2)));
        let (sc, mn) = k_scales(&blk[4..16]);
        let mnv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(mn.as_ptr() as *const __m128i));
        let mut q = [_mm256_setzero_si256(); 8];
        for j in 0..4 {
            let x = _mm256_loadu_si256(b.add(16 + 32 * j) as *const __m256i);
            q[2 * j] = _mm256_and_si256(x, m4);
            q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
        }
        for r in 0..NR {
            let y = a[r].qs.as_ptr().add(i * QK_K);
            let mut isum = _mm256_setzero_si256();
            for k in 0..8 {
                let yk = _mm256_loadu_si256(y.add(32 * k) as *const __m256i);
                let p = _mm256_maddubs_epi16(q[k], yk);
                let p = _mm256_madd_epi16(p, _mm256_set1_epi16(sc[k] as i16));
                isum = _mm256_add_epi32(isum, p);
            }
            let ad = *a[r].d.get_unchecked(i);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * ad), _mm256_cvtepi32_ps(isum), acc[r]);
            // The sums of each 32 values (pairs of the sums of 16), in
            // order, times the block's mins: the same arithmetic as the
            // tiled kernel, so a row's result does not depend on the path.
            let s = a[r].sums.as_ptr().add(i * 16);
            let pairs = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(
                _mm256_loadu_si256(s as *const __m256i),
                _mm256_loadu_si256(s.add(8) as *const __m256i),
            ));
            macc[r] = _mm256_fmadd_ps(
                _mm256_set1_ps(dmin * ad),
                _mm256_cvtepi32_ps(_mm256_mullo_epi32(pairs, mnv)),
                macc[r],
            );
        }
    }
    for r in 0..NR {
        out[r] = hsum(acc[r]) - hsum(macc[r]);
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k<const NR: usize>(w: &[u8], a: [ActRow<'_>; NR], out: &mut [f32; TILE]) {
    let nb = w.len() / 210;
    for r in &a {
        assert!(r.qs.len() >= nb * QK_K && r.d.len() >= nb);
    }
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(3);
    let k32 = _mm256_set1_epi8(32);
    let mut acc = [_mm256_setzero_ps(); NR];
    for i in 0..nb {
        let b = w.as_ptr().add(i * 210);
        prefetch_ahead(b, 210, 210, Prefetch::L1);
        let d = f16_at(b.add(208));
        let sc = b.add(192) as *const i8;
        // Values in 0..64 (offset 32 removed in the products below), in
        // order: q[k] holds values 32k..32k+32.
        let mut q = [_mm256_setzero_si256(); 8];
        for n in 0..2 {
            let ql0 = _mm256_loadu_si256(b.add(64 * n) as *const __m256i);
            let ql1 = _mm256_loadu_si256(b.add(64 * n + 32) as *const __m256i);
            let qh = _mm256_loadu_si256(b.add(128 + 32 * n) as *const __m256i);
            let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4);
            let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4);
            let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4);
            let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4);
            q[4 * n] = _mm256_or_si256(_mm256_and_si256(ql0, m4), h0);
            q[4 * n + 1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), h1);
            q[4 * n + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), h2);
            q[4 * n + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), h3);
        }
        for r in 0..NR {
            let y = a[r].qs.as_ptr().add(i * QK_K);
            let mut isum = _mm256_setzero_si256();
            for k in 0..8 {
                let yk = _mm256_loadu_si256(y.add(32 * k) as *const __m256i);
                let p = _mm256_sub_epi16(
                    _mm256_maddubs_epi16(q[k], yk),
                    _mm256_maddubs_epi16(k32, yk),
                );
                let s = _mm256_set_m128i(
                    _mm_set1_epi16(*sc.add(2 * k + 1) as i16),
                    _mm_set1_epi16(*sc.add(2 * k) as i16),
                );
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, s));
            }
            let ad = *a[r].d.get_unchecked(i);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * ad), _mm256_cvtepi32_ps(isum), acc[r]);
        }
    }
    for r in 0..NR {
        out[r] = hsum(acc[r]);
    }
}

/// Quantises rows of 32-value blocks to Q8_0 (or Q8_1, with `sums`): the
/// same values as the portable code (scale = amax / 127 in f16, values
/// rounded half to even), eight lanes at a time.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8(
    x: &[f32],
    qs: &mut [i8],
    d: &mut [f32],
    sums: Option<&mut [f32]>,
) {
    let nb = x.len() / QK;
    assert!(qs.len() >= nb * QK && d.len() >= nb);
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut sums = sums;
    for b in 0..nb {
        let p = x.as_ptr().add(b * QK);
        let v = [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ];
        let m = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
            _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])),
        );
        let amax = hmax(m);
        let dd = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let r: [__m256i; 4] = std::array::from_fn(|k| {
            _mm256_cvtps_epi32(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(_mm256_mul_ps(v[k], id)))
        });
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(r[0], r[1]),
            _mm256_packs_epi32(r[2], r[3]),
        );
        let packed = _mm256_permutevar8x32_epi32(packed, order);
        _mm256_storeu_si256(qs.as_mut_ptr().add(b * QK) as *mut __m256i, packed);
        let dh = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(
            _mm_set_ss(dd),
        )));
        d[b] = dh;
        if let Some(s) = sums.as_deref_mut() {
            let sum = hsum_i32(_mm256_add_epi32(
                _mm256_add_epi32(r[0], r[1]),
                _mm256_add_epi32(r[2], r[3]),
            ));
            s[b] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(
                _mm_set_ss(dd * sum as f32),
            )));
        }
    }
}

/// Formats with a tiled kernel over four interleaved activation rows.
pub(crate) fn tiled(fmt: Format) -> bool {
    !matches!(fmt, Format::F32 | Format::F16 | Format::Q5K)
}

macro_rules! group_entry {
    ($(#[$doc:meta])* $name:ident, $features:literal, $k32:ident) => {
        $(#[$doc])*
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(fmt: Format, w: &[u8], g: ActGroup<'_>, out: &mut [f32; 4]) {
            match fmt {
                Format::Q8_0 => $k32::<Q8_0>(w, g, out),
                Format::Q4_0 => $k32::<Q4_0>(w, g, out),
                Format::Q4_1 => $k32::<Q4_1>(w, g, out),
                Format::Q5_0 => $k32::<Q5_0>(w, g, out),
                Format::Q5_1 => $k32::<Q5_1>(w, g, out),
                Format::Q4K => q4k_x4(w, g, out),
                Format::Q6K => q6k_x4(w, g, out),
                Format::F32 | Format::F16 | Format::Q5K => unreachable!("no tiled kernel for {fmt:?}"),
            }
        }
    };
}

group_entry!(
    /// Weight row `w` against four interleaved activation rows.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `fmt` must be [`tiled`].
    dot_group,
    "avx2,fma,f16c",
    k32_x4
);

group_entry!(
    /// As [`dot_group`], with AVX-VNNI for the 32-value formats.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA, F16C and AVX-VNNI; `fmt` must be [`tiled`].
    dot_group_vnni,
    "avx2,fma,f16c,avxvnni",
    k32_x4_vnni
);

/// Lane `r` of the low four lanes of `v`, in all eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lane(v: __m256, r: usize) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(r as i32))
}

macro_rules! k32_x4 {
    ($name:ident, $features:literal, $dp:ident) => {
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $name<const F: u8>(w: &[u8], g: ActGroup<'_>, out: &mut [f32; 4]) {
            let bytes = block_bytes(F);
            let nb = w.len() / bytes;
            let signed = !matches!(F, Q4_1 | Q5_1);
            assert!(
                g.qs.len() >= nb * 4 * QK && g.d.len() >= nb * 4 && (signed || g.s.len() >= nb * 4)
            );
            let (qp, dp, sp) = (g.qs.as_ptr(), g.d.as_ptr(), g.s.as_ptr());
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut mins = _mm_setzero_ps();
            for i in 0..nb {
                let (q, d, m) = block32::<F>(w.as_ptr().add(i * bytes));
                let dv =
                    _mm256_castps128_ps256(_mm_mul_ps(_mm_set1_ps(d), _mm_loadu_ps(dp.add(4 * i))));
                let abs = _mm256_sign_epi8(q, q);
                let y = qp.add(4 * QK * i);
                for r in 0..4 {
                    let yr = _mm256_loadu_si256(y.add(QK * r) as *const __m256i);
                    let zero = _mm256_setzero_si256();
                    let p = if signed {
                        $dp(zero, abs, _mm256_sign_epi8(yr, q))
                    } else {
                        $dp(zero, q, yr)
                    };
                    acc[r] = _mm256_fmadd_ps(lane(dv, r), _mm256_cvtepi32_ps(p), acc[r]);
                }
                if !signed {
                    mins = _mm_fmadd_ps(_mm_set1_ps(m), _mm_loadu_ps(sp.add(4 * i)), mins);
                }
            }
            let mut m = [0f32; 4];
            _mm_storeu_ps(m.as_mut_ptr(), mins);
            for r in 0..4 {
                out[r] = hsum(acc[r]) + m[r];
            }
        }
    };
}

k32_x4!(k32_x4, "avx2,fma,f16c", dp_avx2);
k32_x4!(k32_x4_vnni, "avx2,fma,f16c,avxvnni", dp_vnni);

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_x4(w: &[u8], g: ActGroup<'_>, out: &mut [f32; 4]) {
    let nb = w.len() / 144;
    assert!(g.qs.len() >= nb * 4 * QK_K && g.d.len() >= nb * 4 && g.sums.len() >= nb * 32);
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut macc = [_mm256_setzero_ps(); 4];
    for i in 0..nb {
        let blk = &w[i * 144..(i + 1) * 144];
        let b = blk.as_ptr();
        let (sc, mn) = k_scales(&blk[4..16]);
        let ad = _mm_loadu_ps(g.d.as_ptr().add(4 * i));
        let dv = _mm256_castps128_ps256(_mm_mul_ps(_mm_set1_ps(f16_at(b)), ad));
        let mv = _mm256_castps128_ps256(_mm_mul_ps(_mm_set1_ps(f16_at(b.add(2))), ad));
        let y = g.qs.as_ptr().add(4 * QK_K * i);
        let mut isum = [_mm256_setzero_si256(); 4];
        for j in 0..4 {
            let x = _mm256_loadu_si256(b.add(16 + 32 * j) as *const __m256i);
            let lo = _mm256_and_si256(x, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
            let (s0, s1) = (
                _mm256_set1_epi16(sc[2 * j] as i16),
                _mm256_set1_epi16(sc[2 * j + 1] as i16),
            );
            for r in 0..4 {
                let yr = y.add(QK_K * r + 64 * j);
                let p0 = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(lo, _mm256_loadu_si256(yr as *const __m256i)),
                    s0,
                );
                let p1 = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(hi, _mm256_loadu_si256(yr.add(32) as *const __m256i)),
                    s1,
                );
                isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(p0, p1));
            }
        }
        let mnv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(mn.as_ptr() as *const __m128i));
        for r in 0..4 {
            acc[r] = _mm256_fmadd_ps(lane(dv, r), _mm256_cvtepi32_ps(isum[r]), acc[r]);
            let sums = _mm256_loadu_si256(g.sums.as_ptr().add((4 * i + r) * 8) as *const __m256i);
            macc[r] = _mm256_fmadd_ps(
                lane(mv, r),
                _mm256_cvtepi32_ps(_mm256_mullo_epi32(sums, mnv)),
                macc[r],
            );
        }
    }
    for r in 0..4 {
        out[r] = hsum(acc[r]) - hsum(macc[r]);
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_x4(w: &[u8], g: ActGroup<'_>, out: &mut [f32; 4]) {
    let nb = w.len() / 210;
    assert!(g.qs.len() >= nb * 4 * QK_K && g.d.len() >= nb * 4);
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(3);
    let k32 = _mm256_set1_epi8(32);
    let mut acc = [_mm256_setzero_ps(); 4];
    for i in 0..nb {
        let b = w.as_ptr().add(i * 210);
        let sc = b.add(192) as *const i8;
        let dv = _mm256_castps128_ps256(_mm_mul_ps(
            _mm_set1_ps(f16_at(b.add(208))),
            _mm_loadu_ps(g.d.as_ptr().add(4 * i)),
        ));
        let y = g.qs.as_ptr().add(4 * QK_K * i);
        let mut isum = [_mm256_setzero_si256(); 4];
        for n in 0..2 {
            let ql0 = _mm256_loadu_si256(b.add(64 * n) as *const __m256i);
            let ql1 = _mm256_loadu_si256(b.add(64 * n + 32) as *const __m256i);
            let qh = _mm256_loadu_si256(b.add(128 + 32 * n) as *const __m256i);
            for k in 0..4 {
                let (ql, shift_lo) = if k % 2 == 0 {
                    (ql0, k >= 2)
                } else {
                    (ql1, k >= 2)
                };
                let lo = if shift_lo {
                    _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4)
                } else {
                    _mm256_and_si256(ql, m4)
                };
                let h = match k {
                    0 => qh,
                    1 => _mm256_srli_epi16(qh, 2),
                    2 => _mm256_srli_epi16(qh, 4),
                    _ => _mm256_srli_epi16(qh, 6),
                };
                let q = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
                let idx = 4 * n + k;
                let s = _mm256_set_m128i(
                    _mm_set1_epi16(*sc.add(2 * idx + 1) as i16),
                    _mm_set1_epi16(*sc.add(2 * idx) as i16),
                );
                for r in 0..4 {
                    let yk = _mm256_loadu_si256(y.add(QK_K * r + 32 * idx) as *const __m256i);
                    let p = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(q, yk),
                        _mm256_maddubs_epi16(k32, yk),
                    );
                    isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, s));
                }
            }
        }
        for r in 0..4 {
            acc[r] = _mm256_fmadd_ps(lane(dv, r), _mm256_cvtepi32_ps(isum[r]), acc[r]);
        }
    }
    for r in 0..4 {
        out[r] = hsum(acc[r]);
    }
}

/// [`crate::quant::reference::quantize_q8k`], bit for bit, eight values at
/// a time: the same products `iscale · v`, rounded half to even; a value
/// whose product is NaN gives 0 as the reference's cast does. (Compiled
/// from the reference it took 2% of a decoding step.)
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8k(x: &[f32], qs: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
    let nb = x.len() / QK_K;
    assert!(qs.len() >= nb * QK_K && d.len() >= nb && sums.len() >= nb * 16);
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let cap = _mm256_set1_epi32(127);
    for b in 0..nb {
        let p = x.as_ptr().add(b * QK_K);
        // The largest magnitude (a NaN, second operand, is passed over).
        let mut m = _mm256_setzero_ps();
        for k in 0..QK_K / 8 {
            m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * k))), m);
        }
        let amax = hmax(m);
        let (qs, sums) = (&mut qs[b * QK_K..][..QK_K], &mut sums[b * 16..][..16]);
        if amax == 0.0 {
            d[b] = 0.0;
            qs.fill(0);
            sums.fill(0);
            continue;
        }
        // The first value of that magnitude, as the reference keeps it.
        let block = &x[b * QK_K..][..QK_K];
        let max = block
            .iter()
            .copied()
            .find(|v| v.abs() == amax)
            .unwrap_or(amax);
        let iscale = -127.0 / max;
        let scale = _mm256_set1_ps(iscale);
        for c in 0..QK_K / 32 {
            let r: [__m256i; 4] = std::array::from_fn(|k| {
                let v = _mm256_mul_ps(scale, _mm256_loadu_ps(p.add(32 * c + 8 * k)));
                let q = _mm256_cvtps_epi32(_mm256_round_ps::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(v));
                let q = _mm256_min_epi32(q, cap);
                _mm256_and_si256(q, _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(v, v)))
            });
            let packed = _mm256_packs_epi16(
                _mm256_packs_epi32(r[0], r[1]),
                _mm256_packs_epi32(r[2], r[3]),
            );
            let packed = _mm256_permutevar8x32_epi32(packed, order);
            _mm256_storeu_si256(qs.as_mut_ptr().add(32 * c) as *mut __m256i, packed);
            for h in 0..2 {
                sums[2 * c + h] = hsum_i32(_mm256_add_epi32(r[2 * h], r[2 * h + 1]));
            }
        }
        d[b] = 1.0 / iscale;
    }
}

/// Eight interleaved weight rows (group `g` of `p`) against up to four
/// activation rows: `out[a][l]` is row `8g + l` times activation `a`.
/// `corr` holds `128·Σq` per block for each activation row (Q8 only).
///
/// # Safety
/// The CPU must have AVX2, FMA, F16C and AVX-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(crate) unsafe fn packed(
    p: &Packed,
    g: usize,
    acts: &[ActRow<'_>],
    corr: &[i32],
    out: &mut [[f32; 8]; 4],
) {
    let nb = p.nb;
    assert!(p.data.len() >= (g + 1) * p.group_bytes());
    for a in acts {
        assert!(a.qs.len() >= nb * QK && a.d.len() >= nb);
        assert!(p.kind == PackedKind::Q8 || a.s.len() >= nb);
    }
    assert!(p.kind != PackedKind::Q8 || corr.len() >= acts.len() * nb);
    macro_rules! go {
        ($kernel:ident) => {
            match acts.len() {
                1 => $kernel::<1>(p, g, acts, corr, out),
                2 => $kernel::<2>(p, g, acts, corr, out),
                3 => $kernel::<3>(p, g, acts, corr, out),
                _ => $kernel::<4>(p, g, acts, corr, out),
            }
        };
    }
    match p.kind {
        PackedKind::Q8 => go!(packed_q8),
        PackedKind::Q4_1 => go!(packed_q4_1),
    }
}

/// A [`PackedK4`] record's scales and minimums, a byte each in the order
/// `8·sub + l`, joined from their split form (as [`PackedK4::scales`]).
///
/// # Safety
/// `rec` must point at a whole record, and the CPU must have AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn k4_scales(rec: *const u8) -> ([u8; 64], [u8; 64]) {
    let lo = [0, 32].map(|at| _mm256_loadu_si256(rec.add(PackedK4::LO + at) as *const __m256i));
    let hi = _mm256_loadu_si256(rec.add(PackedK4::HI) as *const __m256i);
    let (m4, m3) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03));
    // The high bits of byte t's scale (shift 0 or 2) and minimum (4 or 6),
    // moved to bits 4 and 5.
    let high = |shift: i32| {
        let h = match shift {
            0 => hi,
            2 => _mm256_srli_epi16(hi, 2),
            4 => _mm256_srli_epi16(hi, 4),
            _ => _mm256_srli_epi16(hi, 6),
        };
        _mm256_slli_epi16(_mm256_and_si256(h, m3), 4)
    };
    let (mut sc, mut mn) = ([0u8; 64], [0u8; 64]);
    for (half, lo) in lo.into_iter().enumerate() {
        let s = _mm256_or_si256(_mm256_and_si256(lo, m4), high(2 * half as i32));
        let m = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(lo, 4), m4),
            high(4 + 2 * half as i32),
        );
        _mm256_storeu_si256(sc.as_mut_ptr().add(32 * half) as *mut __m256i, s);
        _mm256_storeu_si256(mn.as_mut_ptr().add(32 * half) as *mut __m256i, m);
    }
    (sc, mn)
}

/// Asks for the cache lines of the `bytes` at `at + n · stride`: the block
/// a kernel reads `n` blocks on, when its blocks are `stride` apart
/// (`plan` chooses `n` and the cache). Decoding reads every weight once per
/// token, and the loads of a block wait on memory unless it is already on
/// its way: measured on the interleaved `Q4_K` kernels, a 1.5B model
/// decoded 20% faster with it. A prefetch never faults, so the address may
/// run past the matrix.
#[inline(always)]
pub(crate) unsafe fn prefetch_ahead(at: *const u8, stride: usize, bytes: usize, plan: Prefetch) {
    let next = at.wrapping_add(plan.blocks * stride);
    for line in 0..bytes.div_ceil(64) {
        let p = next.wrapping_add(64 * line) as *const i8;
        if plan.into_l2 {
            _mm_prefetch::<_MM_HINT_T1>(p);
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p);
        }
    }
}

/// As [`prefetch_ahead`], slice `part` of `parts` of the lines, where the
/// plan spreads a block's requests over its work ([`Prefetch::L2`]); else
/// slice 0 asks for them all and the others for none.
#[inline(always)]
pub(crate) unsafe fn prefetch_slice(
    at: *const u8,
    stride: usize,
    bytes: usize,
    plan: Prefetch,
    (part, parts): (usize, usize),
) {
    if !plan.spread {
        if part == 0 {
            prefetch_ahead(at, stride, bytes, plan);
        }
        return;
    }
    let per = bytes.div_ceil(64).div_ceil(parts) * 64;
    let from = (part * per).min(bytes);
    prefetch_ahead(
        at.wrapping_add(from),
        stride,
        ((part + 1) * per).min(bytes) - from,
        plan,
    );
}

/// How far ahead [`prefetch_ahead`] asks, into which cache, and whether
/// [`prefetch_slice`] spreads a block's requests.
#[derive(Clone, Copy)]
pub(crate) struct Prefetch {
    into_l2: bool,
    blocks: usize,
    spread: bool,
}

impl Prefetch {
    /// Into the first-level cache two blocks ahead (1 and 4 measured
    /// slower): the 256-bit kernels, and the 512-bit ones where the CPU
    /// also has AVX-VNNI (Sapphire Rapids, Zen 5).
    pub(crate) const L1: Prefetch = Prefetch {
        into_l2: false,
        blocks: 2,
        spread: false,
    };
    /// Into the second-level cache eight blocks ahead, a slice of the
    /// block's lines at each step of the kernel: the 512-bit kernels on a
    /// CPU without AVX-VNNI (Zen 4, Ice Lake).
    ///
    /// On Zen 4, one core, out of cache: the L1 requests held the
    /// interleaved `Q4_K` product to 8 GB/s where a plain read moves 25–31;
    /// into L2, all of a pair's 38–53 lines at once, 22–33 (`Q4_K`) and
    /// 12–17 (`Q6_K`); a slice per step, 30–39 and 14–19 (the hardware
    /// seems to drop part of a long burst). The 1.5B model decoded 12.4
    /// tokens/s on two threads with the first; on one thread, 17.1 with
    /// the second and 20.2–21.3 with this (docs/benchmarks.md).
    pub(crate) const L2: Prefetch = Prefetch {
        into_l2: true,
        blocks: 8,
        spread: true,
    };

    /// The plan of the 512-bit kernels on this CPU, chosen once;
    /// `DOCENT_PREFETCH=l1` or `l2` picks either for comparisons.
    #[inline(always)]
    pub(crate) fn avx512() -> Prefetch {
        static PLAN: std::sync::OnceLock<Prefetch> = std::sync::OnceLock::new();
        *PLAN.get_or_init(|| match std::env::var("DOCENT_PREFETCH").as_deref() {
            Ok("l1") => Prefetch::L1,
            Ok("l2") => Prefetch::L2,
            _ if crate::Isa::Avx512Vnni.vex_vnni() => Prefetch::L1,
            _ => Prefetch::L2,
        })
    }
}

/// The eight weight vectors of one block against one activation row's
/// block: eight lanes, one per weight row, of `Σ w·y` (two chains, so that
/// the dot products overlap).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn dot8(w: &[__m256i; 8], y: *const i8) -> __m256i {
    let y = y as *const i32;
    let mut s0 = _mm256_setzero_si256();
    let mut s1 = _mm256_setzero_si256();
    for k in (0..8).step_by(2) {
        s0 = _mm256_dpbusd_avx_epi32(s0, w[k], _mm256_set1_epi32(y.add(k).read_unaligned()));
        s1 = _mm256_dpbusd_avx_epi32(
            s1,
            w[k + 1],
            _mm256_set1_epi32(y.add(k + 1).read_unaligned()),
        );
    }
    _mm256_add_epi32(s0, s1)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn packed_q8<const NA: usize>(
    p: &Packed,
    g: usize,
    acts: &[ActRow<'_>],
    corr: &[i32],
    out: &mut [[f32; 8]; 4],
) {
    let nb = p.nb;
    let vals = p.data.as_ptr().add(g * p.group_bytes());
    let ds = vals.add(p.layout().0) as *const u16;
    let mut acc = [_mm256_setzero_ps(); NA];
    for i in 0..nb {
        let v = vals.add(i * 256);
        prefetch_ahead(v, 256, 256, Prefetch::L1);
        let w: [__m256i; 8] =
            std::array::from_fn(|k| _mm256_loadu_si256(v.add(32 * k) as *const __m256i));
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(ds.add(i * 8) as *const __m128i));
        for a in 0..NA {
            let r = acts.get_unchecked(a);
            let isum = _mm256_sub_epi32(
                dot8(&w, r.qs.as_ptr().add(i * QK)),
                _mm256_set1_epi32(*corr.get_unchecked(a * nb + i)),
            );
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*r.d.get_unchecked(i)));
            acc[a] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), acc[a]);
        }
    }
    for a in 0..NA {
        _mm256_storeu_ps(out[a].as_mut_ptr(), acc[a]);
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn packed_q4_1<const NA: usize>(
    p: &Packed,
    g: usize,
    acts: &[ActRow<'_>],
    _corr: &[i32],
    out: &mut [[f32; 8]; 4],
) {
    let nb = p.nb;
    let vals = p.data.as_ptr().add(g * p.group_bytes());
    let (d_at, m_at) = p.layout();
    let (ds, ms) = (vals.add(d_at) as *const u16, vals.add(m_at) as *const u16);
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); NA];
    for i in 0..nb {
        let v = vals.add(i * 128);
        let mut w = [_mm256_setzero_si256(); 8];
        for k in 0..4 {
            let x = _mm256_loadu_si256(v.add(32 * k) as *const __m256i);
            w[k] = _mm256_and_si256(x, m4);
            w[k + 4] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
        }
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(ds.add(i * 8) as *const __m128i));
        let mw = _mm256_cvtph_ps(_mm_loadu_si128(ms.add(i * 8) as *const __m128i));
        for a in 0..NA {
            let r = acts.get_unchecked(a);
            let isum = dot8(&w, r.qs.as_ptr().add(i * QK));
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*r.d.get_unchecked(i)));
            acc[a] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), acc[a]);
            acc[a] = _mm256_fmadd_ps(mw, _mm256_set1_ps(*r.s.get_unchecked(i)), acc[a]);
        }
    }
    for a in 0..NA {
        _mm256_storeu_ps(out[a].as_mut_ptr(), acc[a]);
    }
}

/// Eight interleaved `Q4_K` rows (group `g` of `p`) against up to four
/// activation rows (`Q8_K`): `out[a][l]` is row `8g + l` times activation
/// `a`. Per block, each 32-value sub-block's eight row sums are scaled by
/// the rows' six-bit scales in integers, so one conversion and one
/// multiply by `d` serve the whole block.
///
/// # Safety
/// The CPU must have AVX2, FMA, F16C and AVX-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(crate) unsafe fn packed_q4k(
    p: &PackedK4,
    g: usize,
    acts: &[ActRow<'_>],
    out: &mut [[f32; 8]; 4],
) {
    let nb = p.rec.nb;
    assert!(p.rec.holds(g));
    for a in acts {
        assert!(a.qs.len() >= nb * QK_K && a.d.len() >= nb && a.sums.len() >= nb * 16);
    }
    match acts.len() {
        1 => packed_q4k_n::<1>(p, g, acts, out),
        2 => packed_q4k_n::<2>(p, g, acts, out),
        3 => packed_q4k_n::<3>(p, g, acts, out),
        _ => packed_q4k_n::<4>(p, g, acts, out),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn packed_q4k_n<const NA: usize>(
    p: &PackedK4,
    g: usize,
    acts: &[ActRow<'_>],
    out: &mut [[f32; 8]; 4],
) {
    let nb = p.rec.nb;
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); NA];
    for i in 0..nb {
        let rec = p.rec.data.as_ptr().add(p.rec.at(g, i));
        // The group's records alternate with its partner's.
        prefetch_ahead(rec, 2 * p.rec.bytes, p.rec.bytes, Prefetch::L1);
        let vals = rec.add(PackedK4::VALS);
        let (sc, mn) = k4_scales(rec);
        let (sc, mn) = (sc.as_ptr(), mn.as_ptr());
        let mut iacc = [_mm256_setzero_si256(); NA];
        for j in 0..4 {
            let chunk = vals.add(256 * j);
            for half in 0..2 {
                let w: [__m256i; 8] = std::array::from_fn(|k| {
                    let x = _mm256_loadu_si256(chunk.add(32 * k) as *const __m256i);
                    if half == 0 {
                        _mm256_and_si256(x, m4)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16(x, 4), m4)
                    }
                });
                let sub = 2 * j + half;
                let scale =
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(sc.add(8 * sub) as *const __m128i));
                for a in 0..NA {
                    let y = acts
                        .get_unchecked(a)
                        .qs
                        .as_ptr()
                        .add(i * QK_K + 64 * j + 32 * half);
                    iacc[a] = _mm256_add_epi32(iacc[a], _mm256_mullo_epi32(dot8(&w, y), scale));
                }
            }
        }
        let dv = _mm256_cvtph_ps(_mm_loadu_si128(rec.add(PackedK4::D) as *const __m128i));
        let dminv = _mm256_cvtph_ps(_mm_loadu_si128(rec.add(PackedK4::DMIN) as *const __m128i));
        for a in 0..NA {
            let r = acts.get_unchecked(a);
            let ad = _mm256_set1_ps(*r.d.get_unchecked(i));
            // Σ over sub-blocks of the rows' minimums times the
            // activation's sums: exact integers, exactly summed in f32.
            let sums = r.sums.as_ptr().add(i * 16);
            let mut mins = _mm256_setzero_ps();
            for sub in 0..8 {
                let b = (*sums.add(2 * sub) + *sums.add(2 * sub + 1)) as f32;
                let m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                    mn.add(8 * sub) as *const __m128i
                )));
                mins = _mm256_fmadd_ps(m, _mm256_set1_ps(b), mins);
            }
            acc[a] = _mm256_fmadd_ps(_mm256_mul_ps(dv, ad), _mm256_cvtepi32_ps(iacc[a]), acc[a]);
            acc[a] = _mm256_fnmadd_ps(_mm256_mul_ps(dminv, ad), mins, acc[a]);
        }
    }
    for a in 0..NA {
        _mm256_storeu_ps(out[a].as_mut_ptr(), acc[a]);
    }
}
