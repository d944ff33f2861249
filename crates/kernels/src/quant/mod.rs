//! Products of GGUF-quantised weight matrices with activation rows.
//!
//! The block layouts are those of the GGUF format (ggml's `block_*`
//! structs). [`dot`] is the reference: one weight row against one
//! activation row, block by block, in plain Rust. The AVX2 kernels compute
//! the same integer block sums and scale them the same way.
//!
//! The modules, each depending only on those above it:
//!
//! * `format`: the formats and their block sizes;
//! * `blocks`: decoding a block into integers, scales and minimums;
//! * `layout`: the layouts the SIMD back ends read (activation rows and
//!   groups, weight rows interleaved at load);
//! * `reference`: the portable activation quantisers and dot product;
//! * `act`: [`Activations`], quantised once per input and reused;
//! * `matmul`: [`QMatrix`] and the dispatch of products ([`matmul_many`]).
//!
//! `crate::avx2` reads `format`, `blocks`, `layout` and `reference`, and is
//! called by `act` and `matmul`: there is no import cycle.

mod act;
mod blocks;
mod bytes;
mod format;
pub(crate) mod layout;
mod matmul;
pub(crate) mod reference;

pub use act::Activations;
pub use bytes::Bytes;
pub use format::{Format, QK, QK_K};
pub use layout::{ActGroup, ActRow};
pub use matmul::{matmul_many, Layout, QMatrix};
pub use reference::{dot, quantize_q8_0};

pub(crate) use blocks::k_scales;

#[cfg(test)]
mod tests;
