//! The damped Newton minimiser the second stage's fits share: steps damped until the
//! objective does not rise, a Hessian kept while it keeps paying, and the end state
//! (point, objective, last Hessian) for the evidence at the optimum.

use super::newton::Need;
use crate::model::ModelError;

/// A Newton fit keeps its Hessian for the next step while each step's gain in the
/// objective is at most this share of the previous step's (the Hessian, `p²` work per
/// row, is most of an iteration's cost; a gradient is `p`).
const HESSIAN_KEEP: f64 = 0.25;

/// A damped Newton step: `beta + scale·step` for `scale` = 1, 1/2, ... (12 tries); the
/// first candidate whose objective (`eval` gives its state and objective) is finite and
/// not above `obj` is returned with them, `None` when none is.
fn damped_step<T>(
    beta: &[f64],
    step: &[f64],
    obj: f64,
    mut eval: impl FnMut(&[f64]) -> (T, f64),
) -> Option<(Vec<f64>, T, f64)> {
    let mut scale = 1.0;
    for _ in 0..12 {
        let cand: Vec<f64> = beta.iter().zip(step).map(|(b, d)| b + scale * d).collect();
        let (state, cobj) = eval(&cand);
        if cobj.is_finite() && cobj <= obj + 1e-12 * obj.abs() {
            return Some((cand, state, cobj));
        }
        scale *= 0.5;
    }
    None
}

/// A penalised objective at one point, for [`minimise`]: its value, gradient and (when
/// asked for) Hessian, row-major; each includes the ridge penalty. With
/// [`Need::Hessian`] only `hess` is meaningful.
pub(super) struct Quadratic {
    pub(super) obj: f64,
    pub(super) grad: Vec<f64>,
    /// Empty unless asked for.
    pub(super) hess: Vec<f64>,
}

/// Where [`minimise`] ended.
#[derive(Clone, Debug)]
pub(super) struct Minimum {
    /// The point.
    pub(super) beta: Vec<f64>,
    /// Its penalised objective.
    pub(super) obj: f64,
    /// The last penalised Hessian computed (or the caller's at the start).
    pub(super) hess: Vec<f64>,
    /// How much the objective fell after that Hessian's point: near 0, it is the
    /// Hessian at the end point for any use but a further step.
    pub(super) fall_since_hess: f64,
}

/// Where [`minimise`] starts.
#[derive(Clone, Debug, Default)]
pub(super) struct Start {
    /// The point.
    pub(super) beta: Vec<f64>,
    /// The penalised Hessian at `beta` (row-major, `beta.len()²`), when the caller has
    /// it (`None`, or another size: computed).
    pub(super) hess: Option<Vec<f64>>,
}

impl From<Vec<f64>> for Start {
    fn from(beta: Vec<f64>) -> Start {
        Start { beta, hess: None }
    }
}

