//! Lexical and hybrid retrieval: Korean found through character bigrams,
//! the lexical table kept in step with the store across re-indexing, a
//! source for each side of a comparison, and the chunk whose one sentence
//! holds the question ranked above one that scatters its words, and a
//! question moved towards the other language to find the chunk that
//! answers it there.

mod common;

use std::path::{Path, PathBuf};

use docent_index::Index;
use docent_rag::retrieve::search;
use docent_rag::{RetrieveConfig, SearchMode};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A temporary folder with an empty `docs` folder in it, the encoder
/// fetched first.
fn folder() -> (tempfile::TempDir, PathBuf) {
    common::encoder();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    (tmp, docs)
}

/// `docent index docs` in `tmp`, then the index it wrote.
fn index(tmp: &Path) -> Index {
    common::ok(&common::docent(tmp, &["index", "docs"]));
    Index::open(&tmp.join(".docent")).unwrap()
}

fn top_paths(index: &Index, query: &str, mode: SearchMode) -> Vec<String> {
    let v = common::encoder().embed(&[query]).unwrap().pop().unwrap();
    let cfg = RetrieveConfig {
        k: 3,
        mode,
        ef: Some(64),
        ..RetrieveConfig::default()
    };
    search(index, query, &v, &cfg)
        .unwrap()
        .into_iter()
        .map(|h| h.chunk.chunk.path)
        .collect()
}

#[test]
fn a_korean_question_sharing_only_bigrams_with_its_paragraph_is_found() {
    let (tmp, docs) = folder();
    write(
        &docs,
        "seoul.txt",
        "서울특별시는 대한민국의 수도이며 한강을 끼고 있다. 인구는 약 950만 명이다.\n",
    );
    write(
        &docs,
        "busan.txt",
        "부산광역시는 대한민국 남동부의 항구 도시로, 해운대 해수욕장이 유명하다.\n",
    );
    write(
        &docs,
        "jeju.txt",
        "제주도는 화산섬으로 한라산이 있으며, 감귤 농업과 관광업이 발달했다.\n",
    );
    write(
        &docs,
        "kimchi.txt",
        "김치는 배추와 무를 소금에 절이고 고춧가루와 젓갈로 양념하여 발효시킨 음식이다.\n",
    );
    let index = index(tmp.path());
    // No word of the question appears as such in the paragraph ("서울"
    // against "서울특별시는", "인구가" against "인구는"): only the bigrams
    // 서울 and 인구 are shared.
    let q = "서울 인구가 얼마나 되나?";
    for w in q.split_whitespace() {
        let w = w.trim_end_matches('?');
        assert!(
            !std::fs::read_to_string(docs.join("seoul.txt"))
                .unwrap()
                .split_whitespace()
                .any(|d| d == w),
            "{w} appears as a whole word"
        );
    }
    for mode in [SearchMode::Lexical, SearchMode::Hybrid] {
        assert_eq!(top_paths(&index, q, mode)[0], "seoul.txt", "{mode:?}");
    }
    assert_eq!(
        top_paths(&index, "배추를 절여 발효한 음식", SearchMode::Hybrid)[0],
        "kimchi.txt"
    );
    assert_eq!(
        top_paths(&index, "한라산 화산섬", SearchMode::Hybrid)[0],
        "jeju.txt"
    );
    // From the command line too, where hybrid is the default.
    let out = common::ok(&common::docent(tmp.path(), &["search", q, "-k", "1"]));
    assert!(out.contains("seoul.txt"), "{out}");
}

#[test]
fn the_lexical_table_follows_the_store_through_reindexing() {
    let (tmp, docs) = folder();
    write(
        &docs,
        "a.md",
        "# Zebras\n\nZebras have black and white stripes.\n",
    );
    write(
        &docs,
        "b.md",
        "# Walruses\n\nWalruses have long tusks and live in the Arctic.\n",
    );
    write(
        &docs,
        "c.md",
        "# Okapis\n\nThe okapi is a forest giraffid of central Africa.\n",
    );
    common::ok(&common::docent(tmp.path(), &["index", "docs"]));
    let ix = tmp.path().join(".docent");
    {
        let index = Index::open(&ix).unwrap();
        assert_eq!(index.lexical_len().unwrap(), index.len());
        assert_eq!(
            top_paths(&index, "walrus tusks", SearchMode::Lexical)[0],
            "b.md"
        );
    }
    // Change one file, delete one, add one.
    write(
        &docs,
        "a.md",
        "# Zebras\n\nZebras graze on the savanna of eastern Africa.\n",
    );
    std::fs::remove_file(docs.join("b.md")).unwrap();
    write(
        &docs,
        "d.md",
        "# Narwhals\n\nNarwhals carry a single spiral tusk.\n",
    );
    common::ok(&common::docent(tmp.path(), &["index", "docs"]));
    let index = Index::open(&ix).unwrap();
    assert_eq!(index.lexical_len().unwrap(), index.len());
    // Every lexical hit is a live chunk with the text it was indexed from.
    for (query, want) in [
        ("stripes", None),
        ("savanna", Some("a.md")),
        ("walruses", None),
        ("spiral tusk", Some("d.md")),
        ("okapi", Some("c.md")),
    ] {
        let ids = index.lexical(query, 10).unwrap();
        let chunks = index
            .chunks(&ids.iter().map(|x| x.0).collect::<Vec<_>>())
            .unwrap();
        for c in &chunks {
            let terms = docent_core::lexical_terms(&c.chunk.text);
            assert!(
                docent_core::lexical_terms(query)
                    .iter()
                    .any(|t| terms.contains(t)),
                "{query:?} matched a chunk without its terms: {:?}",
                c.chunk.text
            );
        }
        assert_eq!(
            chunks.first().map(|c| c.chunk.path.as_str()),
            want,
            "{query:?}"
        );
    }
}

