//! The answering engine (`docent-rag`) as a library: shared between
//! threads, picking up a newly published index without a restart, streaming
//! events, cancelling, and carrying a conversation's earlier turns.

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use docent_rag::indexer::build_index;
use docent_rag::{
    AnswerConfig, Engine, Event, GeneratorChoice, IndexConfig, RetrieveConfig, SearchMode,
    SourceFit, Stage, StopReason, Turn,
};

const MODEL: &str = "smollm2-135m-instruct-q4_1";

fn encoder() -> Arc<docent_embed::Encoder> {
    common::encoder();
    Arc::new(docent_rag::models::load_encoder(None, Default::default()).expect("encoder loads"))
}

fn index(dir: &Path, docs: &Path, encoder: &docent_embed::Encoder) {
    build_index(dir, &IndexConfig::for_folder(docs), encoder, &mut |_| {}).unwrap();
}

fn generator() -> GeneratorChoice {
    common::gguf(MODEL);
    GeneratorChoice {
        model: MODEL.into(),
        context: 2048,
        ..GeneratorChoice::default()
    }
}

/// An engine over `corpus/`, indexed into `dir`.
fn engine_over_corpus(dir: &Path) -> Engine {
    let ix = dir.join("ix");
    let enc = encoder();
    index(&ix, &common::corpus(), &enc);
    Engine::with_encoder(&ix, enc, generator()).unwrap()
}

fn paths(engine: &Engine, q: &str) -> Vec<String> {
    let cfg = RetrieveConfig {
        k: 3,
        mode: SearchMode::Hybrid,
        ef: None,
        ..RetrieveConfig::default()
    };
    engine
        .retrieve(q, &cfg)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.chunk.chunk.path)
        .collect()
}

#[test]
fn threads_share_one_engine_and_see_a_new_generation_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::copy(
        common::corpus().join("glossary-en.md"),
        docs.join("glossary-en.md"),
    )
    .unwrap();
    let ix = tmp.path().join("ix");
    let enc = encoder();
    index(&ix, &docs, &enc);
    let engine = Engine::with_encoder(&ix, enc.clone(), GeneratorChoice::default()).unwrap();
    let q = "walrus ivory tusks of the Arctic";
    assert!(!paths(&engine, q).contains(&"walrus.md".to_string()));
    let first_gen = engine.index().unwrap().generation().to_string();

    // Readers on four threads while a writer publishes a new generation
    // with a note that answers the question.
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..20 {
                        let got = paths(&engine, "What is quantization?");
                        assert_eq!(got.len(), 3, "every search fills k");
                    }
                })
            })
            .collect();
        std::fs::write(
            docs.join("walrus.md"),
            "# Walrus\n\nThe walrus grows long ivory tusks and lives in the Arctic.\n",
        )
        .unwrap();
        index(&ix, &docs, &enc);
        for r in readers {
            r.join().expect("a reader failed");
        }
    });
    // The same engine, not reopened, now finds the new note.
    assert_eq!(paths(&engine, q)[0], "walrus.md");
    assert_ne!(engine.index().unwrap().generation(), first_gen);
}