/// Newton's method from `start` on the objective `eval` gives (`eval(b, need)`: the
/// Hessian is asked for alone at a point already evaluated), at most `max_iter` steps, each damped until it does not increase the
/// objective. The Hessian (`p²` work per row, against `p` for a gradient) is kept for the
/// next step while each step gains at most [`HESSIAN_KEEP`] of the previous one's, and
/// recomputed otherwise; the fit stops at a step that gains less than `tol` of the
/// objective, but only on a step taken with a fresh Hessian or one whose gain fell at
/// least [`HESSIAN_KEEP`]-fold from the step before (a stale Hessian's small gain may
/// be slow progress; a gain falling that fast leaves less than itself to gain), so it
/// ends where Newton's method would. A step whose gain the quadratic model predicts
/// under `tol` (half the Newton decrement) is the last one and is taken without
/// evaluating it. `what` names the fit in errors. Returns the point, its objective
/// (the quadratic model's after such a step) and the last Hessian computed.
pub(super) fn minimise(
    start: Start,
    (max_iter, tol): (usize, f64),
    what: &str,
    eval: impl Fn(&[f64], Need) -> Quadratic,
) -> Result<Minimum, ModelError> {
    let mut beta = start.beta;
    let q = beta.len();
    // a Hessian the caller has at the start point saves computing it there
    let (mut at, mut hess, mut hessians) = match start.hess.filter(|h| h.len() == q * q) {
        Some(h) => (eval(&beta, Need::Value), h, 0),
        None => {
            let mut at = eval(&beta, Need::All);
            let h = std::mem::take(&mut at.hess);
            (at, h, 1)
        }
    };
    let (mut fresh, mut last_gain, mut iter) = (true, f64::INFINITY, 0);
    // the objective where the Hessian was computed
    let mut hess_obj = at.obj;
    let end = |beta: Vec<f64>, obj: f64, hess: Vec<f64>, hess_obj: f64| Minimum {
        beta,
        obj,
        hess,
        fall_since_hess: (hess_obj - obj).max(0.0),
    };
    while iter < max_iter {
        iter += 1;
        let mut h = hess.clone();
        let neg: Vec<f64> = at.grad.iter().map(|v| -v).collect();
        let step = crate::model::features::cholesky_solve(&mut h, &neg, q)
            .ok_or_else(|| ModelError::Diverged(format!("{what}: singular Hessian")))?;
        // the quadratic model's gain of the full step (half the Newton decrement
        // -gᵀ·step): when it is under the tolerance the step is taken without
        // evaluating it, the evaluation that would only confirm convergence (one pass
        // over the rows per fit saved). A kept Hessian is one whose last step's gain
        // fell at least HESSIAN_KEEP-fold: its model is trusted as the rule below trusts it
        let predicted = -0.5 * at.grad.iter().zip(&step).map(|(g, d)| g * d).sum::<f64>();
        if predicted.is_finite() && predicted >= 0.0 && predicted <= tol * at.obj.abs().max(1.0) {
            for (b, d) in beta.iter_mut().zip(&step) {
                *b += d;
            }
            tracing::trace!(target: "runsize::stack", what, iter, hessians, predicted, "converged by the quadratic model");
            return Ok(end(beta, at.obj - predicted, hess, hess_obj));
        }
        // candidates are judged on the objective alone (no Hessian)
        let Some((cand, next, _)) = damped_step(&beta, &step, at.obj, |c| {
            let e = eval(c, Need::Value);
            let o = e.obj;
            (e, o)
        }) else {
            if fresh {
                break;
            }
            // a stale Hessian's step found no descent: refresh it here and retry
            hess = eval(&beta, Need::Hessian).hess;
            (hessians, fresh, hess_obj) = (hessians + 1, true, at.obj);
            continue;
        };
        let gain = at.obj - next.obj;
        tracing::trace!(target: "runsize::stack", what, iter, gain, fresh, "step");
        (beta, at) = (cand, next);
        if gain <= tol * at.obj.abs().max(1.0) {
            // a fresh Hessian's step: where Newton's method stops. A stale one's whose
            // gain fell at least HESSIAN_KEEP-fold from the step before: the steps to
            // come, shrinking as fast, would add at most a third of it
            if fresh || gain <= HESSIAN_KEEP * last_gain {
                tracing::trace!(target: "runsize::stack", what, iter, hessians, "converged");
                return Ok(end(beta, at.obj, hess, hess_obj));
            }
            hess = eval(&beta, Need::Hessian).hess;
            (hessians, fresh, last_gain, hess_obj) = (hessians + 1, true, f64::INFINITY, at.obj);
            continue;
        }
        if gain > HESSIAN_KEEP * last_gain {
            hess = eval(&beta, Need::Hessian).hess;
            (hessians, fresh, hess_obj) = (hessians + 1, true, at.obj);
        } else {
            fresh = false;
        }
        last_gain = gain;
    }
    tracing::trace!(target: "runsize::stack", what, iter, hessians, "stopped");
    Ok(end(beta, at.obj, hess, hess_obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_the_quadratic_model_calls_negligible_ends_the_fit_unevaluated() {
        // f(b) = (b − 3)²: Newton's first step lands on the minimum; the next step's
        // predicted gain is 0, so it ends there with 2 evaluations (start, the step),
        // not 3 (and a step to evaluate only to confirm it)
        let evals = std::cell::Cell::new(0);
        let quad = |b: &[f64], need: Need| {
            evals.set(evals.get() + 1);
            Quadratic {
                obj: (b[0] - 3.0).powi(2),
                grad: vec![2.0 * (b[0] - 3.0)],
                hess: if need == Need::Value {
                    Vec::new()
                } else {
                    vec![2.0]
                },
            }
        };
        let Minimum { beta: b, obj, .. } =
            minimise(vec![0.0].into(), (10, 1e-10), "test", quad).unwrap();
        assert_eq!((b, evals.get()), (vec![3.0], 2));
        assert!(obj.abs() < 1e-30, "{obj}");
        // f(b) = cosh(b − 1) (minimum 1 at b = 1): the end point and its objective are
        // Newton's to the tolerance
        let cosh = |b: &[f64], need: Need| Quadratic {
            obj: (b[0] - 1.0).cosh(),
            grad: vec![(b[0] - 1.0).sinh()],
            hess: if need == Need::Value {
                Vec::new()
            } else {
                vec![(b[0] - 1.0).cosh()]
            },
        };
        let Minimum { beta: b, obj, .. } =
            minimise(vec![-1.5].into(), (20, 1e-12), "test", cosh).unwrap();
        assert!((b[0] - 1.0).abs() < 2e-6, "{b:?}");
        assert!((obj - 1.0).abs() < 1e-11, "{obj}");
    }
}
