//! The fast kernels against the portable reference.

use half::f16;

use super::layout::Interleaved;
use super::*;
use crate::Isa;

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

const ALL: [Format; 10] = Format::ALL;

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
    let isas: Vec<Isa> = Isa::available()
        .into_iter()
        .filter(|i| i.has_vnni())
        .collect();
    // 544 columns: an odd number of blocks, for the 512-bit kernel's tail;
    // 768, three Q4_K blocks.
    for (isa, cols) in isas.iter().flat_map(|&i| [(i, 512), (i, 544), (i, 768)]) {
        interleaved_rows_agree(isa, cols);
    }
}

fn interleaved_rows_agree(isa: Isa, cols: usize) {
    let rows = 24;
    let formats = [
        Format::Q8_0,
        Format::Q4_1,
        Format::Q5_0,
        Format::Q4_0,
        Format::Q4K,
        Format::Q6K,
    ];
    for fmt in formats
        .into_iter()
        .filter(|f| cols.is_multiple_of(f.block().0))
    {
        let plain = matrix(fmt, rows, cols, 37).repacked(Isa::Avx2);
        let packed = matrix(fmt, rows, cols, 37).repacked(isa);
        if fmt == Format::Q4_1 && !isa.vex_vnni() || fmt == Format::Q6K && isa != Isa::Avx512Vnni {
            // Interleaved Q4_1 runs on AVX-VNNI alone, Q6_K on AVX-512.
            assert!(packed.interleaved.is_none());
        } else {
            assert!(
                packed.interleaved.is_some() && packed.data.is_empty(),
                "{fmt:?}"
            );
        }
        // Same size as the rows it replaces (Q5_0 having become Q8_0).
        let stored = if fmt == Format::Q4_1 {
            Format::Q4_1
        } else {
            Format::Q8_0
        };
        if let Some(Interleaved::Rows(p)) = &packed.interleaved {
            assert_eq!(p.data.len(), rows * stored.row_bytes(cols));
        }
        let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
        for r in 0..rows {
            plain.dequantize_row(r, &mut a);
            packed.dequantize_row(r, &mut b);
            assert_eq!(a, b, "{fmt:?} row {r}");
        }
        // Tiles of eight and two on the 512-bit K-quant kernels, of four
        // and two elsewhere, and each row alone.
        let n = 10;
        let x = input(n, cols, 41);
        let mut acts = Activations::new();
        let mut got = vec![0f32; n * rows];
        packed.matmul(&x, &mut acts, &mut got, isa);
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
            packed.matmul(&x[j * cols..(j + 1) * cols], &mut single, &mut one, isa);
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
    // For Q8_K: a whole zero block (row 1), then a block whose scale is
    // -1 (its first largest magnitude is +127) holding ties, and a NaN.
    x[cols..cols + QK_K].fill(0.0);
    for (i, v) in x[2 * cols..2 * cols + QK_K].iter_mut().enumerate() {
        *v = (i % 200) as f32 - 99.5;
    }
    x[2 * cols + 3] = 127.0;
    x[2 * cols + 9] = -127.0;
    for fmt in [Format::Q8_0, Format::Q4_1, Format::Q4K] {
        let mut x = x.clone();
        if fmt == Format::Q4K {
            x[2 * cols + QK_K + 5] = f32::NAN;
        }
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

#[test]
#[cfg(target_arch = "x86_64")]
fn the_512_bit_kernels_give_the_256_bit_kernels_bits() {
    // Both kernels must run here: the CPU needs AVX-512 VNNI and AVX-VNNI
    // (`DOCENT_NO_AVXVNNI` then sends the 512-bit products down the path of
    // CPUs without it). Zen 4 and Ice Lake have no AVX-VNNI; their
    // 512-bit kernels are checked against the reference by
    // `interleaved_rows_agree_with_the_reference_and_decode_the_same`.
    if Isa::detect() != Isa::Avx512Vnni || !std::is_x86_feature_detected!("avxvnni") {
        eprintln!("this CPU lacks AVX-512 VNNI or AVX-VNNI: no two kernels to compare");
        return;
    }
    // Even and odd block counts, one activation row to a few tiles.
    for (fmt, cols) in [
        (Format::Q8_0, 640),
        (Format::Q8_0, 544),
        (Format::Q5_0, 640),
        (Format::Q4K, 768),
    ] {
        for n in [1, 3, 9] {
            let rows = 48;
            let x = input(n, cols, 41);
            let mut outs = Vec::new();
            for isa in [Isa::AvxVnni, Isa::Avx512Vnni] {
                let m = matrix(fmt, rows, cols, 37).repacked(isa);
                let mut out = vec![0f32; n * rows];
                m.matmul(&x, &mut Activations::new(), &mut out, isa);
                outs.push(out);
            }
            assert!(
                outs[0]
                    .iter()
                    .zip(&outs[1])
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{fmt:?} {cols} columns, {n} rows"
            );
        }
    }
}

#[test]
fn saved_layouts_read_back_as_the_same_matrix_and_damaged_ones_are_refused() {
    use std::sync::Arc;
    let cols = 512;
    let x = input(3, cols, 43);
    for isa in Isa::available() {
        for fmt in ALL {
            for rows in [8, 12, 24] {
                let m = matrix(fmt, rows, cols, 47).repacked(isa);
                let (layout, bytes) = m.layout();
                assert_eq!(
                    layout,
                    Layout::planned(m.format(), rows, isa),
                    "{fmt:?} {isa:?}"
                );
                // Read back from a shared buffer, at an offset, as from a file.
                let mut file = vec![7u8; 13];
                file.extend_from_slice(bytes);
                let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(file);
                let shared = |len| Bytes::shared(&owner, 13, len).unwrap();
                let (f, n) = (m.format(), bytes.len());
                let back =
                    QMatrix::from_layout("t", f, rows, cols, layout, shared(n), isa).unwrap();
                let mut acts = Activations::new();
                let (mut want, mut got) = (vec![0f32; 3 * rows], vec![0f32; 3 * rows]);
                m.matmul(&x, &mut acts, &mut want, isa);
                back.matmul(&x, &mut acts, &mut got, isa);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{fmt:?} {isa:?} {rows}");
                // A byte short, or another layout: refused, not misread.
                let short = QMatrix::from_layout("t", f, rows, cols, layout, shared(n - 1), isa);
                assert!(short.is_err(), "{fmt:?} {isa:?}");
                let others = Layout::ALL.into_iter().filter(|&l| l != layout);
                for other in others.filter(|&l| l != Layout::Rows) {
                    let r = QMatrix::from_layout("t", f, rows, cols, other, shared(n), isa);
                    assert!(r.is_err(), "{fmt:?} {isa:?} as {other:?}");
                }
            }
        }
    }
}

#[test]
fn q4k_records_keep_the_files_scales_and_the_vector_join_matches() {
    use super::layout::PackedK4;
    let (rows, cols) = (16, 512);
    let m = matrix(Format::Q4K, rows, cols, 53);
    // Built for AVX-VNNI (building needs no particular CPU), the layout is
    // the file's size, and its scales read back as the file's, whichever
    // way they are joined.
    let packed = matrix(Format::Q4K, rows, cols, 53).repacked(Isa::AvxVnni);
    let Some(Interleaved::Q4K(p)) = &packed.interleaved else {
        panic!("Q4_K rows are interleaved for AVX-VNNI");
    };
    assert_eq!(p.rec.data.len(), rows * Format::Q4K.row_bytes(cols));
    for g in 0..rows / 8 {
        for i in 0..cols / QK_K {
            let rec = p.rec.get(g, i);
            let (sc, mn) = PackedK4::scales(rec);
            for l in 0..8 {
                let blk = &m.row(g * 8 + l)[i * 144..][..144];
                let (want_sc, want_mn) = super::k_scales(&blk[4..16]);
                for sub in 0..8 {
                    assert_eq!(
                        sc[sub * 8 + l],
                        want_sc[sub],
                        "g {g} i {i} row {l} sub {sub}"
                    );
                    assert_eq!(
                        mn[sub * 8 + l],
                        want_mn[sub],
                        "g {g} i {i} row {l} sub {sub}"
                    );
                }
            }
            #[cfg(target_arch = "x86_64")]
            if Isa::detect().has_avx2() {
                // SAFETY: the record is whole and the CPU has AVX2.
                let joined = unsafe { crate::avx2::k4_scales(rec.as_ptr()) };
                assert_eq!(joined, (sc, mn), "g {g} i {i}");
            }
        }
    }
}
