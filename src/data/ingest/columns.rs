//! Column resolution: the canonical columns found in each file's schema, and the config checks.

use super::*;

/// Source column names used for one file (None = absent optional column).
#[derive(Clone, Debug, Default)]
pub(super) struct FileColumns {
    pub(super) customer: String,
    pub(super) size: String,
    pub(super) outcome: Option<String>,
    pub(super) product: Option<String>,
    pub(super) brand: Option<String>,
    pub(super) category: Option<String>,
    pub(super) size_system: Option<String>,
    pub(super) timestamp: Option<(String, TsKind)>,
    pub(super) features: Vec<String>,
}

impl FileColumns {
    /// Distinct source columns to read, in a stable order.
    pub(super) fn projection(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut add = |s: &String| {
            if !v.contains(s) {
                v.push(s.clone());
            }
        };
        add(&self.customer);
        add(&self.size);
        for s in [
            &self.outcome,
            &self.product,
            &self.brand,
            &self.category,
            &self.size_system,
        ]
        .into_iter()
        .flatten()
        {
            add(s);
        }
        if let Some((s, _)) = &self.timestamp {
            add(s);
        }
        for f in &self.features {
            add(f);
        }
        v
    }
}

/// The columns of a file for error messages: control and replacement characters shown as
/// `?` (binary files), at most 60 names.
pub(super) fn available(schema: &Schema) -> String {
    const MAX: usize = 60;
    let mut names: Vec<String> = schema
        .iter_names()
        .take(MAX)
        .map(|n| {
            n.chars()
                .map(|c| {
                    if c.is_control() || c == '\u{FFFD}' {
                        '?'
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    if schema.len() > MAX {
        names.push(format!("... ({} more)", schema.len() - MAX));
    }
    names.join(", ")
}

pub(super) fn validate_config(cfg: &IngestConfig) -> Result<(), DataError> {
    for k in cfg.columns.keys() {
        if !canon::ALL.contains(&k.as_str()) {
            return Err(DataError::Config {
                what: "column mapping",
                message: format!(
                    "unknown canonical column '{k}'; canonical columns are: {}",
                    canon::ALL.join(", ")
                ),
            });
        }
    }
    if !(cfg.max_bad_fraction.is_finite() && (0.0..=1.0).contains(&cfg.max_bad_fraction)) {
        return Err(DataError::Config {
            what: "max bad fraction",
            message: format!("must be within 0..=1, got {}", cfg.max_bad_fraction),
        });
    }
    if cfg.chunk_rows == 0 || cfg.read_rows == 0 {
        return Err(DataError::Config {
            what: "chunk rows",
            message: format!(
                "chunk_rows ({}) and read_rows ({}) must be at least 1",
                cfg.chunk_rows, cfg.read_rows
            ),
        });
    }
    if let Some(s) = &cfg.filter.split {
        s.validate()?;
    }
    if let (Some(a), Some(b)) = (cfg.filter.since_ms, cfg.filter.before_ms) {
        if a >= b {
            return Err(DataError::Config {
                what: "time filter",
                message: format!("since ({a} ms) must be before before ({b} ms)"),
            });
        }
    }
    Ok(())
}

pub(super) fn resolve_columns(
    cfg: &IngestConfig,
    path: &Path,
    schema: &Schema,
) -> Result<FileColumns, DataError> {
    let missing = |canonical: &str, column: &str| DataError::MissingColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
        canonical: canonical.to_string(),
        available: available(schema),
    };
    let wrong = |column: &str, expected: &str, found: &DataType| DataError::WrongType {
        path: path.to_path_buf(),
        column: column.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    };
    const KEY_TYPES: &str = "an integer, float or string column";
    // Required key-like columns.
    let required = |canonical: &str| -> Result<String, DataError> {
        let src = cfg.source(canonical);
        let dt = schema.get(&src).ok_or_else(|| missing(canonical, &src))?;
        if !key_type_ok(dt) {
            return Err(wrong(&src, KEY_TYPES, dt));
        }
        Ok(src)
    };
    // Optional: used when mapped (then it must exist) or when present under its own name.
    let optional = |canonical: &str, text_only: bool| -> Result<Option<String>, DataError> {
        let src = cfg.source(canonical);
        match schema.get(&src) {
            None if cfg.columns.contains_key(canonical) => Err(missing(canonical, &src)),
            None => Ok(None),
            Some(dt) => {
                if text_only && !is_text_like(dt) {
                    Err(wrong(&src, "a string column", dt))
                } else if !key_type_ok(dt) {
                    Err(wrong(&src, KEY_TYPES, dt))
                } else {
                    Ok(Some(src))
                }
            }
        }
    };
    let customer = required(canon::CUSTOMER_ID)?;
    let size = required(canon::SIZE)?;
    let outcome = if cfg.require_outcome {
        Some(required(canon::OUTCOME)?)
    } else {
        optional(canon::OUTCOME, false)?
    };
    let product = optional(canon::PRODUCT_ID, false)?;
    let brand = optional(canon::BRAND, false)?;
    let category = optional(canon::CATEGORY, false)?;
    let size_system = optional(canon::SIZE_SYSTEM, true)?;
    let ts_src = cfg.source(canon::TIMESTAMP);
    let timestamp = match schema.get(&ts_src) {
        None if cfg.columns.contains_key(canon::TIMESTAMP) => {
            return Err(missing(canon::TIMESTAMP, &ts_src))
        }
        None => None,
        Some(dt) => match ts_kind(dt) {
            Some(k) => Some((ts_src, k)),
            None => {
                return Err(wrong(
                    &ts_src,
                    "a datetime, date, integer (epoch seconds) or ISO-8601 string column",
                    dt,
                ))
            }
        },
    };
    if timestamp.is_none() && (cfg.filter.since_ms.is_some() || cfg.filter.before_ms.is_some()) {
        return Err(DataError::Config {
            what: "time filter",
            message: format!(
                "{}: --since/--before need a timestamp column; map one with --col timestamp=<column> (the file has: {})",
                path.display(),
                available(schema)
            ),
        });
    }
    let mut features = Vec::new();
    for f in &cfg.customer_features {
        let dt = schema
            .get(f)
            .ok_or_else(|| missing("customer feature", f))?;
        if !(dt.is_primitive_numeric() || is_text_like(dt)) {
            return Err(wrong(
                f,
                "a numeric, string or boolean column (customer feature)",
                dt,
            ));
        }
        features.push(f.clone());
    }
    Ok(FileColumns {
        customer,
        size,
        outcome,
        product,
        brand,
        category,
        size_system,
        timestamp,
        features,
    })
}
