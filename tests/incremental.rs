//! Re-indexing a changing folder: only what changed is embedded, deleted and
//! replaced chunks never come back from a search, the graph is compacted
//! once removed chunks pass the threshold, and the result always equals a
//! fresh build of the same folder.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::{docent, ok, state};
use docent_index::{Index, COMPACT_RATIO};
use docent_rag::retrieve::search;
use docent_rag::{RetrieveConfig, SearchMode};
use serde_json::Value;

/// A note whose text is unique to `i` and `version`: `marker` words let a
/// test find (or fail to find) exactly this version.
fn note(i: usize, version: &str) -> String {
    format!(
        "# Note {i}\n\nmarker{version}{i} This note {i} ({version}) is about topic {i}. {}\n\n\
         ## Details of note {i}\n\nIn note {i}: {}\n",
        "Retrieval finds passages; generation writes the answer. ".repeat(2 + i % 3),
        "Chunks overlap so that no sentence is lost at a boundary. ".repeat(1 + i % 4),
    )
}

/// The index at `ix` holds exactly what a fresh build of `cwd/docs` gives.
fn assert_same_as_fresh_build(cwd: &Path, ix: &Path) {
    let fresh = cwd.join("fresh");
    ok(&docent(
        cwd,
        &["--index", fresh.to_str().unwrap(), "index", "docs"],
    ));
    assert_eq!(state(ix), state(&fresh));
}

fn index(cwd: &Path) -> Value {
    serde_json::from_str(&ok(&docent(cwd, &["index", "docs", "--json"]))).unwrap()
}

/// Every chunk id that `text` finds lexically, and the paths of the best
/// dense hits for it (as many as the index holds).
fn lexical_paths(ix: &Index, text: &str) -> HashSet<String> {
    let ids: Vec<u64> = ix
        .lexical(text, 1000)
        .unwrap()
        .into_iter()
        .map(|x| x.0)
        .collect();
    ix.chunks(&ids)
        .unwrap()
        .into_iter()
        .map(|c| c.chunk.path)
        .collect()
}

/// The dense search of `text` over the whole index returns only live
/// chunks, `k` of them, in the order of exact search.
fn check_dense(ix: &Index, text: &str) {
    let v = common::encoder().embed(&[text]).unwrap().pop().unwrap();
    let k = 8.min(ix.len());
    let got = ix.dense(&v, k, 200).unwrap();
    assert_eq!(got.len(), k, "{text}: a filtered search still fills k");
    let want: Vec<u64> = ix.exact(&v, k).unwrap().into_iter().map(|x| x.0).collect();
    let got: Vec<u64> = got.into_iter().map(|x| x.0).collect();
    assert_eq!(got, want, "{text}");
    // Every hit resolves to a stored chunk, in every mode.
    for mode in [SearchMode::Dense, SearchMode::Lexical, SearchMode::Hybrid] {
        let cfg = RetrieveConfig {
            k: ix.len(),
            mode,
            ef: Some(200),
            ..RetrieveConfig::default()
        };
        search(ix, text, &v, &cfg).unwrap_or_else(|e| panic!("{text} ({mode:?}): {e}"));
    }
}

