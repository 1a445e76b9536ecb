//! The second stage's prediction caches, built once per `Predictor` from a
//! [`Stack`](super::Stack): the learner's standardisation folded into its coefficients,
//! level features per product and product in size.

use super::data::Folded;
use super::rates::LevelFeatures;

/// What prediction with a [`Stack`](super::Stack) reads besides its stored data, built once per
/// `Predictor` (`Predictor::prepare_stage`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreparedStage {
    /// The purchase learner's coefficients on raw features.
    pub purchase: Folded,
    /// Level features per product and per product-in-size.
    pub levels: StackCache,
}

/// Level features cached for fast prediction (part of a [`PreparedStage`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackCache {
    /// Level features per product (its own brand and category, no size).
    pub product: Vec<LevelFeatures>,
    /// Level features per product-in-size (its product's brand and category).
    pub article_size: Vec<LevelFeatures>,
}
