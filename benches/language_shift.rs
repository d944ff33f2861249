//! Whether moving a question's vector along the encoder's language
//! direction finds the chunks that answer it in the other language.
//!
//! multilingual-e5-small puts a Korean question nearer to Korean chunks on
//! a neighbouring subject than to the English chunk that answers it (and
//! the other way round), so a question about a fact that `corpus/` states
//! only in the other language rarely gets that chunk. The direction is
//! docent's own (`docent_rag::shift::direction`, forty sentence pairs
//! outside the corpus), or with `--glossaries` the difference of the mean
//! vectors of `corpus/glossary-ko.md` and `corpus/glossary-en.md`, which
//! hold the same fifteen entries in both languages.
//!
//! Printed for each question of `tests/fixtures/corpus-crosslingual-qa.toml`
//! (facts in the other language; none in the glossaries) and of
//! `tests/fixtures/corpus-qa.toml` (facts in the question's language):
//!
//! * with dense search alone, each chunk in the other language scored by
//!   the moved question and each in the question's own by the question, the
//!   rank of the first chunk of a right file for moves of several lengths;
//! * with hybrid search (the default retrieval, first ten), the same rank
//!   over an index built without the direction and one built with the
//!   encoder's own `language_shift`.
//!
//!     cargo bench --bench language_shift [-- --glossaries]
//!
//! It asserts nothing (tests/hybrid.rs does, on two questions).

use docent_eval::QaSet;
use docent_index::Index;
use docent_rag::crosslingual::{script, Script};
use docent_rag::indexer::{build_index, IndexConfig};
use docent_rag::models::load_encoder;

