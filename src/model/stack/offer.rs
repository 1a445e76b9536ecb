//! The [`Regime::Offer`](super::Regime::Offer) calibration applied: probabilities of a size on offer from the
//! structural ones, without reordering the sizes of one product for one shopper.

use super::data::OfferCalibration;
use super::features::{features, StackInput};
use super::rates::P_FLOOR;

/// The two logits of an [`OfferCalibration`], summed feature by feature.
pub(super) struct OfferSum<'c> {
    calibration: &'c OfferCalibration,
    fit: f64,
    split: f64,
    /// Next coefficient of the fit logit (it skips feature 2).
    k: usize,
}

impl OfferSum<'_> {
    /// Add raw feature `j` of value `v`.
    #[inline]
    fn add(&mut self, j: usize, v: f64) {
        let c = self.calibration;
        let sp = &c.spec;
        let (Some(mean), Some(scale), Some(lo), Some(hi), Some(w)) = (
            sp.mean.get(j),
            sp.scale.get(j),
            sp.lo.get(j),
            sp.hi.get(j),
            c.split.get(j),
        ) else {
            return;
        };
        let z = ((v - mean) / scale).clamp(*lo, *hi);
        self.split += w * z;
        if j != 2 {
            if let Some(f) = c.fit.get(self.k) {
                self.fit += f * z;
            }
            self.k += 1;
        }
    }
}

/// An [`OfferCalibration`]'s two logits summed over the features after the first three
/// (which are the same for every size of one product for one shopper with the default
/// feature groups, see [`OfferCalibration::size_invariant_tail`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OfferTail {
    fit: f64,
    split: f64,
}

impl OfferCalibration {
    /// Probabilities `[small, fit, large]` for raw inputs (the structural ones if the
    /// calibration does not fit its feature map).
    pub fn predict(&self, x: &StackInput<'_>) -> [f64; 3] {
        match self.tail(x) {
            Some(tail) => self.predict_with(x, tail),
            None => x.probs,
        }
    }

    /// Whether its features after the first three depend only on the product, its brand
    /// and category, and the shopper — not on the size (true for the default offer groups,
    /// [`FeatureSet::OFFER`](super::FeatureSet::OFFER)): then [`OfferCalibration::tail`] of one size of a product
    /// serves every size of it.
    pub fn size_invariant_tail(&self) -> bool {
        let s = self.spec.set;
        !(s.gap
            || s.article_size
            || s.interactions
            || s.shape
            || s.label
            || s.pairs
            || s.neighbours
            || s.history)
    }

    /// The two logits summed over the raw features after the first three (`None` when
    /// the calibration does not fit its feature map).
    pub fn tail(&self, x: &StackInput<'_>) -> Option<OfferTail> {
        let sp = &self.spec;
        let p = sp.mean.len();
        if p < 3 || self.fit.len() + 1 != p || self.split.len() != p {
            return None;
        }
        // the features as they come, without a row buffer; feature 3 is the fit
        // logit's coefficient 2 (it skips feature 2)
        let mut sum = OfferSum {
            calibration: self,
            fit: 0.0,
            split: 0.0,
            k: 2,
        };
        let mut j = 0usize;
        features(sp, x, &mut |v| {
            if j >= 3 {
                sum.add(j, v);
            }
            j += 1;
        });
        (j == p).then_some(OfferTail {
            fit: sum.fit,
            split: sum.split,
        })
    }

    /// Probabilities `[small, fit, large]` for raw inputs whose features after the first
    /// three sum to `tail`: the first three (1, the structural fit logit, the
    /// small-vs-large log-odds; see `offer_features`) from the structural probabilities.
    pub fn predict_with(&self, x: &StackInput<'_>, tail: OfferTail) -> [f64; 3] {
        let pr = x.probs;
        // as `features` writes them ...
        let lf = pr[1].max(P_FLOOR).ln();
        let ls = pr[0].max(P_FLOOR).ln() - lf;
        let ll = pr[2].max(P_FLOOR).ln() - lf;
        // ... and `offer_features` replaces them
        let m = ls.max(ll);
        let head = [1.0, -(m + ((ls - m).exp() + (ll - m).exp()).ln()), ls - ll];
        let mut sum = OfferSum {
            calibration: self,
            fit: 0.0,
            split: 0.0,
            k: 0,
        };
        for (i, &h) in head.iter().enumerate() {
            sum.add(i, h);
        }
        let pf = crate::model::math::sigmoid(sum.fit + tail.fit);
        let q = crate::model::math::sigmoid(sum.split + tail.split);
        let out = [(1.0 - pf) * q, pf, (1.0 - pf) * (1.0 - q)];
        if out.iter().all(|v| v.is_finite()) {
            out
        } else {
            x.probs
        }
    }
}
