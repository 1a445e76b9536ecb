//! Integration tests of `runsize::synth`: determinism, parseable labels, realistic shares,
//! truth files, and Parquet/CSV agreement. Also holds the ignored `make_demo_data` job.

use polars::prelude::*;
use runsize::data::{parse_size, SizeSystem};
use runsize::synth::{
    format_iso_seconds, generate, read_customer_sizes, read_truth, truth_paths, SynthConfig,
    SynthSummary, COLUMNS, OUTCOME_VALUES,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

fn cfg(events: u64, seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        brands: 12,
        chunk_events: 7_000,
        ..SynthConfig::new(events)
    }
}

fn gen(dir: &Path, name: &str, cfg: &SynthConfig) -> (PathBuf, SynthSummary) {
    let out = dir.join(name);
    let summary = generate(cfg, &out).unwrap();
    (out, summary)
}

/// Header and rows of a synthetic CSV (no quoting is ever needed in these files).
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>())
        .collect();
    (header, rows)
}

/// Rows of a synthetic Parquet file rendered exactly as the CSV writer renders them.
fn read_parquet_as_text(path: &Path) -> Vec<Vec<String>> {
    let df = ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        names,
        COLUMNS.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    let mut cols: Vec<Vec<String>> = Vec::new();
    for name in COLUMNS {
        let c = df.column(name).unwrap();
        let text: Vec<String> = match c.dtype() {
            DataType::Int64 => c
                .i64()
                .unwrap()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect(),
            DataType::Datetime(TimeUnit::Milliseconds, None) => c
                .cast(&DataType::Int64)
                .unwrap()
                .i64()
                .unwrap()
                .iter()
                .map(|v| format_iso_seconds(v.unwrap() / 1000))
                .collect(),
            DataType::Float64 => c
                .f64()
                .unwrap()
                .iter()
                .map(|v| v.map(|x| format!("{x:.1}")).unwrap_or_default())
                .collect(),
            DataType::String => c
                .str()
                .unwrap()
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect(),
            other => panic!("unexpected type {other:?} of {name}"),
        };
        cols.push(text);
    }
    (0..df.height())
        .map(|i| cols.iter().map(|c| c[i].clone()).collect())
        .collect()
}

fn col_index(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

#[test]
fn same_seed_gives_identical_bytes_and_other_seeds_differ() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = gen(dir.path(), "a.csv", &cfg(30_000, 3));
    // A different chunk size must not change the output either.
    let (b, _) = gen(
        dir.path(),
        "b.csv",
        &SynthConfig {
            chunk_events: 1_000_000,
            ..cfg(30_000, 3)
        },
    );
    let (c, _) = gen(dir.path(), "c.csv", &cfg(30_000, 4));
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(bytes(&a), bytes(&b));
    assert_ne!(bytes(&a), bytes(&c));
    let (ta, ca) = truth_paths(&a);
    let (tb, cb) = truth_paths(&b);
    assert_eq!(bytes(&ca), bytes(&cb));
    // Truth files differ only in the customers file name they reference.
    let mut truth_a = read_truth(&ta).unwrap();
    let truth_b = read_truth(&tb).unwrap();
    truth_a.customers_file = truth_b.customers_file.clone();
    assert_eq!(truth_a, truth_b);
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".runsize-synth-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn every_label_parses_in_its_system() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = gen(dir.path(), "labels.csv", &cfg(40_000, 1));
    let (truth_path, _) = truth_paths(&out);
    let truth = read_truth(&truth_path).unwrap();
    let (header, rows) = read_csv(&out);
    let (si, yi) = (
        col_index(&header, "size"),
        col_index(&header, "size_system"),
    );
    let mut pairs: HashSet<(String, String)> = HashSet::new();
    for r in &rows {
        pairs.insert((r[si].clone(), r[yi].clone()));
    }
    for p in &truth.products {
        for s in &p.sizes {
            pairs.insert((s.clone(), p.system.as_str().to_string()));
        }
    }
    let mut systems = HashSet::new();
    for (label, system) in &pairs {
        let parsed = parse_size(label, Some(system)).unwrap();
        assert_eq!(parsed.system.as_str(), system, "{label}");
        assert_eq!(&parsed.canonical, label, "labels are written canonical");
        let sc = truth.system(parsed.system).unwrap();
        // Every offered size sits on the grid origin + whole steps.
        let steps = parsed.pos - sc.origin;
        assert!((steps - steps.round()).abs() < 1e-9, "{label}: {steps}");
        if parsed.system == SizeSystem::Jeans {
            assert!(matches!(parsed.secondary, Some(l) if [30.0, 32.0, 34.0].contains(&l)));
        }
        systems.insert(parsed.system);
    }
    assert!(systems.len() >= 4, "several size systems: {systems:?}");
    assert!(systems.contains(&SizeSystem::Letter) && systems.contains(&SizeSystem::Jeans));
}

