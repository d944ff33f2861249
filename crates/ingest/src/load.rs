use std::path::Path;

use docent_core::{Document, SourceKind};
use sha2::{Digest, Sha256};

/// Limits applied while loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Files larger than this are skipped with a [`LoadError::TooLarge`].
    pub max_file_bytes: u64,
    /// PDFs with more pages than this are skipped with a
    /// [`LoadError::TooManyPages`].
    pub max_pdf_pages: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_file_bytes: 64 << 20,
            max_pdf_pages: 2000,
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
    #[error("{path}: vanished while it was being read; skipped (the next indexing run sees it if it comes back)")]
    Vanished { path: String },
    #[error("{path}: a symbolic link that loops or points nowhere reachable ({source}); skipped")]
    LinkLoop {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: a PDF of {pages} pages is over the limit of {limit} pages; skipped")]
    TooManyPages {
        path: String,
        pages: usize,
        limit: usize,
    },
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
            | LoadError::Vanished { path }
            | LoadError::LinkLoop { path, .. }
            | LoadError::TooManyPages { path, .. }
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
    /// Reads `path`, naming it by its path relative to `root`. The size
    /// limit holds for what is read, even if the file grows meanwhile.
    pub fn read(root: &Path, path: &Path, opts: &LoadOptions) -> Result<RawFile, LoadError> {
        use std::io::Read;
        let rel = relative(root, path);
        let classify = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => LoadError::Vanished { path: rel.clone() },
            // ELOOP: the link (or one on its way) loops.
            _ if source.raw_os_error() == Some(ELOOP) => LoadError::LinkLoop {
                path: rel.clone(),
                source,
            },
            _ => LoadError::Io {
                path: rel.clone(),
                source,
            },
        };
        let file = std::fs::File::open(path).map_err(classify)?;
        let meta = file.metadata().map_err(classify)?;
        if !meta.is_file() {
            return Err(LoadError::Io {
                path: rel,
                source: std::io::Error::other("not a regular file"),
            });
        }
        let too_large = |size| LoadError::TooLarge {
            path: rel.clone(),
            size,
            limit: opts.max_file_bytes,
        };
        if meta.len() > opts.max_file_bytes {
            return Err(too_large(meta.len()));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(opts.max_file_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(classify)?;
        if bytes.len() as u64 > opts.max_file_bytes {
            return Err(too_large(bytes.len() as u64));
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(RawFile {
            path: rel,
            bytes,
            sha256,
        })
    }

    /// Parses the bytes into a document.
    pub fn parse(&self, opts: &LoadOptions) -> Result<Loaded, LoadError> {
        let (document, warnings) = load_bytes_with(&self.path, &self.bytes, opts)?;
        Ok(Loaded {
            document,
            sha256: self.sha256.clone(),
            size: self.bytes.len() as u64,
            warnings,
        })
    }
}

/// `errno` for a symbolic link loop on Linux and the BSDs/macOS.
#[cfg(target_os = "linux")]
const ELOOP: i32 = 40;
#[cfg(not(target_os = "linux"))]
const ELOOP: i32 = 62;

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
    RawFile::read(root, path, opts)?.parse(opts)
}

/// Turns a file's bytes into a document; `path` chooses the format by its
/// extension and names the document. Uses the default [`LoadOptions`].
pub fn load_bytes(path: &str, bytes: &[u8]) -> Result<(Document, Vec<String>), LoadError> {
    load_bytes_with(path, bytes, &LoadOptions::default())
}

/// [`load_bytes`] with the given limits.
pub fn load_bytes_with(
    path: &str,
    bytes: &[u8],
    opts: &LoadOptions,
) -> Result<(Document, Vec<String>), LoadError> {
    let kind = kind_of(path).ok_or_else(|| LoadError::Unsupported { path: path.into() })?;
    let mut warnings = Vec::new();
    if kind == SourceKind::Pdf {
        let (text, blocks, pdf_warnings) =
            crate::pdf::load(bytes, opts.max_pdf_pages).map_err(|e| match e {
                crate::pdf::PdfError::TooManyPages { pages, limit } => LoadError::TooManyPages {
                    path: path.into(),
                    pages,
                    limit,
                },
                crate::pdf::PdfError::Unreadable(message) => LoadError::Pdf {
                    path: path.into(),
                    message,
                },
            })?;
        warnings.extend(pdf_warnings.into_iter().map(|w| format!("{path}: {w}")));
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
