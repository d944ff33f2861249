//! `/metrics`: Prometheus text, through the `prometheus-client` crate.
//!
//! * `docent_requests_total{route,status}`: requests served;
//! * `docent_request_seconds{route}`: time to the response's headers (a
//!   streamed answer's headers leave before its first token);
//! * `docent_queue_depth`, `docent_queue_waiting`: answers admitted
//!   (running and waiting) and waiting;
//! * `docent_answers_total{outcome}`: answers made (`answered`,
//!   `declined`, `cancelled`, `failed`);
//! * `docent_answer_seconds`, `docent_time_to_first_token_seconds`;
//! * `docent_decode_tokens_per_second`: the last answer's decoding rate;
//! * `docent_generated_tokens_total`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub queue_depth: Gauge,
    pub queue_waiting: Gauge,
    pub answers: Family<OutcomeLabels, Counter>,
    pub answer_seconds: Histogram,
    pub ttft_seconds: Histogram,
    pub decode_rate: Gauge<f64, AtomicU64>,
    pub generated_tokens: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("docent");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "HTTP requests served", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 18))
        });
        registry.register(
            "request_seconds",
            "Time to the response's headers",
            latency.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Answers admitted: running and waiting",
            queue_depth.clone(),
        );
        let queue_waiting = Gauge::default();
        registry.register(
            "queue_waiting",
            "Answers waiting for a slot",
            queue_waiting.clone(),
        );
        let answers = Family::<OutcomeLabels, Counter>::default();
        registry.register("answers", "Answers made, by outcome", answers.clone());
        let answer_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "answer_seconds",
            "Time to make an answer, retrieval to last token",
            answer_seconds.clone(),
        );
        let ttft_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register(
            "time_to_first_token_seconds",
            "From the start of prompt processing to the first answer token",
            ttft_seconds.clone(),
        );
        let decode_rate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "decode_tokens_per_second",
            "Decoding rate of the last answer",
            decode_rate.clone(),
        );
        let generated_tokens = Counter::default();
        registry.register(
            "generated_tokens",
            "Answer tokens generated",
            generated_tokens.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            queue_depth,
            queue_waiting,
            answers,
            answer_seconds,
            ttft_seconds,
            decode_rate,
            generated_tokens,
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records a finished answer.
    pub fn answer(&self, a: &docent_rag::Answer) {
        let outcome = if a.stop == Some(docent_rag::StopReason::Cancelled) {
            "cancelled"
        } else if a.abstained.is_some() {
            "declined"
        } else {
            "answered"
        };
        self.answers.get_or_create(&OutcomeLabels { outcome }).inc();
        let t = &a.trace.timings;
        self.answer_seconds.observe(t.total_ms / 1e3);
        if t.decode_tokens > 0 {
            self.ttft_seconds.observe(t.time_to_first_token_ms / 1e3);
            self.decode_rate.set(t.decode_tokens_per_s);
            self.generated_tokens.inc_by(t.decode_tokens as u64);
        }
    }

    pub fn failed(&self) {
        self.answers
            .get_or_create(&OutcomeLabels { outcome: "failed" })
            .inc();
    }
}
