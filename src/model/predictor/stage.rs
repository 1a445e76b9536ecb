//! The second stage applied by the [`Predictor`]: its prediction caches
//! ([`PreparedStage`]) and the methods that refine structural probabilities with it.

use super::Predictor;
use crate::data::schema::NONE;
use crate::data::OutcomeMap;
use crate::model::features::FeatureValues;
use crate::model::predict::{ArticleRef, SizeBelief};
use crate::model::query::Shopper;
use crate::model::stack::{
    count_at, global_rates, level_features, LevelCounts, LevelFeatures, OfferTail, PreparedStage,
    Regime, Stack, StackCache, StackCustomer, StackInput, StackTables,
};

/// The standard outcome vocabulary, built once.
fn outcomes() -> &'static OutcomeMap {
    static MAP: std::sync::OnceLock<OutcomeMap> = std::sync::OnceLock::new();
    MAP.get_or_init(OutcomeMap::standard)
}

impl Predictor {
    /// Fold the learner's standardisation and cache the level features of every product
    /// and product-in-size of the model (in its own brand and category).
    pub(crate) fn prepare_stage(&self, stack: &Stack) -> PreparedStage {
        let global = global_rates(stack.tables.global);
        let article = |prod: u32, label: u32| {
            let info = self.product_info.get(prod as usize);
            let a = ArticleRef {
                product: prod,
                brand: info.map_or(NONE, |i| i.brand),
                category: info.map_or(NONE, |i| i.category),
                label,
                system: crate::data::schema::SizeSystem::Numeric,
                pos: 0.0,
            };
            level_features(
                &stack.smoothing,
                global,
                &self.level_counts(&stack.tables, &a),
            )
        };
        PreparedStage {
            purchase: stack.purchase.fold(),
            levels: StackCache {
                product: (0..self.products.len() as u32)
                    .map(|pi| article(pi, NONE))
                    .collect(),
                article_size: self
                    .article_sizes
                    .iter()
                    .map(|x| article(x.product, x.label))
                    .collect(),
            },
        }
    }

    /// The level counts of an article in `tables`.
    pub(crate) fn level_counts(&self, tables: &StackTables, a: &ArticleRef) -> LevelCounts {
        let (down, up) = self.neighbour_sizes(a);
        LevelCounts {
            category: count_at(&tables.category, a.category),
            brand: count_at(&tables.brand, a.brand),
            product: count_at(&tables.product, a.product),
            article_size: count_at(
                &tables.article_size,
                self.article_size_index(a).unwrap_or(NONE),
            ),
            down: count_at(&tables.article_size, down),
            up: count_at(&tables.article_size, up),
        }
    }

    /// Level features of an article under the second stage: cached for known products in
    /// their own brand and category, computed from the counts otherwise.
    pub fn levels(&self, stack: &Stack, a: &ArticleRef) -> LevelFeatures {
        self.levels_at(stack, a, self.article_size_index(a))
    }

    /// [`Predictor::levels`] with the product-in-size index already looked up.
    pub fn levels_at(&self, stack: &Stack, a: &ArticleRef, art: Option<u32>) -> LevelFeatures {
        let art = art.unwrap_or(NONE);
        if let (Some(info), Some(prepared)) =
            (self.product_info.get(a.product as usize), self.stage())
        {
            if info.brand == a.brand && info.category == a.category {
                let hit = if art == NONE {
                    prepared.levels.product.get(a.product as usize)
                } else {
                    prepared.levels.article_size.get(art as usize)
                };
                if let Some(l) = hit {
                    return *l;
                }
            }
        }
        level_features(
            &stack.smoothing,
            global_rates(stack.tables.global),
            &self.level_counts(&stack.tables, a),
        )
    }

    /// Second-stage probabilities for raw inputs of a regime (the prepared purchase
    /// learner when the predictor has one, else the stored coefficients).
    pub fn stage_predict(&self, stack: &Stack, x: &StackInput<'_>, regime: Regime) -> [f64; 3] {
        match (regime, &stack.offer) {
            (Regime::Purchase, _) => match self.stage() {
                Some(p) => stack.purchase.predict(&p.purchase, x),
                None => stack.purchase.predict(&stack.purchase.fold(), x),
            },
            (Regime::Offer, Some(c)) => c.predict(x),
            (Regime::Offer, None) => x.probs,
        }
    }

