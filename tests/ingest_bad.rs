//! Ingest's bad input: bad rows counted by reason with the good rows kept, too many bad
//! rows abort naming the file, reason and rows, wrong column types and broken files give
//! clear errors.

use crate::common;
use crate::ingest::run;

use polars::prelude::*;
use runsize::data::ingest::{ingest, BadReason, IngestConfig};
use runsize::data::DataError;

pub(crate) fn bad_sample() -> DataFrame {
    // Row 3 (1-based): null customer; row 5: unparseable size; row 6: unknown outcome;
    // row 8: null size; row 9: null outcome.
    df!(
        "customer_id" => [Some(1i64), Some(2), None, Some(4), Some(5), Some(6), Some(7), Some(8), Some(9), Some(10)],
        "size" => [Some("S"), Some("M"), Some("L"), Some("M"), Some("not-a-size"), Some("S"), Some("M"), None, Some("L"), Some("M")],
        "outcome" => [Some("fit"), Some("small"), Some("fit"), Some("large"), Some("fit"), Some("meh"), Some("fit"), Some("fit"), None, Some("fit")],
    )
    .unwrap()
}

#[test]
fn bad_rows_are_counted_by_reason_and_good_rows_kept() {
    let dir = common::tempdir();
    for name in ["bad.parquet", "bad.csv", "bad.ndjson"] {
        let p = common::write_as(&mut bad_sample(), dir.path(), name);
        let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
        cfg.max_bad_fraction = 0.5;
        let got = run(&cfg);
        let r = &got.report;
        assert_eq!((r.rows_read, r.rows_bad, r.rows_kept), (10, 5, 5), "{name}");
        let by: Vec<(BadReason, u64, Vec<u64>)> = r
            .bad_rows
            .iter()
            .map(|b| {
                (
                    b.reason,
                    b.count,
                    b.examples.iter().map(|x| x.row).collect(),
                )
            })
            .collect();
        assert_eq!(
            by,
            vec![
                (BadReason::MissingCustomerId, 1, vec![3]),
                (BadReason::MissingSize, 1, vec![8]),
                (BadReason::MissingOutcome, 1, vec![9]),
                (BadReason::BadSize, 1, vec![5]),
                (BadReason::UnknownOutcome, 1, vec![6]),
            ],
            "{name}"
        );
        assert!(r.bad_rows.iter().all(|b| b.examples[0].file == p));
        let bad_size = r
            .bad_rows
            .iter()
            .find(|b| b.reason == BadReason::BadSize)
            .unwrap();
        assert_eq!(bad_size.values, vec!["not-a-size"]);
        assert_eq!(got.events.row.to_vec(), vec![0, 1, 3, 6, 9], "{name}");
        assert_eq!(got.events.customers.names(), vec!["1", "2", "4", "7", "10"]);
        let s = r.summary();
        assert!(s.contains("unknown outcome: 1 row(s)"), "{s}");
    }
}

#[test]
fn too_many_bad_rows_abort_with_file_reason_and_rows() {
    let dir = common::tempdir();
    let p = common::write_as(&mut bad_sample(), dir.path(), "bad.csv");
    let cfg = IngestConfig::new(vec![p.display().to_string()]);
    match ingest(&cfg) {
        Err(e @ DataError::TooManyBadRows { .. }) => {
            let DataError::TooManyBadRows { bad, total, .. } = &e else {
                unreachable!()
            };
            assert_eq!((*bad, *total), (5, 10));
            let msg = e.to_string();
            assert!(msg.contains("bad.csv row 3"), "{msg}");
            assert!(msg.contains("missing customer_id"), "{msg}");
            assert!(msg.contains("unparseable size"), "{msg}");
            assert!(msg.contains("'not-a-size'"), "{msg}");
            assert!(msg.contains("unknown outcome"), "{msg}");
        }
        other => panic!("expected TooManyBadRows, got {other:?}"),
    }
    // Exactly at the limit passes (5 of 10 with 0.5); just below fails.
    let mut cfg = cfg.clone();
    cfg.max_bad_fraction = 0.49;
    assert!(matches!(
        ingest(&cfg),
        Err(DataError::TooManyBadRows { .. })
    ));
}

#[test]
fn wrong_types_are_rejected() {
    let dir = common::tempdir();
    // A list column as size.
    let lists = Series::new(
        "size".into(),
        &[
            Series::new("".into(), &[1i64, 2]),
            Series::new("".into(), &[3i64]),
        ],
    );
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("customer_id".into(), &[1i64, 2]).into(),
        lists.into(),
        Series::new("outcome".into(), &["fit", "fit"]).into(),
    ])
    .unwrap();
    let p = common::write_as(&mut df, dir.path(), "list.parquet");
    match ingest(&IngestConfig::new(vec![p.display().to_string()])) {
        Err(DataError::WrongType { path, column, .. }) => {
            assert_eq!(path, p);
            assert_eq!(column, "size");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    // A datetime customer feature.
    let when = Series::new("when".into(), &[1i64, 2])
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .unwrap();
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("customer_id".into(), &[1i64, 2]).into(),
        Series::new("size".into(), &["S", "M"]).into(),
        Series::new("outcome".into(), &["fit", "fit"]).into(),
        when.into(),
    ])
    .unwrap();
    let p = common::write_as(&mut df, dir.path(), "dt.parquet");
    let mut cfg = IngestConfig::new(vec![p.display().to_string()]);
    cfg.customer_features = vec!["when".into()];
    assert!(matches!(
        ingest(&cfg),
        Err(DataError::WrongType { ref column, .. }) if column == "when"
    ));
    // A missing feature column names it.
    cfg.customer_features = vec!["shoe_size".into()];
    assert!(matches!(
        ingest(&cfg),
        Err(DataError::MissingColumn { ref column, .. }) if column == "shoe_size"
    ));
}

#[test]
fn broken_files_give_clear_errors() {
    let dir = common::tempdir();
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.csv", vec![]),
        ("header.csv", b"customer_id,size,outcome\n".to_vec()),
        (
            "garbage.parquet",
            (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        (
            "garbage.csv",
            (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("garbage.ndjson", b"{not json\n\x00\x01\x02".to_vec()),
        ("empty.ndjson", vec![]),
        ("garbage.csv.gz", b"\x1f\x8b\x08\x00garbage".to_vec()),
    ];
    for (name, bytes) in cases {
        let p = d.join(name);
        std::fs::write(&p, &bytes).unwrap();
        let r = ingest(&IngestConfig::new(vec![p.display().to_string()]));
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{name}: expected an error"));
        let msg = e.to_string();
        assert!(!msg.is_empty(), "{name}");
        eprintln!("{name}: {msg}");
    }
    // Unsupported extension and missing input.
    let txt = d.join("notes.txt");
    std::fs::write(&txt, "x").unwrap();
    assert!(matches!(
        ingest(&IngestConfig::new(vec![txt.display().to_string()])),
        Err(DataError::UnsupportedFormat(_))
    ));
    assert!(matches!(
        ingest(&IngestConfig::new(vec![d
            .join("nope.csv")
            .display()
            .to_string()])),
        Err(DataError::NoInput(_))
    ));
}
