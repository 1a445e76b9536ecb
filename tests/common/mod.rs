//! Shared helpers for the integration tests: temp dirs, writing frames as Parquet / CSV /
//! NDJSON (optionally gzip), and the real RentTheRunway file. Helpers are additive: each
//! test file uses only some of them.

use polars::prelude::{CsvWriter, DataFrame, JsonFormat, JsonWriter, ParquetWriter, SerWriter};
use runsize::data::ingest::{ingest, IngestConfig, RowFilter, SplitFilter};
use runsize::data::Events;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A fresh temporary directory (removed when dropped).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

/// Write `df` as Parquet.
pub fn write_parquet(df: &mut DataFrame, path: &Path) {
    let f = std::fs::File::create(path).expect("create parquet file");
    ParquetWriter::new(f).finish(df).expect("write parquet");
}

/// Write `df` as CSV with a header.
pub fn write_csv(df: &mut DataFrame, path: &Path) {
    let f = std::fs::File::create(path).expect("create csv file");
    CsvWriter::new(f)
        .include_header(true)
        .finish(df)
        .expect("write csv");
}

/// Write `df` as NDJSON (one object per line).
pub fn write_ndjson(df: &mut DataFrame, path: &Path) {
    let f = std::fs::File::create(path).expect("create ndjson file");
    JsonWriter::new(f)
        .with_json_format(JsonFormat::JsonLines)
        .finish(df)
        .expect("write ndjson");
}

/// Gzip `bytes` into `path`.
pub fn write_gz(bytes: &[u8], path: &Path) {
    let f = std::fs::File::create(path).expect("create gz file");
    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("finish gzip");
}

/// Write `df` to `dir/name`, format by extension: `.parquet`, `.csv`, `.ndjson`,
/// `.jsonl`, `.csv.gz`, `.ndjson.gz`. Returns the path.
pub fn write_as(df: &mut DataFrame, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(plain) = name.strip_suffix(".gz") {
        let tmp = dir.join(format!(".plain-{plain}"));
        write_as_plain(df, &tmp, plain);
        let bytes = std::fs::read(&tmp).expect("read plain file");
        std::fs::remove_file(&tmp).expect("remove plain file");
        write_gz(&bytes, &path);
    } else {
        write_as_plain(df, &path, name);
    }
    path
}

fn write_as_plain(df: &mut DataFrame, path: &Path, name: &str) {
    if name.ends_with(".parquet") {
        write_parquet(df, path)
    } else if name.ends_with(".csv") {
        write_csv(df, path)
    } else if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
        write_ndjson(df, path)
    } else {
        panic!("write_as: unknown extension in {name}")
    }
}

/// The real RentTheRunway file (`../shared/data/renttherunway.parquet` relative to the
/// crate root), or `None` when absent (tests then print a skip message and return).
/// Under CI (`CI` set to anything but `false`) the file must be there: CI has it, so its
/// absence is a broken checkout, not a reason to pass silently.
pub fn real_data_path() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/renttherunway.parquet");
    if p.is_file() {
        return Some(p);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(!ci, "CI is set but {} is missing", p.display());
    None
}

/// Ingest config for the RentTheRunway file with its column mapping and body features;
/// `part` = Some(k) keeps part k of the published 80/10/10 random split (seed 0).
pub fn rtr_config(path: &Path, part: Option<usize>) -> IngestConfig {
    let mut cfg = IngestConfig::new(vec![path.display().to_string()]);
    for (k, v) in [
        ("customer_id", "user_id"),
        ("product_id", "item_id"),
        ("outcome", "fit"),
    ] {
        cfg.columns.insert(k.to_string(), v.to_string());
    }
    cfg.customer_features = [
        "weight_lbs",
        "height_in",
        "bust_size_num",
        "age",
        "body_type",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cfg.filter = RowFilter {
        split: part.map(|part| SplitFilter {
            seed: 0,
            fractions: vec![0.8, 0.1, 0.1],
            part,
        }),
        ..Default::default()
    };
    cfg
}

/// RentTheRunway events (see [`rtr_config`]).
pub fn rtr_events(path: &Path, part: Option<usize>) -> Events {
    ingest(&rtr_config(path, part))
        .expect("ingest renttherunway")
        .events
}

/// Synthetic events with known answers, split 80/20 into train and test.
pub struct SynthSplit {
    /// Training events (part 0).
    pub train: Events,
    /// Held-out events (part 1).
    pub test: Events,
    /// What generated them.
    pub truth: runsize::synth::Truth,
    /// Keeps the files alive.
    pub dir: tempfile::TempDir,
}

/// Generate `events` synthetic events (seed, brands, products per brand or the
/// generator's default) as Parquet in a temp dir and ingest an 80/20 split of them with
/// the body features.
pub fn synth_split(
    events: u64,
    seed: u64,
    brands: usize,
    products_per_brand: Option<usize>,
) -> SynthSplit {
    let dir = tempdir();
    let path = dir.path().join("synth.parquet");
    let cfg = runsize::synth::SynthConfig {
        events,
        seed,
        brands,
        products_per_brand,
        customer_truth: false,
        ..runsize::synth::SynthConfig::default()
    };
    runsize::synth::generate(&cfg, &path).expect("generate synthetic events");
    let (truth_path, _) = runsize::synth::truth_paths(&path);
    let truth = runsize::synth::read_truth(&truth_path).expect("read truth");
    let part = |k: usize| {
        let mut c = IngestConfig::new(vec![path.display().to_string()]);
        c.customer_features = ["height_cm", "weight_kg", "body_shape"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        c.filter = RowFilter {
            split: Some(SplitFilter {
                seed: 1,
                fractions: vec![0.8, 0.2],
                part: k,
            }),
            ..Default::default()
        };
        ingest(&c).expect("ingest synthetic events").events
    };
    SynthSplit {
        train: part(0),
        test: part(1),
        truth,
        dir,
    }
}

/// Pearson correlation of two equally long series.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Each article-size's total offset: its size label, brand, category, product and
/// product-in-size offsets (the levels may trade a little between them while the totals
/// stay put: compare fits by these).
pub fn article_offsets(m: &runsize::model::Fitted) -> Vec<f64> {
    let v = |g: &[runsize::model::fitted::GroupParams], i: u32| {
        g.get(i as usize).map_or(0.0, |x| x.offset.value)
    };
    m.article_sizes
        .iter()
        .map(|a| {
            let info = &m.product_info[a.product as usize];
            a.offset.value
                + m.labels[a.label as usize].offset.value
                + v(&m.products, a.product)
                + v(&m.brands, info.brand)
                + v(&m.categories, info.category)
        })
        .collect()
}

/// A model with a second stage: the structural fit of `params.structural` on `events`,
/// then the stage fitted with `params` and attached.
pub fn stacked(
    events: &Events,
    params: &runsize::model::stack_fit::StackParams,
) -> runsize::model::Fitted {
    let mut model = params.structural.fit(events).unwrap();
    let structural = runsize::model::Predictor::new(model.clone()).unwrap();
    model.stack = Some(params.fit(&structural, events).unwrap());
    model
}

/// Run the `runsize` binary with `args` (logging at warn): its exit status, stdout and
/// stderr.
pub fn runsize_bin(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_runsize"))
        .args(args)
        .env("RUNSIZE_LOG", "warn")
        .output()
        .expect("run the runsize binary")
}
