//! Routes, handlers and the middleware stack: a span + metrics per request, a request id
//! ([`request_id`]), the in-flight bound ([`overload`]), a body limit, panic catching,
//! and a per-request timeout — all but the body limit in one tower service
//! ([`TrackLayer`]) so that a request pays for one layer of axum's per-route boxing, not
//! six.

use super::api::answer::recommend_json;
use super::api::limits::{DEFAULT_PAGE, MAX_PAGE};
use super::api::{
    check_limits_ref, ApiBody, ApiJson, BatchRequest, BatchResponse, BatchResult, ModelInfo,
    ProfileResponse, ProfilesPage, ProfilesQuery, RecommendRequest, RecommendRequestRef,
    RecommendResponse, Recommendation, ReloadRequest, ReloadResponse, Status,
};
use super::error::{ApiError, ErrorBody};
use super::state::{AppState, Loaded};
use super::Metrics;
use super::{overload, request_id};
use crate::model::report::{FitProfile, ProfileBy};
use crate::model::RecommendationView;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceBuilder};
use tracing::Instrument;

/// Batches larger than this are computed on the blocking pool, not an async worker.
const INLINE_BATCH: usize = 32;

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

/// Process is alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
        model_id: None,
    })
}

/// A model is loaded and requests can be answered.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = Status),
    (status = 503, description = "no model loaded yet", body = ErrorBody),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let loaded = state.loaded()?;
    Ok(Json(Status {
        status: "ready".into(),
        model_id: Some(loaded.header.model_id.clone()),
    }))
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let current = state.current();
    let mut text = state
        .metrics()
        .render(current.as_ref().map(|l| l.header.model_id.as_str()));
    state.in_flight().render(&mut text);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// One recommendation for a parsed request (limits checked, counted in the metrics by
/// confidence level), handed to `write` while its texts are borrowed from the request
/// and the model.
fn recommend_with<R>(
    loaded: &Loaded,
    state: &AppState,
    req: &RecommendRequestRef<'_>,
    write: impl FnOnce(RecommendationView<'_>) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    check_limits_ref(req)?;
    let query = req.to_query();
    let view = loaded.predictor.recommend(&query)?;
    state.metrics().recommendation(view.level);
    write(view)
}

fn recommend_one(
    loaded: &Loaded,
    state: &AppState,
    req: &RecommendRequestRef<'_>,
) -> Result<Recommendation, ApiError> {
    recommend_with(loaded, state, req, |v| Ok(v.into()))
}

/// Recommend a size of one product for one shopper.
///
/// The shopper's size is computed from what the request carries (a known customer id,
/// past purchases, reference sizes, body features): the server keeps no per-shopper state.
#[utoipa::path(post, path = "/v1/recommend", tag = "recommend",
    request_body = RecommendRequest,
    responses(
        (status = 200, body = RecommendResponse),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 404, description = "unknown product, brand and category with no sizes given", body = ErrorBody),
        (status = 413, description = "body or a list in it too large", body = ErrorBody),
        (status = 422, description = "invalid field (see `field`)", body = ErrorBody),
    ))]
