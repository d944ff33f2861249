//! History-aware retrieval, measured: on the two-turn conversations of
//! tests/fixtures/conversations.toml, how often retrieval (hybrid, k 2)
//! finds a right source for the second turn when it is
//!
//! * asked as it is (`off`),
//! * made standalone by docent's rule (`follow-up`, the default),
//! * put after the previous question every time (`always`),
//! * rewritten by the language model (the default one, greedy) from the
//!   conversation, with the time that costs before retrieval can start.
//!
//!     cargo bench --profile dev --bench rewrite
//!
//! It prints a table; it asserts nothing (tests/chat.rs holds the rule to
//! its target).

use std::path::PathBuf;
use std::time::Instant;

use docent_eval::{Conversation, ConversationSet};
use docent_generate::template::Message;
use docent_generate::GenerationConfig;
use docent_rag::indexer::build_index;
use docent_rag::models::{load_encoder, load_generator};
use docent_rag::rewrite::{standalone_query, QueryRewrite};
use docent_rag::{answer::DEFAULT_K, Engine, GeneratorChoice, IndexConfig, RetrieveConfig, Turn};

const INSTRUCTION: &str = "Rewrite the last question so that it can be understood without the \
earlier one: replace words such as \"it\", \"they\", \"그건\" or \"그 …\" with what they refer \
to in the earlier question. Keep its language. Reply with the rewritten question only.";

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let set = ConversationSet::from_toml(&std::fs::read_to_string(
        root.join("tests/fixtures/conversations.toml"),
    )?)?;
    let tmp = tempfile::tempdir()?;
    let ix = tmp.path().join("ix");
    let enc = std::sync::Arc::new(load_encoder(None, Default::default())?);
    build_index(
        &ix,
        &IndexConfig::for_folder(&root.join("corpus")),
        &enc,
        &mut |_| {},
    )?;
    let engine = Engine::with_encoder(&ix, enc, GeneratorChoice::default())?;
    let cfg = RetrieveConfig {
        k: DEFAULT_K,
        ..RetrieveConfig::default()
    };
    let found = |q: &str, c: &Conversation| -> anyhow::Result<bool> {
        Ok(engine
            .retrieve(q, &cfg)?
            .hits
            .iter()
            .any(|h| c.is_source(&h.chunk.chunk.path, &h.chunk.chunk.heading_path)))
    };
    let mut loaded = load_generator(&GeneratorChoice::default())?;
    let g = &mut loaded.generator;
    let (mut off, mut rule, mut always, mut model) = (0, 0, 0, 0);
    let mut model_ms = Vec::new();
    for c in &set.conversations {
        let history = [Turn {
            question: c.first.clone(),
            answer: String::new(),
        }];
        let o = found(&c.follow_up, c)?;
        off += o as usize;
        let r = standalone_query(&c.follow_up, &history, QueryRewrite::FollowUp)
            .unwrap_or_else(|| c.follow_up.clone());
        let ru = found(&r, c)?;
        rule += ru as usize;
        let a = standalone_query(&c.follow_up, &history, QueryRewrite::Always)
            .unwrap_or_else(|| c.follow_up.clone());
        always += found(&a, c)? as usize;
        let messages = [
            Message::new("system", INSTRUCTION),
            Message::new(
                "user",
                format!(
                    "Earlier question: {}\nLast question: {}\nRewritten last question:",
                    c.first, c.follow_up
                ),
            ),
        ];
        let prompt = g.chat_template().render(&messages, true)?;
        let tokens = g.tokenize_prompt(&prompt);
        let t = Instant::now();
        let out = g.generate(
            &tokens,
            &GenerationConfig {
                max_tokens: 48,
                stop_strings: g.default_stop_strings(),
                ..GenerationConfig::default()
            },
            &mut |_| true,
        )?;
        model_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let rewritten = out.text.trim().to_string();
        let m = found(&rewritten, c)?;
        model += m as usize;
        println!(
            "alone {o:5} rule {ru:5} model {m:5}  {} → {}  (model: {rewritten})",
            c.first, c.follow_up
        );
    }
    let n = set.conversations.len() as f64;
    model_ms.sort_by(f64::total_cmp);
    println!(
        "\nright source for the second turn (hybrid, k {DEFAULT_K}, {} conversations):",
        set.conversations.len()
    );
    println!("  off (the question alone)  {:.2}", off as f64 / n);
    println!("  follow-up rule (default)  {:.2}", rule as f64 / n);
    println!("  always                    {:.2}", always as f64 / n);
    println!(
        "  the model ({})  {:.2}, costing {:.0} ms (median) before retrieval",
        loaded.model.id,
        model as f64 / n,
        model_ms[model_ms.len() / 2]
    );
    Ok(())
}
