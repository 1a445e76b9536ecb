//! Request ids: every answer carries `x-request-id`, the client's own when it sent a sane
//! one (1 to [`MAX_LEN`] bytes of visible ASCII), else one generated here (16 hex digits,
//! unique within the process, unpredictable across restarts). The id is a field of the
//! request's log span, and [`stamp`] writes it into JSON error bodies.
//!
//! Per request: one header lookup, and for a generated id one 16-byte allocation; ids are
//! drawn from a per-thread sequence (no shared counter).

use super::error::ErrorBody;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The request and response header.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client id kept, in bytes; longer ones are replaced by a generated id.
pub const MAX_LEN: usize = 128;

/// Whether a client's id is kept: 1 to [`MAX_LEN`] bytes, each visible ASCII (`!` to `~`:
/// no spaces, no control characters, nothing a log line or header could be split on).
pub fn sane(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= MAX_LEN && value.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// The request's id: the client's `x-request-id` if [`sane`], else [`generate`]d.
pub fn of_request(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&HEADER) {
        Some(v) if sane(v.as_bytes()) => v.clone(),
        _ => generate(),
    }
}

/// The process's random base of generated ids (std's per-process random hash keys).
fn base() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        h.finish()
    })
}

/// SplitMix64's finaliser: a bijection on `u64`, so distinct inputs give distinct ids.
fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A new id: 16 lowercase hex digits. Thread `t` (numbered from 0 as threads first ask)
/// draws inputs `base + t * 2^40 + i`; the mix of distinct inputs is distinct.
pub fn generate() -> HeaderValue {
    static THREADS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NEXT: Cell<u64> = Cell::new(
            base().wrapping_add(THREADS.fetch_add(1, Ordering::Relaxed) << 40),
        );
    }
    let n = NEXT.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n
    });
    let x = mix(n);
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        let nibble = (x >> (60 - 4 * i)) & 0xf;
        *b = b"0123456789abcdef"[nibble as usize];
    }
    // hex digits are always a valid header value
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Put `id` on `response`; a JSON error answer (one made by
/// [`ApiError`](super::ApiError), which leaves its [`ErrorBody`] in the response's
/// extensions) gets it as `request_id` in its body too.
pub fn stamp(response: &mut Response, id: HeaderValue) {
    if let Some(mut body) = response.extensions_mut().remove::<ErrorBody>() {
        body.request_id = id.to_str().ok().map(str::to_string);
        if let Ok(json) = serde_json::to_vec(&body) {
            response.headers_mut().remove(header::CONTENT_LENGTH);
            *response.body_mut() = Body::from(json);
        }
    }
    response.headers_mut().insert(&HEADER, id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sane_ids() {
        assert!(sane(b"abc-123_X.y:z/0"));
        assert!(sane(&[b'a'; MAX_LEN]));
        assert!(!sane(&[b'a'; MAX_LEN + 1]));
        assert!(!sane(b""));
        assert!(!sane(b"has space"));
        assert!(!sane(b"tab\there"));
        assert!(!sane(b"new\nline"));
        assert!(!sane("caf\u{e9}".as_bytes()));
        assert!(!sane(b"del\x7f"));
    }

    #[test]
    fn kept_or_generated() {
        let mut h = HeaderMap::new();
        assert_eq!(of_request(&h).len(), 16);
        h.insert(&HEADER, HeaderValue::from_static("client-7"));
        assert_eq!(of_request(&h), "client-7");
        h.insert(&HEADER, HeaderValue::from_static("two words"));
        let g = of_request(&h);
        assert_ne!(g, "two words");
        assert!(g.as_bytes().iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn generated_ids_are_distinct_across_threads() {
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..2000)
                            .map(|_| generate().to_str().unwrap_or_default().to_string())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        assert_eq!(ids.len(), 8000);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 8000);
        assert!(ids.iter().all(|i| i.len() == 16));
    }
}
