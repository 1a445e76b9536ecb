//! Command-line options for reading events (`--events`, `--col`, `--split`, ...), shared by
//! train / predict / eval via `#[command(flatten)]` and validated once into an
//! [`IngestConfig`].

use crate::data::ingest::{parse_timestamp_ms, IngestConfig, RowFilter, SplitFilter};
use crate::data::schema::col as canon;
use crate::data::{DataError, OutcomeMap};
use crate::model::features::FeatureModel;

/// Options that say which event files to read and how.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Event file(s): a .parquet, .csv, .ndjson/.jsonl file (optionally .gz), a directory of
    /// them, or a glob. Repeatable; files are read in order.
    #[arg(long = "events", value_name = "PATH", required = true)]
    pub events: Vec<String>,

    /// Map a canonical column to a column of the file: `canonical=source`, e.g.
    /// `--col customer_id=user_id`. Repeatable. Canonical columns: customer_id, size,
    /// outcome, brand, product_id, category, size_system, timestamp. Default: identity.
    #[arg(long = "col", value_name = "CANONICAL=SOURCE")]
    pub col: Vec<String>,

    /// Customer feature columns (body data such as height or weight), comma-separated.
    /// Default: none for `train`; for `eval` and `predict`, the model's own features
    /// (those the files have).
    #[arg(
        long = "customer-features",
        value_name = "A,B,C",
        value_delimiter = ','
    )]
    pub customer_features: Vec<String>,

    /// Extra outcome vocabulary: `raw=class,...` with class small, fit, large or other.
    /// Default: the standard vocabulary only.
    #[arg(long = "outcome-map", value_name = "RAW=CLASS,...")]
    pub outcome_map: Option<String>,

    /// Abort when more than this fraction of rows is bad (0..=1).
    #[arg(long = "max-bad-fraction", value_name = "F", default_value_t = 0.01)]
    pub max_bad_fraction: f64,

    /// Random split of the rows into parts, as percentages or fractions, e.g. `80,10,10`.
    /// Needs --part. Default: no split.
    #[arg(long = "split", value_name = "P1,P2,...")]
    pub split: Option<String>,

    /// Seed of the random split.
    #[arg(long = "split-seed", value_name = "N", default_value_t = 0)]
    pub split_seed: u64,

    /// The part of the split to read: train (0), valid (1), test (2) or a 0-based index.
    #[arg(long = "part", value_name = "PART")]
    pub part: Option<String>,

    /// Keep rows at or after this time (YYYY-MM-DD or RFC 3339; needs a timestamp column).
    #[arg(long = "since", value_name = "DATE")]
    pub since: Option<String>,

    /// Keep rows before this time (YYYY-MM-DD or RFC 3339; needs a timestamp column).
    #[arg(long = "before", value_name = "DATE")]
    pub before: Option<String>,
}

/// The body features a scoring command (`eval`, `predict`) reads: without
/// `--customer-features`, the model's own, where the files have them (scoring without
/// them loses what the model learned: RentTheRunway's random split, seed 0, AUC 0.7635
/// instead of 0.7703); with it, those listed, and a warning for the model's features
/// the list leaves out.
pub(crate) fn model_features(model: &FeatureModel, cfg: &mut IngestConfig) {
    if cfg.customer_features.is_empty() {
        cfg.optional_customer_features = model.names().map(str::to_string).collect();
        return;
    }
    let unlisted = model.unlisted(&cfg.customer_features);
    if !unlisted.is_empty() {
        tracing::warn!(
            "the model was trained with body features {} that --customer-features does not list: scoring without them (pass the training's --customer-features)",
            unlisted.join(", ")
        );
    }
}

fn config_err(what: &'static str, message: String) -> DataError {
    DataError::Config { what, message }
}

/// Parse `--split` text: comma-separated positive numbers summing to ~1 (fractions) or
/// ~100 (percentages); returned normalised to sum to 1.
pub fn parse_split(text: &str) -> Result<Vec<f64>, DataError> {
    let mut parts = Vec::new();
    for p in text.split(',') {
        let p = p.trim();
        let v: f64 = p.parse().map_err(|_| {
            config_err(
                "split",
                format!("'{p}' in '{text}' is not a number; expected e.g. 80,10,10"),
            )
        })?;
        if !(v.is_finite() && v > 0.0) {
            return Err(config_err(
                "split",
                format!("parts must be positive, got '{p}' in '{text}'"),
            ));
        }
        parts.push(v);
    }
    if parts.len() < 2 {
        return Err(config_err(
            "split",
            format!("'{text}' has fewer than two parts; expected e.g. 80,10,10"),
        ));
    }
    let sum: f64 = parts.iter().sum();
    if !((sum - 1.0).abs() < 1e-6 || (sum - 100.0).abs() < 1e-4) {
        return Err(config_err(
            "split",
            format!(
                "parts of '{text}' sum to {sum}; they must sum to 1 (fractions) or 100 (percent)"
            ),
        ));
    }
    Ok(parts.into_iter().map(|v| v / sum).collect())
}

