//! The model's hidden states where it is asked whether its sources answer
//! (an experiment on recorded answers).
//!
//! Reads the `--out` files of `docent eval --generate` runs and, for each
//! recorded prompt (the default model's ChatML, the `answer-first`
//! template), runs the answer's prompt and then the check's (the shipped
//! wording), keeping the residual stream of the last position after every
//! second layer (1, 3, 5, …). Writes `<file>.hidden.f32` (records × 2
//! places × layers × width, little-endian) and `<file>.hidden.jsonl` (each
//! record's `impossible`, `correct`, `declined` and check probability), for
//! `scripts/answerable_probe.py` (docs/benchmarks.md, "A probe of the
//! model's hidden state"):
//!
//!     cargo bench --bench answerable_probe -- train.jsonl
//!
//! It asserts nothing.

mod recorded;

use std::io::Write;

use docent_rag::models::load_generator;
use docent_rag::GeneratorChoice;
use serde_json::{json, Value};

const CHECK: &str =
    "Do the sources above state the answer to this question? Reply with only yes or no.";

fn main() -> anyhow::Result<()> {
    let files = recorded::jsonl_args()?;
    let mut loaded = load_generator(&GeneratorChoice::default())?;
    let g = &mut loaded.generator;
    for file in &files {
        let stem = file.trim_end_matches(".jsonl");
        let mut raw = std::io::BufWriter::new(std::fs::File::create(format!("{stem}.hidden.f32"))?);
        let mut meta =
            std::io::BufWriter::new(std::fs::File::create(format!("{stem}.hidden.jsonl"))?);
        let started = std::time::Instant::now();
        let mut n = 0;
        let mut shape = (0, 0);
        for line in std::fs::read_to_string(file)?.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let r: Value = serde_json::from_str(line)?;
            let Some(prompt) = r["prompt"].as_str() else {
                continue;
            };
            let Some((head, tail)) = recorded::split(prompt) else {
                continue;
            };
            let mut p = 0.0;
            for text in [prompt.to_string(), format!("{head}\n\n{CHECK}{tail}")] {
                let tokens = g.tokenize_prompt(&text);
                p = g.yes_after(&tokens)?.unwrap_or(f32::NAN);
                let model = g.model_mut();
                let (n_layers, d) = model
                    .hidden_shape()
                    .ok_or_else(|| anyhow::anyhow!("the model does not expose its hidden state"))?;
                let h = model.hidden().unwrap_or(&[]).to_vec();
                let layers: Vec<usize> = (1..n_layers).step_by(2).collect();
                shape = (layers.len(), d);
                for l in layers {
                    for v in &h[l * d..(l + 1) * d] {
                        raw.write_all(&v.to_le_bytes())?;
                    }
                }
            }
            writeln!(
                meta,
                "{}",
                json!({"id": r["id"], "question": r["question"], "impossible": r["impossible"],
                       "correct": r["correct"], "declined": r["declined"],
                       "recorded": r["answerable"], "check": p})
            )?;
            n += 1;
            if n % 50 == 0 {
                eprintln!("{file}: {n} in {:.0} s", started.elapsed().as_secs_f64());
            }
        }
        println!(
            "{file}: {n} records, layers × width {shape:?}, {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
