//! `docent eval DATASET.json`: retrieval and answer quality on a SQuAD-format
//! set, measured the way the set's own scorer measures it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use docent_eval::{dedup_ranked, percentile, rank_of, Dataset, RetrievalScores};
use docent_generate::{PromptTemplate, SamplerConfig, Source};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ask_cmd::{self, Answerer, DEFAULT_GENERATOR, DEFAULT_MIN_SCORE};
use crate::index_cmd::{self, IndexArgs};
use crate::search_cmd::Mode;

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
    /// A random sample of N questions (see --seed).
    #[arg(long)]
    pub sample: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Retrieval modes to measure (--generate answers from the hybrid one,
    /// or the first listed).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "dense,lexical,hybrid"
    )]
    pub mode: Vec<Mode>,
    /// Also generate answers and score them (exact match and F1, declines).
    #[arg(long)]
    pub generate: bool,
    /// Language model for --generate.
    #[arg(long, default_value = DEFAULT_GENERATOR)]
    pub model: String,
    /// Chunks given to the model with --generate.
    #[arg(short, default_value_t = 3)]
    pub k: usize,
    #[arg(long, default_value_t = DEFAULT_MIN_SCORE)]
    pub min_score: f32,
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// Write one JSON line per question (question, gold, retrieved
    /// paragraphs with scores, answer, timings) to FILE.
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
struct QuestionRecord<'a> {
    id: &'a str,
    question: &'a str,
    gold_paragraph: usize,
    gold_answers: &'a [String],
    impossible: bool,
    /// Rank of the gold paragraph in each mode.
    rank: std::collections::BTreeMap<String, Option<usize>>,
    /// The ten best paragraphs in the answering mode.
    retrieved: Vec<Retrieved>,
    retrieval_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    declined: Option<bool>,
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
    retrieval: std::collections::BTreeMap<String, RetrievalScores>,
    /// Latency of the whole retrieval (embedding, ranking, fetch) per mode.
    latency_ms: std::collections::BTreeMap<String, Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answers: Option<AnswerSummary>,
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

