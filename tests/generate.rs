//! The generator against llama.cpp: token ids, chat template rendering and
//! greedy continuations for both manifest models, from the fixtures made by
//! `scripts/make_generate_fixtures.py`. Also: bad model files, and weight
//! layouts saved and read back.

mod common;

use std::path::PathBuf;

use docent_generate::gguf::GgufFile;
use docent_generate::template::{ChatTemplate, Message};
use docent_generate::tokenizer::GgufTokenizer;
use docent_generate::{
    GenerateError, GenerationConfig, Generator, GeneratorConfig, LayoutStore, SamplerConfig,
    StopReason,
};
use serde_json::Value;

fn fixture(model: &str) -> Value {
    let path = common::root().join(format!("tests/fixtures/generate-{model}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists"))
        .expect("fixture is JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn tokenizer(model: &str) -> GgufTokenizer {
    let file = GgufFile::open(&common::gguf(model)).expect("model opens");
    GgufTokenizer::from_gguf(&file).expect("tokenizer builds")
}

#[test]
fn token_ids_match_llama_cpp() {
    for model in common::GENERATORS {
        let tok = tokenizer(model);
        let fx = fixture(model);
        let mut checked = 0;
        let mut failures = Vec::new();
        for (key, special) in [("tokenize", false), ("tokenize_special", true)] {
            for case in fx[key].as_array().unwrap() {
                let text = case["text"].as_str().unwrap();
                let want = ids(&case["ids"]);
                let got = tok.encode(text, false, special);
                if got != want {
                    failures.push(format!(
                        "{text:?}\n  llama.cpp {want:?}\n  docent    {got:?}"
                    ));
                }
                checked += 1;
            }
        }
        assert!(checked >= 50, "{model}: only {checked} fixture strings");
        assert!(
            failures.is_empty(),
            "{model}: {} of {checked} strings tokenize differently:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn decoding_round_trips_the_fixture_strings() {
    for model in common::GENERATORS {
        let tok = tokenizer(model);
        for case in fixture(model)["tokenize"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let decoded = tok.decode(&ids(&case["ids"]));
            // Control-token text is dropped when printing; everything else
            // comes back byte for byte.
            if text.contains("<|im_")
                || text.contains("_of_turn>")
                || text.contains("<s>")
                || text.contains('\u{2581}')
            {
                continue;
            }
            assert_eq!(decoded, text, "{model}");
        }
    }
}

#[test]
fn chat_template_renders_as_hugging_face_does() {
    let model = "smollm2-135m-instruct-q4_1";
    let fx = fixture(model);
    let chat = &fx["chat"];
    assert!(chat.is_object(), "the fixture has a rendered chat prompt");
    let file = GgufFile::open(&common::gguf(model)).unwrap();
    let source = file
        .opt_string("tokenizer.chat_template")
        .expect("SmolLM2 has a template");
    let template = ChatTemplate::new(Some(&source), "<|im_start|>", "<|im_end|>").unwrap();
    let messages = [
        Message::new("system", chat["system"].as_str().unwrap()),
        Message::new("user", chat["user"].as_str().unwrap()),
    ];
    assert_eq!(
        template.render(&messages, true).unwrap(),
        chat["rendered"].as_str().unwrap()
    );
    // Without a system message the template supplies its own.
    let rendered = template.render(&messages[1..], true).unwrap();
    assert!(rendered.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    assert!(rendered.ends_with("<|im_start|>assistant\n"));
    // A template that raises gives an error, not a panic.
    let raising =
        ChatTemplate::new(Some("{{ raise_exception('no system role') }}"), "", "").unwrap();
    let err = raising.render(&messages, true).unwrap_err().to_string();
    assert!(err.contains("no system role"), "{err}");
}

fn generator(model: &str) -> Generator {
    Generator::load(&common::gguf(model), GeneratorConfig::default()).expect("model loads")
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// The RAG prompt, with llama.cpp's tokens replayed one by one: wherever
/// llama.cpp's choice is clear docent makes the same one, and wherever it is
/// not, llama.cpp's token is within a hair of docent's best. (Free-running
/// greedy decoding would turn one near-tie into a different sentence; see
/// scripts/make_generate_fixtures.py.)
#[test]
fn logits_follow_llama_cpp_on_a_rag_prompt() {
    for model in common::GENERATORS {
        let fx = fixture(model);
        let case = &fx["rag"];
        let min_margin = case["min_margin"].as_f64().unwrap() as f32;
        let mut g = generator(model);
        let prompt = g.tokenize_prompt(case["prompt"].as_str().unwrap());
        assert_eq!(prompt, ids(&case["prompt_ids"]), "{model}: prompt tokens");
        let want = ids(&case["generated"]);
        let margins: Vec<f32> = case["margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap() as f32)
            .collect();
        let model_ref = g.model_mut();
        model_ref.reset();
        let mut logits = model_ref.forward(&prompt).unwrap();
        // First step: the ten most likely tokens' logits agree closely.
        for pair in case["first_step_top10"].as_array().unwrap() {
            let (id, v) = (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap() as f32,
            );
            assert!(
                (logits[id] - v).abs() < 1.0,
                "{model}: logit of token {id} is {} (llama.cpp {v})",
                logits[id]
            );
        }
        let mut agreed = 0;
        for (step, (&tok, &margin)) in want.iter().zip(&margins).enumerate() {
            let best = argmax(&logits);
            let gap = logits[best] - logits[tok as usize];
            if margin >= min_margin {
                assert_eq!(
                    best as u32, tok,
                    "{model}: step {step}: llama.cpp's clear choice (margin {margin}) differs"
                );
            } else {
                assert!(
                    gap < min_margin,
                    "{model}: step {step}: llama.cpp's token is {gap} below docent's best"
                );
            }
            agreed += usize::from(best as u32 == tok);
            logits = model_ref.forward(&[tok]).unwrap();
        }
        assert!(
            agreed >= want.len() - 2,
            "{model}: only {agreed} of {} steps agree",
            want.len()
        );
    }
}

/// Free-running greedy decoding: docent's first 32 tokens are llama.cpp's.
#[test]
fn greedy_continuations_match_llama_cpp() {
    for model in common::GENERATORS {
        let fx = fixture(model);
        let case = &fx["clear"];
        let mut g = generator(model);
        let prompt = g.tokenize_prompt(case["prompt"].as_str().unwrap());
        assert_eq!(prompt, ids(&case["prompt_ids"]), "{model}: prompt tokens");
        let want = ids(&case["generated"]);
        let cfg = GenerationConfig {
            max_tokens: want.len(),
            sampler: SamplerConfig::greedy(),
            stop_strings: Vec::new(),
            stop_on_repeat: false,
            gate: None,
            not_first: Vec::new(),
        };
        let out = g.generate(&prompt, &cfg, &mut |_| true).unwrap();
        assert_eq!(
            out.tokens,
            want,
            "{model}: greedy tokens differ from llama.cpp's\n docent:    {:?}\n llama.cpp: {:?}",
            out.text,
            case["generated_text"].as_str().unwrap()
        );
    }
}

/// The same floats, bit for bit.
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Every row of a step is computed on its own (activations are quantised
/// per row, each query attends on its own), so feeding a prompt in one
/// pass, in uneven pieces or token by token must give the same logits, bit
/// for bit; a kernel that mixed rows, or a cache written at the wrong
/// position, would not.
#[test]
fn logits_do_not_depend_on_how_the_prompt_is_split() {
    for model in common::GENERATORS {
        let mut g = generator(model);
        let ids = g.tokenize_prompt(
            "Retrieval-augmented generation answers questions from documents. \
             The retriever finds passages; the generator writes the answer and cites them.",
        );
        assert!(ids.len() > 20, "{model}");
        let m = g.model_mut();
        m.reset();
        let whole = m.forward(&ids).unwrap();
        for pieces in [vec![7, 1, 5], vec![1]] {
            m.reset();
            let mut at = 0;
            let mut logits = Vec::new();
            for &size in pieces.iter().cycle() {
                if at == ids.len() {
                    break;
                }
                let end = (at + size).min(ids.len());
                logits = m.forward(&ids[at..end]).unwrap();
                at = end;
            }
            assert!(
                same_bits(&whole, &logits),
                "{model}: pieces {pieces:?} changed the logits"
            );
        }
        // Going back over tokens read since: as if they had never been.
        m.reset();
        m.forward(&ids[..12]).unwrap();
        m.forward(&ids[3..15]).unwrap();
        assert!(m.rewind(12), "{model} rewinds");
        assert_eq!(m.position(), 12);
        let after = m.forward(&ids[12..]).unwrap();
        assert!(
            same_bits(&whole, &after),
            "{model}: tokens read and rewound changed the logits"
        );
        // The logits after each token of one pass are those a pass that
        // ended at that token gives (docent's decoder gives them; phi3, on
        // candle-transformers, only the last).
        m.reset();
        m.forward(&ids[..5]).unwrap();
        let each = m.forward_each(&ids[5..]).unwrap();
        assert_eq!(each.is_some(), m.can_rewind(), "{model}");
        if let Some(each) = each {
            let vocab = whole.len();
            assert_eq!(each.len(), (ids.len() - 5) * vocab, "{model}");
            assert!(
                same_bits(&whole, &each[each.len() - vocab..]),
                "{model}: the last row of forward_each is not forward's"
            );
            m.reset();
            let at_ten = m.forward(&ids[..10]).unwrap();
            assert!(
                same_bits(&at_ten, &each[4 * vocab..5 * vocab]),
                "{model}: a middle row of forward_each is not forward's"
            );
        }
        // The hidden state kept for a probe is the last token's, after
        // every layer, however the prompt was split.
        m.reset();
        m.forward(&ids).unwrap();
        let kept = m.hidden().map(<[f32]>::to_vec);
        assert_eq!(kept.is_some(), m.hidden_shape().is_some(), "{model}");
        if let (Some(kept), Some((layers, width))) = (kept, m.hidden_shape()) {
            assert_eq!(kept.len(), layers * width, "{model}");
            assert!(kept.iter().all(|v| v.is_finite()), "{model}");
            m.reset();
            m.forward(&ids[..7]).unwrap();
            m.forward(&ids[7..]).unwrap();
            assert!(
                same_bits(&kept, m.hidden().unwrap()),
                "{model}: pieces changed the hidden state"
            );
            m.reset();
            m.forward(&ids[..ids.len() - 1]).unwrap();
            assert!(
                !same_bits(&kept, m.hidden().unwrap()),
                "{model}: the hidden state is not the last token's"
            );
        }
    }
}

/// The tokens of a chat whose system message is a two-sentence source
/// about Seoul and whose user message is `ask`.
fn seoul_prompt(g: &Generator, ask: &str) -> Vec<u32> {
    let messages = [
        Message::new(
            "system",
            "The source: Seoul is the capital of South Korea. \
             It has about 9.4 million inhabitants.",
        ),
        Message::new("user", ask),
    ];
    g.tokenize_prompt(&g.chat_template().render(&messages, true).unwrap())
}

/// Greedy, at most 12 tokens, no stop on repeats: a short answer that
/// depends only on the logits.
fn short_greedy() -> GenerationConfig {
    GenerationConfig {
        max_tokens: 12,
        sampler: SamplerConfig::greedy(),
        stop_on_repeat: false,
        ..GenerationConfig::default()
    }
}

/// A gate's question is answered from the shared start of both prompts and
/// leaves the answer as it would have been; its "yes" is the model's.
#[test]
fn a_gate_asks_yes_or_no_first_and_leaves_the_answer_alone() {
    let model = "qwen2.5-coder-1.5b-instruct-q4_k_m";
    let mut g = generator(model);
    let prompt = seoul_prompt(
        &g,
        "What is the capital of South Korea? Answer in a few words.",
    );
    let greedy = short_greedy();
    let plain = g.generate(&prompt, &greedy, &mut |_| true).unwrap();
    assert!(plain.text.contains("Seoul"), "{model}: {:?}", plain.text);
    assert_eq!(plain.gate_yes, None);
    // One probability per token written; a source that states the answer
    // makes the model sure of it.
    assert_eq!(plain.token_probs.len(), plain.tokens.len());
    assert!(plain.token_probs.iter().all(|&p| p > 0.0 && p <= 1.0));
    let sure = docent_rag::trace::Confidence::of(&plain.token_probs).unwrap();
    assert!(
        sure.mean > 0.5 && sure.min <= sure.mean,
        "{model}: {sure:?}"
    );
    let ask = |g: &mut Generator, question: &str, min_yes: f32| {
        let cfg = GenerationConfig {
            gate: Some(docent_generate::Gate {
                prompt: seoul_prompt(g, question),
                min_yes,
                fallback: "No answer.".into(),
            }),
            ..greedy.clone()
        };
        g.generate(&prompt, &cfg, &mut |_| true).unwrap()
    };
    let yes = ask(
        &mut g,
        "Does the source say how many people live in Seoul? Reply yes or no.",
        0.5,
    );
    assert!(yes.gate_yes.unwrap() > 0.5, "{model}: {:?}", yes.gate_yes);
    assert_eq!(
        yes.tokens, plain.tokens,
        "{model}: the gate changed the answer"
    );
    let no = ask(
        &mut g,
        "Does the source say when Seoul was founded? Reply yes or no.",
        0.5,
    );
    assert!(no.gate_yes.unwrap() < 0.5, "{model}: {:?}", no.gate_yes);
    assert_eq!(no.stop, StopReason::Gated);
    assert_eq!(no.text, "No answer.");
    // Told to answer whatever the model says, it answers as before.
    let open = ask(
        &mut g,
        "Does the source say when Seoul was founded? Reply yes or no.",
        0.0,
    );
    assert_eq!(
        open.tokens, plain.tokens,
        "{model}: the gate changed the answer"
    );
}

/// Tokens an answer may not begin with are never its first, and the rest
/// of the answer is still the model's greedy choice after the one it
/// began with instead.
#[test]
fn an_answer_kept_from_its_first_token_begins_otherwise() {
    let model = "qwen2.5-coder-1.5b-instruct-q4_k_m";
    let mut g = generator(model);
    let prompt = seoul_prompt(
        &g,
        "What is the capital of South Korea? Answer in a few words.",
    );
    let greedy = short_greedy();
    let plain = g.generate(&prompt, &greedy, &mut |_| true).unwrap();
    let first = plain.tokens[0];
    let kept = GenerationConfig {
        not_first: vec![first],
        ..greedy.clone()
    };
    let other = g.generate(&prompt, &kept, &mut |_| true).unwrap();
    assert_ne!(other.tokens[0], first, "{model}: {:?}", other.text);
    assert_ne!(other.text, plain.text);
    // Given the prompt and the first token it began with, greedy again.
    let mut forced = prompt.clone();
    forced.push(other.tokens[0]);
    let rest = g
        .generate(
            &forced,
            &GenerationConfig {
                max_tokens: greedy.max_tokens - 1,
                ..greedy.clone()
            },
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(rest.tokens[..], other.tokens[1..], "{model}");
}

/// A question asked once the model has answered starts from what the
/// cache holds (the answer's prompt and the answer), and its "yes" is the
/// same as when the whole question is read from an empty cache.
#[test]
fn a_question_after_the_answer_reuses_the_cache_and_reads_as_from_scratch() {
    let model = "qwen2.5-coder-1.5b-instruct-q4_k_m";
    let mut g = generator(model);
    let prompt = seoul_prompt(&g, "How many people live in Seoul? Answer in a few words.");
    let greedy = short_greedy();
    let answer = g.generate(&prompt, &greedy, &mut |_| true).unwrap();
    assert!(answer.text.contains("9.4"), "{model}: {:?}", answer.text);
    let confirm = |answer: &str| {
        format!(
            "How many people live in Seoul? Proposed answer: {answer}. \
             Does the source state that this is the answer? Reply with only yes or no."
        )
    };
    let right = seoul_prompt(&g, &confirm("about 9.4 million"));
    let wrong = seoul_prompt(&g, &confirm("about 2 million"));
    // Asked after the answer, then the other after the first question.
    let right_yes = g.yes_after(&right).unwrap().unwrap();
    let wrong_yes = g.yes_after(&wrong).unwrap().unwrap();
    assert!(right_yes > 0.5, "{model}: {right_yes}");
    assert!(wrong_yes < 0.5, "{model}: {wrong_yes}");
    // From an empty cache: the same probabilities, to rounding.
    g.model_mut().reset();
    let fresh_right = g.yes_after(&right).unwrap().unwrap();
    g.model_mut().reset();
    let fresh_wrong = g.yes_after(&wrong).unwrap().unwrap();
    assert!(
        (fresh_right - right_yes).abs() < 1e-3 && (fresh_wrong - wrong_yes).abs() < 1e-3,
        "{model}: {right_yes} / {fresh_right}, {wrong_yes} / {fresh_wrong}"
    );
    // A question longer than the context is an error, not a panic.
    let long = vec![right[1]; g.context() + 1];
    assert!(g.yes_after(&long).is_err());
}

/// A prompt read after another answer keeps the start the two share in
/// the cache (here the system message) and reads only the rest; its answer,
/// the probabilities of its tokens and its gate's "yes" are those of a
/// prompt read from an empty cache, bit for bit.
#[test]
fn a_prompt_after_another_reads_only_what_they_do_not_share() {
    let model = "qwen2.5-coder-1.5b-instruct-q4_k_m";
    let mut g = generator(model);
    let first = seoul_prompt(&g, "What is the capital of South Korea?");
    let second = seoul_prompt(&g, "How many people live in Seoul? Answer in a few words.");
    let shared = first
        .iter()
        .zip(&second)
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared > 10, "{model}: the prompts share {shared} tokens");
    let asks = seoul_prompt(
        &g,
        "Does the source say how many people live in Seoul? Reply yes or no.",
    );
    let config = |gate: bool| GenerationConfig {
        gate: gate.then(|| docent_generate::Gate {
            prompt: asks.clone(),
            min_yes: 0.5,
            fallback: "No answer.".into(),
        }),
        ..short_greedy()
    };
    for gate in [false, true] {
        let cfg = config(gate);
        g.model_mut().reset();
        let fresh = g.generate(&second, &cfg, &mut |_| true).unwrap();
        assert_eq!(fresh.timings.cached_tokens, 0, "{model}");
        assert!(fresh.text.contains("9.4"), "{model}: {:?}", fresh.text);
        g.generate(&first, &config(false), &mut |_| true).unwrap();
        let after = g.generate(&second, &cfg, &mut |_| true).unwrap();
        assert_eq!(after.timings.cached_tokens, shared, "{model}, gate {gate}");
        assert_eq!(after.tokens, fresh.tokens, "{model}, gate {gate}");
        assert!(
            same_bits(&after.token_probs, &fresh.token_probs),
            "{model}, gate {gate}: the kept cache changed the probabilities"
        );
        assert_eq!(
            after.gate_yes.map(f32::to_bits),
            fresh.gate_yes.map(f32::to_bits),
            "{model}, gate {gate}"
        );
        assert_eq!(after.gate_yes.is_some(), gate, "{model}");
        // The same prompt again: everything but its last token is kept.
        let again = g.generate(&second, &cfg, &mut |_| true).unwrap();
        assert_eq!(again.tokens, fresh.tokens, "{model}, gate {gate}");
        if !gate {
            assert_eq!(again.timings.cached_tokens, second.len() - 1, "{model}");
        }
    }
}

fn temp_copy(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn truncated_and_corrupt_gguf_files_give_clear_errors() {
    let real = std::fs::read(common::gguf("smollm2-135m-instruct-q4_1")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        (
            "not gguf",
            b"PK\x03\x04 this is a zip file, not a model".to_vec(),
        ),
        ("header only", real[..64].to_vec()),
        ("truncated metadata", real[..real.len() / 1000].to_vec()),
        ("truncated weights", real[..real.len() / 2].to_vec()),
        ("one byte short", real[..real.len() - 1].to_vec()),
    ];
    for (what, bytes) in cases {
        let (_dir, path) = temp_copy(&bytes);
        match Generator::load(&path, GeneratorConfig::default()) {
            Err(GenerateError::BadModelFile { path: p, reason }) => {
                assert_eq!(p, path, "{what}");
                assert!(!reason.is_empty(), "{what}");
            }
            Err(other) => panic!("{what}: unexpected error kind: {other}"),
            Ok(_) => panic!("{what}: a broken file loaded"),
        }
    }
}

#[test]
fn unsupported_architecture_is_named() {
    // Rewrite general.architecture's value in place: same length, new name.
    let mut bytes = std::fs::read(common::gguf("smollm2-135m-instruct-q4_1")).unwrap();
    let key = b"general.architecture";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("key present");
    // key, u32 type (8 = string), u64 length, then the value "llama".
    let value_at = at + key.len() + 4 + 8;
    assert_eq!(&bytes[value_at..value_at + 5], b"llama");
    bytes[value_at..value_at + 5].copy_from_slice(b"mamba");
    let (_dir, path) = temp_copy(&bytes);
    let err = Generator::load(&path, GeneratorConfig::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("\"mamba\""), "{err}");
    assert!(err.contains("llama") && err.contains("gemma3"), "{err}");
}

/// Every ASCII character between two letters tokenizes as llama.cpp does,
/// including the control bytes SmolLM2's vocabulary drops (found by the
/// `gguf_tokenizer` fuzz target); fixture: scripts/make_ascii_tokenizer_fixture.py.
#[test]
fn ascii_tokenizes_as_llama_cpp_does() {
    let path = common::root().join("tests/fixtures/tokenizer-ascii.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for model in common::GENERATORS {
        let tok = tokenizer(model);
        let cases = fx[*model].as_array().expect("the model is in the fixture");
        assert_eq!(cases.len(), 128);
        for (c, want) in cases.iter().enumerate() {
            let text = format!("a{}b", char::from(c as u8));
            assert_eq!(
                tok.encode(&text, false, false),
                ids(want),
                "{model}: {text:?}"
            );
        }
    }
}

/// The weight layouts saved by a first load and read back by later ones
/// give the model's logits bit for bit; a file of layouts that is damaged
/// or was made from another version of the model is built and saved again,
/// never misread.
#[test]
fn saved_weight_layouts_give_the_same_logits_and_bad_ones_are_rebuilt() {
    use std::os::unix::fs::MetadataExt;
    let isa = docent_kernels::Isa::detect();
    let store_dir = tempfile::tempdir().unwrap();
    let store = LayoutStore::new(store_dir.path());
    let saving = GeneratorConfig {
        layouts: Some(store.clone()),
        ..GeneratorConfig::default()
    };
    let logits = |g: &mut Generator, ids: &[u32]| {
        let m = g.model_mut();
        m.reset();
        m.forward(ids).unwrap()
    };
    for model in common::GENERATORS {
        let path = common::gguf(model);
        let mut built = generator(model);
        let ids = built.tokenize_prompt(
            "검색 증강 생성은 질문에 두 단계로 답합니다. The retriever finds passages.",
        );
        let want = logits(&mut built, &ids);
        drop(built);
        let file = store.file_for(&path, isa);
        assert!(!file.exists(), "{model}");
        let mut first = Generator::load(&path, saving.clone()).unwrap();
        let saved = std::fs::metadata(&file).expect("the first load saves the layouts");
        assert!(
            same_bits(&want, &logits(&mut first, &ids)),
            "{model}: saving changed the logits"
        );
        drop(first);
        let mut again = Generator::load(&path, saving.clone()).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().ino(),
            saved.ino(),
            "{model}: read, not rebuilt"
        );
        assert!(
            same_bits(&want, &logits(&mut again, &ids)),
            "{model}: saved layouts changed the logits"
        );
        drop(again);
        // Cut short, then with a damaged header: rebuilt, same logits.
        let len = saved.len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len - 4096)
            .unwrap();
        let mut g = Generator::load(&path, saving.clone()).unwrap();
        assert!(
            same_bits(&want, &logits(&mut g, &ids)),
            "{model}: from a truncated file"
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            len,
            "{model}: saved again whole"
        );
        drop(g);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[20..40].copy_from_slice(b"!!not json at all!!!");
        std::fs::write(&file, &bytes).unwrap();
        let mut g = Generator::load(&path, saving.clone()).unwrap();
        assert!(
            same_bits(&want, &logits(&mut g, &ids)),
            "{model}: from a damaged header"
        );
        assert_ne!(
            std::fs::read(&file).unwrap()[20..40],
            bytes[20..40],
            "{model}: rebuilt"
        );
    }
    // A model file changed since its layouts were saved: they are rebuilt.
    let model = "smollm2-135m-instruct-q4_1";
    let (_dir, copy) = temp_copy(&std::fs::read(common::gguf(model)).unwrap());
    drop(Generator::load(&copy, saving.clone()).unwrap());
    let file = store.file_for(&copy, isa);
    let before = std::fs::metadata(&file).unwrap().ino();
    let f = std::fs::File::options().write(true).open(&copy).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    drop(Generator::load(&copy, saving).unwrap());
    assert_ne!(
        std::fs::metadata(&file).unwrap().ino(),
        before,
        "stale layouts rebuilt"
    );
}
