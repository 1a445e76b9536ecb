//! Batch scoring: resolve an event table's keys against a model once per distinct key,
//! then compute small / fit / large probabilities for every event in parallel.
//! Unseen customers, products, brands and sizes fall back on priors; nothing is dropped.

use super::features::{FeatureModel, FeatureValues};
use super::fitdata::ArticleSizeKey;
use super::predict::{ArticleRef, CustomerState, SizeBelief};
use super::predictor::{Catalog, Predictor};
use super::stack::{Regime, StackCustomer, StackCustomers};
use crate::data::schema::{canonical_int, CategoricalFeature, Dict, Events, NumericFeature, NONE};
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

/// Model index of each of `dict`'s keys ([`NONE`] when unseen), given the model's key
/// count and key by index, and `index` mapping them back. When the model's keys are
/// distinct (the index has one entry per key), a key that sits at the same position in
/// both lists is that index without hashing: scoring the table a model was trained on
/// (same dictionary order) then reads both lists in order instead of probing a hash
/// map of millions of strings at random.
fn map_dict<'m>(
    dict: &Dict,
    index: &crate::model::predictor::FastMap<Box<str>, u32>,
    (len, name_at): (usize, impl Fn(usize) -> Option<&'m str> + Sync),
) -> Vec<u32> {
    let distinct = index.len() == len;
    if let (true, Some(keys)) = (distinct, dict.as_ints()) {
        if keys.len() >= INT_JOIN_MIN {
            return map_ints(keys, (len, name_at));
        }
    }
    // in parallel: a table can carry millions of customer keys
    (0..dict.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|i| {
            with_key(dict, i, |n| {
                if distinct && name_at(i) == Some(n) {
                    return i as u32;
                }
                index.get(n).copied().unwrap_or(NONE)
            })
            .unwrap_or(NONE)
        })
        .collect()
}

/// Integer dictionaries at least this long that the model's keys do not match by
/// position are joined through an integer hash map of the model's keys.
const INT_JOIN_MIN: usize = 4096;

/// [`map_dict`] of integer keys when the model's keys are distinct: by position where
/// they line up; the rest through a map from the model's integer keys (canonical
/// decimal text, see [`canonical_int`]) to their index, built only when needed. A key
/// `k` is the text `k.to_string()`, and exactly the model keys with that text parse to
/// `k`, so this is the string map's answer without hashing strings (or dereferencing
/// them at random: the string map of millions of customers is mostly cache misses).
fn map_ints<'m>(
    keys: &[i64],
    (len, name_at): (usize, impl Fn(usize) -> Option<&'m str> + Sync),
) -> Vec<u32> {
    const MISS: u32 = NONE - 1;
    let mut out: Vec<u32> = keys
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .map(|(i, &k)| {
            if name_at(i).and_then(canonical_int) == Some(k) {
                i as u32
            } else {
                MISS
            }
        })
        .collect();
    if !out.contains(&MISS) {
        return out;
    }
    let mut by_int: std::collections::HashMap<i64, u32, foldhash::fast::RandomState> =
        std::collections::HashMap::with_capacity_and_hasher(len, Default::default());
    for j in 0..len {
        // as the string map: a later duplicate wins (keys are distinct here anyway)
        if let Some(k) = name_at(j).and_then(canonical_int) {
            by_int.insert(k, j as u32);
        }
    }
    out.par_iter_mut()
        .zip(keys.par_iter())
        .with_min_len(4096)
        .filter(|(o, _)| **o == MISS)
        .for_each(|(o, k)| *o = by_int.get(k).copied().unwrap_or(NONE));
    out
}

