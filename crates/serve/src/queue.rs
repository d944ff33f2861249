//! Admission to generation: a bounded number of answers run at once, a
//! bounded number wait, and any request beyond both is turned away at
//! once (429 with `Retry-After`) instead of piling up. Retrieval-only
//! requests never pass through here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::QueueConfig;
use crate::error::ApiError;

pub struct Queue {
    slots: Arc<Semaphore>,
    /// Admitted requests: running and waiting.
    admitted: AtomicUsize,
    capacity: usize,
    concurrent: usize,
    /// A running mean of how long an answer holds its slot, in ms, for
    /// `Retry-After`.
    mean_ms: AtomicU64,
}

/// A request's place: in the queue while waiting, then holding a slot.
/// Dropping it frees both.
pub struct Ticket {
    queue: Arc<Queue>,
    permit: Option<OwnedSemaphorePermit>,
    started: Option<std::time::Instant>,
}

impl Queue {
    pub fn new(cfg: QueueConfig) -> Queue {
        Queue {
            slots: Arc::new(Semaphore::new(cfg.concurrent)),
            admitted: AtomicUsize::new(0),
            capacity: cfg.concurrent + cfg.depth,
            concurrent: cfg.concurrent,
            mean_ms: AtomicU64::new(5_000),
        }
    }

    /// Takes a place, or says when to come back.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, ApiError> {
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(Ticket {
                queue: self.clone(),
                permit: None,
                started: None,
            }),
            Err(n) => {
                let per = self.mean_ms.load(Ordering::Relaxed).max(1);
                let wait_ms = per * (n.saturating_sub(self.concurrent) as u64 + 1)
                    / self.concurrent.max(1) as u64;
                Err(ApiError::busy(wait_ms.div_ceil(1000).max(1)))
            }
        }
    }

    /// Requests admitted and not finished: running and waiting.
    pub fn depth(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.depth()
            .saturating_sub(self.concurrent - self.slots.available_permits().min(self.concurrent))
    }
}

impl Ticket {
    /// Waits for a slot to generate in.
    pub async fn run(&mut self) {
        if self.permit.is_none() {
            // The semaphore is never closed.
            self.permit = self.queue.slots.clone().acquire_owned().await.ok();
            self.started = Some(std::time::Instant::now());
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(t) = self.started {
            let ms = t.elapsed().as_millis() as u64;
            let old = self.queue.mean_ms.load(Ordering::Relaxed);
            self.queue
                .mean_ms
                .store((old * 7 + ms) / 8, Ordering::Relaxed);
        }
        self.queue.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_beyond_the_slots_and_the_queue_are_turned_away() {
        let q = Arc::new(Queue::new(QueueConfig {
            concurrent: 1,
            depth: 1,
        }));
        let mut a = q.admit().unwrap();
        a.run().await;
        let b = q.admit().unwrap();
        let busy = q.admit().err().expect("third request refused");
        assert_eq!(busy.status.as_u16(), 429);
        assert!(busy.retry_after.unwrap() >= 1);
        assert_eq!(q.waiting(), 1);
        drop(a);
        drop(b);
        assert_eq!(q.depth(), 0);
        assert!(q.admit().is_ok());
    }
}
