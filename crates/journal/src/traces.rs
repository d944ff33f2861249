//! Traces and their ratings.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::journal::now_ms;
use crate::{Journal, JournalError, Trace};

/// A trace in a list: enough to pick one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    pub id: String,
    pub started_at_ms: i64,
    pub question: String,
    pub answer: String,
    pub abstained: bool,
    pub model: Option<String>,
    pub total_ms: f64,
    pub conversation_id: Option<String>,
    pub rating: Option<Rating>,
}

/// A user's verdict on an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    /// Thumbs up (true) or down.
    pub up: bool,
    #[serde(default)]
    pub note: Option<String>,
}

/// A rated trace, for export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatedTrace {
    pub rating: Rating,
    pub trace: Trace,
}

impl Journal {
    /// Keeps `trace`, as part of `conversation_id` if given, then applies
    /// the retention limits.
    pub fn record(&self, trace: &Trace, conversation_id: Option<&str>) -> Result<(), JournalError> {
        let json = serde_json::to_string(trace).map_err(|source| JournalError::Damaged {
            id: trace.id.clone(),
            source,
        })?;
        let conn = self.conn();
        let e = self.sqlite();
        conn.execute(
            "INSERT OR REPLACE INTO traces
             (id, started_at_ms, question, answer, abstained, model, total_ms, conversation_id, trace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                trace.id,
                trace.started_at_ms as i64,
                trace.question,
                trace.answer,
                trace.abstained.is_some(),
                trace.model.as_ref().map(|m| m.id.clone()),
                trace.timings.total_ms,
                conversation_id,
                json
            ],
        )
        .map_err(&e)?;
        let r = self.retention();
        if let Some(days) = r.max_age_days {
            let cutoff = now_ms() - (days as i64) * 86_400_000;
            conn.execute("DELETE FROM traces WHERE started_at_ms < ?1", [cutoff])
                .map_err(&e)?;
        }
        conn.execute(
            "DELETE FROM traces WHERE id IN (
                SELECT id FROM traces ORDER BY started_at_ms DESC, id DESC LIMIT -1 OFFSET ?1)",
            [r.max_traces as i64],
        )
        .map_err(&e)?;
        Ok(())
    }

    /// The newest traces first, `limit` of them after skipping `offset`.
    pub fn list(&self, limit: usize, offset: usize) -> Result<Vec<TraceSummary>, JournalError> {
        let conn = self.conn();
        let e = self.sqlite();
        let mut st = conn
            .prepare(
                "SELECT t.id, t.started_at_ms, t.question, t.answer, t.abstained, t.model,
                        t.total_ms, t.conversation_id, r.up, r.note
                 FROM traces t LEFT JOIN ratings r ON r.trace_id = t.id
                 ORDER BY t.started_at_ms DESC, t.id DESC LIMIT ?1 OFFSET ?2",
            )
            .map_err(&e)?;
        let rows = st
            .query_map(params![limit as i64, offset as i64], |row| {
                let up: Option<bool> = row.get(8)?;
                Ok(TraceSummary {
                    id: row.get(0)?,
                    started_at_ms: row.get(1)?,
                    question: row.get(2)?,
                    answer: row.get(3)?,
                    abstained: row.get(4)?,
                    model: row.get(5)?,
                    total_ms: row.get(6)?,
                    conversation_id: row.get(7)?,
                    rating: up.map(|up| Rating {
                        up,
                        note: row.get(9).unwrap_or(None),
                    }),
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<_, _>>().map_err(&e)
    }

    /// How many traces are kept.
    pub fn count(&self) -> Result<usize, JournalError> {
        let conn = self.conn();
        conn.query_row("SELECT COUNT(*) FROM traces", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(self.sqlite())
    }

    /// The trace `id` with its rating; `None` when there is none (never
    /// kept, or removed by retention).
    pub fn get(&self, id: &str) -> Result<Option<(Trace, Option<Rating>)>, JournalError> {
        let conn = self.conn();
        let e = self.sqlite();
        let row: Option<(String, Option<bool>, Option<String>)> = conn
            .query_row(
                "SELECT t.trace, r.up, r.note FROM traces t
                 LEFT JOIN ratings r ON r.trace_id = t.id WHERE t.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(&e)?;
        let Some((json, up, note)) = row else {
            return Ok(None);
        };
        let trace = serde_json::from_str(&json).map_err(|source| JournalError::Damaged {
            id: id.to_string(),
            source,
        })?;
        Ok(Some((trace, up.map(|up| Rating { up, note }))))
    }

    /// Rates the trace `id`, replacing an earlier rating.
    pub fn rate(&self, id: &str, rating: &Rating) -> Result<(), JournalError> {
        let conn = self.conn();
        let e = self.sqlite();
        let n = conn
            .execute(
                "INSERT INTO ratings (trace_id, up, note, rated_at_ms)
                 SELECT id, ?2, ?3, ?4 FROM traces WHERE id = ?1
                 ON CONFLICT(trace_id) DO UPDATE SET up = excluded.up, note = excluded.note,
                     rated_at_ms = excluded.rated_at_ms",
                params![id, rating.up, rating.note, now_ms()],
            )
            .map_err(&e)?;
        if n == 0 {
            return Err(JournalError::NotFound {
                what: "trace",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Every rated trace, oldest first.
    pub fn rated(&self) -> Result<Vec<RatedTrace>, JournalError> {
        let conn = self.conn();
        let e = self.sqlite();
        let mut st = conn
            .prepare(
                "SELECT t.id, t.trace, r.up, r.note FROM traces t
                 JOIN ratings r ON r.trace_id = t.id ORDER BY t.started_at_ms, t.id",
            )
            .map_err(&e)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(&e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&e)?;
        rows.into_iter()
            .map(|(id, json, up, note)| {
                let trace = serde_json::from_str(&json)
                    .map_err(|source| JournalError::Damaged { id, source })?;
                Ok(RatedTrace {
                    rating: Rating { up, note },
                    trace,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Retention;
    use docent_rag::trace::{IndexRef, TraceSettings};
    use docent_rag::{models::ModelRef, AnswerTimings, SamplerConfig, SearchMode};

    fn trace(id: &str, started_at_ms: u64) -> Trace {
        Trace {
            id: id.into(),
            started_at_ms,
            question: format!("question {id}"),
            history_turns: 0,
            retrieval_query: None,
            translated_query: None,
            translated_answer_from: None,
            encoder: ModelRef {
                id: "multilingual-e5-small".into(),
                revision: "r".into(),
            },
            model: None,
            index: IndexRef {
                root: "/docs".into(),
                generation: "gen-1".into(),
                chunks: 3,
            },
            settings: TraceSettings {
                k: 2,
                mode: SearchMode::Hybrid,
                ef: 64,
                min_score: 0.8,
                min_score_across: None,
                max_tokens: 256,
                context: None,
                sampler: SamplerConfig::default(),
            },
            spans: vec![],
            candidates: vec![],
            prompt: None,
            answer: format!("answer {id}"),
            declined_text: None,
            asked_again: None,
            declined_support: Vec::new(),
            support: vec![],
            sources: vec![],
            abstained: None,
            answerable: None,
            confirmed: None,
            confidence: None,
            stop: None,
            timings: AnswerTimings::default(),
        }
    }

    #[test]
    fn traces_round_trip_with_their_rating() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open_beside(dir.path(), Retention::default()).unwrap();
        let now = now_ms() as u64;
        let t = trace("a1", now);
        j.record(&t, None).unwrap();
        let (back, rating) = j.get("a1").unwrap().unwrap();
        assert_eq!(back, t);
        assert_eq!(rating, None);
        let r = Rating {
            up: false,
            note: Some("wrong source".into()),
        };
        j.rate("a1", &r).unwrap();
        // A second rating replaces the first.
        let r2 = Rating {
            up: true,
            note: None,
        };
        j.rate("a1", &r2).unwrap();
        assert_eq!(j.get("a1").unwrap().unwrap().1, Some(r2.clone()));
        assert_eq!(j.rated().unwrap()[0].rating, r2);
        assert!(matches!(
            j.rate("missing", &r),
            Err(JournalError::NotFound { .. })
        ));
        assert!(j.get("missing").unwrap().is_none());
    }

    #[test]
    fn retention_removes_the_oldest_and_the_expired() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open_beside(
            dir.path(),
            Retention {
                max_traces: 3,
                max_age_days: Some(1),
            },
        )
        .unwrap();
        let now = now_ms() as u64;
        // Two days old: removed on insert.
        j.record(&trace("old", now - 2 * 86_400_000), None).unwrap();
        assert_eq!(j.count().unwrap(), 0);
        for i in 0..5u64 {
            j.record(&trace(&format!("t{i}"), now + i), None).unwrap();
        }
        let ids: Vec<String> = j.list(10, 0).unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["t4", "t3", "t2"]);
        // The ratings of removed traces go with them.
        j.rate(
            "t2",
            &Rating {
                up: true,
                note: None,
            },
        )
        .unwrap();
        j.record(&trace("t5", now + 5), None).unwrap();
        assert!(j.rated().unwrap().is_empty());
    }
}
