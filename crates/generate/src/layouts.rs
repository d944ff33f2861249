//! Weight layouts saved on disk, so that a model loads without building
//! them again.
//!
//! At load the kernels want most weight matrices in their own layouts
//! (rows interleaved eight at a time, `K`-quant scales decoded; see
//! `QMatrix::repacked`). Building them reads and rewrites every byte of the
//! model: about a second for Qwen2.5 1.5B on two cores, a third of the time
//! to the first token of a one-off `docent ask`. The first load of a model
//! on a machine saves the built layouts in one file per model and
//! instruction set; later loads map that file and use its bytes in place,
//! so they cost what reading the header costs, and the pages come from the
//! system's file cache as the first prompt touches them (and are shared
//! by every process that has the model open).
//!
//! The file is derived data, checked and never trusted blindly:
//! * it is found by the model file's path, and holds the model file's size
//!   and modification time, the instruction set and a format version: any
//!   change and the layouts are built and saved again;
//! * each matrix's layout and size are checked against what the kernels
//!   would build (`QMatrix::from_layout`), so a damaged or truncated file
//!   is rebuilt, not misread;
//! * saving never fails a load: a full disk or a read-only folder is
//!   logged, and the layouts are built at every load as before.
//!
//! Layout of a file: the 8-byte magic, the header's length (u64, little
//! endian), the header as JSON, then each matrix's bytes at a multiple of
//! [`ALIGN`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use docent_kernels::quant::{Bytes, Format, Layout, QMatrix};
use docent_kernels::Isa;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::gguf::GgufFile;

/// The first bytes of a file of layouts; the digit is the format's version.
const MAGIC: &[u8; 8] = b"DOCLAYT2";
/// Where each matrix starts: a page, so that its bytes map on their own.
const ALIGN: u64 = 4096;
/// Space left free on the disk after a file is saved.
const KEEP_FREE: u64 = 1 << 30;

/// A folder of saved layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutStore {
    dir: PathBuf,
}

/// What a file of layouts was made from.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct Source {
    /// The model file, for people reading the header.
    path: String,
    len: u64,
    modified_ns: u64,
    isa: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    source: Source,
    matrices: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    format: String,
    layout: String,
    rows: usize,
    cols: usize,
    offset: u64,
    len: u64,
}

impl LayoutStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of layouts for `model` on `isa`.
    pub fn file_for(&self, model: &Path, isa: Isa) -> PathBuf {
        let full = model.canonicalize().unwrap_or_else(|_| model.to_path_buf());
        let key = hex::encode(&Sha256::digest(full.to_string_lossy().as_bytes())[..8]);
        let stem = model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.dir
            .join(format!("{stem}-{key}-{}.layouts", isa.name()))
    }

    /// The matrices `names` of `model` as saved for `isa`, or `None` when
    /// they were not saved, were saved from another version of the file,
    /// or do not read back (logged; the caller builds them).
    pub fn load(
        &self,
        model: &GgufFile,
        names: &[String],
        isa: Isa,
    ) -> Option<HashMap<String, QMatrix>> {
        let path = self.file_for(model.path(), isa);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("no saved layouts at {}: {e}", path.display());
                return None;
            }
        };
        match read(file, &source(model.path(), isa)?, names, isa) {
            Ok(mats) => Some(mats),
            Err(why) => {
                log::warn!(
                    "the saved weight layouts at {} are not usable ({why}); building them again",
                    path.display()
                );
                None
            }
        }
    }

    /// Whether layouts saved from `model` as it is now, for `isa`, are
    /// here (their header is; the matrices are checked as they are read).
    pub fn holds(&self, model: &Path, isa: Isa) -> bool {
        let Some(want) = source(model, isa) else {
            return false;
        };
        File::open(self.file_for(model, isa))
            .map_err(|e| e.to_string())
            .and_then(|f| map(&f))
            .and_then(|m| header(&m, &want))
            .is_ok()
    }

    /// Saves `mats`, the matrices of `model` laid out for `isa`. A failure
    /// is logged, and loads go on building the layouts.
    pub fn save(&self, model: &GgufFile, isa: Isa, mats: &HashMap<String, QMatrix>) {
        let Some(source) = source(model.path(), isa) else {
            return;
        };
        let path = self.file_for(model.path(), isa);
        // Written under a name of its own (loads in other threads or
        // processes may be saving the same layouts) and renamed into place
        // whole; a failed write's file is removed.
        let saved = std::fs::create_dir_all(&self.dir)
            .and_then(|_| tempfile::NamedTempFile::new_in(&self.dir))
            .and_then(|tmp| {
                write(tmp.as_file(), source, mats)?;
                tmp.persist(&path).map_err(|e| e.error)?;
                Ok(())
            });
        match saved {
            Ok(()) => log::info!(
                "saved the weight layouts of {} to {}",
                model.path().display(),
                path.display()
            ),
            Err(e) => log::warn!(
                "could not save the weight layouts to {} ({e}); each load builds them",
                path.display()
            ),
        }
    }
}

fn map(file: &File) -> Result<Mmap, String> {
    // SAFETY: the map is read-only. Files are replaced by renaming a new
    // one over them, never written in place, so a mapped file does not
    // change under its readers.
    unsafe { Mmap::map(file) }.map_err(|e| format!("cannot map: {e}"))
}

