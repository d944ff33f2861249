use std::path::Path;

use docent_core::{Document, SourceKind};
use sha2::{Digest, Sha256};

/// Limits applied while loading.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Files larger than this are skipped with a [`LoadError::TooLarge`].
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_file_bytes: 64 << 20,
        }
    }
}

/// A loaded file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub document: Document,
    /// sha256 of the file's bytes, lower-case hex.
    pub sha256: String,
    pub size: u64,
    /// Problems that did not stop the load (for example invalid UTF-8).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot be read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is over the limit of {limit} bytes; skipped")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: looks like a binary file, not text; skipped")]
    Binary { path: String },
    #[error("{path}: not a readable PDF ({message}); skipped")]
    Pdf { path: String, message: String },
    #[error("{path}: docent cannot read this kind of file; skipped")]
    Unsupported { path: String },
}

impl LoadError {
    pub fn path(&self) -> &str {
        match self {
            LoadError::Io { path, .. }
            | LoadError::TooLarge { path, .. }
            | LoadError::Binary { path }
            | LoadError::Pdf { path, .. }
            | LoadError::Unsupported { path } => path,
        }
    }
}

pub(crate) fn kind_of(path: &str) -> Option<SourceKind> {
    let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" => SourceKind::Text,
        "md" | "markdown" => SourceKind::Markdown,
        "html" | "htm" => SourceKind::Html,
        "pdf" => SourceKind::Pdf,
        _ => return None,
    })
}

/// A file's bytes, read and hashed but not yet parsed.
#[derive(Debug, Clone)]
pub struct RawFile {
    /// Path relative to the indexed folder, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`, lower-case hex.
    pub sha256: String,
}

impl RawFile {
    /// Reads `path`, naming it by its path relative to `root`.
    pub fn read(root: &Path, path: &Path, opts: &LoadOptions) -> Result<RawFile, LoadError> {
        let rel = relative(root, path);
        let io = |source| LoadError::Io {
            path: rel.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > opts.max_file_bytes {
            return Err(LoadError::TooLarge {
                path: rel,
                size: meta.len(),
                limit: opts.max_file_bytes,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(RawFile {
            path: rel,
            bytes,
            sha256,
        })
    }

    /// Parses the bytes into a document.
    pub fn parse(&self) -> Result<Loaded, LoadError> {
        let (document, warnings) = load_bytes(&self.path, &self.bytes)?;
        Ok(Loaded {
            document,
            sha256: self.sha256.clone(),
            size: self.bytes.len() as u64,
            warnings,
        })
    }
}

/// `path` relative to `root`, `/`-separated.
pub fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads and parses `path`, naming it by its path relative to `root`.
pub fn load(root: &Path, path: &Path, opts: &LoadOptions) -> Result<Loaded, LoadError> {
    RawFile::read(root, path, opts)?.parse()
}

/// Turns a file's bytes into a document; `path` chooses the format by its
/// extension and names the document.
pub fn load_bytes(path: &str, bytes: &[u8]) -> Result<(Document, Vec<String>), LoadError> {
    let kind = kind_of(path).ok_or_else(|| LoadError::Unsupported { path: path.into() })?;
    let mut warnings = Vec::new();
    if kind == SourceKind::Pdf {
        let (text, blocks) = crate::pdf::load(bytes).map_err(|message| LoadError::Pdf {
            path: path.into(),
            message,
        })?;
        return Ok((
            Document {
                path: path.into(),
                kind,
                text,
                blocks,
            },
            warnings,
        ));
    }
    if looks_binary(bytes) {
        return Err(LoadError::Binary { path: path.into() });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        Err(_) => {
            let t = String::from_utf8_lossy(bytes).into_owned();
            let bad = t
                .chars()
                .filter(|&c| c == char::REPLACEMENT_CHARACTER)
                .count();
            warnings.push(format!(
                "{path}: not valid UTF-8; {bad} invalid byte sequence(s) replaced with U+FFFD"
            ));
            t
        }
    };
    let text = text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text);
    let (text, blocks) = match kind {
        SourceKind::Text => {
            let blocks = crate::text::paragraphs(&text, 0..text.len(), None);
            (text, blocks)
        }
        SourceKind::Markdown => {
            let blocks = crate::markdown::blocks(&text);
            (text, blocks)
        }
        SourceKind::Html => crate::html::load(&text),
        SourceKind::Pdf => unreachable!("handled above"),
    };
    Ok((
        Document {
            path: path.into(),
            kind,
            text,
            blocks,
        },
        warnings,
    ))
}

/// A NUL byte in the first 8 KiB, as git and ripgrep decide.
fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}
