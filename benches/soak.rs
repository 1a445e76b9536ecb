//! Soak load generator for `runsize serve` (run by benches/soak.sh, which starts the
//! server): mixed traffic on loopback for a set time — recommend, batch, brand profiles,
//! bad requests, one model reload per minute, and bursts of 4x the server's in-flight
//! bound — and a report per minute: requests by status, p50 / p99 / max latency, the
//! server's RSS, and failed requests outside shedding (transport errors, timeouts, 5xx
//! other than a 503 `overloaded`, or a status the request kind never expects), which
//! must be 0. Exits 1 when any request failed.
//!
//! Why a Rust client and not wrk: one bounded program mixes routes with per-kind expected
//! statuses, fires bursts and reloads on a schedule and aggregates per minute across all
//! tasks; wrk's Lua would need per-thread tables merged at the end and a separate process
//! per traffic kind.
//!
//! Environment: SOAK_ADDR (host:port; without it this prints how to run and exits 0, so a
//! bare `cargo bench` does not soak), SOAK_SECONDS (600), SOAK_CONCURRENCY (steady
//! clients, 16), SOAK_PID (server pid for RSS, optional), SOAK_TOKEN (admin token for
//! the reloads; none: no reloads), SOAK_BURST_EVERY (seconds between bursts, 20).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a request tests, and the statuses it may get besides a shed 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Recommend,
    Batch,
    Brands,
    Bad,
    Reload,
}

impl Kind {
    fn expected(self, status: u16) -> bool {
        match self {
            Kind::Recommend | Kind::Batch | Kind::Brands | Kind::Reload => status == 200,
            Kind::Bad => (400..500).contains(&status),
        }
    }
}