/// The model file's identity, or `None` if it cannot be read (logged).
fn source(model: &Path, isa: Isa) -> Option<Source> {
    let meta = match std::fs::metadata(model) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("cannot stat {}: {e}", model.display());
            return None;
        }
    };
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Some(Source {
        path: model.display().to_string(),
        len: meta.len(),
        modified_ns,
        isa: isa.name().to_string(),
    })
}

/// The header of a file of layouts, checked against the model file it
/// should have been made from.
fn header(map: &Mmap, want: &Source) -> Result<Header, String> {
    if map.len() < 16 || &map[..8] != MAGIC {
        return Err("not a file of layouts of this version".into());
    }
    let header_len = u64::from_le_bytes(map[8..16].try_into().expect("8 bytes")) as usize;
    let header = map
        .get(16..16usize.saturating_add(header_len))
        .ok_or("the header is cut short")?;
    let header: Header =
        serde_json::from_slice(header).map_err(|e| format!("unreadable header: {e}"))?;
    if &header.source != want {
        return Err(format!(
            "made from {:?}, not the current {want:?}",
            header.source
        ));
    }
    Ok(header)
}

fn read(
    file: File,
    want: &Source,
    names: &[String],
    isa: Isa,
) -> Result<HashMap<String, QMatrix>, String> {
    let map = map(&file)?;
    let header = header(&map, want)?;
    let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(map);
    let entries: HashMap<&str, &Entry> = header
        .matrices
        .iter()
        .map(|e| (e.name.as_str(), e))
        .collect();
    let mut mats = HashMap::with_capacity(names.len());
    for name in names {
        let e = entries
            .get(name.as_str())
            .ok_or_else(|| format!("{name} is missing"))?;
        let format = Format::ALL
            .into_iter()
            .find(|f| format!("{f:?}") == e.format)
            .ok_or_else(|| format!("{name}: unknown format {}", e.format))?;
        let layout = Layout::ALL
            .into_iter()
            .find(|l| format!("{l:?}") == e.layout)
            .ok_or_else(|| format!("{name}: unknown layout {}", e.layout))?;
        let bytes = Bytes::shared(&owner, e.offset as usize, e.len as usize)
            .ok_or_else(|| format!("{name} lies past the end of the file"))?;
        let m = QMatrix::from_layout(name, format, e.rows, e.cols, layout, bytes, isa)
            .map_err(|err| err.to_string())?;
        mats.insert(name.clone(), m);
    }
    Ok(mats)
}

fn write(file: &File, source: Source, mats: &HashMap<String, QMatrix>) -> std::io::Result<()> {
    let mut names: Vec<&String> = mats.keys().collect();
    names.sort();
    // Offsets are known once the header's length is: lay out the matrices
    // after a header of the right size, which the offsets do not change
    // by more than their digits.
    let mut header = Header {
        source,
        matrices: Vec::with_capacity(names.len()),
    };
    for name in &names {
        let m = &mats[*name];
        let (layout, bytes) = m.layout();
        header.matrices.push(Entry {
            name: name.to_string(),
            format: format!("{:?}", m.format()),
            layout: format!("{layout:?}"),
            rows: m.rows(),
            cols: m.cols(),
            offset: u64::MAX,
            len: bytes.len() as u64,
        });
    }
    // With every offset at its widest, the header is at least as long as
    // with the real ones: start the data after that.
    let widest = serde_json::to_vec(&header)?.len() as u64;
    let mut at = (16 + widest).next_multiple_of(ALIGN);
    for e in &mut header.matrices {
        e.offset = at;
        at = (at + e.len).next_multiple_of(ALIGN);
    }
    check_free_space(file, at)?;
    let json = serde_json::to_vec(&header)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u64).to_le_bytes())?;
    out.write_all(&json)?;
    let mut written = 16 + json.len() as u64;
    for (name, e) in names.iter().zip(&header.matrices) {
        let pad = e.offset - written;
        out.write_all(&vec![0u8; pad as usize])?;
        out.write_all(mats[*name].layout().1)?;
        written = e.offset + e.len;
    }
    // Not synced to disk: that doubled the first load's cost of saving.
    // The file is renamed into place once written, so a crashed process
    // leaves none; after a crash of the system, a file whose writing did
    // not reach the disk reads back short (as filesystems that journal
    // their metadata in order, ext4's default, never show stale blocks)
    // and is rebuilt.
    out.flush()
}

/// Refuses to write `bytes` to `file` where that would leave less than
/// [`KEEP_FREE`] on its disk.
fn check_free_space(file: &File, bytes: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: statvfs is plain old data, for which zeroes are valid.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptor is open for the call, and `st` a valid
        // out-pointer.
        if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) } == 0 {
            let free = st.f_bavail as u64 * st.f_frsize as u64;
            if free < bytes + KEEP_FREE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "{} MiB free, {} MiB needed and 1 GiB kept free",
                        free >> 20,
                        bytes >> 20
                    ),
                ));
            }
        }
    }
    let _ = (file, bytes);
    Ok(())
}