/// Call `f` with key `i` of `dict` as text (`None` when out of range), as [`Dict::get`]
/// would give it but without allocating for non-negative integer keys (written on the
/// stack).
fn with_key<R>(dict: &Dict, i: usize, f: impl FnOnce(&str) -> R) -> Option<R> {
    let Some(ints) = dict.as_ints() else {
        return dict.text_at(i).map(f);
    };
    let k = *ints.get(i)?;
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut v = k.unsigned_abs();
    loop {
        pos -= 1;
        if let Some(b) = buf.get_mut(pos) {
            *b = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = std::str::from_utf8(buf.get(pos..)?).ok()?;
    if k < 0 {
        let mut text = String::with_capacity(digits.len() + 1);
        text.push('-');
        text.push_str(digits);
        return Some(f(&text));
    }
    Some(f(digits))
}

/// The model's keys of a group table: (count, key by index).
fn group_names<'m>(
    groups: &'m [super::fitted::GroupParams],
) -> (usize, impl Fn(usize) -> Option<&'m str> + Sync) {
    (groups.len(), move |i: usize| {
        groups.get(i).map(|g| g.name.as_str())
    })
}

fn pick(map: &[u32], i: u32) -> u32 {
    if i == NONE {
        NONE
    } else {
        map.get(i as usize).copied().unwrap_or(NONE)
    }
}

/// Rows per parallel work item of [`Predictor::score_with`]: fixed, so the split (and with
/// it every result) does not depend on the number of threads.
pub const SCORE_CHUNK: usize = 8192;

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

/// An event table's customer-feature columns in the order of the model's feature model
/// (`None` where the table lacks one), matched by name once.
struct FeatureColumns<'e> {
    numeric: Vec<Option<&'e NumericFeature>>,
    categorical: Vec<Option<&'e CategoricalFeature>>,
}

impl<'e> FeatureColumns<'e> {
    fn new(model: &Predictor, events: &'e Events) -> Self {
        let f = &events.features;
        FeatureColumns {
            numeric: (model.features.numeric.iter())
                .map(|m| f.numeric.iter().find(|c| c.name == m.name))
                .collect(),
            categorical: (model.features.categorical.iter())
                .map(|m| f.categorical.iter().find(|c| c.name == m.name))
                .collect(),
        }
    }

    /// Customer `c`'s feature values (NaN / `None` where missing) into `values`.
    fn values_into(&self, c: usize, values: &mut FeatureValues<'e>) {
        values.numeric.clear();
        values.numeric.extend(self.numeric.iter().map(|f| {
            f.and_then(|f| f.values.get(c))
                .map_or(f64::NAN, |&v| f64::from(v))
        }));
        values.categorical.clear();
        values.categorical.extend(self.categorical.iter().map(|f| {
            let f = (*f)?;
            let code = *f.codes.get(c)?;
            f.levels.get(code as usize).map(String::as_str)
        }));
    }
}

impl Predictor {
    /// Resolve an event table's dictionaries against this model.
    pub fn resolve(&self, events: &Events) -> Resolved {
        let customer = self.customer_indices(&events.customers);
        let cols = FeatureColumns::new(self, events);
        let g = &self.globals;
        let bias_var = g.sd_customer_bias * g.sd_customer_bias;
        // the population prior is the same for every customer without features
        let population = self.customer_prior(None);
        let belief = customer
            .par_iter()
            .enumerate()
            .map_init(
                || {
                    (
                        FeatureValues {
                            numeric: Vec::with_capacity(cols.numeric.len()),
                            categorical: Vec::with_capacity(cols.categorical.len()),
                        },
                        vec![0.0; self.features.dim()],
                    )
                },
                |(values, row), (c, &mc)| {
                    if mc != NONE {
                        if let Some(st) = self.known_customer(mc as usize) {
                            return st;
                        }
                    }
                    cols.values_into(c, values);
                    if !FeatureModel::any_present(values) {
                        return population;
                    }
                    // as customer_prior, with the design row reused across customers
                    self.features.encode_into(values, row);
                    CustomerState::prior(
                        self.features.predict_row(row),
                        g.sd_customer_features * g.sd_customer_features,
                        bias_var,
                    )
                },
            )
            .collect();
        Resolved {
            customer,
            product: map_dict(
                &events.products,
                &self.catalog().product,
                group_names(&self.products),
            ),
            brand: map_dict(
                &events.brands,
                &self.catalog().brand,
                group_names(&self.brands),
            ),
            category: map_dict(
                &events.categories,
                &self.catalog().category,
                group_names(&self.categories),
            ),
            label: events
                .sizes
                .iter()
                .map(|l| Catalog::find(&self.catalog().label, Some(&l.canonical)))
                .collect(),
            belief,
        }
    }

    /// The article event `i` bought, resolved against this model (the lookups of
    /// [`Predictor::event_view`] without the customer's belief).
    pub fn event_article(&self, events: &Events, r: &Resolved, i: usize) -> Option<ArticleRef> {
        let key = ArticleSizeKey {
            product: *events.product.get(i)?,
            brand: *events.brand.get(i)?,
            category: *events.category.get(i)?,
            label: *events.size.get(i)?,
        };
        Self::key_article(events, r, &key)
    }