/// A question that compares two things gets a source for each, in the
/// answer path only; searches keep the top k.
#[test]
fn a_comparison_gets_a_source_for_each_side() {
    use docent_rag::retrieve::{retrieve_with, Coverage};
    use docent_rag::trace::Spans;
    let (tmp, docs) = folder();
    write(
        &docs,
        "langserve.txt",
        "LangServe deploys LangChain chains as a REST API. It is built on FastAPI \
         and gives each chain invoke, batch and stream endpoints.\n",
    );
    write(
        &docs,
        "langsmith.txt",
        "LangSmith is a platform to trace, debug, test and monitor applications \
         built on language models.\n",
    );
    write(
        &docs,
        "fastapi.txt",
        "FastAPI is a Python web framework for building REST APIs quickly.\n",
    );
    let index = index(tmp.path());
    let cfg = RetrieveConfig {
        k: 1,
        mode: SearchMode::Hybrid,
        ef: Some(64),
        ..RetrieveConfig::default()
    };
    let paths = |question: &str, coverage| -> Vec<String> {
        retrieve_with(
            &index,
            common::encoder(),
            question,
            &cfg,
            coverage,
            &mut Spans::start(),
        )
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.chunk.chunk.path)
        .collect()
    };
    for q in [
        "What is the difference between LangServe and LangSmith?",
        "LangServe와 LangSmith의 차이는 무엇인가요?",
    ] {
        assert_eq!(paths(q, Coverage::TopK).len(), 1, "{q}");
        let mut both = paths(q, Coverage::BothSidesOfAComparison);
        both.sort();
        assert_eq!(both, ["langserve.txt", "langsmith.txt"], "{q}");
    }
    // Any other question keeps its k.
    assert_eq!(
        paths("What does LangSmith do?", Coverage::BothSidesOfAComparison).len(),
        1
    );
}

#[test]
fn the_chunk_whose_one_sentence_holds_the_question_is_ranked_first() {
    let (tmp, docs) = folder();
    // Every word of the question, each in a sentence of its own, the most
    // telling ones more than once.
    write(
        &docs,
        "scattered.txt",
        "Luther lived in Wittenberg. Christianity there was changing. Luther wrote hymns. \
         The congregation sang them. Luther grew old. The congregation grew large. \
         Christianity spread. Teaching mattered. Later reformers would devise their own forms.\n",
    );
    // The question's words together in one sentence, among longer ones
    // about something else.
    write(
        &docs,
        "together.txt",
        "The printing press spread pamphlets quickly across the German lands, and printers in \
         Augsburg, Nuremberg and Strasbourg competed for the trade. Paper mills multiplied \
         along the rivers, and woodcut artists found steady work illustrating broadsheets. In \
         1529 Luther devised the catechism to teach Christianity to the congregation. Printers \
         in many cities sold cheap editions, and booksellers carried them to the book fairs in \
         Frankfurt and Leipzig, where merchants from across Europe bought stock for the year.\n",
    );
    for (name, text) in [
        (
            "rail.txt",
            "Rail transport in Victoria runs over government-owned lines.",
        ),
        (
            "born.txt",
            "Luther was born in Eisleben in 1483 and studied law at Erfurt.",
        ),
        (
            "worms.txt",
            "The Diet of Worms in 1521 declared Luther an outlaw of the empire.",
        ),
        (
            "zebra.txt",
            "Zebras have black and white stripes and live in herds on the savanna.",
        ),
    ] {
        write(&docs, name, &format!("{text}\n"));
    }
    let index = index(tmp.path());
    // No Korean word: an English question is not searched across.
    assert!(!index.holds_terms_between("\u{AC00}", "\u{D7A4}").unwrap());
    let q = "What did Luther devise to teach Christianity to the congregation?";
    let v = common::encoder().embed(&[q]).unwrap().pop().unwrap();
    let first = |sentence_weight: f32| {
        let cfg = RetrieveConfig {
            k: 3,
            mode: SearchMode::Hybrid,
            ef: Some(64),
            sentence_weight,
        };
        let hits = search(&index, q, &v, &cfg).unwrap();
        assert!(
            hits.iter().all(|h| (0.0..=1.0).contains(&h.score)),
            "{hits:?}"
        );
        hits[0].chunk.chunk.path.clone()
    };
    // The premise: the fused score alone puts the scattered words first.
    assert_eq!(first(0.0), "scattered.txt");
    assert_eq!(
        first(RetrieveConfig::default().sentence_weight),
        "together.txt"
    );
    // The command line ranks the same way.
    let out = common::ok(&common::docent(tmp.path(), &["search", q, "-k", "1"]));
    assert!(out.contains("together.txt"), "{out}");
    let out = common::ok(&common::docent(
        tmp.path(),
        &["search", q, "-k", "1", "--sentence-weight", "0"],
    ));
    assert!(out.contains("scattered.txt"), "{out}");
}

