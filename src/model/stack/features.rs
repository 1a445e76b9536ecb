//! The second stage's feature vector: the groups of a [`FeatureSet`] computed from a
//! [`StackInput`], for the purchase learner and the offer calibration.

use super::*;

/// Raw inputs of the second stage for one event.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StackInput<'a> {
    /// Structural probabilities `[small, fit, large]`.
    pub probs: [f64; 3],
    /// Mean gap customer − article (size steps).
    pub gap: f64,
    /// Standard deviation of the gap.
    pub gap_sd: f64,
    /// Gap from the customer's prior (body features or population) alone.
    pub prior_gap: f64,
    /// Gap from the size chosen alone (its choice centre − the article's true size).
    pub choice_gap: f64,
    /// The label's position on the common scale.
    pub label_pos: f64,
    /// The label is the product's smallest size seen in training.
    pub smallest: bool,
    /// The label is the product's largest size seen in training.
    pub largest: bool,
    /// Product / size / category / brand rate features.
    pub levels: LevelFeatures,
    /// Customer rate features (their other events).
    pub customer: CustomerRates,
    /// The customer's body-feature design row without its intercept; empty when unknown.
    pub body: &'a [f64],
}

/// Number of raw features (including the intercept) of a feature map.
pub fn n_features(spec: &FeatureSpec) -> usize {
    let mut n = 0usize;
    features(spec, &StackInput::default(), &mut |_| n += 1);
    n
}

/// The raw (unstandardised) features of one event, in order, into `sink`.
pub fn features<F: FnMut(f64)>(spec: &FeatureSpec, x: &StackInput<'_>, sink: &mut F) {
    let set = spec.set;
    let p = x.probs;
    let lf = p[1].max(P_FLOOR).ln();
    let ls = p[0].max(P_FLOOR).ln() - lf;
    let ll = p[2].max(P_FLOOR).ln() - lf;
    let lv = &x.levels;
    let cu = &x.customer;
    sink(1.0);
    sink(ls);
    sink(ll);
    if set.gap {
        sink(x.gap);
        sink(x.gap_sd);
        sink(x.prior_gap);
        sink(x.choice_gap);
        for k in &spec.gap_knots {
            sink((x.gap - k).max(0.0));
        }
    }
    if set.product {
        lv.product.iter().for_each(|&v| sink(v));
        sink(lv.product_n);
        if set.interactions {
            lv.product.iter().for_each(|&v| sink(v * lv.product_n));
        }
    }
    if set.article_size {
        sink(lv.size[0]);
        sink(lv.size[1]);
        sink(lv.size_n);
        if set.interactions {
            sink(lv.size[0] * lv.size_n);
            sink(lv.size[1] * lv.size_n);
        }
    }
    if set.customer {
        cu.log_odds.iter().for_each(|&v| sink(v));
        sink(cu.n);
        if set.interactions {
            cu.log_odds.iter().for_each(|&v| sink(v * cu.n));
            sink(ls * cu.n);
            sink(ll * cu.n);
        }
    }
    if set.group {
        lv.category.iter().for_each(|&v| sink(v));
        lv.brand.iter().for_each(|&v| sink(v));
    }
    if set.body {
        for j in 0..spec.body_dim {
            sink(x.body.get(j).copied().unwrap_or(0.0));
        }
    }
    if set.shape {
        for k in &spec.gap_knots {
            sink((x.prior_gap - k).max(0.0));
        }
        for k in &spec.gap_knots {
            sink((x.choice_gap - k).max(0.0));
        }
        sink(x.gap * cu.n);
        sink(x.prior_gap * cu.n);
    }
    if set.label {
        sink(x.label_pos);
        for k in &spec.label_knots {
            sink((x.label_pos - k).max(0.0));
        }
        sink(f64::from(u8::from(x.smallest)));
        sink(f64::from(u8::from(x.largest)));
    }
    if set.pairs {
        let base: [f64; PAIR_BASE] = [
            ls,
            ll,
            x.prior_gap,
            x.choice_gap,
            lv.product[0],
            lv.product[1],
            cu.log_odds[0] * cu.n,
            cu.log_odds[1] * cu.n,
        ];
        for i in 0..PAIR_BASE {
            for j in i..PAIR_BASE {
                sink(base[i] * base[j]);
            }
        }
    }
    if set.neighbours {
        lv.down.iter().for_each(|&v| sink(v));
        lv.up.iter().for_each(|&v| sink(v));
    }
    if set.history {
        let d = cu.mean_pos.map_or(0.0, |m| m - x.label_pos);
        sink(d);
        sink(d * cu.n);
        sink((d - 1.0).max(0.0));
        sink((-d - 1.0).max(0.0));
    }
}

