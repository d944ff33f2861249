//! Each loader on small real inputs.

use docent_core::{BlockKind, SourceKind};
use docent_ingest::{load_bytes, load_bytes_with, LoadError, LoadOptions, RawFile};

fn headings(doc: &docent_core::Document) -> Vec<(u8, String, u32)> {
    doc.blocks
        .iter()
        .filter_map(|b| match &b.kind {
            BlockKind::Heading { level, title } => Some((*level, title.clone(), b.line)),
            _ => None,
        })
        .collect()
}

#[test]
fn markdown_headings_paragraphs_and_lines() {
    let md = "Intro line\n\n# Title *one*\n\ntext a\ntext b\n\nSetext\n------\n\n```\n# not a heading\n```\n";
    let (doc, warnings) = load_bytes("a.md", md.as_bytes()).unwrap();
    assert!(warnings.is_empty());
    doc.check().unwrap();
    assert_eq!(doc.kind, SourceKind::Markdown);
    assert_eq!(doc.text, md);
    assert_eq!(
        headings(&doc),
        [(1, "Title one".into(), 3), (2, "Setext".into(), 8)]
    );
    let para = doc
        .blocks
        .iter()
        .find(|b| doc.text[b.range.clone()].starts_with("text a"))
        .unwrap();
    assert_eq!(&doc.text[para.range.clone()], "text a\ntext b");
    assert_eq!(para.line, 5);
}

#[test]
fn html_visible_text_headings_and_lines() {
    let html = "<html><head><title>T</title><style>p{}</style></head>\n<body>\n<h1>Main &amp; more</h1>\n<p>First   para\n graph.</p>\n<script>var x = 1;</script>\n<ul><li>one</li><li>two</li></ul>\n<h2>Sub</h2><pre>a\n  b</pre></body></html>";
    let (doc, _) = load_bytes("p.html", html.as_bytes()).unwrap();
    doc.check().unwrap();
    assert_eq!(
        headings(&doc),
        [(1, "Main & more".into(), 3), (2, "Sub".into(), 8)]
    );
    assert!(doc.text.contains("First para graph."));
    assert!(!doc.text.contains("var x") && !doc.text.contains("p{}"));
    assert!(
        doc.text.contains("a\n  b"),
        "pre keeps its lines: {:?}",
        doc.text
    );
    let texts: Vec<&str> = doc
        .blocks
        .iter()
        .map(|b| &doc.text[b.range.clone()])
        .collect();
    assert!(
        texts.contains(&"one") && texts.contains(&"two"),
        "{texts:?}"
    );
}

#[test]
fn text_paragraphs_utf8_and_binary() {
    let (doc, w) = load_bytes(
        "t.txt",
        "\u{feff}첫 문단입니다.\n둘째 줄.\n\n\n셋째 😀 문단.\n".as_bytes(),
    )
    .unwrap();
    assert!(w.is_empty());
    doc.check().unwrap();
    assert_eq!(doc.blocks.len(), 2);
    assert_eq!(doc.blocks[1].line, 5);
    let (_, w) = load_bytes("l.txt", b"caf\xe9").unwrap();
    assert_eq!(w.len(), 1);
    assert!(load_bytes("b.txt", b"abc\0def").is_err());
    assert!(load_bytes("x.docx", b"abc").is_err());
}

#[test]
fn pdf_pages_and_corruption() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../corpus/how-docent-works.pdf"
    ))
    .unwrap();
    let (doc, _) = load_bytes("h.pdf", &bytes).unwrap();
    doc.check().unwrap();
    assert!(doc.text.contains("Step 1: indexing"));
    let pages: Vec<u32> = doc.blocks.iter().filter_map(|b| b.page).collect();
    assert_eq!(pages.first(), Some(&1));
    assert_eq!(pages.last(), Some(&2));
    let storing = doc
        .blocks
        .iter()
        .find(|b| doc.text[b.range.clone()].contains("Step 3"))
        .unwrap();
    assert_eq!(storing.page, Some(2));
    for bad in [&b"not a pdf"[..], b"%PDF-1.7\n", &bytes[..bytes.len() / 3]] {
        // An error or, for a partly readable file, a document: never a panic.
        let _ = load_bytes("bad.pdf", bad);
    }
    assert!(load_bytes("bad.pdf", b"not a pdf").is_err());
}

#[test]
fn pdf_page_limit() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../corpus/how-docent-works.pdf"
    ))
    .unwrap();
    let at = |max_pdf_pages| LoadOptions {
        max_pdf_pages,
        ..Default::default()
    };
    assert!(load_bytes_with("h.pdf", &bytes, &at(2)).is_ok());
    match load_bytes_with("h.pdf", &bytes, &at(1)) {
        Err(
            e @ LoadError::TooManyPages {
                pages: 2, limit: 1, ..
            },
        ) => {
            assert!(e.to_string().contains("2 pages"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn files_that_loop_vanish_or_grow_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let opts = LoadOptions {
        max_file_bytes: 1000,
        ..Default::default()
    };
    std::os::unix::fs::symlink(root.join("b.md"), root.join("a.md")).unwrap();
    std::os::unix::fs::symlink(root.join("a.md"), root.join("b.md")).unwrap();
    match RawFile::read(root, &root.join("a.md"), &opts) {
        Err(e @ LoadError::LinkLoop { .. }) => assert!(e.to_string().contains("loops"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A link to a folder is not a document.
    std::os::unix::fs::symlink(root, root.join("up.md")).unwrap();
    assert!(matches!(
        RawFile::read(root, &root.join("up.md"), &opts),
        Err(LoadError::Io { .. })
    ));
    // A file listed by the walk but gone before it was read.
    match RawFile::read(root, &root.join("gone.txt"), &opts) {
        Err(e @ LoadError::Vanished { .. }) => {
            assert!(e.to_string().contains("vanished"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(root.join("big.txt"), vec![b'a'; 1001]).unwrap();
    assert!(matches!(
        RawFile::read(root, &root.join("big.txt"), &opts),
        Err(LoadError::TooLarge { size: 1001, .. })
    ));
    std::fs::write(root.join("ok.txt"), vec![b'a'; 1000]).unwrap();
    assert_eq!(
        RawFile::read(root, &root.join("ok.txt"), &opts)
            .unwrap()
            .bytes
            .len(),
        1000
    );
}