    /// Training outcome counts of model customer `c` (zeros for [`NONE`], unknown
    /// customers, or a model without a second stage).
    pub fn customer_counts(&self, c: u32) -> [f64; 3] {
        self.stack
            .as_ref()
            .and_then(|s| count_at(&s.tables.customer, c))
            .unwrap_or([0.0; 3])
    }

    /// Body-feature row of feature values (the feature model's design row less its
    /// intercept).
    pub fn body_row(&self, values: &FeatureValues<'_>) -> Vec<f64> {
        let mut row = vec![0.0; self.features.dim()];
        self.features.encode_into(values, &mut row);
        row.split_off(1.min(row.len()))
    }

    /// The customer's prior size from their body row (the feature model's prediction).
    pub fn prior_mean(&self, body: &[f64]) -> f64 {
        let c = &self.features.coef;
        c.first().copied().unwrap_or(0.0)
            + c.iter().skip(1).zip(body).map(|(a, b)| a * b).sum::<f64>()
    }

    /// The second stage's view of a shopper: a known customer's training counts plus the
    /// small / fit / large outcomes of the request's history, and their body row, for
    /// sizes on offer.
    pub fn shopper_stack(&self, shopper: &Shopper<'_>) -> StackCustomer {
        let mut counts = [0.0; 3];
        let mut pos = 0.0;
        for h in &shopper.history {
            let class = outcomes().classify(h.outcome).and_then(|o| o.class());
            let label = crate::data::parse_size(h.size, h.size_system);
            if let (Some(k), Ok(l)) = (class, label) {
                counts[k] += 1.0;
                pos += l.pos / self.scale(l.system) + self.align(l.system);
            }
        }
        self.shopper_stack_with(shopper, counts, pos)
    }

    /// [`Predictor::shopper_stack`] with the request history's small / fit / large counts and
    /// the sum of their label positions already computed (the recommend path has parsed
    /// every past purchase through its serving index).
    pub(crate) fn shopper_stack_with(
        &self,
        shopper: &Shopper<'_>,
        history_counts: [f64; 3],
        history_pos: f64,
    ) -> StackCustomer {
        let Some(stack) = &self.stack else {
            return StackCustomer::default();
        };
        let mc = shopper
            .customer_id
            .and_then(|id| self.customer_index(id))
            .unwrap_or(NONE);
        let mut counts = self.customer_counts(mc);
        let mut pos = stack
            .tables
            .customer_pos
            .get(mc as usize)
            .copied()
            .unwrap_or(0.0);
        for (c, h) in counts.iter_mut().zip(history_counts) {
            *c += h;
        }
        pos += history_pos;
        let values = FeatureValues::from_query(&self.features, shopper);
        let body = self.body_row(&values);
        StackCustomer {
            regime: Regime::Offer,
            rates: stack.customer_rates(counts, pos),
            prior: self.prior_mean(&body),
            body,
        }
    }

    /// The final probabilities `[small, fit, large]` of a purchase-time size belief in an
    /// article for a customer: the structural probabilities ([`Predictor::probs_article`]),
    /// refined by the second stage when the model has one.
    pub fn probs_final(
        &self,
        belief: SizeBelief,
        a: &ArticleRef,
        customer: &StackCustomer,
    ) -> [f64; 3] {
        self.probs_final_at((belief, a, self.article_size_index(a)), customer)
    }

    /// [`Predictor::probs_final`] with the product-in-size index already looked up
    /// ([`Predictor::article_size_index`]).
    pub(crate) fn probs_final_at(
        &self,
        (belief, a, art): (SizeBelief, &ArticleRef, Option<u32>),
        customer: &StackCustomer,
    ) -> [f64; 3] {
        let Some(stack) = &self.stack else {
            return self.probs_article_with(belief, a, art);
        };
        let levels = self.levels_at(stack, a, art);
        self.stage_predict(
            stack,
            &self.stack_input_at((belief, a, art), levels, customer),
            customer.regime,
        )
    }

