//! The model: parameters ([`FitParams`]) and the structural fit (`fit`, internal)
//! producing [`Fitted`] (plain serde data, validated), the versioned artifact
//! ([`artifact`]: load = decode + checksum + validate), and the [`Predictor`] built once
//! from a `Fitted` that answers every question: recommendations for a [`Query`], scoring
//! and evaluation ([`score`], [`eval`]), fit profiles ([`report`]). The second stage is
//! [`stack`] (fitted data and the maths that applies it) and [`stack_fit`] (its fit);
//! per-event maths in [`predict`]; size charts, conversion, flags and offline worth in
//! [`insight`].

pub mod artifact;
pub mod eval;
pub(crate) mod features;
pub(crate) mod fit;
pub mod fitdata;
pub mod fitted;
pub mod insight;
pub(crate) mod levels;
pub(crate) mod math;
pub mod memory;
pub(crate) mod params;
pub mod predict;
pub mod predictor;
pub mod query;
pub mod report;
pub mod score;
pub mod stack;
pub mod stack_fit;
pub mod threads;

pub use fit::{
    CustomerOut, CustomerRows, CustomerStart, FitOn, PassContext, PassEngine, PassJob, PassSums,
};
pub use fitted::Fitted;
pub use params::FitParams;
pub use predictor::{Basis, Predictor, RecommendError, RecommendationView, SizeOddsView};
pub use query::Query;

use std::path::PathBuf;

/// Errors of the model layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Invalid hyper-parameter.
    #[error("invalid parameter {0}")]
    Param(String),
    /// Nothing to learn from.
    #[error("no events with a small / fit / large outcome to learn from")]
    NoFitEvents,
    /// Inconsistent input data.
    #[error("inconsistent events: {0}")]
    Data(String),
    /// The fit produced non-finite numbers.
    #[error("fit diverged: {0}")]
    Diverged(String),
    /// Reading or writing an artifact failed.
    #[error("{path}: {message}")]
    Artifact {
        /// The artifact file.
        path: PathBuf,
        /// What went wrong, and what was expected.
        message: String,
    },
    /// A size chart, conversion or flag query that cannot be answered.
    #[error(transparent)]
    Insight(#[from] insight::InsightError),
    /// The model breaks an invariant (non-finite numbers, tables of inconsistent lengths).
    #[error("not a usable model: {0}")]
    Invalid(String),
    /// A linfa estimator refused its data.
    #[error("learner: {0}")]
    Linfa(#[from] linfa::Error),
    /// Evaluation needs outcomes.
    #[error("evaluation needs an outcome column with small / fit / large values")]
    NoOutcomes,
    /// A pass engine (DataFusion plan, Ballista cluster) failed or returned bad sums.
    #[error("pass engine: {0}")]
    Engine(String),
}
