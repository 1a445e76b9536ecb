//! Prometheus metrics, hand-rolled with atomics: requests by route and status, latency
//! histograms by route, recommendations by confidence level, model reloads, and the
//! loaded model's id as a label on a gauge.
//!
//! The per-request counters are sharded: each thread counts into its own shard (threads
//! are given shards round-robin) and rendering sums the shards, so requests on different
//! cores do not bounce the counters' cache lines between them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Routes with their own series, as axum reports the matched path. Anything else
/// (unknown paths) is counted under `other`.
pub const ROUTES: [&str; 11] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/v1/recommend",
    "/v1/recommend/batch",
    "/v1/brands",
    "/v1/brands/{brand}",
    "/v1/products/{id}",
    "/v1/model",
    "/admin/reload",
];

/// Upper bounds of the latency histogram buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Confidence levels counted, in order.
pub const LEVELS: [&str; 3] = ["high", "medium", "low"];

/// Lowest and highest status codes counted individually.
const STATUS_MIN: u16 = 100;
const STATUS_SLOTS: usize = 500;

/// Shards of the per-request counters (threads beyond this share them).
const SHARDS: usize = 8;

/// The shard of the calling thread.
fn shard_of_thread() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// One thread group's per-request counters, on cache lines of their own.
#[repr(align(128))]
struct Shard {
    routes: Vec<RouteStats>,
    levels: [AtomicU64; 3],
}