pub async fn recommend(
    State(state): State<AppState>,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    // fast paths: UTF-8 checked once, strings borrowed from the body, the common body
    // shape parsed by hand (fastjson), else by serde; a body that does not parse is
    // parsed again as the owned type with axum's path-tracking deserializer, whose error
    // names the offending field
    let fast = std::str::from_utf8(&body).ok().and_then(|t| {
        super::api::fastjson::parse_recommend(t)
            .or_else(|| serde_json::from_str::<RecommendRequestRef<'_>>(t).ok())
    });
    match fast {
        Some(req) => answer(&state, &req),
        None => {
            let Json(req) = Json::<RecommendRequest>::from_bytes(&body)?;
            answer(&state, &req.view())
        }
    }
}

/// The `POST /v1/recommend` response to a parsed request.
fn answer(state: &AppState, req: &RecommendRequestRef<'_>) -> Result<Response, ApiError> {
    let json = state.with_loaded(|loaded| {
        recommend_with(loaded, state, req, |view| {
            recommend_json(&loaded.header.model_id, &view)
        })
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
}

fn batch_items(loaded: &Loaded, state: &AppState, items: Vec<serde_json::Value>) -> BatchResponse {
    let mut out = Vec::with_capacity(items.len());
    let mut ok = 0;
    for (i, item) in items.into_iter().enumerate() {
        let prefix = format!("items[{i}]");
        let answer = match serde_json::from_value::<RecommendRequest>(item) {
            Ok(req) => recommend_one(loaded, state, &req.view()).map_err(|e| e.prefixed(&prefix)),
            Err(e) => {
                let (field, message) = super::error::split_path(&e.to_string());
                let field = if field == "body" {
                    prefix
                } else {
                    format!("{prefix}.{field}")
                };
                Err(ApiError::Invalid { field, message })
            }
        };
        out.push(match answer {
            Ok(r) => {
                ok += 1;
                BatchResult {
                    recommendation: Some(r),
                    error: None,
                }
            }
            Err(e) => BatchResult {
                recommendation: None,
                error: Some(e.body()),
            },
        });
    }
    let failed = out.len() - ok;
    BatchResponse {
        model_id: loaded.header.model_id.clone(),
        ok,
        failed,
        items: out,
    }
}

/// Recommend for many product / shopper pairs in one call (e.g. a listing page).
///
/// Answers come in request order; an item that fails is reported in its own slot and
/// does not fail the batch.
#[utoipa::path(post, path = "/v1/recommend/batch", tag = "recommend",
    request_body = BatchRequest,
    responses(
        (status = 200, body = BatchResponse),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 413, description = "more items than the server's --max-batch, or body too large", body = ErrorBody),
        (status = 422, description = "no items", body = ErrorBody),
    ))]
pub async fn recommend_batch(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let loaded = state.loaded()?;
    let max = state.options().max_batch;
    if req.items.is_empty() {
        return Err(ApiError::invalid("items", "expected at least one item"));
    }
    if req.items.len() > max {
        return Err(ApiError::PayloadTooLarge {
            field: Some("items".into()),
            message: format!("{} items; at most {max} per batch", req.items.len()),
        });
    }
    if req.items.len() <= INLINE_BATCH {
        return Ok(Json(batch_items(&loaded, &state, req.items)));
    }
    let s = state.clone();
    let answer = tokio::task::spawn_blocking(move || batch_items(&loaded, &s, req.items))
        .await
        .map_err(|e| ApiError::Internal {
            message: format!("batch task failed: {e}"),
        })?;
    Ok(Json(answer))
}

fn parse_by(by: Option<&str>) -> Result<(ProfileBy, &'static str), ApiError> {
    match by.unwrap_or("brand") {
        "brand" => Ok((ProfileBy::Brand, "brand")),
        "category" => Ok((ProfileBy::Category, "category")),
        "product" => Ok((ProfileBy::Product, "product")),
        other => Err(ApiError::invalid(
            "by",
            format!("'{other}': expected brand, category or product"),
        )),
    }
}

fn parse_count(
    field: &str,
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let Some(v) = value else {
        return Ok(default);
    };
    match v.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ApiError::invalid(
            field,
            format!("'{v}': expected a whole number 0..={max}"),
        )),
    }
}

/// Sort profiles by `sort` in `order`; ties by key.
fn sorted<'a>(items: &'a [FitProfile], sort: &str, desc: bool) -> Vec<&'a FitProfile> {
    let mut v: Vec<&FitProfile> = items.iter().collect();
    v.sort_by(|a, b| {
        let primary = match sort {
            "offset" => a.offset.total_cmp(&b.offset),
            "n" => a.n.cmp(&b.n),
            "name" => a.key.cmp(&b.key),
            _ => a.score.total_cmp(&b.score),
        };
        let primary = if desc { primary.reverse() } else { primary };
        primary.then_with(|| a.key.cmp(&b.key))
    });
    v
}

