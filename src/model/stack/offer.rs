//! The [`Regime::Offer`] learner: a calibration of the structural probabilities of the
//! sizes on offer that keeps their order.

use super::*;

/// The learner for [`Regime::Offer`]: calibrates the structural probabilities of a size
/// on offer without reordering the sizes of one product for one shopper.
///
/// `P(fit) = σ(w·z)` where `z` holds the structural `logit P(fit)` and features that do
/// not differ between sizes (product, customer, category / brand rates, body); its
/// weight on the structural logit is positive, so the size with the highest structural
/// fit probability keeps it. `P(small | misfit) = σ(v·z')` adds the structural
/// `ln(P(small) / P(large))`. Learned from observed purchases, size-level features (label
/// position, size rates, gaps) would rank hypothetical sizes by who chose them: on the
/// RentTheRunway valid part an unconstrained learner recommended the rented size of fit
/// events 24% of the time against the structural model's 41%.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfferCalibration {
    /// Feature map (its `set` picks the size-invariant groups; the first three raw
    /// features are 1, the structural fit logit and the small-vs-large log-odds).
    pub spec: FeatureSpec,
    /// Coefficients of `P(fit)` on the standardised features less the third.
    pub fit: Vec<f64>,
    /// Coefficients of `P(small | misfit)` on all standardised features.
    pub split: Vec<f64>,
    /// Ridge penalties chosen for the two.
    pub lambda: [f64; 2],
    /// Cross-validated log loss per event of the three-class probabilities.
    pub cv_log_loss: f64,
}

/// The raw offer features: [`features`] with the structural log-odds replaced by the
/// fit logit and the small-vs-large log-odds.
pub(super) fn offer_features(spec: &FeatureSpec, x: &StackInput<'_>, out: &mut Vec<f64>) {
    out.clear();
    features(spec, x, &mut |v| out.push(v));
    if out.len() >= 3 {
        let (ls, ll) = (out[1], out[2]);
        let m = ls.max(ll);
        // logit P(fit) = −ln(P(small)/P(fit) + P(large)/P(fit))
        out[1] = -(m + ((ls - m).exp() + (ll - m).exp()).ln());
        out[2] = ls - ll;
    }
}

/// Sums of a penalised binary logistic regression over `rows` (indices into `x`, `p`
/// columns, `cols` of them used): log loss, gradient, Hessian.
pub(super) struct BinaryFit<'a> {
    pub(super) x: &'a [f64],
    pub(super) p: usize,
    pub(super) cols: &'a [usize],
    pub(super) y: &'a [bool],
}

impl BinaryFit<'_> {
    pub(super) fn sums(&self, rows: &[u32], beta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let q = self.cols.len();
        let parts: Vec<(f64, Vec<f64>, Vec<f64>)> = rows
            .par_chunks(CHUNK)
            .map(|chunk| {
                let (mut nll, mut g, mut h) = (0.0, vec![0.0; q], vec![0.0; q * q]);
                let mut z = vec![0.0; q];
                for &i in chunk {
                    let i = i as usize;
                    let row = &self.x[i * self.p..(i + 1) * self.p];
                    for (zk, &c) in z.iter_mut().zip(self.cols) {
                        *zk = row[c];
                    }
                    let eta: f64 = z.iter().zip(beta).map(|(a, b)| a * b).sum();
                    let pr = crate::model::math::sigmoid(eta);
                    let yi = self.y[i];
                    nll -= if yi { pr } else { 1.0 - pr }.max(1e-300).ln();
                    let r = pr - f64::from(u8::from(yi));
                    let w = pr * (1.0 - pr);
                    for j in 0..q {
                        g[j] += r * z[j];
                        let a = w * z[j];
                        for (hk, &zk) in h[j * q..j * q + q].iter_mut().zip(&z) {
                            *hk += a * zk;
                        }
                    }
                }
                (nll, g, h)
            })
            .collect();
        let mut total = (0.0, vec![0.0; q], vec![0.0; q * q]);
        for (n, g, h) in &parts {
            total.0 += n;
            total.1.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            total.2.iter_mut().zip(h).for_each(|(a, b)| *a += b);
        }
        total
    }

    /// Penalised Newton fit (column 0, the intercept, unpenalised).
    pub(super) fn fit(
        &self,
        rows: &[u32],
        lambda: f64,
        max_iter: usize,
    ) -> Result<Vec<f64>, ModelError> {
        let q = self.cols.len();
        let mut beta = vec![0.0; q];
        let pen = |b: &[f64]| 0.5 * lambda * b.iter().skip(1).map(|v| v * v).sum::<f64>();
        let (nll, mut g, mut h) = self.sums(rows, &beta);
        let mut obj = nll + pen(&beta);
        for _ in 0..max_iter {
            for j in 0..q {
                h[j * q + j] += if j == 0 { 1e-8 } else { lambda.max(1e-8) };
                if j > 0 {
                    g[j] += lambda * beta[j];
                }
            }
            let neg: Vec<f64> = g.iter().map(|v| -v).collect();
            let step =
                crate::model::features::cholesky_solve(&mut h, &neg, q).ok_or_else(|| {
                    ModelError::Diverged("offer calibration: singular Hessian".into())
                })?;
            let Some((cand, (cg, ch), cobj)) = damped_step(&beta, &step, obj, |c| {
                let (cn, cg, ch) = self.sums(rows, c);
                ((cg, ch), cn + pen(c))
            }) else {
                break;
            };
            let gain = obj - cobj;
            (beta, g, h, obj) = (cand, cg, ch, cobj);
            if gain <= 1e-10 * obj.abs().max(1.0) {
                return Ok(beta);
            }
        }
        Ok(beta)
    }
}

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
    /// [`FeatureSet::OFFER`]): then [`OfferCalibration::tail`] of one size of a product
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

