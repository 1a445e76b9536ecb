//! HTTP API tests: every route and error case in process (tower `oneshot`), answers
//! checked against the model's own prediction, hot reload under load, and one test over
//! a real socket with reqwest.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use runsize::data::{ingest, IngestConfig};
use runsize::model::artifact::{self, ArtifactHeader};
use runsize::model::predict::ArticleRef;
use runsize::model::{FitParams, Fitted, Predictor};
use runsize::serve::api::{PastPurchase, Shopper};
use runsize::serve::{layered, router, AppState, ServeOptions};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";

/// A small fitted model saved twice (two model ids, same predictions), a corrupt file
/// and a well-formed artifact holding an unusable (empty) model.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    path2: PathBuf,
    corrupt: PathBuf,
    empty: PathBuf,
    model: Predictor,
    header: ArtifactHeader,
    id2: String,
}

fn fixture() -> &'static Fixture {
    static FIX: OnceLock<Fixture> = OnceLock::new();
    // polars runs its own async machinery and refuses to block inside a current-thread
    // tokio runtime (each #[tokio::test]): build on a plain thread
    FIX.get_or_init(|| std::thread::spawn(build_fixture).join().unwrap())
}

fn build_fixture() -> Fixture {
    {
        let dir = tempfile::tempdir().unwrap();
        let events_path = dir.path().join("events.parquet");
        let cfg = runsize::synth::SynthConfig {
            events: 20_000,
            brands: 6,
            seed: 11,
            customer_truth: false,
            ..runsize::synth::SynthConfig::default()
        };
        runsize::synth::generate(&cfg, &events_path).unwrap();
        let mut icfg = IngestConfig::new(vec![events_path.display().to_string()]);
        icfg.customer_features = vec!["height_cm".into(), "weight_kg".into(), "body_shape".into()];
        let events = ingest(&icfg).unwrap().events;
        let model = FitParams::default().max_iter(10).fit(&events).unwrap();
        let path = dir.path().join("a.runsize");
        artifact::save(&model, &path).unwrap();
        let (model, header) = artifact::load_predictor(&path).unwrap();
        let mut second = model.fitted().clone();
        second.summary.source = "second copy".into();
        let path2 = dir.path().join("b.runsize");
        let id2 = artifact::save(&second, &path2).unwrap().model_id;
        assert_ne!(id2, header.model_id);
        let corrupt = dir.path().join("corrupt.runsize");
        std::fs::write(&corrupt, b"RUNSIZE\nthis is not a model at all").unwrap();
        let empty = dir.path().join("empty.runsize");
        artifact::save(&Fitted::default(), &empty).unwrap();
        Fixture {
            _dir: dir,
            path,
            path2,
            corrupt,
            empty,
            model,
            header,
            id2,
        }
    }
}

fn options() -> ServeOptions {
    ServeOptions {
        model_path: Some(fixture().path.clone()),
        admin_token: Some(TOKEN.into()),
        ..ServeOptions::default()
    }
}

fn state_with(options: ServeOptions) -> AppState {
    let f = fixture();
    let predictor = Predictor::new(f.model.fitted().clone()).unwrap();
    AppState::new(predictor, f.header.clone(), options)
}

fn app() -> Router {
    router(state_with(options()))
}

/// Send a request; returns the status and the body as JSON (or a JSON string when not JSON).
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_raw(app: &Router, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    send(app, req).await
}

async fn post_json(app: &Router, uri: &str, body: &Value) -> (StatusCode, Value) {
    post_raw(app, uri, body.to_string()).await
}

async fn reload(app: &Router, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::post("/admin/reload");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    send(app, req.body(body).unwrap()).await
}

/// The product seen in training with the most sizes: (index, id, brand name).
fn big_product(m: &Fitted) -> (usize, String, String) {
    let (i, info) = m
        .product_info
        .iter()
        .enumerate()
        .max_by_key(|(i, info)| (info.sizes.len(), usize::MAX - i))
        .unwrap();
    let brand = m.brands[info.brand as usize].name.clone();
    (i, m.products[i].name.clone(), brand)
}

