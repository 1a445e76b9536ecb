//! Prediction maths on a fitted [`Model`]: an article's true size and fit band, a
//! customer's size posterior from prior + evidence (one Newton solve shared with the
//! fit), and calibrated small / fit / large probabilities.

use super::features::FeatureValues;
use super::fitted::{group_eta, group_value, Globals, Model};
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
    let det = (a * c - b * b).max(1e-300);
    (c / det, -b / det, a / det)
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
        let (iss, isu, iuu) = inv2(hss, hsu, huu);
        let ds = (iss * gs + isu * gu).clamp(-MAX_STEP, MAX_STEP);
        let du = (isu * gs + iuu * gu).clamp(-MAX_STEP, MAX_STEP);
        s -= ds;
        u -= du;
        if ds.abs() < 1e-9 && du.abs() < 1e-9 {
            break;
        }
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
    let half = g.h * eta.exp();
    (
        kappa * (g.c + half - g.w * d),
        kappa * (g.c - half - g.w * d),
    )
}

impl Model {
    /// The article's true size on the common scale (size steps).
    pub fn true_size(&self, a: &ArticleRef) -> f64 {
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
        if a.product != NONE && a.label != NONE {
            if let Some(&i) = self.index.article_size.get(&(a.product, a.label)) {
                t += self
                    .article_sizes
                    .get(i as usize)
                    .map_or(0.0, |x| x.offset.value);
            }
        }
        t
    }

    /// How the article runs in size steps, relative to its label (> 0 large, < 0 small):
    /// everything in [`Model::true_size`] except the label's own position and system alignment.
    pub fn runs(&self, a: &ArticleRef) -> f64 {
        self.true_size(a) - a.pos / self.scale(a.system) - self.align(a.system)
    }

    /// Variance of the article's true size: each level's standard error where the model
    /// knows the key, its prior variance where it does not (a new product of a known
    /// brand is as uncertain as products of that brand vary).
    pub fn article_var(&self, a: &ArticleRef) -> f64 {
        let g = &self.globals;
        let level = |i: u32, groups: &[super::fitted::GroupParams], sd: f64| -> f64 {
            if groups.is_empty() {
                0.0
            } else if i == NONE {
                sd * sd
            } else {
                groups
                    .get(i as usize)
                    .map_or(sd * sd, |x| x.offset.se * x.offset.se)
            }
        };
        let label = if a.label == NONE {
            g.sd_label * g.sd_label
        } else {
            self.labels
                .get(a.label as usize)
                .map_or(g.sd_label * g.sd_label, |l| l.offset.se * l.offset.se)
        };
        let article_size = match self.index.article_size.get(&(a.product, a.label)) {
            Some(&i) => self
                .article_sizes
                .get(i as usize)
                .map_or(0.0, |x| x.offset.se * x.offset.se),
            None if self.article_sizes.is_empty() => 0.0,
            None => g.sd_article_size * g.sd_article_size,
        };
        label
            + level(a.brand, &self.brands, g.sd_brand)
            + level(a.category, &self.categories, g.sd_category)
            + level(a.product, &self.products, g.sd_product)
            + article_size
    }

    /// Probabilities `[small, fit, large]` of a purchase-time size belief in an article,
    /// integrating both the shopper's and the article's uncertainty.
    pub fn probs_article(&self, belief: SizeBelief, a: &ArticleRef) -> [f64; 3] {
        let widened = SizeBelief {
            mean: belief.mean,
            var: belief.var + self.article_var(a),
        };
        self.probs_for(widened, self.true_size(a), self.band(a))
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

    /// Evidence term of one past purchase.
    pub fn evidence(&self, a: &ArticleRef, class: Option<usize>, chosen: bool) -> EvidenceTerm {
        EvidenceTerm {
            t: self.true_size(a),
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

    /// Posterior from a prior and evidence terms (converged Newton solve).
    pub fn posterior(&self, prior: CustomerState, terms: &[EvidenceTerm]) -> CustomerState {
        if terms.is_empty() {
            return prior;
        }
        solve_customer(&self.globals, &prior, (prior.s, prior.u), 12, || {
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
        let g = &self.globals;
        let kappa = uncertainty_scale(g.w, belief.var);
        let (a, b) = cut_points(g, belief.mean - t, eta, kappa);
        probs(a, b)
    }
}