/// How brands (or categories, or products) run: offsets in sizes, intervals, counts.
#[utoipa::path(get, path = "/v1/brands", tag = "profiles",
    params(ProfilesQuery),
    responses(
        (status = 200, body = ProfilesPage),
        (status = 422, description = "invalid query parameter (see `field`)", body = ErrorBody),
    ))]
pub async fn brands(
    State(state): State<AppState>,
    query: Result<Query<ProfilesQuery>, QueryRejection>,
) -> Result<Json<ProfilesPage>, ApiError> {
    let Query(q) = query?;
    let loaded = state.loaded()?;
    let (by, by_name) = parse_by(q.by.as_deref())?;
    let sort = match q.sort.as_deref().unwrap_or("score") {
        s @ ("score" | "offset" | "n" | "name") => s.to_string(),
        other => {
            return Err(ApiError::invalid(
                "sort",
                format!("'{other}': expected score, offset, n or name"),
            ))
        }
    };
    let desc = match q.order.as_deref() {
        None => sort != "name",
        Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                "order",
                format!("'{other}': expected asc or desc"),
            ))
        }
    };
    let limit = parse_count("limit", q.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    if limit == 0 {
        return Err(ApiError::invalid(
            "limit",
            format!("0: expected 1..={MAX_PAGE}"),
        ));
    }
    let offset = parse_count("offset", q.offset.as_deref(), 0, usize::MAX)?;
    let all = loaded.predictor.profiles(by);
    let items = sorted(all, &sort, desc)
        .into_iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    Ok(Json(ProfilesPage {
        model_id: loaded.header.model_id.clone(),
        by: by_name.to_string(),
        sort,
        order: if desc { "desc" } else { "asc" }.to_string(),
        total: all.len(),
        limit,
        offset,
        items,
    }))
}

/// How one brand runs.
#[utoipa::path(get, path = "/v1/brands/{brand}", tag = "profiles",
    params(("brand" = String, Path, description = "Brand name as in training")),
    responses(
        (status = 200, body = ProfileResponse),
        (status = 404, description = "unknown brand", body = ErrorBody),
    ))]
pub async fn brand(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let loaded = state.loaded()?;
    let p = &loaded.predictor;
    let profile = p
        .brand_index(&name)
        .and_then(|i| p.brand_profile(i))
        .cloned()
        .ok_or_else(|| ApiError::not_found("brand", format!("unknown brand '{name}'")))?;
    Ok(Json(ProfileResponse {
        model_id: loaded.header.model_id.clone(),
        profile,
        sizes: None,
        size_system: None,
        flag: None,
    }))
}

/// How one product runs (its offset includes its brand and category).
#[utoipa::path(get, path = "/v1/products/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Product id as in training")),
    responses(
        (status = 200, body = ProfileResponse),
        (status = 404, description = "unknown product", body = ErrorBody),
    ))]
pub async fn product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let loaded = state.loaded()?;
    let m = &loaded.predictor;
    let found = m.product_index(&id).and_then(|i| {
        Some((
            m.product_profile(i as usize)?,
            m.product_info.get(i as usize)?,
        ))
    });
    let Some((profile, info)) = found else {
        return Err(ApiError::not_found("id", format!("unknown product '{id}'")));
    };
    let labels: Vec<_> = info
        .sizes
        .iter()
        .filter_map(|&l| m.labels.get(l as usize))
        .collect();
    Ok(Json(ProfileResponse {
        model_id: loaded.header.model_id.clone(),
        profile,
        sizes: Some(labels.iter().map(|l| l.canonical.clone()).collect()),
        size_system: labels.first().map(|l| l.system.as_str().to_string()),
        flag: m.product_index(&id).and_then(|i| {
            crate::model::insight::flags::product_flag(m, i as usize, &Default::default())
        }),
    }))
}