    /// [`Predictor::probs_final_at`] for one of the sizes on offer of one product for one
    /// shopper: the offer calibration's size-invariant part ([`OfferCalibration::tail`])
    /// is computed for the first size and kept in `tail` for the others (same numbers as
    /// computing it again: the features it sums do not depend on the size).
    pub(crate) fn probs_offer_at(
        &self,
        (belief, a, art): (SizeBelief, &ArticleRef, Option<u32>),
        customer: &StackCustomer,
        tail: &mut Option<OfferTail>,
    ) -> [f64; 3] {
        let offer = self
            .stack
            .as_ref()
            .and_then(|s| Some((s, s.offer.as_ref()?)));
        let Some((stack, offer)) = offer else {
            return self.probs_final_at((belief, a, art), customer);
        };
        if customer.regime != Regime::Offer || !offer.size_invariant_tail() {
            return self.probs_final_at((belief, a, art), customer);
        }
        let levels = self.levels_at(stack, a, art);
        let x = self.stack_input_at((belief, a, art), levels, customer);
        if tail.is_none() {
            *tail = offer.tail(&x);
        }
        match tail {
            Some(t) => offer.predict_with(&x, *t),
            None => x.probs,
        }
    }

    /// The second stage's raw inputs for a purchase-time belief in an article.
    pub fn stack_input<'a>(
        &self,
        (belief, a): (SizeBelief, &ArticleRef),
        levels: LevelFeatures,
        customer: &'a StackCustomer,
    ) -> StackInput<'a> {
        self.stack_input_at((belief, a, self.article_size_index(a)), levels, customer)
    }

    /// [`Predictor::stack_input`] with the product-in-size index already looked up.
    fn stack_input_at<'a>(
        &self,
        (belief, a, art): (SizeBelief, &ArticleRef, Option<u32>),
        levels: LevelFeatures,
        customer: &'a StackCustomer,
    ) -> StackInput<'a> {
        let t = self.true_size_with(a, art);
        let var = belief.var + self.article_var_with(a, art);
        let structural = self.probs_for(
            SizeBelief {
                mean: belief.mean,
                var,
            },
            t,
            self.band(a),
        );
        let (smallest, largest) = self.size_extreme(a);
        StackInput {
            probs: structural,
            gap: belief.mean - t,
            gap_sd: var.sqrt(),
            prior_gap: customer.prior - t,
            choice_gap: self.choice_centre(a) - t,
            label_pos: self.label_position(a),
            smallest,
            largest,
            levels,
            customer: customer.rates,
            body: &customer.body,
        }
    }

    /// The label's position on the common scale (size steps).
    pub fn label_position(&self, a: &ArticleRef) -> f64 {
        a.pos / self.scale(a.system) + self.align(a.system)
    }

    /// Product-in-size indices of the product's next smaller and next larger size seen in
    /// training ([`NONE`] where there is none).
    pub fn neighbour_sizes(&self, a: &ArticleRef) -> (u32, u32) {
        if a.product == NONE || a.label == NONE {
            return (NONE, NONE);
        }
        let Some(info) = self.product_info.get(a.product as usize) else {
            return (NONE, NONE);
        };
        let Some(k) = info.sizes.iter().position(|&l| l == a.label) else {
            return (NONE, NONE);
        };
        let at = |i: Option<usize>| {
            i.and_then(|i| info.sizes.get(i))
                .and_then(|&l| self.catalog().article_size.get(&(a.product, l)).copied())
                .unwrap_or(NONE)
        };
        (at(k.checked_sub(1)), at(k.checked_add(1)))
    }

    /// Whether the label is the product's (smallest, largest) size seen in training
    /// (both false for unknown products or labels, or a product seen in one size).
    pub fn size_extreme(&self, a: &ArticleRef) -> (bool, bool) {
        if a.product == NONE || a.label == NONE {
            return (false, false);
        }
        match self.product_info.get(a.product as usize) {
            Some(info) if info.sizes.len() > 1 => (
                info.sizes.first() == Some(&a.label),
                info.sizes.last() == Some(&a.label),
            ),
            _ => (false, false),
        }
    }
}
