//! Recommendation compute latency in process: `Predictor::recommend` of a ready query for
//! a shopper with 20 past purchases and a product with 8 sizes on offer, and the path the
//! server takes (wire types -> query -> answer, `serve::api::recommend`), as criterion
//! benches and printed
//! percentiles of single calls, for the structural model and the same model with the
//! default second stage (`runsize train` fits one; recommendations then take the
//! per-size stack path); and the same request through the full in-process router
//! (JSON in, JSON out).
//!
//! Run: `cargo bench --bench recommend` (fits a small synthetic model and its second
//! stage first, ~a minute).
//! With `RECOMMEND_MODELS=<dir>` the two models are saved there on the first run and
//! read back on later ones. With `RECOMMEND_PROFILE_CALLS=n` it instead makes `n` calls of each path in the
//! functions `profile_recommend` and `profile_router` and exits: run it under
//! `valgrind --tool=callgrind --toggle-collect='*profile_recommend*'` for instruction
//! counts that do not depend on the machine's load.

use axum::body::Body;
use axum::http::Request;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http_body_util::BodyExt;
use runsize::data::{ingest, IngestConfig, SizeSystem};
use runsize::model::artifact;
use runsize::model::stack_fit::StackParams;
use runsize::model::{FitParams, Fitted, Predictor, Query};
use runsize::serve::api::{PastPurchase, ProductQuery, Recommendation, Shopper};
use runsize::serve::{router, AppState, ServeOptions};
use std::collections::BTreeMap;
use std::time::Instant;
use tower::ServiceExt;

struct Setup {
    model: Predictor,
    /// The same structural model with the default second stage.
    stacked: Predictor,
    product: ProductQuery,
    shopper: Shopper,
}

/// The structural model and the same with the default second stage: fitted, or read
/// from the directory `RECOMMEND_MODELS` names (written there on the first run), so that
/// profiling runs under valgrind skip the fits.
fn models() -> (Fitted, Fitted) {
    let Ok(dir) = std::env::var("RECOMMEND_MODELS") else {
        return fit_models();
    };
    let dir = std::path::PathBuf::from(dir);
    let (a, b) = (dir.join("structural.runsize"), dir.join("stacked.runsize"));
    if a.exists() && b.exists() {
        let load = |p: &std::path::Path| artifact::load(p).expect("load a saved bench model").0;
        return (load(&a), load(&b));
    }
    let (model, stacked) = fit_models();
    std::fs::create_dir_all(&dir).expect("model directory");
    artifact::save(&model, &a).expect("save");
    artifact::save(&stacked, &b).expect("save");
    (model, stacked)
}

fn fit_models() -> (Fitted, Fitted) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.parquet");
    let cfg = runsize::synth::SynthConfig {
        events: 30_000,
        brands: 10,
        seed: 3,
        customer_truth: false,
        ..runsize::synth::SynthConfig::default()
    };
    runsize::synth::generate(&cfg, &path).expect("synth");
    let mut icfg = IngestConfig::new(vec![path.display().to_string()]);
    icfg.customer_features = vec!["height_cm".into(), "weight_kg".into(), "body_shape".into()];
    let events = ingest(&icfg).expect("ingest").events;
    let fit = FitParams::default().max_iter(10);
    let model = fit.fit(&events).expect("fit");
    // the second stage as `runsize train` fits it (default cross-fitting and
    // cross-validation), over the bench's structural fit
    let stack = StackParams {
        structural: fit,
        ..StackParams::default()
    }
    .fit(&Predictor::new(model.clone()).expect("valid"), &events)
    .expect("second stage");
    let mut stacked = model.clone();
    stacked.stack = Some(stack);
    (model, stacked)
}