/// The model being served.
#[utoipa::path(get, path = "/v1/model", tag = "ops", responses(
    (status = 200, body = ModelInfo),
    (status = 503, description = "no model loaded yet", body = ErrorBody),
))]
pub async fn model_info(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let l = state.loaded()?;
    let m = &l.predictor;
    Ok(Json(ModelInfo {
        model_id: l.header.model_id.clone(),
        path: l.path.as_ref().map(|p| p.display().to_string()),
        runsize_version: l.header.runsize_version.clone(),
        created_unix: l.header.created_unix,
        loaded_unix: l.loaded_unix,
        brands: m.brands.len(),
        categories: m.categories.len(),
        products: m.products.len(),
        sizes: m.labels.len(),
        customers: m.customers.len(),
        features: m
            .features
            .numeric
            .iter()
            .map(|f| f.name.clone())
            .chain(m.features.categorical.iter().map(|f| f.name.clone()))
            .collect(),
        training_events: m.summary.events,
    }))
}

/// Constant-time comparison of two byte strings.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = state.options().admin_token.as_deref() else {
        return Err(ApiError::NotFound {
            field: None,
            message: "no such route: see GET /openapi.json".into(),
        });
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if same_secret(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized {
            message: "wrong admin token".into(),
        }),
        None => Err(ApiError::Unauthorized {
            message: "missing 'Authorization: Bearer <admin token>' header".into(),
        }),
    }
}

/// Load a new model artifact and swap it in atomically.
///
/// Needs `Authorization: Bearer <token>` (server flag `--admin-token` or env
/// `RUNSIZE_ADMIN_TOKEN`; without a configured token the route answers 404). The body is
/// optional: `{"path": "..."}` loads another file, else the current path is read again. A bad
/// artifact is refused with 422 and the old model keeps serving.
#[utoipa::path(post, path = "/admin/reload", tag = "admin",
    request_body(content = Option<ReloadRequest>, description = "optional; default: reload from the same path"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ReloadResponse),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no admin token configured: route disabled", body = ErrorBody),
        (status = 422, description = "artifact refused; the old model keeps serving", body = ErrorBody),
    ))]
pub async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReloadResponse>, ApiError> {
    authorize(&state, &headers)?;
    let req: ReloadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadRequest::default()
    } else {
        let Json(r) = Json::<ReloadRequest>::from_bytes(&body)?;
        r
    };
    let path = req.path.filter(|p| !p.trim().is_empty()).map(PathBuf::from);
    let report = state.reload(path).await?;
    Ok(Json(ReloadResponse {
        model_id: report.model_id,
        previous_model_id: report.previous_model_id,
        path: report.path.display().to_string(),
        seconds: report.seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn counts_parse() {
        assert_eq!(parse_count("limit", None, 50, 1000).unwrap(), 50);
        assert_eq!(parse_count("limit", Some("7"), 50, 1000).unwrap(), 7);
        assert_eq!(
            parse_count("limit", Some("1001"), 50, 1000)
                .unwrap_err()
                .field(),
            Some("limit")
        );
        assert_eq!(
            parse_count("offset", Some("-1"), 0, usize::MAX)
                .unwrap_err()
                .field(),
            Some("offset")
        );
    }

    #[test]
    fn sort_orders() {
        let p = |key: &str, offset: f64, n: u64, score: f64| FitProfile {
            key: key.into(),
            brand: None,
            offset,
            se: 0.1,
            interval: [offset - 0.2, offset + 0.2],
            n,
            band: 0.0,
            verdict: String::new(),
            advice: String::new(),
            score,
        };
        let items = vec![
            p("b", -1.0, 10, 0.9),
            p("a", 0.5, 30, 0.4),
            p("c", 0.2, 20, 0.4),
        ];
        let keys =
            |v: Vec<&FitProfile>| v.iter().map(|p| p.key.clone()).collect::<Vec<_>>().join("");
        assert_eq!(keys(sorted(&items, "score", true)), "bac");
        assert_eq!(keys(sorted(&items, "offset", false)), "bca");
        assert_eq!(keys(sorted(&items, "n", true)), "acb");
        assert_eq!(keys(sorted(&items, "name", false)), "abc");
        assert_eq!(keys(sorted(&items, "name", true)), "cba");
    }
}
