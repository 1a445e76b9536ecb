//! Fitting the offer calibration ([`OfferCalibration`]): two binary logistic
//! regressions (fit vs misfit, small vs large) with penalties by evidence (default) or
//! cross-validation.

use super::design::{in_cv, standardised_design, Rows};
use super::evidence::{search_by_evidence, PathPoint};
use super::gram::symmetric_gram;
use super::inputs::TrainingInputs;
use super::minimise::{minimise, Quadratic, Start};
use super::newton::{add_ridge, dot, Need, Penalty, CHUNK};
use super::params::StackParams;
use super::{CV_TOL, FINAL_TOL};
use crate::model::stack::{offer_features, FeatureSet, FeatureSpec, OfferCalibration, Select};
use crate::model::ModelError;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Sums of a penalised binary logistic regression over `rows` (indices into `x`, `p`
/// columns, `cols` of them used): log loss, gradient, Hessian.
pub(super) struct BinaryFit<'a> {
    pub(super) x: &'a [f64],
    pub(super) p: usize,
    pub(super) cols: &'a [usize],
    pub(super) y: &'a [bool],
    /// Most rows whose second derivatives enter a Hessian (0 = all): above it, an even
    /// spread of them, scaled up (as [`StackParams::hess_rows`] for the purchase learner;
    /// gradients and objectives use every row, so the optimum is the same).
    pub(super) hess_rows: usize,
}

impl BinaryFit<'_> {
    /// Log loss, gradient and Hessian over `rows` at `beta`, as `need` asks: `Value`
    /// leaves the Hessian empty (a `q` gradient instead of `q²` work per row), `Hessian`
    /// visits only its sampled rows (log loss and gradient come back zero).
    pub(super) fn sums(&self, rows: &[u32], beta: &[f64], need: Need) -> (f64, Vec<f64>, Vec<f64>) {
        let hessian = need != Need::Value;
        let value = need != Need::Hessian;
        let q = self.cols.len();
        let hq = if hessian { q } else { 0 };
        let stride = if self.hess_rows == 0 {
            1
        } else {
            rows.len().div_ceil(self.hess_rows).max(1)
        };
        // the coefficients over every design column (0 on the unused ones): a row is
        // read in place, and only a Hessian row's used columns are gathered
        let p = self.p;
        let mut beta_all = vec![0.0; p];
        for (&c, &b) in self.cols.iter().zip(beta) {
            beta_all[c] = b;
        }
        let parts: Vec<(f64, Vec<f64>, Vec<f64>, usize)> = rows
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(ci, chunk)| {
                let (mut nll, mut g, mut h) = (0.0, vec![0.0; p], vec![0.0; hq * hq]);
                let mut hn = 0;
                // the chunk's Hessian rows (used columns, f32) and weights, multiplied
                // out at the end as one symmetric Gram product (as the purchase
                // learner's Hessian: f32 only shapes the steps and the evidence's
                // log-determinant, the gradient and objective stay in f64)
                let (mut hz, mut hw): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
                for (pos, &i) in chunk.iter().enumerate() {
                    let in_hessian = hq > 0 && (ci * CHUNK + pos).is_multiple_of(stride);
                    if !value && !in_hessian {
                        continue;
                    }
                    let i = i as usize;
                    let row = &self.x[i * p..(i + 1) * p];
                    let eta = dot(row, &beta_all);
                    let pr = crate::model::math::sigmoid(eta);
                    if value {
                        let yi = self.y[i];
                        nll -= if yi { pr } else { 1.0 - pr }.max(1e-300).ln();
                        let r = pr - f64::from(u8::from(yi));
                        for (gj, &v) in g.iter_mut().zip(row) {
                            *gj += r * v;
                        }
                    }
                    if !in_hessian {
                        continue;
                    }
                    hz.extend(self.cols.iter().map(|&c| row[c] as f32));
                    hw.push((pr * (1.0 - pr)) as f32);
                    hn += 1;
                }
                if let Ok(z) = ArrayView2::from_shape((hw.len(), hq), &hz[..]) {
                    let mut zw = z.to_owned();
                    for (mut r, &w) in zw.rows_mut().into_iter().zip(&hw) {
                        r *= w;
                    }
                    let gram = symmetric_gram(zw.view(), z);
                    for (a, &b) in h.iter_mut().zip(gram.iter()) {
                        *a += f64::from(b);
                    }
                }
                // the gradient of the used columns
                let g = self.cols.iter().map(|&c| g[c]).collect();
                (nll, g, h, hn)
            })
            .collect();
        let mut total = (0.0, vec![0.0; q], vec![0.0; hq * hq]);
        let mut hn = 0;
        for (n, g, h, k) in &parts {
            total.0 += n;
            total.1.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            total.2.iter_mut().zip(h).for_each(|(a, b)| *a += b);
            hn += k;
        }
        if hn > 0 && hn < rows.len() {
            let up = rows.len() as f64 / hn as f64;
            total.2.iter_mut().for_each(|h| *h *= up);
        }
        total
    }

    /// Penalised Newton fit (column 0, the intercept, unpenalised) from `start` (zeros
    /// when its length is not the column count), at most `max_iter` steps, stopping at a
    /// step that gains less than `tol` of the objective. `start_hessian`: the loss
    /// Hessian at `start` over the same rows when known ([`BinaryFit::evidence`] of the
    /// previous fit of a penalty path): the first step then computes none.
    pub(super) fn fit(
        &self,
        rows: &[u32],
        (lambda, start, start_hessian): (f64, Vec<f64>, Option<&[f64]>),
        (max_iter, tol): (usize, f64),
    ) -> Result<Vec<f64>, ModelError> {
        let q = self.cols.len();
        let pen = Penalty::Binary;
        let diag = |j: usize| pen.ridge(j, lambda);
        let eval = |b: &[f64], need: Need| {
            let (nll, mut grad, mut hess) = self.sums(rows, b, need);
            for j in 1..q.min(grad.len()) {
                grad[j] += lambda * b[j];
            }
            if need != Need::Value {
                add_ridge(&mut hess, q, diag);
            }
            Quadratic {
                obj: nll + pen.value(b, lambda),
                grad,
                hess,
            }
        };
        let start = if start.len() == q {
            let hess = start_hessian.filter(|h| h.len() == q * q).map(|h| {
                let mut h = h.to_vec();
                add_ridge(&mut h, q, diag);
                h
            });
            Start { beta: start, hess }
        } else {
            vec![0.0; q].into()
        };
        Ok(minimise(start, (max_iter, tol), "offer calibration", eval)?.beta)
    }

    /// The fit with penalty `lambda` on `rows` at its optimum `beta`, with its log
    /// evidence, loss and loss Hessian there ([`PathPoint::at`]): one pass over the rows.
    pub(super) fn evidence(&self, rows: &[u32], beta: Vec<f64>, lambda: f64) -> PathPoint {
        let (loss, _, loss_hess) = self.sums(rows, &beta, Need::All);
        PathPoint::at(Penalty::Binary, lambda, beta, (loss, loss_hess))
    }
}

