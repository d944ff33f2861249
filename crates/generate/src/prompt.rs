//! Prompt assembly: a system instruction, the retrieved sources numbered in
//! rank order, and the question, budgeted in the model's own tokens.
//!
//! The budget is the model's context minus the room kept for the answer.
//! When the sources do not all fit, earlier turns of the conversation are
//! dropped first (oldest first), then whole sources from the lowest rank up,
//! and the caller is told how many of each; text is never cut in the
//! middle. When even the question alone does not fit, that is an error.

use minijinja::{context, Environment};
use serde::Serialize;

use crate::template::{ChatTemplate, Message};
use crate::GenerateError;

/// One retrieved chunk as the prompt shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Source {
    /// Where it comes from, e.g. `corpus/glossary-en.md:12 — Glossary > RAG`.
    pub label: String,
    pub text: String,
}

/// The Jinja templates a prompt is made from. Each sees `question`,
/// `language` (e.g. `Korean`), `no_answer` (see [`no_answer`]) and
/// `sources` (a list of `n`, `label`, `text`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    pub system: String,
    pub user: String,
    /// A user message that asks whether the sources answer the question,
    /// to be replied yes or no, in place of `user` (see
    /// [`build_check_prompt`]). Without it, no such question is asked.
    #[serde(default)]
    pub check: Option<String>,
    /// A user message that asks, once the model has answered, whether the
    /// sources state that answer (it also sees `answer`), to be replied
    /// yes or no (see [`build_confirm_prompt`]). Without it, no such
    /// question is asked.
    #[serde(default)]
    pub confirm: Option<String>,
    /// A user message that asks for `text` in the language `to`: a question
    /// searched again in the documents' other language when those in its
    /// own do not answer it, and the answer written from them (see
    /// [`build_translate_prompt`]). Without it, nothing is translated.
    #[serde(default)]
    pub translate: Option<String>,
    /// A user message that asks again, in place of `user`, when the model's
    /// answer only repeated the question's words (it also sees `answer`,
    /// that first sentence; see [`build_again_prompt`]). Without it, such
    /// an answer stands.
    #[serde(default)]
    pub again: Option<String>,
}

/// The prompt templates docent ships, by name, as TOML files users can copy
/// and change (`models/prompts/`): `answer-first`, the default, and
/// `instructions-first`, for the smallest instruction models. The files
/// say what each was measured to do.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "answer-first",
        include_str!("../../../models/prompts/answer-first.toml"),
    ),
    (
        "instructions-first",
        include_str!("../../../models/prompts/instructions-first.toml"),
    ),
];

/// What an answer says when the sources do not hold it, in `language`
/// (as [`question_language`] names it).
pub fn no_answer(language: &str) -> &'static str {
    match language {
        "Korean" => "제공된 문서에는 이 질문에 대한 답이 없습니다.",
        _ => "The documents do not contain the answer to this question.",
    }
}

/// Whether an answer says that its sources do not hold the answer, in
/// English or Korean, in the words [`no_answer`] asks for or close to them.
pub fn is_decline(answer: &str) -> bool {
    let a = answer.to_lowercase();
    const SIGNS: &[&str] = &[
        "do not contain the answer",
        "does not contain the answer",
        "don't contain the answer",
        "doesn't contain the answer",
        "do not contain information",
        "does not contain information",
        "답이 없습니다",
        "답을 찾을 수 없",
        "답이 포함되어 있지 않",
        "정보가 없습니다",
        "나와 있지 않습니다",
    ];
    SIGNS.iter().any(|s| a.contains(s))
}

impl PromptTemplate {
    /// Reads a template from the TOML text of a file like those of
    /// `models/prompts/` (two strings, `system` and `user`).
    pub fn from_toml(text: &str) -> Result<Self, GenerateError> {
        toml::from_str(text).map_err(|e| {
            GenerateError::Template(format!(
                "a prompt template is a TOML file with `system` and `user` strings (and optionally `check`, `confirm`, `translate` and `again`): {e}"
            ))
        })
    }

    /// A template docent ships, by name (see [`BUILTIN_TEMPLATES`]).
    pub fn builtin(name: &str) -> Option<Self> {
        BUILTIN_TEMPLATES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| Self::from_toml(text).expect("the built-in templates parse"))
    }
}

impl Default for PromptTemplate {
    /// `answer-first`.
    fn default() -> Self {
        Self::builtin("answer-first").expect("answer-first is built in")
    }
}

