//! `docent bench retrieval`: the retrieval latency harness.
//!
//! For the index at `--index`, or for synthetic corpora of given sizes built
//! around that index's real embeddings, it measures each stage of `search`
//! (query embedding, HNSW search, chunk fetch) and the whole path, recall@k
//! against exact search over an `ef` sweep, queries per second on one and on
//! all threads, and the build time, load time, size on disk and peak memory
//! of the index. `--plot` draws recall against latency (`plot.rs`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use docent_core::{Chunk, ChunkConfig};
use docent_eval::{Percentiles, Rng};
use docent_index::{FileRecord, Index, IndexMeta, IndexWriter, FORMAT_VERSION};
use docent_rag::retrieve::rank;
use docent_rag::trace::Spans;
use docent_rag::{RetrieveConfig, SearchMode};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct RetrievalArgs {
    /// Build synthetic corpora of these sizes (e.g. 10000,100000,1000000)
    /// around the real embeddings of the index at --index, instead of
    /// measuring that index itself.
    #[arg(long, value_delimiter = ',')]
    pub synthetic: Vec<usize>,
    /// Number of queries.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// ef_search values to sweep.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    pub ef: Vec<usize>,
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// Where synthetic indexes are built (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Search the synthetic index an earlier run left in --workdir, when it
    /// was built with the same size, seed, base index and --recombine,
    /// instead of building it again (no build time is then reported).
    #[arg(long, requires = "workdir")]
    pub reuse: bool,
    /// Also write each corpus's vectors and queries (raw little-endian f32)
    /// and settings to DIR, for benches/retrieval_peer.py.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// Draw recall against latency to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Then run hnswlib and faiss on the same vectors and queries
    /// (benches/retrieval_peer.py, in its own venv) and print their figures
    /// beside docent's.
    #[arg(long)]
    pub peers: bool,
    /// Give synthetic chunks text recombined from these SQuAD-format sets
    /// (each chunk 2 to 5 sentences drawn at random from all their
    /// paragraphs) and search their questions lexically, instead of copies
    /// of the index's own chunks and their first sentences. Without
    /// --synthetic, only the questions are used.
    #[arg(long, value_delimiter = ',', value_name = "FILE.json")]
    pub recombine: Vec<PathBuf>,
    /// Also time lexical search within these postings budgets (the
    /// default is docent_index::POSTINGS_BUDGET), each against every term.
    #[arg(long, value_delimiter = ',', value_name = "POSTINGS")]
    pub budgets: Vec<u64>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

use super::{dir_size, peak_rss_mb, progress};

type Stage = Percentiles;

fn stage(v: Vec<f64>) -> Stage {
    Percentiles::of(v)
}

#[derive(Serialize, Clone)]
pub(super) struct EfRow {
    pub(super) ef: usize,
    pub(super) recall: f64,
    pub(super) hnsw_ms: Stage,
    pub(super) qps_1_thread: f64,
    pub(super) qps_all_threads: f64,
}

/// Lexical search within one postings budget.
#[derive(Serialize, Clone)]
pub(super) struct BudgetRow {
    pub(super) budget: u64,
    pub(super) lexical_ms: Stage,
    /// The share of the search with every term's top k that it finds.
    pub(super) agreement: f64,
}

#[derive(Serialize, Clone)]
pub(super) struct CorpusReport {
    pub(super) name: String,
    pub(super) vectors: usize,
    pub(super) dim: usize,
    pub(super) m: usize,
    pub(super) ef_construction: usize,
    pub(super) build_s: Option<f64>,
    /// The part of `build_s` spent building and writing the graph (the
    /// rest is the store and its lexical table).
    pub(super) graph_build_s: Option<f64>,
    pub(super) load_ms: f64,
    /// The first dense search after loading, which pays for what the
    /// load leaves cold; the timed passes come after one untimed pass.
    pub(super) first_query_ms: f64,
    pub(super) disk_mb: f64,
    pub(super) peak_rss_mb: f64,
    /// Bytes on disk per vector (store, lexical table and graph).
    pub(super) disk_bytes_per_vector: f64,
    /// Resident bytes the opened index adds per vector (synthetic corpora,
    /// measured after freed memory is returned to the system).
    pub(super) memory_bytes_per_vector: Option<f64>,
    /// Stages at the index's default ef.
    pub(super) default_ef: usize,
    pub(super) embed_ms: Stage,
    /// Dense ranking: the HNSW graph.
    pub(super) hnsw_ms: Stage,
    /// Lexical ranking: BM25 over FTS5.
    pub(super) lexical_ms: Stage,
    /// Lexical search with every term that counts, whatever its postings.
    pub(super) lexical_unbounded_ms: Stage,
    /// The share of that search's top k that the bounded search also finds.
    pub(super) lexical_agreement: f64,
    /// Hybrid ranking: both over a wider pool, then fusion.
    pub(super) hybrid_ms: Stage,
    pub(super) fetch_ms: Stage,
    /// The whole dense `search` path: embed, HNSW, fetch.
    pub(super) total_ms: Stage,
    /// The whole hybrid `search` path: embed, hybrid ranking, fetch.
    pub(super) total_hybrid_ms: Stage,
    pub(super) sweep: Vec<EfRow>,
    /// Lexical search within each budget of --budgets.
    pub(super) budget_sweep: Vec<BudgetRow>,
}

#[derive(Serialize)]
pub(super) struct Report {
    pub(super) k: usize,
    pub(super) queries: usize,
    pub(super) threads: usize,
    pub(super) encoder: String,
    pub(super) corpora: Vec<CorpusReport>,
}

/// Sentences and questions of SQuAD-format sets, for text that is not
/// the same few passages over and over.
struct Recombiner {
    sentences: Vec<String>,
    questions: Vec<String>,
}

impl Recombiner {
    fn load(files: &[PathBuf]) -> Result<Recombiner> {
        let (mut sentences, mut questions) = (Vec::new(), Vec::new());
        for f in files {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let set = docent_eval::Dataset::from_json(&bytes)
                .with_context(|| format!("reading {}", f.display()))?;
            for p in &set.paragraphs {
                sentences.extend(split_sentences(&p.context));
            }
            questions.extend(set.questions.into_iter().map(|q| q.text));
        }
        anyhow::ensure!(
            !sentences.is_empty() && !questions.is_empty(),
            "--recombine found no paragraphs or questions"
        );
        Ok(Recombiner {
            sentences,
            questions,
        })
    }

    /// A chunk of 2 to 5 sentences drawn from anywhere.
    fn chunk(&self, rng: &mut Rng) -> String {
        let n = 2 + rng.below(4);
        let mut text = String::new();
        for _ in 0..n {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&self.sentences[rng.below(self.sentences.len())]);
        }
        text
    }
}

