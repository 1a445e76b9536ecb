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

/// Newton solve of one customer's size: prior `N(prior.mean, prior.var)`, a Gaussian
/// term per choice, an ordinal-logistic term per observed outcome. Starts at `start`
/// and takes `steps` Fisher-scoring steps. Returns the belief (variance = 1 / information
/// at the final point). `terms` is called once per step and must yield the same items.
pub fn solve_customer<I, F>(g: &Globals, prior: SizeBelief, start: f64, steps: usize, terms: F) -> SizeBelief
where
    F: Fn() -> I,
    I: Iterator<Item = EvidenceTerm>,
{
    let prior_prec = 1.0 / prior.var.max(1e-9);
    // a past choice measures the shopper's size at that purchase: choice noise + drift
    let choice_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
    let mut s = start;
    let mut info = prior_prec;
    for step in 0..=steps {
        let mut grad = (s - prior.mean) * prior_prec;
        info = prior_prec;
        for e in terms() {
            if let Some(x) = e.choice {
                grad += (s - x) * choice_prec;
                info += choice_prec;
            }
            if let Some(y) = e.class {
                let (a, b) = cut_points(g, s - e.t, e.eta, 1.0);
                let d = event_deriv(a, b, y);
                grad += d.grad(-g.w, -g.w);
                info += d.info(-g.w, -g.w);
            }
        }
        if step == steps {
            break;
        }
        let delta = (grad / info).clamp(-MAX_STEP, MAX_STEP);
        s -= delta;
        if delta.abs() < 1e-9 {
            break;
        }
    }
    SizeBelief {
        mean: s,
        var: 1.0 / info,
    }
}

/// Cut points `(a, b)` for gap `d` (customer − article), band log-width `eta` and
/// uncertainty scale `kappa`.
#[inline]
pub fn cut_points(g: &Globals, d: f64, eta: f64, kappa: f64) -> (f64, f64) {
    let half = g.h * eta.exp();
    (kappa * (g.c + half - g.w * d), kappa * (g.c - half - g.w * d))
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
                groups.get(i as usize).map_or(sd * sd, |x| x.offset.se * x.offset.se)
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
        group_eta(&self.brands, a.brand) + group_eta(&self.categories, a.category) + group_eta(&self.products, a.product)
    }

    /// The customer size implied by choosing this article-size (shoppers partly correct
    /// for brand and category reputation).
    pub fn choice_centre(&self, a: &ArticleRef) -> f64 {
        let reputation = group_value(&self.brands, a.brand) + group_value(&self.categories, a.category);
        let own = group_value(&self.products, a.product);
        a.pos / self.scale(a.system) + self.align(a.system) + self.globals.k * reputation + self.globals.k_product * own
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

    /// Prior belief about a customer's size from their features (or the population).
    pub fn customer_prior(&self, features: Option<&FeatureValues<'_>>) -> SizeBelief {
        let g = &self.globals;
        match features {
            Some(f) if super::features::FeatureModel::any_present(f) => SizeBelief {
                mean: self.features.predict(f),
                var: g.sd_customer_features * g.sd_customer_features,
            },
            _ => SizeBelief {
                mean: self.features.predict(&FeatureValues {
                    numeric: vec![f64::NAN; self.features.numeric.len()],
                    categorical: vec![None; self.features.categorical.len()],
                }),
                var: g.sd_customer_population * g.sd_customer_population,
            },
        }
    }

    /// Posterior belief from a prior and evidence terms (converged Newton solve).
    pub fn posterior(&self, prior: SizeBelief, terms: &[EvidenceTerm]) -> SizeBelief {
        if terms.is_empty() {
            return prior;
        }
        solve_customer(&self.globals, prior, prior.mean, 12, || terms.iter().copied())
    }

    /// Belief about the shopper's size at a new purchase: the long-run belief widened by
    /// the drift between purchases.
    pub fn at_purchase(&self, belief: SizeBelief) -> SizeBelief {
        let d = self.globals.sd_drift;
        SizeBelief {
            mean: belief.mean,
            var: belief.var + d * d,
        }
    }

    /// Add the size chosen at this purchase (choice centre `x`) to a purchase-time belief.
    pub fn with_choice(&self, belief: SizeBelief, x: f64) -> SizeBelief {
        let sd = self.globals.sd_choice;
        let choice_prec = 1.0 / (sd * sd).max(1e-12);
        let prec = 1.0 / belief.var.max(1e-12) + choice_prec;
        SizeBelief {
            mean: (belief.mean / belief.var.max(1e-12) + x * choice_prec) / prec,
            var: 1.0 / prec,
        }
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
