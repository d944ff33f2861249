//! Conversations: turns of questions and answers, resumable.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::journal::now_ms;
use crate::{Journal, JournalError};

/// A conversation in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    /// Its first question, shortened.
    pub title: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub turns: usize,
}

/// One question and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationTurn {
    pub question: String,
    pub answer: String,
    /// The trace of the answer, while retention keeps it.
    pub trace_id: Option<String>,
}

/// The longest title, in characters.
const TITLE_CHARS: usize = 80;

impl Journal {
    /// Starts a conversation titled after its first question; returns its id.
    pub fn start_conversation(&self, first_question: &str) -> Result<String, JournalError> {
        let id = new_id();
        let title: String = first_question.trim().chars().take(TITLE_CHARS).collect();
        let now = now_ms();
        self.conn()
            .execute(
                "INSERT INTO conversations (id, title, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?3)",
                params![id, title, now],
            )
            .map_err(self.sqlite())?;
        Ok(id)
    }

    /// Appends a turn to the conversation `id`.
    pub fn add_turn(&self, id: &str, turn: &ConversationTurn) -> Result<(), JournalError> {
        let conn = self.conn();
        let e = self.sqlite();
        let n = conn
            .execute(
                "UPDATE conversations SET updated_at_ms = ?2 WHERE id = ?1",
                params![id, now_ms()],
            )
            .map_err(&e)?;
        if n == 0 {
            return Err(JournalError::NotFound {
                what: "conversation",
                id: id.to_string(),
            });
        }
        conn.execute(
            "INSERT INTO turns (conversation_id, seq, question, answer, trace_id)
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM turns WHERE conversation_id = ?1",
            params![id, turn.question, turn.answer, turn.trace_id],
        )
        .map_err(&e)?;
        Ok(())
    }

    /// The conversations, the most recently continued first.
    pub fn conversations(&self, limit: usize) -> Result<Vec<Conversation>, JournalError> {
        let conn = self.conn();
        let e = self.sqlite();
        let mut st = conn
            .prepare(
                "SELECT c.id, c.title, c.created_at_ms, c.updated_at_ms,
                        (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id)
                 FROM conversations c ORDER BY c.updated_at_ms DESC, c.id DESC LIMIT ?1",
            )
            .map_err(&e)?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok(Conversation {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    created_at_ms: r.get(2)?,
                    updated_at_ms: r.get(3)?,
                    turns: r.get::<_, i64>(4)? as usize,
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<_, _>>().map_err(&e)
    }

    /// The turns of the conversation `id`, oldest first; `NotFound` when
    /// there is no such conversation.
    pub fn turns(&self, id: &str) -> Result<Vec<ConversationTurn>, JournalError> {
        let conn = self.conn();
        let e = self.sqlite();
        let exists: Option<i64> = conn
            .query_row("SELECT 1 FROM conversations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&e)?;
        if exists.is_none() {
            return Err(JournalError::NotFound {
                what: "conversation",
                id: id.to_string(),
            });
        }
        let mut st = conn
            .prepare(
                "SELECT question, answer, trace_id FROM turns
                 WHERE conversation_id = ?1 ORDER BY seq",
            )
            .map_err(&e)?;
        let rows = st
            .query_map([id], |r| {
                Ok(ConversationTurn {
                    question: r.get(0)?,
                    answer: r.get(1)?,
                    trace_id: r.get(2)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<_, _>>().map_err(&e)
    }
}

/// A new conversation id: `c` and 24 hex digits, unique within a machine.
fn new_id() -> String {
    format!("c{}", docent_rag::trace::new_trace_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Retention;

    #[test]
    fn turns_come_back_in_order_and_unknown_ids_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open_beside(dir.path(), Retention::default()).unwrap();
        let id = j.start_conversation("양자화란 무엇인가요?").unwrap();
        for (q, a) in [
            ("양자화란 무엇인가요?", "가중치를 적은 비트로."),
            ("그건 왜 빠른가요?", "메모리를 덜 읽어서."),
        ] {
            j.add_turn(
                &id,
                &ConversationTurn {
                    question: q.into(),
                    answer: a.into(),
                    trace_id: None,
                },
            )
            .unwrap();
        }
        let turns = j.turns(&id).unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[1].question, "그건 왜 빠른가요?");
        let list = j.conversations(10).unwrap();
        assert_eq!(list[0].turns, 2);
        assert_eq!(list[0].title, "양자화란 무엇인가요?");
        assert!(matches!(
            j.turns("c-missing"),
            Err(JournalError::NotFound { .. })
        ));
        assert!(j
            .add_turn(
                "c-missing",
                &ConversationTurn {
                    question: "x".into(),
                    answer: "y".into(),
                    trace_id: None
                }
            )
            .is_err());
    }
}
