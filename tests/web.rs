//! The size-normalisation view end to end: on synthetic data with known brand and
//! product offsets, size charts, conversions and product flags agree with the truth; its
//! routes and the merchant pages answer in process (tower `oneshot`), errors included;
//! and headless Chromium renders every page against a running server (skipped with a
//! reason when Chromium is absent, failed when `CI=true`).

use crate::common;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use runsize::data::schema::NONE;
use runsize::data::SizeSystem;
use runsize::model::artifact::{self, ArtifactHeader};
use runsize::model::insight::chart::{all_charts, size_chart, ChartQuery};
use runsize::model::insight::convert::{convert, ConvertQuery};
use runsize::model::insight::flags::{flags, FlagOptions};
use runsize::model::insight::worth::held_out;
use runsize::model::{FitParams, Predictor};
use runsize::serve::{router, AppState, ServeOptions};
use runsize::synth::Truth;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use tower::ServiceExt;

/// A model fitted on 80% of a synthetic catalogue, its held-out evaluation on the other
/// 20% stored in its artifact, and the truth.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    model: Predictor,
    header: ArtifactHeader,
    truth: Truth,
}

fn fixture() -> &'static Fixture {
    static FIX: OnceLock<Fixture> = OnceLock::new();
    // polars refuses to block inside a tokio test's runtime: build on a plain thread
    FIX.get_or_init(|| std::thread::spawn(build_fixture).join().unwrap())
}

fn build_fixture() -> Fixture {
    let s = common::synth_split(120_000, 13, 12, Some(12));
    let fitted = FitParams::default().max_iter(20).fit(&s.train).unwrap();
    let model = Predictor::new(fitted).unwrap();
    let held = held_out(&model, &s.test, "part 1 of split 80,20 (seed 1)").unwrap();
    let dir = common::tempdir();
    let path = dir.path().join("web.runsize");
    artifact::save_with(model.fitted(), &path, Some(&held)).unwrap();
    let (model, header) = artifact::load_predictor(&path).unwrap();
    Fixture {
        _dir: dir,
        path,
        model,
        header,
        truth: s.truth,
    }
}

/// Average ranks (ties share their mean rank).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    common::pearson(&ranks(a), &ranks(b))
}

/// True common-scale position of a label of a brand: `(pos − origin) / scale + offset`.
fn truth_position(truth: &Truth, system: SizeSystem, pos: f64, brand_offset: f64) -> Option<f64> {
    let sys = truth.system(system)?;
    Some((pos - sys.origin) / sys.scale + brand_offset)
}

#[test]
fn charts_agree_with_the_truth() {
    let f = fixture();
    let m = &f.model;
    let truth_brand: HashMap<&str, f64> = f
        .truth
        .brands
        .iter()
        .map(|b| (b.name.as_str(), b.offset))
        .collect();
    let (mut est, mut tru) = (Vec::new(), Vec::new());
    // within one label across brands too: the brand effect alone, not just label order
    let mut by_label: HashMap<String, (Vec<f64>, Vec<f64>)> = HashMap::new();
    for chart in all_charts(m) {
        let off = truth_brand[chart.brand.as_str()];
        for r in &chart.rows {
            let Some(l) = m.labels.iter().find(|l| l.canonical == r.label) else {
                continue;
            };
            let Some(t) = truth_position(&f.truth, l.system, l.pos, off) else {
                continue;
            };
            est.push(r.position);
            tru.push(t);
            let e = by_label.entry(r.label.clone()).or_default();
            e.0.push(r.position);
            e.1.push(t);
        }
    }
    let rho = spearman(&est, &tru);
    println!(
        "chart positions vs truth: {} (brand, label) pairs, Spearman {rho:.4}",
        est.len()
    );
    assert!(est.len() > 50, "{}", est.len());
    assert!(rho >= 0.95, "Spearman {rho}");
    // the brands' order within each well-sold letter label
    let mut within = Vec::new();
    for (label, (e, t)) in &by_label {
        if e.len() >= 6
            && m.labels
                .iter()
                .any(|l| &l.canonical == label && l.system == SizeSystem::Letter)
        {
            within.push(spearman(e, t));
        }
    }
    let mean_within = within.iter().sum::<f64>() / within.len().max(1) as f64;
    println!(
        "brand order within a letter label: mean Spearman {mean_within:.3} over {} labels",
        within.len()
    );
    assert!(!within.is_empty());
    assert!(mean_within >= 0.8, "{within:?}");
}

