//! The ordinal-logistic kernel: class probabilities, negative log-likelihood, its
//! gradient and Fisher information for one event, plus the probit approximation that
//! integrates a Gaussian uncertainty on the customer's size into the probabilities (and
//! the cache-prefetch hint the hot loops share).
//!
//! Outcome model (cumulative logit). With `a = θ_hi − w·d` and `b = θ_lo − w·d`
//! (`d` = customer size − article true size, positive = customer bigger):
//! `P(small) = 1 − F(a)`, `P(fit) = F(a) − F(b)`, `P(large) = F(b)`, `F` the logistic CDF.

/// Hint the CPU to load the cache lines of `x` (a row of at most two lines); a no-op
/// off x86_64.
#[inline(always)]
pub(crate) fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (x as *const T).cast::<i8>();
        // SAFETY: a prefetch is only a hint: it never faults or changes memory, and both
        // addresses lie within `x`.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(std::mem::size_of::<T>() - 1));
        }
    }
}

/// Probabilities are clamped to at least this before taking logs.
pub const P_MIN: f64 = 1e-12;

/// Logistic CDF, numerically stable for large |x|.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `(σ(x + h), σ(x − h))` from one exponential, given `e^h` and `e^−h` (the fit keeps
/// them per article-size: `e^−(x±h) = e^−x · e^∓h`). Saturates to 0 or 1 like
/// [`sigmoid`] for any `|x|` (`h` is a band half-width, far below 700).
#[inline]
pub fn sigmoid_pair(x: f64, exp_h: f64, exp_neg_h: f64) -> (f64, f64) {
    let e = (-x).exp();
    (1.0 / (1.0 + e * exp_neg_h), 1.0 / (1.0 + e * exp_h))
}

/// Class probabilities `[small, fit, large]` for cut points `a > b`.
#[inline]
pub fn probs(a: f64, b: f64) -> [f64; 3] {
    let fa = sigmoid(a);
    let fb = sigmoid(b);
    let fit = (fa - fb).max(0.0);
    [1.0 - fa, fit, fb]
}

/// Per-event derivatives of the negative log-likelihood with respect to the two cut
/// points `(a, b)`: value, gradient and the 2x2 expected (Fisher) information.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EventDeriv {
    /// Negative log-likelihood of the observed class.
    pub nll: f64,
    /// d nll / d a.
    pub ga: f64,
    /// d nll / d b.
    pub gb: f64,
    /// Fisher information entries (aa, ab, bb).
    pub iaa: f64,
    /// Fisher information, cross term.
    pub iab: f64,
    /// Fisher information, bb.
    pub ibb: f64,
}

impl EventDeriv {
    /// Gradient with respect to a scalar parameter ψ, given `∂a/∂ψ`, `∂b/∂ψ`.
    #[inline]
    pub fn grad(&self, da: f64, db: f64) -> f64 {
        self.ga * da + self.gb * db
    }
    /// Fisher information for a scalar parameter ψ, given `∂a/∂ψ`, `∂b/∂ψ`.
    #[inline]
    pub fn info(&self, da: f64, db: f64) -> f64 {
        self.iaa * da * da + 2.0 * self.iab * da * db + self.ibb * db * db
    }
    /// Fisher information cross term between two parameters.
    #[inline]
    pub fn info_cross(&self, d1: (f64, f64), d2: (f64, f64)) -> f64 {
        self.iaa * d1.0 * d2.0 + self.iab * (d1.0 * d2.1 + d1.1 * d2.0) + self.ibb * d1.1 * d2.1
    }
}

/// Negative log-likelihood derivatives of one event of class `class` (0 small, 1 fit,
/// 2 large) at cut points `a > b`.
#[inline]
pub fn event_deriv(a: f64, b: f64, class: usize) -> EventDeriv {
    event_deriv_at((sigmoid(a), sigmoid(b)), class)
}

/// [`event_deriv`] without the log-likelihood value (`nll` is 0): no logarithm, for
/// Newton steps that need only the gradient and information (tests; the fit uses
/// [`event_score_at`]).
#[cfg(test)]
pub fn event_score(a: f64, b: f64, class: usize) -> EventDeriv {
    score(sigmoid(a), sigmoid(b), class).0
}

/// [`event_score`] given `F(a)` and `F(b)` (e.g. from [`sigmoid_pair`]).
#[inline]
pub fn event_score_at((fa, fb): (f64, f64), class: usize) -> EventDeriv {
    score(fa, fb, class).0
}

/// [`event_deriv`] given `F(a)` and `F(b)` (e.g. from [`sigmoid_pair`]).
#[inline]
pub fn event_deriv_at((fa, fb): (f64, f64), class: usize) -> EventDeriv {
    let (mut d, p) = score(fa, fb, class);
    d.nll = -p.ln();
    d
}

/// Derivatives and the (floored) probability of the observed class, given the logistic
/// CDF at the cut points, `fa = F(a)` and `fb = F(b)`.
#[inline]
fn score(fa: f64, fb: f64, class: usize) -> (EventDeriv, f64) {
    let da = fa * (1.0 - fa); // logistic density at a
    let db = fb * (1.0 - fb);
    let ps = (1.0 - fa).max(P_MIN);
    let pf = (fa - fb).max(P_MIN);
    let pl = fb.max(P_MIN);
    // three divisions instead of eight (this runs several times per event and pass)
    let (rs, rf, rl) = (1.0 / ps, 1.0 / pf, 1.0 / pl);
    let (p, ga, gb) = match class {
        0 => (ps, fa, 0.0),
        1 => (pf, -da * rf, db * rf),
        _ => (pl, 0.0, -(1.0 - fb)),
    };
    let d = EventDeriv {
        nll: 0.0,
        ga,
        gb,
        iaa: da * da * (rs + rf),
        iab: -da * db * rf,
        ibb: db * db * (rf + rl),
    };
    (d, p)
}

