//! `docent chat`: a conversation in the terminal, with line editing and
//! history. Follow-up questions are made standalone before retrieval (see
//! `docent_rag::rewrite`), and the conversation is kept in the journal
//! beside the index, so it can be listed (`--list`) and resumed
//! (`--resume ID`).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use docent_journal::ConversationTurn;
use docent_rag::{Event, GeneratorChoice, GeneratorLoad, Turn};
use rustyline::error::ReadlineError;

use crate::display::{label, location};
use crate::flags::{AnswerFlags, EncoderFlags, JournalFlags, Mode};
use crate::search_cmd::open_engine;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Continue this conversation (ids from --list).
    #[arg(long, value_name = "ID")]
    pub resume: Option<String>,
    /// List the kept conversations and exit.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub encoder: EncoderFlags,
    #[command(flatten)]
    pub answer: AnswerFlags,
    #[command(flatten)]
    pub journal: JournalFlags,
}

const HELP: &str = "Ask in Korean or English. Commands: /new (a new conversation), /sources (the last answer's), /trace (its id), /quit.";

pub fn run(index_dir: &Path, args: ChatArgs) -> Result<()> {
    let journal = args.journal.open(index_dir)?;
    if args.list {
        for c in journal.conversations(50)? {
            println!("{}  {} turn(s)  {}", c.id, c.turns, c.title);
        }
        return Ok(());
    }
    let mut conversation = args.resume.clone();
    let mut history: Vec<Turn> = match &conversation {
        Some(id) => journal
            .turns(id)
            .with_context(|| "`docent chat --list` shows the conversations kept".to_string())?
            .into_iter()
            .map(|t| Turn {
                question: t.question,
                answer: t.answer,
            })
            .collect(),
        None => Vec::new(),
    };
    let cfg = args.answer.config(Mode::Hybrid.into())?;
    cfg.validate()?;
    let engine = open_engine(
        index_dir,
        None,
        args.encoder.name(),
        GeneratorChoice {
            load: GeneratorLoad::InBackground,
            ..args.answer.generator()
        },
        false,
    )?;
    let root = engine.index()?.meta().root.clone();
    let mut rl = rustyline::DefaultEditor::new().context("starting the line editor")?;
    let history_file = index_dir.join("chat_history.txt");
    let _ = rl.load_history(&history_file);
    println!("{HELP}");
    for t in &history {
        println!("› {}\n{}\n", t.question, t.answer);
    }
    let mut last: Option<docent_rag::Answer> = None;
    loop {
        let line = match rl.readline("› ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading the question"),
        };
        let q = line.trim();
        if q.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(q);
        match q {
            "/quit" | "/exit" => break,
            "/help" => {
                println!("{HELP}");
                continue;
            }
            "/new" => {
                conversation = None;
                history.clear();
                println!("(a new conversation)");
                continue;
            }
            "/sources" => {
                for c in last.iter().flat_map(|a| &a.citations) {
                    println!(
                        "[{}] {}",
                        c.n,
                        label(&location(&root, &c.path, c.line, c.page), &c.heading)
                    );
                }
                continue;
            }
            "/trace" => {
                if let Some(a) = &last {
                    println!("{} (docent traces show {})", a.trace.id, a.trace.id);
                }
                continue;
            }
            _ => {}
        }
        let mut stdout = std::io::stdout().lock();
        let mut streamed = false;
        let answer = engine.answer(q, &history, &cfg, &mut |e| {
            if let Event::Text(t) = e {
                streamed = true;
                if write!(stdout, "{t}").and_then(|_| stdout.flush()).is_err() {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        drop(stdout);
        // Declined before the model ran: nothing was streamed.
        if !streamed {
            print!("{}", answer.text);
        }
        println!();
        // What streamed only repeated the question; the answer is the
        // model's second.
        if streamed && answer.trace.asked_again.is_some() && answer.abstained.is_none() {
            println!(
                "{}\n  (the first answer only repeated the question; asked again)",
                answer.text
            );
        }
        if let Some(rq) = &answer.trace.retrieval_query {
            println!("  (searched for: {rq})");
        }
        for c in &answer.citations {
            println!(
                "  [{}] {}",
                c.n,
                label(&location(&root, &c.path, c.line, c.page), &c.heading)
            );
        }
        println!();
        let id = match &conversation {
            Some(id) => id.clone(),
            None => {
                let id = journal.start_conversation(q)?;
                conversation = Some(id.clone());
                id
            }
        };
        if let Err(e) = journal.record(&answer.trace, Some(&id)) {
            eprintln!("warning: the trace was not kept: {e}");
        }
        journal.add_turn(
            &id,
            &ConversationTurn {
                question: q.to_string(),
                answer: answer.text.clone(),
                trace_id: Some(answer.trace.id.clone()),
            },
        )?;
        history.push(Turn {
            question: q.to_string(),
            answer: answer.text.clone(),
        });
        last = Some(answer);
    }
    let _ = rl.save_history(&history_file);
    if let Some(id) = conversation {
        println!("(kept as {id}; `docent chat --resume {id}` continues it)");
    }
    Ok(())
}
