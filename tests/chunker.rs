//! Properties of the chunker, counted with the real encoder tokenizer, on
//! the bundled corpus and on generated English, Korean and emoji text.

mod common;

use docent_core::{chunk_document, Chunk, ChunkConfig, Document};
use unicode_segmentation::UnicodeSegmentation;

fn check(doc: &Document, cfg: &ChunkConfig, chunks: &[Chunk]) {
    let counter = common::encoder().token_counter();
    doc.check().unwrap();
    let mut covered = vec![false; doc.text.len()];
    for (i, c) in chunks.iter().enumerate() {
        // Token limit held, with the encoder's own count.
        let real = counter.count(&c.text);
        assert_eq!(real, c.tokens as usize, "chunk {i} of {}", doc.path);
        assert!(
            real <= cfg.max_tokens,
            "chunk {i} of {} has {real} tokens > {}",
            doc.path,
            cfg.max_tokens
        );
        // The text is exactly its span, in bytes and in chars.
        assert_eq!(c.text, doc.text[c.byte_span.clone()]);
        let chars: String = doc
            .text
            .chars()
            .skip(c.char_span.start)
            .take(c.char_span.len())
            .collect();
        assert_eq!(chars, c.text);
        // Spans start and end on grapheme boundaries: no broken syllable or emoji.
        let bounds: Vec<usize> = doc
            .text
            .grapheme_indices(true)
            .map(|(o, _)| o)
            .chain([doc.text.len()])
            .collect();
        assert!(
            bounds.binary_search(&c.byte_span.start).is_ok(),
            "chunk {i} starts inside a grapheme"
        );
        assert!(
            bounds.binary_search(&c.byte_span.end).is_ok(),
            "chunk {i} ends inside a grapheme"
        );
        assert_eq!(c.text.trim(), c.text, "chunks are trimmed");
        assert!(!c.text.is_empty());
        covered[c.byte_span.clone()]
            .iter_mut()
            .for_each(|x| *x = true);
        // Line points at the chunk's start.
        if !matches!(
            doc.kind,
            docent_core::SourceKind::Html | docent_core::SourceKind::Pdf
        ) {
            let line = 1 + doc.text[..c.byte_span.start].matches('\n').count() as u32;
            assert_eq!(c.line, line, "chunk {i} of {}", doc.path);
        }
    }
    // Spans cover the text.
    for (pos, ch) in doc.text.char_indices() {
        assert!(
            ch.is_whitespace() || covered[pos],
            "{:?} at byte {pos} of {} is in no chunk",
            ch,
            doc.path
        );
    }
    // Overlap: consecutive chunks of a section share at most the configured
    // tokens, or one whole sentence of up to twice that.
    let sentence_starts: Vec<usize> = doc
        .text
        .split_sentence_bound_indices()
        .map(|(o, s)| o + (s.len() - s.trim_start().len()))
        .collect();
    for w in chunks.windows(2) {
        if w[0].heading_path == w[1].heading_path && w[1].byte_span.start < w[0].byte_span.end {
            assert!(
                w[1].byte_span.start >= w[0].byte_span.start,
                "chunks go backwards"
            );
            let shared = &doc.text[w[1].byte_span.start..w[0].byte_span.end];
            let tokens = counter.count(shared);
            let whole_sentence = sentence_starts.contains(&w[1].byte_span.start);
            assert!(
                tokens <= cfg.overlap_tokens
                    || (whole_sentence && tokens <= 2 * cfg.overlap_tokens),
                "overlap {:?} too long",
                shared
            );
        }
    }
}

fn load(path: &str) -> Document {
    docent_ingest::load(
        &common::corpus(),
        &common::corpus().join(path),
        &Default::default(),
    )
    .unwrap()
    .document
}

#[test]
fn corpus_documents_hold_every_property() {
    let enc = common::encoder();
    for cfg in [
        ChunkConfig::default(),
        ChunkConfig {
            max_tokens: 64,
            overlap_tokens: 16,
        },
        ChunkConfig {
            max_tokens: 254,
            overlap_tokens: 0,
        },
    ] {
        for f in [
            "glossary-en.md",
            "glossary-ko.md",
            "langchain-ecosystem.html",
            "quantization-ko.txt",
            "how-docent-works.pdf",
        ] {
            let doc = load(f);
            let chunks = chunk_document(&doc, &cfg, enc.token_counter());
            assert!(!chunks.is_empty(), "{f}");
            check(&doc, &cfg, &chunks);
        }
    }
}