/// Parse `--part`: `train` = 0, `valid`/`validation` = 1, `test` = 2, or a 0-based index.
pub fn parse_part(text: &str) -> Result<usize, DataError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "train" => Ok(0),
        "valid" | "validation" | "val" => Ok(1),
        "test" => Ok(2),
        other => other.parse().map_err(|_| {
            config_err(
                "part",
                format!("'{text}' is not train, valid, test or a 0-based part index"),
            )
        }),
    }
}

/// Parse a `--since`/`--before` date: `YYYY-MM-DD` (midnight UTC) or RFC 3339.
pub fn parse_date_ms(what: &'static str, text: &str) -> Result<i64, DataError> {
    parse_timestamp_ms(text).ok_or_else(|| {
        config_err(
            what,
            format!(
                "'{text}' is not a date; expected YYYY-MM-DD or RFC 3339 (2024-01-31T12:00:00Z)"
            ),
        )
    })
}

impl IngestArgs {
    /// Validate every option once and build the ingest config. `require_outcome` is true for
    /// train/eval and false for predict.
    pub fn to_config(&self, require_outcome: bool) -> Result<IngestConfig, DataError> {
        let mut cfg = IngestConfig::new(self.events.clone());
        cfg.require_outcome = require_outcome;
        for m in &self.col {
            let (k, v) = m.split_once('=').ok_or_else(|| {
                config_err(
                    "column mapping",
                    format!("'{m}' is not canonical=source, e.g. customer_id=user_id"),
                )
            })?;
            let (k, v) = (k.trim(), v.trim());
            if !canon::ALL.contains(&k) {
                return Err(config_err(
                    "column mapping",
                    format!(
                        "unknown canonical column '{k}' in '{m}'; canonical columns are: {}",
                        canon::ALL.join(", ")
                    ),
                ));
            }
            if v.is_empty() {
                return Err(config_err(
                    "column mapping",
                    format!("'{m}' has an empty source column name"),
                ));
            }
            if cfg.columns.insert(k.to_string(), v.to_string()).is_some() {
                return Err(config_err(
                    "column mapping",
                    format!("canonical column '{k}' is mapped twice"),
                ));
            }
        }
        for f in &self.customer_features {
            let f = f.trim();
            if f.is_empty() {
                continue;
            }
            if !cfg.customer_features.iter().any(|x| x == f) {
                cfg.customer_features.push(f.to_string());
            }
        }
        if let Some(spec) = &self.outcome_map {
            cfg.outcome_map = OutcomeMap::standard().with_overrides(spec)?;
        }
        let f = self.max_bad_fraction;
        if !(f.is_finite() && (0.0..=1.0).contains(&f)) {
            return Err(config_err(
                "max bad fraction",
                format!("--max-bad-fraction must be within 0..=1, got {f}"),
            ));
        }
        cfg.max_bad_fraction = f;
        let split = match (&self.split, &self.part) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(config_err(
                    "split",
                    "--split needs --part (train, valid, test or an index)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(config_err(
                    "part",
                    "--part needs --split (e.g. --split 80,10,10)".into(),
                ))
            }
            (Some(s), Some(p)) => {
                let fractions = parse_split(s)?;
                let part = parse_part(p)?;
                if part >= fractions.len() {
                    return Err(config_err(
                        "part",
                        format!(
                            "part '{p}' (index {part}) is out of range for a split into {} parts",
                            fractions.len()
                        ),
                    ));
                }
                Some(SplitFilter {
                    seed: self.split_seed,
                    fractions,
                    part,
                })
            }
        };
        let since_ms = match &self.since {
            Some(s) => Some(parse_date_ms("since", s)?),
            None => None,
        };
        let before_ms = match &self.before {
            Some(s) => Some(parse_date_ms("before", s)?),
            None => None,
        };
        if let (Some(a), Some(b)) = (since_ms, before_ms) {
            if a >= b {
                return Err(config_err(
                    "time filter",
                    "--since must be earlier than --before".into(),
                ));
            }
        }
        cfg.filter = RowFilter {
            split,
            since_ms,
            before_ms,
        };
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        ingest: IngestArgs,
    }

    fn parse(args: &[&str]) -> IngestArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().ingest
    }

    #[test]
    fn scoring_reads_the_models_features_unless_told_otherwise() {
        let model = crate::model::features::two_feature_model();
        // no --customer-features: the model's own, optional (a file may lack one)
        let mut cfg = IngestConfig::new(vec!["e.parquet".into()]);
        model_features(&model, &mut cfg);
        assert!(cfg.customer_features.is_empty());
        assert_eq!(cfg.optional_customer_features, ["height_in", "body_type"]);
        // a list given is read as given (required), nothing added
        let mut cfg = IngestConfig::new(vec!["e.parquet".into()]);
        cfg.customer_features = vec!["height_in".into()];
        model_features(&model, &mut cfg);
        assert_eq!(cfg.customer_features, ["height_in"]);
        assert!(cfg.optional_customer_features.is_empty());
    }

    #[test]
    fn builds_config_with_mapping_and_features() {
        let a = parse(&[
            "--events",
            "a.parquet",
            "--events",
            "dir",
            "--col",
            "customer_id=user_id",
            "--col",
            "outcome=fit",
            "--customer-features",
            "weight_lbs,height_in",
        ]);
        let cfg = a.to_config(true).unwrap();
        assert_eq!(cfg.inputs, vec!["a.parquet", "dir"]);
        assert_eq!(cfg.columns.get("customer_id").unwrap(), "user_id");
        assert_eq!(cfg.source("outcome"), "fit");
        assert_eq!(cfg.source("size"), "size");
        assert_eq!(cfg.customer_features, vec!["weight_lbs", "height_in"]);
        assert_eq!(cfg.max_bad_fraction, 0.01);
        assert!(cfg.require_outcome);
        assert!(cfg.filter.is_empty());
        assert!(!a.to_config(false).unwrap().require_outcome);
    }

    #[test]
    fn rejects_unknown_canonical_column() {
        let a = parse(&["--events", "x.csv", "--col", "shopper=user_id"]);
        let e = a.to_config(true).unwrap_err().to_string();
        assert!(e.contains("shopper"), "{e}");
        assert!(e.contains("customer_id, size, outcome"), "{e}");
        let a = parse(&["--events", "x.csv", "--col", "customer_id"]);
        assert!(a.to_config(true).is_err());
    }

    #[test]
    fn split_and_part() {
        let a = parse(&[
            "--events",
            "x",
            "--split",
            "80,10,10",
            "--part",
            "test",
            "--split-seed",
            "9",
        ]);
        let s = a.to_config(true).unwrap().filter.split.unwrap();
        assert_eq!(s.part, 2);
        assert_eq!(s.seed, 9);
        assert!((s.fractions[0] - 0.8).abs() < 1e-12);
        assert!((s.fractions.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let a = parse(&["--events", "x", "--split", "0.5,0.5", "--part", "1"]);
        assert_eq!(a.to_config(true).unwrap().filter.split.unwrap().part, 1);
        for bad in [
            vec!["--split", "80,10", "--part", "test"],
            vec!["--split", "80,10,5", "--part", "train"],
            vec!["--split", "80,-10,30", "--part", "train"],
            vec!["--split", "a,b", "--part", "train"],
            vec!["--split", "80,20"],
            vec!["--part", "train"],
            vec!["--split", "80,20", "--part", "sideways"],
        ] {
            let mut args = vec!["--events", "x"];
            args.extend(bad.iter());
            assert!(parse(&args).to_config(true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates_and_fraction() {
        let a = parse(&[
            "--events",
            "x",
            "--since",
            "1970-01-02",
            "--before",
            "1970-01-03T00:00:00Z",
        ]);
        let f = a.to_config(true).unwrap().filter;
        assert_eq!(f.since_ms, Some(86_400_000));
        assert_eq!(f.before_ms, Some(172_800_000));
        assert!(parse(&["--events", "x", "--since", "yesterday"])
            .to_config(true)
            .is_err());
        assert!(parse(&[
            "--events",
            "x",
            "--since",
            "2020-01-02",
            "--before",
            "2020-01-01"
        ])
        .to_config(true)
        .is_err());
        assert!(parse(&["--events", "x", "--max-bad-fraction", "1.5"])
            .to_config(true)
            .is_err());
        let a = parse(&["--events", "x", "--max-bad-fraction", "0.2"]);
        assert_eq!(a.to_config(true).unwrap().max_bad_fraction, 0.2);
        let none: Result<T, _> = T::try_parse_from(["t"]);
        assert!(none.is_err(), "--events is required");
    }
}
