//! Prediction maths on the [`Fitted`] data: an article's true size and fit band, a
//! customer's size posterior from prior + evidence (one Newton solve shared with the
//! fit), and calibrated small / fit / large probabilities.

use super::features::FeatureValues;
use super::fitted::{group_eta, group_value, Fitted, Globals};
use super::math::{event_deriv, probs, uncertainty_scale};
use crate::data::schema::{SizeSystem, NONE};

/// An article in a size, resolved against the model. Unknown keys are [`NONE`]:
/// a product the model never saw falls back on its brand, category and size label.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArticleRef {
    /// Product index or [`NONE`].
    pub product: u32,
    /// Brand index or [`NONE`].
    pub brand: u32,
    /// Category index or [`NONE`].
    pub category: u32,
    /// Size label index or [`NONE`] (label not seen in training).
    pub label: u32,
    /// Size system of the label.
    pub system: SizeSystem,
    /// Position of the label in its system's units.
    pub pos: f64,
}

/// The terms one event contributes to a customer's size posterior.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvidenceTerm {
    /// The article's true size on the common scale.
    pub t: f64,
    /// The article's fit-band log-width.
    pub eta: f64,
    /// Size implied by having chosen this article-size (`None`: not a choice, e.g. a
    /// size being evaluated for recommendation).
    pub choice: Option<f64>,
    /// Observed class (0 small, 1 fit, 2 large), `None` when unknown.
    pub class: Option<usize>,
}

/// Gaussian belief about a customer's size on the common scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeBelief {
    /// Mean.
    pub mean: f64,
    /// Variance.
    pub var: f64,
}

/// Largest Newton step on a customer's size, in size steps.
pub const MAX_STEP: f64 = 2.0;

/// Gaussian belief about a customer: long-run size `s` (what they choose around) and fit
/// bias `u` (how their fit verdicts lean beyond their size: > 0 reports "too small" more
/// often), with their 2x2 covariance. The size that decides fit is `s + u`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CustomerState {
    /// Mean size.
    pub s: f64,
    /// Mean fit bias.
    pub u: f64,
    /// Var(s).
    pub ss: f64,
    /// Cov(s, u).
    pub su: f64,
    /// Var(u).
    pub uu: f64,
}

impl CustomerState {
    /// An independent prior: size `N(mean, var_s)`, bias `N(0, var_u)`.
    pub fn prior(mean: f64, var_s: f64, var_u: f64) -> CustomerState {
        CustomerState {
            s: mean,
            u: 0.0,
            ss: var_s,
            su: 0.0,
            uu: var_u,
        }
    }
}

/// Inverse of a symmetric 2x2 matrix `[[a, b], [b, c]]` as `(a', b', c')`.
#[inline]
pub fn inv2(a: f64, b: f64, c: f64) -> (f64, f64, f64) {
    let r = 1.0 / (a * c - b * b).max(1e-300);
    (c * r, -b * r, a * r)
}

/// The clamped Newton step `(Δs, Δu) = H⁻¹·g` (each at most [`MAX_STEP`]) for gradient
/// `g = (gs, gu)` and information `H = [[hss, hsu], [hsu, huu]]`; subtract it.
#[inline]
pub fn newton_step((gs, gu): (f64, f64), (hss, hsu, huu): (f64, f64, f64)) -> (f64, f64) {
    let (iss, isu, iuu) = inv2(hss, hsu, huu);
    (
        (iss * gs + isu * gu).clamp(-MAX_STEP, MAX_STEP),
        (isu * gs + iuu * gu).clamp(-MAX_STEP, MAX_STEP),
    )
}

