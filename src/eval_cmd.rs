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
    /// A SQuAD-format JSON file (SQuAD 1.1/2.0, KorQuAD 1.0), or a TOML
    /// question set about a folder (see tests/fixtures/corpus-qa.toml),
    /// asked with --docs.
    pub dataset: PathBuf,
    /// The folder a TOML question set is about (indexed first, new and
    /// changed files only).
    #[arg(long, value_name = "DIR")]
    pub docs: Option<PathBuf>,
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
    /// What the model wrote, when docent declined it afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    declined_text: Option<String>,
    /// The model's first answer, when it only repeated the question and
    /// was asked again.
    #[serde(skip_serializing_if = "Option::is_none")]
    asked_again: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<Vec<SourceRecord<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<StopReason>,
    /// The model's probability that its sources answer the question.
    #[serde(skip_serializing_if = "Option::is_none")]
    answerable: Option<f32>,
    /// The model's probability that its sources state the answer it wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed: Option<f32>,
    /// Why the answer was declined.
    #[serde(skip_serializing_if = "Option::is_none")]
    abstention: Option<docent_rag::Abstention>,
    /// Cosine similarity of the closest chunk to the question: what the
    /// retrieval gate (`--min-score`) compares.
    #[serde(skip_serializing_if = "Option::is_none")]
    closest: Option<f32>,
    /// How sure the model was of the tokens it wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<docent_rag::trace::Confidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exact_match: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generate_ms: Option<f64>,
    /// The answer contains a gold answer (answerable questions).
    #[serde(skip_serializing_if = "Option::is_none")]
    correct: Option<bool>,
    /// The language the answer is written in (`any` for a bare name or
    /// number).
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_first_token_ms: Option<f64>,
    /// Each sentence's support by the sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    support: Option<Vec<docent_rag::SentenceSupport>>,
}

