//! Keeping an index current: index a folder, then index it again after each
//! burst of changes, with the encoder loaded once.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docent_embed::Encoder;
use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode, DebouncedEvent};

use crate::indexer::{build_index, IndexConfig, IndexEvent, IndexReport};
use crate::RagError;

/// What [`watch`] reports.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// Progress or a warning of an indexing run.
    Index(IndexEvent<'a>),
    /// A run finished: the first one, and every later one that changed the
    /// index.
    Indexed(&'a IndexReport),
    /// The folder is being watched from now on.
    Watching(&'a Path),
    /// A later run failed; the index keeps its last good state and the
    /// watch goes on.
    Failed(&'a RagError),
    /// Watching the folder reported a problem; the watch goes on.
    Warning(&'a str),
}

/// Indexes `cfg.folder` into `index_dir`, then re-indexes it whenever the
/// folder has been quiet for `debounce` after a change, until `on_event`
/// breaks or the watcher stops. The index's own writes are not changes.
/// An error of the first run is returned; later ones are reported.
pub fn watch(
    index_dir: &Path,
    cfg: &IndexConfig,
    encoder: &Encoder,
    debounce: Duration,
    on_event: &mut dyn FnMut(WatchEvent<'_>) -> ControlFlow<()>,
) -> Result<(), RagError> {
    let report = build_index(index_dir, cfg, encoder, &mut |e| {
        let _ = on_event(WatchEvent::Index(e));
    })?;
    if on_event(WatchEvent::Indexed(&report)).is_break() {
        return Ok(());
    }
    // Later runs update what the first one built, from the same folder.
    let root = PathBuf::from(&report.root);
    let cfg = IndexConfig {
        folder: Some(root.clone()),
        rebuild: false,
        ..cfg.clone()
    };
    let watch_err = |message: String| RagError::Watch {
        path: root.display().to_string(),
        message,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer = new_debouncer(debounce.max(Duration::from_millis(1)), tx)
        .map_err(|e| watch_err(e.to_string()))?;
    debouncer
        .watcher()
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| watch_err(e.to_string()))?;
    if on_event(WatchEvent::Watching(&root)).is_break() {
        return Ok(());
    }
    let index_abs = std::fs::canonicalize(index_dir).unwrap_or_else(|_| index_dir.to_path_buf());
    let relevant =
        |events: &[DebouncedEvent]| events.iter().any(|e| !e.path.starts_with(&index_abs));
    while let Ok(events) = rx.recv() {
        let mut changed = match events {
            Ok(events) => relevant(&events),
            Err(e) => {
                let msg = e.to_string();
                if on_event(WatchEvent::Warning(&msg)).is_break() {
                    return Ok(());
                }
                false
            }
        };
        // Fold in whatever else arrived meanwhile.
        while let Ok(more) = rx.try_recv() {
            changed |= more.is_ok_and(|events| relevant(&events));
        }
        if !changed {
            continue;
        }
        let run = build_index(index_dir, &cfg, encoder, &mut |e| {
            let _ = on_event(WatchEvent::Index(e));
        });
        let flow = match &run {
            Ok(report) if report.up_to_date => ControlFlow::Continue(()),
            Ok(report) => on_event(WatchEvent::Indexed(report)),
            Err(e) => on_event(WatchEvent::Failed(e)),
        };
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}
