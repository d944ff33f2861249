//! How well a question fits its sources, read from the model's own
//! expectations (an experiment on recorded answers).
//!
//! SQuAD 2.0's unanswerable questions are answerable ones with a detail
//! changed (a name swapped, a word turned into its opposite, a date moved).
//! Read after the sources, the changed word should surprise the model more
//! than it does without them, where a question the sources answer should
//! be easier to predict with them. This reads the `--out` files of `docent
//! eval --generate` runs (ChatML prompts, the default model's), scores
//! every token of each recorded prompt's question twice (after its system
//! message and sources, and after the system message alone) and writes `<file>.fit.jsonl`: each record's
//! `impossible`, `declined`, `correct`, `answerable` and the tokens'
//! log-probabilities, for `scripts/question_fit.py`
//! (docs/benchmarks.md, "How well the question fits its sources").
//!
//!     cargo bench --bench question_fit -- sq2.jsonl
//!     python3 scripts/question_fit.py sq2.jsonl sq2.fit.jsonl
//!
//! It asserts nothing.

use std::io::Write;

use docent_rag::models::load_generator;
use docent_rag::GeneratorChoice;
use serde_json::{json, Value};

/// Log-probability of `next` under `logits`.
fn log_prob(logits: &[f32], next: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    logits[next as usize] - max - sum.ln()
}

fn main() -> anyhow::Result<()> {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.ends_with(".jsonl"))
        .collect();
    if files.is_empty() {
        anyhow::bail!("give the --out files of `docent eval --generate` runs (.jsonl)");
    }
    let mut loaded = load_generator(&GeneratorChoice::default())?;
    let g = &mut loaded.generator;
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let out_path = format!("{}.fit.jsonl", file.trim_end_matches(".jsonl"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&out_path)?);
        let started = std::time::Instant::now();
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: Value = serde_json::from_str(line)?;
            let Some(prompt) = r["prompt"].as_str() else {
                continue;
            };
            let (Some(q), Some(user)) = (prompt.rfind("\nQuestion:"), prompt.find("user\n")) else {
                continue;
            };
            let head = &prompt[..q + "\nQuestion:".len()];
            let rest = &prompt[head.len()..];
            let question = &rest[..rest.find('\n').unwrap_or(rest.len())];
            let bare = format!("{}Question:", &prompt[..user + "user\n".len()]);
            let mut scores = Vec::new();
            let mut tokens = Vec::new();
            for context in [head, bare.as_str()] {
                let head_ids = g.tokenize_prompt(context);
                let all = g.tokenize_prompt(&format!("{context}{question}"));
                if !all.starts_with(&head_ids) || all.len() == head_ids.len() {
                    anyhow::bail!("the question's tokens do not follow the prompt's in {file}");
                }
                if tokens.is_empty() {
                    tokens = all[head_ids.len()..]
                        .iter()
                        .map(|&t| g.tokenizer().decode(&[t]))
                        .collect();
                }
                let model = g.model_mut();
                model.reset();
                let from = head_ids.len() - 1;
                if from > 0 {
                    for part in all[..from].chunks(64) {
                        model.forward(part)?;
                    }
                }
                let logits = model
                    .forward_each(&all[from..all.len() - 1])?
                    .ok_or_else(|| anyhow::anyhow!("the model gives only its last logits"))?;
                let vocab = logits.len() / (all.len() - 1 - from);
                let lps: Vec<f32> = logits
                    .chunks(vocab)
                    .zip(&all[from + 1..])
                    .map(|(row, &next)| log_prob(row, next))
                    .collect();
                scores.push(lps);
            }
            let rec = json!({
                "question": r["question"], "impossible": r["impossible"],
                "declined": r["declined"], "correct": r["correct"],
                "answerable": r["answerable"], "tokens": tokens,
                "with_sources": scores[0], "without": scores[1],
            });
            writeln!(out, "{rec}")?;
            n += 1;
        }
        println!(
            "{file}: {n} questions scored in {:.0} s -> {out_path}",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
