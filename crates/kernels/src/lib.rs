//! The arithmetic of a transformer step on the CPU, written for docent.
//!
//! Everything a decoder spends its time on lives here, with no model, file
//! or tensor-library knowledge: the caller hands over byte slices and `f32`
//! buffers it owns.
//!
//! * [`quant`]: matrix products over weights kept in their GGUF encoding
//!   (`Q4_0` … `Q6_K`, `Q8_0`, f16, f32). Activations are quantised per block
//!   to 8 bits (`Q8_0`, `Q8_1` or `Q8_K`, whichever the weight format pairs
//!   with) with round-half-even, and each block's dot product is an exact
//!   integer sum, as llama.cpp computes it on x86. This is what makes greedy
//!   decoding agree with llama.cpp token for token on small models.
//! * [`ops`]: RMS normalisation, rotary embeddings, softmax, activations and
//!   attention over an f16 key/value cache.
//!
//! # Instruction sets
//!
//! [`Isa::detect`] looks at the CPU once. Each kernel has a portable
//! version, which is the reference, and an AVX2 (+FMA, F16C) version used
//! when the CPU has it; with AVX-VNNI as well, the byte dot products of the
//! quantised kernels use `vpdpbusd`. The AVX2 products add block results in a different
//! order from the reference, so they agree with it to rounding, not bit for
//! bit; the integer part of every block is exact in both. Setting
//! `DOCENT_ISA=portable` forces the portable path and `DOCENT_ISA=avx2`
//! leaves out AVX-VNNI (for tests and comparisons).
//!
//! # Threads
//!
//! Products split their output rows over rayon's global pool, the one pool
//! of the process. Do not call them from inside a rayon parallel iterator
//! that is itself waiting on a product.

pub mod ops;
pub mod quant;

#[cfg(target_arch = "x86_64")]
mod avx2;

use std::sync::OnceLock;

/// The instruction set the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Portable,
    /// AVX2 with FMA and F16C.
    Avx2,
    /// AVX2 with AVX-VNNI's byte dot products (`vpdpbusd`).
    AvxVnni,
}

impl Isa {
    /// The best instruction set this CPU has (once per process), unless
    /// `DOCENT_ISA=portable` asks for the fallback.
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            if std::env::var("DOCENT_ISA").is_ok_and(|v| v.eq_ignore_ascii_case("portable")) {
                return Isa::Portable;
            }
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
                {
                    let vnni = std::is_x86_feature_detected!("avxvnni");
                    let avx2_only =
                        std::env::var("DOCENT_ISA").is_ok_and(|v| v.eq_ignore_ascii_case("avx2"));
                    return if vnni && !avx2_only {
                        Isa::AvxVnni
                    } else {
                        Isa::Avx2
                    };
                }
            }
            Isa::Portable
        })
    }

    /// Whether the AVX2 (+FMA, F16C) kernels may run.
    pub fn has_avx2(self) -> bool {
        matches!(self, Isa::Avx2 | Isa::AvxVnni)
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
        }
    }

    /// Every instruction set this CPU can run, the reference first.
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        let best = Isa::detect();
        if matches!(best, Isa::Avx2 | Isa::AvxVnni) {
            v.push(Isa::Avx2);
        }
        if best == Isa::AvxVnni {
            v.push(Isa::AvxVnni);
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{name}: {reason}")]
    BadMatrix { name: String, reason: String },
}
