use docent_kernels::{ops, Isa};
use hnsw_rs::prelude::Distance;

/// Cosine distance between unit vectors: `1 - a·b`, clamped to `[0, 2]`
/// (hnsw_rs's own `DistDot` asserts on the products of slightly
/// over-long vectors instead). The product runs on docent's kernels, on
/// the instruction set the CPU has (AVX2 with FMA, else portable), chosen
/// once when the distance is made.
#[derive(Debug, Clone, Copy)]
pub struct CosineDistance {
    isa: Isa,
}

impl Default for CosineDistance {
    fn default() -> Self {
        CosineDistance { isa: Isa::detect() }
    }
}

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        (1.0 - ops::dot(self.isa, &a[..n], &b[..n])).clamp(0.0, 2.0)
    }
}

/// Dot product with eight independent accumulators (portable; the graph's
/// distance uses the kernels' SIMD product).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        for j in 0..8 {
            acc[j] += a[i * 8 + j] * b[i * 8 + j];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..n {
        s += a[i] * b[i];
    }
    s
}

/// Scales `v` to unit length in place; a zero vector stays zero.
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_stays_in_range() {
        let mut a = vec![0.1f32; 384];
        normalize(&mut a);
        let d = CosineDistance::default().eval(&a, &a);
        assert!((0.0..1e-5).contains(&d), "{d}");
        let b: Vec<f32> = a.iter().map(|x| -x).collect();
        assert!((CosineDistance::default().eval(&a, &b) - 2.0).abs() < 1e-5);
        // Slightly over-long vectors must not push the distance below 0.
        let c: Vec<f32> = a.iter().map(|x| x * 1.001).collect();
        assert_eq!(CosineDistance::default().eval(&c, &c), 0.0);
        // Every kernel path gives the portable product to rounding.
        let b: Vec<f32> = (0..384)
            .map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5)
            .collect();
        for isa in Isa::available() {
            let d = CosineDistance { isa }.eval(&a, &b);
            assert!((d - (1.0 - dot(&a, &b))).abs() < 1e-5, "{isa:?}");
        }
    }
}
