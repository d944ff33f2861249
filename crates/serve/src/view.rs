//! How answers and sources look on the wire, shared by the OpenAI and
//! LangServe routes and the web page.

use docent_rag::{Abstention, Answer, Citation, SentenceSupport};
use serde::Serialize;

/// A source of an answer. `url` opens the cited chunk on this server (by
/// chunk id: a request can never name a file).
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    pub n: usize,
    pub chunk_id: u64,
    pub path: String,
    pub line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    pub heading: Vec<String>,
    pub score: f32,
    pub similarity: f32,
    pub url: String,
}

impl From<&Citation> for SourceView {
    fn from(c: &Citation) -> Self {
        SourceView {
            n: c.n,
            chunk_id: c.chunk_id,
            path: c.path.clone(),
            line: c.line,
            page: c.page,
            heading: c.heading.clone(),
            score: c.score,
            similarity: c.similarity,
            url: format!("/chunks/{}", c.chunk_id),
        }
    }
}

pub fn sources(c: &[Citation]) -> Vec<SourceView> {
    c.iter().map(SourceView::from).collect()
}

/// What docent adds to an answer: the `docent` field of an OpenAI
/// completion, and the output of the `ask` chain beside its text.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerExtras {
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    pub sources: Vec<SourceView>,
    /// Each sentence's support by the sources.
    pub support: Vec<SentenceSupport>,
    pub abstained: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abstention: Option<Abstention>,
    /// The query whose sources were used, when a follow-up was rewritten or
    /// the question translated into the documents' other language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval_query: Option<String>,
}

impl AnswerExtras {
    pub fn of(a: &Answer, conversation_id: Option<String>) -> AnswerExtras {
        AnswerExtras {
            trace_id: a.trace.id.clone(),
            conversation_id,
            sources: sources(&a.citations),
            support: a.support.clone(),
            abstained: a.abstained.is_some(),
            abstention: a.abstained.clone(),
            retrieval_query: a.trace.retrieval_query.clone(),
        }
    }
}

/// The output of the `ask` chain.
#[derive(Debug, Clone, Serialize)]
pub struct AskOutput {
    pub answer: String,
    #[serde(flatten)]
    pub extras: AnswerExtras,
}

impl AskOutput {
    pub fn of(a: &Answer, conversation_id: Option<String>) -> AskOutput {
        AskOutput {
            answer: a.text.clone(),
            extras: AnswerExtras::of(a, conversation_id),
        }
    }
}
