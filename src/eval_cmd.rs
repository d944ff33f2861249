//! `docent eval DATASET.json`: retrieval and answer quality on a SQuAD-format
//! set, measured the way the set's own scorer measures it. Answers come
//! from the same engine, with the same settings, as `docent ask`'s.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use docent_eval::{dedup_ranked, rank_of, shuffle, Dataset, Percentiles, RetrievalScores};
use docent_rag::indexer::{build_index, load_encoder_for};
use docent_rag::{Citation, Engine, IndexConfig, RetrieveConfig, StopReason};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::flags::{AnswerFlags, EncoderFlags, Mode};
use crate::index_cmd::{print_report, Progress};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A SQuAD-format JSON file (SQuAD 1.1/2.0, KorQuAD 1.0).
    pub dataset: PathBuf,
    /// Where the dataset's paragraphs and their index are kept between runs
    /// (default: .docent-eval/NAME-HASH, reused while the file and the
    /// settings are the same).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Only the first N questions.
    #[arg(long, conflicts_with = "sample")]
    pub limit: Option<usize>,
    /// A random sample of N questions (see --sample-seed).
    #[arg(long)]
    pub sample: Option<usize>,
    /// Which sample --sample takes (`--seed` is the sampler's, as in `ask`).
    #[arg(long, default_value_t = 1)]
    pub sample_seed: u64,
    /// Retrieval modes to measure (--generate answers with the hybrid one,
    /// or the first listed).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "dense,lexical,hybrid"
    )]
    pub mode: Vec<Mode>,
    #[command(flatten)]
    pub encoder: EncoderFlags,
    /// Also answer each question, as `docent ask` would, and score the
    /// answers (exact match and F1, declines).
    #[arg(long)]
    pub generate: bool,
    #[command(flatten)]
    pub answer: AnswerFlags,
    /// Write one JSON line per question (question, gold, retrieved
    /// paragraphs with scores, and with --generate the answer, its sources
    /// and prompt) to FILE.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Retrieved {
    paragraph: usize,
    score: f32,
}

#[derive(Serialize)]
struct SourceRecord<'a> {
    n: usize,
    path: &'a str,
    line: u32,
    score: f32,
    similarity: f32,
}

#[derive(Serialize)]
struct QuestionRecord<'a> {
    id: &'a str,
    question: &'a str,
    gold_paragraph: usize,
    gold_answers: &'a [String],
    impossible: bool,
    /// Rank of the gold paragraph in each mode.
    rank: BTreeMap<String, Option<usize>>,
    /// The ten best paragraphs in the answering mode.
    retrieved: Vec<Retrieved>,
    retrieval_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    declined: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<Vec<SourceRecord<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<StopReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exact_match: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generate_ms: Option<f64>,
}

#[derive(Serialize, Default)]
struct AnswerSummary {
    model: String,
    metric: String,
    k: usize,
    min_score: f32,
    max_tokens: usize,
    answerable: usize,
    exact_match: f64,
    f1: f64,
    /// Share of answerable questions docent declined.
    wrongly_declined: f64,
    impossible: usize,
    /// Share of impossible questions docent declined.
    correctly_declined: f64,
    generate_ms_p50: f64,
}

#[derive(Serialize)]
struct Summary {
    dataset: String,
    paragraphs: usize,
    chunks: usize,
    questions: usize,
    encoder: String,
    retrieval: BTreeMap<String, RetrievalScores>,
    /// Latency of the whole retrieval (embedding, ranking, fetch) per mode.
    latency_ms: BTreeMap<String, Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answers: Option<AnswerSummary>,
}

/// Writes each paragraph as `NNNNN.txt` (title line, blank line, context)
/// into a fresh folder, then renames it into place.
fn write_docs(dataset: &Dataset, docs: &Path) -> Result<()> {
    if docs.is_dir() {
        return Ok(());
    }
    let tmp = docs.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for p in &dataset.paragraphs {
        let text = format!("{}\n\n{}\n", p.title, p.context);
        std::fs::write(tmp.join(format!("{:05}.txt", p.index)), text)?;
    }
    std::fs::rename(&tmp, docs)?;
    Ok(())
}

fn paragraph_of(path: &str) -> Option<usize> {
    Path::new(path).file_stem()?.to_str()?.parse().ok()
}