/// The language a question is written in, from the scripts of its letters;
/// the answer is asked for in it.
pub fn question_language(question: &str) -> &'static str {
    let (mut hangul, mut kana, mut han, mut other) = (0usize, 0usize, 0usize, 0usize);
    for c in question.chars().filter(|c| c.is_alphabetic()) {
        match c as u32 {
            0xAC00..=0xD7A3 | 0x1100..=0x11FF | 0x3130..=0x318F => hangul += 1,
            0x3040..=0x30FF => kana += 1,
            0x4E00..=0x9FFF | 0x3400..=0x4DBF => han += 1,
            _ => other += 1,
        }
    }
    let max = hangul.max(kana).max(han);
    if max == 0 || other > 2 * max {
        "English"
    } else if hangul == max {
        "Korean"
    } else if kana > 0 {
        "Japanese"
    } else {
        "Chinese"
    }
}

/// An earlier exchange of a conversation, shown to the model before the
/// question so that a follow-up reads in context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Turn {
    pub question: String,
    pub answer: String,
}

/// A prompt ready to run.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The exact text given to the tokenizer.
    pub text: String,
    pub tokens: Vec<u32>,
    /// How many of the sources (the highest-ranked ones) it holds.
    pub sources_used: usize,
    /// How many lower-ranked sources were left out to fit.
    pub sources_dropped: usize,
    /// How many of the earlier turns (the most recent ones) it holds.
    pub turns_used: usize,
    /// How many older turns were left out to fit.
    pub turns_dropped: usize,
}

#[derive(Serialize)]
struct NumberedSource<'a> {
    n: usize,
    label: &'a str,
    text: &'a str,
}

/// Builds the largest prompt that fits `budget` tokens, dropping sources
/// from the end of `sources` (the lowest-ranked) first. `tokenize` turns the
/// rendered text into the model's tokens.
pub fn build_prompt(
    template: &PromptTemplate,
    chat: &ChatTemplate,
    question: &str,
    sources: &[Source],
    budget: usize,
    tokenize: &dyn Fn(&str) -> Vec<u32>,
) -> Result<Prompt, GenerateError> {
    build_chat_prompt(template, chat, &[], question, sources, budget, tokenize)
}

/// [`build_prompt`] after the earlier turns of a conversation (oldest
/// first), which go before the question as user and assistant messages.
/// To fit `budget`, the oldest turns are dropped first, then sources.
pub fn build_chat_prompt(
    template: &PromptTemplate,
    chat: &ChatTemplate,
    history: &[Turn],
    question: &str,
    sources: &[Source],
    budget: usize,
    tokenize: &dyn Fn(&str) -> Vec<u32>,
) -> Result<Prompt, GenerateError> {
    render_prompt(
        template,
        &template.user,
        chat,
        Rendered {
            history,
            question,
            sources,
            answer: "",
        },
        budget,
        tokenize,
    )
}

/// The prompt of `template.check`, which asks whether `sources` answer the
/// question, with the same system message, earlier turns and sources as
/// the answer's prompt (pass those it used), so that the two share their
/// start; `None` if the template has no such question.
pub fn build_check_prompt(
    template: &PromptTemplate,
    chat: &ChatTemplate,
    history: &[Turn],
    question: &str,
    sources: &[Source],
    tokenize: &dyn Fn(&str) -> Vec<u32>,
) -> Option<Result<Vec<u32>, GenerateError>> {
    let check = template.check.as_deref()?;
    Some(
        render_prompt(
            template,
            check,
            chat,
            Rendered {
                history,
                question,
                sources,
                answer: "",
            },
            usize::MAX,
            tokenize,
        )
        .map(|p| p.tokens),
    )
}

/// The prompt of `template.confirm`, which asks whether `sources` state
/// `answer` as the answer to the question, with the same system message,
/// earlier turns and sources as the answer's prompt (pass those it used),
/// so that the two share their start; `None` if the template has no such
/// question.
pub fn build_confirm_prompt(
    template: &PromptTemplate,
    chat: &ChatTemplate,
    history: &[Turn],
    question: &str,
    sources: &[Source],
    answer: &str,
    tokenize: &dyn Fn(&str) -> Vec<u32>,
) -> Option<Result<Vec<u32>, GenerateError>> {
    let confirm = template.confirm.as_deref()?;
    Some(render_about(
        template, confirm, chat, history, question, sources, answer, tokenize,
    ))
}

/// The prompt of `template.again`, which asks the question again after an
/// `answer` that only repeated its words, with the same system message,
/// earlier turns and sources as the answer's prompt (pass those it used),
/// so that the two share their start; `None` if the template has no such
/// message.
pub fn build_again_prompt(
    template: &PromptTemplate,
    chat: &ChatTemplate,
    history: &[Turn],
    question: &str,
    sources: &[Source],
    answer: &str,
    tokenize: &dyn Fn(&str) -> Vec<u32>,
) -> Option<Result<Vec<u32>, GenerateError>> {
    let again = template.again.as_deref()?;
    Some(render_about(
        template, again, chat, history, question, sources, answer, tokenize,
    ))
}

