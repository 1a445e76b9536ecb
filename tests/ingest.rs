//! Ingest end to end: formats, column mapping, ids, directories and globs, row
//! filters, customer features, batch-prediction frames, and the real RentTheRunway file
//! (bad input: `ingest_bad.rs`).

use crate::common;
use crate::ingest_bad::bad_sample;

use polars::prelude::*;
use runsize::data::ingest::{
    ingest, ingest_with_frame, list_inputs, BadReason, IngestConfig, Ingested, RowFilter,
    SplitFilter,
};
use runsize::data::{write_frame, DataError, Events, Outcome, NONE};
use std::path::Path;

/// Eight events of five customers; customer 101 has three rows with changing body data.
fn sample() -> DataFrame {
    df!(
        "customer_id" => [101i64, 102, 101, 103, 102, 104, 101, 105],
        "size" => ["M", "8", "L", "32x30", "S", "XL", "M", "10"],
        "outcome" => ["fit", "small", "large", "fit", "returned", "fit", "small", "large"],
        "brand" => [Some("acme"), Some("zeta"), None, Some("acme"), Some("zeta"), Some("acme"), Some("acme"), None],
        "product_id" => ["p1", "p2", "p1", "p3", "p2", "p4", "p5", "p2"],
        "category" => ["dress", "jeans", "dress", "jeans", "top", "top", "dress", "jeans"],
        "timestamp" => [
            "2024-01-01", "2024-01-02T10:00:00Z", "2024-01-03", "2024-01-04",
            "2024-01-05", "2024-01-06", "2024-01-07", "2024-01-08",
        ],
        "height" => [Some(170.0f64), None, Some(171.5), Some(160.0), Some(180.0), None, None, Some(150.0)],
        "body_type" => [Some("athletic"), None, None, Some("petite"), Some("full"), None, Some("hourglass"), None],
    )
    .unwrap()
}

fn cfg_for(path: &Path) -> IngestConfig {
    let mut cfg = IngestConfig::new(vec![path.display().to_string()]);
    cfg.customer_features = vec!["height".into(), "body_type".into()];
    cfg
}

pub(crate) fn run(cfg: &IngestConfig) -> Ingested {
    ingest(cfg).unwrap_or_else(|e| panic!("ingest failed: {e}"))
}

fn numeric<'a>(ev: &'a Events, name: &str) -> &'a [f32] {
    &ev.features
        .numeric
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no numeric feature {name}"))
        .values
}

fn categorical(ev: &Events, name: &str, customer: usize) -> Option<String> {
    let f = ev
        .features
        .categorical
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no categorical feature {name}"));
    let code = f.codes[customer];
    (code != NONE).then(|| f.levels[code as usize].clone())
}

/// Two event tables are the same: every column, dictionary, size and feature (NaN = NaN).
fn assert_same_events(a: &Events, b: &Events, what: &str) {
    assert_eq!(a.customer, b.customer, "{what}: customer");
    assert_eq!(a.product, b.product, "{what}: product");
    assert_eq!(a.brand, b.brand, "{what}: brand");
    assert_eq!(a.category, b.category, "{what}: category");
    assert_eq!(a.size, b.size, "{what}: size");
    assert_eq!(a.outcome, b.outcome, "{what}: outcome");
    assert_eq!(a.has_outcome, b.has_outcome, "{what}: has_outcome");
    assert_eq!(a.timestamp, b.timestamp, "{what}: timestamp");
    assert_eq!(a.row, b.row, "{what}: row");
    assert_eq!(a.customers, b.customers, "{what}: customers");
    assert_eq!(a.products, b.products, "{what}: products");
    assert_eq!(a.brands, b.brands, "{what}: brands");
    assert_eq!(a.categories, b.categories, "{what}: categories");
    assert_eq!(a.sizes, b.sizes, "{what}: sizes");
    assert_eq!(
        a.features.categorical, b.features.categorical,
        "{what}: categorical"
    );
    assert_eq!(a.features.numeric.len(), b.features.numeric.len(), "{what}");
    for (x, y) in a.features.numeric.iter().zip(&b.features.numeric) {
        assert_eq!(x.name, y.name, "{what}");
        let xb: Vec<u32> = x.values.iter().map(|v| v.to_bits()).collect();
        let yb: Vec<u32> = y.values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(xb, yb, "{what}: numeric feature {}", x.name);
    }
}

