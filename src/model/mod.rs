//! The model: parameters ([`FitParams`]), the fit ([`fit`]), the fitted [`Model`],
//! prediction maths ([`predict`]), batch scoring and evaluation ([`eval`]), brand
//! reports ([`report`]), size charts, conversion, flags and offline worth ([`insight`]),
//! the second stage ([`stack`]) and the versioned artifact ([`artifact`]).

pub mod artifact;
pub mod eval;
pub mod features;
pub mod fit;
pub mod fitdata;
pub mod fitted;
pub mod insight;
pub mod levels;
pub mod math;
pub mod params;
pub mod predict;
pub mod recommend;
pub mod report;
pub mod score;
pub mod stack;

pub use fitted::Model;
pub use params::FitParams;

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
    /// Evaluation needs outcomes.
    #[error("evaluation needs an outcome column with small / fit / large values")]
    NoOutcomes,
}
