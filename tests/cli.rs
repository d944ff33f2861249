//! `docent` end to end: index the corpus, search it, survive bad input.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{docent, ok, stderr};
use serde_json::Value;

fn search(cwd: &Path, index: &str, query: &str) -> Vec<String> {
    let out = ok(&docent(
        cwd,
        &["--index", index, "search", query, "-k", "3", "--json"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn index_then_search_the_corpus() {
    common::encoder(); // fetch the model first, loudly
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("ix");
    let index = index.to_str().unwrap();
    let root = common::root();
    let out = docent(&root, &["--index", index, "index", "corpus", "--json"]);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["files"], 5);
    assert_eq!(report["skipped"], 0);
    assert!(report["chunks"].as_u64().unwrap() > 20);

    let en = search(
        &root,
        index,
        "How does retrieval-augmented generation reduce hallucination?",
    );
    assert!(en.contains(&"glossary-en.md".to_string()), "{en:?}");
    let ko = search(
        &root,
        index,
        "검색 증강 생성에서 검색기와 생성기는 무슨 일을 하나요?",
    );
    assert!(ko.contains(&"glossary-ko.md".to_string()), "{ko:?}");
    let pdf = search(&root, index, "How does docent store chunks and vectors?");
    assert!(pdf.contains(&"how-docent-works.pdf".to_string()), "{pdf:?}");

    // The text output names score, path:line and heading.
    let text = ok(&docent(
        &root,
        &["--index", index, "search", "What is LangServe?", "-k", "2"],
    ));
    assert!(text.contains("corpus/"), "{text}");
    assert!(text.lines().next().unwrap().contains(':'), "{text}");

    // A second run embeds nothing: every file is unchanged.
    let again: Value = serde_json::from_str(&ok(&docent(
        &root,
        &["--index", index, "index", "corpus", "--json"],
    )))
    .unwrap();
    assert_eq!(again["embedded_chunks"], 0);
    assert_eq!(again["reused_files"], 5);
    assert_eq!(again["chunks"], report["chunks"]);

    // Retrieval settings calibrated again since the index was built (here
    // written into its store by hand, checksum and all) are brought up to
    // date by the next run, which embeds nothing.
    let open = || docent_index::Index::open(std::path::Path::new(index)).unwrap();
    let (want, generation) = {
        let ix = open();
        (
            ix.meta().encoder.retrieval,
            ix.generation_dir().to_path_buf(),
        )
    };
    let store = generation.join("store.sqlite");
    {
        let c = rusqlite::Connection::open(&store).unwrap();
        let json: String = c
            .query_row("SELECT value FROM meta WHERE key = 'index'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let mut meta: Value = serde_json::from_str(&json).unwrap();
        meta["encoder"]["retrieval"]["min_score_latin"] = 0.5.into();
        c.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'index'",
            [meta.to_string()],
        )
        .unwrap();
    }
    let bytes = std::fs::read(&store).unwrap();
    let sum = serde_json::json!({
        "size": bytes.len(),
        "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
    });
    std::fs::write(generation.join("store.sha256"), sum.to_string()).unwrap();
    assert_eq!(open().meta().encoder.retrieval.min_score_latin, 0.5);
    let third: Value = serde_json::from_str(&ok(&docent(
        &root,
        &["--index", index, "index", "corpus", "--json"],
    )))
    .unwrap();
    assert_eq!(third["embedded_chunks"], 0);
    assert_eq!(open().meta().encoder.retrieval, want);
}

#[test]
fn search_with_another_encoder_is_refused() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::copy(common::corpus().join("glossary-en.md"), docs.join("g.md")).unwrap();
    ok(&docent(tmp.path(), &["index", "docs"]));
    // The same weights in a plain folder count as another encoder.
    let local = docent_models::ModelStore::from_env()
        .ensure(docent_models::Manifest::builtin().default_encoder())
        .unwrap();
    let folder = tmp.path().join("model");
    for (rel, path) in &local.files {
        let dest = folder.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(path, dest).unwrap();
    }
    for args in [
        vec![
            "search",
            "quantization",
            "--encoder",
            folder.to_str().unwrap(),
        ],
        vec!["index", "docs", "--encoder", folder.to_str().unwrap()],
    ] {
        let out = docent(tmp.path(), &args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("was built with encoder")
                && err.contains("hint: pass --encoder intfloat/multilingual-e5-small")
                && err.contains("--rebuild --encoder"),
            "{err}"
        );
        assert!(!err.contains("panicked"));
    }
    // --rebuild switches encoders.
    ok(&docent(
        tmp.path(),
        &[
            "index",
            "docs",
            "--rebuild",
            "--encoder",
            folder.to_str().unwrap(),
        ],
    ));
    ok(&docent(
        tmp.path(),
        &[
            "search",
            "quantization",
            "--encoder",
            folder.to_str().unwrap(),
        ],
    ));
    // The old spelling still works, with a notice; given twice, it is refused.
    let out = docent(
        tmp.path(),
        &[
            "search",
            "quantization",
            "--model",
            folder.to_str().unwrap(),
        ],
    );
    ok(&out);
    assert!(
        stderr(&out).contains("`--model` for the sentence encoder is deprecated; use `--encoder"),
        "{}",
        stderr(&out)
    );
    let out = docent(
        tmp.path(),
        &[
            "search",
            "quantization",
            "--model",
            folder.to_str().unwrap(),
            "--encoder",
            folder.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("give the encoder once"));
}

#[test]
fn bad_inputs_give_warnings_not_panics() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("docs");
    std::fs::create_dir(&d).unwrap();

    // An empty folder: a warning, an empty index, searches that find nothing.
    let out = docent(tmp.path(), &["index", "docs"]);
    ok(&out);
    assert!(
        stderr(&out).contains("no readable documents"),
        "{}",
        stderr(&out)
    );
    let s = ok(&docent(tmp.path(), &["search", "anything"]));
    assert!(s.contains("no results"), "{s}");

    std::fs::write(
        d.join("good.md"),
        "# Good\n\nQuantization stores weights in fewer bits.\n",
    )
    .unwrap();
    std::fs::write(
        d.join("binary.txt"),
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0",
    )
    .unwrap();
    std::fs::write(
        d.join("latin1.txt"),
        b"caf\xe9 cr\xe8me br\xfbl\xe9e is a dessert.\n",
    )
    .unwrap();
    std::fs::write(
        d.join("corrupt.pdf"),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\ngarbage\n%%EOF",
    )
    .unwrap();
    std::fs::write(d.join("fake.pdf"), b"this is not a pdf").unwrap();
    let mut truncated = std::fs::read(common::corpus().join("how-docent-works.pdf")).unwrap();
    truncated.truncate(truncated.len() / 2);
    std::fs::write(d.join("truncated.pdf"), truncated).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(d.join("missing-target.txt"), d.join("unreadable.txt")).unwrap();
    std::fs::write(d.join("ignored.md"), "# Ignored\n").unwrap();
    std::fs::write(d.join(".gitignore"), "ignored.md\n").unwrap();
    std::fs::write(d.join(".hidden.md"), "# Hidden\n").unwrap();
    std::fs::write(d.join("empty.txt"), "").unwrap();

    let out = docent(tmp.path(), &["index", "docs", "--json"]);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    let err = stderr(&out);
    for name in [
        "binary.txt",
        "latin1.txt",
        "corrupt.pdf",
        "fake.pdf",
        "truncated.pdf",
        "unreadable.txt",
    ] {
        assert!(err.contains(name), "no warning names {name}:\n{err}");
    }
    assert!(!err.contains("ignored.md") && !err.contains(".hidden.md"));
    // good.md, latin1.txt (decoded lossily), empty.txt, and truncated.pdf
    // only if its parser recovered something.
    let files = report["files"].as_u64().unwrap();
    assert!((3..=4).contains(&files), "{report}");
    let hits = search(tmp.path(), ".docent", "crème brûlée dessert");
    assert!(hits.contains(&"latin1.txt".to_string()), "{hits:?}");
    // A ranking setting out of range says which and why.
    let out = docent(
        tmp.path(),
        &["search", "dessert", "--sentence-weight", "-1"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("sentence weight must be a number of at least 0"),
        "{}",
        stderr(&out)
    );

    // An empty question is refused before anything is searched, not
    // answered with whatever chunk happens to be first.
    for args in [&["search", " "][..], &["ask", ""][..]] {
        let out = docent(tmp.path(), args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("the question is empty"), "{args:?}: {err}");
        assert!(err.contains("hint:"), "{args:?}: {err}");
    }

    // A missing folder and a missing index are clear errors.
    let out = docent(tmp.path(), &["index", "no-such-folder"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-folder"));
    let out = docent(tmp.path(), &["--index", "nowhere", "search", "x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("docent index"), "{}", stderr(&out));
}

/// Kills `docent index` with SIGKILL at several moments; the index that was
/// there before must still load and answer, and the next run must finish.
#[cfg(unix)]
#[test]
fn killing_index_leaves_the_previous_index_usable() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    common::copy_dir(&common::corpus(), &docs);
    ok(&docent(tmp.path(), &["index", "docs"]));
    let before = search(tmp.path(), ".docent", "What is quantization?");
    // Change every file so that the next run has real work to do.
    for e in std::fs::read_dir(&docs).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md" || x == "txt") {
            let mut s = std::fs::read_to_string(&p).unwrap();
            s.push_str("\n\nAn added paragraph about tokenizers and embeddings.\n");
            std::fs::write(&p, s).unwrap();
        }
    }
    for delay_ms in [50u64, 300, 800, 1500, 2500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_docent"))
            .args(["index", "docs"])
            .current_dir(tmp.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Either the old or (if it finished) the new index, loadable.
        let now = search(tmp.path(), ".docent", "What is quantization?");
        assert!(!now.is_empty(), "after a kill at {delay_ms} ms");
        if now != before {
            assert!(
                std::fs::read_dir(tmp.path().join(".docent"))
                    .unwrap()
                    .count()
                    >= 2
            );
        }
    }
    let report: Value =
        serde_json::from_str(&ok(&docent(tmp.path(), &["index", "docs", "--json"]))).unwrap();
    assert_eq!(report["files"], 5);
}

#[test]
fn a_damaged_index_says_what_to_run_and_rebuild_repairs_it() {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let root = common::root();
    let index = tmp.path().join("ix");
    let index = index.to_str().unwrap();
    ok(&docent(&root, &["--index", index, "index", "corpus"]));
    let cur = std::fs::read_to_string(tmp.path().join("ix/CURRENT")).unwrap();
    let store = tmp.path().join("ix").join(cur.trim()).join("store.sqlite");
    let mut b = std::fs::read(&store).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x01;
    std::fs::write(&store, b).unwrap();
    for args in [
        vec!["--index", index, "search", "What is LangServe?"],
        vec!["--index", index, "index", "corpus"],
    ] {
        let out = docent(&root, &args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} used a damaged index");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains("damaged") && err.contains("docent index DIR --rebuild"),
            "{args:?}: {err}"
        );
    }
    ok(&docent(
        &root,
        &["--index", index, "index", "corpus", "--rebuild"],
    ));
    assert!(search(&root, index, "What is LangServe?")
        .contains(&"langchain-ecosystem.html".to_string()));
}

/// An index built with all-MiniLM-L6-v2, the default before
/// multilingual-e5-small, keeps answering with it; one `index --rebuild`
/// moves it to the default encoder and its calibrated settings.
#[test]
fn a_minilm_index_keeps_working_and_one_rebuild_moves_it_to_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    for f in ["glossary-en.md", "glossary-ko.md"] {
        std::fs::copy(common::corpus().join(f), docs.join(f)).unwrap();
    }
    ok(&docent(
        tmp.path(),
        &["index", "docs", "--encoder", "all-minilm-l6-v2"],
    ));
    let read_encoder = || {
        let ix = docent_index::Index::open(&tmp.path().join(".docent")).unwrap();
        ix.meta().encoder.clone()
    };
    let before = read_encoder();
    assert_eq!(before.id, "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(before.retrieval.min_score_latin, 0.40);
    // Re-indexing without --encoder keeps the index's encoder.
    ok(&docent(tmp.path(), &["index", "docs"]));
    assert_eq!(read_encoder().id, before.id);
    assert!(search(tmp.path(), ".docent", "HNSW")[0].contains("glossary-en.md"));
    // --rebuild alone moves it to the default, and says so.
    let out = docent(tmp.path(), &["index", "docs", "--rebuild"]);
    ok(&out);
    assert!(
        stderr(&out).contains("rebuilding with the default encoder intfloat/multilingual-e5-small"),
        "{}",
        stderr(&out)
    );
    let after = read_encoder();
    assert_eq!(after.id, "intfloat/multilingual-e5-small");
    assert_eq!(after.query_prefix, "query: ");
    assert_eq!(after.retrieval.min_score_cjk, 0.85);
    // Dense search alone now ranks the Korean passage first for a Korean
    // question (MiniLM's dense ranking carries no signal for Korean).
    let out = ok(&docent(
        tmp.path(),
        &[
            "search",
            "양자화란 무엇인가요?",
            "--mode",
            "dense",
            "-k",
            "3",
            "--json",
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["results"][0]["path"], "glossary-ko.md", "{out}");
}
