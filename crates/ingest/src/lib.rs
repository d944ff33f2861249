//! From a folder on disk to [`docent_core::Document`]s.
//!
//! [`walk`] lists the files of a folder the way ripgrep does: `.gitignore`,
//! `.ignore` and `.docentignore` files are honoured (inside a git repository
//! or not), hidden files and folders are skipped, and only the extensions
//! docent can read are kept (`.txt`, `.md`/`.markdown`, `.html`/`.htm`,
//! `.pdf`).
//!
//! [`load`] reads one file and turns it into a document with a well-kept
//! parser for each format: pulldown-cmark finds Markdown headings, scraper
//! (html5ever) walks HTML, pdf-extract (lopdf) reads PDF text page by page.
//! Whatever a file holds, loading returns a [`LoadError`] rather than
//! panicking: binary files, unreadable files, corrupt PDFs (whose parser is
//! run behind `catch_unwind`, since it may panic on hostile input) and files
//! over the size limit are reported by name so that the caller can warn and
//! go on. Text that is not valid UTF-8 is decoded lossily and reported as a
//! warning.
//!
//! This crate reads the documents it is pointed at; it writes nothing.

mod html;
mod load;
mod markdown;
mod pdf;
mod text;
mod walk;

pub use load::{
    load, load_bytes, load_bytes_with, relative, LoadError, LoadOptions, Loaded, RawFile,
};
pub use walk::{walk, WalkError, WalkOptions};
