//! `docent ask`: a grounded answer, streamed, then its sources.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use docent_rag::{
    Abstention, Answer, AnswerTimings, Citation, Event, GeneratorChoice, GeneratorLoad,
    SentenceSupport, StopReason, Trace,
};
use serde::Serialize;

use crate::display::{label, location};
use crate::flags::{AnswerFlags, EncoderFlags, JournalFlags, Mode};
use crate::search_cmd::open_engine;

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Index this folder first (only new and changed files are embedded).
    #[arg(long, value_name = "DIR")]
    pub docs: Option<PathBuf>,
    #[command(flatten)]
    pub encoder: EncoderFlags,
    #[command(flatten)]
    pub answer: AnswerFlags,
    #[command(flatten)]
    pub journal: JournalFlags,
    /// How chunks are ranked.
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    pub mode: Mode,
    /// Print the exact prompt given to the model before the answer.
    #[arg(long)]
    pub show_prompt: bool,
    /// Print JSON (answer, sources with scores, timings, and the trace of
    /// every stage) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct SourceOut<'a> {
    #[serde(flatten)]
    citation: &'a Citation,
    /// `path:line`, relative to the current folder.
    location: String,
}

#[derive(Serialize)]
struct TimingsOut<'a> {
    #[serde(flatten)]
    answer: &'a AnswerTimings,
    /// From the start of the process to the first answer token.
    time_to_first_token_from_start_ms: f64,
}

#[derive(Serialize)]
struct Output<'a> {
    question: &'a str,
    model: String,
    answer: &'a str,
    /// True when the answer was declined.
    abstained: bool,
    abstention: Option<&'a Abstention>,
    /// Each sentence's support by the sources.
    support: &'a [SentenceSupport],
    sources: Vec<SourceOut<'a>>,
    sources_dropped: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    stop: Option<StopReason>,
    timings: TimingsOut<'a>,
    trace: &'a Trace,
}

