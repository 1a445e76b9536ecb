//! Ingest throughput (events/s) on generated Parquet and CSV files of 100k and 1M rows with
//! integer customer / product ids, string sizes and outcomes, one numeric and one
//! categorical customer feature. Files are written once to a temp dir.
//!
//! Run: `cargo bench --bench ingest` (criterion reports throughput in elements = events).
//!
//! One-shot mode for big files (no criterion): `RUNSIZE_INGEST_FILE=events.parquet cargo
//! bench --bench ingest` reads the file once with `ingest` and once with polars alone
//! (the same columns, streamed in the same batches and dropped: the physical limit) and
//! prints events/s for both and their ratio. `RUNSIZE_INGEST_FEATURES=a,b` sets customer
//! features (default: the synthetic files' `height_cm,weight_kg,body_shape` when present),
//! `RUNSIZE_INGEST_CHUNK=rows` sets the batch size (default: ingest's default),
//! `RUNSIZE_INGEST_REPEAT=n` repeats both reads (default 1; the best time is reported),
//! `RUNSIZE_INGEST_ONLY=ingest|polars` runs one side only (for profilers).

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use polars::prelude::{
    col, df, CsvWriter, DataFrame, DataType, Engine, LazyCsvReader, LazyFileListReader, LazyFrame,
    ParquetWriter, PlRefPath, PlanCallback, Schema, SerWriter,
};
use runsize::data::ingest::parse_timestamp_ms;
use runsize::data::{ingest, IngestConfig};
use std::path::{Path, PathBuf};

const SIZES: [&str; 8] = ["XS", "S", "M", "L", "XL", "6", "8", "10"];
const OUTCOMES: [&str; 4] = ["fit", "small", "large", "returned"];
const BODY: [&str; 3] = ["athletic", "petite", "hourglass"];

/// A synthetic event frame of `n` rows (deterministic: a simple LCG).
fn frame(n: usize) -> DataFrame {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let customers = (n / 5).max(1);
    let mut cust = Vec::with_capacity(n);
    let mut prod = Vec::with_capacity(n);
    let mut size = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let mut height = Vec::with_capacity(n);
    let mut body = Vec::with_capacity(n);
    for _ in 0..n {
        let c = next() % customers;
        cust.push(c as i64);
        prod.push((next() % 20_000) as i64);
        size.push(SIZES[next() % SIZES.len()]);
        out.push(OUTCOMES[next() % OUTCOMES.len()]);
        height.push((next() % 10 != 0).then_some(150.0 + (c % 40) as f64));
        body.push((next() % 3 != 0).then_some(BODY[c % BODY.len()]));
    }
    df!(
        "customer_id" => cust,
        "product_id" => prod,
        "size" => size,
        "outcome" => out,
        "height" => height,
        "body_type" => body,
    )
    .expect("frame")
}

fn write(df: &mut DataFrame, dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let pq = dir.join(format!("events-{n}.parquet"));
    ParquetWriter::new(std::fs::File::create(&pq).expect("create"))
        .finish(df)
        .expect("parquet");
    let csv = dir.join(format!("events-{n}.csv"));
    CsvWriter::new(std::fs::File::create(&csv).expect("create"))
        .finish(df)
        .expect("csv");
    (pq, csv)
}

fn polars_read(path: &Path) -> DataFrame {
    let p = PlRefPath::try_from_path(path).expect("path");
    let lf = if path.extension().is_some_and(|e| e == "parquet") {
        LazyFrame::scan_parquet(p, Default::default()).expect("scan")
    } else {
        LazyCsvReader::new(p).finish().expect("scan")
    };
    lf.collect().expect("read")
}

fn bench_ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    for n in [100_000usize, 1_000_000] {
        let (pq, csv) = write(&mut frame(n), dir.path(), n);
        group.throughput(Throughput::Elements(n as u64));
        // (label, file, customer features?, rows per batch)
        let cases = [
            ("parquet", &pq, true, 1 << 18),
            ("parquet_no_features", &pq, false, 1 << 18),
            ("parquet_batch_4m", &pq, true, 4_000_000),
            ("csv", &csv, true, 1 << 18),
        ];
        for (name, path, features, chunk_rows) in cases {
            let mut cfg = IngestConfig::new(vec![path.display().to_string()]);
            cfg.chunk_rows = chunk_rows;
            if features {
                cfg.customer_features = vec!["height".into(), "body_type".into()];
            }
            let check = ingest(&cfg).expect("ingest");
            assert_eq!(check.report.rows_kept, n as u64);
            group.bench_with_input(BenchmarkId::new(name, n), &cfg, |b, cfg| {
                b.iter(|| ingest(cfg).expect("ingest").events.len())
            });
            if name != "parquet" && name != "csv" {
                continue;
            }
            // Baseline: polars alone reading the file into memory.
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_polars_read_only"), n),
                path,
                |b, path| b.iter(|| polars_read(path).height()),
            );
        }
    }
    group.finish();
}