/// A small deterministic generator for --sample.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
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
    let chunking = docent_core::ChunkConfig::default();
    let key = {
        let mut h = Sha256::new();
        h.update(&bytes);
        h.update(format!("{chunking:?}").as_bytes());
        hex::encode(&h.finalize()[..6])
    };
    let workdir = args
        .workdir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".docent-eval").join(format!("{stem}-{key}")));
    let docs = workdir.join("docs");
    write_docs(&dataset, &docs)?;
    let index_dir = workdir.join("index");
    let index_args = IndexArgs {
        chunk_tokens: chunking.max_tokens,
        overlap: chunking.overlap_tokens,
        ..IndexArgs::for_folder(&docs, None)
    };
    let encoder = crate::encoder::load(None, docent_embed::EncoderConfig::default())?;
    let report = index_cmd::build(&index_dir, &index_args, Some(&encoder), args.json)?;
    if !args.json && report.embedded_files > 0 {
        index_cmd::print_report(&index_dir, &report);
    }
    let index = docent_index::Index::open(&index_dir)?;
    index.check_encoder(encoder.info())?;
    let ef = index.meta().hnsw.ef_search;

    let mut questions: Vec<&docent_eval::Question> = dataset.questions.iter().collect();
    if let Some(n) = args.sample {
        shuffle(&mut questions, args.seed);
        questions.truncate(n);
    } else if let Some(n) = args.limit {
        questions.truncate(n);
    }
    anyhow::ensure!(!questions.is_empty(), "no questions to run");

    let mut answerer = if args.generate {
        Some(Answerer::load(&args.model, args.ctx, args.max_tokens)?)
    } else {
        None
    };
    let template = PromptTemplate::default();
    let sampler = SamplerConfig::default();
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
    let name = |m: Mode| format!("{m:?}").to_lowercase();
    let mut scores: std::collections::BTreeMap<String, RetrievalScores> = modes
        .iter()
        .map(|&m| (name(m), RetrievalScores::default()))
        .collect();
    let mut latencies: std::collections::BTreeMap<String, Vec<f64>> =
        modes.iter().map(|&m| (name(m), Vec::new())).collect();
    let mut gen_ms = Vec::new();
    let mut ans = AnswerSummary {
        model: args.model.clone(),
        metric: format!("{metric:?}").to_lowercase(),
        ..AnswerSummary::default()
    };
    let (mut em_sum, mut f1_sum, mut wrong_declines, mut right_declines) =
        (0.0, 0.0, 0usize, 0usize);
    for q in &questions {
        let t = Instant::now();
        let v = encoder
            .embed(&[q.text.as_str()])?
            .pop()
            .expect("one vector");
        let embed_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut rank_by_mode = std::collections::BTreeMap::new();
        let mut answer_hits = Vec::new();
        for &mode in &modes {
            let t = Instant::now();
            let hits = index.search_mode(&q.text, &v, chunk_k, ef.max(chunk_k), mode.into())?;
            let ms = embed_ms + t.elapsed().as_secs_f64() * 1e3;
            latencies.get_mut(&name(mode)).expect("mode").push(ms);
            let ranked = dedup_ranked(
                hits.iter()
                    .filter_map(|h| paragraph_of(&h.chunk.chunk.path)),
            );
            let rank = rank_of(q.paragraph, &ranked);
            scores.get_mut(&name(mode)).expect("mode").add(rank);
            rank_by_mode.insert(name(mode), rank);
            if mode == answer_mode {
                answer_hits = hits;
            }
        }
        let hits = answer_hits;
        let retrieval_ms = latencies[&name(answer_mode)].last().copied().unwrap_or(0.0);
        let ranked_hits: Vec<(usize, f32)> = hits
            .iter()
            .filter_map(|h| paragraph_of(&h.chunk.chunk.path).map(|p| (p, h.score)))
            .collect();
        let ranked = dedup_ranked(ranked_hits.iter().map(|x| x.0));
        let retrieved = ranked
            .iter()
            .take(10)
            .map(|&p| Retrieved {
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
            exact_match: None,
            f1: None,
            generate_ms: None,
        };
        if let Some(a) = answerer.as_mut() {
            let t = Instant::now();
            let sources: Vec<Source> = hits
                .iter()
                .filter(|h| h.similarity >= args.min_score)
                .take(args.k)
                .map(|h| Source {
                    label: ask_cmd::label(&h.chunk.chunk.path, &h.chunk.chunk.heading_path),
                    text: h.chunk.chunk.text.trim().to_string(),
                })
                .collect();
            let answer = if sources.is_empty() {
                ask_cmd::NO_ANSWER.to_string()
            } else {
                let prompt = a.prompt(&template, &q.text, &sources)?;
                a.generate(&prompt, &sampler, &mut |_| true)?
                    .text
                    .trim()
                    .to_string()
            };
            let ms = t.elapsed().as_secs_f64() * 1e3;
            gen_ms.push(ms);
            let declined = sources.is_empty() || ask_cmd::is_decline(&answer);
            if q.impossible {
                ans.impossible += 1;
                right_declines += declined as usize;
            } else {
                ans.answerable += 1;
                wrong_declines += declined as usize;
                let (em, f1) = if declined {
                    (0.0, 0.0)
                } else {
                    metric.score(&answer, &q.answers)
                };
                em_sum += em;
                f1_sum += f1;
                record.exact_match = Some(em);
                record.f1 = Some(f1);
            }
            record.answer = Some(answer);
            record.declined = Some(declined);
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
    gen_ms.sort_by(f64::total_cmp);
    let answers = answerer.map(|a| {
        let div = |x: f64, n: usize| if n > 0 { x / n as f64 } else { 0.0 };
        AnswerSummary {
            model: a.name.clone(),
            exact_match: div(em_sum, ans.answerable),
            f1: div(f1_sum, ans.answerable),
            wrongly_declined: div(wrong_declines as f64, ans.answerable),
            correctly_declined: div(right_declines as f64, ans.impossible),
            generate_ms_p50: percentile(&gen_ms, 50.0),
            ..ans
        }
    });
    let summary = Summary {
        dataset: args.dataset.display().to_string(),
        paragraphs: dataset.paragraphs.len(),
        chunks: index.len(),
        questions: questions.len(),
        encoder: encoder.info().id.clone(),
        retrieval: scores,
        latency_ms: latencies
            .into_iter()
            .map(|(m, mut l)| {
                l.sort_by(f64::total_cmp);
                let lat = Latency {
                    p50: percentile(&l, 50.0),
                    p95: percentile(&l, 95.0),
                    p99: percentile(&l, 99.0),
                    max: l.last().copied().unwrap_or(0.0),
                };
                (m, lat)
            })
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
            "answers ({}, {} metric)  EM {:.3}  F1 {:.3}  wrongly declined {:.3} of {}  correctly declined {:.3} of {} impossible  p50 {:.0} ms",
            a.model, a.metric, a.exact_match, a.f1, a.wrongly_declined, a.answerable,
            a.correctly_declined, a.impossible, a.generate_ms_p50
        );
    }
    Ok(())
}
