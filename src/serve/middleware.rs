//! The server's middleware stack: a span + metrics per request, a request id
//! ([`request_id`]), the in-flight bound ([`overload`]), a body limit, panic catching,
//! and a per-request timeout — all but the body limit in one tower service
//! ([`TrackLayer`]) so that a request pays for one layer of axum's per-route boxing, not
//! six; and the JSON answers for unknown routes and methods.

use super::error::ApiError;
use super::state::AppState;
use super::Metrics;
use super::{overload, request_id};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceBuilder};
use tracing::Instrument;

/// The route that has no request deadline (reloads can take longer than a request).
pub(crate) const NO_DEADLINE: &str = "/admin/reload";

/// Answer 503 JSON (`type: timeout`) when a request to one of `routes` takes longer
/// than the server's timeout. [`layered`] already does this for every route but
/// `/admin/reload`; this is for routers served without it.
pub fn with_deadline(routes: Router<AppState>, state: AppState) -> Router<AppState> {
    routes.layer(middleware::from_fn_with_state(state, deadline))
}

/// Put `routes` behind the server's middleware (outermost first): span + metrics,
/// per-request deadline (every route but `/admin/reload`), panic catching ([`TrackLayer`]),
/// body limit; unknown routes and methods answer JSON errors. Public so tests can put
/// extra routes (e.g. one that panics) behind the same stack.
pub fn layered(routes: Router<AppState>, state: AppState) -> Router {
    let limit = state.options().body_limit;
    let stack = ServiceBuilder::new()
        .layer(TrackLayer {
            state: state.clone(),
        })
        .layer(DefaultBodyLimit::max(limit));
    routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(stack)
        .with_state(state)
}

/// The server's per-request middleware in one tower layer: one span per request (method,
/// path, request id, status, latency) and the request metrics; the request id on every
/// answer and in error bodies ([`request_id`]); the in-flight bound ([`overload`]: 503
/// past it, before the body is read); a deadline (503 JSON `type: timeout`
/// past the server's timeout; not on `/admin/reload`); a panic in the handler caught,
/// logged and answered 500 JSON. Only one tower layer, so axum boxes the route's service
/// and future once for all three (separate layers cost four clones and boxes each).
#[derive(Clone)]
pub struct TrackLayer {
    state: AppState,
}

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service of [`TrackLayer`].
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    state: AppState,
}

/// A response future, boxed.
type BoxResponse = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxResponse;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> BoxResponse {
        let started = Instant::now();
        let matched = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let deadline = (matched != Some(NO_DEADLINE)).then(|| self.state.options().timeout);
        let route = Metrics::route_index(matched);
        let id = request_id::of_request(req.headers());
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = id.to_str().unwrap_or_default(),
            status = tracing::field::Empty,
            latency_us = tracing::field::Empty,
        );
        // past the in-flight bound: 503 at once, before the body is read
        let guard = if overload::sheddable(matched) {
            match self.state.in_flight().try_enter() {
                Some(g) => Some(g),
                None => {
                    let mut response = shed(&self.state, (route, started), &span, id);
                    if overload::has_body(req.headers()) {
                        // the body is never read: the connection cannot carry another
                        // request, and the client must not reuse it
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    return Box::pin(std::future::ready(Ok(response)));
                }
            }
        } else {
            None
        };
        // the inner service was made ready by poll_ready on this instance; a panic
        // while creating its future is caught like one while polling it
        let called =
            span.in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))));
        let state = self.state.clone();
        Box::pin(async move {
            let mut response = match called {
                Ok(future) => {
                    guarded(CatchPanic(future), (started, deadline))
                        .instrument(span.clone())
                        .await
                }
                Err(panic) => span.in_scope(|| panic_response(panic)),
            };
            drop(guard);
            request_id::stamp(&mut response, id);
            finish(&state, (route, started), &span, &response);
            Ok(response)
        })
    }
}

/// `future` under the request deadline (`limit` after `started`), if any: past it, 503
/// JSON.
async fn guarded<F>(mut future: F, (started, deadline): (Instant, Option<Duration>)) -> Response
where
    F: Future<Output = Response> + Unpin,
{
    let Some(limit) = deadline else {
        return future.await;
    };
    // Most requests are answered on their first poll (body received, handler without
    // IO): the timer (runtime handle, clock, timer wheel) is armed only for those that
    // are not, at the deadline they had from the start.
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await;
    if let Poll::Ready(r) = first {
        return r;
    }
    let Some(at) = started.checked_add(limit) else {
        // a deadline past the end of time
        return future.await;
    };
    match tokio::time::timeout_at(tokio::time::Instant::from_std(at), future).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout {
            seconds: limit.as_secs_f64(),
        }
        .into_response(),
    }
}

/// The answer to a request shed by the in-flight bound (counted, and logged at debug
/// level only: shedding is the server working as configured; the metrics count it).
fn shed(
    state: &AppState,
    (route, started): (usize, Instant),
    span: &tracing::Span,
    id: HeaderValue,
) -> Response {
    let mut response = ApiError::Overloaded {
        max: state.in_flight().max(),
        retry_after: overload::RETRY_AFTER_SECONDS,
    }
    .into_response();
    request_id::stamp(&mut response, id);
    let status = response.status().as_u16();
    state.metrics().observe(route, status, started.elapsed());
    span.record("status", status);
    // debug, not warn: a log line per shed request would itself feed the overload
    span.in_scope(|| tracing::debug!(status, "request shed: too many in flight"));
    response
}

/// Count a finished request (route index, start time) and log it in its span.
fn finish(
    state: &AppState,
    (route, started): (usize, Instant),
    span: &tracing::Span,
    response: &Response,
) {
    let latency = started.elapsed();
    let status = response.status().as_u16();
    state.metrics().observe(route, status, latency);
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    span.record("status", status);
    span.record("latency_us", latency_us);
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, latency_us, "request failed");
        } else {
            tracing::info!(status, latency_us, "request");
        }
    });
}

/// A response future whose panics become a logged 500 JSON answer (the future is not
/// polled again after one).
struct CatchPanic<F>(F);

impl<F> Future for CatchPanic<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(Ok(r))) => Poll::Ready(r),
            Ok(Poll::Ready(Err(never))) => match never {},
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(panic_response(panic)),
        }
    }
}

/// A bare router answering every request with a constant JSON body: the baseline of the
/// HTTP benchmark (same server, runtime and listener; no layers, no model).
pub fn bare_router() -> Router {
    async fn constant(_body: Bytes) -> impl IntoResponse {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            r#"{"recommended_size":"M","fit_probability":0.8}"#,
        )
    }
    Router::new().fallback(constant)
}

/// Answer 503 JSON when a request takes longer than the server's timeout.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.options().timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout {
            seconds: limit.as_secs_f64(),
        }
        .into_response(),
    }
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::Internal {
        message: "internal error: the request handler failed (logged)".into(),
    }
    .into_response()
}

async fn unknown_route() -> ApiError {
    ApiError::NotFound {
        field: None,
        message: "no such route: see GET /openapi.json".into(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