/// One minute's observations.
#[derive(Default)]
struct Minute {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    shed: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Totals {
    statuses: BTreeMap<u16, u64>,
    shed: u64,
    failed: u64,
    requests: u64,
}

struct Shared {
    minute: Mutex<Minute>,
    stop: AtomicBool,
}

impl Shared {
    fn record(&self, kind: Kind, started: Instant, outcome: Result<(u16, bool), String>) {
        let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let Ok(mut m) = self.minute.lock() else {
            return;
        };
        m.latencies_us.push(us);
        match outcome {
            Ok((status, overloaded)) => {
                *m.statuses.entry(status).or_default() += 1;
                if status == 503 && overloaded {
                    m.shed += 1;
                } else if !kind.expected(status) {
                    m.failed += 1;
                    *m.failures
                        .entry(format!("{kind:?} answered {status}"))
                        .or_default() += 1;
                }
            }
            Err(e) => {
                *m.statuses.entry(0).or_default() += 1;
                m.failed += 1;
                *m.failures.entry(format!("{kind:?}: {e}")).or_default() += 1;
            }
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Request bodies built from the served model itself.
struct Bodies {
    recommend: Vec<String>,
    batch: String,
    brands: Vec<String>,
    bad: Vec<(&'static str, &'static str, String)>,
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    r.json::<Value>().await.map_err(|e| e.to_string())
}

async fn bodies(client: &reqwest::Client, base: &str) -> Result<Bodies, String> {
    let page = get_json(
        client,
        &format!("{base}/v1/brands?by=product&sort=n&limit=40"),
    )
    .await?;
    let mut products = Vec::new();
    for item in page["items"].as_array().into_iter().flatten() {
        let Some(key) = item["key"].as_str() else {
            continue;
        };
        let p = get_json(client, &format!("{base}/v1/products/{}", encode(key))).await?;
        let sizes: Vec<String> = p["sizes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        if !sizes.is_empty() {
            products.push((key.to_string(), sizes));
        }
    }
    if products.len() < 2 {
        return Err("the model has fewer than 2 products with sizes".into());
    }
    let outcomes = ["kept", "too_small", "too_large", "fit"];
    let recommend: Vec<String> = (0..products.len())
        .map(|i| {
            let (pid, _) = &products[i];
            let history: Vec<Value> = (1..=12)
                .map(|k| {
                    let (hp, sizes) = &products[(i + k) % products.len()];
                    json!({"product_id": hp, "size": sizes[sizes.len() / 2], "outcome": outcomes[k % 4]})
                })
                .collect();
            json!({"product": {"product_id": pid}, "shopper": {"history": history}}).to_string()
        })
        .collect();
    let items: Vec<Value> = recommend
        .iter()
        .cycle()
        .take(200)
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    let batch = json!({ "items": items }).to_string();
    let brand_page = get_json(client, &format!("{base}/v1/brands?limit=10")).await?;
    let mut brands = vec!["/v1/brands?limit=20".to_string()];
    for item in brand_page["items"].as_array().into_iter().flatten() {
        if let Some(k) = item["key"].as_str() {
            brands.push(format!("/v1/brands/{}", encode(k)));
        }
    }
    let bad = vec![
        ("POST", "/v1/recommend", "{\"product\": [".to_string()),
        (
            "POST",
            "/v1/recommend",
            json!({"product": {"product_id": "no-such-product-xyz"}}).to_string(),
        ),
        (
            "POST",
            "/v1/recommend",
            json!({"product": {"sizes": ["M"]}, "shopper": {"history": [{"size": "??", "outcome": "kept"}]}})
                .to_string(),
        ),
        ("GET", "/v1/no-such-route", String::new()),
        ("GET", "/v1/brands?limit=0", String::new()),
        ("POST", "/v1/recommend/batch", json!({"items": []}).to_string()),
    ];
    Ok(Bodies {
        recommend,
        batch,
        brands,
        bad,
    })
}

/// Percent-encode a path segment.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Send one request; the status and whether a 503 was a shed (`type: overloaded`).
async fn send(req: reqwest::RequestBuilder) -> Result<(u16, bool), String> {
    let r = req.send().await.map_err(|e| short(&e))?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| short(&e))?;
    Ok((status, status == 503 && text.contains("\"overloaded\"")))
}

fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect error".into()
    } else {
        let mut s = e.to_string();
        s.truncate(80);
        s
    }
}

struct Ctx {
    client: reqwest::Client,
    base: String,
    bodies: Bodies,
    shared: Shared,
}

async fn one(ctx: &Ctx, n: usize) {
    let b = &ctx.bodies;
    let c = &ctx.client;
    let (kind, req) = match n % 20 {
        0..=13 => (
            Kind::Recommend,
            c.post(format!("{}/v1/recommend", ctx.base))
                .body(b.recommend[n % b.recommend.len()].clone()),
        ),
        14 => (
            Kind::Batch,
            c.post(format!("{}/v1/recommend/batch", ctx.base))
                .body(b.batch.clone()),
        ),
        15 | 16 => (
            Kind::Brands,
            c.get(format!("{}{}", ctx.base, b.brands[n % b.brands.len()])),
        ),
        _ => {
            let (method, path, body) = &b.bad[n % b.bad.len()];
            let url = format!("{}{path}", ctx.base);
            let req = if *method == "GET" {
                c.get(url)
            } else {
                c.post(url).body(body.clone())
            };
            (Kind::Bad, req)
        }
    };
    let started = Instant::now();
    let req = req.header("content-type", "application/json");
    let outcome = send(req).await;
    ctx.shared.record(kind, started, outcome);
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kib(pid: Option<u64>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn report(minute: usize, m: Minute, pid: Option<u64>, totals: &mut Totals) {
    let mut lat = m.latencies_us;
    lat.sort_unstable();
    let statuses: Vec<String> = m.statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    let rss = rss_kib(pid).map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    println!(
        "minute {minute:>2}  requests {:>7}  p50 {:>6.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  rss {rss} MiB  shed {:>6}  failed {}  statuses {}",
        lat.len(),
        f64::from(percentile(&lat, 0.5)) / 1e3,
        f64::from(percentile(&lat, 0.99)) / 1e3,
        f64::from(lat.last().copied().unwrap_or(0)) / 1e3,
        m.shed,
        m.failed,
        statuses.join(" "),
    );
    for (what, n) in &m.failures {
        println!("    failed: {what} x{n}");
    }
    totals.requests += lat.len() as u64;
    totals.shed += m.shed;
    totals.failed += m.failed;
    for (s, n) in m.statuses {
        *totals.statuses.entry(s).or_default() += n;
    }
}

async fn run() -> Result<bool, String> {
    let Ok(addr) = std::env::var("SOAK_ADDR") else {
        println!("soak: set SOAK_ADDR (run benches/soak.sh, which starts the server)");
        return Ok(true);
    };
    let seconds = env_u64("SOAK_SECONDS", 600);
    let concurrency = env_u64("SOAK_CONCURRENCY", 16).max(1) as usize;
    let burst_every = env_u64("SOAK_BURST_EVERY", 20).max(1);
    let pid = std::env::var("SOAK_PID").ok().and_then(|p| p.parse().ok());
    let token = std::env::var("SOAK_TOKEN").ok().filter(|t| !t.is_empty());
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| e.to_string())?;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let bound: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("runsize_http_max_in_flight "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("the server's /metrics has no runsize_http_max_in_flight")?;
    let bodies = bodies(&client, &base).await?;
    println!(
        "soak: {seconds} s on {addr}, {concurrency} steady clients, bursts of {} (4x the in-flight bound {bound}) every {burst_every} s, {}",
        4 * bound,
        if token.is_some() { "1 reload per minute" } else { "no reloads (no SOAK_TOKEN)" }
    );
    let ctx = Arc::new(Ctx {
        client,
        base,
        bodies,
        shared: Shared {
            minute: Mutex::new(Minute::default()),
            stop: AtomicBool::new(false),
        },
    });
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    // steady clients: one request after another until the end
    for t in 0..concurrency {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = t * 7919;
            while !ctx.shared.stop.load(Ordering::Relaxed) {
                one(&ctx, n).await;
                n += 1;
            }
        }));
    }
    // bursts: 4x the bound at once, recommend and batch mixed (batches hold a place
    // longer, so the bound is really reached)
    {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut k = 0usize;
            loop {
                tokio::time::sleep(Duration::from_secs(burst_every)).await;
                if ctx.shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                let burst: Vec<_> = (0..4 * bound)
                    .map(|i| {
                        let ctx = ctx.clone();
                        // n % 20: 14 = batch, 0..=13 = recommend (bodies vary with n)
                        let n = if i % 4 == 0 {
                            14
                        } else {
                            20 * (k + i) + i % 14
                        };
                        tokio::spawn(async move { one(&ctx, n).await })
                    })
                    .collect();
                for b in burst {
                    let _ = b.await;
                }
                k += 1;
            }
        }));
    }
    // one reload per minute, mid-minute
    if let Some(token) = token {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            while !ctx.shared.stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let req = ctx
                    .client
                    .post(format!("{}/admin/reload", ctx.base))
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(120));
                let outcome = send(req).await;
                ctx.shared.record(Kind::Reload, started, outcome);
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }));
    }
    // the reporter: one line per minute (and one for a last partial minute)
    let mut totals = Totals::default();
    let mut minute = 1;
    loop {
        let next = (start + Duration::from_secs(60 * minute as u64)).min(end);
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        if next >= end {
            ctx.shared.stop.store(true, Ordering::Relaxed);
        }
        let m = ctx
            .shared
            .minute
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        report(minute, m, pid, &mut totals);
        if next >= end {
            break;
        }
        minute += 1;
    }
    // let the last requests finish (bounded by the client timeout), then count them
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    let late = ctx
        .shared
        .minute
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    if !late.latencies_us.is_empty() {
        report(minute + 1, late, pid, &mut totals);
    }
    let statuses: Vec<String> = totals
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect();
    println!(
        "total: {} requests in {:.0} s ({:.0}/s); by status {}; shed {}; failed outside shedding {}",
        totals.requests,
        start.elapsed().as_secs_f64(),
        totals.requests as f64 / start.elapsed().as_secs_f64(),
        statuses.join(" "),
        totals.shed,
        totals.failed
    );
    Ok(totals.failed == 0)
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(run()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}
