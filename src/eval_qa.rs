//! `docent eval SET.toml --docs DIR`: answers to a hand-written question
//! set about a folder (see `docent_eval::QaSet`), scored for the key fact,
//! the cited source, the answer's language and declines.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use docent_eval::{Percentiles, QaSet};
use docent_generate::prompt::question_language;
use docent_rag::indexer::{build_index, load_encoder_for};
use docent_rag::{Answer, Engine, Event, IndexConfig, SentenceSupport};
use serde::Serialize;

use crate::eval_cmd::answer_language;
use sha2::{Digest, Sha256};

use crate::eval_cmd::EvalArgs;
use crate::index_cmd::{print_report, Progress};

#[derive(Serialize)]
struct Record<'a> {
    question: &'a str,
    language: &'static str,
    answerable: bool,
    answer: &'a str,
    declined: bool,
    /// The answer states the fact (answerable questions).
    states_fact: bool,
    /// It cites one of the question's sources.
    cites_source: bool,
    /// The right call: fact and source for an answerable question, a
    /// decline for the others.
    right: bool,
    sources: Vec<String>,
    support: &'a [SentenceSupport],
    /// The model's probability that its sources answer the question.
    answerable_probability: Option<f32>,
    /// The model's probability that its sources state its answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_probability: Option<f32>,
    time_to_first_token_ms: Option<f64>,
    total_ms: f64,
}

#[derive(Serialize, Default)]
struct Rates {
    questions: usize,
    /// Answerable questions answered with the fact and a right source.
    answered_right: f64,
    answerable: usize,
    /// Unanswerable questions declined.
    declined_right: f64,
    unanswerable: usize,
}

#[derive(Serialize)]
struct Summary {
    set: String,
    docs: String,
    model: String,
    k: usize,
    all: Rates,
    english: Rates,
    korean: Rates,
    /// Answers to Korean questions written in Korean.
    korean_answers: f64,
    /// Answer sentences the grounding check supports.
    supported_sentences: f64,
    time_to_first_token_ms: Percentiles,
    total_ms: Percentiles,
}

/// The paths an answer cites: those of its `[n]` marks, or all of its
/// sources when it has none.
fn cited_paths(a: &Answer) -> Vec<String> {
    let marked: Vec<usize> = a.support.iter().flat_map(|s| s.cites.clone()).collect();
    a.citations
        .iter()
        .filter(|c| marked.is_empty() || marked.contains(&c.n))
        .map(|c| c.path.clone())
        .collect()
}