/// Sentences end at `.`, `?` or `!` before white space (Korean sentences
/// end in `다.` and the like, so the same rule holds).
fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at_end = matches!(c, '.' | '?' | '!')
            && chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        if at_end {
            let s = text[start..i + c.len_utf8()].trim();
            if s.chars().count() >= 8 {
                out.push(s.to_string());
            }
            start = i + c.len_utf8();
        }
    }
    let rest = text[start..].trim();
    if rest.chars().count() >= 8 {
        out.push(rest.to_string());
    }
    out
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// A vector near a random real embedding: the embedding plus isotropic
/// noise of relative size 0.6 to 1.4 (cosine 0.58 to 0.86 to its centre, the
/// range of real neighbours' similarities), so the corpus is clustered as
/// real embeddings are, not uniform, and neighbouring clusters overlap.
fn sample(base: &[Vec<f32>], rng: &mut Rng) -> (usize, Vec<f32>) {
    let at = (rng.next_u64() % base.len() as u64) as usize;
    let c = &base[at];
    let sigma = 0.6 + 0.8 * rng.uniform() as f32;
    let scale = sigma / (c.len() as f32).sqrt();
    let mut v: Vec<f32> = c.iter().map(|x| x + scale * rng.normal()).collect();
    normalize(&mut v);
    (at, v)
}

