//! Ingest throughput (events/s) on generated Parquet and CSV files of 100k and 1M rows with
//! integer customer / product ids, string sizes and outcomes, one numeric and one
//! categorical customer feature. Files are written once to a temp dir.
//!
//! Run: `cargo bench --bench ingest` (criterion reports throughput in elements = events).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use polars::prelude::{
    df, CsvWriter, DataFrame, LazyCsvReader, LazyFileListReader, LazyFrame, ParquetWriter,
    PlRefPath, SerWriter,
};
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
            ("parquet", &pq, true, 4_000_000),
            ("parquet_no_features", &pq, false, 4_000_000),
            ("parquet_batch_250k", &pq, true, 250_000),
            ("csv", &csv, true, 4_000_000),
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

criterion_group!(benches, bench_ingest);
criterion_main!(benches);