#[test]
fn reindexing_touches_only_what_changed_and_matches_a_fresh_build() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    common::copy_dir(&common::corpus(), &docs);
    for i in 0..20 {
        std::fs::write(docs.join(format!("note-{i:02}.md")), note(i, "one")).unwrap();
    }
    let first = index(tmp.path());
    assert_eq!(first["embedded_files"], 25);

    // Nothing changed: nothing is written.
    let gen = std::fs::read_to_string(tmp.path().join(".docent/CURRENT")).unwrap();
    let again = index(tmp.path());
    assert_eq!(again["up_to_date"], true, "{again}");
    assert_eq!(again["embedded_chunks"], 0);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(".docent/CURRENT")).unwrap(),
        gen
    );

    // One file changed, one deleted, one added.
    std::fs::write(docs.join("note-03.md"), note(3, "two")).unwrap();
    std::fs::remove_file(docs.join("note-05.md")).unwrap();
    std::fs::write(docs.join("note-99.md"), note(99, "one")).unwrap();
    let r = index(tmp.path());
    assert_eq!(r["up_to_date"], false);
    assert_eq!(r["embedded_files"], 2, "{r}");
    assert_eq!(r["reused_files"], 23, "{r}");
    assert_eq!(r["deleted_files"], 1, "{r}");
    let removed = r["removed_chunks"].as_u64().unwrap();
    assert!(removed >= 2, "{r}");
    assert_eq!(r["graph_rebuilt"], false, "{r}");
    assert_eq!(r["removed_in_graph"].as_u64().unwrap(), removed, "{r}");

    let ix = Index::open(&tmp.path().join(".docent")).unwrap();
    assert_eq!(ix.removed_in_graph() as u64, removed);
    // The old versions are gone from every kind of search.
    assert!(lexical_paths(&ix, "markerone3").is_empty());
    assert!(lexical_paths(&ix, "markerone5").is_empty());
    assert_eq!(
        lexical_paths(&ix, "markertwo3"),
        HashSet::from(["note-03.md".to_string()])
    );
    assert_eq!(
        lexical_paths(&ix, "markerone99"),
        HashSet::from(["note-99.md".to_string()])
    );
    for q in [
        "This note 5 is about topic 5.",
        "This note 3 (one) is about topic 3.",
        "What is quantization?",
    ] {
        check_dense(&ix, q);
    }
    let v = common::encoder()
        .embed(&["This note 5 is about topic 5."])
        .unwrap()
        .pop()
        .unwrap();
    let all = ix.search(&v, ix.len(), 400).unwrap();
    assert!(all.iter().all(|h| h.chunk.chunk.path != "note-05.md"));
    drop(ix);

    // Exactly what a fresh build of the folder gives.
    assert_same_as_fresh_build(tmp.path(), &tmp.path().join(".docent"));
}

#[test]
fn the_graph_is_compacted_once_removed_chunks_pass_the_threshold() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    for i in 0..30 {
        std::fs::write(docs.join(format!("note-{i:02}.md")), note(i, "one")).unwrap();
    }
    let first = index(tmp.path());
    let total = first["chunks"].as_u64().unwrap() as f64;
    // Delete notes one run at a time until a run compacts.
    let mut compacted_at = None;
    let mut removed_so_far = 0u64;
    for i in 0..30 {
        std::fs::remove_file(docs.join(format!("note-{i:02}.md"))).unwrap();
        let r = index(tmp.path());
        removed_so_far += r["removed_chunks"].as_u64().unwrap();
        let in_graph = r["removed_in_graph"].as_u64().unwrap();
        let points = r["chunks"].as_u64().unwrap() + in_graph;
        let ix = Index::open(&tmp.path().join(".docent")).unwrap();
        assert_eq!(ix.removed_in_graph() as u64, in_graph);
        check_dense(&ix, &format!("This note {} is about topic {}.", i, i));
        if r["graph_rebuilt"] == true {
            assert_eq!(in_graph, 0, "{r}");
            // Not before the threshold was passed.
            assert!(
                removed_so_far as f64 > COMPACT_RATIO * total,
                "compacted after {removed_so_far} of {total} removed: {r}"
            );
            compacted_at = Some(i);
            break;
        }
        assert_eq!(in_graph, removed_so_far, "{r}");
        assert!(in_graph as f64 <= COMPACT_RATIO * points as f64, "{r}");
    }
    assert!(compacted_at.is_some(), "the graph was never compacted");
    // After compaction the index still equals a fresh build.
    assert_same_as_fresh_build(tmp.path(), &tmp.path().join(".docent"));
}