#[test]
fn headings_stay_with_their_text_and_give_the_path() {
    let doc = load("glossary-en.md");
    let chunks = chunk_document(
        &doc,
        &ChunkConfig::default(),
        common::encoder().token_counter(),
    );
    let rag = chunks
        .iter()
        .find(|c| c.heading_path.last().is_some_and(|h| h == "Retriever"))
        .expect("a chunk under Retriever");
    assert_eq!(
        rag.heading_path,
        [
            "A glossary of local AI",
            "Retrieval-augmented generation (RAG)",
            "Retriever"
        ]
    );
    assert!(rag.text.starts_with("### Retriever"));
    // No chunk is a bare heading when its section has text.
    for c in &chunks {
        assert!(
            c.text.lines().count() > 1 || !c.text.starts_with('#'),
            "bare heading chunk {:?}",
            c.text
        );
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

fn generated(seed: u64) -> Document {
    let words = [
        "retrieval",
        "augmented",
        "generation",
        "검색",
        "증강",
        "생성은",
        "양자화를",
        "모델이",
        "토큰화",
        "😀",
        "👩‍👩‍👧‍👦",
        "🇰🇷",
        "x",
        "supercalifragilisticexpialidocious",
        "한국어로는",
        "CPU에서",
        "GGUF",
        "2024년",
        "token,",
        "(괄호)",
        "문장입니다.",
        "end.",
        "질문인가요?",
    ];
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut text = String::new();
    let paragraphs = 1 + rng.next() % 8;
    for p in 0..paragraphs {
        if rng.next().is_multiple_of(3) {
            text.push_str(&format!(
                "{} Heading {p} 제목\n\n",
                "#".repeat(1 + (rng.next() % 3) as usize)
            ));
        }
        let n = rng.next() % 400;
        for i in 0..n {
            text.push_str(rng.pick(&words));
            text.push(if i % 17 == 16 { '\n' } else { ' ' });
        }
        // Now and then a run with no spaces at all, longer than any chunk.
        if rng.next().is_multiple_of(4) {
            for _ in 0..(rng.next() % 600) {
                text.push_str(rng.pick(&["가", "나", "😀", "a", "字"]));
            }
        }
        text.push_str("\n\n");
    }
    let mut doc = docent_ingest::load_bytes("gen.md", text.as_bytes())
        .unwrap()
        .0;
    doc.path = format!("gen-{seed}.md");
    doc
}

#[test]
fn generated_korean_english_and_emoji_text() {
    let enc = common::encoder();
    for seed in 1..=40u64 {
        let doc = generated(seed);
        let cfg = ChunkConfig {
            max_tokens: [32, 64, 128, 200][(seed % 4) as usize],
            overlap_tokens: [0, 8, 15, 31][(seed % 4) as usize],
        };
        let chunks = chunk_document(&doc, &cfg, enc.token_counter());
        check(&doc, &cfg, &chunks);
    }
}

#[test]
fn overlap_is_present_when_configured() {
    let text = "Small models run on a CPU. ".repeat(60)
        + "\n\n"
        + &"소형 모델은 CPU에서 돌아갑니다. ".repeat(30);
    let doc = docent_ingest::load_bytes("o.txt", text.as_bytes())
        .unwrap()
        .0;
    let cfg = ChunkConfig {
        max_tokens: 64,
        overlap_tokens: 16,
    };
    let chunks = chunk_document(&doc, &cfg, common::encoder().token_counter());
    assert!(chunks.len() > 4);
    check(&doc, &cfg, &chunks);
    let overlapping = chunks
        .windows(2)
        .filter(|w| w[1].byte_span.start < w[0].byte_span.end)
        .count();
    assert!(
        overlapping >= chunks.len() - 2,
        "only {overlapping} of {} pairs overlap",
        chunks.len() - 1
    );
    let none = chunk_document(
        &doc,
        &ChunkConfig {
            max_tokens: 64,
            overlap_tokens: 0,
        },
        common::encoder().token_counter(),
    );
    assert!(none
        .windows(2)
        .all(|w| w[1].byte_span.start >= w[0].byte_span.end));
}

/// Prose wrapped at a fixed width, as text files and PDF pages often are:
/// every chunk starts where a sentence starts, not after a line break in
/// the middle of one, and its overlap is whole sentences.
#[test]
fn chunks_of_wrapped_text_start_where_sentences_start() {
    let sentences = [
        "A new index is written beside the old one and switched in with one atomic rename, so an interrupted run never damages the index you already have.",
        "The command docent search embeds the question with the same encoder and asks the graph for the closest chunks.",
        "Each result shows its score, the file and line it came from, and its heading.",
        "환각은 유창하고 자신 있어 보이지만 사실이 아니거나 근거가 없는 답입니다.",
        "언어 모델은 사실을 찾아보는 대신 그럴듯한 글을 만들어 내기 때문에 환각을 일으킵니다.",
    ];
    let mut prose = String::new();
    for i in 0..24 {
        prose.push_str(sentences[i % sentences.len()]);
        prose.push(' ');
    }
    // Wrapped at 60 columns, breaking between words.
    let mut text = String::new();
    let mut col = 0;
    for w in prose.split_whitespace() {
        if col > 0 && col + w.chars().count() > 60 {
            text.push('\n');
            col = 0;
        } else if col > 0 {
            text.push(' ');
            col += 1;
        }
        text.push_str(w);
        col += w.chars().count();
    }
    let doc = docent_ingest::load_bytes("wrapped.txt", text.as_bytes())
        .unwrap()
        .0;
    let cfg = ChunkConfig::default();
    let chunks = chunk_document(&doc, &cfg, common::encoder().token_counter());
    assert!(chunks.len() > 3, "{} chunks", chunks.len());
    check(&doc, &cfg, &chunks);
    for c in &chunks {
        let before = doc.text[..c.byte_span.start].trim_end();
        assert!(
            before.is_empty() || before.ends_with('.'),
            "chunk {} starts mid-sentence: {:?}",
            c.ordinal,
            &c.text[..c.text.len().min(60)]
        );
    }
    let overlapping = chunks
        .windows(2)
        .filter(|w| w[1].byte_span.start < w[0].byte_span.end)
        .count();
    assert!(overlapping >= chunks.len() - 2, "{overlapping} overlaps");
}
