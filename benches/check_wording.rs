//! Wordings of the answerability check, compared on recorded answers.
//!
//! The check (the prompt template's `check`) asks the model, before it
//! answers, whether its sources answer the question; docent declines below
//! a probability of "yes" (`--min-answerable`). The check does not change
//! the answer it lets through, so another wording can be judged on the
//! answers an evaluation already wrote: this reads the `--out` files of
//! `docent eval --generate` runs (their `prompt`, `correct`, `declined` and
//! `impossible`), asks each wording below after each recorded prompt's
//! sources and question, and writes one file per wording and input, the
//! records with `answerable` replaced by that wording's probability, for
//! `scripts/calibrate_answerable.py`:
//!
//!     docent eval ../shared/data/squad-v2.0-dev-a.json --sample 300 --sample-seed 11 \
//!         --generate --mode hybrid --min-answerable 0.001 --out sq2.jsonl
//!     cargo bench --bench check_wording -- sq2.jsonl sq1.jsonl
//!     python3 scripts/calibrate_answerable.py sq2.check-1.jsonl sq1.check-1.jsonl
//!
//! Wording 0 is the shipped one, so its file reproduces the recorded
//! probabilities (printed as a check). The prompts are cut at their last
//! "Question: …" line, so this fits the default template (`answer-first`);
//! the sources, system message and chat template are the recorded ones.
//! The shared start of a prompt is read once for every wording.
//! `--wordings 0,5` asks only those. `--question TEXT` asks about TEXT in
//! place of every recorded question (written to `*.check-W.asked.jsonl`):
//! with a question that says nothing ("N/A"), the model's "yes" to its
//! sources alone, against which each answer's can be calibrated. It asserts
//! nothing.

mod recorded;

use std::io::Write;
use std::path::Path;

use docent_rag::models::load_generator;
use docent_rag::GeneratorChoice;
use serde_json::Value;

const WORDINGS: &[&str] = &[
    "Do the sources above state the answer to this question? Reply with only yes or no.",
    "Do the sources above state the answer to exactly this question, with every name, date and \
     detail in the question matching them? Reply with only yes or no.",
    "Could someone answer this question from the sources above alone, without guessing? Reply \
     with only yes or no.",
    "Questions are sometimes written to look answerable when the sources do not say the answer. \
     Do the sources above state the answer to this question? Reply with only yes or no.",
    "Is the answer to this question written in the sources above? Reply with only yes or no.",
    // Worked examples of questions with a detail changed, before the
    // shipped wording.
    "How to check: suppose a source says \"The lighthouse was built in 1874 and painted red \
     in 1950.\" For \"When was the lighthouse painted red?\" the answer is yes. For \"When \
     was the lighthouse painted blue?\" it is no: the colour differs. For \"Who painted the \
     lighthouse?\" it is no: the source does not say who. For \"When was the lighthouse torn \
     down?\" it is no: nothing says it was. Now the real check. Do the sources above state \
     the answer to this question? Reply with only yes or no.",
    "Check the question word by word against the sources: every name, number, date and \
     description in it must match what the sources say (a question about the \"first\" when \
     the source says \"last\", or about a different person or year, is not answered). Do the \
     sources above state the answer to this question? Reply with only yes or no.",
];

fn main() -> anyhow::Result<()> {
    let files = recorded::jsonl_args()?;
    // `--wordings 0,5`: ask only these.
    let only: Option<Vec<usize>> = std::env::args()
        .skip_while(|a| a != "--wordings")
        .nth(1)
        .map(|list| {
            list.split(',')
                .filter_map(|w| w.trim().parse().ok())
                .collect()
        });
    let asks = |w: usize| only.as_ref().is_none_or(|o| o.contains(&w));
    // `--question TEXT`: ask about TEXT instead of each recorded question
    // (a content-free question measures how readily the model says "yes"
    // to its sources alone).
    let question: Option<String> = std::env::args().skip_while(|a| a != "--question").nth(1);
    let mut loaded = load_generator(&GeneratorChoice::default())?;
    let g = &mut loaded.generator;
    for file in &files {
        let records: Vec<Value> = std::fs::read_to_string(file)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let mut outs: Vec<Vec<Value>> = vec![Vec::new(); WORDINGS.len()];
        let (mut asked, mut largest_gap) = (0usize, 0f64);
        for r in &records {
            let parts = r["prompt"].as_str().and_then(recorded::split);
            for (w, wording) in WORDINGS.iter().enumerate() {
                let mut r = r.clone();
                if !asks(w) {
                    continue;
                }
                if let Some((head, tail)) = parts {
                    let head = match &question {
                        Some(q) => match head.rfind("\nQuestion: ") {
                            Some(at) => format!("{}\nQuestion: {q}", &head[..at]),
                            None => head.to_string(),
                        },
                        None => head.to_string(),
                    };
                    let tokens = g.tokenize_prompt(&format!("{head}\n\n{wording}{tail}"));
                    if let Some(p) = g.yes_after(&tokens)? {
                        if w == 0 {
                            if let Some(recorded) = r["answerable"].as_f64() {
                                largest_gap = largest_gap.max((recorded - p as f64).abs());
                            }
                        }
                        r["answerable"] = Value::from(p);
                    }
                }
                outs[w].push(r);
            }
            asked += parts.is_some() as usize;
        }
        let stem = file.trim_end_matches(".jsonl");
        for (w, out) in outs.iter().enumerate().filter(|&(w, _)| asks(w)) {
            let blank = if question.is_some() { ".asked" } else { "" };
            let path = format!("{stem}.check-{w}{blank}.jsonl");
            let mut f = std::io::BufWriter::new(std::fs::File::create(Path::new(&path))?);
            for r in out {
                writeln!(f, "{r}")?;
            }
        }
        println!(
            "{file}: {} records, {asked} asked {} wordings; wording 0 against the recorded \
             probability: largest difference {largest_gap:.4}",
            records.len(),
            WORDINGS.len()
        );
    }
    for (w, wording) in WORDINGS.iter().enumerate() {
        println!("check-{w}: {wording}");
    }
    Ok(())
}
