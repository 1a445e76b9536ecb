//! The server under pressure, in process (tower `oneshot`, deterministic): the in-flight
//! bound sheds with 503 JSON + `Retry-After` while the ops routes answer, and every
//! answer carries an `x-request-id` that error bodies repeat.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use runsize::serve::routes::{healthz, metrics, readyz};
use runsize::serve::{layered, router, AppState, ServeOptions};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Answer of `app` to `req`: status, `x-request-id`, `Retry-After`, body as JSON (or a
/// JSON string).
async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Response<()>, Value) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (parts.status, Response::from_parts(parts, ()), json)
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

fn header<'a>(resp: &'a Response<()>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A router with the server's middleware whose `/hold` requests wait for a permit of
/// `gate` (the ops routes as in the server), over a state without a model.
fn held_app(max_in_flight: usize, gate: Arc<Semaphore>) -> (Router, AppState) {
    let state = AppState::empty(ServeOptions {
        max_in_flight,
        ..ServeOptions::default()
    });
    let routes: Router<AppState> = Router::new()
        .route(
            "/hold",
            get(move || {
                let gate = gate.clone();
                async move {
                    let _permit = gate.acquire().await;
                    "released"
                }
            }),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    (layered(routes, state.clone()), state)
}

/// Wait (bounded) until `state` counts `n` requests in flight.
async fn until_in_flight(state: &AppState, n: usize) {
    for _ in 0..2000 {
        if state.in_flight().current() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "expected {n} requests in flight, have {}",
        state.in_flight().current()
    );
}

#[tokio::test]
async fn in_flight_bound_sheds_503_while_health_answers() {
    let gate = Arc::new(Semaphore::new(0));
    let (app, state) = held_app(2, gate.clone());
    assert_eq!(state.in_flight().max(), 2);
    // two requests held inside the handler fill the bound
    let held: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { call(&app, get_req("/hold")).await })
        })
        .collect();
    until_in_flight(&state, 2).await;

    // the third is refused at once: 503 JSON, Retry-After, its request id in the body
    let (status, resp, body) = call(&app, get_req("/hold")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(header(&resp, "retry-after"), Some("1"));
    assert_eq!(body["type"], "overloaded");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("2 requests in flight"),
        "{body}"
    );
    let id = header(&resp, "x-request-id").expect("request id");
    assert_eq!(body["request_id"], id);
    assert_eq!(header(&resp, "connection"), None, "no body: keep-alive");
    // a shed request with a body (never read) closes its connection
    let post = Request::post("/hold")
        .header("content-length", "5")
        .body(Body::from("hello"))
        .expect("request");
    let (status, resp, _) = call(&app, post).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&resp, "connection"), Some("close"));
    // unknown routes are shed too (they would otherwise count nothing)
    let (status, _, body) = call(&app, get_req("/nowhere")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // the ops routes are never shed
    let (status, _, body) = call(&app, get_req("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = call(&app, get_req("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no model: {body}");
    assert_eq!(body["type"], "not_ready");
    let (status, _, text) = call(&app, get_req("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap_or_default().to_string();
    assert!(text.contains("runsize_http_shed_total 3\n"), "{text}");
    assert!(text.contains("runsize_http_in_flight 2\n"), "{text}");
    assert!(text.contains("runsize_http_max_in_flight 2\n"), "{text}");
    assert!(
        text.contains("runsize_http_requests_total{route=\"other\",status=\"503\"} 3\n"),
        "shed requests are counted by status too: {text}"
    );
    assert_eq!(state.in_flight().current(), 2, "ops routes are not counted");

    // released, the held requests finish and their places are free again
    gate.add_permits(3);
    for h in held {
        let (status, _, body) = h.await.expect("task");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "released");
    }
    until_in_flight(&state, 0).await;
    let (status, _, _) = call(&app, get_req("/hold")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state.in_flight().shed(), 3);
}

#[tokio::test]
async fn a_client_gone_frees_its_place() {
    let gate = Arc::new(Semaphore::new(0));
    let (app, state) = held_app(1, gate.clone());
    let held = {
        let app = app.clone();
        tokio::spawn(async move { call(&app, get_req("/hold")).await })
    };
    until_in_flight(&state, 1).await;
    assert_eq!(
        call(&app, get_req("/hold")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // the held request's future is dropped (as hyper drops it when the client goes)
    held.abort();
    let _ = held.await;
    until_in_flight(&state, 0).await;
    gate.add_permits(1);
    assert_eq!(call(&app, get_req("/hold")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn request_ids_round_trip_and_appear_in_error_bodies() {
    let app = router(AppState::empty(ServeOptions::default()));
    // a sane client id comes back, on success and on errors, in header and body
    let with_id = |uri: &str, id: &str| {
        Request::get(uri)
            .header("x-request-id", id)
            .body(Body::empty())
            .expect("request")
    };
    let (status, resp, _) = call(&app, with_id("/healthz", "shop-42/abc:1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&resp, "x-request-id"), Some("shop-42/abc:1"));
    for (uri, code, kind) in [
        ("/no/such/route", StatusCode::NOT_FOUND, "not_found"),
        ("/v1/model", StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
    ] {
        let (status, resp, body) = call(&app, with_id(uri, "trace-7")).await;
        assert_eq!(status, code, "{uri}: {body}");
        assert_eq!(body["type"], kind);
        assert_eq!(body["request_id"], "trace-7", "{uri}: {body}");
        assert_eq!(header(&resp, "x-request-id"), Some("trace-7"));
    }
    // a 400 from a handler (malformed JSON) and a 405
    let req = Request::post("/v1/recommend")
        .header("x-request-id", "q-1")
        .body(Body::from("{\"product\": [}"))
        .expect("request");
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["type"], "bad_request");
    assert_eq!(body["request_id"], "q-1");
    let req = Request::delete("/healthz")
        .header("x-request-id", "m-1")
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["request_id"], "m-1");

    // insane ids (too long, spaces, control or non-ASCII bytes) are replaced
    let long = "x".repeat(129);
    for bad in [long.as_str(), "two words", "tab\tid", ""] {
        let (_, resp, body) = call(&app, with_id("/nowhere", bad)).await;
        let id = header(&resp, "x-request-id").expect("generated id");
        assert_ne!(id, bad);
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(body["request_id"], id);
    }
    let req = Request::get("/nowhere")
        .header(
            "x-request-id",
            axum::http::HeaderValue::from_bytes(b"caf\xc3\xa9").expect("header"),
        )
        .body(Body::empty())
        .expect("request");
    let (_, resp, body) = call(&app, req).await;
    assert_eq!(header(&resp, "x-request-id").map(str::len), Some(16));
    assert_eq!(
        body["request_id"],
        header(&resp, "x-request-id").unwrap_or("?")
    );

    // without one, every answer gets a fresh id
    let (_, a, _) = call(&app, get_req("/healthz")).await;
    let (_, b, _) = call(&app, get_req("/healthz")).await;
    let (a, b) = (header(&a, "x-request-id"), header(&b, "x-request-id"));
    assert!(a.is_some() && b.is_some());
    assert_ne!(a, b);
}

#[tokio::test]
async fn error_bodies_keep_their_length_honest() {
    // the body is rewritten with the id: a declared length must match the bytes sent
    let app = router(AppState::empty(ServeOptions::default()));
    let req = Request::get("/v1/model")
        .header("x-request-id", "len-check-123")
        .body(Body::empty())
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    let declared = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    if let Some(n) = declared {
        assert_eq!(n, bytes.len());
    }
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(body["request_id"], "len-check-123");
}