/// Newton (Fisher scoring) solve of one customer: a Gaussian prior on size and bias, a
/// Gaussian term per past choice (on the size), an ordinal-logistic term per observed
/// outcome (on size + bias). Starts at `start` = (s, u) and takes `steps` steps; the
/// covariance is the inverse information at the final point. `terms` is called once per
/// step and must yield the same items.
pub fn solve_customer<I, F>(
    g: &Globals,
    prior: &CustomerState,
    start: (f64, f64),
    steps: usize,
    terms: F,
) -> CustomerState
where
    F: Fn() -> I,
    I: Iterator<Item = EvidenceTerm>,
{
    let ps = 1.0 / prior.ss.max(1e-9);
    let pu = 1.0 / prior.uu.max(1e-9);
    // a past choice measures the shopper's size at that purchase: choice noise + drift
    let choice_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
    let (mut s, mut u) = start;
    let (mut hss, mut hsu, mut huu) = (ps, 0.0, pu);
    for step in 0..=steps {
        let mut gs = (s - prior.s) * ps;
        let mut gu = (u - prior.u) * pu;
        hss = ps;
        hsu = 0.0;
        huu = pu;
        for e in terms() {
            if let Some(x) = e.choice {
                gs += (s - x) * choice_prec;
                hss += choice_prec;
            }
            if let Some(y) = e.class {
                let (a, b) = cut_points(g, s + u - e.t, e.eta, 1.0);
                let d = event_deriv(a, b, y);
                let go = d.grad(-g.w, -g.w);
                let ho = d.info(-g.w, -g.w);
                gs += go;
                gu += go;
                hss += ho;
                hsu += ho;
                huu += ho;
            }
        }
        if step == steps {
            break;
        }
        let (ds, du) = newton_step((gs, gu), (hss, hsu, huu));
        s -= ds;
        u -= du;
        if ds.abs() < 1e-9 && du.abs() < 1e-9 {
            break;
        }
    }
    let (ss, su, uu) = inv2(hss, hsu, huu);
    CustomerState { s, u, ss, su, uu }
}

/// Step (in size steps, on both size and bias) below which the serving solve
/// ([`solve_converged`]) stops. The fit's solve stops at 1e-9; the serving solve
/// converges quadratically at the end, so what remains after a step this small is far
/// below the 1e-6 that answers are compared at.
pub const SERVE_TOL: f64 = 1e-7;

/// Step size (size steps) below which the serving solve switches from Fisher scoring
/// to Newton steps on the observed information.
const NEWTON_FROM: f64 = 0.05;

/// Most Newton steps of the serving solve (as many as [`Fitted::posterior`] always took).
pub const SERVE_STEPS: usize = 12;

/// One outcome term of the serving solve, precomputed once per solve: with `f = s + u`
/// the cut points are `a = a0 − w·f` and `b = a − gap`, so one `exp` per term and step
/// gives both logistic values (`e^{−b} = e^{−a}·e^{gap}`).
#[derive(Clone, Copy, Debug)]
struct OutcomeTerm {
    /// `c + half + w·t`.
    a0: f64,
    /// `e^{a − b}` = `e^{2·half}`.
    exp_gap: f64,
    /// Observed class (0 small, 1 fit, 2 large).
    class: u8,
}

/// Outcome terms kept on the stack; longer histories spill to the heap.
const STACK_TERMS: usize = 48;

/// Gradient, Fisher information and observed information (second derivative) of one
/// outcome term's negative log-likelihood with respect to the fit size `f = s + u`, at
/// `a = a0 − w·f`. Gradient and Fisher information are the numbers of [`event_deriv`]
/// with `∂a/∂f = ∂b/∂f = −w`; the log-likelihood value itself is not needed.
#[inline]
fn outcome_derivs(o: &OutcomeTerm, w: f64, f: f64) -> (f64, f64, f64) {
    let a = o.a0 - w * f;
    // logistic values of a and b = a − gap from one exp
    let (fa, fb) = if a >= 0.0 {
        let ea = (-a).exp(); // e^{−a} ≤ 1
        (1.0 / (1.0 + ea), 1.0 / (1.0 + ea * o.exp_gap))
    } else {
        let ea = a.exp(); // e^{a} < 1
        let eb = ea / o.exp_gap; // e^{b}
        (ea / (1.0 + ea), eb / (1.0 + eb))
    };
    let da = fa * (1.0 - fa);
    let db = fb * (1.0 - fb);
    let ps = (1.0 - fa).max(super::math::P_MIN);
    let pf = (fa - fb).max(super::math::P_MIN);
    let pl = fb.max(super::math::P_MIN);
    let w2 = w * w;
    let dd = da - db;
    // d nll / d f = −w·(ga + gb), and d² nll / d f²
    let (g, observed) = match o.class {
        0 => (-w * fa, w2 * da),
        1 => {
            let r = dd / pf;
            (
                w * r,
                w2 * (r * r - (da * (1.0 - 2.0 * fa) - db * (1.0 - 2.0 * fb)) / pf),
            )
        }
        _ => (w * (1.0 - fb), w2 * db),
    };
    // w²·(iaa + 2·iab + ibb)
    let fisher = w2 * (da * da / ps + dd * dd / pf + db * db / pl);
    (g, fisher, observed)
}