fn setup() -> Setup {
    let (model, stacked) = models();
    let model = Predictor::new(model).expect("valid model");
    let stacked = Predictor::new(stacked).expect("valid model");
    // 8 sizes of the system with the most labels, around its middle
    let mut by_system: BTreeMap<SizeSystem, Vec<usize>> = BTreeMap::new();
    for (i, l) in model.labels.iter().enumerate() {
        by_system.entry(l.system).or_default().push(i);
    }
    let (system, mut labels) = by_system
        .into_iter()
        .max_by_key(|(_, v)| v.len())
        .expect("labels");
    labels.sort_by(|&a, &b| model.labels[a].pos.total_cmp(&model.labels[b].pos));
    let start = labels.len().saturating_sub(8) / 2;
    let sizes: Vec<String> = labels
        .iter()
        .skip(start)
        .take(8)
        .map(|&i| model.labels[i].canonical.clone())
        .collect();
    let (p, info) = model
        .product_info
        .iter()
        .enumerate()
        .find(|(_, info)| {
            info.sizes
                .iter()
                .any(|&l| model.labels[l as usize].system == system)
        })
        .expect("a product in the system");
    let product = ProductQuery {
        brand: Some(model.brands[info.brand as usize].name.clone()),
        product_id: Some(model.products[p].name.clone()),
        category: None,
        sizes: Some(sizes),
        size_system: Some(system.as_str().into()),
    };
    let outcomes = [
        "kept",
        "returned_too_small",
        "kept",
        "returned_too_large",
        "kept",
    ];
    let history: Vec<PastPurchase> = model
        .product_info
        .iter()
        .enumerate()
        .filter(|(i, info)| *i != p && !info.sizes.is_empty())
        .take(20)
        .enumerate()
        .map(|(k, (i, info))| {
            let l = &model.labels[info.sizes[info.sizes.len() / 2] as usize];
            PastPurchase {
                brand: Some(model.brands[info.brand as usize].name.clone()),
                product_id: Some(model.products[i].name.clone()),
                category: None,
                size: l.canonical.clone(),
                size_system: Some(l.system.as_str().into()),
                outcome: outcomes[k % outcomes.len()].into(),
            }
        })
        .collect();
    assert_eq!(history.len(), 20);
    let shopper = Shopper {
        history,
        ..Shopper::default()
    };
    let rec = runsize::serve::api::recommend(&model, &product, &shopper).expect("recommend");
    assert_eq!(rec.sizes.len(), 8);
    let rec = runsize::serve::api::recommend(&stacked, &product, &shopper).expect("recommend");
    assert_eq!(rec.sizes.len(), 8);
    assert!(
        stacked.stack.as_ref().is_some_and(|s| s.offer.is_some()),
        "the second stage has no sizes-on-offer calibration: the bench would time the structural path"
    );
    Setup {
        model,
        stacked,
        product,
        shopper,
    }
}

/// Latency percentiles of `n` single calls of `f`, printed under `name`.
fn percentiles(name: &str, mut f: impl FnMut()) {
    let n = 200_000;
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f();
        t.push(start.elapsed().as_nanos() as u64);
    }
    t.sort_unstable();
    let q = |p: f64| t[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0;
    println!(
        "{name} (20 past purchases, 8 sizes), {n} calls: p50 {:.2} us, p90 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.2} us",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        t[n - 1] as f64 / 1000.0
    );
}

/// The server's path without JSON: borrowed request, the model's query, the owned answer.
fn served(s: &Setup) -> Option<Recommendation> {
    runsize::serve::api::recommend(&s.model, black_box(&s.product), black_box(&s.shopper)).ok()
}

/// The server's path with the second stage.
fn served_stacked(s: &Setup) -> Option<Recommendation> {
    runsize::serve::api::recommend(&s.stacked, black_box(&s.product), black_box(&s.shopper)).ok()
}

