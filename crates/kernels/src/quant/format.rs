//! The weight formats: GGUF's block layouts by size, and which activation
//! form each multiplies with.

pub const QK: usize = 32;
pub const QK_K: usize = 256;

/// Weight formats docent can multiply by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Format {
    pub const ALL: [Format; 10] = [
        Format::F32,
        Format::F16,
        Format::Q4_0,
        Format::Q4_1,
        Format::Q5_0,
        Format::Q5_1,
        Format::Q8_0,
        Format::Q4K,
        Format::Q5K,
        Format::Q6K,
    ];

    /// (elements per block, bytes per block)
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (QK, 18),
            Self::Q4_1 => (QK, 20),
            Self::Q5_0 => (QK, 22),
            Self::Q5_1 => (QK, 24),
            Self::Q8_0 => (QK, 34),
            Self::Q4K => (QK_K, 144),
            Self::Q5K => (QK_K, 176),
            Self::Q6K => (QK_K, 210),
        }
    }

    /// Bytes of one row of `cols` values.
    pub fn row_bytes(self, cols: usize) -> usize {
        let (per, bytes) = self.block();
        cols / per * bytes
    }

    pub(crate) fn activation(self) -> ActKind {
        match self {
            Self::F32 => ActKind::F32,
            Self::F16 => ActKind::F16,
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 => ActKind::Q8_0,
            Self::Q4_1 | Self::Q5_1 => ActKind::Q8_1,
            Self::Q4K | Self::Q5K | Self::Q6K => ActKind::Q8K,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActKind {
    F32,
    F16,
    Q8_0,
    Q8_1,
    Q8K,
}