#[test]
fn outcome_shares_and_activity_look_like_a_shop() {
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = gen(dir.path(), "shop.csv", &cfg(100_000, 9));
    let (header, rows) = read_csv(&out);
    assert_eq!(rows.len(), 100_000);
    assert_eq!(summary.events, 100_000);

    let oi = col_index(&header, "outcome");
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for r in &rows {
        *counts.entry(r[oi].as_str()).or_default() += 1;
    }
    for (v, n) in OUTCOME_VALUES.iter().zip(summary.outcome_counts) {
        assert_eq!(counts.get(v).copied().unwrap_or(0), n, "{v}");
    }
    let n = rows.len() as f64;
    let share = |v: &str| counts.get(v).copied().unwrap_or(0) as f64 / n;
    let kept = share("kept");
    assert!((0.58..0.75).contains(&kept), "kept {kept}");
    assert!((0.08..0.22).contains(&share("returned_too_small")));
    assert!((0.08..0.22).contains(&share("returned_too_large")));
    let other = share("returned_other") + share("damaged") + share("changed_mind");
    assert!((other - 0.06).abs() < 0.01, "other {other}");

    // Heavy-tailed activity: most buyers buy once, a few buy many.
    let ci = col_index(&header, "customer_id");
    let mut per: HashMap<i64, u32> = HashMap::new();
    for r in &rows {
        *per.entry(r[ci].parse().unwrap()).or_default() += 1;
    }
    let mut c: Vec<u32> = per.values().copied().collect();
    c.sort_unstable();
    assert_eq!(c[c.len() / 2], 1, "median purchases per buyer");
    let once = c.iter().filter(|&&x| x == 1).count() as f64 / c.len() as f64;
    assert!(once > 0.5, "buy once {once}");
    assert!(*c.last().unwrap() >= 20, "max {}", c.last().unwrap());
    let mean = rows.len() as f64 / c.len() as f64;
    assert!((1.7..2.5).contains(&mean), "mean {mean}");
    assert_eq!(summary.buyers as usize, per.len());

    // Missing body data at the intended rates (per row; customers repeat their values).
    let hi = col_index(&header, "height_cm");
    let missing = rows.iter().filter(|r| r[hi].is_empty()).count() as f64 / n;
    assert!((0.15..0.25).contains(&missing), "height missing {missing}");

    // Timestamps never decrease.
    let ti = col_index(&header, "timestamp");
    assert!(rows.windows(2).all(|w| w[0][ti] <= w[1][ti]));
}