/// Exact top-k by scanning all vectors (the recall reference), in parallel
/// over queries. Vectors are unit length.
fn exact(vectors: &[Vec<f32>], queries: &[Vec<f32>], k: usize) -> Vec<Vec<u64>> {
    queries
        .par_iter()
        .map(|q| {
            let mut best: Vec<(f32, u64)> = Vec::with_capacity(k + 1);
            for (i, v) in vectors.iter().enumerate() {
                let s: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
                if best.len() < k || s > best[best.len() - 1].0 {
                    let at = best.partition_point(|x| x.0 >= s);
                    best.insert(at, (s, i as u64));
                    best.truncate(k);
                }
            }
            best.into_iter().map(|x| x.1).collect()
        })
        .collect()
}

/// Builds an index of `vectors` (ids in order) at `dir`.
fn build_synthetic(
    dir: &Path,
    base: &Index,
    vectors: &[Vec<f32>],
    texts: &[std::borrow::Cow<'_, str>],
    quiet: bool,
) -> Result<(f64, f64)> {
    let t = Instant::now();
    let meta = IndexMeta {
        format: FORMAT_VERSION,
        encoder: base.meta().encoder.clone(),
        chunking: ChunkConfig::default(),
        chunker: docent_core::CHUNKER_VERSION,
        hnsw: base.meta().hnsw,
        root: dir.display().to_string(),
        docent_version: env!("CARGO_PKG_VERSION").into(),
        language_direction: base.meta().language_direction.clone(),
    };
    let mut w = IndexWriter::create(dir, meta)?;
    let bar = progress(vectors.len() as u64, "writing vectors", quiet);
    for (f, group) in vectors.chunks(1000).enumerate() {
        let path = format!("synthetic/{f:05}.txt");
        let chunks: Vec<Chunk> = (0..group.len())
            .map(|i| {
                let text = texts[f * 1000 + i].to_string();
                Chunk {
                    path: path.clone(),
                    ordinal: i as u32,
                    byte_span: 0..text.len(),
                    char_span: 0..text.len(),
                    text,
                    line: 1,
                    page: None,
                    heading_path: Vec::new(),
                    tokens: 4,
                }
            })
            .collect();
        let record = FileRecord {
            path,
            sha256: format!("{f:064x}"),
            size: 0,
            kind: "text".into(),
            chunks: group.len() as u32,
        };
        w.add_file(&record, &chunks, group)?;
        bar.inc(group.len() as u64);
    }
    bar.set_message("building the HNSW graph");
    let stats = w.commit()?;
    bar.finish_and_clear();
    Ok((t.elapsed().as_secs_f64(), stats.graph_build_ms / 1e3))
}

#[allow(clippy::too_many_arguments)]
fn measure(
    name: String,
    index: &Index,
    vectors: &[Vec<f32>],
    queries: &[Vec<f32>],
    query_texts: &[String],
    embed_ms: &[f64],
    build_s: Option<(f64, f64)>,
    load_ms: f64,
    loaded_mb: Option<f64>,
    args: &RetrievalArgs,
) -> Result<CorpusReport> {
    let k = args.k;
    let truth = exact(vectors, queries, k);
    let default_ef = index.meta().hnsw.ef_search;
    let mut efs = args.ef.clone();
    if !efs.contains(&default_ef) {
        efs.push(default_ef);
    }
    efs.sort_unstable();
    // One untimed pass first, so that the sweep's first ef does not carry
    // the cost of the first searches after loading (reported apart).
    let t = Instant::now();
    if let Some(q) = queries.first() {
        index.dense(q, k, default_ef)?;
    }
    let first_query_ms = t.elapsed().as_secs_f64() * 1e3;
    for q in queries {
        std::hint::black_box(index.dense(q, k, default_ef)?);
    }
    let mut sweep = Vec::new();
    let mut at_default = (Vec::new(), Vec::new());
    for &ef in &efs {
        let mut lat = Vec::with_capacity(queries.len());
        let mut hits = 0usize;
        let t_all = Instant::now();
        let mut found_ids = Vec::new();
        for (q, want) in queries.iter().zip(&truth) {
            let t = Instant::now();
            let found = index.dense(q, k, ef)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            hits += found.iter().filter(|(id, _)| want.contains(id)).count();
            found_ids.push(found.iter().map(|x| x.0).collect::<Vec<_>>());
        }
        let qps1 = queries.len() as f64 / t_all.elapsed().as_secs_f64();
        let t = Instant::now();
        let par = index.dense_parallel(queries, k, ef)?;
        let qps_all = queries.len() as f64 / t.elapsed().as_secs_f64();
        std::hint::black_box(par);
        if ef == default_ef {
            at_default = (lat.clone(), found_ids);
        }
        sweep.push(EfRow {
            ef,
            recall: hits as f64 / (queries.len() * k) as f64,
            hnsw_ms: stage(lat),
            qps_1_thread: qps1,
            qps_all_threads: qps_all,
        });
    }
    let (hnsw_lat, ids) = at_default;
    let mut fetch = Vec::with_capacity(ids.len());
    for list in &ids {
        let t = Instant::now();
        std::hint::black_box(index.chunks(list)?);
        fetch.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (mut lexical, mut hybrid) = (Vec::new(), Vec::new());
    let (mut unbounded, mut kept, mut wanted) = (Vec::new(), 0usize, 0usize);
    let mut budgets: Vec<(Vec<f64>, usize)> = vec![(Vec::new(), 0); args.budgets.len()];
    let found_share = |found: &[(u64, f32)], all: &[(u64, f32)]| {
        all.iter()
            .filter(|(id, _)| found.iter().any(|f| f.0 == *id))
            .count()
    };
    for (q, text) in queries.iter().zip(query_texts.iter().cycle()) {
        let t = Instant::now();
        let found = index.lexical(text, k)?;
        lexical.push(t.elapsed().as_secs_f64() * 1e3);
        // Every term that counts, to see what the postings budget costs.
        let t = Instant::now();
        let all = index.lexical_within(text, k, u64::MAX)?;
        unbounded.push(t.elapsed().as_secs_f64() * 1e3);
        wanted += all.len();
        kept += found_share(&found, &all);
        for (&b, (lat, kept)) in args.budgets.iter().zip(budgets.iter_mut()) {
            let t = Instant::now();
            let within = index.lexical_within(text, k, b)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            *kept += found_share(&within, &all);
        }
        let t = Instant::now();
        let cfg = RetrieveConfig {
            k,
            mode: SearchMode::Hybrid,
            ef: Some(default_ef),
            ..RetrieveConfig::default()
        };
        std::hint::black_box(rank(index, text, q, &cfg, &mut Spans::start())?);
        hybrid.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let embed = |i: usize| embed_ms[i % embed_ms.len()];
    let total: Vec<f64> = (0..queries.len())
        .map(|i| embed(i) + hnsw_lat[i] + fetch[i])
        .collect();
    let total_hybrid: Vec<f64> = (0..queries.len())
        .map(|i| embed(i) + hybrid[i] + fetch[i])
        .collect();
    let hnsw = index.meta().hnsw;
    Ok(CorpusReport {
        name,
        vectors: vectors.len(),
        dim: index.meta().encoder.dim,
        m: hnsw.m,
        ef_construction: hnsw.ef_construction,
        build_s: build_s.map(|b| b.0),
        graph_build_s: build_s.map(|b| b.1),
        load_ms,
        first_query_ms,
        disk_mb: dir_size(index.generation_dir()) as f64 / 1e6,
        peak_rss_mb: peak_rss_mb(),
        disk_bytes_per_vector: dir_size(index.generation_dir()) as f64
            / vectors.len().max(1) as f64,
        memory_bytes_per_vector: loaded_mb.map(|mb| mb * 1048576.0 / vectors.len().max(1) as f64),
        default_ef,
        embed_ms: stage(embed_ms.to_vec()),
        hnsw_ms: stage(hnsw_lat),
        lexical_ms: stage(lexical),
        lexical_unbounded_ms: stage(unbounded),
        lexical_agreement: kept as f64 / wanted.max(1) as f64,
        hybrid_ms: stage(hybrid),
        fetch_ms: stage(fetch),
        total_ms: stage(total),
        total_hybrid_ms: stage(total_hybrid),
        sweep,
        budget_sweep: args
            .budgets
            .iter()
            .zip(budgets)
            .map(|(&budget, (lat, kept))| BudgetRow {
                budget,
                lexical_ms: stage(lat),
                agreement: kept as f64 / wanted.max(1) as f64,
            })
            .collect(),
    })
}

fn write_f32(path: &Path, vs: &[Vec<f32>]) -> Result<()> {
    let bytes: Vec<u8> = vs.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub fn run(index_dir: &Path, args: RetrievalArgs) -> Result<()> {
    anyhow::ensure!(
        args.queries > 0 && args.k > 0,
        "--queries and -k must be at least 1"
    );
    // --peers without --export: the vectors go to a temporary folder.
    let peer_dir = tempfile::tempdir()?;
    let export_dir = args
        .export
        .clone()
        .or_else(|| args.peers.then(|| peer_dir.path().to_path_buf()));
    let t = Instant::now();
    let base = Index::open(index_dir).with_context(|| {
        format!(
            "bench needs an index at {} (its embeddings seed the synthetic corpora): \
             run `docent index DIR` first",
            index_dir.display()
        )
    })?;
    let base_load_ms = t.elapsed().as_secs_f64() * 1e3;
    let encoder = docent_rag::models::load_encoder(
        Some(&base.meta().encoder.id),
        docent_embed::EncoderConfig::default(),
    )?;
    base.check_encoder(encoder.info())?;
    let stored = base.vectors()?;
    anyhow::ensure!(
        !stored.is_empty(),
        "the index at {} is empty",
        index_dir.display()
    );
    let base_ids: Vec<u64> = stored.iter().map(|(id, _)| *id).collect();
    let base_vectors: Vec<Vec<f32>> = stored.into_iter().map(|(_, v)| v).collect();
    // Synthetic chunks carry (the start of) their centre's real text, so
    // that lexical search has real work to do.
    let base_texts: Vec<String> = base
        .chunks(&base_ids)?
        .into_iter()
        .map(|c| c.chunk.text.chars().take(400).collect())
        .collect();

    // Query texts for the embedding stage: the first sentence of stored chunks.
    let mut rng = Rng::new(args.seed);
    let ids: Vec<u64> = (0..args.queries)
        .map(|_| rng.next_u64() % base.len() as u64)
        .collect();
    let texts: Vec<String> = base
        .chunks(&ids)?
        .into_iter()
        .map(|c| {
            let t = c.chunk.text.trim();
            let end = t
                .find(['.', '?', '!', '\n'])
                .map(|i| i + 1)
                .unwrap_or(t.len());
            t[..end.min(t.len())].chars().take(200).collect()
        })
        .collect();
    let bar = progress(texts.len() as u64, "embedding queries", args.json);
    let mut embed_ms = Vec::with_capacity(texts.len());
    let mut real_queries = Vec::with_capacity(texts.len());
    for text in &texts {
        let t = Instant::now();
        let v = encoder
            .embed_queries(&[text.as_str()])?
            .pop()
            .expect("one vector");
        embed_ms.push(t.elapsed().as_secs_f64() * 1e3);
        real_queries.push(v);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let recombiner = (!args.recombine.is_empty())
        .then(|| Recombiner::load(&args.recombine))
        .transpose()?;
    // With recombined text, lexical search gets the sets' questions.
    let lexical_texts: Vec<String> = match &recombiner {
        Some(r) => {
            let mut rng = Rng::new(args.seed ^ 0x9e37);
            (0..args.queries)
                .map(|_| r.questions[rng.below(r.questions.len())].clone())
                .collect()
        }
        None => texts.clone(),
    };
    let mut corpora = Vec::new();
    if args.synthetic.is_empty() {
        let mut qs = real_queries.clone();
        qs.iter_mut().for_each(|q| normalize(q));
        corpora.push(measure(
            index_dir.display().to_string(),
            &base,
            &base_vectors,
            &qs,
            &lexical_texts,
            &embed_ms,
            None,
            base_load_ms,
            None,
            &args,
        )?);
        if let Some(dir) = &export_dir {
            export(dir, "index", &base_vectors, &qs, &base, &args)?;
        }
    }
    let tmp = tempfile::tempdir()?;
    for &n in &args.synthetic {
        anyhow::ensure!(n > 0, "--synthetic sizes must be positive");
        let work = args
            .workdir
            .clone()
            .unwrap_or_else(|| tmp.path().to_path_buf())
            .join(format!("synthetic-{n}"));
        let mut rng = Rng::new(args.seed ^ n as u64);
        let (centres, vectors): (Vec<usize>, Vec<Vec<f32>>) =
            (0..n).map(|_| sample(&base_vectors, &mut rng)).unzip();
        let chunk_texts: Vec<std::borrow::Cow<'_, str>> = match &recombiner {
            Some(r) => (0..n).map(|_| r.chunk(&mut rng).into()).collect(),
            None => centres
                .iter()
                .map(|&c| base_texts[c].as_str().into())
                .collect(),
        };
        let queries: Vec<Vec<f32>> = (0..args.queries)
            .map(|_| sample(&base_vectors, &mut rng).1)
            .collect();
        // What the index in `work` was built from, for --reuse.
        let params = serde_json::json!({
            "vectors": n, "seed": args.seed, "base": base.generation(),
            "recombine": args.recombine,
        });
        let params_file = work.join("bench-params.json");
        let reusable = args.reuse
            && std::fs::read(&params_file)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                == Some(params.clone());
        let build_s = if reusable {
            if !args.json {
                eprintln!("reusing the index in {}", work.display());
            }
            None
        } else {
            if work.exists() {
                std::fs::remove_dir_all(&work)?;
            }
            let built = build_synthetic(&work, &base, &vectors, &chunk_texts, args.json)?;
            std::fs::write(&params_file, serde_json::to_vec(&params)?)?;
            Some(built)
        };
        release_freed_memory();
        let before = super::rss_mb();
        let t = Instant::now();
        let index = Index::open(&work)?;
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        let loaded_mb = super::rss_mb() - before;
        corpora.push(measure(
            format!(
                "synthetic {n}{}",
                if recombiner.is_some() {
                    ", recombined text"
                } else {
                    ""
                }
            ),
            &index,
            &vectors,
            &queries,
            &lexical_texts,
            &embed_ms,
            build_s,
            load_ms,
            Some(loaded_mb),
            &args,
        )?);
        if let Some(dir) = &export_dir {
            export(
                dir,
                &format!("synthetic-{n}"),
                &vectors,
                &queries,
                &index,
                &args,
            )?;
        }
        drop(index);
        if args.workdir.is_none() {
            std::fs::remove_dir_all(&work)?;
        }
    }
    let report = Report {
        k: args.k,
        queries: args.queries,
        threads: rayon::current_num_threads(),
        encoder: base.meta().encoder.id.clone(),
        corpora,
    };
    if let Some(svg) = &args.plot {
        super::plot::plot(svg, &report)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    if args.peers {
        let dir = export_dir.as_deref().unwrap_or(peer_dir.path());
        run_peers(dir, &report, args.json)?;
    }
    Ok(())
}

/// Returns the allocator's freed pages to the system, so that resident
/// memory measures what is in use.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// hnswlib and faiss on the exported vectors (benches/retrieval_peer.py,
/// in its own venv), printed after docent's figures.
fn run_peers(dir: &Path, report: &Report, json: bool) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/retrieval_peer.py");
    anyhow::ensure!(
        script.exists(),
        "--peers runs {} from docent's source tree, which is not here",
        script.display()
    );
    // Beside, not in, the folder: the script reads every .json there as a
    // corpus.
    let ours = tempfile::Builder::new()
        .prefix("docent-bench")
        .suffix(".json")
        .tempfile()?;
    std::fs::write(ours.path(), serde_json::to_vec_pretty(report)?)?;
    let status = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg(ours.path())
        .stdout(if json {
            std::process::Stdio::null()
        } else {
            std::process::Stdio::inherit()
        })
        .status()
        .context("running python3 for the peers (hnswlib and faiss)")?;
    anyhow::ensure!(status.success(), "the peer script failed ({status})");
    Ok(())
}

fn export(
    dir: &Path,
    name: &str,
    vectors: &[Vec<f32>],
    queries: &[Vec<f32>],
    index: &Index,
    args: &RetrievalArgs,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    write_f32(&dir.join(format!("{name}.vectors.f32")), vectors)?;
    write_f32(&dir.join(format!("{name}.queries.f32")), queries)?;
    let h = index.meta().hnsw;
    let meta = serde_json::json!({
        "name": name, "vectors": vectors.len(), "queries": queries.len(),
        "dim": index.meta().encoder.dim, "k": args.k, "m": h.m,
        "ef_construction": h.ef_construction, "ef": args.ef,
    });
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&meta)?,
    )?;
    Ok(())
}

fn print(r: &Report) {
    println!(
        "docent bench retrieval: k={}, {} queries, {} threads, encoder {}",
        r.k, r.queries, r.threads, r.encoder
    );
    for c in &r.corpora {
        println!();
        println!(
            "{}: {} vectors × {} dims, M={}, ef_construction={}",
            c.name, c.vectors, c.dim, c.m, c.ef_construction
        );
        let build = match (c.build_s, c.graph_build_s) {
            (Some(s), Some(g)) => format!("{s:.1} s (graph {g:.1} s)"),
            (Some(s), None) => format!("{s:.1} s"),
            _ => "-".into(),
        };
        println!(
            "  build {build}, load {:.0} ms (first search {:.1} ms), {:.1} MB on disk, peak RSS so far {:.0} MB",
            c.load_ms, c.first_query_ms, c.disk_mb, c.peak_rss_mb
        );
        println!(
            "  per vector: {:.0} bytes on disk, {} in memory once loaded",
            c.disk_bytes_per_vector,
            c.memory_bytes_per_vector
                .map(|b| format!("{b:.0} bytes"))
                .unwrap_or_else(|| "-".into())
        );
        println!(
            "  {:<10} {:>8} {:>8} {:>8} {:>8}   (ms, ef={})",
            "stage", "p50", "p95", "p99", "max", c.default_ef
        );
        for (name, s) in [
            ("embed", &c.embed_ms),
            ("hnsw", &c.hnsw_ms),
            ("lexical", &c.lexical_ms),
            ("lex-all", &c.lexical_unbounded_ms),
            ("hybrid", &c.hybrid_ms),
            ("fetch", &c.fetch_ms),
            ("search", &c.total_ms),
            ("search-hy", &c.total_hybrid_ms),
        ] {
            println!(
                "  {:<10} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                name, s.p50, s.p95, s.p99, s.max
            );
        }
        println!(
            "  lexical within {} postings finds {:.1}% of the top {} of lex-all (every term)",
            docent_index::POSTINGS_BUDGET,
            100.0 * c.lexical_agreement,
            r.k
        );
        for b in &c.budget_sweep {
            println!(
                "  lexical within {:>8} postings: p50 {:.3} p95 {:.3} p99 {:.3} ms, {:.1}% of the top {}",
                b.budget,
                b.lexical_ms.p50,
                b.lexical_ms.p95,
                b.lexical_ms.p99,
                100.0 * b.agreement,
                r.k
            );
        }
        println!(
            "  {:>6} {:>10} {:>9} {:>9} {:>9} {:>11} {:>13}",
            "ef", "recall@k", "p50 ms", "p99 ms", "max ms", "qps 1 thr", "qps all thr"
        );
        for e in &c.sweep {
            println!(
                "  {:>6} {:>10.4} {:>9.3} {:>9.3} {:>9.3} {:>11.0} {:>13.0}",
                e.ef,
                e.recall,
                e.hnsw_ms.p50,
                e.hnsw_ms.p99,
                e.hnsw_ms.max,
                e.qps_1_thread,
                e.qps_all_threads
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_sentences;

    #[test]
    fn sentences_split_at_their_ends_in_both_languages() {
        let s = split_sentences(
            "The tower was built in 1889 by Eiffel. Is it 330 m tall? 에펠탑은 1889년에 지어졌다. \
             It is 3.5 km from the Louvre",
        );
        assert_eq!(
            s,
            [
                "The tower was built in 1889 by Eiffel.",
                "Is it 330 m tall?",
                "에펠탑은 1889년에 지어졌다.",
                "It is 3.5 km from the Louvre"
            ]
        );
    }
}