impl StackParams {
    /// Fit the offer calibration on `rows` (offer-regime inputs of the training events);
    /// penalties by cross-validation by customer. `None` when the weight on the
    /// structural fit logit does not come out positive (the calibration could then
    /// reorder sizes).
    pub(super) fn fit_offer(
        &self,
        inputs: &TrainingInputs,
        rows: &[StackInput<'static>],
        set: FeatureSet,
    ) -> Result<Option<OfferCalibration>, ModelError> {
        let mut spec = FeatureSpec {
            set,
            gap_knots: self.gap_knots.clone(),
            label_knots: Vec::new(),
            body_dim: inputs.body_dim,
            mean: Vec::new(),
            scale: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
        };
        let p = n_features(&spec);
        let mut x = Vec::with_capacity(rows.len() * p);
        let mut row = Vec::with_capacity(p);
        for (inp, &c) in rows.iter().zip(&inputs.customer) {
            let body = body_of(&inputs.bodies, inputs.body_dim, c);
            offer_features(&spec, &StackInput { body, ..*inp }, &mut row);
            x.extend_from_slice(&row);
        }
        let (mean, scale, lo, hi) = standardise(&mut x, p);
        (spec.mean, spec.scale, spec.lo, spec.hi) = (mean, scale, lo, hi);
        let fit_cols: Vec<usize> = (0..p).filter(|&j| j != 2).collect();
        let all_cols: Vec<usize> = (0..p).collect();
        let is_fit: Vec<bool> = inputs.classes.iter().map(|&c| c == 1).collect();
        let is_small: Vec<bool> = inputs.classes.iter().map(|&c| c == 0).collect();
        let fit_model = BinaryFit {
            x: &x,
            p,
            cols: &fit_cols,
            y: &is_fit,
        };
        let split_model = BinaryFit {
            x: &x,
            p,
            cols: &all_cols,
            y: &is_small,
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
        // penalties by held-out log loss of each part
        let mut best = [(f64::INFINITY, self.lambdas[0]); 2];
        if k > 1 && self.lambdas.len() > 1 {
            for &lambda in &self.lambdas {
                let mut loss = [0.0; 2];
                for f in 0..k {
                    let train_all = pick(&|i| fold[i] != f && fold[i] != u64::MAX);
                    let train_mis = pick(&|i| fold[i] != f && fold[i] != u64::MAX && misfit(i));
                    let bf = fit_model.fit(&train_all, lambda, self.max_iter)?;
                    let bs = split_model.fit(&train_mis, lambda, self.max_iter)?;
                    loss[0] += fit_model.sums(&pick(&|i| fold[i] == f), &bf).0;
                    loss[1] += split_model
                        .sums(&pick(&|i| fold[i] == f && misfit(i)), &bs)
                        .0;
                }
                for (b, l) in best.iter_mut().zip(loss) {
                    if l < b.0 {
                        *b = (l, lambda);
                    }
                }
            }
        }
        let all = pick(&|_| true);
        let fit = fit_model.fit(&all, best[0].1, self.max_iter)?;
        let split = split_model.fit(&pick(&misfit), best[1].1, self.max_iter)?;
        if fit.get(1).is_none_or(|&w| w <= 0.0) {
            return Ok(None);
        }
        Ok(Some(OfferCalibration {
            spec,
            fit,
            split,
            lambda: [best[0].1, best[1].1],
            cv_log_loss: (best[0].0 + best[1].0)
                / fold.iter().filter(|&&f| f != u64::MAX).count().max(1) as f64,
        }))
    }
}
