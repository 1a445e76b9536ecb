//! The evidence that chooses the second stage's penalties ([`Select::Evidence`]): the
//! Laplace approximation to a ridge fit's marginal likelihood, for the purchase learner
//! and the offer calibration's binary fits, and the search over the candidate penalties
//! that it drives ([`search_by_evidence`]).
//!
//! [`Select::Evidence`]: crate::model::stack::Select::Evidence

use super::minimise::Minimum;
use super::newton::{add_ridge, sums_for, Design, DesignElem, FitSpec, Need, Penalty};
use crate::model::ModelError;

/// A ridge fit at its optimum, as the penalty search sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct PathPoint {
    /// The penalty.
    pub(super) lambda: f64,
    /// The coefficients at the optimum.
    pub(super) beta: Vec<f64>,
    /// The log evidence there ([`log_evidence`]; `None` when not defined).
    pub(super) evidence: Option<f64>,
    /// The loss (negative log-likelihood, no penalty) there.
    pub(super) loss: f64,
    /// The loss Hessian there (`q × q`, no penalty; empty when not computed).
    pub(super) loss_hess: Vec<f64>,
}

impl PathPoint {
    /// The fit penalised as `pen` at `lambda`, at its optimum `beta` with the loss and
    /// loss Hessian there: its evidence is [`log_evidence`] of the penalised objective
    /// and Hessian, the free coefficients (intercepts) not counted.
    pub(super) fn at(
        pen: Penalty,
        lambda: f64,
        beta: Vec<f64>,
        (loss, loss_hess): (f64, Vec<f64>),
    ) -> PathPoint {
        let q = beta.len();
        let obj = loss + pen.value(&beta, lambda);
        let mut h = loss_hess.clone();
        add_ridge(&mut h, q, |j| pen.ridge(j, lambda));
        let evidence = log_evidence(obj, &mut h, q, (lambda, pen.count(q)));
        PathPoint {
            lambda,
            beta,
            evidence,
            loss,
            loss_hess,
        }
    }
}

/// A fitted purchase learner at `beta`, with its log evidence, loss and loss Hessian
/// there ([`PathPoint::at`]; the next fit of a penalty path starts from `beta` with the
/// Hessian). One pass over the rows: the objective, and the Hessian on its row sample.
pub fn logit_evidence<E: DesignElem>(
    d: &Design<'_, E>,
    spec: &FitSpec<'_>,
    beta: &[f64],
) -> PathPoint {
    let s = sums_for(d, spec, beta, Need::All);
    let pen = Penalty::Logits { p: d.p };
    PathPoint::at(pen, spec.lambda, beta.to_vec(), (s.nll, s.hess))
}

/// Most fall of the objective (nats) since the fit's last Hessian for that Hessian to
/// stand for the one at the optimum: the steps after it moved the coefficients by
/// about `sqrt(2·fall)` in the Hessian's own norm, so the log determinant moves by far
/// less than the evidence's differences between penalties (tens to hundreds of nats).
const HESSIAN_REUSE_FALL: f64 = 0.01;

/// [`logit_evidence`] at the end of a fit: when the fit's last Hessian was computed
/// within [`HESSIAN_REUSE_FALL`] of its end, the evidence is read from it and the fit's
/// own objective, with no pass over the rows (RentTheRunway's purchase learner: the
/// last Hessian 0.002 nats before the optimum, the pass ~60 ms, a tenth of the
/// learners); otherwise [`logit_evidence`]'s pass.
pub(super) fn logit_evidence_from<E: DesignElem>(
    d: &Design<'_, E>,
    spec: &FitSpec<'_>,
    min: Minimum,
) -> PathPoint {
    let q = min.beta.len();
    let pen = Penalty::Logits { p: d.p };
    if !(min.fall_since_hess <= HESSIAN_REUSE_FALL && min.hess.len() == q * q) {
        return logit_evidence(d, spec, &min.beta);
    }
    let mut loss_hess = min.hess;
    add_ridge(&mut loss_hess, q, |j| -pen.ridge(j, spec.lambda));
    let loss = min.obj - pen.value(&min.beta, spec.lambda);
    PathPoint::at(pen, spec.lambda, min.beta, (loss, loss_hess))
}