/// Polars alone: scan `path`, project the columns ingest would read (CSV key columns as
/// text, as ingest reads them), stream batches of `chunk_rows` and drop them. Returns rows.
fn polars_stream(path: &Path, columns: &[String], chunk_rows: usize) -> usize {
    let p = PlRefPath::try_from_path(path).expect("path");
    let lf = if path.extension().is_some_and(|e| e == "parquet") {
        LazyFrame::scan_parquet(p, Default::default()).expect("scan")
    } else {
        let mut over = Schema::default();
        for c in [
            "customer_id",
            "size",
            "outcome",
            "product_id",
            "brand",
            "category",
            "size_system",
        ] {
            if columns.iter().any(|x| x == c) {
                over.with_column(c.into(), DataType::String);
            }
        }
        LazyCsvReader::new(p)
            .with_dtype_overwrite(Some(std::sync::Arc::new(over)))
            .finish()
            .expect("scan")
    };
    let mut lf = lf;
    let schema = lf.collect_schema().expect("schema");
    let exprs: Vec<_> = columns
        .iter()
        .filter(|c| schema.get(c.as_str()).is_some())
        .map(|c| col(c.as_str()))
        .collect();
    let rows = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = rows.clone();
    // Simulated consumer cost per row (ns), to see how the reader buffers ahead of a slow
    // consumer (RUNSIZE_INGEST_SLOW_NS; default 0).
    let slow_ns: u64 = std::env::var("RUNSIZE_INGEST_SLOW_NS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cb = PlanCallback::new(move |df: DataFrame| {
        r2.fetch_add(df.height(), std::sync::atomic::Ordering::Relaxed);
        if slow_ns > 0 {
            std::thread::sleep(std::time::Duration::from_nanos(
                slow_ns * df.height() as u64,
            ));
        }
        Ok(false)
    });
    lf.select(exprs)
        .sink_batches(cb, true, std::num::NonZeroUsize::new(chunk_rows))
        .expect("sink")
        .collect_with_engine(Engine::Streaming)
        .expect("stream");
    rows.load(std::sync::atomic::Ordering::Relaxed)
}

/// Resident and peak memory now, then resident after returning free heap pages to the OS.
fn memory_note() -> String {
    let rss = |name: &str| -> String {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    let (now, peak) = (rss("VmRSS:"), rss("VmHWM:"));
    // SAFETY: malloc_trim only hands free allocator memory back to the OS.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
    format!(
        "RSS {now} kB (peak {peak} kB), {} kB after malloc_trim",
        rss("VmRSS:")
    )
}

/// One-shot measurement of a big file (see the module docs); prints one line per side.
fn one_shot(path: &str) {
    let env = |k: &str| std::env::var(k).ok();
    let repeat: usize = env("RUNSIZE_INGEST_REPEAT")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let only = env("RUNSIZE_INGEST_ONLY").unwrap_or_default();
    let mut cfg = IngestConfig::new(vec![path.to_string()]);
    cfg.keep_timestamps = false;
    if let Some(c) = env("RUNSIZE_INGEST_CHUNK").and_then(|v| v.parse().ok()) {
        cfg.chunk_rows = c;
    }
    cfg.customer_features = match env("RUNSIZE_INGEST_FEATURES") {
        Some(f) => f
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        None => vec!["height_cm".into(), "weight_kg".into(), "body_shape".into()],
    };
    let mut columns: Vec<String> = [
        "customer_id",
        "size",
        "outcome",
        "product_id",
        "brand",
        "category",
        "size_system",
        "timestamp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    columns.extend(cfg.customer_features.iter().cloned());
    let mut best_ingest = f64::INFINITY;
    let mut best_polars = f64::INFINITY;
    let mut rows = 0u64;
    for _ in 0..repeat {
        if only != "polars" {
            let t = std::time::Instant::now();
            let got = ingest(&cfg).expect("ingest");
            best_ingest = best_ingest.min(t.elapsed().as_secs_f64());
            rows = got.report.rows_read;
            eprintln!("{}", got.report.summary());
            eprintln!(
                "events table: {:.1} MiB; {}",
                got.events.heap_bytes() as f64 / 1048576.0,
                memory_note()
            );
        }
        if only != "ingest" {
            let t = std::time::Instant::now();
            rows = polars_stream(Path::new(path), &columns, cfg.chunk_rows) as u64;
            best_polars = best_polars.min(t.elapsed().as_secs_f64());
        }
    }
    let rate = |s: f64| rows as f64 / s;
    if best_ingest.is_finite() {
        println!(
            "ingest      {rows} rows in {best_ingest:.2} s: {:.2}M events/s",
            rate(best_ingest) / 1e6
        );
    }
    if best_polars.is_finite() {
        println!(
            "polars scan {rows} rows in {best_polars:.2} s: {:.2}M rows/s",
            rate(best_polars) / 1e6
        );
    }
    if best_ingest.is_finite() && best_polars.is_finite() {
        println!(
            "ingest / polars scan speed: {:.2}",
            best_polars / best_ingest
        );
    }
}

/// Timestamp text: runsize's parser (strict ISO 8601 lexer, chrono's calendar) against
/// chrono's own RFC 3339 parser on the same 10k RFC 3339 texts.
fn bench_timestamps(c: &mut Criterion) {
    let texts: Vec<String> = (0..10_000usize)
        .map(|i| {
            format!(
                "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                10 + i % 15,
                1 + i % 12,
                1 + i % 28,
                i % 24,
                i % 60,
                (i * 7) % 60
            )
        })
        .collect();
    let mut g = c.benchmark_group("timestamp_parse");
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("runsize", |b| {
        b.iter(|| {
            texts
                .iter()
                .filter_map(|t| parse_timestamp_ms(t))
                .sum::<i64>()
        })
    });
    g.bench_function("chrono_rfc3339", |b| {
        b.iter(|| {
            texts
                .iter()
                .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|d| d.timestamp_millis())
                .sum::<i64>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_ingest, bench_timestamps);

fn main() {
    if let Ok(path) = std::env::var("RUNSIZE_INGEST_FILE") {
        one_shot(&path);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
