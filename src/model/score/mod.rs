//! Batch scoring: resolve an event table's keys against a model once per distinct key,
//! then compute small / fit / large probabilities for every event in parallel.
//! Unseen customers, products, brands and sizes fall back on priors; nothing is dropped.

mod resolve;

use self::resolve::FeatureColumns;
pub use self::resolve::Resolved;

use super::features::FeatureValues;
use super::predict::SizeBelief;
use super::predictor::Predictor;
use super::stack::{Regime, Stack, StackCustomer, StackCustomers};
use crate::data::schema::{Events, NONE};
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

/// Rows per parallel work item of [`Predictor::score_with`]: fixed, so the split (and with
/// it every result) does not depend on the number of threads.
pub const SCORE_CHUNK: usize = 8192;

/// Rows per customer from which the second stage's scoring builds a table of every
/// customer's view once (each view costs a feature encoding: with many rows per customer
/// the table saves that work), below which each row makes its own (no table).
const ROWS_PER_CUSTOMER_TABLE: usize = 4;

/// The regime the options score in: purchase (the chosen size is evidence) or offer.
fn regime_of(opts: &ScoreOptions) -> Regime {
    if opts.choice_evidence {
        Regime::Purchase
    } else {
        Regime::Offer
    }
}

/// A brand, category or product as scoring reads it: offset, band log-width and the
/// variance its level adds to an article's true size.
#[derive(Clone, Copy, Debug, Default)]
struct GroupTerm {
    value: f64,
    /// `e^eta` of the band log-width: a row's band factor is the product over levels.
    exp_eta: f64,
    var: f64,
}

/// An events size as scoring reads it.
#[derive(Clone, Copy, Debug)]
struct SizeTerm {
    /// `pos / scale + align`: where the label sits on the common scale.
    base: f64,
    /// `base` + the label's own offset: the start of the article's true size.
    t: f64,
    /// Variance of the label offset.
    var: f64,
}

/// A customer's purchase-time belief, in the two pieces a row needs: the mean is
/// `f + gain·(x − s)` for the row's choice centre `x` (gain 0 without choice evidence).
#[derive(Clone, Copy, Debug)]
struct BeliefTerm {
    f: f64,
    s: f64,
    gain: f64,
    var: f64,
}

/// Everything per-row scoring reads, computed once per table: per brand / category /
/// product / size / customer terms (slot `len` of each group table is the unknown key),
/// and for each product the product-in-size offsets by events size index.
struct ScoreTables {
    brands: Vec<GroupTerm>,
    categories: Vec<GroupTerm>,
    products: Vec<GroupTerm>,
    /// Product-in-size offsets, grouped by events product: (events size index, offset,
    /// variance).
    article_sizes: Vec<(u32, f64, f64)>,
    /// Per events product: its range in `article_sizes` (few entries each).
    article_ranges: Vec<(u32, u32)>,
    /// Variance of a product-in-size the model does not know.
    unknown_article_var: f64,
    sizes: Vec<SizeTerm>,
    beliefs: Vec<BeliefTerm>,
}

/// Slot of key `i` in a table of `len` keys plus the unknown slot.
#[inline]
fn slot(i: u32, len: usize) -> usize {
    (i as usize).min(len)
}