/// The Laplace approximation to the log marginal likelihood ("evidence") of a ridge fit
/// with penalty `lambda` on `penalised` of its `q` coefficients, up to a constant that
/// does not depend on `lambda`: `−obj + (penalised/2)·ln λ − ½·ln det H`, with `obj` the
/// penalised objective at the optimum and `H` its penalised Hessian there (`q × q`,
/// overwritten). The ridge is a Gaussian prior of precision `λ` on the standardised
/// coefficients; the evidence weighs the fit against the prior volume it uses, and the
/// penalty with the highest evidence is the one the data support (MacKay 1992; mgcv's
/// REML smoothing selection is the same criterion). `None` for `λ ≤ 0` (no proper
/// prior) or a Hessian that is not positive definite.
pub(super) fn log_evidence(
    obj: f64,
    hess: &mut [f64],
    q: usize,
    (lambda, penalised): (f64, usize),
) -> Option<f64> {
    if !(lambda > 0.0 && obj.is_finite()) {
        return None;
    }
    let log_det = crate::model::features::cholesky_log_det(hess, q)?;
    Some(-obj + 0.5 * penalised as f64 * lambda.ln() - 0.5 * log_det)
}

/// The log evidence at penalty `lambda` predicted from the fit `at` at another penalty
/// `λ₀`, on the quadratic model of the loss at `at`'s optimum: the loss gradient there is
/// `−λ₀·β` on the penalised coefficients (zero elsewhere), so the optimum at `lambda` is
/// `β + d` with `(H + ridge(λ))·d = (λ₀ − λ)·β` (penalised coefficients; one Newton step),
/// its loss `loss − λ₀·βᵀd + ½·dᵀHd`, and the evidence follows as [`log_evidence`] with
/// the same Hessian. Exact for a quadratic loss and at `λ₀` itself; for a logistic loss
/// it is as good as the Hessian stays put between the two optima. `None` when `at` has no
/// Hessian or the penalised one is not positive definite.
pub(super) fn predicted_evidence(at: &PathPoint, lambda: f64, pen: Penalty) -> Option<f64> {
    let q = at.beta.len();
    if at.loss_hess.len() != q * q || !(lambda > 0.0 && at.loss.is_finite()) {
        return None;
    }
    let pen_of = |j: usize| pen.penalised(j);
    let mut h = at.loss_hess.clone();
    add_ridge(&mut h, q, |j| pen.ridge(j, lambda));
    let rhs: Vec<f64> = (0..q)
        .map(|j| {
            if pen_of(j) {
                (at.lambda - lambda) * at.beta[j]
            } else {
                0.0
            }
        })
        .collect();
    let (d, log_det) = crate::model::features::cholesky_solve_log_det(&mut h, &rhs, q)?;
    let (mut lin, mut norm) = (0.0, 0.0);
    for j in (0..q).filter(|&j| pen_of(j)) {
        lin -= at.lambda * at.beta[j] * d[j];
        norm += (at.beta[j] + d[j]).powi(2);
    }
    let quad: f64 = at
        .loss_hess
        .chunks_exact(q)
        .zip(&d)
        .map(|(row, di)| di * row.iter().zip(&d).map(|(h, dj)| h * dj).sum::<f64>())
        .sum();
    let obj = at.loss + lin + 0.5 * quad + 0.5 * lambda * norm;
    Some(-obj + 0.5 * pen.count(q) as f64 * lambda.ln() - 0.5 * log_det)
}