    /// The article of an article-size key of `events`' dictionaries (as
    /// [`FitData`](crate::model::fitdata::FitData) holds them), resolved by `r`; `None`
    /// when its size label is not in `events`.
    pub fn key_article(events: &Events, r: &Resolved, key: &ArticleSizeKey) -> Option<ArticleRef> {
        let label = events.sizes.get(key.label as usize)?;
        Some(ArticleRef {
            product: pick(&r.product, key.product),
            brand: pick(&r.brand, key.brand),
            category: pick(&r.category, key.category),
            label: pick(&r.label, key.label),
            system: label.system,
            pos: label.pos,
        })
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
        let a = self.event_article(events, r, i)?;
        let st = r.belief.get(*events.customer.get(i)? as usize)?;
        let chosen = opts.choice_evidence.then(|| self.choice_centre(&a));
        Some((a, self.at_purchase(st, chosen)))
    }

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
        if self.stack.is_some() {
            // the second stage needs each row's own inputs: the per-row path, in parallel
            let sc = self.stack_customers(events, &r, opts);
            return (0..events.len())
                .into_par_iter()
                .with_min_len(4096)
                .map(|i| match self.event_view(events, &r, i, opts) {
                    Some((a, belief)) => self.probs_final(belief, &a, sc.of(events.customer[i])),
                    None => [f64::NAN; 3],
                })
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
        let regime = if opts.choice_evidence {
            Regime::Purchase
        } else {
            Regime::Offer
        };
        let Some(stack) = &self.stack else {
            return StackCustomers::default();
        };
        let cols = FeatureColumns::new(self, events);
        let list = (0..events.customers.len())
            .into_par_iter()
            .map(|c| {
                let mut values = FeatureValues {
                    numeric: Vec::new(),
                    categorical: Vec::new(),
                };
                cols.values_into(c, &mut values);
                let mc = r.customer.get(c).copied().unwrap_or(NONE);
                let pos = stack
                    .tables
                    .customer_pos
                    .get(mc as usize)
                    .copied()
                    .unwrap_or(0.0);
                let body = self.body_row(&values);
                StackCustomer {
                    regime,
                    rates: stack.customer_rates(self.customer_counts(mc), pos),
                    prior: self.prior_mean(&body),
                    body,
                }
            })
            .collect();
        StackCustomers::new(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_join_is_the_string_map() {
        // model keys: integers in canonical text, plus texts that are not (never equal
        // to an integer key's text)
        let mut names: Vec<String> = (0..6000).map(|i| (i * 7 - 300).to_string()).collect();
        names[5] = "007".into();
        names[6] = "x".into();
        names[7] = "-0".into();
        let index: std::collections::HashMap<String, u32> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        // events keys: the same in a shuffled order, unknown ones, and 7 (text "007" in
        // the model does not match it)
        let mut keys: Vec<i64> = (0..6000).rev().map(|i| i * 7 - 300).collect();
        keys.swap(10, 4000);
        keys.extend([7, 0, -1, 99_999_999]);
        let by_text = |ks: &[i64]| -> Vec<u32> {
            ks.iter()
                .map(|k| index.get(&k.to_string()).copied().unwrap_or(NONE))
                .collect()
        };
        let got = map_ints(
            &keys,
            (names.len(), |i: usize| names.get(i).map(String::as_str)),
        );
        assert_eq!(got, by_text(&keys));
        assert!(got.contains(&NONE) && got.iter().filter(|&&x| x != NONE).count() > 5900);
        // nearly in the model's own order (the non-integer keys left out shift the tail)
        let own: Vec<i64> = names.iter().filter_map(|n| canonical_int(n)).collect();
        let got = map_ints(
            &own,
            (names.len(), |i: usize| names.get(i).map(String::as_str)),
        );
        assert_eq!(got, by_text(&own));
    }

    #[test]
    fn keys_read_as_dict_get_gives_them() {
        let ints: Dict = [
            "0",
            "7",
            "42",
            "-42",
            "9223372036854775807",
            "-9223372036854775808",
        ]
        .into_iter()
        .collect();
        assert!(ints.as_ints().is_some(), "integer storage expected");
        let text: Dict = ["a", "", "Größe", "12"].into_iter().collect();
        for dict in [&ints, &text] {
            for i in 0..dict.len() + 1 {
                let want = dict.get(i).map(|k| k.into_owned());
                assert_eq!(with_key(dict, i, str::to_string), want, "key {i}");
            }
        }
    }
}