#[derive(Serialize, Default)]
struct AnswerSummary {
    model: String,
    metric: String,
    k: usize,
    min_score: f32,
    max_tokens: usize,
    answerable: usize,
    /// Share of answerable questions whose answer contains a gold answer
    /// after the set's normalisation.
    accuracy: f64,
    /// Exact match and F1 of the direct answer: the answer's first
    /// sentence, citation marks removed (the prompt asks for the answer
    /// first, then support).
    exact_match: f64,
    f1: f64,
    /// F1 of the whole answer text.
    f1_whole: f64,
    /// Share of answers to Korean questions written in Korean (or a bare
    /// name or number, the same in any language).
    korean_answers: Option<f64>,
    /// Share of answer sentences the grounding check supports.
    supported_sentences: f64,
    /// Of the sentences of answers to answerable questions, the share the
    /// check flags as unsupported among those that contain a gold answer,
    /// and among those that do not.
    flagged_with_gold: f64,
    flagged_without_gold: f64,
    /// Share of answerable questions docent declined.
    wrongly_declined: f64,
    impossible: usize,
    /// Share of impossible questions docent declined.
    correctly_declined: f64,
    generate_ms_p50: f64,
    time_to_first_token_ms_p50: f64,
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
    if args.dataset.extension().is_some_and(|e| e == "toml") {
        return crate::eval_qa::run(&args, &args.dataset);
    }
    anyhow::ensure!(
        args.docs.is_none(),
        "--docs is for TOML question sets; a SQuAD-format set brings its own paragraphs"
    );
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
    let (mut correct_sum, mut f1_whole_sum) = (0usize, 0.0);
    let (mut korean_questions, mut korean_answers) = (0usize, 0usize);
    let mut ttft_ms = Vec::new();
    // Sentences: (all, supported); with gold (all, flagged); without.
    let (mut sentences, mut supported) = (0usize, 0usize);
    let (mut with_gold, mut flagged_with) = (0usize, 0usize);
    let (mut without_gold, mut flagged_without) = (0usize, 0usize);
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
                    sentence_weight: args.answer.rank.sentence_weight,
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
            declined_text: None,
            asked_again: None,
            sources: None,
            prompt: None,
            stop: None,
            answerable: None,
            confirmed: None,
            abstention: None,
            closest: None,
            confidence: None,
            exact_match: None,
            f1: None,
            generate_ms: None,
            correct: None,
            language: None,
            time_to_first_token_ms: None,
            support: None,
        };
        let mut first_token = None;
        let answer = if args.generate {
            let started = std::time::Instant::now();
            Some(engine.answer(&q.text, &[], &answer_cfg, &mut |e| {
                if let docent_rag::Event::Text(_) = e {
                    first_token.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1e3);
                }
                ControlFlow::Continue(())
            })?)
        } else {
            None
        };
        if let Some(a) = &answer {
            let ms = a.trace.timings.total_ms;
            gen_ms.push(ms);
            let declined = a.abstained.is_some();
            let language = answer_language(&a.text);
            if docent_generate::prompt::question_language(&q.text) == "Korean" {
                korean_questions += 1;
                korean_answers += matches!(language, "Korean" | "any") as usize;
            }
            record.language = Some(language);
            if let Some(ms) = first_token {
                ttft_ms.push(ms);
                record.time_to_first_token_ms = Some(ms);
            }
            sentences += a.support.len();
            supported += a.support.iter().filter(|s| s.supported).count();
            if !q.impossible {
                for s in &a.support {
                    if metric.contains(&without_citations(&s.text), &q.answers) {
                        with_gold += 1;
                        flagged_with += !s.supported as usize;
                    } else {
                        without_gold += 1;
                        flagged_without += !s.supported as usize;
                    }
                }
            }
            record.support = Some(a.support.clone());
            if q.impossible {
                ans.impossible += 1;
                right_declines += declined as usize;
            } else {
                ans.answerable += 1;
                wrong_declines += declined as usize;
                let text = without_citations(&a.text);
                let (em, f1) = if declined {
                    (0.0, 0.0)
                } else {
                    metric.score(direct_answer(&text), &q.answers)
                };
                let correct = !declined && metric.contains(&text, &q.answers);
                if !declined {
                    f1_whole_sum += metric.score(&text, &q.answers).1;
                }
                correct_sum += correct as usize;
                record.correct = Some(correct);
                em_sum += em;
                f1_sum += f1;
                record.exact_match = Some(em);
                record.f1 = Some(f1);
            }
            record.answer = Some(a.text.clone());
            record.declined = Some(declined);
            record.declined_text = a.trace.declined_text.clone();
            record.asked_again = a.trace.asked_again.clone();
            record.sources = Some(a.citations.iter().map(source_record).collect());
            record.prompt = a.prompt.clone();
            record.stop = a.stop;
            record.answerable = a.trace.answerable;
            record.confirmed = a.trace.confirmed;
            record.abstention = a.abstained.clone();
            record.confidence = a.trace.confidence;
            record.closest = a
                .trace
                .candidates
                .iter()
                .filter_map(|c| c.dense)
                .chain(a.citations.iter().map(|c| c.similarity))
                .reduce(f32::max);
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
            accuracy: div(correct_sum as f64, ans.answerable),
            exact_match: div(em_sum, ans.answerable),
            f1: div(f1_sum, ans.answerable),
            f1_whole: div(f1_whole_sum, ans.answerable),
            korean_answers: (korean_questions > 0)
                .then(|| div(korean_answers as f64, korean_questions)),
            time_to_first_token_ms_p50: Percentiles::of(ttft_ms).p50,
            supported_sentences: div(supported as f64, sentences),
            flagged_with_gold: div(flagged_with as f64, with_gold),
            flagged_without_gold: div(flagged_without as f64, without_gold),
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
            "answers ({}, {} metric, k={}, min-score {:.2})",
            a.model, a.metric, a.k, a.min_score
        );
        println!(
            "  accuracy {:.3}  direct answer EM {:.3} F1 {:.3}  whole answer F1 {:.3}{}",
            a.accuracy,
            a.exact_match,
            a.f1,
            a.f1_whole,
            a.korean_answers
                .map(|k| format!("  Korean answers to Korean questions {k:.3}"))
                .unwrap_or_default()
        );
        println!(
            "  wrongly declined {:.3} of {} answerable  correctly declined {:.3} of {} impossible",
            a.wrongly_declined, a.answerable, a.correctly_declined, a.impossible
        );
        println!(
            "  sentences supported {:.3}  flagged unsupported: {:.3} of those with a gold answer, {:.3} of those without",
            a.supported_sentences, a.flagged_with_gold, a.flagged_without_gold
        );
        println!(
            "  time to first token p50 {:.0} ms  total p50 {:.0} ms",
            a.time_to_first_token_ms_p50, a.generate_ms_p50
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

/// The answer without its citation marks (`[1]`, `[1, 2]`, `[1][2]`).
fn without_citations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        match after.find(']') {
            Some(close)
                if after[1..close]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
                    && close > 1 =>
            {
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The language an answer is written in; `any` for an answer without
/// Hangul that is one or two words (a name, a number, an acronym: "SBS",
/// "55.4%") or a list of such ("FAISS, Chroma, pgvector, Qdrant"), which
/// reads the same in any language. Shared by both evaluations.
pub(crate) fn answer_language(answer: &str) -> &'static str {
    let text = without_citations(answer);
    let language = docent_generate::prompt::question_language(&text);
    if language == "Korean" {
        return language;
    }
    let text = text.trim().trim_end_matches('.');
    let names = text.split([',', ';']).all(|item| {
        let item = item.trim();
        let item = ["and ", "or "]
            .iter()
            .find_map(|w| item.strip_prefix(w))
            .unwrap_or(item);
        (1..=2).contains(&item.split_whitespace().count())
    });
    if names {
        "any"
    } else {
        language
    }
}

/// The direct answer: the first sentence (or line) of the answer.
fn direct_answer(text: &str) -> &str {
    let text = text.trim();
    let line = text.lines().next().unwrap_or("");
    let mut end = line.len();
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '。') {
            match chars.peek() {
                None => break,
                Some((_, n)) if n.is_whitespace() => {
                    end = i + c.len_utf8();
                    break;
                }
                _ => {}
            }
        }
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_removed_and_the_first_sentence_is_the_direct_answer() {
        let t = without_citations("Denver Broncos [1]. They beat Carolina [1, 2][3]. See [note]");
        assert_eq!(t, "Denver Broncos . They beat Carolina . See [note]");
        assert_eq!(direct_answer(&t), "Denver Broncos .");
        assert_eq!(
            direct_answer("3.5 million people\nmore"),
            "3.5 million people"
        );
        assert_eq!(direct_answer("서울입니다. 수도입니다."), "서울입니다.");
    }

    #[test]
    fn names_and_lists_of_names_read_in_any_language_and_sentences_do_not() {
        assert_eq!(answer_language("SBS [1]"), "any");
        assert_eq!(answer_language("55.4% [2]"), "any");
        assert_eq!(
            answer_language("FAISS, Chroma, pgvector, Qdrant [1]"),
            "any"
        );
        assert_eq!(
            answer_language("Forster I, Forster II, and Forster III [1]"),
            "any"
        );
        assert_eq!(answer_language("양자화는 가중치를 줄입니다. [1]"), "Korean");
        assert_eq!(
            answer_language("The documents do not contain the answer to this question."),
            "English"
        );
        assert_eq!(
            answer_language("FAISS, Chroma and pgvector are supported as vector stores [1]"),
            "English"
        );
    }
}