/// The penalty by evidence among `lambdas`: the middle one (of the sorted candidates;
/// the stronger of two middles) is fitted first (`fit(λ, None)`: from the caller's
/// start); then, as long as the latest fit predicts ([`predicted_evidence`]) more
/// evidence for a penalty not yet fitted than the best fitted one has, the most
/// promising of them is fitted, from the latest fit and its Hessian (`fit(λ,
/// Some(latest))`). When the best penalty is the middle one this is one fit: the
/// learners' penalties on RentTheRunway and 10M synthetic events were 100 of 1, 10, 100,
/// 1000 (the purchase learner and one of the two offer fits), where starting from the
/// strongest fitted 1000 first. Returns every fit in the order made and the index of the
/// best (the first of equals); an error when `lambdas` is empty.
pub(super) fn search_by_evidence(
    lambdas: &[f64],
    pen: Penalty,
    mut fit: impl FnMut(f64, Option<&PathPoint>) -> Result<PathPoint, ModelError>,
) -> Result<(Vec<PathPoint>, usize), ModelError> {
    let mut order = lambdas.to_vec();
    order.sort_by(|a, b| b.total_cmp(a));
    order.dedup();
    let mut fitted: Vec<PathPoint> = Vec::new();
    let mut next = order.get(order.len().saturating_sub(1) / 2).copied();
    let ev = |p: &PathPoint| p.evidence.unwrap_or(f64::NEG_INFINITY);
    while let Some(lambda) = next {
        let point = fit(lambda, fitted.last())?;
        fitted.push(point);
        let Some(latest) = fitted.last() else {
            break;
        };
        next = None;
        // the best fitted evidence: a candidate must be predicted to beat it
        let mut top = fitted.iter().map(ev).fold(f64::NEG_INFINITY, f64::max);
        for &l in order
            .iter()
            .filter(|&&l| fitted.iter().all(|p| p.lambda != l))
        {
            let predicted = predicted_evidence(latest, l, pen).unwrap_or(f64::NEG_INFINITY);
            tracing::debug!(target: "runsize::stack", from = latest.lambda, lambda = l, predicted, "predicted evidence");
            if predicted > top {
                (top, next) = (predicted, Some(l));
            }
        }
    }
    let best = (0..fitted.len())
        .reduce(|b, i| {
            if ev(&fitted[i]) > ev(&fitted[b]) {
                i
            } else {
                b
            }
        })
        .ok_or_else(|| ModelError::Param("second stage: at least one penalty".into()))?;
    Ok((fitted, best))
}

#[cfg(test)]
mod tests {
    use super::super::newton::fit_logit;
    use super::*;
    use crate::model::stack::softmax2;

    #[test]
    fn evidence_is_the_exact_marginal_likelihood_of_a_gaussian_mean() {
        // y = 1, 2, 3 ~ N(β, 1), prior β ~ N(0, 1/λ), λ = 2: the Laplace approximation
        // is exact. obj = ½·(Σy² − (Σy)²/(n+λ)) = ½·(14 − 36/5) = 3.4, H = n + λ = 5.
        // The marginal: y ~ N(0, I + 11ᵀ/λ), ln det = ln(5/2), yᵀΣ⁻¹y = 6.8, so
        // ln p(y) = −(3/2)·ln 2π − ½·ln 2.5 − 3.4; the evidence leaves out −(3/2)·ln 2π.
        let mut h = [5.0];
        let ev = log_evidence(3.4, &mut h, 1, (2.0, 1)).unwrap();
        let exact = -0.5 * 2.5f64.ln() - 3.4;
        assert!((ev - exact).abs() < 1e-12, "{ev} vs {exact}");
        // no proper prior, or a Hessian that is not positive definite: none
        assert!(log_evidence(3.4, &mut [5.0], 1, (0.0, 1)).is_none());
        assert!(log_evidence(3.4, &mut [-1.0], 1, (2.0, 1)).is_none());
    }