/// Softmax probabilities `[small, fit, large]` of the two logits (fit is the reference).
#[inline]
pub fn softmax2(es: f64, el: f64) -> [f64; 3] {
    let m = es.max(el).max(0.0);
    let (a, b, c) = ((es - m).exp(), (-m).exp(), (el - m).exp());
    let s = a + b + c;
    [a / s, b / s, c / s]
}

pub(super) fn count_at(table: &[Counts], i: u32) -> Option<[f64; 3]> {
    if i == NONE {
        return None;
    }
    table.get(i as usize).copied().map(as_f64)
}

/// The level counts of an article of `model` in `tables`.
pub(super) fn level_counts(model: &Predictor, tables: &StackTables, a: &ArticleRef) -> LevelCounts {
    let (down, up) = model.neighbour_sizes(a);
    LevelCounts {
        category: count_at(&tables.category, a.category),
        brand: count_at(&tables.brand, a.brand),
        product: count_at(&tables.product, a.product),
        article_size: count_at(
            &tables.article_size,
            model.article_size_index(a).unwrap_or(NONE),
        ),
        down: count_at(&tables.article_size, down),
        up: count_at(&tables.article_size, up),
    }
}

impl StackLogit {
    /// Number of features per logit.
    pub fn dim(&self) -> usize {
        self.spec.mean.len()
    }

    /// The standardisation folded into the coefficients (what [`StackLogit::predict`]
    /// reads; built once per predictor, see `PreparedStage`).
    pub fn fold(&self) -> Folded {
        let p = self.dim();
        let sp = &self.spec;
        let mut f = Folded::default();
        if self.coef.len() == 2 * p && sp.scale.len() == p && sp.lo.len() == p && sp.hi.len() == p {
            for j in 0..p {
                let s = sp.scale[j];
                let w = [self.coef[j] / s, self.coef[p + j] / s];
                f.offset[0] -= w[0] * sp.mean[j];
                f.offset[1] -= w[1] * sp.mean[j];
                f.weight.push(w);
                f.clamp
                    .push([sp.mean[j] + s * sp.lo[j], sp.mean[j] + s * sp.hi[j]]);
            }
        }
        f
    }

    /// Probabilities for raw inputs given the folded coefficients ([`StackLogit::fold`];
    /// the structural ones if the learner is inconsistent).
    pub fn predict(&self, folded: &Folded, x: &StackInput<'_>) -> [f64; 3] {
        let c = folded;
        let p = self.dim();
        if c.weight.len() != p {
            return self.predict_unprepared(x);
        }
        let (mut es, mut el) = (c.offset[0], c.offset[1]);
        let mut j = 0usize;
        features(&self.spec, x, &mut |v| {
            if let (Some(w), Some(b)) = (c.weight.get(j), c.clamp.get(j)) {
                let v = v.clamp(b[0], b[1]);
                es += w[0] * v;
                el += w[1] * v;
            }
            j += 1;
        });
        let out = softmax2(es, el);
        if j == p && out.iter().all(|v| v.is_finite()) {
            out
        } else {
            x.probs
        }
    }

    /// [`StackLogit::predict`] straight from the standardised coefficients.
    pub(super) fn predict_unprepared(&self, x: &StackInput<'_>) -> [f64; 3] {
        let sp = &self.spec;
        let p = self.dim();
        if self.coef.len() != 2 * p {
            return x.probs;
        }
        let (mut es, mut el) = (0.0, 0.0);
        let mut j = 0usize;
        features(sp, x, &mut |v| {
            if j < p {
                let z = ((v - sp.mean[j]) / sp.scale[j]).clamp(sp.lo[j], sp.hi[j]);
                es += self.coef[j] * z;
                el += self.coef[p + j] * z;
            }
            j += 1;
        });
        let out = softmax2(es, el);
        if j == p && out.iter().all(|v| v.is_finite()) {
            out
        } else {
            x.probs
        }
    }
}

impl Stack {
    /// Customer rate features from outcome counts and the sum of their label positions.
    pub fn customer_rates(&self, counts: [f64; 3], pos_sum: f64) -> CustomerRates {
        customer_rates(
            &self.smoothing,
            global_rates(self.tables.global),
            counts,
            pos_sum,
        )
    }
}
