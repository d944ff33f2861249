use std::path::{Path, PathBuf};

/// Which files [`walk`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Also list hidden files and folders.
    pub hidden: bool,
    /// Ignore `.gitignore`, `.ignore` and `.docentignore` files.
    pub no_ignore: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{path} is not a folder or cannot be read: {message}")]
    Root { path: String, message: String },
}

/// The extensions docent reads, lower-case.
pub const EXTENSIONS: &[&str] = &["txt", "md", "markdown", "html", "htm", "pdf"];

pub(crate) fn supported(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Lists the readable documents under `root`, sorted, with the problems met
/// on the way (unreadable folders, broken links) as warnings.
pub fn walk(root: &Path, opts: &WalkOptions) -> Result<(Vec<PathBuf>, Vec<String>), WalkError> {
    let meta = std::fs::metadata(root).map_err(|e| WalkError::Root {
        path: root.display().to_string(),
        message: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(WalkError::Root {
            path: root.display().to_string(),
            message: "not a folder".into(),
        });
    }
    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .hidden(!opts.hidden)
        .git_ignore(!opts.no_ignore)
        .git_exclude(!opts.no_ignore)
        .git_global(!opts.no_ignore)
        .ignore(!opts.no_ignore)
        .parents(!opts.no_ignore)
        .require_git(false)
        .follow_links(false);
    if !opts.no_ignore {
        builder.add_custom_ignore_filename(".docentignore");
    }
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for entry in builder.build() {
        match entry {
            // Links are listed too (not followed while walking), so that a
            // broken one is reported when it is read rather than ignored.
            Ok(e)
                if e.file_type().is_some_and(|t| t.is_file() || t.is_symlink())
                    && supported(e.path()) =>
            {
                files.push(e.into_path())
            }
            Ok(_) => {}
            Err(err) => warnings.push(err.to_string()),
        }
    }
    files.sort();
    Ok((files, warnings))
}