pub fn run(args: &EvalArgs, set_path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(set_path)
        .with_context(|| format!("reading {}", set_path.display()))?;
    let set = QaSet::from_toml(&text).with_context(|| format!("{}", set_path.display()))?;
    let docs = args.docs.clone().context(
        "a question set is asked about a folder: name it with --docs DIR (e.g. --docs corpus)",
    )?;
    anyhow::ensure!(docs.is_dir(), "{} is not a folder", docs.display());
    let encoder_name = match args.encoder.name() {
        Some(n) => n.to_string(),
        None => docent_rag::models::encoder_spec(None)?.name,
    };
    let key = {
        let mut h = Sha256::new();
        h.update(std::fs::canonicalize(&docs)?.to_string_lossy().as_bytes());
        h.update(encoder_name.as_bytes());
        hex::encode(&h.finalize()[..6])
    };
    let workdir = args
        .workdir
        .clone()
        .unwrap_or_else(|| Path::new(".docent-eval").join(format!("folder-{key}")));
    let index_dir = workdir.join("index");
    let docs_cfg = IndexConfig::for_folder(&docs);
    let encoder = load_encoder_for(&index_dir, Some(&encoder_name), docs_cfg.batch_size)?;
    let mut progress = Progress::new(args.json);
    let report = build_index(&index_dir, &docs_cfg, &encoder, &mut |e| progress.on(e))?;
    if !args.json && report.embedded_files > 0 {
        print_report(&index_dir, &report);
    }
    let engine = Engine::with_encoder(
        &index_dir,
        std::sync::Arc::new(encoder),
        args.answer.generator(),
    )?;
    let cfg = args.answer.config(docent_rag::SearchMode::Hybrid)?;
    cfg.validate()?;
    engine.load_generator()?;
    let mut out = match &args.out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let mut questions: Vec<_> = set.questions.iter().collect();
    if let Some(n) = args.limit {
        questions.truncate(n);
    }
    // (right, count) per language and kind.
    let mut tally = [[(0usize, 0usize); 2]; 2];
    let (mut korean_q, mut korean_a) = (0usize, 0usize);
    let (mut sentences, mut supported) = (0usize, 0usize);
    let (mut ttft, mut total) = (Vec::new(), Vec::new());
    for q in questions {
        let language = question_language(&q.question);
        let korean = language == "Korean";
        let started = Instant::now();
        let mut first = None;
        let a = engine.answer(&q.question, &[], &cfg, &mut |e| {
            if let Event::Text(_) = e {
                first.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1e3);
            }
            ControlFlow::Continue(())
        })?;
        let declined = a.abstained.is_some();
        let paths = cited_paths(&a);
        let states_fact = !declined && q.states_fact(&a.text, korean);
        let cites_source = !declined && q.cites_source(paths.iter().map(String::as_str));
        let right = if q.answerable {
            states_fact && cites_source
        } else {
            declined
        };
        let cell = &mut tally[korean as usize][q.answerable as usize];
        cell.0 += right as usize;
        cell.1 += 1;
        if korean {
            korean_q += 1;
            korean_a += matches!(answer_language(&a.text), "Korean" | "any") as usize;
        }
        sentences += a.support.len();
        supported += a.support.iter().filter(|s| s.supported).count();
        ttft.extend(first);
        total.push(a.trace.timings.total_ms);
        if let Some(f) = out.as_mut() {
            let record = Record {
                question: &q.question,
                language,
                answerable: q.answerable,
                answer: &a.text,
                declined,
                states_fact,
                cites_source,
                right,
                sources: paths,
                support: &a.support,
                answerable_probability: a.trace.answerable,
                confirmed_probability: a.trace.confirmed,
                time_to_first_token_ms: first,
                total_ms: a.trace.timings.total_ms,
            };
            writeln!(f, "{}", serde_json::to_string(&record)?)?;
        }
        if !args.json {
            let mark = if right { "ok  " } else { "MISS" };
            println!("{mark} {} → {}", q.question, a.text.replace('\n', " "));
        }
    }
    if let Some(f) = out.as_mut() {
        f.flush()?;
    }
    let div = |a: usize, b: usize| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let rates = |cells: &[[(usize, usize); 2]]| {
        let sum = |answerable: bool| {
            cells.iter().fold((0, 0), |acc, c| {
                let (r, n) = c[answerable as usize];
                (acc.0 + r, acc.1 + n)
            })
        };
        let (ar, an) = sum(true);
        let (ur, un) = sum(false);
        Rates {
            questions: an + un,
            answered_right: div(ar, an),
            answerable: an,
            declined_right: div(ur, un),
            unanswerable: un,
        }
    };
    let summary = Summary {
        set: set_path.display().to_string(),
        docs: docs.display().to_string(),
        model: engine.generator_model().map(|m| m.id).unwrap_or_default(),
        k: cfg.retrieve.k,
        all: rates(&tally),
        english: rates(&tally[..1]),
        korean: rates(&tally[1..]),
        korean_answers: div(korean_a, korean_q),
        supported_sentences: div(supported, sentences),
        time_to_first_token_ms: Percentiles::of(ttft),
        total_ms: Percentiles::of(total),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{} on {} ({}, k={}):",
        summary.set, summary.docs, summary.model, summary.k
    );
    for (name, r) in [
        ("all", &summary.all),
        ("English", &summary.english),
        ("Korean", &summary.korean),
    ] {
        println!(
            "  {name:<8} answered with the fact and a right source {:.3} of {}, declined {:.3} of {} unanswerable",
            r.answered_right, r.answerable, r.declined_right, r.unanswerable
        );
    }
    println!(
        "  Korean answers to Korean questions {:.3}  sentences supported {:.3}  time to first token p50 {:.0} ms p95 {:.0} ms",
        summary.korean_answers,
        summary.supported_sentences,
        summary.time_to_first_token_ms.p50,
        summary.time_to_first_token_ms.p95
    );
    Ok(())
}