/// The customer's posterior as served: the optimum of the same objective as
/// [`solve_customer`] (same prior, evidence and model) and the inverse Fisher
/// information there as covariance, found faster: Newton steps on the observed
/// information (quadratic convergence; the fit's Fisher scoring converges linearly,
/// ~0.2 per step), stopping when a step is below [`SERVE_TOL`] (at most
/// [`SERVE_STEPS`] steps), warm-started at the Gaussian-only optimum (prior + past
/// choices, closed form), with each term's cut-point constants computed once instead of
/// every step. Agrees with [`solve_customer`] run to convergence to 1e-7 (see the
/// tests); the 12 Fisher-scoring steps [`Fitted::posterior`] used to take stop short of
/// that in a few percent of hard random cases (far from the prior, many terms).
pub fn solve_converged(
    g: &Globals,
    prior: &CustomerState,
    terms: &[EvidenceTerm],
) -> CustomerState {
    let ps = 1.0 / prior.ss.max(1e-9);
    let pu = 1.0 / prior.uu.max(1e-9);
    let choice_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
    let mut n_choice = 0.0;
    let mut sum_x = 0.0;
    let mut stack = [OutcomeTerm {
        a0: 0.0,
        exp_gap: 1.0,
        class: 0,
    }; STACK_TERMS];
    let mut heap = Vec::new();
    let mut n_out = 0usize;
    for e in terms {
        if let Some(x) = e.choice {
            n_choice += 1.0;
            sum_x += x;
        }
        if let Some(y) = e.class {
            let half = g.h * e.eta.exp();
            let o = OutcomeTerm {
                a0: g.c + half + g.w * e.t,
                // capped so e^{−a}·e^{gap} cannot be 0·∞ (a band of 350 logits is absurd)
                exp_gap: (2.0 * half).min(700.0).exp(),
                class: y.min(2) as u8,
            };
            if let Some(slot) = stack.get_mut(n_out) {
                *slot = o;
            } else {
                if heap.is_empty() {
                    heap.extend_from_slice(&stack);
                }
                heap.push(o);
            }
            n_out += 1;
        }
    }
    let outcomes: &[OutcomeTerm] = if n_out > STACK_TERMS {
        &heap
    } else {
        stack.get(..n_out).unwrap_or(&[])
    };
    // Gaussian part (prior + choices) in closed form: the warm start
    let h_choice = n_choice * choice_prec;
    let mut s = (ps * prior.s + choice_prec * sum_x) / (ps + h_choice);
    let mut u = prior.u;
    let (mut hss, mut hsu, mut huu) = (ps + h_choice, 0.0, pu);
    // Fisher scoring while far from the optimum (robust: never overshoots much), Newton
    // on the observed information once steps are small (quadratic convergence)
    let mut newton = false;
    let mut last_step = f64::INFINITY;
    for _ in 0..SERVE_STEPS {
        let mut gs = (s - prior.s) * ps + choice_prec * (n_choice * s - sum_x);
        let mut gu = (u - prior.u) * pu;
        let (mut g_sum, mut fisher, mut observed) = (0.0, 0.0, 0.0);
        let f = s + u;
        for o in outcomes {
            let (go, fi, ob) = outcome_derivs(o, g.w, f);
            g_sum += go;
            fisher += fi;
            observed += ob;
        }
        gs += g_sum;
        gu += g_sum;
        // covariance: the Fisher information, as the fit's solve reports it
        hss = ps + h_choice + fisher;
        hsu = fisher;
        huu = pu + fisher;
        // the logistic likelihood is log-concave, so the observed information is ≥ 0
        // (Fisher scoring if rounding says otherwise)
        let curv = if newton && observed.is_finite() && observed >= 0.0 {
            observed
        } else {
            fisher
        };
        let (iss, isu, iuu) = inv2(ps + h_choice + curv, curv, pu + curv);
        let ds = (iss * gs + isu * gu).clamp(-MAX_STEP, MAX_STEP);
        let du = (isu * gs + iuu * gu).clamp(-MAX_STEP, MAX_STEP);
        s -= ds;
        u -= du;
        let step = ds.abs().max(du.abs());
        if step < SERVE_TOL {
            break;
        }
        // Newton from close by; back to Fisher scoring if a Newton step grew
        newton = step < NEWTON_FROM && !(newton && step > last_step);
        last_step = step;
    }
    let (ss, su, uu) = inv2(hss, hsu, huu);
    CustomerState { s, u, ss, su, uu }
}

