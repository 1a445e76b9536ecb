//! The evidence that chooses the second stage's penalties ([`Select::Evidence`]): the
//! Laplace approximation to a ridge fit's marginal likelihood, for the purchase learner
//! and the offer calibration's binary fits.
//!
//! [`Select::Evidence`]: crate::model::stack::Select::Evidence

use super::newton::{add_ridge, penalised, ridge, sums_for, Design, DesignElem, FitSpec, Need};

/// The log evidence of a fitted purchase learner at `beta` (see [`log_evidence`]; the
/// intercepts are not counted as penalised) and its loss Hessian there (no penalty; the
/// next fit of a penalty path starts from `beta` with it). One pass over the rows: the
/// objective, and the Hessian on its row sample.
pub fn logit_evidence<E: DesignElem>(
    d: &Design<'_, E>,
    spec: &FitSpec<'_>,
    beta: &[f64],
) -> (Option<f64>, Vec<f64>) {
    let p = d.p;
    let q = 2 * p;
    let s = sums_for(d, spec, beta, Need::All);
    let obj = penalised(&s, beta, spec.lambda, p);
    let mut h = s.hess.clone();
    add_ridge(&mut h, q, |j| ridge(j, p, spec.lambda));
    let ev = log_evidence(obj, &mut h, q, (spec.lambda, q.saturating_sub(2)));
    (ev, s.hess)
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
            let spec = FitSpec {
                lambda,
                weights: None,
                max_iter: 50,
                hess_stride: 1,
                tol: 1e-12,
            };
            let b = fit_logit(&d, &spec, &[], None).unwrap();
            logit_evidence(&d, &spec, &b).0.unwrap()
        };
        // features that do not matter: the data support shrinking them to zero
        assert!(evidence(0.0, 1000.0) > evidence(0.0, 1.0));
        // features that matter (log-odds 1.5 per unit): the data support keeping them
        assert!(evidence(1.5, 1.0) > evidence(1.5, 1000.0));
    }
}
