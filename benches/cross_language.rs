//! How close the multilingual encoder puts a sentence and its translation,
//! against sentences that say something else: the calibration of the
//! grounding check's cross-language support.
//!
//! `corpus/glossary-en.md` and `corpus/glossary-ko.md` hold the same
//! fifteen entries, one in English and one in Korean. Every sentence of
//! one is compared with every sentence of the other: the best cosine
//! within the same entry is a translation's, the best within any other
//! entry a sentence on another subject of the same field. Printed: both
//! distributions, the area under the ROC curve, and for each threshold the
//! share of each kind at or above it.
//!
//!     cargo bench --bench cross_language [-- ENCODER]
//!
//! It asserts nothing.

use docent_rag::grounding::sentences;
use docent_rag::models::load_encoder;

/// The entries of a glossary: each `## ` heading's sentences.
fn entries(text: &str) -> Vec<Vec<String>> {
    text.split("\n## ")
        .skip(1)
        .map(|entry| {
            let body = entry.split_once('\n').map_or("", |(_, b)| b);
            let joined = body.split_whitespace().collect::<Vec<_>>().join(" ");
            sentences(&joined)
                .into_iter()
                .map(|(s, e)| joined[s..e].to_string())
                .filter(|s| s.chars().count() > 10)
                .collect()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn main() -> anyhow::Result<()> {
    let name = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let encoder = load_encoder(name.as_deref(), Default::default())?;
    let en = entries(&std::fs::read_to_string("corpus/glossary-en.md")?);
    let ko = entries(&std::fs::read_to_string("corpus/glossary-ko.md")?);
    anyhow::ensure!(
        en.len() == ko.len(),
        "the glossaries have different entries"
    );
    for kind in ["query", "passage"] {
        let embed = |side: &[Vec<String>]| -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
            side.iter()
                .map(|e| {
                    let texts: Vec<&str> = e.iter().map(String::as_str).collect();
                    Ok(if kind == "query" {
                        encoder.embed_queries(&texts)?
                    } else {
                        encoder.embed(&texts)?
                    })
                })
                .collect()
        };
        let (ven, vko) = (embed(&en)?, embed(&ko)?);
        let (mut same, mut other) = (Vec::new(), Vec::new());
        for (from, to) in [(&vko, &ven), (&ven, &vko)] {
            for (i, entry) in from.iter().enumerate() {
                for v in entry {
                    let best = |j: usize| to[j].iter().map(|w| cosine(v, w)).fold(-1f32, f32::max);
                    same.push(best(i));
                    other.push(
                        (0..to.len())
                            .filter(|&j| j != i)
                            .map(best)
                            .fold(-1f32, f32::max),
                    );
                }
            }
        }
        let auc = same
            .iter()
            .map(|a| {
                other
                    .iter()
                    .map(|b| (a > b) as u8 as f32 + 0.5 * (a == b) as u8 as f32)
                    .sum::<f32>()
            })
            .sum::<f32>()
            / (same.len() * other.len()) as f32;
        let q = |v: &mut Vec<f32>, p: f32| {
            v.sort_by(f32::total_cmp);
            v[((v.len() - 1) as f32 * p) as usize]
        };
        println!(
            "{kind}: {} sentences; translation p10/p50/p90 {:.3}/{:.3}/{:.3}; other entry p10/p50/p90 {:.3}/{:.3}/{:.3}; area {auc:.3}",
            same.len(),
            q(&mut same, 0.1),
            q(&mut same, 0.5),
            q(&mut same, 0.9),
            q(&mut other, 0.1),
            q(&mut other, 0.5),
            q(&mut other, 0.9)
        );
        for t in [0.80, 0.82, 0.84, 0.85, 0.86, 0.87, 0.88, 0.90] {
            let share = |v: &[f32]| v.iter().filter(|&&x| x >= t).count() as f32 / v.len() as f32;
            println!(
                "  {t:.2}: translations {:.3}, other entries {:.3}",
                share(&same),
                share(&other)
            );
        }
    }
    Ok(())
}