/// The fit-size belief at a new purchase from a customer state: drift widens the size,
/// and the purchase's own chosen size (choice centre `x`, noise sd `sd_choice`), when
/// given, is conditioned on.
pub fn purchase_belief(
    st: &CustomerState,
    drift_var: f64,
    choice: Option<(f64, f64)>,
) -> SizeBelief {
    let ss = st.ss + drift_var;
    let fs = st.ss + st.su + drift_var;
    let ff = st.ss + 2.0 * st.su + st.uu + drift_var;
    let f = st.s + st.u;
    match choice {
        Some((x, choice_var)) => {
            let gain = fs / (ss + choice_var).max(1e-12);
            SizeBelief {
                mean: f + gain * (x - st.s),
                var: (ff - gain * fs).max(1e-12),
            }
        }
        None => SizeBelief { mean: f, var: ff },
    }
}

/// Cut points `(a, b)` for gap `d` (customer − article), band log-width `eta` and
/// uncertainty scale `kappa`.
#[inline]
pub fn cut_points(g: &Globals, d: f64, eta: f64, kappa: f64) -> (f64, f64) {
    cut_points_exp(g, d, eta.exp(), kappa)
}

/// [`cut_points`] given `e^eta` instead of `eta`.
#[inline]
pub fn cut_points_exp(g: &Globals, d: f64, exp_eta: f64, kappa: f64) -> (f64, f64) {
    let half = g.h * exp_eta;
    (
        kappa * (g.c + half - g.w * d),
        kappa * (g.c - half - g.w * d),
    )
}

impl Fitted {
    /// The article's true size on the common scale (size steps), given its product-in-size
    /// index (`article_sizes`; see `Predictor::article_size_index`).
    pub fn true_size_with(&self, a: &ArticleRef, article_size: Option<u32>) -> f64 {
        let mut t = a.pos / self.scale(a.system) + self.align(a.system);
        if a.label != NONE {
            t += self
                .labels
                .get(a.label as usize)
                .map_or(0.0, |l| l.offset.value);
        }
        t += group_value(&self.brands, a.brand);
        t += group_value(&self.categories, a.category);
        t += group_value(&self.products, a.product);
        if let Some(i) = article_size {
            t += self
                .article_sizes
                .get(i as usize)
                .map_or(0.0, |x| x.offset.value);
        }
        t
    }

    /// Variance of the article's true size: each level's standard error where the model
    /// knows the key, its prior variance where it does not (a new product of a known
    /// brand is as uncertain as products of that brand vary), given its product-in-size
    /// index.
    pub fn article_var_with(&self, a: &ArticleRef, article_size: Option<u32>) -> f64 {
        let g = &self.globals;
        let level = super::fitted::group_var;
        let label = if a.label == NONE {
            g.sd_label * g.sd_label
        } else {
            self.labels
                .get(a.label as usize)
                .map_or(g.sd_label * g.sd_label, |l| l.offset.se * l.offset.se)
        };
        let article_size = match article_size {
            Some(i) => self
                .article_sizes
                .get(i as usize)
                .map_or(0.0, |x| x.offset.se * x.offset.se),
            None if self.article_sizes.is_empty() => 0.0,
            None => g.sd_article_size * g.sd_article_size,
        };
        label
            + level(&self.brands, a.brand, g.sd_brand)
            + level(&self.categories, a.category, g.sd_category)
            + level(&self.products, a.product, g.sd_product)
            + article_size
    }

    /// Probabilities `[small, fit, large]` of a purchase-time size belief in an article
    /// (given its product-in-size index), integrating both the shopper's and the
    /// article's uncertainty.
    pub fn probs_article_with(
        &self,
        belief: SizeBelief,
        a: &ArticleRef,
        article_size: Option<u32>,
    ) -> [f64; 3] {
        let widened = SizeBelief {
            mean: belief.mean,
            var: belief.var + self.article_var_with(a, article_size),
        };
        self.probs_for(widened, self.true_size_with(a, article_size), self.band(a))
    }

    /// The article's fit-band log-width (brand + category + product).
    pub fn band(&self, a: &ArticleRef) -> f64 {
        group_eta(&self.brands, a.brand)
            + group_eta(&self.categories, a.category)
            + group_eta(&self.products, a.product)
    }

