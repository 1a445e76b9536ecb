//! Batch scoring: resolve an event table's keys against a model once per distinct key,
//! then compute small / fit / large probabilities for every event in parallel.
//! Unseen customers, products, brands and sizes fall back on priors; nothing is dropped.

use super::features::FeatureValues;
use super::fitted::Model;
use super::predict::{ArticleRef, CustomerState, SizeBelief};
use crate::data::schema::{Dict, Events, NONE};
use rayon::prelude::*;

/// How to score events.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreOptions {
    /// Use the purchased size itself as evidence of the shopper's size (default true:
    /// shoppers mostly buy near their size). False scores every row as the server
    /// scores a size on offer.
    pub choice_evidence: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            choice_evidence: true,
        }
    }
}

/// Per-event model lookups, computed once per table.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Model customer index per events customer ([`NONE`] when unseen).
    pub customer: Vec<u32>,
    /// Model product index per events product.
    pub product: Vec<u32>,
    /// Model brand index per events brand.
    pub brand: Vec<u32>,
    /// Model category index per events category.
    pub category: Vec<u32>,
    /// Model label index per events size.
    pub label: Vec<u32>,
    /// Belief per events customer (training posterior, or prior from features).
    pub belief: Vec<CustomerState>,
}

fn map_dict(dict: &Dict, index: &std::collections::HashMap<String, u32>) -> Vec<u32> {
    dict.names
        .iter()
        .map(|n| index.get(n).copied().unwrap_or(NONE))
        .collect()
}

fn pick(map: &[u32], i: u32) -> u32 {
    if i == NONE {
        NONE
    } else {
        map.get(i as usize).copied().unwrap_or(NONE)
    }
}

impl Model {
    /// Resolve an event table's dictionaries against this model.
    pub fn resolve(&self, events: &Events) -> Resolved {
        let customer = map_dict(&events.customers, &self.index.customer);
        // feature columns by name
        let num_cols: Vec<Option<usize>> = self
            .features
            .numeric
            .iter()
            .map(|f| {
                events
                    .features
                    .numeric
                    .iter()
                    .position(|c| c.name == f.name)
            })
            .collect();
        let cat_cols: Vec<Option<usize>> = self
            .features
            .categorical
            .iter()
            .map(|f| {
                events
                    .features
                    .categorical
                    .iter()
                    .position(|c| c.name == f.name)
            })
            .collect();
        let belief = customer
            .par_iter()
            .enumerate()
            .map(|(c, &mc)| {
                if mc != NONE {
                    if let Some(st) = self.known_customer(mc as usize) {
                        return st;
                    }
                }
                let values = FeatureValues {
                    numeric: num_cols
                        .iter()
                        .map(|col| {
                            col.and_then(|k| events.features.numeric.get(k))
                                .and_then(|f| f.values.get(c))
                                .map_or(f64::NAN, |&v| f64::from(v))
                        })
                        .collect(),
                    categorical: cat_cols
                        .iter()
                        .map(|col| {
                            let f = col.and_then(|k| events.features.categorical.get(k))?;
                            let code = *f.codes.get(c)?;
                            f.levels.get(code as usize).map(String::as_str)
                        })
                        .collect(),
                };
                self.customer_prior(Some(&values))
            })
            .collect();
        Resolved {
            customer,
            product: map_dict(&events.products, &self.index.product),
            brand: map_dict(&events.brands, &self.index.brand),
            category: map_dict(&events.categories, &self.index.category),
            label: events
                .sizes
                .iter()
                .map(|l| self.index.label.get(&l.canonical).copied().unwrap_or(NONE))
                .collect(),
            belief,
        }
    }

    /// The model's view of event `i`: its article and the customer's belief
    /// including this purchase's own size choice.
    pub fn event_view(
        &self,
        events: &Events,
        r: &Resolved,
        i: usize,
        opts: &ScoreOptions,
    ) -> Option<(ArticleRef, SizeBelief)> {
        let size = *events.size.get(i)?;
        let label = events.sizes.get(size as usize)?;
        let a = ArticleRef {
            product: pick(&r.product, events.product[i]),
            brand: pick(&r.brand, events.brand[i]),
            category: pick(&r.category, events.category[i]),
            label: pick(&r.label, size),
            system: label.system,
            pos: label.pos,
        };
        let st = r.belief.get(events.customer[i] as usize)?;
        let chosen = opts.choice_evidence.then(|| self.choice_centre(&a));
        Some((a, self.at_purchase(st, chosen)))
    }

    /// Probabilities `[small, fit, large]` for every event, in order.
    pub fn score(&self, events: &Events) -> Vec<[f64; 3]> {
        self.score_with(events, &ScoreOptions::default())
    }

    /// Probabilities for every event with explicit options.
    pub fn score_with(&self, events: &Events, opts: &ScoreOptions) -> Vec<[f64; 3]> {
        let r = self.resolve(events);
        let sc = self.stack_customers(events, &r, opts);
        (0..events.len())
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| match self.event_view(events, &r, i, opts) {
                Some((a, belief)) => self.probs_final(belief, &a, sc.of(events.customer[i])),
                None => [f64::NAN; 3],
            })
            .collect()
    }
}
