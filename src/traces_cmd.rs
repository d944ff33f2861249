//! `docent traces`: the answers docent has given, how each was made, and
//! their ratings (kept in the journal beside the index by `ask`, `chat`
//! and `serve`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use docent_journal::{Journal, Rating, Retention};

#[derive(Debug, Subcommand)]
pub enum TracesCommand {
    /// The newest answers first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One answer's whole trace: settings, spans, candidates with their
    /// scores, the prompt, support and timings.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Rate an answer (kept with its trace).
    Rate(RateArgs),
    /// The rated answers as a question set (the format of
    /// tests/fixtures/corpus-qa.toml) for `docent eval SET --docs DIR`:
    /// the start of your own test set. Check each `fact` before use.
    Export {
        /// Write here instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RateArgs {
    pub id: String,
    /// A good answer.
    #[arg(long, conflicts_with = "down")]
    pub up: bool,
    /// A bad answer.
    #[arg(long)]
    pub down: bool,
    /// What was right or wrong.
    #[arg(long)]
    pub note: Option<String>,
}

pub fn run(index_dir: &Path, cmd: TracesCommand) -> Result<()> {
    // Reading never removes: retention applies when answers are recorded.
    let journal = Journal::open_beside(index_dir, Retention::default())?;
    match cmd {
        TracesCommand::List { limit, json } => {
            let list = journal.list(limit, 0)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("no answers recorded yet in {}", journal.path().display());
            }
            for t in list {
                let rating = match &t.rating {
                    Some(r) if r.up => " 👍",
                    Some(_) => " 👎",
                    None => "",
                };
                let declined = if t.abstained { " (declined)" } else { "" };
                println!(
                    "{}  {:>6.1} s  {}{declined}{rating}\n    {}",
                    t.id,
                    t.total_ms / 1e3,
                    t.question,
                    one_line(&t.answer, 100)
                );
            }
        }
        TracesCommand::Show { id, json } => {
            let Some((trace, rating)) = journal.get(&id)? else {
                bail!("no trace has the id {id}; `docent traces list` shows those kept");
            };
            if json {
                let v = serde_json::json!({"trace": trace, "rating": rating});
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("question: {}", trace.question);
            if let Some(q) = &trace.retrieval_query {
                println!("searched: {q}");
            }
            println!("answer:   {}", trace.answer);
            if let Some(a) = &trace.abstained {
                println!("declined: {}", serde_json::to_string(a)?);
            }
            println!(
                "models:   {} / {}",
                trace
                    .model
                    .as_ref()
                    .map(|m| m.id.as_str())
                    .unwrap_or("(not run)"),
                trace.encoder.id
            );
            println!("spans:");
            for s in &trace.spans {
                println!(
                    "  {:<18} {:>8.1} ms",
                    format!("{:?}", s.stage),
                    s.duration_ms
                );
            }
            println!("candidates (kept ✓):");
            for c in trace.candidates.iter().filter(|c| c.rank.is_some()) {
                println!(
                    "  {} #{:<3} chunk {:<6} dense {:>6} lexical {:>7} fused {:>6} sentence {:>6}",
                    if c.kept { "✓" } else { " " },
                    c.rank.unwrap_or(0),
                    c.chunk_id,
                    fmt(c.dense),
                    fmt(c.lexical),
                    fmt(c.fused),
                    fmt(c.sentence)
                );
            }
            for s in &trace.support {
                println!(
                    "  {} {:.2} {}",
                    if s.supported { "✓" } else { "?" },
                    s.support,
                    s.text
                );
            }
            if let Some(r) = rating {
                println!(
                    "rating:   {}{}",
                    if r.up { "👍" } else { "👎" },
                    r.note.map(|n| format!(" — {n}")).unwrap_or_default()
                );
            }
        }
        TracesCommand::Rate(a) => {
            if !a.up && !a.down {
                bail!("say --up or --down");
            }
            journal.rate(
                &a.id,
                &Rating {
                    up: a.up,
                    note: a.note,
                },
            )?;
            println!("rated {}", a.id);
        }
        TracesCommand::Export { out } => {
            let text = export(&journal)?;
            match out {
                Some(p) => std::fs::write(&p, text)?,
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}

fn fmt(v: Option<f32>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into())
}

fn one_line(s: &str, n: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > n {
        format!("{}…", flat.chars().take(n).collect::<String>())
    } else {
        flat
    }
}

/// Rated answers as TOML questions: a good answer gives its first
/// sentence as the fact and its cited files as the sources; a good decline
/// marks the question unanswerable; a bad answer is written commented out
/// with its note, to be fixed by hand.
fn export(journal: &Journal) -> Result<String> {
    let mut out = String::from(
        "# Exported by `docent traces export` from rated answers.\n\
         # Shorten each `fact` to the words a right answer must contain before using the set.\n",
    );
    for r in journal.rated()? {
        let t = &r.trace;
        let files = t.cited_files();
        let mut q = toml::Table::new();
        q.insert("question".into(), t.question.clone().into());
        if t.abstained.is_some() {
            q.insert("answerable".into(), false.into());
        } else {
            let first = t
                .support
                .first()
                .map(|s| s.text.clone())
                .unwrap_or_else(|| t.answer.clone());
            q.insert("fact".into(), vec![toml::Value::from(first)].into());
            q.insert(
                "source".into(),
                files
                    .into_iter()
                    .map(toml::Value::from)
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        let mut doc = toml::Table::new();
        doc.insert("question".into(), vec![toml::Value::Table(q)].into());
        let body = toml::to_string(&doc)?;
        out.push('\n');
        if r.rating.up {
            out.push_str(&format!("# trace {}\n", t.id));
            out.push_str(&body);
        } else {
            out.push_str(&format!(
                "# trace {} was rated down{}; fix it before use:\n",
                t.id,
                r.rating
                    .note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ));
            for line in body.lines() {
                out.push_str("# ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}
