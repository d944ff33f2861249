//! A hand-written question set about a folder of documents (the format of
//! `tests/fixtures/corpus-qa.toml`): each question with the key fact a
//! right answer contains and the files that hold it, or marked as not
//! answered by the folder.

use serde::Deserialize;

use crate::{AnswerMetric, EvalError};

/// One question of a [`QaSet`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaQuestion {
    pub question: String,
    /// Any one of these in the answer makes it right.
    #[serde(default)]
    pub fact: Vec<String>,
    /// File names (not paths) of which the answer must cite one.
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default = "yes")]
    pub answerable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaSet {
    #[serde(rename = "question")]
    pub questions: Vec<QaQuestion>,
}

impl QaSet {
    /// Parses the TOML text of a set and checks that every answerable
    /// question has a fact and a source.
    pub fn from_toml(text: &str) -> Result<QaSet, EvalError> {
        let set: QaSet = toml::from_str(text)
            .map_err(|e| EvalError::QuestionSet(format!("question set: {e}")))?;
        if set.questions.is_empty() {
            return Err(EvalError::QuestionSet(
                "the question set has no [[question]]".into(),
            ));
        }
        for q in &set.questions {
            if q.answerable && (q.fact.is_empty() || q.source.is_empty()) {
                return Err(EvalError::QuestionSet(format!(
                    "{:?} is answerable but lacks `fact` or `source`",
                    q.question
                )));
            }
        }
        Ok(set)
    }
}

impl QaQuestion {
    /// Whether `answer` states one of the facts: as written (case aside),
    /// or after the normalisation of the question's script (KorQuAD's for
    /// Korean, with spaces ignored; SQuAD's otherwise).
    pub fn states_fact(&self, answer: &str, korean: bool) -> bool {
        let metric = if korean {
            AnswerMetric::KorQuad
        } else {
            AnswerMetric::Squad
        };
        let squash = |s: &str| metric.normalize(s).split_whitespace().collect::<String>();
        let (raw, norm) = (answer.to_lowercase(), squash(answer));
        self.fact.iter().any(|f| {
            let n = squash(f);
            raw.contains(&f.to_lowercase()) || (!n.is_empty() && norm.contains(&n))
        })
    }

    /// Whether one of `paths` (relative paths of cited files) is one of the
    /// question's sources.
    pub fn cites_source<'a>(&self, mut paths: impl Iterator<Item = &'a str>) -> bool {
        paths.any(|p| {
            let name = p.rsplit(['/', '\\']).next().unwrap_or(p);
            self.source.iter().any(|s| s == name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_parses_and_scores_facts_and_sources() {
        let set = QaSet::from_toml(
            r#"
            [[question]]
            question = "Who owns GitHub?"
            fact = ["Microsoft"]
            source = ["glossary-en.md"]
            [[question]]
            question = "양자화란?"
            fact = ["적은 비트"]
            source = ["glossary-ko.md"]
            [[question]]
            question = "What is the capital of Australia?"
            answerable = false
            "#,
        )
        .unwrap();
        let q = &set.questions;
        assert!(q[0].states_fact("GitHub is owned by microsoft [1].", false));
        assert!(!q[0].states_fact("GitHub is owned by Google.", false));
        assert!(q[1].states_fact("가중치를 더 적은비트로 저장합니다.", true));
        assert!(q[0].cites_source(["docs/glossary-en.md"].into_iter()));
        assert!(!q[0].cites_source(["glossary-ko.md"].into_iter()));
        assert!(!q[2].answerable);
        assert!(QaSet::from_toml("[[question]]\nquestion = \"x\"\n").is_err());
        assert!(QaSet::from_toml("nonsense").is_err());
    }
}
