//! Two-turn conversations about a folder of documents (the format of
//! `tests/fixtures/conversations.toml`): a first question, a follow-up that
//! names its topic only through the first, and where a right source for the
//! follow-up is.

use serde::Deserialize;

use crate::EvalError;

/// One conversation of a [`ConversationSet`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    pub first: String,
    pub follow_up: String,
    /// Texts of which a right source's path or heading path holds one.
    pub expect: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationSet {
    #[serde(rename = "conversation")]
    pub conversations: Vec<Conversation>,
}

impl ConversationSet {
    pub fn from_toml(text: &str) -> Result<ConversationSet, EvalError> {
        let set: ConversationSet = toml::from_str(text)
            .map_err(|e| EvalError::QuestionSet(format!("conversation set: {e}")))?;
        if set.conversations.is_empty() {
            return Err(EvalError::QuestionSet(
                "the conversation set has no [[conversation]]".into(),
            ));
        }
        Ok(set)
    }
}

impl Conversation {
    /// Whether a chunk of `path` under `headings` is a right source for
    /// the follow-up.
    pub fn is_source(&self, path: &str, headings: &[String]) -> bool {
        let place = format!("{path} {}", headings.join(" > "));
        self.expect.iter().any(|e| place.contains(e.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_parses_and_names_its_sources() {
        let set = ConversationSet::from_toml(
            "[[conversation]]\nfirst = \"What is LangServe?\"\nfollow_up = \"What is it built on?\"\n\
             expect = [\"LangServe\"]\n",
        )
        .unwrap();
        let c = &set.conversations[0];
        assert!(c.is_source("langchain-ecosystem.html", &["LangServe".into()]));
        assert!(!c.is_source("glossary-en.md", &["Quantization".into()]));
        assert!(ConversationSet::from_toml("").is_err());
    }
}