    /// The customer size implied by choosing this article-size (shoppers partly correct
    /// for brand and category reputation).
    pub fn choice_centre(&self, a: &ArticleRef) -> f64 {
        let reputation =
            group_value(&self.brands, a.brand) + group_value(&self.categories, a.category);
        let own = group_value(&self.products, a.product);
        a.pos / self.scale(a.system)
            + self.align(a.system)
            + self.globals.k * reputation
            + self.globals.k_product * own
    }

    /// Evidence term of one past purchase, given its product-in-size index.
    pub fn evidence_with(
        &self,
        a: &ArticleRef,
        article_size: Option<u32>,
        class: Option<usize>,
        chosen: bool,
    ) -> EvidenceTerm {
        EvidenceTerm {
            t: self.true_size_with(a, article_size),
            eta: self.band(a),
            choice: chosen.then(|| self.choice_centre(a)),
            class,
        }
    }

    /// Prior belief about a customer from their features (or the population).
    pub fn customer_prior(&self, features: Option<&FeatureValues<'_>>) -> CustomerState {
        let g = &self.globals;
        let bias_var = g.sd_customer_bias * g.sd_customer_bias;
        match features {
            Some(f) if super::features::FeatureModel::any_present(f) => CustomerState::prior(
                self.features.predict(f),
                g.sd_customer_features * g.sd_customer_features,
                bias_var,
            ),
            _ => CustomerState::prior(
                self.features.predict(&FeatureValues {
                    numeric: vec![f64::NAN; self.features.numeric.len()],
                    categorical: vec![None; self.features.categorical.len()],
                }),
                g.sd_customer_population * g.sd_customer_population,
                bias_var,
            ),
        }
    }

    /// Posterior from a prior and evidence terms: the serving solve
    /// ([`solve_converged`], Newton converged to [`SERVE_TOL`], at most
    /// [`SERVE_STEPS`] steps). The prior itself when there is no evidence.
    pub fn posterior(&self, prior: CustomerState, terms: &[EvidenceTerm]) -> CustomerState {
        if terms.is_empty() {
            return prior;
        }
        solve_converged(&self.globals, &prior, terms)
    }

    /// Posterior by the solve the fit uses ([`solve_customer`] from the prior, `steps`
    /// Fisher-scoring steps; [`Fitted::posterior`] took 12): the reference the serving
    /// solve is tested against.
    pub fn posterior_reference(
        &self,
        prior: CustomerState,
        terms: &[EvidenceTerm],
        steps: usize,
    ) -> CustomerState {
        if terms.is_empty() {
            return prior;
        }
        solve_customer(&self.globals, &prior, (prior.s, prior.u), steps, || {
            terms.iter().copied()
        })
    }

    /// The customer's state as stored for training customer `c`, if any.
    pub fn known_customer(&self, c: usize) -> Option<CustomerState> {
        let t = &self.customers;
        Some(CustomerState {
            s: f64::from(*t.mean.get(c)?),
            u: f64::from(*t.bias.get(c)?),
            ss: f64::from(*t.var.get(c)?),
            su: f64::from(*t.cov.get(c)?),
            uu: f64::from(*t.bias_var.get(c)?),
        })
    }

    /// Fit-size belief at a new purchase, optionally conditioned on the size chosen
    /// there (its choice centre).
    pub fn at_purchase(&self, st: &CustomerState, chosen: Option<f64>) -> SizeBelief {
        let g = &self.globals;
        purchase_belief(
            st,
            g.sd_drift * g.sd_drift,
            chosen.map(|x| (x, g.sd_choice * g.sd_choice)),
        )
    }

    /// Probabilities `[small, fit, large]` for a customer with size belief `belief`
    /// in an article with true size `t` and band `eta`, integrating the belief's variance.
    pub fn probs_for(&self, belief: SizeBelief, t: f64, eta: f64) -> [f64; 3] {
        self.probs_for_exp(belief, t, eta.exp())
    }

    /// [`Fitted::probs_for`] given `e^eta` (batch scoring multiplies per-level factors).
    pub fn probs_for_exp(&self, belief: SizeBelief, t: f64, exp_eta: f64) -> [f64; 3] {
        let g = &self.globals;
        let kappa = uncertainty_scale(g.w, belief.var);
        let (a, b) = cut_points_exp(g, belief.mean - t, exp_eta, kappa);
        probs(a, b)
    }
}

#[cfg(test)]
mod tests;
