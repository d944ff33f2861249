//! docent's quantised products alone, with the matrix in the second-level
//! cache and out of every cache: for one activation row (a decoding step),
//! how fast each kernel reads its weights, in GB/s of the file's encoding;
//! for 64 rows (a prompt), billions of multiply-adds per second.
//!
//!     cargo bench --bench kernels [-- --threads N]
//!
//! Decoding reads every weight once per token, so out of cache these
//! figures bound decode speed; beside a plain read of the same bytes they
//! say whether a kernel is held by its arithmetic (the in-cache figure is
//! low too) or by how the weights stream in. Each instruction set the CPU
//! has is measured; the matrices are random bytes with finite scales. It
//! prints a table and asserts nothing (the kernels' results are tested in
//! `docent-kernels` against the reference code and, through the models,
//! against llama.cpp).

use std::time::Instant;

use docent_kernels::quant::{Activations, Format, QMatrix};
use docent_kernels::Isa;

/// Rows of the in-cache matrix (1,536 columns: 0.4–0.6 MB).
const IN_CACHE_ROWS: usize = 512;
/// Rows of the out-of-cache matrix (1,536 columns: 57–83 MB).
const OUT_OF_CACHE_ROWS: usize = 65_536;
const COLS: usize = 1536;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("the thread pool is built once");
    println!(
        "{} thread(s) on {}; one row: GB/s of weights in the file's encoding; \
         64 rows: G multiply-adds/s; best of 7",
        threads,
        docent_kernels::cpu_name()
    );
    println!(
        "{:<12} {:<6} {:>14} {:>14} {:>18} {:>18}",
        "isa",
        "format",
        "in cache GB/s",
        "in cache GMAC/s",
        "out of cache GB/s",
        "out of cache GMAC/s"
    );
    let plain_bytes = OUT_OF_CACHE_ROWS * Format::Q6K.row_bytes(COLS);
    let plain = plain_read(plain_bytes);
    // The portable kernels would take minutes out of cache.
    for isa in Isa::available().into_iter().filter(|i| i.has_avx2()) {
        for fmt in [Format::Q4K, Format::Q6K, Format::Q8_0] {
            let small = matrix(fmt, IN_CACHE_ROWS, isa);
            let large = matrix(fmt, OUT_OF_CACHE_ROWS, isa);
            println!(
                "{:<12} {:<6} {:>14.1} {:>14.1} {:>18.1} {:>18.1}",
                isa.name(),
                format!("{fmt:?}"),
                rate(&small, 1, isa, 2000),
                rate(&small, 64, isa, 40),
                rate(&large, 1, isa, 10),
                rate(&large, 64, isa, 1),
            );
        }
    }
    println!(
        "plain read of {} MB, one thread: {plain:.1} GB/s",
        plain_bytes / 1_000_000
    );
}

/// A matrix of random bytes whose blocks' scales are all 0.01 (as f16),
/// repacked for `isa`.
fn matrix(fmt: Format, rows: usize, isa: Isa) -> QMatrix {
    let (per, bytes) = fmt.block();
    let scales: &[usize] = match fmt {
        Format::Q4K => &[0, 2],
        Format::Q6K => &[208],
        _ => &[0],
    };
    let mut data = vec![0u8; rows * fmt.row_bytes(COLS)];
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for b in data.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *b = s as u8;
    }
    let f16_001 = 0x211Fu16.to_le_bytes();
    for block in data.chunks_exact_mut(bytes) {
        for &at in scales {
            block[at..at + 2].copy_from_slice(&f16_001);
        }
    }
    debug_assert_eq!(COLS % per, 0);
    QMatrix::new("bench", fmt, rows, COLS, data)
        .expect("a whole number of blocks")
        .repacked(isa)
}

/// For one activation row, GB/s of `m`'s file bytes; for more, billions
/// of multiply-adds per second. Best of 7 batches of `reps` products.
fn rate(m: &QMatrix, n: usize, isa: Isa, reps: usize) -> f64 {
    let x: Vec<f32> = (0..n * COLS)
        .map(|i| ((i * 7919) % 113) as f32 / 56.0 - 1.0)
        .collect();
    let mut acts = Activations::new();
    let mut out = vec![0f32; n * m.rows()];
    m.matmul(&x, &mut acts, &mut out, isa);
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..reps {
            m.matmul_quantized(&mut acts, &mut out, isa);
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    std::hint::black_box(&out);
    if n == 1 {
        (m.rows() * m.format().row_bytes(COLS)) as f64 / best / 1e9
    } else {
        (m.rows() * COLS * n) as f64 / best / 1e9
    }
}

/// GB/s of summing `bytes` bytes as u64 words, one thread, best of 7.
fn plain_read(bytes: usize) -> f64 {
    let words: Vec<u64> = (0..bytes / 8).map(|i| i as u64).collect();
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        let sum = words.iter().fold(0u64, |a, &w| a.wrapping_add(w));
        std::hint::black_box(sum);
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes as f64 / best / 1e9
}