    #[test]
    fn predicted_evidence_is_exact_for_a_quadratic_loss() {
        // a free intercept at 0 (loss curvature 1, gradient 0: it stays) and y = 1, 2, 3
        // ~ N(β, 1) with a ridge on β: at λ₀ = 2, β = 6/5 and the loss ½·Σ(y − 1.2)² =
        // 1.96, H = 3. At λ = 1: β = 6/4, obj = ½·(14 − 36/4) = 2.5, H + λ = 4, so the
        // evidence is −2.5 + ½·ln 1 − ½·ln 4, less ½·ln(1 + 1e-8) for the intercept's
        // token ridge.
        let at = PathPoint {
            lambda: 2.0,
            beta: vec![0.0, 1.2],
            evidence: None,
            loss: 1.96,
            loss_hess: vec![1.0, 0.0, 0.0, 3.0],
        };
        let token = 0.5 * (1.0 + 1e-8f64).ln();
        let got = predicted_evidence(&at, 1.0, Penalty::Binary).unwrap();
        let want = -2.5 - 0.5 * 4f64.ln() - token;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // at its own penalty: its own evidence, −(1.96 + ½·2·1.44) + ½·ln 2 − ½·ln 5,
        // as the evidence of the point itself
        let own = predicted_evidence(&at, 2.0, Penalty::Binary).unwrap();
        let want = -(1.96 + 1.44) + 0.5 * 2f64.ln() - 0.5 * 5f64.ln() - token;
        assert!((own - want).abs() < 1e-12, "{own} vs {want}");
        let exact = PathPoint::at(
            Penalty::Binary,
            2.0,
            at.beta.clone(),
            (1.96, at.loss_hess.clone()),
        );
        assert!((exact.evidence.unwrap() - want).abs() < 1e-12);
        assert!(predicted_evidence(&at, 0.0, Penalty::Binary).is_none());
    }

    #[test]
    fn the_search_fits_fewer_penalties_and_finds_the_best_one() {
        let (x, y) = draws(0.4);
        let d = Design { x: &x, y: &y, p: 3 };
        let fit_at = |lambda: f64, from: Option<&PathPoint>| {
            let spec = exact_spec(lambda);
            let (start, hess) = from.map_or((Vec::new(), None), |f| {
                (f.beta.clone(), Some(&f.loss_hess[..]))
            });
            let b = fit_logit(&d, &spec, &start, hess).unwrap();
            logit_evidence(&d, &spec, &b)
        };
        let lambdas = [1000.0, 300.0, 100.0, 30.0, 10.0, 3.0, 1.0, 0.3, 0.1];
        // every penalty fitted from scratch: the best by evidence
        let all: Vec<PathPoint> = lambdas.iter().map(|&l| fit_at(l, None)).collect();
        let want = all
            .iter()
            .max_by(|a, b| a.evidence.unwrap().total_cmp(&b.evidence.unwrap()))
            .unwrap()
            .lambda;
        let pen = Penalty::Logits { p: 3 };
        // predictions from a fit at another penalty agree with the exact evidence to a
        // small part of the differences between penalties
        for a in &all {
            for b in &all {
                let p = predicted_evidence(a, b.lambda, pen).unwrap();
                let (ea, eb) = (a.evidence.unwrap(), b.evidence.unwrap());
                assert!(
                    (p - eb).abs() <= 0.05 * (ea - eb).abs() + 1e-6,
                    "from {} to {}: {p} vs {eb} (from {ea})",
                    a.lambda,
                    b.lambda
                );
            }
        }
        let mut fits = 0;
        let (path, best) = search_by_evidence(&lambdas, pen, |l, from| {
            fits += 1;
            Ok(fit_at(l, from))
        })
        .unwrap();
        assert_eq!(path[best].lambda, want);
        assert_eq!(path.len(), fits);
        // the middle of the nine candidates first
        assert_eq!(path[0].lambda, 10.0);
        assert!(fits < lambdas.len() / 2, "{fits} fits of {}", lambdas.len());
        // the chosen fit is the optimum at its penalty
        let exact = fit_at(want, None);
        for (a, b) in path[best].beta.iter().zip(&exact.beta) {
            assert!(
                (a - b).abs() < 1e-5,
                "{:?} vs {:?}",
                path[best].beta,
                exact.beta
            );
        }
        assert!(search_by_evidence(&[], pen, |l, f| Ok(fit_at(l, f))).is_err());
    }