/// How far along the direction a question is moved (0: not at all).
const SCALES: [f32; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn mean(vs: &[Vec<f32>]) -> Vec<f32> {
    let mut m = vec![0.0; vs[0].len()];
    for v in vs {
        m.iter_mut()
            .zip(v)
            .for_each(|(a, b)| *a += b / vs.len() as f32);
    }
    m
}

/// The glossary's entries, each one text.
fn entries(text: &str) -> Vec<String> {
    text.split("\n## ")
        .skip(1)
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let encoder = load_encoder(None, Default::default())?;
    let dir = tempfile::tempdir()?;
    let index_dir = dir.path().join("index");
    build_index(
        &index_dir,
        &IndexConfig::for_folder(std::path::Path::new("corpus")),
        &encoder,
        &mut |_| {},
    )?;
    let index = Index::open(&index_dir)?;
    let vectors = index.vectors()?;
    let ids: Vec<u64> = vectors.iter().map(|(id, _)| *id).collect();
    let chunks = index.chunks(&ids)?;
    let korean: Vec<bool> = chunks
        .iter()
        .map(|c| script(&c.chunk.text) == Script::Hangul)
        .collect();

    let direction = if std::env::args().any(|a| a == "--glossaries") {
        // The glossaries' own difference, for comparison (they are in the
        // corpus searched).
        let en = entries(&std::fs::read_to_string("corpus/glossary-en.md")?);
        let ko = entries(&std::fs::read_to_string("corpus/glossary-ko.md")?);
        let embed = |t: &[String]| -> anyhow::Result<Vec<Vec<f32>>> {
            let refs: Vec<&str> = t.iter().map(String::as_str).collect();
            Ok(encoder.embed(&refs)?)
        };
        let (m_ko, m_en) = (mean(&embed(&ko)?), mean(&embed(&en)?));
        m_ko.iter().zip(&m_en).map(|(k, e)| k - e).collect()
    } else {
        docent_rag::shift::direction(&encoder)?
    };
    println!(
        "{} chunks ({} Korean); language direction's length {:.3}",
        chunks.len(),
        korean.iter().filter(|&&k| k).count(),
        dot(&direction, &direction).sqrt()
    );

    for (set, path) in [
        (
            "cross-language",
            "tests/fixtures/corpus-crosslingual-qa.toml",
        ),
        ("same-language", "tests/fixtures/corpus-qa.toml"),
    ] {
        let qs = QaSet::from_toml(&std::fs::read_to_string(path)?)?;
        let (mut n, mut top1, mut top2) = (0, [0; SCALES.len()], [0; SCALES.len()]);
        println!("\n{set} ({path}): rank of a right file's first chunk, moved by {SCALES:?} of the direction");
        for q in qs.questions.iter().filter(|q| q.answerable) {
            let v = encoder.embed_queries(&[q.question.as_str()])?.remove(0);
            let q_korean = script(&q.question) == Script::Hangul;
            let sign = if q_korean { -1.0 } else { 1.0 };
            let moved_by = |a: f32| -> Vec<f32> {
                normalise(
                    v.iter()
                        .zip(&direction)
                        .map(|(x, d)| x + sign * a * d)
                        .collect(),
                )
            };
            let rank_of = |score: &dyn Fn(usize) -> f32| {
                let mut order: Vec<usize> = (0..vectors.len()).collect();
                order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
                order
                    .iter()
                    .position(|&i| q.cites_source(std::iter::once(chunks[i].chunk.path.as_str())))
                    .map_or(usize::MAX, |p| p + 1)
            };
            let ranks: Vec<usize> = SCALES
                .iter()
                .map(|&a| {
                    let moved = moved_by(a);
                    rank_of(&|i| {
                        let by = if korean[i] == q_korean { &v } else { &moved };
                        dot(by, &vectors[i].1)
                    })
                })
                .collect();
            let mut line = String::new();
            for (j, &r) in ranks.iter().enumerate() {
                top1[j] += usize::from(r == 1);
                top2[j] += usize::from(r <= 2);
                line += &format!("{r:>4}");
            }
            n += 1;
            println!("{line}  {}", q.question);
        }
        for (j, a) in SCALES.iter().enumerate() {
            println!(
                "  moved by {a:.2} of the direction: {} of {n} first, {} in the first two",
                top1[j], top2[j]
            );
        }
    }
    hybrid(&encoder)
}

/// The rank of a right file's first chunk in hybrid search (the default
/// retrieval, lexical fusion and re-rank included, first ten) over an index
/// built without the direction and one built with the encoder's own
/// `language_shift`.
fn hybrid(encoder: &docent_embed::Encoder) -> anyhow::Result<()> {
    let settings = encoder.info().retrieval;
    let without =
        load_encoder(None, Default::default())?.with_retrieval(docent_core::RetrievalSettings {
            language_shift: None,
            ..settings
        });
    let dir = tempfile::tempdir()?;
    let mut indexes = Vec::new();
    for (name, e) in [("without", &without), ("with", encoder)] {
        let path = dir.path().join(name);
        build_index(
            &path,
            &IndexConfig::for_folder(std::path::Path::new("corpus")),
            e,
            &mut |_| {},
        )?;
        indexes.push(Index::open(&path)?);
    }
    let cfg = docent_rag::RetrieveConfig {
        k: 10,
        ..Default::default()
    };
    println!(
        "\nhybrid search, first ten: rank of a right file's first chunk without / with a move of {:?}",
        settings.language_shift
    );
    for path in [
        "tests/fixtures/corpus-crosslingual-qa.toml",
        "tests/fixtures/corpus-qa.toml",
    ] {
        let qs = QaSet::from_toml(&std::fs::read_to_string(path)?)?;
        let (mut n, mut top1, mut top2) = (0, [0; 2], [0; 2]);
        for q in qs.questions.iter().filter(|q| q.answerable) {
            let v = encoder.embed_queries(&[q.question.as_str()])?.remove(0);
            let mut line = String::new();
            for (j, index) in indexes.iter().enumerate() {
                let hits = docent_rag::retrieve::search(index, &q.question, &v, &cfg)?;
                let r = hits
                    .iter()
                    .position(|h| q.cites_source(std::iter::once(h.chunk.chunk.path.as_str())))
                    .map_or(usize::MAX, |p| p + 1);
                top1[j] += usize::from(r == 1);
                top2[j] += usize::from(r <= 2);
                line += &if r == usize::MAX {
                    "   -".to_string()
                } else {
                    format!("{r:>4}")
                };
            }
            n += 1;
            println!("{line}  {}", q.question);
        }
        println!(
            "  {path}, {n} questions: first {} / {}, in the first two {} / {}",
            top1[0], top1[1], top2[0], top2[1]
        );
    }
    Ok(())
}