impl ScoreTables {
    fn new(m: &Predictor, events: &Events, r: &Resolved, opts: &ScoreOptions) -> Self {
        let g = &m.globals;
        // each term as Fitted::true_size / band / article_var compute it for one key
        let group = |ids: &[u32], groups: &[super::fitted::GroupParams], sd: f64| {
            let mut v: Vec<GroupTerm> = ids
                .iter()
                .chain(std::iter::once(&NONE))
                .map(|&i| GroupTerm {
                    value: super::fitted::group_value(groups, i),
                    exp_eta: super::fitted::group_eta(groups, i).exp(),
                    var: super::fitted::group_var(groups, i, sd),
                })
                .collect();
            v.shrink_to_fit();
            v
        };
        let brands = group(&r.brand, &m.brands, g.sd_brand);
        let categories = group(&r.category, &m.categories, g.sd_category);
        let products = group(&r.product, &m.products, g.sd_product);
        let sizes = events
            .sizes
            .iter()
            .zip(&r.label)
            .map(|(l, &ml)| {
                let base = l.pos / m.scale(l.system) + m.align(l.system);
                let (t, var) = if ml == NONE {
                    (base, g.sd_label * g.sd_label)
                } else {
                    match m.labels.get(ml as usize) {
                        Some(lp) => (base + lp.offset.value, lp.offset.se * lp.offset.se),
                        None => (base, g.sd_label * g.sd_label),
                    }
                };
                SizeTerm { base, t, var }
            })
            .collect();
        // model product -> [(model label, article-size index)], as the index map has them
        let mut by_product: Vec<Vec<(u32, u32)>> = vec![Vec::new(); m.products.len()];
        for (&(p, l), &i) in &m.catalog().article_size {
            if let Some(v) = by_product.get_mut(p as usize) {
                v.push((l, i));
            }
        }
        // model label -> events size indices
        let mut label_sizes: Vec<Vec<u32>> = vec![Vec::new(); m.labels.len()];
        for (k, &ml) in r.label.iter().enumerate() {
            if let Some(v) = label_sizes.get_mut(ml as usize) {
                v.push(k as u32);
            }
        }
        let mut article_sizes = Vec::new();
        let article_ranges = r
            .product
            .iter()
            .map(|&mp| {
                let start = article_sizes.len() as u32;
                for &(l, i) in by_product.get(mp as usize).map_or(&[][..], Vec::as_slice) {
                    let Some(a) = m.article_sizes.get(i as usize) else {
                        continue;
                    };
                    for &k in label_sizes.get(l as usize).map_or(&[][..], Vec::as_slice) {
                        article_sizes.push((k, a.offset.value, a.offset.se * a.offset.se));
                    }
                }
                (start, article_sizes.len() as u32)
            })
            .collect();
        let drift_var = g.sd_drift * g.sd_drift;
        let choice_var = g.sd_choice * g.sd_choice;
        let beliefs = r
            .belief
            .par_iter()
            .with_min_len(4096)
            .map(|st| {
                // Fitted::at_purchase / purchase_belief, split into the per-customer part
                let ss = st.ss + drift_var;
                let fs = st.ss + st.su + drift_var;
                let ff = st.ss + 2.0 * st.su + st.uu + drift_var;
                let f = st.s + st.u;
                if opts.choice_evidence {
                    let gain = fs / (ss + choice_var).max(1e-12);
                    BeliefTerm {
                        f,
                        s: st.s,
                        gain,
                        var: (ff - gain * fs).max(1e-12),
                    }
                } else {
                    BeliefTerm {
                        f,
                        s: st.s,
                        gain: 0.0,
                        var: ff,
                    }
                }
            })
            .collect();
        ScoreTables {
            brands,
            categories,
            products,
            article_sizes,
            article_ranges,
            unknown_article_var: if m.article_sizes.is_empty() {
                0.0
            } else {
                g.sd_article_size * g.sd_article_size
            },
            sizes,
            beliefs,
        }
    }

    /// Probabilities of event `i` (NaN when its size or customer is missing); the same
    /// numbers as [`Predictor::event_view`] + [`Predictor::probs_article`], term by term (up to
    /// rounding in the band factor).
    #[inline]
    fn row(&self, m: &Predictor, events: &Events, i: usize, choice: bool) -> [f64; 3] {
        const MISSING: [f64; 3] = [f64::NAN; 3];
        let g = &m.globals;
        let (Some(&size), Some(&cust)) = (events.size.get(i), events.customer.get(i)) else {
            return MISSING;
        };
        let (Some(sz), Some(bt)) = (
            self.sizes.get(size as usize),
            self.beliefs.get(cust as usize),
        ) else {
            return MISSING;
        };
        let at = |v: &[u32], tab: &[GroupTerm]| {
            let k = v.get(i).copied().unwrap_or(NONE);
            tab.get(slot(k, tab.len() - 1)).copied().unwrap_or_default()
        };
        let b = at(&events.brand, &self.brands);
        let c = at(&events.category, &self.categories);
        let p_key = events.product.get(i).copied().unwrap_or(NONE);
        let p = self
            .products
            .get(slot(p_key, self.products.len() - 1))
            .copied()
            .unwrap_or_default();
        let article = self
            .article_ranges
            .get(p_key as usize)
            .and_then(|&(lo, hi)| self.article_sizes.get(lo as usize..hi as usize))
            .and_then(|v| v.iter().find(|x| x.0 == size));
        let mut t = sz.t + b.value + c.value + p.value;
        let as_var = match article {
            Some(&(_, value, var)) => {
                t += value;
                var
            }
            None => self.unknown_article_var,
        };
        let var_article = sz.var + b.var + c.var + p.var + as_var;
        // e^(eta_b + eta_c + eta_p) without an exp per row (equal up to rounding)
        let exp_eta = b.exp_eta * c.exp_eta * p.exp_eta;
        let mean = if choice {
            let x = sz.base + g.k * (b.value + c.value) + g.k_product * p.value;
            bt.f + bt.gain * (x - bt.s)
        } else {
            bt.f
        };
        m.probs_for_exp(
            SizeBelief {
                mean,
                var: bt.var + var_article,
            },
            t,
            exp_eta,
        )
    }
}