    /// A fit to ~1e-12 of the objective with every row in the Hessian.
    fn exact_spec(lambda: f64) -> FitSpec<'static> {
        FitSpec {
            lambda,
            weights: None,
            max_iter: 50,
            hess_stride: 1,
            tol: 1e-12,
        }
    }

    #[test]
    fn evidence_from_the_fits_last_hessian_matches_a_pass_at_the_optimum() {
        let (x, y) = draws(0.8);
        let d = Design { x: &x, y: &y, p: 3 };
        // the learners' tolerance and a sampled Hessian, as in a real fit
        let spec = FitSpec {
            tol: 1e-10,
            hess_stride: 3,
            ..exact_spec(10.0)
        };
        let fit =
            |start: &[f64]| super::super::newton::fit_logit_min(&d, &spec, start, None).unwrap();
        // from scratch, its first Hessian (at the start) did every step: far from the
        // end, so not the one at the optimum
        let cold = fit(&[]);
        assert!(
            cold.fall_since_hess > HESSIAN_REUSE_FALL,
            "{}",
            cold.fall_since_hess
        );
        // from near the optimum (a warm start's case), the Hessian is at the end
        let near: Vec<f64> = cold.beta.iter().map(|b| b + 1e-3).collect();
        let min = fit(&near);
        let pass = logit_evidence(&d, &spec, &min.beta);
        assert!(
            min.fall_since_hess <= HESSIAN_REUSE_FALL,
            "{}",
            min.fall_since_hess
        );
        let reused = logit_evidence_from(&d, &spec, min.clone());
        let (a, b) = (reused.evidence.unwrap(), pass.evidence.unwrap());
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        assert!((reused.loss - pass.loss).abs() < 1e-6);
        assert_eq!(reused.beta, pass.beta);
        // a Hessian from far before the optimum is not used: the pass's numbers exactly
        let far = Minimum {
            fall_since_hess: 1.0,
            ..min
        };
        assert_eq!(logit_evidence_from(&d, &spec, far), pass);
    }

    /// 4,000 rows of an intercept and two uniform features, classes drawn from the
    /// logits `w·x` for both (small and large), with a fixed-seed generator.
    fn draws(w: f64) -> (Vec<f64>, Vec<u8>) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut unif = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            let (a, b) = (unif() * 3.4 - 1.7, unif() * 3.4 - 1.7);
            x.extend([1.0, a, b]);
            let pr = softmax2(w * a, -w * b);
            let u = unif();
            y.push(if u < pr[0] {
                0
            } else if u < pr[0] + pr[1] {
                1
            } else {
                2
            });
        }
        (x, y)
    }

    #[test]
    fn evidence_prefers_the_strong_penalty_on_noise_and_the_weak_one_on_signal() {
        let evidence = |w: f64, lambda: f64| {
            let (x, y) = draws(w);
            let d = Design { x: &x, y: &y, p: 3 };
            let spec = exact_spec(lambda);
            let b = fit_logit(&d, &spec, &[], None).unwrap();
            logit_evidence(&d, &spec, &b).evidence.unwrap()
        };
        // features that do not matter: the data support shrinking them to zero
        assert!(evidence(0.0, 1000.0) > evidence(0.0, 1.0));
        // features that matter (log-odds 1.5 per unit): the data support keeping them
        assert!(evidence(1.5, 1.0) > evidence(1.5, 1000.0));
    }
}