/// A user message about an answer, after the answer's system message,
/// earlier turns and sources, unbudgeted (they fitted the answer's prompt).
#[allow(clippy::too_many_arguments)]
fn render_about(
    template: &PromptTemplate,
    user_template: &str,
    chat: &ChatTemplate,
    history: &[Turn],
    question: &str,
    sources: &[Source],
    answer: &str,
    tokenize: &dyn Fn(&str) -> Vec<u32>,
) -> Result<Vec<u32>, GenerateError> {
    render_prompt(
        template,
        user_template,
        chat,
        Rendered {
            history,
            question,
            sources,
            answer,
        },
        usize::MAX,
        tokenize,
    )
    .map(|p| p.tokens)
}

/// What a prompt is rendered from.
#[derive(Clone, Copy)]
struct Rendered<'a> {
    history: &'a [Turn],
    question: &'a str,
    sources: &'a [Source],
    /// The answer a `confirm` or `again` template is about; empty for the
    /// others.
    answer: &'a str,
}

fn render_prompt(
    template: &PromptTemplate,
    user_template: &str,
    chat: &ChatTemplate,
    what: Rendered<'_>,
    budget: usize,
    tokenize: &dyn Fn(&str) -> Vec<u32>,
) -> Result<Prompt, GenerateError> {
    let Rendered {
        history,
        question,
        sources,
        answer,
    } = what;
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.add_template("system", &template.system)
        .map_err(|e| GenerateError::Template(format!("the system prompt template: {e}")))?;
    env.add_template("user", user_template)
        .map_err(|e| GenerateError::Template(format!("the user prompt template: {e}")))?;
    let language = question_language(question);
    let render = |turns: usize, n: usize| -> Result<(String, Vec<u32>), GenerateError> {
        let numbered: Vec<NumberedSource> = sources[..n]
            .iter()
            .enumerate()
            .map(|(i, s)| NumberedSource {
                n: i + 1,
                label: &s.label,
                text: &s.text,
            })
            .collect();
        let ctx = context! {
            question => question,
            language => language,
            no_answer => no_answer(language),
            sources => numbered,
            answer => answer,
        };
        let part = |name: &str| -> Result<String, GenerateError> {
            env.get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| GenerateError::Template(format!("the {name} prompt template: {e}")))
        };
        let system = part("system")?;
        let user = part("user")?;
        let mut messages = Vec::new();
        if !system.trim().is_empty() {
            messages.push(Message::new("system", system));
        }
        for t in &history[history.len() - turns..] {
            messages.push(Message::new("user", t.question.as_str()));
            messages.push(Message::new("assistant", t.answer.as_str()));
        }
        messages.push(Message::new("user", user));
        let text = chat.render(&messages, true)?;
        let tokens = tokenize(&text);
        Ok((text, tokens))
    };
    // Drop from the lowest rank until it fits; the token count is not
    // additive across sources (merges at the seams), so each size is checked
    // by rendering it.
    let (mut turns, mut n) = (history.len(), sources.len());
    loop {
        let (text, tokens) = render(turns, n)?;
        if tokens.len() <= budget {
            return Ok(Prompt {
                text,
                tokens,
                sources_used: n,
                sources_dropped: sources.len() - n,
                turns_used: turns,
                turns_dropped: history.len() - turns,
            });
        }
        if turns > 0 {
            turns -= 1;
        } else if n > 0 {
            n -= 1;
        } else {
            return Err(GenerateError::PromptTooLong {
                tokens: tokens.len(),
                budget,
            });
        }
    }
}

/// The prompt of `template.translate`, which asks for `text`, a `what`
/// ("question", "sentence"), in the language `to` ("English", "Korean"): a
/// user message alone, without the answer's system message or sources, so
/// the model only translates. `None` if the template has no such request.
pub fn build_translate_prompt(
    template: &PromptTemplate,
    chat: &ChatTemplate,
    text: &str,
    what: &str,
    to: &str,
    tokenize: &dyn Fn(&str) -> Vec<u32>,
) -> Option<Result<Vec<u32>, GenerateError>> {
    let translate = template.translate.as_deref()?;
    let render = || -> Result<Vec<u32>, GenerateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        let user = env
            .template_from_str(translate)
            .and_then(|t| t.render(context! { text => text, what => what, to => to }))
            .map_err(|e| GenerateError::Template(format!("the translate prompt template: {e}")))?;
        let text = chat.render(&[Message::new("user", user)], true)?;
        Ok(tokenize(&text))
    };
    Some(render())
}
