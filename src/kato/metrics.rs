//! What the KATO client did: calls and HTTP requests per endpoint, latency
//! percentiles and distributions, errors by class, retries, session recreations and
//! server outages.
//!
//! Counters are atomics and each endpoint has its own latency histogram behind its
//! own mutex, so the trainer's worker tasks rarely contend. Latency is recorded per
//! HTTP request that got an answer (any status), in microseconds; a request that never
//! reached the server has no latency and is only counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::error::ErrorClass;
use super::latency_histogram::LatencyHistogram;

/// Which KATO call: a fixed label for metrics and errors, never a URL with ids in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// `GET /health`
    Health,
    /// `POST /sessions`
    CreateSession,
    /// `GET /sessions/{sid}`
    GetSession,
    /// `DELETE /sessions/{sid}`
    DeleteSession,
    /// `POST /sessions/{sid}/config`
    SessionConfig,
    /// `POST /sessions/{sid}/observe`
    Observe,
    /// `POST /sessions/{sid}/observe-sequence`
    ObserveSequence,
    /// `POST /sessions/{sid}/learn`
    Learn,
    /// `POST /sessions/{sid}/clear-stm`
    ClearStm,
    /// `GET /sessions/{sid}/stm`
    GetStm,
    /// `GET /pattern/{name}?node_id=...`
    GetPattern,
    /// `GET /katotune/kb/{node_id}` (katotune's engine only)
    KbPatterns,
}

impl Endpoint {
    /// Every endpoint, in label order of declaration.
    pub const ALL: [Endpoint; 12] = [
        Endpoint::Health,
        Endpoint::CreateSession,
        Endpoint::GetSession,
        Endpoint::DeleteSession,
        Endpoint::SessionConfig,
        Endpoint::Observe,
        Endpoint::ObserveSequence,
        Endpoint::Learn,
        Endpoint::ClearStm,
        Endpoint::GetStm,
        Endpoint::GetPattern,
        Endpoint::KbPatterns,
    ];

