//! Ingest: Parquet, CSV and NDJSON (optionally gzip) from a file, directory or glob, into
//! the compact [`Events`] table: column mapping, dictionary encoding of keys, size-label and
//! outcome parsing (each distinct value once), bad-row accounting, row filters (split / time
//! window) and per-customer features.
//!
//! # How a file is read
//! Each file's schema comes from a lazy polars scan; only the needed columns are read.
//! Parquet is decoded with polars' in-memory reader in units of whole row groups (about
//! [`IngestConfig::read_rows`] rows) on a helper thread, one unit ahead; CSV and NDJSON
//! (gzip included) stream through polars' streaming engine (`sink_batches`). Either way
//! the rows arrive in batches of [`IngestConfig::chunk_rows`], so peak memory is the
//! compact [`Events`] table plus a few batches. Every batch is checked row by row; good
//! rows are appended to [`Events`], bad rows are counted by reason.
//!
//! # Memory
//! Keys are stored once, in compact [`Dict`]s (integer ids as `i64`, text in one arena),
//! indexed by `u32`-only hash tables; repeated strings are recognised by their Arrow view
//! (no hashing of the text per row); row numbers cost nothing when every row is kept
//! ([`super::schema::RowIds`]). At 100M synthetic events (50M customers) the table is
//! about 3 GB (21 bytes per event plus 8 bytes and three features per customer).
//!
//! # Customer features
//! Feature columns are row-level in the file, but [`Events::features`] holds one value per
//! customer: the **last non-null value** seen for that customer among the kept rows, in file
//! order (files in the order of [`list_inputs`]). Integer and float columns become numeric
//! features (`f32`, NaN when unknown); string, categorical and boolean columns become
//! categorical features with levels in order of first appearance.
//!
//! # Rooms
//! [`config`](IngestConfig) and filters, the report, input discovery (`files`), column
//! resolution (`columns`), readers (`read`), column views (`view`), encoders (`encode`),
//! customer features (`features`), timestamps (`time`) and the builder that turns batches into events (`builder`); this file runs them in order.

use super::labels::parse_size;
use super::outcome::OutcomeMap;
use super::schema::{
    col as canon, CategoricalFeature, CustomerFeatures, Dict, Events, NumericFeature, Outcome,
    SizeLabel, SizeSystem, NONE,
};
use super::DataError;
use crate::data::dict::{float_text, IndexedDict};
use foldhash::fast::FixedState;
use polars::prelude::{
    ChunkedArray, Column, DataFrame, DataType, Engine, Float64Chunked, HiveOptions, Int64Chunked,
    LazyCsvReader, LazyFileListReader, LazyFrame, LazyJsonLineReader, ParquetReader, PlRefPath,
    PlanCallback, PolarsDataType, PolarsError, PolarsNumericType, ScanArgsParquet, Schema,
    SchemaRef, SerReader, StringChunked, StringType, TimeUnit,
};
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

mod builder;
mod columns;
mod config;
mod encode;
mod features;
mod files;
mod read;
mod report;
mod time;
mod view;

use self::builder::*;
use self::columns::*;
pub use self::config::*;
use self::encode::*;
use self::features::*;
pub use self::files::{detect_format, list_inputs, InputFormat};
use self::read::*;
pub use self::report::*;
pub use self::time::parse_timestamp_ms;
use self::time::*;
use self::view::*;

/// Read events as configured: list the inputs, stream every file in order through the
/// row checks and encoders, and return the events with a report.
///
/// Errors: [`DataError::NoInput`] / [`DataError::UnsupportedFormat`] for the inputs,
/// [`DataError::MissingColumn`] / [`DataError::WrongType`] for a file's columns,
/// [`DataError::Read`] for unreadable files, [`DataError::TooManyBadRows`] when bad rows
/// exceed `max_bad_fraction` of the rows checked, [`DataError::Config`] for invalid options,
/// a time filter without a timestamp column, or input without any data row.
pub fn ingest(cfg: &IngestConfig) -> Result<Ingested, DataError> {
    let started = Instant::now();
    validate_config(cfg)?;
    let files = list_inputs(&cfg.inputs)?;
    let cfg = &with_optional_features(cfg, &files)?;
    let mut builder = Builder::new(cfg);
    for path in &files {
        let mut lf = scan_file(cfg, path)?;
        let schema = guarded(path, || lf.collect_schema())?;
        let cols = resolve_columns(cfg, path, &schema)?;
        builder.start_file(path, &schema, &cols)?;
        let projection: Vec<polars::prelude::Expr> = cols
            .projection()
            .iter()
            .map(|c| polars::prelude::col(c.as_str()))
            .collect();
        let mut file_row0 = 0u64;
        let each = |df: DataFrame| {
            let batch = Batch {
                df: &df,
                path,
                cols: &cols,
                file_row0,
            };
            builder.process(&batch)?;
            file_row0 += df.height() as u64;
            Ok(())
        };
        if detect_format(path)? == InputFormat::Parquet {
            read_parquet_units(path, &cols.projection(), cfg, each)?;
        } else {
            stream_batches(lf.select(projection), cfg.chunk_rows, path, each)?;
        }
    }
    builder.finish(started)
}