#[test]
fn an_answer_streams_its_events_in_order_and_can_be_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine_over_corpus(tmp.path());
    let cfg = AnswerConfig {
        max_tokens: 24,
        ..AnswerConfig::default()
    };
    let q = "What is retrieval-augmented generation?";

    let mut events = Vec::new();
    let mut text = String::new();
    let answer = engine
        .answer(q, &[], &cfg, &mut |e| {
            events.push(match e {
                Event::Sources(s) => format!("sources {}", s.len()),
                Event::Prompt { .. } => "prompt".into(),
                Event::Text(t) => {
                    text.push_str(t);
                    "text".into()
                }
                Event::End { .. } => "end".into(),
            });
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(events[0], format!("sources {}", answer.citations.len()));
    assert_eq!(events[1], "prompt");
    assert_eq!(events.last().unwrap(), "end");
    assert!(events[2..events.len() - 1].iter().all(|e| e == "text"));
    assert_eq!(
        text.trim(),
        answer.text,
        "the streamed pieces are the answer"
    );
    assert!(answer.abstained.is_none());
    assert_ne!(answer.stop, Some(StopReason::Cancelled));

    // Breaking on the first piece stops generation there. That piece may
    // take more than one token: citation marks the model writes first
    // ("[1] Retrieval…") are held back until the text they label.
    let mut pieces = 0;
    let cancelled = engine
        .answer(q, &[], &cfg, &mut |e| {
            if let Event::Text(_) = e {
                pieces += 1;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(pieces, 1);
    assert_eq!(cancelled.stop, Some(StopReason::Cancelled));
    let decoded = cancelled.trace.timings.decode_tokens;
    assert!(
        decoded >= 1 && decoded < answer.trace.timings.decode_tokens,
        "{decoded} tokens decoded, against {} for the whole answer",
        answer.trace.timings.decode_tokens
    );
    // Breaking before generation: no token decoded at all.
    let early = engine
        .answer(q, &[], &cfg, &mut |e| match e {
            Event::Sources(_) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .unwrap();
    assert_eq!(early.stop, Some(StopReason::Cancelled));
    assert!(early.text.is_empty() && early.trace.timings.decode_tokens == 0);
}

#[test]
fn earlier_turns_go_into_the_prompt_and_are_dropped_first_to_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let ix = tmp.path().join("ix");
    let enc = encoder();
    index(&ix, &common::corpus(), &enc);
    let q = "What is retrieval-augmented generation?";
    let history = vec![
        Turn {
            question: "What does quantization do to a model's weights?".into(),
            answer: "It stores them in fewer bits [1].".into(),
        },
        Turn {
            question: "Which search does docent fuse with the dense one?".into(),
            answer: "A lexical BM25 search [2].".into(),
        },
    ];
    let cfg = AnswerConfig {
        max_tokens: 8,
        ..AnswerConfig::default()
    };
    let stop_at_prompt = &mut |e: Event<'_>| match e {
        Event::Prompt { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    };
    let engine = Engine::with_encoder(&ix, enc.clone(), generator()).unwrap();
    let a = engine.answer(q, &history, &cfg, stop_at_prompt).unwrap();
    let prompt = a.prompt.unwrap();
    let p = a.trace.prompt.unwrap();
    assert_eq!((p.history_turns, p.dropped_turns), (2, 0));
    let first = prompt.find(&history[0].question).expect("turn 1 is shown");
    let second = prompt.find(&history[1].answer).expect("turn 2 is shown");
    let question = prompt.rfind(q).unwrap();
    assert!(
        first < second && second < question,
        "oldest first, question last"
    );

    // In a context too small for everything, the oldest turn goes first and
    // the sources stay.
    let small = Engine::with_encoder(
        &ix,
        enc,
        GeneratorChoice {
            model: MODEL.into(),
            context: p.tokens - 20 + cfg.max_tokens,
            ..GeneratorChoice::default()
        },
    )
    .unwrap();
    let a = small.answer(q, &history, &cfg, stop_at_prompt).unwrap();
    let p2 = a.trace.prompt.unwrap();
    assert!(p2.dropped_turns >= 1, "{p2:?}");
    assert_eq!(
        p2.source_ids, p.source_ids,
        "sources are kept over old turns"
    );
    assert!(!a.prompt.unwrap().contains(&history[0].question));
}

#[test]
fn a_question_without_relevant_sources_is_declined_without_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let ix = tmp.path().join("ix");
    let enc = encoder();
    index(&ix, &common::corpus(), &enc);
    // A model that does not exist: declining must not try to load it.
    let engine = Engine::with_encoder(
        &ix,
        enc,
        GeneratorChoice {
            model: "no-such-model".into(),
            context: 2048,
            ..GeneratorChoice::default()
        },
    )
    .unwrap();
    let a = engine
        .answer(
            "Who won the football World Cup final in 1998?",
            &[],
            &AnswerConfig::default(),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
    assert!(matches!(
        a.abstained,
        Some(docent_rag::Abstention::NoRelevantSource { .. })
    ));
    assert_eq!(a.text, docent_rag::no_answer_text(&a.question));
    assert!(a.citations.is_empty() && a.trace.model.is_none());
    assert!(a.trace.candidates.iter().all(|c| !c.kept));
    // Asking for a real answer with that model names the problem.
    let err = engine
        .answer(
            "What is retrieval-augmented generation?",
            &[],
            &AnswerConfig::default(),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert!(
        matches!(err, docent_rag::RagError::UnknownModel { .. }),
        "{err}"
    );
}

/// The check "do the sources answer the question?" is asked before the
/// answer when a threshold is set (the default model's manifest entry sets
/// one; this model's does not), its probability is in the trace, and an
/// answer below the threshold is declined without a word decoded.
#[test]
fn the_answerability_check_is_asked_recorded_and_declines_below_its_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine_over_corpus(tmp.path());
    let q = "What is retrieval-augmented generation?";
    let ask = |min_answerable: Option<f32>| {
        let cfg = AnswerConfig {
            max_tokens: 16,
            min_answerable,
            ..AnswerConfig::default()
        };
        engine
            .answer(q, &[], &cfg, &mut |_| ControlFlow::Continue(()))
            .unwrap()
    };
    assert_eq!(docent_rag::models::min_answerable(MODEL), 0.0);
    let unasked = ask(None);
    assert_eq!(unasked.trace.answerable, None, "no threshold: not asked");

    let asked = ask(Some(0.0001));
    let yes = asked.trace.answerable.expect("asked and recorded");
    assert!((0.0..=1.0).contains(&yes), "{yes}");
    assert_eq!(asked.text, unasked.text, "asking changed the answer");

    let declined = ask(Some(1.0));
    assert_eq!(declined.text, docent_rag::no_answer_text(q));
    assert_eq!(declined.trace.timings.decode_tokens, 0);
    assert_eq!(declined.stop, Some(StopReason::Gated));
    match declined.abstained {
        Some(docent_rag::Abstention::NotAnswerable {
            answerable,
            min_answerable,
        }) => {
            assert_eq!(answerable, yes);
            assert_eq!(min_answerable, 1.0);
        }
        other => panic!("declined for another reason: {other:?}"),
    }
    // Sources read are still cited: the user sees what the model read.
    assert!(!declined.citations.is_empty());
}

/// The question "do the sources state this answer?" is asked once the
/// model has answered, when a threshold is set; its probability is in the
/// trace, and an answer below the threshold is declined after it was
/// written.
#[test]
fn the_confirmation_is_asked_after_the_answer_recorded_and_declines_below_its_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine_over_corpus(tmp.path());
    let q = "What is retrieval-augmented generation?";
    let ask = |min_confirmed: Option<f32>| {
        let cfg = AnswerConfig {
            max_tokens: 16,
            min_answerable: Some(0.0),
            min_confirmed,
            // Whatever the small model writes is checked, not declined as
            // unsupported first.
            grounding: docent_rag::GroundingConfig {
                min_support: 0.0,
                strict: false,
            },
            ..AnswerConfig::default()
        };
        engine
            .answer(q, &[], &cfg, &mut |_| ControlFlow::Continue(()))
            .unwrap()
    };
    assert_eq!(docent_rag::models::min_confirmed(MODEL), 0.0);
    let unasked = ask(None);
    assert_eq!(unasked.trace.confirmed, None, "no threshold: not asked");
    assert!(unasked.abstained.is_none(), "{:?}", unasked.abstained);
    assert!(!unasked
        .trace
        .spans
        .iter()
        .any(|s| s.stage == Stage::Confirm));

    let asked = ask(Some(0.0001));
    let yes = asked.trace.confirmed.expect("asked and recorded");
    assert!((0.0..=1.0).contains(&yes), "{yes}");
    assert_eq!(asked.text, unasked.text, "asking changed the answer");
    assert!(asked.abstained.is_none(), "{:?}", asked.abstained);
    assert!(asked.trace.spans.iter().any(|s| s.stage == Stage::Confirm));

    let declined = ask(Some(1.0));
    assert_eq!(declined.text, docent_rag::no_answer_text(q));
    assert!(
        declined.trace.timings.decode_tokens > 0,
        "it answered first"
    );
    assert!(declined.support.is_empty());
    assert_eq!(
        declined.trace.declined_text.as_deref(),
        Some(unasked.text.as_str()),
        "the trace keeps what the model wrote"
    );
    assert_eq!(
        declined.trace.declined_support, unasked.support,
        "and the check's reading of it"
    );
    assert!(!unasked.support.is_empty());
    assert_eq!(unasked.trace.declined_text, None);
    assert!(unasked.trace.declined_support.is_empty());
    match declined.abstained {
        Some(docent_rag::Abstention::NotConfirmed {
            confirmed,
            min_confirmed,
        }) => {
            assert_eq!(confirmed, yes);
            assert_eq!(min_confirmed, 1.0);
        }
        other => panic!("declined for another reason: {other:?}"),
    }
    assert!(!declined.citations.is_empty());
}

#[test]
fn sources_too_long_for_the_prompt_are_cut_to_the_sentences_about_the_question() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    let tides = "# Tides\n\n\
        Tides rise and fall twice a day along most coasts.\n\
        The pull of the moon on the oceans causes the tides.\n\
        Spring tides come when the sun and the moon line up.\n\
        Neap tides come when they pull at right angles.\n\
        Harbour pilots plan every passage around the tide tables.\n\
        Some bays have tides of more than ten metres.\n";
    let lighthouse = "# Lighthouses\n\n\
        Lighthouses guide ships past rocks and into harbours at night.\n\
        Each one shows its own pattern of flashes so that sailors know it.\n\
        Early lights burned wood or coal on open fires.\n\
        The Skerryvore keeper polished the brass lens every Tuesday morning.\n\
        Later lights used oil lamps behind large glass lenses.\n\
        Today most lighthouses run on their own without a keeper.\n";
    std::fs::write(docs.join("tides.md"), tides).unwrap();
    std::fs::write(docs.join("lighthouses.md"), lighthouse).unwrap();
    let ix = tmp.path().join("ix");
    let enc = encoder();
    index(&ix, &docs, &enc);
    let engine = Engine::with_encoder(&ix, enc, generator()).unwrap();
    let q = "When did the Skerryvore keeper polish the brass lens?";
    let stop_at_prompt = &mut |e: Event<'_>| match e {
        Event::Prompt { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    };
    let cfg = |fit| AnswerConfig {
        retrieve: RetrieveConfig {
            k: 2,
            ..AnswerConfig::default().retrieve
        },
        min_score: Some(0.0),
        max_tokens: 8,
        max_prompt_tokens: 190,
        source_fit: fit,
        ..AnswerConfig::default()
    };

    // Whole, the two do not fit: the lower one is left out.
    let whole = engine
        .answer(q, &[], &cfg(SourceFit::Whole), stop_at_prompt)
        .unwrap();
    assert_eq!((whole.citations.len(), whole.sources_dropped), (1, 1));

    // Cut to their shares, both go in, the one about the question with the
    // sentence that answers it, and each citation points at the line its
    // text starts on.
    let cut = engine
        .answer(q, &[], &cfg(SourceFit::Excerpt), stop_at_prompt)
        .unwrap();
    assert_eq!((cut.citations.len(), cut.sources_dropped), (2, 0));
    assert!(cut.trace.prompt.as_ref().unwrap().tokens <= 190);
    let light = cut
        .citations
        .iter()
        .find(|c| c.path == "lighthouses.md")
        .expect("the lighthouse note is a source");
    assert!(
        light
            .text
            .contains("The Skerryvore keeper polished the brass lens"),
        "{}",
        light.text
    );
    assert!(
        light.text.contains(docent_rag::excerpt::ELLIPSIS),
        "{}",
        light.text
    );
    assert!(cut.prompt.as_ref().unwrap().contains(&light.text));
    for c in &cut.citations {
        let file = if c.path == "tides.md" {
            tides
        } else {
            lighthouse
        };
        let first_sentence = c
            .text
            .lines()
            .map(|l| l.trim_start_matches(docent_rag::excerpt::ELLIPSIS).trim())
            .find(|l| !l.is_empty() && !l.starts_with('#') && *l != "Tides" && *l != "Lighthouses")
            .unwrap();
        let first_sentence = first_sentence.split(". ").next().unwrap();
        let line = file
            .lines()
            .position(|l| l.contains(first_sentence))
            .unwrap_or_else(|| panic!("{first_sentence:?} is in {}", c.path))
            + 1;
        assert_eq!(c.line as usize, line, "{}: {:?}", c.path, c.text);
    }

    // Filled in rank order, the best source goes in whole, as with
    // `Whole`, and the next one is cut to the room it leaves: here room for
    // about one of its sentences.
    let one_source = whole.trace.prompt.as_ref().unwrap().tokens;
    let fill_cfg = AnswerConfig {
        max_prompt_tokens: one_source + 30,
        ..cfg(SourceFit::Fill)
    };
    let fill = engine.answer(q, &[], &fill_cfg, stop_at_prompt).unwrap();
    assert_eq!((fill.citations.len(), fill.sources_dropped), (2, 0));
    assert!(fill.trace.prompt.as_ref().unwrap().tokens <= one_source + 30);
    assert_eq!(fill.citations[0].text, whole.citations[0].text);
    assert_eq!(fill.citations[0].path, "lighthouses.md");
    assert!(
        fill.citations[1]
            .text
            .contains(docent_rag::excerpt::ELLIPSIS),
        "{}",
        fill.citations[1].text
    );
}

/// An answer that only repeats the question's words is asked again with
/// the template's `again`, its first word kept from starting the second
/// answer, and the second taken; without `again`, the first stands.
#[test]
fn an_answer_that_repeats_the_question_is_asked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("steam.md"), common::STEAM_ENGINES).unwrap();
    let ix = tmp.path().join("ix");
    let enc = encoder();
    index(&ix, &docs, &enc);
    let model = "qwen2.5-coder-1.5b-instruct-q4_k_m";
    common::gguf(model);
    let engine = Engine::with_encoder(
        &ix,
        enc,
        GeneratorChoice {
            model: model.into(),
            ..GeneratorChoice::default()
        },
    )
    .unwrap();
    // A first prompt that makes the model repeat the question.
    let echoing = |again: bool| {
        let mut toml = String::from(
            "system = \"You are an echo: you reply with the user's question, word for word, \
             and nothing else.\"\nuser = \"{{ question }}\"\n",
        );
        if again {
            toml.push_str(
                "again = \"\"\"{% for s in sources %}[{{ s.n }}] {{ s.text }}\n\n{% endfor %}\
                 Question: {{ question }}\n\nAnswer from the source above in as few words as \
                 possible, and put [1] after the answer.\"\"\"\n",
            );
        }
        docent_generate::PromptTemplate::from_toml(&toml).unwrap()
    };
    let q = "What is the typical working fluid in a steam engine?";
    let ask = |again: bool| {
        let cfg = AnswerConfig {
            template: echoing(again),
            min_answerable: Some(0.0),
            ..AnswerConfig::default()
        };
        let mut streamed = String::new();
        let a = engine
            .answer(q, &[], &cfg, &mut |e| {
                if let Event::Text(t) = e {
                    streamed.push_str(t);
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        (a, streamed)
    };
    let asked = |a: &docent_rag::Answer| a.trace.spans.iter().any(|s| s.stage == Stage::AskedAgain);

    let (alone, streamed) = ask(false);
    assert!(
        docent_rag::echo::echo_of(q, &alone.text).is_some(),
        "the first prompt no longer makes the model repeat the question: {:?}",
        alone.text
    );
    assert_eq!(alone.trace.asked_again, None, "no `again`: the echo stands");
    assert!(!asked(&alone));
    assert_eq!(streamed.trim(), alone.text);

    let (again, streamed) = ask(true);
    assert!(asked(&again));
    assert_eq!(
        again.trace.asked_again.as_deref(),
        Some(alone.text.as_str()),
        "the trace keeps the first answer"
    );
    assert_eq!(streamed.trim(), alone.text, "the first answer was streamed");
    assert!(
        again.text.to_lowercase().contains("water"),
        "{:?}",
        again.text
    );
    assert!(docent_rag::echo::echo_of(q, &again.text).is_none());
    assert!(again.abstained.is_none(), "{:?}", again.abstained);
    assert!(
        again.support.iter().all(|s| s.supported),
        "{:?}",
        again.support
    );

    // A context that holds the first prompt and answer but not the second
    // prompt: the first answer stands, and nothing fails.
    let max_tokens = 16;
    let tight = Engine::with_encoder(
        &ix,
        encoder(),
        GeneratorChoice {
            model: model.into(),
            context: alone.trace.prompt.as_ref().unwrap().tokens + max_tokens + 1,
            ..GeneratorChoice::default()
        },
    )
    .unwrap();
    let cfg = AnswerConfig {
        template: echoing(true),
        min_answerable: Some(0.0),
        max_tokens,
        ..AnswerConfig::default()
    };
    let kept = tight
        .answer(q, &[], &cfg, &mut |_| ControlFlow::Continue(()))
        .expect("no room to ask again is not an error");
    assert_eq!(kept.text, alone.text);
    assert_eq!(kept.trace.asked_again, None);
    assert!(!asked(&kept));
}