    /// The label used in metrics, errors and run records, e.g. `observe-sequence`.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Health => "health",
            Endpoint::CreateSession => "create-session",
            Endpoint::GetSession => "get-session",
            Endpoint::DeleteSession => "delete-session",
            Endpoint::SessionConfig => "session-config",
            Endpoint::Observe => "observe",
            Endpoint::ObserveSequence => "observe-sequence",
            Endpoint::Learn => "learn",
            Endpoint::ClearStm => "clear-stm",
            Endpoint::GetStm => "get-stm",
            Endpoint::GetPattern => "get-pattern",
            Endpoint::KbPatterns => "kb-patterns",
        }
    }

    /// True when the call changes server state, so an unknown outcome matters.
    pub fn changes_state(self) -> bool {
        !matches!(
            self,
            Endpoint::Health
                | Endpoint::GetSession
                | Endpoint::GetStm
                | Endpoint::GetPattern
                | Endpoint::KbPatterns
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Live counters of one client; shared by every clone of it.
#[derive(Debug)]
pub struct ClientMetrics {
    endpoints: [EndpointStats; Endpoint::ALL.len()],
    errors: [AtomicU64; ErrorClass::ALL.len()],
    retries: AtomicU64,
    session_recreations: AtomicU64,
    outages: AtomicU64,
    outage_micros: AtomicU64,
}

#[derive(Debug)]
struct EndpointStats {
    calls: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl EndpointStats {
    fn new() -> Self {
        Self {
            calls: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency_us: Mutex::new(new_histogram()),
        }
    }

    fn histogram(&self) -> Histogram<u64> {
        self.latency_us
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits: 3 is always a valid precision.
    Histogram::new(3).expect("hdrhistogram accepts 3 significant digits")
}

impl Default for ClientMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientMetrics {
    /// Empty counters.
    pub fn new() -> Self {
        Self {
            endpoints: std::array::from_fn(|_| EndpointStats::new()),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            retries: AtomicU64::new(0),
            session_recreations: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            outage_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn call_started(&self, endpoint: Endpoint) {
        bump(&self.endpoints[endpoint.index()].calls);
    }

    pub(crate) fn call_failed(&self, endpoint: Endpoint, class: ErrorClass) {
        bump(&self.endpoints[endpoint.index()].errors);
        bump(&self.errors[class.index()]);
    }

    pub(crate) fn request_answered(&self, endpoint: Endpoint, latency: Duration) {
        let stats = &self.endpoints[endpoint.index()];
        bump(&stats.requests);
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut histogram = stats
            .latency_us
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // `record` grows the histogram; `saturating_record` would clamp to its current
        // (tiny) range instead. Growing fails only past usize, where clamping is right.
        if histogram.record(micros).is_err() {
            histogram.saturating_record(micros);
        }
    }

    pub(crate) fn request_unanswered(&self, endpoint: Endpoint) {
        bump(&self.endpoints[endpoint.index()].requests);
    }

    pub(crate) fn retried(&self) {
        bump(&self.retries);
    }

    pub(crate) fn session_recreated(&self) {
        bump(&self.session_recreations);
    }

    pub(crate) fn outage_began(&self) {
        bump(&self.outages);
    }

    pub(crate) fn outage_ended(&self, lasted: Duration) {
        let micros = u64::try_from(lasted.as_micros()).unwrap_or(u64::MAX);
        self.outage_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A consistent-enough copy of every counter, with latency percentiles in ms.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut all = new_histogram();
        let mut snap = MetricsSnapshot::default();
        for endpoint in Endpoint::ALL {
            let stats = &self.endpoints[endpoint.index()];
            let calls = load(&stats.calls);
            let requests = load(&stats.requests);
            if calls == 0 && requests == 0 {
                continue;
            }
            let histogram = stats.histogram();
            // Both histograms auto-resize, so adding cannot run out of range.
            let _ = all.add(&histogram);
            let errors = load(&stats.errors);
            snap.total_calls += calls;
            snap.total_requests += requests;
            snap.total_errors += errors;
            snap.endpoints.insert(
                endpoint,
                EndpointSnapshot {
                    calls,
                    requests,
                    errors,
                    latency: LatencySummary::of(&histogram),
                },
            );
        }
        for class in ErrorClass::ALL {
            let count = load(&self.errors[class.index()]);
            if count > 0 {
                snap.errors_by_class.insert(class, count);
            }
        }
        snap.latency = LatencySummary::of(&all);
        snap.retries = load(&self.retries);
        snap.session_recreations = load(&self.session_recreations);
        snap.outages = load(&self.outages);
        snap.outage_seconds = load(&self.outage_micros) as f64 / 1e6;
        snap
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Everything the client counted, ready for a run record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Typed client calls made (one per method call, whatever the retries).
    pub total_calls: u64,
    /// HTTP requests sent or attempted, including retries and replays.
    pub total_requests: u64,
    /// Calls that ended in an error.
    pub total_errors: u64,
    /// Per endpoint; endpoints never called are left out.
    pub endpoints: BTreeMap<Endpoint, EndpointSnapshot>,
    /// Failed calls by class; classes never seen are left out.
    pub errors_by_class: BTreeMap<ErrorClass, u64>,
    /// Latency of every answered request, all endpoints together.
    pub latency: LatencySummary,
    /// Requests sent again: never-sent retries, 503 retries, replays on a new session.
    pub retries: u64,
    /// Sessions created again after KATO lost them.
    pub session_recreations: u64,
    /// Times the server stopped accepting connections.
    pub outages: u64,
    /// Total seconds spent waiting for the server to come back.
    pub outage_seconds: f64,
}

/// Calls, requests, errors and latency of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSnapshot {
    /// Typed calls.
    pub calls: u64,
    /// HTTP requests, including retries.
    pub requests: u64,
    /// Calls that ended in an error.
    pub errors: u64,
    /// Latency of the answered requests.
    pub latency: LatencySummary,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Requests measured.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// The whole distribution in log-spaced buckets (record version 2; absent in
    /// older records and when nothing was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<LatencyHistogram>,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            samples: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
            mean_ms: histogram.mean() / 1000.0,
            histogram: LatencyHistogram::of(histogram),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_calls_by_endpoint_and_gives_percentiles() {
        let metrics = ClientMetrics::new();
        for ms in 1..=100u64 {
            metrics.call_started(Endpoint::Learn);
            metrics.request_answered(Endpoint::Learn, Duration::from_millis(ms));
        }
        metrics.call_started(Endpoint::Health);
        metrics.request_unanswered(Endpoint::Health);
        metrics.call_failed(Endpoint::Health, ErrorClass::Connect);
        let snap = metrics.snapshot();
        assert_eq!(snap.total_calls, 101);
        assert_eq!(snap.endpoints[&Endpoint::Learn].calls, 100);
        assert_eq!(snap.endpoints[&Endpoint::Health].errors, 1);
        assert_eq!(snap.errors_by_class[&ErrorClass::Connect], 1);
        let p50 = snap.latency.p50_ms;
        assert!((49.0..=51.0).contains(&p50), "p50 {p50}");
        assert!((99.0..=101.0).contains(&snap.latency.max_ms));
        assert_eq!(snap.latency.samples, 100);
    }

    #[test]
    fn snapshot_survives_a_json_round_trip_with_readable_keys() {
        let metrics = ClientMetrics::new();
        metrics.call_started(Endpoint::ObserveSequence);
        metrics.request_answered(Endpoint::ObserveSequence, Duration::from_millis(3));
        metrics.call_failed(Endpoint::ObserveSequence, ErrorClass::SessionExpired);
        let snap = metrics.snapshot();
        let json = serde_json::to_string(&snap).expect("snapshot serializes");
        assert!(json.contains("\"observe-sequence\""), "{json}");
        assert!(json.contains("\"session-expired\""), "{json}");
        let back: MetricsSnapshot = serde_json::from_str(&json).expect("snapshot parses");
        assert_eq!(back, snap);
    }
}