impl Predictor {
    /// Probabilities `[small, fit, large]` for every event, in order.
    pub fn score(&self, events: &Events) -> Vec<[f64; 3]> {
        self.score_with(events, &ScoreOptions::default())
    }

    /// Probabilities for every event with explicit options: per-key terms (true size,
    /// band, variance, customer belief) are computed once per table, then rows are
    /// scored in parallel in fixed chunks of [`SCORE_CHUNK`] without allocating. The
    /// numbers are those of [`Predictor::event_view`] + [`Predictor::probs_article`] per row up
    /// to rounding (the band factor is a product of per-level `e^eta`).
    pub fn score_with(&self, events: &Events, opts: &ScoreOptions) -> Vec<[f64; 3]> {
        let r = self.resolve(events);
        if let Some(stack) = &self.stack {
            // the second stage needs each row's own inputs: the per-row path, in parallel
            let row = |i: usize, sc: &StackCustomer| match self.event_view(events, &r, i, opts) {
                Some((a, belief)) => self.probs_final(belief, &a, sc),
                None => [f64::NAN; 3],
            };
            if events.len() <= ROWS_PER_CUSTOMER_TABLE * events.customers.len() {
                // few rows per customer (a held-out part, a request): each row makes its
                // customer's view, instead of a table of every customer's (~120 bytes
                // each: 178 MB for the 1.5M customers of 10M synthetic events' held-out
                // part, the top of the train's memory)
                let cols = FeatureColumns::new(self, events);
                let regime = regime_of(opts);
                return (0..events.len())
                    .into_par_iter()
                    .with_min_len(4096)
                    .map_init(FeatureValues::default, |values, i| {
                        let c = events.customer[i] as usize;
                        let sc = self.stack_customer(stack, (&cols, &r), (c, values), regime);
                        row(i, &sc)
                    })
                    .collect();
            }
            let sc = self.stack_customers(events, &r, opts);
            return (0..events.len())
                .into_par_iter()
                .with_min_len(4096)
                .map(|i| row(i, sc.of(events.customer[i])))
                .collect();
        }
        let tables = ScoreTables::new(self, events, &r, opts);
        let mut out = vec![[f64::NAN; 3]; events.len()];
        out.par_chunks_mut(SCORE_CHUNK)
            .enumerate()
            .for_each(|(k, chunk)| {
                let first = k * SCORE_CHUNK;
                for (j, o) in chunk.iter_mut().enumerate() {
                    *o = tables.row(self, events, first + j, opts.choice_evidence);
                }
            });
        out
    }

    /// Probabilities for every event the slow way, one [`Predictor::event_view`] +
    /// [`Predictor::probs_final`] per row: the reference [`Predictor::score_with`] is tested against.
    pub fn score_reference(&self, events: &Events, opts: &ScoreOptions) -> Vec<[f64; 3]> {
        let r = self.resolve(events);
        let sc = self.stack_customers(events, &r, opts);
        (0..events.len())
            .map(|i| match self.event_view(events, &r, i, opts) {
                Some((a, belief)) => self.probs_final(belief, &a, sc.of(events.customer[i])),
                None => [f64::NAN; 3],
            })
            .collect()
    }
}

impl Predictor {
    /// The second stage's view of every customer of an event table (indexed like
    /// `events.customers`): training counts of known customers and body rows, in the
    /// regime `opts` scores in. Empty without a second stage.
    pub fn stack_customers(
        &self,
        events: &Events,
        r: &Resolved,
        opts: &ScoreOptions,
    ) -> StackCustomers {
        let regime = regime_of(opts);
        let Some(stack) = &self.stack else {
            return StackCustomers::default();
        };
        let cols = FeatureColumns::new(self, events);
        let list = (0..events.customers.len())
            .into_par_iter()
            .map_init(FeatureValues::default, |values, c| {
                self.stack_customer(stack, (&cols, r), (c, values), regime)
            })
            .collect();
        StackCustomers::new(list)
    }

    /// Events customer `c`'s second-stage view (`cols` and `r` of the same events;
    /// `values` is scratch space, reused across calls).
    fn stack_customer<'e>(
        &self,
        stack: &Stack,
        (cols, r): (&FeatureColumns<'e>, &Resolved),
        (c, values): (usize, &mut FeatureValues<'e>),
        regime: Regime,
    ) -> StackCustomer {
        cols.values_into(c, values);
        let mc = r.customer.get(c).copied().unwrap_or(NONE);
        let pos = stack
            .tables
            .customer_pos
            .get(mc as usize)
            .copied()
            .unwrap_or(0.0);
        let body = self.body_row(values);
        StackCustomer {
            regime,
            rates: stack.customer_rates(self.customer_counts(mc), pos),
            prior: self.prior_mean(&body),
            body,
        }
    }
}
