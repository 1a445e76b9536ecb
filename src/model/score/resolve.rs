//! Resolving an event table against a model: its dictionaries' keys mapped to the
//! model's indices once per distinct key, each customer's belief, and one event's
//! article and view ([`Predictor::event_view`]).

use super::ScoreOptions;
use crate::data::schema::{canonical_int, CategoricalFeature, Dict, Events, NumericFeature, NONE};
use crate::model::features::{FeatureModel, FeatureValues};
use crate::model::fitdata::ArticleSizeKey;
use crate::model::predict::{ArticleRef, CustomerState, SizeBelief};
use crate::model::predictor::{Catalog, Predictor};
use rayon::prelude::*;

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
    groups: &'m [crate::model::fitted::GroupParams],
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

/// An event table's customer-feature columns in the order of the model's feature model
/// (`None` where the table lacks one), matched by name once.
pub(super) struct FeatureColumns<'e> {
    numeric: Vec<Option<&'e NumericFeature>>,
    categorical: Vec<Option<&'e CategoricalFeature>>,
}

impl<'e> FeatureColumns<'e> {
    pub(super) fn new(model: &Predictor, events: &'e Events) -> Self {
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
    pub(super) fn values_into(&self, c: usize, values: &mut FeatureValues<'e>) {
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
        let mut r = self.resolve_keys(events);
        r.belief = self.beliefs(events, &r.customer);
        r
    }

    /// [`Predictor::resolve`] without the customers' beliefs (`belief` empty): the
    /// dictionary lookups alone, a few bytes per key instead of 40 bytes per customer.
    pub fn resolve_keys(&self, events: &Events) -> Resolved {
        let customer = self.customer_indices(&events.customers);
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
            belief: Vec::new(),
        }
    }

    /// Each customer's belief before their events (`customer`: the model's index of each
    /// events customer, as [`Predictor::resolve_keys`] gives): the stored posterior of a
    /// known customer, else the prior from their features or the population's.
    pub fn beliefs(&self, events: &Events, customer: &[u32]) -> Vec<CustomerState> {
        self.belief_states(events, customer, (customer.len(), &|k| k))
    }

    /// [`Predictor::beliefs`] of the events customers `which` only, in their order
    /// (cross-fitting needs the sampled customers' beliefs alone: 40 bytes per customer,
    /// ~400 MB at 10M customers for all of them).
    pub fn beliefs_of(
        &self,
        events: &Events,
        customer: &[u32],
        which: &[u32],
    ) -> Vec<CustomerState> {
        let ec_of = |k: usize| which.get(k).map_or(usize::MAX, |&c| c as usize);
        self.belief_states(events, customer, (which.len(), &ec_of))
    }

    /// The beliefs of `n` events customers, the `k`-th being customer `ec_of(k)`.
    fn belief_states(
        &self,
        events: &Events,
        customer: &[u32],
        (n, ec_of): (usize, &(dyn Fn(usize) -> usize + Sync)),
    ) -> Vec<CustomerState> {
        let cols = FeatureColumns::new(self, events);
        let g = &self.globals;
        let bias_var = g.sd_customer_bias * g.sd_customer_bias;
        // the population prior is the same for every customer without features
        let population = self.customer_prior(None);
        (0..n)
            .into_par_iter()
            .map(|k| {
                let c = ec_of(k);
                (c, customer.get(c).copied().unwrap_or(NONE))
            })
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
                |(values, row), (c, mc)| {
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
            .collect()
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