/// `cfg` with its optional customer features that every file in `files` has added to
/// its listed ones (the others are left out, with a warning: they score as unknown).
/// The check reads each file's schema only.
fn with_optional_features<'c>(
    cfg: &'c IngestConfig,
    files: &[std::path::PathBuf],
) -> Result<std::borrow::Cow<'c, IngestConfig>, DataError> {
    let wanted: Vec<&String> = (cfg.optional_customer_features.iter())
        .filter(|f| !cfg.customer_features.contains(f))
        .collect();
    if wanted.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(cfg));
    }
    let mut present = vec![true; wanted.len()];
    for path in files {
        let mut lf = scan_file(cfg, path)?;
        let schema = guarded(path, || lf.collect_schema())?;
        for (p, f) in present.iter_mut().zip(&wanted) {
            if schema.get(f.as_str()).is_none() {
                if *p {
                    tracing::warn!(
                        target: "runsize::ingest",
                        feature = f.as_str(),
                        file = %path.display(),
                        "the model's body feature is not a column of this file: scored as unknown"
                    );
                }
                *p = false;
            }
        }
    }
    let mut out = cfg.clone();
    out.customer_features.extend(
        wanted
            .iter()
            .zip(&present)
            .filter(|(_, &p)| p)
            .map(|(f, _)| (*f).clone()),
    );
    Ok(std::borrow::Cow::Owned(out))
}

/// Read all input files completely (every column, files concatenated in order) together
/// with the events, for batch prediction: `events.row.get(i)` is the index of the event's row
/// in the returned frame. All files must have the same columns and types. Row filters are
/// not allowed here ([`DataError::Config`]).
pub fn ingest_with_frame(cfg: &IngestConfig) -> Result<(DataFrame, Ingested), DataError> {
    let started = Instant::now();
    validate_config(cfg)?;
    if !cfg.filter.is_empty() {
        return Err(DataError::Config {
            what: "row filter",
            message: "row filters (--split/--since/--before) cannot be used when the full input frame is returned".into(),
        });
    }
    let files = list_inputs(&cfg.inputs)?;
    let cfg = &with_optional_features(cfg, &files)?;
    let mut builder = Builder::new(cfg);
    let mut frame: Option<DataFrame> = None;
    for path in &files {
        let mut lf = scan_file(cfg, path)?;
        let schema = guarded(path, || lf.collect_schema())?;
        let cols = resolve_columns(cfg, path, &schema)?;
        builder.start_file(path, &schema, &cols)?;
        let df = guarded(path, || lf.collect())?;
        let mut offset = 0usize;
        let chunk = cfg.chunk_rows.max(1);
        while offset < df.height() {
            let part = df.slice(offset as i64, chunk);
            let batch = Batch {
                df: &part,
                path,
                cols: &cols,
                file_row0: offset as u64,
            };
            builder.process(&batch)?;
            offset += chunk;
        }
        frame = Some(match frame {
            None => df,
            Some(mut acc) => {
                if acc.schema() != df.schema() {
                    return Err(DataError::Config {
                        what: "input files",
                        message: format!(
                            "{}: columns differ from the first file ({} vs {}); batch prediction needs files with the same columns and types",
                            path.display(),
                            available(df.schema()),
                            available(acc.schema())
                        ),
                    });
                }
                acc.vstack_mut_owned(df).map_err(|e| read_err(path, e))?;
                acc
            }
        });
    }
    let ingested = builder.finish(started)?;
    let frame = frame.unwrap_or_default();
    Ok((frame, ingested))
}
