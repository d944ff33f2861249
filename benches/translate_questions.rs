//! Questions of a SQuAD-format set translated by the default language
//! model, for measuring questions asked in another language than the
//! documents (docs/benchmarks.md, "Questions in another language than the
//! documents").
//!
//!     cargo bench --bench translate_questions -- IN.json OUT.json --to Korean [--sample N] [--seed S]
//!
//! Writes OUT.json: IN.json's articles and paragraphs with each sampled
//! question's text replaced by the model's translation into `--to` (the
//! others left out), answers unchanged. `--impossible FOREIGN.json` also
//! attaches the questions of another set (in the target language, about
//! other documents) to the articles as unanswerable ones, so that one
//! `docent eval` of OUT.json measures both sides of the retrieval gate.
//! The translations are the model's, not a translator's: short questions
//! come out right, with a name sometimes left in English. Shared data is
//! never copied into the repository; OUT.json goes beside it. It asserts
//! nothing.

use docent_generate::{GenerationConfig, SamplerConfig};
use docent_rag::models::load_generator;
use docent_rag::GeneratorChoice;
use serde_json::Value;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A small deterministic generator for the sample (xorshift).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn main() -> anyhow::Result<()> {
    // The arguments that are neither flags nor their values.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let files: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|&(i, a)| a.ends_with(".json") && (i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a)
        .collect();
    let [input, output] = files.as_slice() else {
        anyhow::bail!("give IN.json and OUT.json (and --to LANGUAGE)");
    };
    let to = arg("--to").unwrap_or_else(|| "Korean".into());
    let sample: usize = arg("--sample").map_or(Ok(200), |s| s.parse())?;
    let seed: u64 = arg("--seed").map_or(Ok(7), |s| s.parse())?;
    let mut set: Value = serde_json::from_str(&std::fs::read_to_string(input)?)?;
    // Every question's place, then a sample of them.
    let mut places = Vec::new();
    for (a, article) in set["data"].as_array().unwrap().iter().enumerate() {
        for (p, para) in article["paragraphs"].as_array().unwrap().iter().enumerate() {
            for q in 0..para["qas"].as_array().unwrap().len() {
                places.push((a, p, q));
            }
        }
    }
    shuffle(&mut places, seed.max(1));
    places.truncate(sample);
    places.sort_unstable();
    let mut loaded = load_generator(&GeneratorChoice::default())?;
    let g = &mut loaded.generator;
    let cfg = GenerationConfig {
        max_tokens: 80,
        sampler: SamplerConfig::default(),
        stop_strings: g.default_stop_strings(),
        stop_on_repeat: true,
        gate: None,
        not_first: Vec::new(),
    };
    let mut kept: Vec<Vec<Vec<Value>>> = set["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a["paragraphs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|_| Vec::new())
                .collect()
        })
        .collect();
    for (i, &(a, p, q)) in places.iter().enumerate() {
        let mut qa = set["data"][a]["paragraphs"][p]["qas"][q].clone();
        let question = qa["question"].as_str().unwrap_or_default().to_string();
        let prompt = format!(
            "<|im_start|>system\nYou translate questions into {to}.<|im_end|>\n<|im_start|>user\n\
             Translate this question into {to}. Reply with only the translated question.\n\n\
             {question}<|im_end|>\n<|im_start|>assistant\n"
        );
        let tokens = g.tokenize_prompt(&prompt);
        let translated = g.generate(&tokens, &cfg, &mut |_| true)?.text;
        let translated = translated
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        eprintln!("{}/{}: {question} → {translated}", i + 1, places.len());
        qa["question"] = Value::String(translated);
        qa["original_question"] = Value::String(question);
        kept[a][p].push(qa);
    }
    for (a, paras) in kept.into_iter().enumerate() {
        for (p, qas) in paras.into_iter().enumerate() {
            set["data"][a]["paragraphs"][p]["qas"] = Value::Array(qas);
        }
    }
    if let Some(foreign) = arg("--impossible") {
        let other: Value = serde_json::from_str(&std::fs::read_to_string(foreign)?)?;
        let mut questions: Vec<Value> = other["data"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|a| a["paragraphs"].as_array().unwrap().iter())
            .flat_map(|p| p["qas"].as_array().unwrap().iter().cloned())
            .collect();
        shuffle(&mut questions, seed.max(1) + 1);
        questions.truncate(sample);
        let articles = set["data"].as_array_mut().unwrap();
        let n = articles.len();
        for (i, mut q) in questions.into_iter().enumerate() {
            q["is_impossible"] = Value::Bool(true);
            q["answers"] = Value::Array(Vec::new());
            q["id"] = Value::String(format!("foreign-{}", q["id"].as_str().unwrap_or("")));
            articles[i % n]["paragraphs"][0]["qas"]
                .as_array_mut()
                .unwrap()
                .push(q);
        }
    }
    std::fs::write(output, serde_json::to_string(&set)?)?;
    Ok(())
}