/// Polls `f` until it holds, for at most a minute.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Kills the child when dropped, so that a failing test leaves no watcher.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_keeps_the_index_current() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    for i in 0..3 {
        std::fs::write(docs.join(format!("note-{i:02}.md")), note(i, "one")).unwrap();
    }
    let _watcher = Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_docent"))
            .args(["index", "docs", "--watch", "--debounce-ms", "200"])
            .current_dir(tmp.path())
            .env_remove("DOCENT_INDEX")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ix_dir = tmp.path().join(".docent");
    let finds = |marker: &str| -> HashSet<String> {
        match Index::open(&ix_dir) {
            Ok(ix) => lexical_paths(&ix, marker),
            Err(_) => HashSet::new(),
        }
    };
    let only = |p: &str| HashSet::from([p.to_string()]);
    eventually("the first run indexed the folder", || {
        finds("markerone2") == only("note-02.md")
    });
    std::fs::write(docs.join("note-07.md"), note(7, "one")).unwrap();
    eventually("a new file is indexed", || {
        finds("markerone7") == only("note-07.md")
    });
    std::fs::write(docs.join("note-07.md"), note(7, "two")).unwrap();
    eventually("a changed file is re-indexed", || {
        finds("markertwo7") == only("note-07.md") && finds("markerone7").is_empty()
    });
    std::fs::remove_file(docs.join("note-01.md")).unwrap();
    eventually("a deleted file leaves the index", || {
        finds("markerone1").is_empty()
    });
    drop(_watcher);
    assert_same_as_fresh_build(tmp.path(), &ix_dir);
}

/// What a watch reported, in order, for the test below.
#[derive(Debug, PartialEq)]
enum Seen {
    Indexed(usize),
    UpToDate,
}

#[test]
fn a_watch_misses_no_change_made_as_it_starts_and_rereads_nothing_unchanged() {
    let encoder = common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    for i in 0..3 {
        std::fs::write(docs.join(format!("note-{i:02}.md")), note(i, "one")).unwrap();
    }
    let ix_dir = tmp.path().join(".docent");
    let cfg = docent_rag::IndexConfig {
        folder: Some(docs.clone()),
        ..Default::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let (docs, ix_dir) = (docs.clone(), ix_dir.clone());
        std::thread::spawn(move || {
            let mut first = true;
            docent_rag::watch(
                &ix_dir,
                &cfg,
                encoder,
                std::time::Duration::from_millis(200),
                &mut |e| {
                    let seen = match e {
                        docent_rag::WatchEvent::Indexed(r) => Seen::Indexed(r.files),
                        docent_rag::WatchEvent::UpToDate(_) => Seen::UpToDate,
                        _ => return std::ops::ControlFlow::Continue(()),
                    };
                    // A file written the moment the first run is done,
                    // before the caller could do anything else.
                    if std::mem::take(&mut first) {
                        std::fs::write(docs.join("note-07.md"), note(7, "one")).unwrap();
                    }
                    match tx.send(seen) {
                        Ok(()) => std::ops::ControlFlow::Continue(()),
                        Err(_) => std::ops::ControlFlow::Break(()),
                    }
                },
            )
            .unwrap();
        });
    }
    let next = |what: &str| {
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("timed out waiting until {what}"))
    };
    assert_eq!(next("the first run"), Seen::Indexed(3));
    assert_eq!(
        next("the file written as the first run ended is indexed"),
        Seen::Indexed(4)
    );
    // Indexing reads every file; reads are not changes, so nothing more
    // runs while the folder is left alone (each run used to start the next).
    let quiet = rx.recv_timeout(std::time::Duration::from_secs(3));
    assert!(quiet.is_err(), "ran again with nothing changed: {quiet:?}");
    // A file written back as it was is looked at, and found unchanged.
    std::fs::write(docs.join("note-01.md"), note(1, "one")).unwrap();
    assert_eq!(next("the rewritten file is looked at"), Seen::UpToDate);
    std::fs::write(docs.join("note-01.md"), note(1, "two")).unwrap();
    assert_eq!(next("the changed file is indexed"), Seen::Indexed(4));
    let ix = Index::open(&ix_dir).unwrap();
    assert_eq!(
        lexical_paths(&ix, "markerone7"),
        HashSet::from(["note-07.md".to_string()])
    );
    assert!(lexical_paths(&ix, "markerone1").is_empty());
}