#[test]
fn truth_has_the_intended_spread_and_sign() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        brands: 150,
        products_per_brand: Some(8),
        ..cfg(150_000, 21)
    };
    let (out, summary) = gen(dir.path(), "truth.csv", &cfg);
    let (truth_path, customers_path) = truth_paths(&out);
    let truth = read_truth(&truth_path).unwrap();
    assert_eq!(truth.brands.len(), 150);
    assert_eq!(truth.products.len(), summary.products);
    let offsets: Vec<f64> = truth.brands.iter().map(|b| b.offset).collect();
    let mean = offsets.iter().sum::<f64>() / offsets.len() as f64;
    let sd =
        (offsets.iter().map(|o| (o - mean).powi(2)).sum::<f64>() / offsets.len() as f64).sqrt();
    assert!((0.33..0.58).contains(&sd), "brand offset sd {sd}");
    assert!(offsets.iter().any(|&o| o > 0.5) && offsets.iter().any(|&o| o < -0.5));
    let names: HashSet<&str> = truth.brands.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names.len(), 150);

    // Product offsets scatter around their brand.
    let p: Vec<f64> = truth.products.iter().map(|p| p.offset).collect();
    let psd = (p.iter().map(|o| o * o).sum::<f64>() / p.len() as f64).sqrt();
    assert!((0.2..0.3).contains(&psd), "product offset sd {psd}");

    // Customer true sizes: one line per buyer, spread 1.3.
    let sizes = read_customer_sizes(&customers_path).unwrap();
    assert_eq!(sizes.len() as u64, truth.buyers);
    let csd = (sizes.iter().map(|(_, s)| s * s).sum::<f64>() / sizes.len() as f64).sqrt();
    assert!((1.2..1.4).contains(&csd), "customer size sd {csd}");
    assert_eq!(
        truth.customers_path(&truth_path).unwrap(),
        customers_path,
        "truth references its customers file"
    );

    // Sign convention: articles that run large (offset > 0) come back too large more often.
    let (header, rows) = read_csv(&out);
    let (bi, pi, oi) = (
        col_index(&header, "brand"),
        col_index(&header, "product_id"),
        col_index(&header, "outcome"),
    );
    let brand_offset: HashMap<&str, f64> = truth
        .brands
        .iter()
        .map(|b| (b.name.as_str(), b.offset))
        .collect();
    let product_offset: HashMap<&str, f64> = truth
        .products
        .iter()
        .map(|p| (p.product_id.as_str(), p.offset))
        .collect();
    let (mut large_side, mut small_side) = ([0u64; 2], [0u64; 2]);
    for r in &rows {
        let total = brand_offset[r[bi].as_str()] + product_offset[r[pi].as_str()];
        let bucket = if total > 0.3 {
            &mut large_side
        } else if total < -0.3 {
            &mut small_side
        } else {
            continue;
        };
        match r[oi].as_str() {
            "returned_too_large" => bucket[0] += 1,
            "returned_too_small" => bucket[1] += 1,
            _ => {}
        }
    }
    assert!(large_side[0] > 2 * large_side[1], "{large_side:?}");
    assert!(small_side[1] > 2 * small_side[0], "{small_side:?}");
}

#[test]
fn parquet_and_csv_hold_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = gen(dir.path(), "same.csv", &cfg(25_000, 5));
    let (pq, summary) = gen(dir.path(), "same.parquet", &cfg(25_000, 5));
    assert!(summary.bytes > 0);
    let (header, rows) = read_csv(&csv);
    assert_eq!(
        header,
        COLUMNS.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    let prows = read_parquet_as_text(&pq);
    assert_eq!(prows.len(), rows.len());
    for (i, (a, b)) in rows.iter().zip(&prows).enumerate() {
        assert_eq!(a, b, "row {i}");
    }
}

#[test]
fn bad_output_extension_is_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.json");
    let err = generate(&cfg(10, 0), &out).unwrap_err();
    assert!(err.to_string().contains(".parquet or .csv"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let err = generate(&SynthConfig::new(0), &dir.path().join("x.csv")).unwrap_err();
    assert!(err.to_string().contains("--events"), "{err}");
}

/// Writes the built-in demo catalogue into `data/` (run on purpose:
/// `cargo test --release --test synth -- --ignored make_demo_data`).
#[test]
#[ignore]
fn make_demo_data() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = SynthConfig {
        brands: 24,
        seed: 7,
        ..SynthConfig::new(300_000)
    };
    let summary = generate(&cfg, &dir.join("demo.parquet")).unwrap();
    println!("{summary:#?}");
}