#[test]
fn conversions_recommend_the_shifted_size() {
    let f = fixture();
    let m = &f.model;
    let off: HashMap<&str, f64> = f
        .truth
        .brands
        .iter()
        .map(|b| (b.name.as_str(), b.offset))
        .collect();
    // letter-sized categories each brand sells
    let letter_cats = |brand: &str| -> Vec<String> {
        f.truth
            .products
            .iter()
            .filter(|p| p.brand == brand && p.system == SizeSystem::Letter)
            .map(|p| p.category.clone())
            .collect()
    };
    let (mut checked, mut right, mut one_apart, mut one_apart_right) = (0, 0, 0, 0);
    for a in &f.truth.brands {
        for b in &f.truth.brands {
            if a.name == b.name {
                continue;
            }
            let shift = off[a.name.as_str()] - off[b.name.as_str()];
            let k = shift.round();
            // only where the truth's answer is clear (not near half-way between sizes)
            if (shift - k).abs() > 0.25 {
                continue;
            }
            let cats_b = letter_cats(&b.name);
            let Some(cat) = letter_cats(&a.name)
                .into_iter()
                .find(|c| cats_b.contains(c))
            else {
                continue;
            };
            let table = convert(
                m,
                &ConvertQuery {
                    from_brand: a.name.clone(),
                    size: None,
                    to_brand: b.name.clone(),
                    category: Some(cat),
                },
            )
            .unwrap();
            let pos = |label: &str| {
                m.labels
                    .iter()
                    .find(|l| l.canonical == label)
                    .map(|l| l.pos)
            };
            for r in &table.rows {
                let target: Vec<f64> = r.sizes.iter().filter_map(|s| pos(&s.size)).collect();
                let Some(p) = pos(&r.from_size) else { continue };
                let want = p + k;
                // the target brand must sell the shifted size and a size either side of it
                if !(target.contains(&want)
                    && target.contains(&(want - 1.0))
                    && target.contains(&(want + 1.0)))
                {
                    continue;
                }
                let got = pos(&r.best).unwrap();
                checked += 1;
                right += usize::from(got == want);
                if k.abs() == 1.0 {
                    one_apart += 1;
                    one_apart_right += usize::from(got == want);
                }
            }
        }
    }
    let rate = right as f64 / checked.max(1) as f64;
    println!("conversions: {right} of {checked} recommend the true shifted size ({one_apart_right} of {one_apart} for brands one size apart)");
    assert!(checked >= 20, "{checked}");
    assert!(one_apart >= 3, "{one_apart}");
    assert!(rate >= 0.9, "{rate}");
    assert!(one_apart_right as f64 >= 0.9 * one_apart as f64);
}

#[test]
fn flags_are_precise() {
    let f = fixture();
    let m = &f.model;
    let brand_off: HashMap<&str, f64> = f
        .truth
        .brands
        .iter()
        .map(|b| (b.name.as_str(), b.offset))
        .collect();
    // only differences are identified (the truth's conventions): the model's zero is the
    // average brand, so the truth is read against its average brand too
    let centre = brand_off.values().sum::<f64>() / brand_off.len() as f64;
    let total: HashMap<&str, f64> = f
        .truth
        .products
        .iter()
        .map(|p| {
            (
                p.product_id.as_str(),
                brand_off[p.brand.as_str()] + p.offset - centre,
            )
        })
        .collect();
    let opts = FlagOptions::default();
    let flagged = flags(m, NONE, &opts);
    let right = flagged
        .iter()
        .filter(|fl| {
            let t = total[fl.product.as_str()];
            if fl.flag == "runs_small" {
                t < -opts.magnitude
            } else {
                t > opts.magnitude
            }
        })
        .count();
    let beyond = total.values().filter(|t| t.abs() > opts.magnitude).count();
    let precision = right as f64 / flagged.len().max(1) as f64;
    println!(
        "flags (truth centred at its average brand, {centre:+.3}): {} flagged, {right} truly beyond half a size that way (precision {precision:.3}); {beyond} of {} products truly beyond (recall {:.3})",
        flagged.len(),
        total.len(),
        right as f64 / beyond.max(1) as f64
    );
    assert!(flagged.len() >= 5, "{}", flagged.len());
    assert!(precision >= 0.9, "{precision}");
}