/// `n` past purchases of other products, in their middle sizes, with mixed outcomes.
fn history(m: &Fitted, skip: usize, n: usize) -> Vec<PastPurchase> {
    let outcomes = [
        "kept",
        "returned_too_small",
        "kept",
        "returned_too_large",
        "kept",
    ];
    m.product_info
        .iter()
        .enumerate()
        .filter(|(i, info)| *i != skip && !info.sizes.is_empty())
        .take(n)
        .enumerate()
        .map(|(k, (i, info))| {
            let l = &m.labels[info.sizes[info.sizes.len() / 2] as usize];
            PastPurchase {
                brand: Some(m.brands[info.brand as usize].name.clone()),
                product_id: Some(m.products[i].name.clone()),
                category: None,
                size: l.canonical.clone(),
                size_system: Some(l.system.as_str().to_string()),
                outcome: outcomes[k % outcomes.len()].to_string(),
            }
        })
        .collect()
}

/// Percent-encode a path segment.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12
}

#[tokio::test]
async fn health_ready_and_not_ready() {
    let app = app();
    let (s, b) = get_json(&app, "/healthz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["status"], "ok");
    let (s, b) = get_json(&app, "/readyz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["model_id"], fixture().header.model_id.as_str());

    let empty = router(AppState::empty(ServeOptions::default()));
    let (s, b) = get_json(&empty, "/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["type"], "not_ready");
    let (s, _) = get_json(&empty, "/healthz").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = post_json(&empty, "/v1/recommend", &json!({"product": {"brand": "x"}})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["type"], "not_ready");
}

#[tokio::test]
async fn recommend_history_only_matches_the_model() {
    let f = fixture();
    let m = &f.model;
    let (p, pid, _) = big_product(m);
    let shopper = Shopper {
        history: history(m, p, 6),
        ..Shopper::default()
    };
    let body = json!({"product": {"product_id": pid}, "shopper": shopper});
    let (s, b) = post_json(&app(), "/v1/recommend", &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model_id"], f.header.model_id.as_str());

    let (state, basis) = m.shopper_belief(&shopper.view().to_query()).unwrap();
    let belief = m.at_purchase(&state, None);
    assert_eq!(basis.as_slice(), ["history"]);
    let info = &m.product_info[p];
    let sizes = b["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), info.sizes.len());
    let mut best = (String::new(), -1.0);
    for s in sizes {
        let label = s["size"].as_str().unwrap();
        let l = m.label_index(label).unwrap();
        let lp = &m.labels[l as usize];
        let a = ArticleRef {
            product: p as u32,
            brand: info.brand,
            category: info.category,
            label: l,
            system: lp.system,
            pos: lp.pos,
        };
        let want = m.probs_article(belief, &a);
        let got = [
            s["p_small"].as_f64().unwrap(),
            s["p_fit"].as_f64().unwrap(),
            s["p_large"].as_f64().unwrap(),
        ];
        for k in 0..3 {
            assert!(
                close(got[k], want[k]),
                "{label}: got {got:?}, want {want:?}"
            );
        }
        assert!(close(got.iter().sum::<f64>(), 1.0));
        if want[1] > best.1 {
            best = (label.to_string(), want[1]);
        }
    }
    assert_eq!(b["recommended_size"], best.0.as_str());
    assert!(close(b["fit_probability"].as_f64().unwrap(), best.1));
    assert!(close(
        b["confidence"]["shopper_size_sd"].as_f64().unwrap(),
        belief.var.sqrt()
    ));
    assert_eq!(b["confidence"]["basis"], json!(["history"]));
    assert!(["high", "medium", "low"].contains(&b["confidence"]["level"].as_str().unwrap()));
    assert!(b["brand_fit"]["offset"].is_number());
    let explanation = b["explanation"].as_str().unwrap();
    assert!(
        explanation.ends_with('.') && explanation.contains("we recommend"),
        "{explanation}"
    );
}

#[tokio::test]
async fn recommend_other_evidence_kinds() {
    let f = fixture();
    let m = &f.model;
    let (_, pid, brand) = big_product(m);
    let app = app();
    // known customer id
    let customer = m.customers.id(0).unwrap().into_owned();
    let (s, b) = post_json(
        &app,
        "/v1/recommend",
        &json!({"product": {"product_id": pid}, "shopper": {"customer_id": customer}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["confidence"]["basis"]
        .as_array()
        .unwrap()
        .contains(&json!("customer")));
    // reference size + features, explicit sizes on offer for a brand only
    let l = &m.labels[m.product_info[0].sizes[0] as usize];
    let body = json!({
        "product": {"brand": brand, "sizes": [l.canonical], "size_system": l.system.as_str()},
        "shopper": {
            "reference": [{"brand": brand, "size": l.canonical, "size_system": l.system.as_str()}],
            "features": {"height_cm": 172.0, "weight_kg": 70.0}
        }
    });
    let (s, b) = post_json(&app, "/v1/recommend", &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["confidence"]["basis"], json!(["features", "reference"]));
    assert_eq!(b["sizes"].as_array().unwrap().len(), 1);
    // nobody: population prior
    let (s, b) = post_json(
        &app,
        "/v1/recommend",
        &json!({"product": {"product_id": pid}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["confidence"]["basis"], json!(["population"]));
}

#[tokio::test]
async fn recommend_errors() {
    let f = fixture();
    let (p, pid, _) = big_product(&f.model);
    let app = app();
    let cases: Vec<(&str, StatusCode, &str, Option<&str>)> = vec![
        ("{not json", StatusCode::BAD_REQUEST, "bad_request", None),
        ("", StatusCode::BAD_REQUEST, "bad_request", None),
        (
            r#"{"shopper": {}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("product"),
        ),
        (
            r#"{"product": {"sizes": "M"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("product.sizes"),
        ),
        (
            r#"{"product": {"brand": "no such brand"}}"#,
            StatusCode::NOT_FOUND,
            "not_found",
            Some("product"),
        ),
    ];
    for (body, status, kind, field) in cases {
        let (s, b) = post_raw(&app, "/v1/recommend", body.to_string()).await;
        assert_eq!(s, status, "{body} -> {b}");
        assert_eq!(b["type"], kind, "{body} -> {b}");
        assert!(b["error"].as_str().is_some_and(|e| !e.is_empty()));
        match field {
            Some(fl) => assert_eq!(b["field"], fl, "{body} -> {b}"),
            None => assert!(b.get("field").is_none(), "{b}"),
        }
    }
    // value errors found by the model name the field
    let mut hist = history(&f.model, p, 3);
    hist[2].outcome = "exploded".into();
    let (s, b) = post_json(
        &app,
        "/v1/recommend",
        &json!({"product": {"product_id": pid}, "shopper": {"history": hist}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["field"], "shopper.history[2].outcome");
    let (s, b) = post_json(
        &app,
        "/v1/recommend",
        &json!({"product": {"product_id": pid, "sizes": ["M", "ZZQ"]}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["field"], "product.sizes[1]");
    let (s, b) = post_json(
        &app,
        "/v1/recommend",
        &json!({"product": {"product_id": pid}, "shopper": {"features": {"height_cm": "tall"}}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["field"], "shopper.features.height_cm");
    // a list over the limit is 413 with its field
    let sizes: Vec<String> = (0..300).map(|i| format!("{}", 30 + i % 20)).collect();
    let (s, b) = post_json(
        &app,
        "/v1/recommend",
        &json!({"product": {"product_id": pid, "sizes": sizes}}),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(b["field"], "product.sizes");
    // wrong method and unknown route
    let (s, b) = get_json(&app, "/v1/recommend").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(b["type"], "method_not_allowed");
    let (s, b) = get_json(&app, "/v2/nothing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["type"], "not_found");
}

#[tokio::test]
async fn body_limit_is_413_json() {
    let app = router(state_with(ServeOptions {
        body_limit: 2048,
        ..options()
    }));
    let big = json!({"product": {"brand": "x".repeat(4000)}});
    let (s, b) = post_json(&app, "/v1/recommend", &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["type"], "payload_too_large");
}

#[tokio::test]
async fn batch_answers_in_order_with_per_item_errors() {
    let f = fixture();
    let (p, pid, brand) = big_product(&f.model);
    let app = router(state_with(ServeOptions {
        max_batch: 4,
        ..options()
    }));
    let good =
        json!({"product": {"product_id": pid}, "shopper": {"history": history(&f.model, p, 2)}});
    let body = json!({"items": [
        good,
        {"product": {"product_id": pid, "sizes": ["ZZQ"]}},
        {"shopper": {}},
        {"product": {"brand": brand, "product_id": pid}},
    ]});
    let (s, b) = post_json(&app, "/v1/recommend/batch", &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["ok"], 2);
    assert_eq!(b["failed"], 2);
    assert_eq!(b["model_id"], f.header.model_id.as_str());
    let items = b["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    // same answer as the single route
    let (_, single) = post_json(&app, "/v1/recommend", &good).await;
    assert_eq!(items[0]["recommendation"]["sizes"], single["sizes"]);
    assert_eq!(
        items[0]["recommendation"]["recommended_size"],
        single["recommended_size"]
    );
    assert!(items[0].get("error").is_none());
    assert_eq!(items[1]["error"]["field"], "items[1].product.sizes[0]");
    assert_eq!(items[1]["error"]["type"], "invalid");
    assert_eq!(items[2]["error"]["field"], "items[2].product");
    assert!(items[3]["recommendation"]["recommended_size"].is_string());

    let (s, b) = post_json(&app, "/v1/recommend/batch", &json!({"items": []})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["field"], "items");
    let five = json!({"items": vec![json!({"product": {"product_id": pid}}); 5]});
    let (s, b) = post_json(&app, "/v1/recommend/batch", &five).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(b["field"], "items");
    let (s, _) = post_raw(&app, "/v1/recommend/batch", r#"{"items": [1,"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn big_batch_runs_off_the_async_threads() {
    let f = fixture();
    let (_, pid, _) = big_product(&f.model);
    let items = vec![json!({"product": {"product_id": pid}}); 100];
    let (s, b) = post_json(&app(), "/v1/recommend/batch", &json!({ "items": items })).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["ok"], 100);
}

#[tokio::test]
async fn brand_and_product_profiles() {
    let f = fixture();
    let m = &f.model;
    let app = app();
    let (s, b) = get_json(&app, "/v1/brands").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["total"], m.brands.len());
    assert_eq!(b["sort"], "score");
    assert_eq!(b["order"], "desc");
    let scores: Vec<f64> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let first = &b["items"][0];
    for key in ["key", "offset", "se", "interval", "n", "verdict", "advice"] {
        assert!(first.get(key).is_some(), "missing {key}");
    }

    let (s, b) = get_json(&app, "/v1/brands?sort=name&limit=2&offset=1").await;
    assert_eq!(s, StatusCode::OK);
    let mut names: Vec<String> = m.brands.iter().map(|b| b.name.clone()).collect();
    names.sort();
    let got: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![names[1].as_str(), names[2].as_str()]);
    assert_eq!(b["order"], "asc");

    let (_, b) = get_json(
        &app,
        "/v1/brands?sort=offset&order=asc&by=product&limit=1000",
    )
    .await;
    assert_eq!(b["by"], "product");
    assert_eq!(b["total"], m.products.len());
    let offs: Vec<f64> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_f64().unwrap())
        .collect();
    assert!(offs.windows(2).all(|w| w[0] <= w[1]));
    let (_, b) = get_json(&app, "/v1/brands?by=category&sort=n").await;
    assert_eq!(b["total"], m.categories.len());

    for (q, field) in [
        ("sort=size", "sort"),
        ("order=up", "order"),
        ("by=shop", "by"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("offset=-3", "offset"),
    ] {
        let (s, b) = get_json(&app, &format!("/v1/brands?{q}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert_eq!(b["field"], field, "{q}");
    }

    let brand = &m.brands[0].name;
    let (s, b) = get_json(&app, &format!("/v1/brands/{}", enc(brand))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["profile"]["key"], brand.as_str());
    assert!(close(
        b["profile"]["offset"].as_f64().unwrap(),
        m.brands[0].offset.value
    ));
    let (s, b) = get_json(&app, "/v1/brands/NoSuchBrand").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["field"], "brand");

    let pid = &m.products[0].name;
    let (s, b) = get_json(&app, &format!("/v1/products/{}", enc(pid))).await;
    assert_eq!(s, StatusCode::OK);
    let want = m.product_profile(0).unwrap();
    assert!(close(b["profile"]["offset"].as_f64().unwrap(), want.offset));
    assert_eq!(b["profile"]["n"], want.n);
    let want_sizes: Vec<&str> = m.product_info[0]
        .sizes
        .iter()
        .map(|&l| m.labels[l as usize].canonical.as_str())
        .collect();
    assert_eq!(b["sizes"], json!(want_sizes));
    assert!(b["size_system"].is_string());
    let (_, b) = get_json(&app, &format!("/v1/brands/{}", enc(&m.brands[0].name))).await;
    assert!(b.get("sizes").is_none());
    let (s, b) = get_json(&app, "/v1/products/no-such-product").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["type"], "not_found");

    let (s, b) = get_json(&app, "/v1/model").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["brands"], m.brands.len());
    assert_eq!(b["features"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn metrics_and_openapi() {
    let f = fixture();
    let (_, pid, _) = big_product(&f.model);
    let app = app();
    for _ in 0..3 {
        let (s, _) = post_json(
            &app,
            "/v1/recommend",
            &json!({"product": {"product_id": pid}}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _) = post_raw(&app, "/v1/recommend", "{").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = get_json(&app, "/nowhere").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let resp = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("runsize_http_requests_total{route=\"/v1/recommend\",status=\"200\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("runsize_http_requests_total{route=\"/v1/recommend\",status=\"400\"} 1\n")
    );
    assert!(text.contains("runsize_http_requests_total{route=\"other\",status=\"404\"} 1\n"));
    assert!(
        text.contains("runsize_http_request_duration_seconds_count{route=\"/v1/recommend\"} 4\n")
    );
    assert!(text.contains(&format!(
        "runsize_model_info{{model_id=\"{}\"}} 1\n",
        f.header.model_id
    )));
    let levels: u64 = text
        .lines()
        .filter(|l| l.starts_with("runsize_recommendations_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(levels, 3);

    let (s, doc) = get_json(&app, "/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in [
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
    ] {
        assert!(doc["paths"][path].is_object(), "{path} not described");
    }
    assert!(doc["components"]["schemas"]["Recommendation"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn reload_auth_swap_and_refusal() {
    let f = fixture();
    let (_, pid, _) = big_product(&f.model);
    // no token configured: the route does not exist
    let open = router(state_with(ServeOptions {
        admin_token: None,
        ..options()
    }));
    let (s, b) = reload(&open, Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["type"], "not_found");

    let app = app();
    let (s, b) = reload(&app, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["type"], "unauthorized");
    let (s, _) = reload(&app, Some("wrong-token-here"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // same path again
    let (s, b) = reload(&app, Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model_id"], f.header.model_id.as_str());
    assert_eq!(b["previous_model_id"], f.header.model_id.as_str());
    // another artifact
    let (s, b) = reload(&app, Some(TOKEN), Some(json!({"path": f.path2}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model_id"], f.id2.as_str());
    let (_, b) = post_json(
        &app,
        "/v1/recommend",
        &json!({"product": {"product_id": pid}}),
    )
    .await;
    assert_eq!(b["model_id"], f.id2.as_str());
    // refused artifacts leave the model serving
    for bad in [&f.corrupt, &f.empty, &f.path.with_extension("missing")] {
        let (s, b) = reload(&app, Some(TOKEN), Some(json!({ "path": bad }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["type"], "reload_refused");
        assert!(!b["error"].as_str().unwrap().is_empty());
    }
    let (_, b) = get_json(&app, "/readyz").await;
    assert_eq!(b["model_id"], f.id2.as_str());
    // a body that is not JSON
    let req = Request::post("/admin/reload")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from("{path"))
        .unwrap();
    let (s, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let resp = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("runsize_model_reloads_total{result=\"ok\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("runsize_model_reloads_total{result=\"refused\"} 3\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_while_serving_fails_no_request() {
    let f = fixture();
    let (p, pid, _) = big_product(&f.model);
    let app = app();
    let body =
        json!({"product": {"product_id": pid}, "shopper": {"history": history(&f.model, p, 5)}});
    let (s, reference) = post_json(&app, "/v1/recommend", &body).await;
    assert_eq!(s, StatusCode::OK);
    let mut clients = Vec::new();
    for _ in 0..6 {
        let app = app.clone();
        let body = body.clone();
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..150 {
                let (s, b) = post_json(&app, "/v1/recommend", &body).await;
                seen.push((
                    s,
                    b["model_id"].as_str().unwrap_or("").to_string(),
                    b["sizes"].clone(),
                ));
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    let mut reloads = 0;
    for i in 0..12 {
        let path = if i % 2 == 0 { &f.path2 } else { &f.path };
        let (s, b) = reload(&app, Some(TOKEN), Some(json!({ "path": path }))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        reloads += 1;
        if i == 5 {
            let (s, _) = reload(&app, Some(TOKEN), Some(json!({"path": f.corrupt}))).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
    assert_eq!(reloads, 12);
    let mut total = 0;
    for c in clients {
        for (status, id, sizes) in c.await.unwrap() {
            assert_eq!(status, StatusCode::OK);
            assert!(id == f.header.model_id || id == f.id2, "{id}");
            // both artifacts hold the same parameters
            assert_eq!(sizes, reference["sizes"]);
            total += 1;
        }
    }
    assert_eq!(total, 900);
}

#[tokio::test]
async fn panics_are_caught_and_answered_500_json() {
    let state = state_with(options());
    let routes: Router<AppState> = Router::new().route(
        "/boom",
        get(|| async {
            if std::hint::black_box(true) {
                panic!("handler bug");
            }
            "unreachable"
        }),
    );
    let app = layered(
        routes.merge(Router::new().route("/ok", get(|| async { "fine" }))),
        state.clone(),
    );
    let (s, b) = get_json(&app, "/boom").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(b["type"], "internal");
    assert!(
        !b["error"].as_str().unwrap().contains("handler bug"),
        "panic text must not leak"
    );
    let (s, _) = get_json(&app, "/ok").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(state.metrics().requests("other", 500), 1);
}

#[tokio::test]
async fn slow_requests_time_out_with_json() {
    let state = state_with(ServeOptions {
        timeout: Duration::from_millis(50),
        ..options()
    });
    let routes: Router<AppState> = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let app = layered(
        runsize::serve::middleware::with_deadline(routes, state.clone()),
        state,
    );
    let (s, b) = get_json(&app, "/slow").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["type"], "timeout");
}

#[tokio::test]
async fn real_socket_with_reqwest() {
    let f = fixture();
    let (p, pid, _) = big_product(&f.model);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(runsize::serve::serve_on(
        listener,
        state_with(options()),
        async {
            let _ = rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let shopper = Shopper {
        history: history(&f.model, p, 4),
        ..Shopper::default()
    };
    let resp = client
        .post(format!("{base}/v1/recommend"))
        .json(&json!({"product": {"product_id": pid}, "shopper": shopper}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let b: Value = resp.json().await.unwrap();
    let (state, _) = f.model.shopper_belief(&shopper.view().to_query()).unwrap();
    let belief = f.model.at_purchase(&state, None);
    assert!(close(
        b["confidence"]["shopper_size_sd"].as_f64().unwrap(),
        belief.var.sqrt()
    ));
    let resp = client
        .post(format!("{base}/v1/recommend"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["type"], "bad_request");
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "server still up after shutdown"
    );
}

/// The server's path (body strings borrowed, the model's lookup index, spliced response
/// JSON) gives exactly what `Fitted::recommend` (owned request, no index) gives, for
/// requests that hit the index and requests that fall back on the model: escaped
/// strings, label spellings and outcome words the index does not hold, unknown brands,
/// reference sizes, body features, explicit sizes.
#[tokio::test]
async fn served_answers_equal_the_model_without_the_index() {
    let f = fixture();
    let m = &f.model;
    let (p, pid, brand) = big_product(m);
    let app = app();
    let mut h = history(m, p, 12);
    // an outcome spelling and a label spelling outside the index
    h[0].outcome = "Returned Too-Small".into();
    h[1].size = format!(" {} ", h[1].size.to_lowercase());
    h[2].size_system = None;
    h[3].brand = Some("no such brand".into());
    let label_of = |i: u32| m.labels[i as usize].canonical.clone();
    let sizes: Vec<String> = m.product_info[p]
        .sizes
        .iter()
        .map(|&l| label_of(l))
        .collect();
    let cases = vec![
        json!({"product": {"product_id": pid}, "shopper": {"history": h}}),
        json!({"product": {"brand": brand, "sizes": sizes.iter().rev().collect::<Vec<_>>()},
               "shopper": {"reference": [{"brand": brand, "size": sizes[0]}],
                           "features": {"height_cm": 171.0, "body_shape": "straight"}}}),
        json!({"product": {"product_id": pid}, "shopper": {"customer_id": m.customers.id(3).unwrap()}}),
        json!({"product": {"brand": brand, "sizes": [sizes[1].to_lowercase(), sizes[0]]}}),
    ];
    for body in cases {
        // the same request with every string escaped (the parser then owns them)
        let escaped = body.to_string().replace('a', "\\u0061");
        for text in [body.to_string(), escaped] {
            let (s, got) = post_raw(&app, "/v1/recommend", text.clone()).await;
            assert_eq!(s, StatusCode::OK, "{got}");
            let req: runsize::serve::api::RecommendRequest = serde_json::from_str(&text).unwrap();
            let want = runsize::serve::api::recommend(m, &req.product, &req.shopper).unwrap();
            let mut want = serde_json::to_value(&want).unwrap();
            want["model_id"] = json!(f.header.model_id);
            // through text as the server's answer went (serde_json's float parsing is
            // not an exact round trip)
            let want: Value = serde_json::from_str(&want.to_string()).unwrap();
            assert_eq!(got, want, "request {text}");
        }
    }
}

/// A product known from training but without a size label (e.g. only returns for other
/// reasons) and no sizes in the request: a 422 naming `product.sizes`, not a panic.
#[test]
fn product_without_known_sizes_is_invalid_not_a_panic() {
    use runsize::model::RecommendError;
    use runsize::serve::api::ProductQuery;
    let f = fixture();
    let (p, pid, _) = big_product(&f.model);
    let mut m = f.model.fitted().clone();
    m.product_info[p].sizes.clear();
    let m = Predictor::new(m).unwrap();
    let q = ProductQuery {
        product_id: Some(pid),
        ..Default::default()
    };
    match runsize::serve::api::recommend(&m, &q, &Shopper::default()) {
        Err(RecommendError::Invalid { field, .. }) => assert_eq!(field, "product.sizes"),
        other => panic!("expected an invalid product.sizes, got {other:?}"),
    }
}
