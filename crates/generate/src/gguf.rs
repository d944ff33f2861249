//! Opening a GGUF file safely: header, metadata and tensor table, checked
//! against the file's real size before any weight is read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Cursor};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use memmap2::{Mmap, UncheckedAdvice};

use crate::GenerateError;

/// An opened GGUF file: its parsed header, and the file mapped into
/// memory, from which its tensors are read.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
    file: File,
    map: Mmap,
}

impl GgufFile {
    /// Reads the header, metadata and tensor table, and checks that every
    /// tensor's bytes lie inside the file. A truncated or corrupt file gives
    /// [`GenerateError::BadModelFile`], never a panic.
    pub fn open(path: &Path) -> Result<Self, GenerateError> {
        let bad = |reason: String| GenerateError::BadModelFile {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let file_len = file
            .metadata()
            .map_err(|e| bad(format!("cannot stat: {e}")))?
            .len();
        // SAFETY: the map is read-only and read only through
        // `tensor_slice`, inside the bounds checked below. As with every
        // reader of a mapped model (llama.cpp's too), a file truncated by
        // another process while it is mapped would fault the reads.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| bad(format!("cannot map: {e}")))?;
        // The header is parsed from the map: through a buffered reader of
        // the file, each of its values (Qwen2.5 has 300,000, its
        // vocabulary) cost a system call to find the reader's position.
        let mut reader = Cursor::new(&map[..]);
        let content = catch_unwind(AssertUnwindSafe(|| Content::read(&mut reader)))
            .map_err(|_| bad("the GGUF header could not be parsed".into()))?
            .map_err(|e| bad(format!("not a readable GGUF file ({e})")))?;
        for (name, info) in &content.tensor_infos {
            let dtype = info.ggml_dtype;
            let elems = info.shape.elem_count();
            if elems % dtype.block_size() != 0 {
                return Err(bad(format!(
                    "tensor {name} has {elems} elements, not a whole number of {dtype:?} blocks"
                )));
            }
            let bytes = (elems / dtype.block_size()) as u64 * dtype.type_size() as u64;
            let end = content
                .tensor_data_offset
                .checked_add(info.offset)
                .and_then(|o| o.checked_add(bytes));
            match end {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(bad(format!(
                        "tensor {name} ends past the end of the file ({file_len} bytes): \
                         the file is truncated; download it again"
                    )))
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            content,
            file,
            map,
        })
    }

    /// The parsed header and the reader, for code that loads tensors itself.
    pub fn into_parts(self) -> (Content, BufReader<File>) {
        (self.content, BufReader::new(self.file))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    /// `general.architecture`, e.g. `llama` or `gemma3`.
    pub fn architecture(&self) -> Result<String, GenerateError> {
        self.string("general.architecture")
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads one tensor in its stored (quantised) form.
    pub fn tensor(&mut self, name: &str) -> Result<QTensor, GenerateError> {
        let Self {
            path, content, map, ..
        } = self;
        if !content.tensor_infos.contains_key(name) {
            return Err(GenerateError::BadModelFile {
                path: path.clone(),
                reason: format!("tensor {name} is missing"),
            });
        }
        content
            .tensor(&mut Cursor::new(&map[..]), name, &Device::Cpu)
            .map_err(|e| GenerateError::BadModelFile {
                path: path.clone(),
                reason: format!("tensor {name}: {e}"),
            })
    }

    /// One tensor's bytes as stored, with its type and shape (rows
    /// last-but-one, as candle orders them), borrowed from the mapped file:
    /// nothing is copied, so several threads can read tensors at once and
    /// a matrix laid out anew is read once. Pass the bytes to
    /// [`GgufFile::release`] when done with them.
    pub fn tensor_slice(
        &self,
        name: &str,
    ) -> Result<(GgmlDType, Vec<usize>, &[u8]), GenerateError> {
        let info =
            self.content
                .tensor_infos
                .get(name)
                .ok_or_else(|| GenerateError::BadModelFile {
                    path: self.path.clone(),
                    reason: format!("tensor {name} is missing"),
                })?;
        let (dtype, dims) = (info.ggml_dtype, info.shape.dims().to_vec());
        // Sizes were checked against the file in `open`.
        let len = info.shape.elem_count() / dtype.block_size() * dtype.type_size();
        let at = (self.content.tensor_data_offset + info.offset) as usize;
        Ok((dtype, dims, &self.map[at..at + len]))
    }

    /// Drops the mapped pages of `bytes` (from [`GgufFile::tensor_slice`])
    /// from the process: they stay in the system's file cache, but no
    /// longer count in its memory, so a model loaded through the map
    /// peaks at its loaded size and not at that plus the file's.
    #[cfg(unix)]
    pub fn release(&self, bytes: &[u8]) {
        let offset = bytes.as_ptr() as usize - self.map.as_ptr() as usize;
        // SAFETY: the map is shared and read-only, so dropping its pages
        // loses nothing: a later read (a neighbouring tensor sharing an
        // edge page) maps the same file bytes again.
        let dropped = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, offset, bytes.len())
        };
        if let Err(e) = dropped {
            log::debug!("madvise(DONTNEED) on {}: {e}", self.path.display());
        }
    }

    /// Elsewhere the pages stay mapped until the file is closed.
    #[cfg(not(unix))]
    pub fn release(&self, _bytes: &[u8]) {}

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn missing(&self, key: &str, what: &str) -> GenerateError {
        GenerateError::BadModelFile {
            path: self.path.clone(),
            reason: format!("metadata {key} is {what}"),
        }
    }

    pub fn string(&self, key: &str) -> Result<String, GenerateError> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.missing(key, "not a string")),
            None => Err(self.missing(key, "missing")),
        }
    }

    /// An unsigned integer of any width.
    pub fn usize(&self, key: &str) -> Result<usize, GenerateError> {
        let v = match self.get(key) {
            Some(Value::U8(v)) => *v as i128,
            Some(Value::U16(v)) => *v as i128,
            Some(Value::U32(v)) => *v as i128,
            Some(Value::U64(v)) => *v as i128,
            Some(Value::I8(v)) => *v as i128,
            Some(Value::I16(v)) => *v as i128,
            Some(Value::I32(v)) => *v as i128,
            Some(Value::I64(v)) => *v as i128,
            Some(_) => return Err(self.missing(key, "not an integer")),
            None => return Err(self.missing(key, "missing")),
        };
        usize::try_from(v).map_err(|_| self.missing(key, "out of range"))
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, GenerateError> {
        if self.get(key).is_none() {
            return Ok(None);
        }
        self.usize(key).map(Some)
    }

    pub fn f32(&self, key: &str) -> Result<f32, GenerateError> {
        match self.get(key) {
            Some(Value::F32(v)) => Ok(*v),
            Some(Value::F64(v)) => Ok(*v as f32),
            Some(_) => Err(self.missing(key, "not a float")),
            None => Err(self.missing(key, "missing")),
        }
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>, GenerateError> {
        if self.get(key).is_none() {
            return Ok(None);
        }
        self.f32(key).map(Some)
    }

    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn opt_string(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// An array of strings (tokens, merges).
    pub fn strings(&self, key: &str) -> Result<Vec<String>, GenerateError> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.missing(key, "not an array of strings")),
                })
                .collect(),
            Some(_) => Err(self.missing(key, "not an array")),
            None => Err(self.missing(key, "missing")),
        }
    }

    pub fn opt_f32s(&self, key: &str) -> Result<Option<Vec<f32>>, GenerateError> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::F32(x) => Ok(*x),
                    Value::F64(x) => Ok(*x as f32),
                    _ => Err(self.missing(key, "not an array of floats")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.missing(key, "not an array")),
            None => Ok(None),
        }
    }

    pub fn opt_i32s(&self, key: &str) -> Result<Option<Vec<i32>>, GenerateError> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::I32(x) => Ok(*x),
                    Value::U32(x) => Ok(*x as i32),
                    Value::I8(x) => Ok(*x as i32),
                    Value::U8(x) => Ok(*x as i32),
                    _ => Err(self.missing(key, "not an array of integers")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.missing(key, "not an array")),
            None => Ok(None),
        }
    }
}