/// Probit approximation of `E[σ(x)]` when the logit `x` is scaled by a Gaussian size
/// uncertainty: the factor `1/sqrt(1 + π·w²·v/8)` by which cut points shrink when the
/// customer's size has variance `v` (slope `w`).
#[inline]
pub fn uncertainty_scale(w: f64, v: f64) -> f64 {
    1.0 / (1.0 + std::f64::consts::PI * w * w * v.max(0.0) / 8.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_hand_values() {
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
        // 1 / (1 + e^-2) = 0.8807970779778823
        assert!((sigmoid(2.0) - 0.880_797_077_977_882_3).abs() < 1e-12);
        assert!((sigmoid(-2.0) - 0.119_202_922_022_117_7).abs() < 1e-12);
        assert!(sigmoid(-800.0) >= 0.0 && sigmoid(800.0) <= 1.0);
    }

    #[test]
    fn probs_sum_to_one_and_match_hand_values() {
        // a = 1, b = -1: small = 1 - σ(1) = 0.2689, large = σ(-1) = 0.2689, fit = 0.4621
        let p = probs(1.0, -1.0);
        assert!((p[0] - 0.268_941_421_369_995_1).abs() < 1e-12);
        assert!((p[2] - 0.268_941_421_369_995_1).abs() < 1e-12);
        assert!((p[1] - 0.462_117_157_260_009_8).abs() < 1e-12);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    fn nll(a: f64, b: f64, class: usize) -> f64 {
        -probs(a, b)[class].max(P_MIN).ln()
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let h = 1e-6;
        for &(a, b) in &[(1.0, -1.0), (0.3, -2.5), (3.0, 2.0), (-1.0, -4.0)] {
            for class in 0..3 {
                let d = event_deriv(a, b, class);
                assert!((d.nll - nll(a, b, class)).abs() < 1e-12);
                let fda = (nll(a + h, b, class) - nll(a - h, b, class)) / (2.0 * h);
                let fdb = (nll(a, b + h, class) - nll(a, b - h, class)) / (2.0 * h);
                assert!((d.ga - fda).abs() < 1e-6, "ga {class} {a} {b}");
                assert!((d.gb - fdb).abs() < 1e-6, "gb {class} {a} {b}");
                // the score-only variant is the same derivatives without the value
                let s = event_score(a, b, class);
                assert_eq!(s, EventDeriv { nll: 0.0, ..d });
            }
        }
    }

    #[test]
    fn sigmoid_pair_matches_two_sigmoids() {
        for &x in &[-800.0, -30.0, -2.5, -0.3, 0.0, 0.7, 4.0, 40.0, 800.0] {
            for &h in &[0.0, 0.2, 1.3, 6.0] {
                let (p, q) = sigmoid_pair(x, f64::exp(h), f64::exp(-h));
                let (a, b) = (sigmoid(x + h), sigmoid(x - h));
                assert!((p - a).abs() <= 1e-15 + 1e-13 * a, "{x} {h}: {p} vs {a}");
                assert!((q - b).abs() <= 1e-15 + 1e-13 * b, "{x} {h}: {q} vs {b}");
            }
        }
        // hand value: σ(1) = 0.7310585786300049, σ(-1) = 0.2689414213699951
        let (p, q) = sigmoid_pair(0.0, 1f64.exp(), (-1f64).exp());
        assert!((p - 0.731_058_578_630_004_9).abs() < 1e-15);
        assert!((q - 0.268_941_421_369_995_1).abs() < 1e-15);
    }

    #[test]
    fn fisher_is_expected_outer_product_of_gradients() {
        // I = Σ_k P_k g_k g_kᵀ, computed by hand from the three classes.
        let (a, b) = (0.7, -1.3);
        let p = probs(a, b);
        let mut iaa = 0.0;
        let mut iab = 0.0;
        let mut ibb = 0.0;
        for (k, pk) in p.iter().enumerate() {
            let d = event_deriv(a, b, k);
            iaa += pk * d.ga * d.ga;
            iab += pk * d.ga * d.gb;
            ibb += pk * d.gb * d.gb;
        }
        let d = event_deriv(a, b, 1);
        assert!((d.iaa - iaa).abs() < 1e-12);
        assert!((d.iab - iab).abs() < 1e-12);
        assert!((d.ibb - ibb).abs() < 1e-12);
        // information for a location shift (da = db = 1) is positive
        assert!(d.info(1.0, 1.0) > 0.0);
    }

    #[test]
    fn uncertainty_scale_hand_values() {
        assert_eq!(uncertainty_scale(2.0, 0.0), 1.0);
        // w = 2, v = 1: 1/sqrt(1 + π·4/8) = 1/sqrt(1 + π/2) = 0.6237
        assert!((uncertainty_scale(2.0, 1.0) - 0.623_686_242_952_610_5).abs() < 1e-9);
    }
}
