//! Overload shedding: a bound on the requests in flight (from the moment the route is
//! matched until the answer is built, body upload included). Past the bound a request is
//! answered at once with 503 JSON (`type: overloaded`) and `Retry-After`, never queued;
//! the ops routes (`/healthz`, `/readyz`, `/metrics`) are never shed, so a load balancer
//! and the monitoring still see the server while it sheds.
//!
//! One shared atomic counter: a request costs one `fetch_add` and one `fetch_sub`. The
//! ops routes are not counted at all.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Requests allowed in flight per worker thread when `--max-in-flight` is 0 (derived).
pub const IN_FLIGHT_PER_WORKER: usize = 64;

/// Seconds a shed client is asked to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Routes never shed, as axum reports the matched path.
pub const NEVER_SHED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The bound `max` (0 = derived: [`IN_FLIGHT_PER_WORKER`] per worker thread; `workers`
/// 0 = one per core).
pub fn resolve_max_in_flight(max: usize, workers: usize) -> usize {
    if max > 0 {
        return max;
    }
    let workers = if workers > 0 {
        workers
    } else {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    };
    workers.saturating_mul(IN_FLIGHT_PER_WORKER)
}

/// Whether requests to the matched route `path` may be shed.
pub fn sheddable(path: Option<&str>) -> bool {
    !path.is_some_and(|p| NEVER_SHED.contains(&p))
}

/// Whether a request announces a body (a non-zero `content-length`, or any
/// `transfer-encoding`). A shed request's body is never read, so its answer closes the
/// connection (`connection: close`): a client reusing it would see its next request fail.
pub fn has_body(headers: &axum::http::HeaderMap) -> bool {
    use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

#[derive(Debug)]
struct Counters {
    max: usize,
    current: AtomicUsize,
    shed: AtomicU64,
}

/// The in-flight bound and its counters; cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct InFlight {
    inner: Arc<Counters>,
}

/// A request counted in flight; dropping it (answer built, or the client gone) frees its
/// place.
#[derive(Debug)]
pub struct InFlightGuard {
    inner: Arc<Counters>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.inner.current.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// A bound of `max` requests in flight (at least 1).
    pub fn new(max: usize) -> Self {
        InFlight {
            inner: Arc::new(Counters {
                max: max.max(1),
                current: AtomicUsize::new(0),
                shed: AtomicU64::new(0),
            }),
        }
    }

    /// Count one more request in flight, or `None` (and count it shed) when the bound is
    /// reached.
    pub fn try_enter(&self) -> Option<InFlightGuard> {
        let before = self.inner.current.fetch_add(1, Ordering::AcqRel);
        if before >= self.inner.max {
            self.inner.current.fetch_sub(1, Ordering::AcqRel);
            self.inner.shed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(InFlightGuard {
            inner: Arc::clone(&self.inner),
        })
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Requests in flight now.
    pub fn current(&self) -> usize {
        self.inner.current.load(Ordering::Relaxed)
    }

    /// Requests shed since start.
    pub fn shed(&self) -> u64 {
        self.inner.shed.load(Ordering::Relaxed)
    }

    /// Append the Prometheus series (requests in flight, the bound, requests shed).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str(
            "# HELP runsize_http_in_flight Requests in flight (ops routes not counted).\n",
        );
        out.push_str("# TYPE runsize_http_in_flight gauge\n");
        let _ = writeln!(out, "runsize_http_in_flight {}", self.current());
        out.push_str("# HELP runsize_http_max_in_flight The bound on requests in flight.\n");
        out.push_str("# TYPE runsize_http_max_in_flight gauge\n");
        let _ = writeln!(out, "runsize_http_max_in_flight {}", self.max());
        out.push_str(
            "# HELP runsize_http_shed_total Requests refused with 503 because the bound was reached.\n",
        );
        out.push_str("# TYPE runsize_http_shed_total counter\n");
        let _ = writeln!(out, "runsize_http_shed_total {}", self.shed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_sheds_and_frees() {
        let f = InFlight::new(2);
        let a = f.try_enter().expect("first");
        let b = f.try_enter().expect("second");
        assert!(f.try_enter().is_none());
        assert_eq!((f.current(), f.shed()), (2, 1));
        drop(a);
        let d = f.try_enter().expect("a place was freed");
        drop((b, d));
        assert_eq!((f.current(), f.shed()), (0, 1));
        let mut text = String::new();
        f.render(&mut text);
        assert!(text.contains("runsize_http_shed_total 1\n"), "{text}");
        assert!(text.contains("runsize_http_max_in_flight 2\n"), "{text}");
        assert!(text.contains("runsize_http_in_flight 0\n"), "{text}");
    }

    #[test]
    fn derived_bound_and_exempt_routes() {
        assert_eq!(resolve_max_in_flight(10, 4), 10);
        assert_eq!(resolve_max_in_flight(0, 4), 4 * IN_FLIGHT_PER_WORKER);
        assert!(resolve_max_in_flight(0, 0) >= IN_FLIGHT_PER_WORKER);
        assert_eq!(InFlight::new(0).max(), 1);
        assert!(!sheddable(Some("/healthz")));
        assert!(!sheddable(Some("/metrics")));
        assert!(sheddable(Some("/v1/recommend")));
        assert!(sheddable(None));
    }
}
