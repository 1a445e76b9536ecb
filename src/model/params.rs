//! Fit hyper-parameters: a validated builder in the linfa style,
//! `FitParams::default().max_iter(30).fit(&events)`.

use super::ModelError;

/// Hyper-parameters of a fit. Every setter documents its default.
#[derive(Clone, Debug, PartialEq)]
pub struct FitParams {
    pub(crate) max_iter: usize,
    pub(crate) min_iter: usize,
    pub(crate) tol: f64,
    pub(crate) param_tol: f64,
    pub(crate) warm_param_tol: f64,
    pub(crate) warm_start_events: usize,
    pub(crate) warm_start_per_article_size: usize,
    pub(crate) customer_newton_steps: usize,
    pub(crate) level_sweeps: usize,
    pub(crate) ridge_lambda: f64,
    pub(crate) threads: usize,
    pub(crate) chunk_events: usize,
    pub(crate) learn_dispersion: bool,
    pub(crate) store_customers: bool,
}

impl Default for FitParams {
    fn default() -> Self {
        FitParams {
            max_iter: 40,
            min_iter: 5,
            tol: 1e-5,
            param_tol: 1e-3,
            warm_param_tol: 3e-3,
            warm_start_events: 4_000_000,
            warm_start_per_article_size: 12,
            customer_newton_steps: 1,
            level_sweeps: 4,
            ridge_lambda: 1.0,
            threads: 0,
            chunk_events: 1 << 16,
            learn_dispersion: true,
            store_customers: true,
        }
    }
}

impl FitParams {
    /// Maximum outer iterations (default 40).
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }
    /// Minimum outer iterations before the tolerance may stop the fit (default 5).
    pub fn min_iter(mut self, n: usize) -> Self {
        self.min_iter = n;
        self
    }
    /// Stop when the objective per event changes by less than this, relatively (default 1e-5).
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }
    /// Stop when the article true sizes and fit-band widths move by less than this per
    /// iteration (event-weighted root mean square, in sizes; band widths relative) once
    /// band widths are being learned (default 1e-3).
    pub fn param_tol(mut self, tol: f64) -> Self {
        self.param_tol = tol;
        self
    }

    /// [`FitParams::param_tol`] of a warm-started fit (`fit_from` with a model: the
    /// final fit from cross-fitting's two fold models, `train --init`) (default 3e-3;
    /// never tighter than `param_tol`).
    /// A warm start is already within a few hundredths of a size of the optimum, and its
    /// passes then hover: the final fit at 10M synthetic events moved 0.0282, 0.0019,
    /// 0.0033, 0.0015, 0.0010 sizes per pass, against a spread of product offsets of ±0.25
    /// sizes there (±0.37 on RentTheRunway); held-out accuracy is unchanged (BENCHMARKS.md).
    pub fn warm_param_tol(mut self, tol: f64) -> Self {
        self.warm_param_tol = tol;
        self
    }

    /// Big fits first iterate on a fixed sample of customers holding about this many
    /// events (or [`FitParams::warm_start_per_article_size`] per article-size, if more)
    /// until the parameters settle, then refine on all events; used when there are more
    /// than twice as many fit events; 0 = always use all (default 4,000,000).
    pub fn warm_start_events(mut self, n: usize) -> Self {
        self.warm_start_events = n;
        self
    }

    /// The warm-start sample holds at least this many events per article-size on
    /// average, so rare articles start the full phase near their optimum (default 12;
    /// 0 = `warm_start_events` alone). At 100M synthetic events (853k article-sizes) a
    /// 10M-event sample instead of 4M left 16 full passes to converge instead of 23.
    pub fn warm_start_per_article_size(mut self, n: usize) -> Self {
        self.warm_start_per_article_size = n;
        self
    }

    /// Newton steps per customer per iteration (default 1: customers are warm-started
    /// from the previous iteration; 2 gave the same RTR accuracy and iteration count at
    /// 16% more CPU).
    pub fn customer_newton_steps(mut self, n: usize) -> Self {
        self.customer_newton_steps = n;
        self
    }
    /// Coordinate sweeps over the offset hierarchy per iteration (default 4).
    pub fn level_sweeps(mut self, n: usize) -> Self {
        self.level_sweeps = n;
        self
    }
    /// Ridge penalty of the customer feature model (default 1.0).
    pub fn ridge_lambda(mut self, l: f64) -> Self {
        self.ridge_lambda = l;
        self
    }
    /// Worker threads (default 0 = all cores). Results do not depend on it beyond
    /// floating-point rounding of sums.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }
    /// Target events per work chunk (default 65,536).
    pub fn chunk_events(mut self, n: usize) -> Self {
        self.chunk_events = n;
        self
    }
    /// Learn per-brand / category / product fit-band widths (default true).
    pub fn learn_dispersion(mut self, on: bool) -> Self {
        self.learn_dispersion = on;
        self
    }
    /// Keep the customer table in the model (default true).
    pub fn store_customers(mut self, on: bool) -> Self {
        self.store_customers = on;
        self
    }

    /// Check the parameters.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |name: &str, why: &str| Err(ModelError::Param(format!("{name}: {why}")));
        if self.max_iter == 0 {
            return bad("max_iter", "must be at least 1");
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return bad("tol", "must be a positive number");
        }
        if !(self.param_tol.is_finite() && self.param_tol > 0.0) {
            return bad("param_tol", "must be a positive number");
        }
        if !(self.warm_param_tol.is_finite() && self.warm_param_tol > 0.0) {
            return bad("warm_param_tol", "must be a positive number");
        }
        if self.customer_newton_steps == 0 {
            return bad("customer_newton_steps", "must be at least 1");
        }
        if self.level_sweeps == 0 {
            return bad("level_sweeps", "must be at least 1");
        }
        if !(self.ridge_lambda.is_finite() && self.ridge_lambda >= 0.0) {
            return bad("ridge_lambda", "must be >= 0");
        }
        if self.chunk_events == 0 {
            return bad("chunk_events", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_bad_values() {
        assert!(FitParams::default().validate().is_ok());
        assert!(FitParams::default().max_iter(0).validate().is_err());
        assert!(FitParams::default().tol(-1.0).validate().is_err());
        assert!(FitParams::default().tol(f64::NAN).validate().is_err());
        assert!(FitParams::default().ridge_lambda(-0.1).validate().is_err());
        assert!(FitParams::default().warm_param_tol(0.0).validate().is_err());
        assert!(FitParams::default()
            .warm_param_tol(f64::NAN)
            .validate()
            .is_err());
    }
}