fn app() -> Router {
    let f = fixture();
    router(AppState::new(
        Predictor::new(f.model.fitted().clone()).unwrap(),
        f.header.clone(),
        ServeOptions {
            model_path: Some(f.path.clone()),
            ..ServeOptions::default()
        },
    ))
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String, String) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8_lossy(&body).into_owned())
}

async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = get(app, uri).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn enc(s: &str) -> String {
    runsize::serve::web::html::url(s)
}

/// Two brands that sell letter sizes, the first's most common letter label.
fn two_brands() -> (String, String, String) {
    let m = &fixture().model;
    let charts = all_charts(m);
    let with_letters: Vec<_> = charts
        .iter()
        .filter(|c| c.rows.iter().any(|r| r.system == "letter"))
        .collect();
    let a = with_letters[0];
    let size = a
        .rows
        .iter()
        .filter(|r| r.system == "letter")
        .max_by_key(|r| r.n)
        .unwrap()
        .label
        .clone();
    (a.brand.clone(), with_letters[1].brand.clone(), size)
}

#[tokio::test]
async fn chart_route_and_errors() {
    let app = app();
    let (a, _, size) = two_brands();
    let (status, v) = get_json(&app, &format!("/v1/brands/{}/chart", enc(&a))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["model_id"], fixture().header.model_id.as_str());
    assert_eq!(v["chart"]["brand"], a.as_str());
    let rows = v["chart"]["rows"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["label"] == size.as_str()));
    // the same numbers as the library
    let lib = size_chart(
        &fixture().model,
        &ChartQuery {
            brand: a.clone(),
            ..ChartQuery::default()
        },
    )
    .unwrap();
    assert_eq!(rows.len(), lib.rows.len());
    assert!((rows[0]["position"].as_f64().unwrap() - lib.rows[0].position).abs() < 1e-9);
    assert!(rows[0]["words"]
        .as_str()
        .unwrap()
        .contains("fits like a typical"));
    // unknown brand / category / product: 404 naming the field
    let (status, v) = get_json(&app, "/v1/brands/NoSuchBrand/chart").await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("brand")),
        "{v}"
    );
    let (status, v) = get_json(&app, &format!("/v1/brands/{}/chart?category=hats", enc(&a))).await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("category")),
        "{v}"
    );
    let (status, v) = get_json(&app, &format!("/v1/brands/{}/chart?product=nope", enc(&a))).await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("product")),
        "{v}"
    );
}

