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
//! quantised kernels use `vpdpbusd`; with AVX-512 (F, BW, VL, VNNI) as well,
//! the interleaved `Q8_0` and `Q4_K` products run on 512-bit registers
//! (`avx512.rs`). AMX is never used: the virtual machines docent is
//! measured on list it but fault on its instructions. The AVX2 products add
//! block results in a different order from the reference, so they agree
//! with it to rounding, not bit for bit; the integer part of every block is
//! exact in both. Setting `DOCENT_ISA=portable` forces the portable path,
//! `DOCENT_ISA=avx2` leaves out AVX-VNNI and AVX-512, and
//! `DOCENT_ISA=avx-vnni` leaves out AVX-512 (for tests and comparisons).
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
#[cfg(target_arch = "x86_64")]
mod avx512;

use std::sync::OnceLock;

/// The CPU's name as its vendor gives it (`cpuid`'s brand string, what
/// `/proc/cpuinfo` calls the model name), for printing beside figures.
pub fn cpu_name() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // Leaves above the highest extended one are not read.
        let brand = {
            if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
                let mut bytes = Vec::with_capacity(48);
                for leaf in 0x8000_0002u32..=0x8000_0004 {
                    let r = __cpuid(leaf);
                    for word in [r.eax, r.ebx, r.ecx, r.edx] {
                        bytes.extend_from_slice(&word.to_le_bytes());
                    }
                }
                Some(bytes)
            } else {
                None
            }
        };
        if let Some(bytes) = brand {
            let name = String::from_utf8_lossy(&bytes);
            let name = name.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            if !name.is_empty() {
                return name.to_string();
            }
        }
    }
    "an unknown CPU".to_string()
}

/// The instruction set the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Portable,
    /// AVX2 with FMA and F16C.
    Avx2,
    /// AVX2 with AVX-VNNI's byte dot products (`vpdpbusd`).
    AvxVnni,
    /// AVX-512 (F, BW, VL, VNNI) for the interleaved products; AVX-VNNI
    /// elsewhere where the CPU has it (Zen 5, Sapphire Rapids), else the
    /// AVX2 kernels (Zen 4, Ice Lake).
    Avx512Vnni,
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
                    let avx512 = std::is_x86_feature_detected!("avx512f")
                        && std::is_x86_feature_detected!("avx512bw")
                        && std::is_x86_feature_detected!("avx512vl")
                        && std::is_x86_feature_detected!("avx512vnni");
                    let asked = std::env::var("DOCENT_ISA").unwrap_or_default();
                    let avx2_only = asked.eq_ignore_ascii_case("avx2");
                    let no_512 = avx2_only || asked.eq_ignore_ascii_case("avx-vnni");
                    return if avx512 && !no_512 {
                        Isa::Avx512Vnni
                    } else if vnni && !avx2_only {
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
        matches!(self, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni)
    }

    /// Whether the interleaved layouts are built (the VNNI instruction
    /// sets).
    pub fn has_vnni(self) -> bool {
        matches!(self, Isa::AvxVnni | Isa::Avx512Vnni)
    }

    /// Whether the 256-bit AVX-VNNI kernels may run: with
    /// `Isa::AvxVnni`, and with `Isa::Avx512Vnni` on a CPU that also has
    /// AVX-VNNI (`DOCENT_NO_AVXVNNI=1` pretends it has not, to test the
    /// other path).
    pub fn vex_vnni(self) -> bool {
        static VEX: OnceLock<bool> = OnceLock::new();
        match self {
            Isa::AvxVnni => true,
            Isa::Avx512Vnni => *VEX.get_or_init(|| {
                #[cfg(target_arch = "x86_64")]
                {
                    std::is_x86_feature_detected!("avxvnni")
                        && std::env::var_os("DOCENT_NO_AVXVNNI").is_none()
                }
                #[cfg(not(target_arch = "x86_64"))]
                false
            }),
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Every instruction set this CPU can run, the reference first.
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        let best = Isa::detect();
        if best.has_avx2() {
            v.push(Isa::Avx2);
        }
        if best.vex_vnni() {
            v.push(Isa::AvxVnni);
        }
        if best == Isa::Avx512Vnni {
            v.push(Isa::Avx512Vnni);
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{name}: {reason}")]
    BadMatrix { name: String, reason: String },
}
