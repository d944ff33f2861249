//! The generation protocol: how a writer publishes a complete new version of
//! the index and how readers and writers agree on which one is live.
//!
//! * `CURRENT` names the live generation folder (`gen-<nanos>-<pid>`). A
//!   writer publishes by writing `CURRENT.tmp` and renaming it over
//!   `CURRENT`, so a reader sees the old name or the new one, never a mix.
//! * `LOCK` is held (exclusively) by the one writer.
//! * A reader holds a shared lock on the folder of the generation it opened
//!   for as long as it lives; a writer removes a replaced generation only
//!   when it can lock it exclusively.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::io;
use crate::IndexError;

pub(crate) const CURRENT: &str = "CURRENT";
const CURRENT_TMP: &str = "CURRENT.tmp";
const LOCK: &str = "LOCK";

/// The name of the live generation under `root`, or `None` when no index
/// has been published there. Cheap (one small file read): a long-lived
/// reader calls it to find out whether a writer has published since it
/// opened.
pub fn live_generation(root: &Path) -> Result<Option<String>, IndexError> {
    match fs::read_to_string(root.join(CURRENT)) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&root.join(CURRENT))(e)),
    }
}

/// Flushes a folder's entries (best effort: not every platform can open a
/// folder for syncing).
pub(crate) fn fsync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Takes the writer's lock and clears generations left by interrupted
/// writers; returns the lock and the live generation's name.
pub(crate) fn lock_root(root: &Path) -> Result<(File, Option<String>), IndexError> {
    fs::create_dir_all(root).map_err(io(root))?;
    let lock_path = root.join(LOCK);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(IndexError::Locked {
                path: root.display().to_string(),
            })
        }
        Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
    }
    let current = live_generation(root)?;
    remove_generations(root, current.as_deref());
    let _ = fs::remove_file(root.join(CURRENT_TMP));
    Ok((lock, current))
}

/// Removes every generation but `keep`: those left by interrupted writers
/// and those replaced since. A generation a reader holds (see
/// [`pin_generation`]) is left for a later writer to remove.
pub(crate) fn remove_generations(root: &Path, keep: Option<&str>) {
    let Ok(rd) = fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("gen-") || Some(name.as_str()) == keep {
            continue;
        }
        let dir = File::open(e.path());
        if let Ok(Err(fs::TryLockError::WouldBlock)) = dir.as_ref().map(File::try_lock) {
            continue; // held by a reader
        }
        // `dir` keeps its exclusive lock while the folder is removed, so no
        // reader takes hold of it halfway. Where locks are not supported,
        // the folder is removed all the same.
        let _ = fs::remove_dir_all(e.path());
        drop(dir);
    }
}

/// A reader's hold on a generation: a shared lock on its directory, kept
/// for as long as the [`crate::Index`] lives. Writers remove a replaced
/// generation only when they can lock it exclusively, so its files do not
/// vanish while a reader opens or uses them. `None` when the directory is
/// gone (it was replaced and removed), or when locking is not supported, in
/// which case the open relies on its retries alone.
pub(crate) fn pin_generation(gen_dir: &Path) -> Option<File> {
    let dir = File::open(gen_dir).ok()?;
    dir.lock_shared().ok()?;
    // A writer may have removed the directory while this waited for the
    // lock: then the hold is on nothing.
    gen_dir.is_dir().then_some(dir)
}

/// Creates the folder of a new, unpublished generation.
pub(crate) fn new_generation(root: &Path) -> Result<(String, PathBuf), IndexError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let gen_name = format!("gen-{nanos}-{}", std::process::id());
    let gen_dir = root.join(&gen_name);
    fs::create_dir(&gen_dir).map_err(io(&gen_dir))?;
    Ok((gen_name, gen_dir))
}

/// Makes `gen_name` the live generation: writes `CURRENT.tmp`, syncs it and
/// renames it over `CURRENT`, then removes the generations no reader holds.
/// The generation's own files must already be durable.
pub(crate) fn publish(root: &Path, gen_name: &str) -> Result<(), IndexError> {
    let tmp = root.join(CURRENT_TMP);
    fs::write(&tmp, format!("{gen_name}\n")).map_err(io(&tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, root.join(CURRENT)).map_err(io(root))?;
    fsync_dir(root);
    remove_generations(root, Some(gen_name));
    Ok(())
}