#[test]
fn same_events_from_every_format() {
    let dir = common::tempdir();
    let mut df = sample();
    let base = {
        let p = common::write_as(&mut df, dir.path(), "ev.parquet");
        run(&cfg_for(&p))
    };
    let ev = &base.events;
    // Hand-checked content of the sample.
    assert_eq!(ev.len(), 8);
    assert_eq!(
        ev.customers.names(),
        vec!["101", "102", "103", "104", "105"]
    );
    assert_eq!(ev.customer, vec![0, 1, 0, 2, 1, 3, 0, 4]);
    assert_eq!(ev.products.names(), vec!["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(ev.brands.names(), vec!["acme", "zeta"]);
    assert_eq!(ev.brand, vec![0, 1, NONE, 0, 1, 0, 0, NONE]);
    assert_eq!(ev.categories.names(), vec!["dress", "jeans", "top"]);
    assert_eq!(ev.size[0], ev.size[6], "M twice is one size");
    assert_eq!(ev.sizes.len(), 7);
    assert_eq!(
        ev.outcome,
        vec![
            Outcome::Fit,
            Outcome::Small,
            Outcome::Large,
            Outcome::Fit,
            Outcome::Other,
            Outcome::Fit,
            Outcome::Small,
            Outcome::Large
        ]
    );
    assert!(ev.has_outcome);
    assert_eq!(ev.row.to_vec(), (0..8).collect::<Vec<u64>>());
    assert!(ev.row.is_identity());
    assert_eq!(ev.row.heap_bytes(), 0, "identity rows take no memory");
    let ts = ev.timestamp.as_ref().expect("timestamps");
    assert_eq!(ts[0], 1_704_067_200_000); // 2024-01-01T00:00:00Z
    assert_eq!(ts[1], 1_704_067_200_000 + 86_400_000 + 36_000_000);
    let r = &base.report;
    assert_eq!(
        (r.rows_read, r.rows_kept, r.rows_bad, r.rows_filtered),
        (8, 8, 0, 0)
    );
    assert_eq!(
        (r.outcomes.small, r.outcomes.fit, r.outcomes.large),
        (2, 3, 2)
    );
    assert_eq!(r.other_outcomes, 1);
    assert_eq!(
        (r.customers, r.products, r.brands, r.categories, r.sizes),
        (5, 5, 2, 3, 7)
    );
    assert!(r.summary().contains("kept 8"), "{}", r.summary());

    for name in [
        "ev.csv",
        "ev.ndjson",
        "ev.jsonl",
        "ev.csv.gz",
        "ev.ndjson.gz",
    ] {
        let p = common::write_as(&mut df, dir.path(), name);
        let other = run(&cfg_for(&p));
        assert_same_events(&base.events, &other.events, name);
        assert_eq!(other.report.rows_kept, 8, "{name}");
    }
}

#[test]
fn optional_features_are_read_where_every_file_has_them() {
    // what `eval` / `predict` do without --customer-features: the model's features,
    // those the files have
    let dir = common::tempdir();
    let mut df = sample();
    let p = common::write_as(&mut df, dir.path(), "ev.parquet");
    let listed = run(&cfg_for(&p)).events;
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    cfg.optional_customer_features = vec!["height".into(), "shoe_size".into(), "body_type".into()];
    let optional = run(&cfg).events;
    // the same events as with the two present ones listed; shoe_size is left out
    assert_same_events(&listed, &optional, "optional features");
    // a second file without `body_type`: it is left out for all files (features are
    // kept per column, not per file), the others still read
    let mut other = sample().drop("body_type").unwrap();
    let q = common::write_as(&mut other, dir.path(), "no_body.parquet");
    cfg.inputs.push(q.display().to_string());
    let two = run(&cfg).events;
    let names: Vec<&str> = (two.features.numeric.iter().map(|f| f.name.as_str()))
        .chain(two.features.categorical.iter().map(|f| f.name.as_str()))
        .collect();
    assert_eq!(names, ["height"]);
    // listed features stay required
    cfg.customer_features = vec!["body_type".into()];
    assert!(matches!(
        ingest(&cfg),
        Err(DataError::MissingColumn { ref column, .. }) if column == "body_type"
    ));
}

#[test]
fn features_fold_to_last_non_null_value_per_customer() {
    let dir = common::tempdir();
    let p = common::write_as(&mut sample(), dir.path(), "ev.parquet");
    let ev = run(&cfg_for(&p)).events;
    let h = numeric(&ev, "height");
    assert_eq!(h.len(), 5);
    // customer 101: 170, 171.5, null -> 171.5
    assert_eq!(h[0], 171.5);
    // customer 102: null, 180 -> 180
    assert_eq!(h[1], 180.0);
    // customer 104: only null -> NaN
    assert!(h[3].is_nan());
    // customer 101: athletic, null, hourglass -> hourglass
    assert_eq!(
        categorical(&ev, "body_type", 0).as_deref(),
        Some("hourglass")
    );
    assert_eq!(categorical(&ev, "body_type", 1).as_deref(), Some("full"));
    assert_eq!(categorical(&ev, "body_type", 3), None);
    let levels = &ev.features.categorical[0].levels;
    assert_eq!(levels, &vec!["athletic", "petite", "full", "hourglass"]);
}

#[test]
fn column_mapping_and_integer_sizes() {
    let dir = common::tempdir();
    let mut df = df!(
        "user_id" => [7i64, 8, 7],
        "label" => [8i64, 10, 12],
        "fit" => ["fit", "small", "large"],
        "item_id" => [1i64, 1, 2],
    )
    .unwrap();
    let p = common::write_as(&mut df, dir.path(), "m.parquet");
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    // Unmapped: customer_id is missing.
    match ingest(&cfg) {
        Err(DataError::MissingColumn {
            path,
            column,
            canonical,
            available,
        }) => {
            assert_eq!(path, p);
            assert_eq!(column, "customer_id");
            assert_eq!(canonical, "customer_id");
            assert!(available.contains("user_id") && available.contains("label"));
        }
        other => panic!("expected MissingColumn, got {other:?}"),
    }
    for (k, v) in [
        ("customer_id", "user_id"),
        ("size", "label"),
        ("outcome", "fit"),
        ("product_id", "item_id"),
    ] {
        cfg.columns.insert(k.into(), v.into());
    }
    let ev = run(&cfg).events;
    assert_eq!(ev.customers.names(), vec!["7", "8"]);
    assert_eq!(ev.products.names(), vec!["1", "2"]);
    assert_eq!(ev.size, vec![0, 1, 2]);
    let labels: Vec<&str> = ev.sizes.iter().map(|s| s.canonical.as_str()).collect();
    assert_eq!(labels, vec!["8", "10", "12"]);

    // Float sizes are converted to text: 8.0 -> "8", 8.5 -> "8.5".
    let mut df = df!(
        "customer_id" => ["a", "b"],
        "size" => [8.0f64, 8.5],
        "outcome" => ["fit", "fit"],
    )
    .unwrap();
    let p = common::write_as(&mut df, dir.path(), "f.parquet");
    let ev = run(&IngestConfig::new(vec![p.display().to_string()])).events;
    let a = runsize::data::parse_size("8", None).unwrap();
    let b = runsize::data::parse_size("8.5", None).unwrap();
    assert_eq!(ev.sizes, vec![a, b]);

    // A mapped optional column that is absent is an error too.
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    cfg.columns.insert("brand".into(), "maker".into());
    assert!(matches!(
        ingest(&cfg),
        Err(DataError::MissingColumn { ref column, ref canonical, .. }) if column == "maker" && canonical == "brand"
    ));
    // An unknown canonical name is a config error listing the canonical names.
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    cfg.columns.insert("shopper".into(), "x".into());
    let e = ingest(&cfg).unwrap_err().to_string();
    assert!(e.contains("shopper") && e.contains("customer_id"), "{e}");
}

#[test]
fn string_and_integer_ids_give_the_same_keys() {
    let dir = common::tempdir();
    let mut ints = df!(
        "customer_id" => [1i64, 2, 1],
        "product_id" => [10i32, 20, 30],
        "size" => ["S", "M", "L"],
        "outcome" => ["fit", "fit", "small"],
    )
    .unwrap();
    let mut strs = df!(
        "customer_id" => ["1", "2", "1"],
        "product_id" => ["10", "20", "30"],
        "size" => ["S", "M", "L"],
        "outcome" => ["fit", "fit", "small"],
    )
    .unwrap();
    let a = run(&IngestConfig::new(vec![common::write_as(
        &mut ints,
        dir.path(),
        "i.parquet",
    )
    .display()
    .to_string()]));
    let b = run(&IngestConfig::new(vec![common::write_as(
        &mut strs,
        dir.path(),
        "s.parquet",
    )
    .display()
    .to_string()]));
    assert_same_events(&a.events, &b.events, "int vs string ids");
    // Text ids that are not canonical integers stay distinct ("01" != "1").
    let mut mixed = df!(
        "customer_id" => ["u1", "01", "1"],
        "size" => ["S", "M", "L"],
        "outcome" => ["fit", "fit", "small"],
    )
    .unwrap();
    let c = run(&IngestConfig::new(vec![common::write_as(
        &mut mixed,
        dir.path(),
        "m.csv",
    )
    .display()
    .to_string()]));
    assert_eq!(c.events.customers.names(), vec!["u1", "01", "1"]);
}

#[test]
fn directory_and_glob_inputs_read_files_in_path_order() {
    let dir = common::tempdir();
    let d = dir.path().join("events");
    std::fs::create_dir(&d).unwrap();
    let full = sample();
    // Three files whose sorted order is the original order, in different formats.
    common::write_as(&mut full.slice(0, 3), &d, "a-part.parquet");
    common::write_as(&mut full.slice(3, 3), &d, "b-part.csv");
    common::write_as(&mut full.slice(6, 2), &d, "c-part.ndjson");
    std::fs::write(d.join("README.txt"), "not data").unwrap();
    let single = common::write_as(&mut full.clone(), dir.path(), "all.parquet");
    let whole = run(&cfg_for(&single));

    let by_dir = run(&cfg_for(&d));
    assert_eq!(by_dir.report.files.len(), 3);
    assert_same_events(&whole.events, &by_dir.events, "directory");

    let mut cfg = cfg_for(&d);
    cfg.inputs = vec![format!("{}/*-part.*", d.display())];
    let by_glob = run(&cfg);
    assert_same_events(&whole.events, &by_glob.events, "glob");

    let files = list_inputs(&[d.display().to_string()]).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["a-part.parquet", "b-part.csv", "c-part.ndjson"]);
    assert!(matches!(
        list_inputs(&[format!("{}/*.xyz", d.display())]),
        Err(DataError::NoInput(_))
    ));
    // Bad-row examples name the file and the row within it.
    let mut bad = bad_sample();
    common::write_as(&mut bad, &d, "d-bad.csv");
    let mut cfg = cfg_for(&d);
    cfg.customer_features.clear();
    cfg.max_bad_fraction = 0.5;
    let got = run(&cfg);
    let ex = &got.report.bad_rows[0].examples[0];
    assert!(ex.file.ends_with("d-bad.csv"));
    assert_eq!(ex.row, 3);
    // Global row numbers continue across files.
    assert_eq!(got.events.row.get(8), Some(8));
    assert_eq!(got.events.row.get(got.events.len() - 1), Some(8 + 9));
}

fn big_frame(n: usize) -> DataFrame {
    let cust: Vec<i64> = (0..n as i64).map(|i| i % 97).collect();
    let sizes: Vec<&str> = (0..n).map(|i| ["S", "M", "L"][i % 3]).collect();
    let outs: Vec<&str> = (0..n).map(|i| ["fit", "small", "large"][i % 3]).collect();
    let ts: Vec<i64> = (0..n as i64).map(|i| 1_700_000_000 + i * 3600).collect();
    df!(
        "customer_id" => cust,
        "size" => sizes,
        "outcome" => outs,
        "timestamp" => ts,
    )
    .unwrap()
}

/// Keys by first appearance: the dictionary every encoder must produce for `values`.
fn first_appearance(values: &[String]) -> (Vec<String>, Vec<u32>) {
    let mut dict: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let codes = values
        .iter()
        .map(|v| {
            *index.entry(v.clone()).or_insert_with(|| {
                dict.push(v.clone());
                dict.len() as u32 - 1
            })
        })
        .collect();
    (dict, codes)
}

#[test]
fn encoders_give_first_appearance_codes_across_batches_and_key_kinds() {
    // 70k rows: text customer ids that are all distinct for a while (the per-column caches
    // must notice and step aside) then integers in text form (the dictionary stays text),
    // product ids mixing short (inline) and long values, sizes > 12 bytes, with a batch size
    // that cuts the file into many batches.
    let n = 70_000usize;
    let cust: Vec<String> = (0..n)
        .map(|i| {
            if i < 40_000 {
                format!("cust-{}", i * 7 % 39_989)
            } else {
                format!("{}", i % 5_000)
            }
        })
        .collect();
    let prod: Vec<String> = (0..n)
        .map(|i| {
            let k = (i * 31 + i / 1000) % 450;
            if k % 2 == 0 {
                format!("p{k}")
            } else {
                format!("a-rather-long-product-id-{k:06}")
            }
        })
        .collect();
    let sizes: Vec<&str> = (0..n)
        .map(|i| ["M", "32x30", "W32 L30", "extra large", "EU 38", "10"][i % 6])
        .collect();
    let outs: Vec<&str> = (0..n)
        .map(|i| ["fit", "returned_too_small", "too large", "kept"][i % 4])
        .collect();
    let mut df = df!(
        "customer_id" => cust.clone(),
        "product_id" => prod.clone(),
        "size" => sizes,
        "outcome" => outs,
    )
    .unwrap();
    let dir = common::tempdir();
    let (want_c, want_cc) = first_appearance(&cust);
    let (want_p, want_pc) = first_appearance(&prod);
    // Parquet with 5k-row groups too (read in units of whole row groups), and read_rows
    // below the row-group size of the single-group file (ranged reads inside a group).
    let rg_path = dir.path().join("keys-rg.parquet");
    ParquetWriter::new(std::fs::File::create(&rg_path).unwrap())
        .with_row_group_size(Some(5_000))
        .finish(&mut df)
        .unwrap();
    let groups = ParquetReader::new(std::fs::File::open(&rg_path).unwrap())
        .get_metadata()
        .unwrap()
        .row_groups
        .len();
    assert_eq!(groups, 14, "70k rows in 5k-row groups");
    for name in ["keys.parquet", "keys.csv", "keys-rg.parquet"] {
        let path = if name == "keys-rg.parquet" {
            rg_path.clone()
        } else {
            common::write_as(&mut df, dir.path(), name)
        };
        // One batch; many small ones; a first batch big enough for the caches to judge
        // their hit rate (customer ids miss: that cache switches off for the second batch).
        for (chunk_rows, read_rows) in [(4_000_000, 1 << 20), (9_999, 7_000), (66_000, 30_000)] {
            let mut cfg = IngestConfig::new(vec![path.display().to_string()]);
            cfg.chunk_rows = chunk_rows;
            cfg.read_rows = read_rows;
            let got = run(&cfg);
            let ev = &got.events;
            assert_eq!(ev.len(), n, "{name}");
            assert_eq!(ev.customers.names(), want_c, "{name} {chunk_rows}");
            assert_eq!(ev.customer, want_cc, "{name} {chunk_rows}");
            assert_eq!(ev.products.names(), want_p, "{name} {chunk_rows}");
            assert_eq!(ev.product, want_pc, "{name} {chunk_rows}");
            assert_eq!(ev.sizes.len(), 5, "{name}: 32x30 and W32 L30 are one label");
            for i in [0usize, 1, 2, 3, 4, 5, 69_999] {
                assert_eq!(ev.size[i], ev.size[i % 6], "{name} row {i}");
            }
            let want_out = [Outcome::Fit, Outcome::Small, Outcome::Large, Outcome::Fit];
            assert!(
                ev.outcome
                    .iter()
                    .enumerate()
                    .all(|(i, o)| *o == want_out[i % 4]),
                "{name} {chunk_rows}"
            );
            assert!(ev.row.is_identity());
        }
    }
}

#[test]
fn split_filter_partitions_rows_exactly_and_deterministically() {
    let dir = common::tempdir();
    let p = common::write_as(&mut big_frame(5000), dir.path(), "big.parquet");
    let mut all_rows: Vec<u64> = Vec::new();
    let mut sizes = Vec::new();
    for part in 0..3 {
        let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
        cfg.chunk_rows = 777; // batching must not matter
        cfg.filter.split = Some(SplitFilter {
            seed: 42,
            fractions: vec![0.8, 0.1, 0.1],
            part,
        });
        let got = run(&cfg);
        assert_eq!(got.report.rows_read, 5000);
        assert_eq!(got.report.rows_kept + got.report.rows_filtered, 5000);
        assert_eq!(got.report.rows_bad, 0);
        // Deterministic, and independent of the batch size.
        cfg.chunk_rows = 4_000_000;
        let again = run(&cfg);
        assert_eq!(again.events.row, got.events.row);
        sizes.push(got.events.len());
        all_rows.extend(got.events.row.iter());
    }
    assert!(sizes[0] > 3700 && sizes[0] < 4300, "{sizes:?}");
    assert!(sizes[1] > 350 && sizes[1] < 650, "{sizes:?}");
    all_rows.sort_unstable();
    assert_eq!(
        all_rows,
        (0..5000).collect::<Vec<u64>>(),
        "disjoint and complete"
    );
    // Invalid part.
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    cfg.filter.split = Some(SplitFilter {
        seed: 0,
        fractions: vec![0.5, 0.5],
        part: 2,
    });
    assert!(matches!(ingest(&cfg), Err(DataError::Config { .. })));
}

#[test]
fn time_filter_keeps_the_window() {
    let dir = common::tempdir();
    let p = common::write_as(&mut big_frame(100), dir.path(), "t.csv");
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    // Epoch seconds: row i at 1_700_000_000 + 3600 i. Keep rows 10..30.
    cfg.filter = RowFilter {
        split: None,
        since_ms: Some((1_700_000_000 + 10 * 3600) * 1000),
        before_ms: Some((1_700_000_000 + 30 * 3600) * 1000),
    };
    let got = run(&cfg);
    assert_eq!(got.events.row.to_vec(), (10..30).collect::<Vec<u64>>());
    assert_eq!(got.report.rows_filtered, 80);
    assert_eq!(
        got.events.timestamp.as_ref().unwrap()[0],
        (1_700_000_000 + 36_000) * 1000
    );
    // Without a timestamp column a time filter is a config error.
    let mut df = bad_sample().drop_nulls::<String>(None).unwrap();
    let q = common::write_as(&mut df, dir.path(), "nots.parquet");
    cfg.inputs = vec![q.display().to_string()];
    let e = ingest(&cfg).unwrap_err();
    assert!(matches!(e, DataError::Config { .. }), "{e}");
    assert!(e.to_string().contains("timestamp"), "{e}");
}

#[test]
fn timestamps_of_every_type() {
    let dir = common::tempdir();
    let day = 86_400_000i64;
    let dt = Series::new("timestamp".into(), &[day * 1000, day * 1000 + 1])
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .unwrap();
    let date = Series::new("timestamp".into(), &[1i32, 2])
        .cast(&DataType::Date)
        .unwrap();
    for (i, (col, want)) in [(dt, vec![day, day]), (date, vec![day, 2 * day])]
        .into_iter()
        .enumerate()
    {
        let mut df = DataFrame::new_infer_height(vec![
            Series::new("customer_id".into(), &[1i64, 2]).into(),
            Series::new("size".into(), &["S", "M"]).into(),
            Series::new("outcome".into(), &["fit", "fit"]).into(),
            col.into(),
        ])
        .unwrap();
        let p = common::write_as(&mut df, dir.path(), &format!("ts{i}.parquet"));
        let ev = run(&IngestConfig::new(vec![p.display().to_string()])).events;
        assert_eq!(ev.timestamp.unwrap(), want);
    }
    // Unparseable text => bad row "bad timestamp"; null => "missing timestamp".
    let mut df = df!(
        "customer_id" => [1i64, 2, 3, 4],
        "size" => ["S", "M", "L", "S"],
        "outcome" => ["fit", "fit", "fit", "fit"],
        "when" => [Some("2024-01-01"), Some("yesterday"), None, Some("2024-02-30")],
    )
    .unwrap();
    let p = common::write_as(&mut df, dir.path(), "badts.csv");
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    cfg.columns.insert("timestamp".into(), "when".into());
    cfg.max_bad_fraction = 1.0;
    let got = run(&cfg);
    let by: Vec<(BadReason, u64)> = got
        .report
        .bad_rows
        .iter()
        .map(|b| (b.reason, b.count))
        .collect();
    assert_eq!(
        by,
        vec![
            (BadReason::MissingTimestamp, 1),
            (BadReason::BadTimestamp, 2)
        ]
    );
    let bad = got
        .report
        .bad_rows
        .iter()
        .find(|b| b.reason == BadReason::BadTimestamp)
        .unwrap();
    assert_eq!(bad.values, vec!["yesterday", "2024-02-30"]);
    assert_eq!(got.events.row.to_vec(), vec![0]);
}

#[test]
fn optional_outcomes_for_prediction() {
    let dir = common::tempdir();
    let mut df = df!(
        "customer_id" => [1i64, 2, 3],
        "size" => ["S", "M", "L"],
    )
    .unwrap();
    let p = common::write_as(&mut df, dir.path(), "noout.parquet");
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    assert!(matches!(
        ingest(&cfg),
        Err(DataError::MissingColumn { ref canonical, .. }) if canonical == "outcome"
    ));
    cfg.require_outcome = false;
    let got = run(&cfg);
    assert!(!got.events.has_outcome);
    assert_eq!(got.events.outcome, vec![Outcome::Other; 3]);
    assert_eq!(got.report.rows_without_outcome, 3);
    // With the column present, null and unknown values become Other, not bad.
    let mut cfg = IngestConfig::new(vec![common::write_as(
        &mut bad_sample(),
        dir.path(),
        "b.parquet",
    )
    .display()
    .to_string()]);
    cfg.require_outcome = false;
    cfg.max_bad_fraction = 0.5;
    let got = run(&cfg);
    assert!(got.events.has_outcome);
    let reasons: Vec<BadReason> = got.report.bad_rows.iter().map(|b| b.reason).collect();
    assert_eq!(
        reasons,
        vec![
            BadReason::MissingCustomerId,
            BadReason::MissingSize,
            BadReason::BadSize
        ]
    );
    assert_eq!(got.events.len(), 7);
    assert_eq!(got.events.row.to_vec(), vec![0, 1, 3, 5, 6, 8, 9]);
    assert_eq!(got.events.outcome[3], Outcome::Other); // "meh" (row 6)
    assert_eq!(got.events.outcome[5], Outcome::Other); // null (row 9)
    assert_eq!(got.events.outcome[0], Outcome::Fit);
    assert_eq!(got.report.rows_without_outcome, 1);
}

#[test]
fn frame_with_events_for_batch_prediction() {
    let dir = common::tempdir();
    let d = dir.path().join("in");
    std::fs::create_dir(&d).unwrap();
    let full = bad_sample();
    common::write_as(&mut full.slice(0, 4), &d, "a.parquet");
    common::write_as(&mut full.slice(4, 6), &d, "b.parquet");
    let mut cfg = IngestConfig::new(vec![d.display().to_string()]);
    cfg.require_outcome = false;
    cfg.max_bad_fraction = 0.5;
    let (mut frame, got) = ingest_with_frame(&cfg).unwrap();
    assert_eq!(frame.height(), 10);
    assert_eq!(frame.width(), 3);
    // events.row indexes the frame.
    let ids = frame.column("customer_id").unwrap().i64().unwrap().clone();
    for (i, r) in got.events.row.iter().enumerate() {
        let id = ids.get(r as usize).unwrap();
        assert_eq!(
            got.events
                .customers
                .get(got.events.customer[i] as usize)
                .unwrap(),
            id.to_string()
        );
    }
    // The frame can be written back out atomically.
    let out = dir.path().join("out.csv");
    write_frame(&mut frame, &out).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 11);
    // Filters are not allowed here.
    cfg.filter.since_ms = Some(0);
    assert!(matches!(
        ingest_with_frame(&cfg),
        Err(DataError::Config { .. })
    ));
}

#[test]
fn real_renttherunway_file_ingests_cleanly() {
    let Some(path) = common::real_data_path() else {
        eprintln!("skipping: ../shared/data/renttherunway.parquet not present");
        return;
    };
    let got = run(&common::rtr_config(&path, None));
    let r = &got.report;
    println!("{}", r.summary());
    assert_eq!(r.rows_bad, 0, "{}", r.summary());
    assert_eq!(got.events.len(), 154_033);
    assert_eq!(r.rows_kept, 154_033);
    assert_eq!(
        (r.outcomes.small, r.outcomes.fit, r.outcomes.large),
        (20_200, 113_998, 19_835)
    );
    assert!(got.events.customers.len() > 50_000);
    assert_eq!(got.events.features.numeric.len(), 4);
    assert_eq!(got.events.features.categorical.len(), 1);
    assert_eq!(
        got.events.features.numeric[0].values.len(),
        got.events.customers.len()
    );
    // Parts of the published split cover all rows.
    let parts: Vec<usize> = (0..3)
        .map(|k| common::rtr_events(&path, Some(k)).len())
        .collect();
    assert_eq!(parts.iter().sum::<usize>(), 154_033);
}