impl StackParams {
    /// Fit the offer calibration on `rows` (offer-regime inputs of the training events);
    /// penalties by cross-validation by customer. `None` when the weight on the
    /// structural fit logit does not come out positive (the calibration could then
    /// reorder sizes).
    pub(super) fn fit_offer(
        &self,
        inputs: &TrainingInputs,
        rows: Rows<'_>,
        set: FeatureSet,
    ) -> Result<Option<OfferCalibration>, ModelError> {
        let spec = FeatureSpec {
            set,
            gap_knots: self.gap_knots.clone(),
            label_knots: Vec::new(),
            body_dim: inputs.body_dim,
            mean: Vec::new(),
            scale: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
        };
        let (x, spec) = standardised_design(inputs, rows, spec, offer_features);
        let p = spec.mean.len();
        let fit_cols: Vec<usize> = (0..p).filter(|&j| j != 2).collect();
        let all_cols: Vec<usize> = (0..p).collect();
        let is_fit: Vec<bool> = inputs.classes.iter().map(|&c| c == 1).collect();
        let is_small: Vec<bool> = inputs.classes.iter().map(|&c| c == 0).collect();
        let fit_model = BinaryFit {
            x: &x,
            p,
            cols: &fit_cols,
            y: &is_fit,
            hess_rows: self.hess_rows,
        };
        let split_model = BinaryFit {
            x: &x,
            p,
            cols: &all_cols,
            y: &is_small,
            hess_rows: self.hess_rows,
        };
        let k = self.folds.max(1) as u64;
        let n = rows.len();
        // rows outside the cross-validation sample are in no fold (u64::MAX)
        let fold: Vec<u64> = inputs
            .group
            .iter()
            .map(|&g| {
                if in_cv(g, n, self.cv_rows) {
                    g % k
                } else {
                    u64::MAX
                }
            })
            .collect();
        let misfit = |i: usize| inputs.classes[i] != 1;
        let pick = |keep: &dyn Fn(usize) -> bool| -> Vec<u32> {
            (0..n).filter(|&i| keep(i)).map(|i| i as u32).collect()
        };
        // penalties by held-out log loss of each part: strongest first, each fold's fit
        // warm-started from its fit at the previous penalty; a part stops at the first
        // rise of its held-out loss (the loss along a ridge path has one minimum)
        let models = [&fit_model, &split_model];
        let mut best = [(f64::INFINITY, self.lambdas[0]); 2];
        let mut best_start: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        // the chosen fits when the search already fitted them on all their rows
        let mut chosen: [Option<Vec<f64>>; 2] = [None, None];
        let part_all = |part: usize| pick(&|i| part == 0 || misfit(i));
        if self.select == Select::Evidence && self.lambdas.len() > 1 {
            // per part: the middle penalty, then those the fits predict more evidence
            // for, each from the fit it was predicted from and its Hessian
            // (`evidence::search_by_evidence`); on the search sample of customers
            // when there are more rows (the chosen penalty is a prior precision; see
            // `fit_learner_by_evidence`)
            for (part, model) in models.iter().enumerate() {
                let rows = pick(&|i| fold[i] != u64::MAX && (part == 0 || misfit(i)));
                let (fits, at) = search_by_evidence(
                    &self.lambdas,
                    Penalty::Binary,
                    |lambda, from| {
                        let (start, hess) = match from {
                            Some(f) => (f.beta.clone(), Some(&f.loss_hess[..])),
                            None => (Vec::new(), None),
                        };
                        let b =
                            model.fit(&rows, (lambda, start, hess), (self.max_iter, FINAL_TOL))?;
                        let point = model.evidence(&rows, b, lambda);
                        tracing::debug!(target: "runsize::stack", part, lambda, evidence = point.evidence, "offer calibration penalty");
                        Ok(point)
                    },
                )?;
                if let Some(f) = fits.into_iter().nth(at) {
                    best[part] = (-f.evidence.unwrap_or(f64::NEG_INFINITY), f.lambda);
                    chosen[part] = Some(f.beta);
                }
                // per event of the sample (the split part's loss is over its misfits:
                // the two add up to a three-class loss per event)
                best[part].0 /= fold.iter().filter(|&&f| f != u64::MAX).count().max(1) as f64;
                if rows.len() < part_all(part).len() {
                    // a sample: the fit on every row starts from the chosen one
                    best_start[part] = chosen[part].take().unwrap_or_default();
                }
            }
        } else if k > 1 && self.lambdas.len() > 1 {
            let mut lambdas = self.lambdas.clone();
            lambdas.sort_by(|a, b| b.total_cmp(a));
            // per part: training and held-out rows of each fold (the split part sees
            // misfits only)
            let part_rows = |part: usize, held: bool, f: u64| {
                pick(&|i| {
                    let in_fold = if held {
                        fold[i] == f
                    } else {
                        fold[i] != f && fold[i] != u64::MAX
                    };
                    in_fold && (part == 0 || misfit(i))
                })
            };
            for (part, model) in models.iter().enumerate() {
                let mut starts: Vec<Vec<f64>> = vec![Vec::new(); k as usize];
                let mut last = f64::INFINITY;
                for (li, &lambda) in lambdas.iter().enumerate() {
                    let mut loss = 0.0;
                    for f in 0..k {
                        let start = super::path_start(&mut starts, f as usize, li == 0);
                        let b = model.fit(
                            &part_rows(part, false, f),
                            (lambda, start, None),
                            (self.max_iter, CV_TOL),
                        )?;
                        loss += model.sums(&part_rows(part, true, f), &b, Need::Value).0;
                        starts[f as usize] = b;
                    }
                    if loss < best[part].0 {
                        best[part] = (loss, lambda);
                        best_start[part] = super::mean_coef(&starts);
                    }
                    if loss > last {
                        break;
                    }
                    last = loss;
                }
            }
        }
        // the criterion per event: the evidence's per row of each part (summed), or
        // the held-out loss over the held-out rows
        let (select, criterion) = if self.select == Select::Evidence && self.lambdas.len() > 1 {
            (Select::Evidence, best[0].0 + best[1].0)
        } else {
            (
                Select::CrossValidation,
                (best[0].0 + best[1].0)
                    / fold.iter().filter(|&&f| f != u64::MAX).count().max(1) as f64,
            )
        };
        // each part's model: the search's own fit, or one on all its rows from the
        // search's start
        let mut fits = Vec::with_capacity(2);
        for (part, (model, chosen)) in models.iter().zip(chosen).enumerate() {
            fits.push(match chosen {
                Some(b) => b,
                None => model.fit(
                    &part_all(part),
                    (best[part].1, std::mem::take(&mut best_start[part]), None),
                    (self.max_iter, FINAL_TOL),
                )?,
            });
        }
        let split = fits.pop().unwrap_or_default();
        let fit = fits.pop().unwrap_or_default();
        if fit.get(1).is_none_or(|&w| w <= 0.0) {
            return Ok(None);
        }
        Ok(Some(OfferCalibration {
            spec,
            fit,
            split,
            lambda: [best[0].1, best[1].1],
            select,
            // infinite when nothing was searched (one penalty)
            criterion,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_fit_recovers_log_odds() {
        // a binary fit on one feature recovers the log-odds: 3 of 4 positive
        let xs = [1.0, 1.0, 1.0, 1.0];
        let ys = [true, true, true, false];
        let b = BinaryFit {
            x: &xs,
            p: 1,
            cols: &[0],
            y: &ys,
            hess_rows: 0,
        }
        // an objective within ~1e-14 of its minimum: coefficients within ~1e-7
        .fit(&[0, 1, 2, 3], (0.0, Vec::new(), None), (50, 1e-14))
        .unwrap();
        assert!((b[0] - 3f64.ln()).abs() < 1e-6, "{b:?}");
    }
}
