//! The fit on Apache DataFusion plans, run in-process (`--engine datafusion`) or on an
//! Apache Ballista cluster (`--engine ballista`), behind the cargo feature `distributed`.
//!
//! Each iteration's pass is one plan: the prepared events (Parquet: customer,
//! article-size, outcome, written once by the driver) joined with the visited customers'
//! warm starts (Parquet, written by the driver per pass), grouped by customer through
//! the aggregate `runsize_customer` (the local pass's kernel: Newton steps, then the
//! per-event leave-one-out terms), whose per-customer results the aggregate
//! `runsize_sum` sums by article-size and globally. The driver collects the one row,
//! runs the existing quadratic solve and empirical-Bayes updates, and sends the next
//! parameters (a small file, read by the aggregates by path) with the next plan.

mod buffer;
pub mod cluster;
pub mod engine;
pub mod prepared;
pub mod udaf;

pub use engine::{EngineKind, PassStat, PlanEngine};

/// Largest gRPC / Arrow Flight message the driver, the executors' shuffle reads and
/// their Flight servers accept: 1 GiB (Ballista's default is 16 MiB). A pass's partial
/// sums travel as one row of about 160 bytes per article-size (10M synthetic events:
/// 198k article-sizes, a 31.8 MB row), so the default would cap the catalogue near 100k
/// article-sizes; 1 GiB allows about 6.7M.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

use crate::model::ModelError;

/// Errors of the distributed engines.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// DataFusion planning or execution failed.
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Ballista (scheduler, executor) failed.
    #[error("ballista: {0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    /// Reading or writing the engine's files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Writing Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// Arrow (building batches) failed.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// The fit's side (decoding sums, parameters).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A setting or address that cannot work.
    #[error("{0}")]
    Config(String),
}

impl From<DistError> for ModelError {
    fn from(e: DistError) -> ModelError {
        match e {
            DistError::Model(m) => m,
            other => ModelError::Engine(other.to_string()),
        }
    }
}
