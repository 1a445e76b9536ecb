//! Errors of the data layer: reading files, mapping columns, and rejecting bad input.

use std::path::PathBuf;

/// Everything that can go wrong while reading events.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Polars failed to scan or decode a file.
    #[error("{path}: could not read: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What polars said.
        message: String,
    },
    /// No input file matched.
    #[error("no input files match '{0}' (expected a .parquet, .csv, .ndjson/.jsonl file, optionally .gz, a directory of them, or a glob)")]
    NoInput(String),
    /// A file has an extension we do not read.
    #[error("{0}: unsupported file type (expected .parquet, .csv, .csv.gz, .ndjson, .jsonl, .json, .ndjson.gz)")]
    UnsupportedFormat(PathBuf),
    /// A required column is missing.
    #[error("{path}: missing column '{column}' (canonical '{canonical}'); the file has: {available}. Map it with --col {canonical}=<source column>")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The source column looked for.
        column: String,
        /// The canonical column it feeds.
        canonical: String,
        /// Columns the file does have, comma-separated.
        available: String,
    },
    /// A column has a type we cannot use.
    #[error("{path}: column '{column}' has type {found}, expected {expected}")]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// What was expected.
        expected: String,
        /// What the file has.
        found: String,
    },
    /// Too many bad rows: ingest refuses to train on a broken file.
    #[error("{bad} of {total} rows are bad ({pct:.2}%), above --max-bad-fraction {max_pct:.2}%:\n{summary}")]
    TooManyBadRows {
        /// Bad rows.
        bad: u64,
        /// Rows read.
        total: u64,
        /// Bad rows as a percentage.
        pct: f64,
        /// The limit as a percentage.
        max_pct: f64,
        /// Per-reason summary with example row numbers.
        summary: String,
    },
    /// An invalid option (column mapping, outcome map, split, ...).
    #[error("invalid {what}: {message}")]
    Config {
        /// Which option.
        what: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Writing a file failed.
    #[error("{path}: could not write: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