pub fn run(args: EvalArgs) -> Result<()> {
    let bytes = std::fs::read(&args.dataset)
        .with_context(|| format!("reading {}", args.dataset.display()))?;
    let dataset =
        Dataset::from_json(&bytes).with_context(|| format!("{}", args.dataset.display()))?;
    let stem = args
        .dataset
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("dataset")
        .to_string();
    let docs_cfg = IndexConfig::default();
    // Each encoder gets its own index of the set.
    let encoder_name = match args.encoder.name() {
        Some(n) => n.to_string(),
        None => docent_rag::models::encoder_spec(None)?.name,
    };
    let key = {
        let mut h = Sha256::new();
        h.update(&bytes);
        h.update(format!("{:?}", docs_cfg.chunking).as_bytes());
        h.update(encoder_name.as_bytes());
        hex::encode(&h.finalize()[..6])
    };
    let workdir = args
        .workdir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".docent-eval").join(format!("{stem}-{key}")));
    let docs = workdir.join("docs");
    write_docs(&dataset, &docs)?;
    let index_dir = workdir.join("index");
    let docs_cfg = IndexConfig::for_folder(&docs);
    let encoder = load_encoder_for(&index_dir, Some(&encoder_name), docs_cfg.batch_size)?;
    let mut progress = Progress::new(args.json);
    let report = build_index(&index_dir, &docs_cfg, &encoder, &mut |e| progress.on(e))?;
    if !args.json && report.embedded_files > 0 {
        print_report(&index_dir, &report);
    }
    let engine = Engine::with_encoder(&index_dir, Arc::new(encoder), args.answer.generator())?;
    let index = engine.index()?;

    let mut questions: Vec<&docent_eval::Question> = dataset.questions.iter().collect();
    if let Some(n) = args.sample {
        shuffle(&mut questions, args.sample_seed);
        questions.truncate(n);
    } else if let Some(n) = args.limit {
        questions.truncate(n);
    }
    anyhow::ensure!(!questions.is_empty(), "no questions to run");

    let modes = {
        let mut m = args.mode.clone();
        m.dedup();
        anyhow::ensure!(!m.is_empty(), "--mode needs at least one mode");
        m
    };
    let answer_mode = if modes.contains(&Mode::Hybrid) {
        Mode::Hybrid
    } else {
        modes[0]
    };
    // Exactly what `docent ask` runs with these flags.
    let answer_cfg = args.answer.config(answer_mode.into())?;
    answer_cfg.validate()?;
    if args.generate {
        engine.load_generator()?;
    }
    let metric = dataset.metric();
    let mut out = match &args.out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };

    let bar = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(questions.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} questions {eta}")
                .expect("valid template"),
        )
    };
    // Enough chunks to rank ten paragraphs even when paragraphs are split.
    let chunk_k = 40;
    let ef = index.meta().hnsw.ef_search.max(chunk_k);
    let name = |m: Mode| docent_rag::SearchMode::from(m).name().to_string();
    let mut scores: BTreeMap<String, RetrievalScores> = modes
        .iter()
        .map(|&m| (name(m), RetrievalScores::default()))
        .collect();
    let mut latencies: BTreeMap<String, Vec<f64>> =
        modes.iter().map(|&m| (name(m), Vec::new())).collect();
    let mut gen_ms = Vec::new();
    let mut ans = AnswerSummary {
        model: args.answer.model.clone(),
        metric: format!("{metric:?}").to_lowercase(),
        k: answer_cfg.retrieve.k,
        // The encoder's threshold for the set's script (the sets are in one
        // language each), unless one was given.
        min_score: answer_cfg.min_score.unwrap_or_else(|| {
            let sample = questions.first().map_or("", |q| q.text.as_str());
            index.meta().encoder.retrieval.min_score(sample)
        }),
        max_tokens: answer_cfg.max_tokens,
        ..AnswerSummary::default()
    };
    let (mut em_sum, mut f1_sum, mut wrong_declines, mut right_declines) =
        (0.0, 0.0, 0usize, 0usize);
    for q in &questions {
        let mut rank_by_mode = BTreeMap::new();
        let mut answer_hits = Vec::new();
        for &mode in &modes {
            let r = engine.retrieve(
                &q.text,
                &RetrieveConfig {
                    k: chunk_k,
                    mode: mode.into(),
                    ef: Some(ef),
                },
            )?;
            let ms = r.spans.iter().map(|s| s.duration_ms).sum();
            latencies.get_mut(&name(mode)).expect("mode").push(ms);
            let ranked = dedup_ranked(
                r.hits
                    .iter()
                    .filter_map(|h| paragraph_of(&h.chunk.chunk.path)),
            );
            let rank = rank_of(q.paragraph, &ranked);
            scores.get_mut(&name(mode)).expect("mode").add(rank);
            rank_by_mode.insert(name(mode), rank);
            if mode == answer_mode {
                answer_hits = r.hits;
            }
        }
        let retrieval_ms = latencies[&name(answer_mode)].last().copied().unwrap_or(0.0);
        let ranked_hits: Vec<(usize, f32)> = answer_hits
            .iter()
            .filter_map(|h| paragraph_of(&h.chunk.chunk.path).map(|p| (p, h.score)))
            .collect();
        let retrieved = dedup_ranked(ranked_hits.iter().map(|x| x.0))
            .into_iter()
            .take(10)
            .map(|p| Retrieved {
                paragraph: p,
                score: ranked_hits
                    .iter()
                    .find(|x| x.0 == p)
                    .map(|x| x.1)
                    .unwrap_or(0.0),
            })
            .collect();
        let mut record = QuestionRecord {
            id: &q.id,
            question: &q.text,
            gold_paragraph: q.paragraph,
            gold_answers: &q.answers,
            impossible: q.impossible,
            rank: rank_by_mode,
            retrieved,
            retrieval_ms,
            answer: None,
            declined: None,
            sources: None,
            prompt: None,
            stop: None,
            exact_match: None,
            f1: None,
            generate_ms: None,
        };
        let answer = if args.generate {
            Some(engine.answer(
                &q.text,
                &[],
                &answer_cfg,
                &mut |_| ControlFlow::Continue(()),
            )?)
        } else {
            None
        };
        if let Some(a) = &answer {
            let ms = a.trace.timings.total_ms;
            gen_ms.push(ms);
            let declined = a.abstained.is_some();
            if q.impossible {
                ans.impossible += 1;
                right_declines += declined as usize;
            } else {
                ans.answerable += 1;
                wrong_declines += declined as usize;
                let (em, f1) = if declined {
                    (0.0, 0.0)
                } else {
                    metric.score(&a.text, &q.answers)
                };
                em_sum += em;
                f1_sum += f1;
                record.exact_match = Some(em);
                record.f1 = Some(f1);
            }
            record.answer = Some(a.text.clone());
            record.declined = Some(declined);
            record.sources = Some(a.citations.iter().map(source_record).collect());
            record.prompt = a.prompt.clone();
            record.stop = a.stop;
            record.generate_ms = Some(ms);
        }
        if let Some(f) = out.as_mut() {
            writeln!(f, "{}", serde_json::to_string(&record)?)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(f) = out.as_mut() {
        f.flush()?;
    }
    let answers = args.generate.then(|| {
        let div = |x: f64, n: usize| if n > 0 { x / n as f64 } else { 0.0 };
        AnswerSummary {
            model: engine.generator_model().map(|m| m.id).unwrap_or_default(),
            exact_match: div(em_sum, ans.answerable),
            f1: div(f1_sum, ans.answerable),
            wrongly_declined: div(wrong_declines as f64, ans.answerable),
            correctly_declined: div(right_declines as f64, ans.impossible),
            generate_ms_p50: Percentiles::of(gen_ms).p50,
            ..ans
        }
    });
    let summary = Summary {
        dataset: args.dataset.display().to_string(),
        paragraphs: dataset.paragraphs.len(),
        chunks: index.len(),
        questions: questions.len(),
        encoder: engine.encoder().info().id.clone(),
        retrieval: scores,
        latency_ms: latencies
            .into_iter()
            .map(|(m, l)| (m, Percentiles::of(l)))
            .collect(),
        answers,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{}: {} paragraphs ({} chunks), {} questions, encoder {}",
        summary.dataset, summary.paragraphs, summary.chunks, summary.questions, summary.encoder
    );
    println!(
        "{:<8} {:>9} {:>9} {:>10} {:>7}   {:>8} {:>8} {:>8}",
        "mode", "recall@1", "recall@5", "recall@10", "MRR@10", "p50 ms", "p95 ms", "p99 ms"
    );
    for (mode, r) in &summary.retrieval {
        let l = &summary.latency_ms[mode];
        println!(
            "{:<8} {:>9.3} {:>9.3} {:>10.3} {:>7.3}   {:>8.1} {:>8.1} {:>8.1}",
            mode, r.recall_at_1, r.recall_at_5, r.recall_at_10, r.mrr_at_10, l.p50, l.p95, l.p99
        );
    }
    if let Some(a) = &summary.answers {
        println!(
            "answers ({}, {} metric, k={}, min-score {:.2})  EM {:.3}  F1 {:.3}  wrongly declined {:.3} of {}  correctly declined {:.3} of {} impossible  p50 {:.0} ms",
            a.model, a.metric, a.k, a.min_score, a.exact_match, a.f1, a.wrongly_declined, a.answerable,
            a.correctly_declined, a.impossible, a.generate_ms_p50
        );
    }
    Ok(())
}

fn source_record(c: &Citation) -> SourceRecord<'_> {
    SourceRecord {
        n: c.n,
        path: &c.path,
        line: c.line,
        score: c.score,
        similarity: c.similarity,
    }
}