pub fn run(index_dir: &Path, args: AskArgs, started: Instant) -> Result<()> {
    let cfg = args.answer.config(args.mode.into())?;
    cfg.validate()?;
    // One question: load the model while the encoder, the index and the
    // retrieval run.
    let generator = GeneratorChoice {
        load: GeneratorLoad::InBackground,
        ..args.answer.generator()
    };
    let engine = open_engine(
        index_dir,
        args.docs.as_deref(),
        args.encoder.name(),
        generator,
        args.json,
    )?;
    let root = engine.index()?.meta().root.clone();
    let at = |c: &Citation| location(&root, &c.path, c.line, c.page);
    let json = args.json;
    // Strict answers are printed once checked, not streamed.
    let stream = !json && !cfg.grounding.strict;
    let show_prompt = args.show_prompt;
    let mut stdout = std::io::stdout().lock();
    let mut first_from_start = None;
    let answer: Answer = engine.answer(&args.question, &[], &cfg, &mut |event| {
        match event {
            Event::Prompt {
                tokens,
                context,
                sources_dropped,
                text,
                ..
            } if !json => {
                if sources_dropped > 0 {
                    eprintln!(
                        "note: {sources_dropped} lower-ranked passage(s) left out to keep the prompt within --max-prompt-tokens and the {context}-token context"
                    );
                }
                if show_prompt {
                    let _ = writeln!(stdout, "──── prompt ({tokens} tokens) ────\n{text}\n──── answer ────");
                }
            }
            Event::Text(piece) => {
                first_from_start.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1e3);
                // A closed pipe stops generation rather than failing it.
                if stream && write!(stdout, "{piece}").and_then(|_| stdout.flush()).is_err() {
                    return ControlFlow::Break(());
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })?;
    drop(stdout);
    // Every answer's trace is kept beside the index (`docent traces`); a
    // journal that cannot be written costs the record, not the answer.
    match args.journal.open(index_dir) {
        Ok(j) => {
            if let Err(e) = j.record(&answer.trace, None) {
                eprintln!("warning: the trace was not kept: {e}");
            }
        }
        Err(e) => eprintln!("warning: the trace was not kept: {e:#}"),
    }

    if json {
        let out = Output {
            question: &answer.question,
            model: engine
                .generator_model()
                .map(|m| m.id)
                .unwrap_or_else(|| args.answer.model.clone()),
            answer: &answer.text,
            abstained: answer.abstained.is_some(),
            abstention: answer.abstained.as_ref(),
            support: &answer.support,
            sources: answer
                .citations
                .iter()
                .map(|c| SourceOut {
                    citation: c,
                    location: at(c),
                })
                .collect(),
            sources_dropped: answer.sources_dropped,
            prompt: answer.prompt.as_deref().filter(|_| show_prompt),
            stop: answer.stop,
            timings: TimingsOut {
                answer: &answer.trace.timings,
                time_to_first_token_from_start_ms: first_from_start.unwrap_or_default(),
            },
            trace: &answer.trace,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if let Some(Abstention::NoRelevantSource {
        best_similarity,
        min_score,
        best_across,
        min_score_across,
    }) = &answer.abstained
    {
        println!("{}", answer.text);
        let across = match (best_across, min_score_across) {
            (Some(best), Some(min)) => {
                format!("; the closest in the other language scored {best:.3}, below {min:.2}")
            }
            _ => String::new(),
        };
        eprintln!(
            "(the closest passage scored {best_similarity:.3}, below --min-score {min_score:.2}{across}; the model was not run)"
        );
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    if !stream {
        write!(stdout, "{}", answer.text)?;
    }
    writeln!(stdout)?;
    if answer.text.is_empty() {
        writeln!(stdout, "(the model gave no answer)")?;
    }
    if let Some(Abstention::NotAnswerable {
        answerable,
        min_answerable,
    }) = &answer.abstained
    {
        eprintln!(
            "(asked whether the sources below answer the question, the model said yes with probability {answerable:.2}, below --min-answerable {min_answerable:.2})"
        );
    }
    match &answer.abstained {
        // The streamed text was the model's answer; docent declined it.
        Some(Abstention::NotConfirmed {
            confirmed,
            min_confirmed,
        }) => {
            if stream {
                writeln!(stdout, "\n{}", answer.text)?;
            }
            eprintln!(
                "(asked whether the sources below state this answer, the model said yes with probability {confirmed:.2}, below --min-confirmed {min_confirmed:.2})"
            );
        }
        Some(Abstention::Unsupported) if stream => {
            writeln!(stdout, "\n{}", answer.text)?;
            eprintln!("(nothing in the answer above is in the sources below)");
        }
        _ => {}
    }
    // The streamed text was the model's first answer, which only
    // repeated the question; the answer is its second.
    if let (Some(first), None) = (&answer.trace.asked_again, &answer.abstained) {
        if stream {
            writeln!(stdout, "\n{}", answer.text)?;
        }
        eprintln!(
            "(the first answer, \"{first}\", only repeated the question's words; the model was asked again)"
        );
    }
    let unsupported: Vec<&SentenceSupport> =
        answer.support.iter().filter(|s| !s.supported).collect();
    if !unsupported.is_empty() {
        writeln!(stdout, "\nNot supported by the sources:")?;
        // A sentence another source holds has had its citation corrected
        // (listed below), so what is left here no source holds.
        for s in unsupported {
            writeln!(stdout, "  ? {} (support {:.2})", s.text, s.support)?;
        }
    }
    let recited: Vec<&SentenceSupport> = answer
        .support
        .iter()
        .filter(|s| !s.model_cites.is_empty())
        .collect();
    if !recited.is_empty() {
        writeln!(
            stdout,
            "\nCitations corrected (the sources cited do not hold all of it):"
        )?;
        for s in recited {
            let marks: Vec<String> = s.model_cites.iter().map(|n| format!("[{n}]")).collect();
            writeln!(stdout, "  {} (the model cited {})", s.text, marks.join(""))?;
        }
    }
    let requoted: Vec<(&str, &str)> = answer
        .support
        .iter()
        .filter_map(|s| Some((s.text.as_str(), s.model_text.as_deref()?)))
        .collect();
    if !requoted.is_empty() {
        writeln!(stdout, "\nReworded:")?;
        for (text, model) in requoted {
            writeln!(stdout, "  {text} (the model wrote: {model})")?;
        }
    }
    writeln!(stdout, "\nSources:")?;
    for c in &answer.citations {
        writeln!(stdout, "[{}] {}", c.n, label(&at(c), &c.heading))?;
    }
    Ok(())
}
