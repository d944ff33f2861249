//! How results read on a terminal: locations relative to where the user
//! stands, and one-line snippets.

use std::path::Path;

/// `path:line` (with the page for paged documents), the path relative to
/// the current folder when the indexed folder `root` is below it.
pub fn location(root: &str, path: &str, line: u32, page: Option<u32>) -> String {
    let root = Path::new(root);
    let cwd = std::env::current_dir().ok();
    let base = cwd
        .as_deref()
        .and_then(|c| root.strip_prefix(c).ok())
        .unwrap_or(root);
    let path = base.join(path);
    match page {
        Some(p) => format!("{}:{line} (page {p})", path.display()),
        None => format!("{}:{line}", path.display()),
    }
}

/// A location and its heading path, as sources are listed.
pub fn label(location: &str, heading: &[String]) -> String {
    if heading.is_empty() {
        location.to_string()
    } else {
        format!("{location} — {}", heading.join(" > "))
    }
}

/// The text on one line, cut to `max_chars`.
pub fn snippet(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let cut: String = flat.chars().take(max_chars).collect();
        format!("{}…", cut.trim_end())
    }
}