#[tokio::test]
async fn convert_route_and_errors() {
    let app = app();
    let (a, b, size) = two_brands();
    let uri = format!(
        "/v1/convert?from_brand={}&size={}&to_brand={}",
        enc(&a),
        enc(&size),
        enc(&b)
    );
    let (status, v) = get_json(&app, &uri).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let rows = v["conversion"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["from_size"], size.as_str());
    let best = rows[0]["best"].as_str().unwrap();
    let sizes = rows[0]["sizes"].as_array().unwrap();
    let best_p = sizes.iter().find(|s| s["size"] == best).unwrap()["p_fit"]
        .as_f64()
        .unwrap();
    assert!(sizes.iter().all(|s| s["p_fit"].as_f64().unwrap() <= best_p));
    // the full table in one call: one row per size the source brand sells
    let (status, v) = get_json(
        &app,
        &format!("/v1/convert?from_brand={}&to_brand={}", enc(&a), enc(&b)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let lib = convert(
        &fixture().model,
        &ConvertQuery {
            from_brand: a.clone(),
            size: None,
            to_brand: b.clone(),
            category: None,
        },
    )
    .unwrap();
    assert_eq!(
        v["conversion"]["rows"].as_array().unwrap().len(),
        lib.rows.len()
    );
    assert!(lib.rows.len() > 1);
    // errors: bad size 422, unknown brand 404, missing brand 422
    let (status, v) = get_json(
        &app,
        &format!(
            "/v1/convert?from_brand={}&size=XXXXXL&to_brand={}",
            enc(&a),
            enc(&b)
        ),
    )
    .await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("size")),
        "{v}"
    );
    assert!(
        v["error"].as_str().unwrap().contains("expected one of"),
        "{v}"
    );
    let (status, v) = get_json(
        &app,
        &format!("/v1/convert?from_brand={}&to_brand=Nope", enc(&a)),
    )
    .await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("to_brand")),
        "{v}"
    );
    let (status, v) = get_json(&app, "/v1/convert?from_brand=Nope&to_brand=Nope").await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("from_brand")),
        "{v}"
    );
    let (status, v) = get_json(&app, &format!("/v1/convert?from_brand={}", enc(&a))).await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("to_brand")),
        "{v}"
    );
}

#[tokio::test]
async fn flags_route_and_product_profile() {
    let app = app();
    let (status, v) = get_json(&app, "/v1/flags").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items
        .iter()
        .all(|i| i["probability"].as_f64().unwrap() >= 0.9));
    let first = items[0]["product"].as_str().unwrap();
    // the product profile carries its flag
    let (status, p) = get_json(&app, &format!("/v1/products/{}", enc(first))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["flag"]["product"], first);
    assert!(p["flag"]["advice"].as_str().unwrap().starts_with("runs "));
    let (status, v) = get_json(&app, "/v1/flags?threshold=0.99").await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["items"].as_array().unwrap().len() <= items.len());
    let (status, v) = get_json(&app, "/v1/flags?threshold=2").await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("threshold"))
    );
    let (status, _) = get_json(&app, "/v1/flags?brand=Nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // and the routes are described
    let (_, doc) = get_json(&app, "/openapi.json").await;
    for route in ["/v1/brands/{brand}/chart", "/v1/convert", "/v1/flags"] {
        assert!(doc["paths"][route].is_object(), "{route}");
    }
}

#[tokio::test]
async fn pages_render_server_side() {
    let app = app();
    let (a, b, _) = two_brands();
    let (status, ctype, html) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let brands = fixture().model.brands.len();
    assert_eq!(html.matches("class=\"dot\"").count(), brands);
    assert!(html.contains(&format!("href=\"/brands/{}\"", enc(&a))));
    // search narrows, sorting by name orders
    let (_, _, found) = get(&app, &format!("/?q={}", enc(&a))).await;
    assert!(found.matches("class=\"dot\"").count() < brands);
    let (_, _, by_name) = get(&app, "/?sort=name&order=asc").await;
    let mut names: Vec<&str> = fixture()
        .model
        .brands
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    names.sort_unstable();
    let at = |n: &str| {
        let n = runsize::serve::web::html::esc(n);
        by_name.find(&format!(">{n}</a></th>")).unwrap()
    };
    assert!(at(names[0]) < at(names[1]));
    // brand page: chart, products, conversion table
    let (status, _, page) = get(&app, &format!("/brands/{}?to={}", enc(&a), enc(&b))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("class=\"dot\"") && page.contains("class=\"ref\""));
    assert!(page.contains("Products") && page.contains("★"));
    let (status, _, missing) = get(&app, "/brands/NoSuchBrand").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing.contains("unknown brand"));
    // model page: reliability plot and worth table from the artifact
    let (status, _, model) = get(&app, "/model").await;
    assert_eq!(status, StatusCode::OK);
    assert!(model.contains("<a href=\"/model\" aria-current=\"page\">Model</a>"));
    assert!(model.contains("<dt>Model id</dt>"));
    assert!(model.contains("class=\"chart reliability\""));
    assert!(model.contains("Bought recommended"));
    // try page and the embedded assets
    let (status, _, try_page) = get(&app, "/try").await;
    assert_eq!(status, StatusCode::OK);
    assert!(try_page.contains("id=\"try-form\"") && try_page.contains("/assets/app.js"));
    let (status, ctype, js) = get(&app, "/assets/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/javascript") && js.contains("/v1/recommend"));
    let (_, ctype, _) = get(&app, "/assets/style.css").await;
    assert!(ctype.starts_with("text/css"));
    // nothing is fetched from elsewhere
    for page in [&html, &page, &model, &try_page] {
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "external reference"
        );
    }
}

