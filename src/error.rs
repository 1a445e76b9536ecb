//! The crate-wide error: one variant per layer, joined with `#[from]`.

/// Any runsize error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or validating events.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Fitting, predicting, or loading a model.
    #[error(transparent)]
    Fitted(#[from] crate::model::ModelError),
    /// Serving.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    /// The distributed engines (DataFusion, Ballista).
    #[cfg(feature = "distributed")]
    #[error(transparent)]
    Distributed(#[from] crate::distributed::DistError),
}