impl Shard {
    fn new() -> Self {
        Shard {
            routes: (0..=ROUTES.len()).map(|_| RouteStats::new()).collect(),
            levels: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

struct RouteStats {
    status: Vec<AtomicU64>,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl RouteStats {
    fn new() -> Self {
        RouteStats {
            status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            buckets: (0..BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// Process-wide counters; cheap to update from many threads.
pub struct Metrics {
    shards: Box<[Shard; SHARDS]>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        Metrics {
            shards: Box::new(std::array::from_fn(|_| Shard::new())),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }

    /// Index of a matched route (`None` or unknown: the `other` slot).
    pub fn route_index(matched: Option<&str>) -> usize {
        matched
            .and_then(|m| ROUTES.iter().position(|r| *r == m))
            .unwrap_or(ROUTES.len())
    }

    /// Count one finished request.
    pub fn observe(&self, route: usize, status: u16, latency: Duration) {
        let Some(r) = self.shard().routes.get(route) else {
            return;
        };
        let slot = usize::from(status.saturating_sub(STATUS_MIN)).min(STATUS_SLOTS - 1);
        if let Some(c) = r.status.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let secs = latency.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            if let Some(c) = r.buckets.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        r.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        r.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Count one recommendation by its confidence level (`high`, `medium`, `low`).
    pub fn recommendation(&self, level: &str) {
        if let Some(i) = LEVELS.iter().position(|l| *l == level) {
            if let Some(c) = self.shard().levels.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Count one model reload attempt.
    pub fn reload(&self, ok: bool) {
        let c = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The calling thread's shard.
    fn shard(&self) -> &Shard {
        &self.shards[shard_of_thread() % SHARDS]
    }

    /// Sum of a counter over the shards.
    fn total(&self, counter: impl Fn(&Shard) -> Option<&AtomicU64>) -> u64 {
        self.shards
            .iter()
            .filter_map(counter)
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Requests counted for a route and status (for tests and logs).
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        let r = Self::route_index(Some(route));
        let slot = usize::from(status.saturating_sub(STATUS_MIN));
        self.total(|s| s.routes.get(r).and_then(|r| r.status.get(slot)))
    }

    /// Prometheus text exposition (format 0.0.4). `model_id` is the loaded model, if any.
    pub fn render(&self, model_id: Option<&str>) -> String {
        let mut s = String::with_capacity(4096);
        s.push_str("# HELP runsize_http_requests_total HTTP requests by route and status.\n");
        s.push_str("# TYPE runsize_http_requests_total counter\n");
        for i in 0..=ROUTES.len() {
            let route = ROUTES.get(i).copied().unwrap_or("other");
            for slot in 0..STATUS_SLOTS {
                let n = self.total(|s| s.routes.get(i).and_then(|r| r.status.get(slot)));
                if n > 0 {
                    let status = slot + usize::from(STATUS_MIN);
                    let _ = writeln!(
                        s,
                        "runsize_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        s.push_str("# HELP runsize_http_request_duration_seconds HTTP request latency by route.\n");
        s.push_str("# TYPE runsize_http_request_duration_seconds histogram\n");
        for i in 0..=ROUTES.len() {
            let count = self.total(|s| s.routes.get(i).map(|r| &r.count));
            if count == 0 {
                continue;
            }
            let route = ROUTES.get(i).copied().unwrap_or("other");
            let mut cumulative = 0u64;
            for (k, b) in BUCKETS.iter().enumerate() {
                cumulative += self.total(|s| s.routes.get(i).and_then(|r| r.buckets.get(k)));
                let _ = writeln!(
                    s,
                    "runsize_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(s, "runsize_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}");
            let sum = self.total(|s| s.routes.get(i).map(|r| &r.sum_nanos)) as f64 / 1e9;
            let _ = writeln!(
                s,
                "runsize_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                s,
                "runsize_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        s.push_str(
            "# HELP runsize_recommendations_total Recommendations answered, by confidence level.\n",
        );
        s.push_str("# TYPE runsize_recommendations_total counter\n");
        for (k, level) in LEVELS.iter().enumerate() {
            let n = self.total(|s| s.levels.get(k));
            let _ = writeln!(
                s,
                "runsize_recommendations_total{{confidence=\"{level}\"}} {n}"
            );
        }
        s.push_str("# HELP runsize_model_reloads_total Model reload attempts by result.\n");
        s.push_str("# TYPE runsize_model_reloads_total counter\n");
        let _ = writeln!(
            s,
            "runsize_model_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "runsize_model_reloads_total{{result=\"refused\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        s.push_str(
            "# HELP runsize_model_info The model being served (model_id label); 1 when loaded.\n",
        );
        s.push_str("# TYPE runsize_model_info gauge\n");
        match model_id {
            Some(id) => {
                let id: String = id
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                let _ = writeln!(s, "runsize_model_info{{model_id=\"{id}\"}} 1");
            }
            None => s.push_str("runsize_model_info{model_id=\"\"} 0\n"),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::new();
        m.observe(
            Metrics::route_index(Some("/v1/recommend")),
            200,
            Duration::from_micros(300),
        );
        m.observe(
            Metrics::route_index(Some("/v1/recommend")),
            200,
            Duration::from_millis(3),
        );
        m.observe(
            Metrics::route_index(Some("/v1/recommend")),
            422,
            Duration::from_micros(50),
        );
        m.observe(Metrics::route_index(None), 404, Duration::from_micros(50));
        m.recommendation("high");
        m.recommendation("low");
        m.recommendation("bogus");
        m.reload(false);
        assert_eq!(m.requests("/v1/recommend", 200), 2);
        assert_eq!(m.requests("/v1/recommend", 422), 1);
        let text = m.render(Some("00ab"));
        assert!(
            text.contains(
                "runsize_http_requests_total{route=\"/v1/recommend\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("runsize_http_requests_total{route=\"other\",status=\"404\"} 1\n"));
        // 50 us and 300 us fall at or below 0.0005; 3 ms only from 0.005 on
        assert!(text.contains("runsize_http_request_duration_seconds_bucket{route=\"/v1/recommend\",le=\"0.0005\"} 2\n"));
        assert!(text.contains("runsize_http_request_duration_seconds_bucket{route=\"/v1/recommend\",le=\"0.0025\"} 2\n"));
        assert!(text.contains("runsize_http_request_duration_seconds_bucket{route=\"/v1/recommend\",le=\"0.005\"} 3\n"));
        assert!(text
            .contains("runsize_http_request_duration_seconds_count{route=\"/v1/recommend\"} 3\n"));
        assert!(text.contains("runsize_recommendations_total{confidence=\"high\"} 1\n"));
        assert!(text.contains("runsize_recommendations_total{confidence=\"medium\"} 0\n"));
        assert!(text.contains("runsize_model_reloads_total{result=\"refused\"} 1\n"));
        assert!(text.contains("runsize_model_info{model_id=\"00ab\"} 1\n"));
        assert!(!text.contains("route=\"/healthz\""));
    }
}