#[test]
fn report_is_one_self_contained_file() {
    let f = fixture();
    let html = runsize::serve::web::report::report_html(&f.model, &f.header);
    assert!(html.contains("<style>") && !html.contains("<script") && !html.contains("/assets/"));
    // ranking + one chart per brand system + the reliability plot
    assert!(html.matches("<svg").count() > f.model.brands.len());
    assert!(html.contains("class=\"chart reliability\""));
    assert!(!html.contains("http://") && !html.contains("https://"));
}

/// Chromium on PATH, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Run headless Chromium on `url` with `extra` flags (at most 90 s); stdout, stderr.
fn headless(bin: &PathBuf, url: &str, extra: &[&str]) -> (String, String) {
    let profile = common::tempdir();
    let out = std::process::Command::new("timeout")
        .arg("90")
        .arg(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1800",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Console errors Chromium logged for the page (uncaught exceptions, failed loads).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                && (l.contains("Uncaught") || l.contains("Failed to load") || l.contains("Error"))
        })
        .collect()
}

#[test]
fn browser_renders_every_page() {
    let Some(bin) = chromium() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but chromium is not installed: .ci/run installs it with apt-get");
        }
        println!("SKIPPED browser_renders_every_page: chromium not found on PATH (apt-get install chromium)");
        return;
    };
    let f = fixture();
    let (a, b, _) = two_brands();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(
        Predictor::new(f.model.fitted().clone()).unwrap(),
        f.header.clone(),
        ServeOptions::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(runsize::serve::serve_on(listener, state, async {
        let _ = stopped.await;
    }));
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let base = format!("http://{addr}");
    let pages = [
        ("brands", "/".to_string(), "class=\"dot\""),
        (
            "products",
            "/?by=product&sort=offset".to_string(),
            "class=\"dot\"",
        ),
        (
            "brand",
            format!("/brands/{}?to={}", enc(&a), enc(&b)),
            "class=\"ref\"",
        ),
        ("model", "/model".to_string(), "class=\"dot series-fit\""),
        ("try", "/try?run=1".to_string(), "id=\"recommended\""),
    ];
    for (name, path, must) in &pages {
        let url = format!("{base}{path}");
        let (dom, stderr) = headless(&bin, &url, &["--dump-dom"]);
        assert!(
            dom.contains(must),
            "{name}: {must} missing from the rendered page:\n{}",
            &dom[..dom.len().min(3000)]
        );
        if *name != "try" {
            assert!(dom.contains("<svg"), "{name}: no chart");
        } else {
            assert!(dom.contains("data-size=\""), "{name}: no recommended size");
            assert!(
                dom.contains("Probabilities per size"),
                "{name}: no size table"
            );
        }
        let errors = console_errors(&stderr);
        assert!(errors.is_empty(), "{name}: console errors {errors:?}");
        let shot = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        headless(&bin, &url, &[&format!("--screenshot={}", shot.display())]);
        let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 10_000,
            "{name}: screenshot {} has {len} bytes",
            shot.display()
        );
        println!("{name}: {url} rendered; screenshot {}", shot.display());
    }
    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();
}
