//! Keeping an index current: index a folder, then index it again after each
//! burst of changes, with the encoder loaded once.
//!
//! Two rules keep it from losing a change or working for none:
//!
//! * The folder is watched from before the first run, so that a file
//!   written while that run reads the folder, or just after it publishes,
//!   brings a second run; watched only after it, such a change waited for
//!   the next one.
//! * Reading a file is not a change. Every run reads every file (it hashes
//!   them to find what changed), and the operating system reports each open
//!   and each close after reading; taken for changes, they made each run
//!   start the next, re-reading the whole folder forever. Only creations,
//!   writes, renames, removals and changes of metadata count, outside the
//!   index's own folder.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::{Duration, Instant};

use docent_embed::Encoder;
use docent_index::Index;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

use crate::indexer::{build_index, folder_to_index, IndexConfig, IndexEvent, IndexReport};
use crate::RagError;

/// What [`watch`] reports.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// Progress or a warning of an indexing run.
    Index(IndexEvent<'a>),
    /// A run finished: the first one, and every later one that changed the
    /// index.
    Indexed(&'a IndexReport),
    /// A later run found the index already matching the folder (a file
    /// written back unchanged, or touched).
    UpToDate(&'a IndexReport),
    /// The folder is being watched from now on.
    Watching(&'a Path),
    /// A later run failed; the index keeps its last good state and the
    /// watch goes on.
    Failed(&'a RagError),
    /// Watching the folder reported a problem; the watch goes on.
    Warning(&'a str),
}

/// The folder a run of `cfg` into `index_dir` will index, as
/// [`build_index`] resolves it, if it exists.
fn folder_of(index_dir: &Path, cfg: &IndexConfig) -> Option<PathBuf> {
    let previous = cfg
        .folder
        .is_none()
        .then(|| Index::read_meta(index_dir).ok())
        .flatten();
    let dir = folder_to_index(cfg, previous.as_ref().map(|m| m.root.as_str()));
    std::fs::canonicalize(dir).ok()
}

/// Whether `event` may change what an index of the folder holds: anything
/// but a read, outside the index's own folder `index`.
fn is_change(event: &Event, index: &Path) -> bool {
    let read = matches!(
        event.kind,
        EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write)
    );
    event.need_rescan()
        || !read && (event.paths.is_empty() || event.paths.iter().any(|p| !p.starts_with(index)))
}

/// Indexes `cfg.folder` into `index_dir`, then re-indexes it whenever the
/// folder has been quiet for `debounce` after a change, until `on_event`
/// breaks or the watcher stops. Reads of the folder and the index's own
/// writes are not changes (see the module's overview). An error of the
/// first run is returned; later ones are reported.
pub fn watch(
    index_dir: &Path,
    cfg: &IndexConfig,
    encoder: &Encoder,
    debounce: Duration,
    on_event: &mut dyn FnMut(WatchEvent<'_>) -> ControlFlow<()>,
) -> Result<(), RagError> {
    let (tx, rx) = channel();
    let watch_err = |path: &Path, message: String| RagError::Watch {
        path: path.display().to_string(),
        message,
    };
    let mut watcher =
        notify::recommended_watcher(tx).map_err(|e| watch_err(index_dir, e.to_string()))?;
    // Watched from before the first run; if the folder cannot be told yet
    // (or watched), from right after it, below.
    let mut watched = folder_of(index_dir, cfg)
        .filter(|root| watcher.watch(root, RecursiveMode::Recursive).is_ok());
    let report = build_index(index_dir, cfg, encoder, &mut |e| {
        let _ = on_event(WatchEvent::Index(e));
    })?;
    if on_event(WatchEvent::Indexed(&report)).is_break() {
        return Ok(());
    }
    // Later runs update what the first one built, from the same folder.
    let root = PathBuf::from(&report.root);
    if watched.as_deref() != Some(root.as_path()) {
        if let Some(old) = watched.take() {
            let _ = watcher.unwatch(&old);
        }
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|e| watch_err(&root, e.to_string()))?;
    }
    let cfg = IndexConfig {
        folder: Some(root.clone()),
        rebuild: false,
        ..cfg.clone()
    };
    if on_event(WatchEvent::Watching(&root)).is_break() {
        return Ok(());
    }
    let index_abs = std::fs::canonicalize(index_dir).unwrap_or_else(|_| index_dir.to_path_buf());
    let debounce = debounce.max(Duration::from_millis(1));
    // When the folder will have been quiet long enough after its last change.
    let mut due: Option<Instant> = None;
    loop {
        let next = match due {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match next {
            Ok(Ok(event)) => {
                if is_change(&event, &index_abs) {
                    due = Some(Instant::now() + debounce);
                }
                continue;
            }
            Ok(Err(e)) => {
                // Events may have been lost with it: look at the folder again.
                due = Some(Instant::now() + debounce);
                let msg = e.to_string();
                if on_event(WatchEvent::Warning(&msg)).is_break() {
                    return Ok(());
                }
                continue;
            }
            Err(RecvTimeoutError::Timeout) => due = None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let run = build_index(index_dir, &cfg, encoder, &mut |e| {
            let _ = on_event(WatchEvent::Index(e));
        });
        let flow = match &run {
            Ok(report) if report.up_to_date => on_event(WatchEvent::UpToDate(report)),
            Ok(report) => on_event(WatchEvent::Indexed(report)),
            Err(e) => on_event(WatchEvent::Failed(e)),
        };
        if flow.is_break() {
            return Ok(());
        }
    }
}