/// The first files hybrid search (the default settings, k = 2) gives
/// `question` over `index`, with whether each was found by the question
/// moved towards the other language.
fn first_two(index: &Index, question: &str) -> Vec<(String, bool)> {
    let v = common::encoder()
        .embed_queries(&[question])
        .unwrap()
        .pop()
        .unwrap();
    let cfg = RetrieveConfig {
        k: 2,
        ..RetrieveConfig::default()
    };
    let mut spans = docent_rag::trace::Spans::start();
    let ranking = docent_rag::retrieve::rank(index, question, &v, &cfg, &mut spans).unwrap();
    let chunks = index
        .chunks(&ranking.ranked.iter().map(|&(id, _)| id).collect::<Vec<_>>())
        .unwrap();
    chunks
        .iter()
        .map(|c| {
            let across = ranking
                .candidates
                .iter()
                .any(|k| k.chunk_id == c.id && k.across.is_some());
            (c.chunk.path.clone(), across)
        })
        .collect()
}

#[test]
fn a_question_finds_the_chunk_that_answers_it_in_the_other_language() {
    // corpus/ states the LCEL operator only in English, and what prompt
    // processing depends on only in Korean; each glossary has an entry near
    // each subject in the question's own language.
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&common::corpus(), &tmp.path().join("docs"));
    let index = index(tmp.path());
    assert!(index.holds_terms_between("\u{AC00}", "\u{D7A4}").unwrap());
    let direction = index.meta().language_direction.as_ref();
    assert_eq!(
        direction.map(Vec::len),
        Some(common::encoder().info().dim),
        "the index keeps the encoder's language direction"
    );
    let korean = "LCEL은 단계를 합칠 때 어떤 연산자를 쓰나요?";
    let english = "What does prompt processing speed depend on?";
    let found = first_two(&index, korean);
    assert_eq!(
        found[0],
        ("langchain-ecosystem.html".to_string(), true),
        "{found:?}"
    );
    let found = first_two(&index, english);
    assert_eq!(
        found[0],
        ("quantization-ko.txt".to_string(), true),
        "{found:?}"
    );
    // A question its own language answers keeps that chunk first.
    let found = first_two(&index, "What is a hallucination?");
    assert_eq!(found[0].0, "glossary-en.md", "{found:?}");

    // The same folder indexed by an encoder that moves no question: the
    // question's own language comes first, which is what the move changes.
    let still = docent_rag::models::load_encoder(None, Default::default())
        .unwrap()
        .with_retrieval(docent_core::RetrievalSettings {
            language_shift: None,
            ..common::encoder().info().retrieval
        });
    let plain_dir = tmp.path().join("plain");
    let cfg = docent_rag::IndexConfig::for_folder(&tmp.path().join("docs"));
    docent_rag::build_index(&plain_dir, &cfg, &still, &mut |_| {}).unwrap();
    let plain = Index::open(&plain_dir).unwrap();
    assert!(plain.meta().language_direction.is_none());
    for q in [korean, english] {
        let found = first_two(&plain, q);
        assert!(found.iter().all(|(_, across)| !across), "{found:?}");
        assert_ne!(
            found[0].0,
            if q == korean {
                "langchain-ecosystem.html"
            } else {
                "quantization-ko.txt"
            },
            "{q}: {found:?}"
        );
    }

    // Indexed again by the default encoder, that index gains the direction
    // without embedding anything again.
    let report = docent_rag::build_index(&plain_dir, &cfg, common::encoder(), &mut |_| {}).unwrap();
    assert_eq!(report.embedded_files, 0, "{report:?}");
    let again = Index::open(&plain_dir).unwrap();
    assert_eq!(again.meta().language_direction.as_ref(), direction);
    assert_eq!(first_two(&again, korean)[0].0, "langchain-ecosystem.html");
}
