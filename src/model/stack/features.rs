//! The second stage's feature vector: the groups of a [`FeatureSet`] computed from a
//! [`StackInput`], for the purchase learner and the offer calibration; the learner's
//! prediction from it.

use super::data::{FeatureSpec, Folded, Regime, Stack, StackLogit};
use super::rates::{customer_rates, global_rates, CustomerRates, LevelFeatures, P_FLOOR};

/// Signals whose pairwise products the `pairs` group adds.
const PAIR_BASE: usize = 8;

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

/// The raw offer features: [`features`] with the structural log-odds replaced by the
/// fit logit and the small-vs-large log-odds.
pub fn offer_features(spec: &FeatureSpec, x: &StackInput<'_>, out: &mut Vec<f64>) {
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
    pub(crate) fn predict_unprepared(&self, x: &StackInput<'_>) -> [f64; 3] {
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

/// What the second stage knows about a customer (rates of their other events, their
/// body-feature row) and which question is asked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackCustomer {
    /// Purchase (chosen size is evidence) or size on offer.
    pub regime: Regime,
    /// Outcome-rate features.
    pub rates: CustomerRates,
    /// Body-feature design row without the intercept (empty without a second stage).
    pub body: Vec<f64>,
    /// Prior size from the body row (`Predictor::prior_mean`).
    pub prior: f64,
}

/// [`StackCustomer`]s of an event table's customers.
#[derive(Clone, Debug, Default)]
pub struct StackCustomers {
    list: Vec<StackCustomer>,
    unknown: StackCustomer,
}

impl StackCustomers {
    /// The views of an event table's customers, in its order.
    pub fn new(list: Vec<StackCustomer>) -> Self {
        StackCustomers {
            list,
            unknown: StackCustomer::default(),
        }
    }

    /// Customer `c` of the event table (an empty view when out of range).
    pub fn of(&self, c: u32) -> &StackCustomer {
        self.list.get(c as usize).unwrap_or(&self.unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stack::FeatureSet;

    #[test]
    fn softmax_hand_values() {
        let p = softmax2(0.0, 0.0);
        for v in p {
            assert!((v - 1.0 / 3.0).abs() < 1e-15);
        }
        // e^1 : 1 : e^-1
        let p = softmax2(1.0, -1.0);
        let z = 1f64.exp() + 1.0 + (-1f64).exp();
        assert!((p[0] - 1f64.exp() / z).abs() < 1e-12);
        assert!((p[1] - 1.0 / z).abs() < 1e-12);
        // large logits stay finite
        assert!(softmax2(800.0, -800.0).iter().all(|v| v.is_finite()));
    }

    fn spec(set: FeatureSet) -> FeatureSpec {
        FeatureSpec {
            set,
            gap_knots: vec![-1.0, 0.0, 1.0],
            label_knots: vec![0.0, 1.0],
            body_dim: 2,
            mean: Vec::new(),
            scale: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
        }
    }

    #[test]
    fn feature_counts_and_values() {
        let none = FeatureSet {
            gap: false,
            product: false,
            article_size: false,
            customer: false,
            group: false,
            interactions: false,
            body: false,
            shape: false,
            label: false,
            pairs: false,
            neighbours: false,
            history: false,
        };
        // intercept and the two structural log-odds
        assert_eq!(n_features(&spec(none)), 3);
        // 3 + gap 7 + product 7 + size 5 + customer 9 + group 4 + body 2 + shape 8
        //   + label 5 + pairs 36 + neighbours 6 + history 4
        assert_eq!(n_features(&spec(FeatureSet::FULL)), 96);
        let x = StackInput {
            probs: [0.2, 0.5, 0.3],
            gap: 0.5,
            ..Default::default()
        };
        let mut row = Vec::new();
        features(&spec(none), &x, &mut |v| row.push(v));
        assert_eq!(row[0], 1.0);
        assert!((row[1] - (0.4f64).ln()).abs() < 1e-12);
        assert!((row[2] - (0.6f64).ln()).abs() < 1e-12);
    }

    #[test]
    fn offer_features_hand_values() {
        // P = (0.2, 0.5, 0.3): logit P(fit) = 0, ln(P(small)/P(large)) = ln(2/3)
        let x = StackInput {
            probs: [0.2, 0.5, 0.3],
            ..Default::default()
        };
        let mut row = Vec::new();
        offer_features(&spec(FeatureSet::OFFER), &x, &mut row);
        assert_eq!(row[0], 1.0);
        assert!(row[1].abs() < 1e-12, "{}", row[1]);
        assert!((row[2] - (2.0f64 / 3.0).ln()).abs() < 1e-12);
    }

    #[test]
    fn folded_prediction_matches_standardised() {
        let mut sp = spec(FeatureSet::MAIN);
        let p = n_features(&sp);
        sp.mean = (0..p)
            .map(|j| if j == 0 { 0.0 } else { 0.1 * j as f64 })
            .collect();
        sp.scale = (0..p)
            .map(|j| if j == 0 { 1.0 } else { 0.5 + 0.05 * j as f64 })
            .collect();
        sp.lo = vec![-3.0; p];
        sp.hi = vec![3.0; p];
        let lg = StackLogit {
            spec: sp,
            coef: (0..2 * p)
                .map(|j| ((j * 7) % 11) as f64 / 10.0 - 0.5)
                .collect(),
            lambda: 1.0,
            select: crate::model::stack::Select::default(),
            cv: Vec::new(),
        };
        let body = [0.3, -1.0];
        let x = StackInput {
            probs: [0.15, 0.7, 0.15],
            gap: 0.4,
            gap_sd: 0.9,
            prior_gap: 40.0, // far outside: clamped
            choice_gap: -0.2,
            levels: LevelFeatures {
                product: [-1.0, -2.0, -0.5],
                product_n: 2.0,
                ..Default::default()
            },
            body: &body,
            ..Default::default()
        };
        // unfolded coefficients (an empty fold) fall back to the standardised path
        let slow = lg.predict(&Folded::default(), &x);
        assert_eq!(slow, lg.predict_unprepared(&x));
        let folded = lg.fold();
        assert_eq!(folded.weight.len(), p);
        let fast = lg.predict(&folded, &x);
        for k in 0..3 {
            assert!((slow[k] - fast[k]).abs() < 1e-12, "{slow:?} {fast:?}");
        }
        assert!((fast.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