/// `f` with the setup's request as the model's query (built once).
fn with_query<R>(s: &Setup, f: impl FnOnce(&Query<'_>) -> R) -> R {
    let (product, shopper) = (s.product.view(), s.shopper.view());
    f(&Query {
        product: product.to_query(),
        shopper: shopper.to_query(),
    })
}

/// `n` calls of the server's path with the second stage (a separate symbol for callgrind).
#[inline(never)]
fn profile_stacked(s: &Setup, n: usize) {
    for _ in 0..n {
        black_box(served_stacked(s));
    }
}

/// `n` calls of `Predictor::recommend` on a ready query (a separate symbol for
/// `callgrind --toggle-collect`).
#[inline(never)]
fn profile_recommend(s: &Setup, n: usize) {
    with_query(s, |q| {
        for _ in 0..n {
            black_box(s.model.recommend(black_box(q)).ok().map(|v| v.best));
        }
    });
}

/// `n` calls of the server's path (a separate symbol for callgrind).
#[inline(never)]
fn profile_served(s: &Setup, n: usize) {
    for _ in 0..n {
        black_box(served(s));
    }
}

/// `n` requests through the in-process router (a separate symbol for callgrind).
#[inline(never)]
fn profile_router(app: &axum::Router, body: &str, rt: &tokio::runtime::Runtime, n: usize) {
    for _ in 0..n {
        rt.block_on(router_call(app, body));
    }
}

/// `n` requests through the in-process router serving the model with the second stage
/// (a separate symbol for callgrind).
#[inline(never)]
fn profile_router_stacked(app: &axum::Router, body: &str, rt: &tokio::runtime::Runtime, n: usize) {
    for _ in 0..n {
        rt.block_on(router_call(app, body));
    }
}

/// `n` requests of the same body to the bare constant router (a separate symbol for
/// callgrind: the baseline of the HTTP bench without the network).
#[inline(never)]
fn profile_bare(body: &str, rt: &tokio::runtime::Runtime, n: usize) {
    let bare = runsize::serve::bare_router();
    for _ in 0..n {
        rt.block_on(call(&bare, "/v1/recommend", body));
    }
}

/// `n` `GET /healthz` through the full router (a separate symbol for callgrind: what
/// the layers cost).
#[inline(never)]
fn profile_healthz(app: &axum::Router, rt: &tokio::runtime::Runtime, n: usize) {
    for _ in 0..n {
        rt.block_on(async {
            let req = Request::get("/healthz")
                .body(Body::empty())
                .expect("request");
            let resp = app.clone().oneshot(req).await.expect("infallible");
            resp.into_body().collect().await.expect("body").to_bytes()
        });
    }
}

async fn router_call(app: &axum::Router, body: &str) -> axum::body::Bytes {
    call(app, "/v1/recommend", body).await
}

async fn call(app: &axum::Router, uri: &str, body: &str) -> axum::body::Bytes {
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert!(resp.status().is_success());
    resp.into_body().collect().await.expect("body").to_bytes()
}

fn benches(c: &mut Criterion) {
    let s = setup();
    let (_, header) = artifact::to_bytes(&s.model).expect("encode");
    let app = router(AppState::new(
        Predictor::new(s.model.fitted().clone()).expect("valid"),
        header,
        ServeOptions::default(),
    ));
    let (_, header) = artifact::to_bytes(&s.stacked).expect("encode");
    let app_stacked = router(AppState::new(
        Predictor::new(s.stacked.fitted().clone()).expect("valid"),
        header,
        ServeOptions::default(),
    ));
    let body = serde_json::json!({"product": s.product, "shopper": s.shopper}).to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // instruction counts instead of timings (the machine is shared):
    // RECOMMEND_PROFILE_CALLS=1000 valgrind --tool=callgrind \
    //   --toggle-collect='*profile_recommend*' <bench binary> --bench
    if let Some(n) = std::env::var("RECOMMEND_PROFILE_CALLS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        profile_recommend(&s, n);
        profile_served(&s, n);
        profile_stacked(&s, n);
        profile_router(&app, &body, &rt, n);
        profile_router_stacked(&app_stacked, &body, &rt, n);
        profile_bare(&body, &rt, n);
        profile_healthz(&app, &rt, n);
        return;
    }
    with_query(&s, |q| {
        percentiles("Predictor::recommend of a ready query", || {
            black_box(s.model.recommend(black_box(q)).ok().map(|v| v.best));
        })
    });
    percentiles("served (request -> query -> answer)", || {
        black_box(served(&s));
    });
    percentiles("served, second stage", || {
        black_box(served_stacked(&s));
    });
    with_query(&s, |q| {
        c.bench_function("recommend_20_history_8_sizes", |b| {
            b.iter(|| black_box(s.model.recommend(black_box(q)).ok().map(|v| v.best)))
        });
        c.bench_function("shopper_belief_20_history", |b| {
            b.iter(|| black_box(s.model.shopper_belief(black_box(&q.shopper)).ok()))
        });
    });
    c.bench_function("served_recommend_20_history_8_sizes", |b| {
        b.iter(|| black_box(served(&s)))
    });
    c.bench_function("served_stacked_recommend_20_history_8_sizes", |b| {
        b.iter(|| black_box(served_stacked(&s)))
    });
    c.bench_function("router_oneshot_recommend_json", |b| {
        b.iter(|| black_box(rt.block_on(router_call(&app, &body))))
    });
    c.bench_function("router_oneshot_recommend_json_second_stage", |b| {
        b.iter(|| black_box(rt.block_on(router_call(&app_stacked, &body))))
    });
}

criterion_group!(recommend, benches);
criterion_main!(recommend);
