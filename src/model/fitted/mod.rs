//! The fitted model: plain serde data (global constants, offsets per size system, size
//! label, brand, category, product and product-in-size, the customer table) plus the
//! lookup index rebuilt after loading.

mod validate;

use crate::data::schema::{canonical_int, write_int, Dict, SizeSystem, NONE};
use crate::model::features::FeatureModel;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::hash::BuildHasher;

/// Global constants of the outcome and choice models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Globals {
    /// Logit slope per size step of gap between customer and article.
    pub w: f64,
    /// Centre of the fit band on the logit scale (0 = symmetric).
    pub c: f64,
    /// Half-width of the fit band on the logit scale.
    pub h: f64,
    /// How much shoppers correct their chosen size for a brand's reputation (0..1).
    pub k: f64,
    /// How much shoppers correct their chosen size for a product's own reputation
    /// (reviews, size notes), 0..1.
    pub k_product: f64,
    /// Standard deviation of a chosen size around the shopper's size at that purchase.
    pub sd_choice: f64,
    /// Standard deviation of a shopper's size at one purchase around their long-run
    /// size (bodies, tastes and occasions change between purchases).
    pub sd_drift: f64,
    /// Prior sd of a customer's size around the feature prediction, when features exist.
    pub sd_customer_features: f64,
    /// Prior sd of a customer's size when nothing is known about them.
    pub sd_customer_population: f64,
    /// Prior sd of a customer's fit bias (how their verdicts lean beyond their size).
    pub sd_customer_bias: f64,
    /// Prior sd of size-label offsets.
    pub sd_label: f64,
    /// Prior sd of brand offsets.
    pub sd_brand: f64,
    /// Prior sd of category offsets.
    pub sd_category: f64,
    /// Prior sd of product offsets around their brand.
    pub sd_product: f64,
    /// Prior sd of product-in-size offsets around their product.
    pub sd_article_size: f64,
    /// Prior sd of brand fit-band log-widths.
    pub sd_eta_brand: f64,
    /// Prior sd of category fit-band log-widths.
    pub sd_eta_category: f64,
    /// Prior sd of product fit-band log-widths.
    pub sd_eta_product: f64,
}

impl Default for Globals {
    /// Starting values of a fit.
    fn default() -> Self {
        Globals {
            w: 2.0,
            c: 0.0,
            h: 2.0,
            k: 0.0,
            k_product: 0.0,
            sd_choice: 0.7,
            sd_drift: 0.3,
            sd_customer_features: 1.0,
            sd_customer_population: 2.0,
            sd_customer_bias: 0.3,
            sd_label: 0.3,
            sd_brand: 0.5,
            sd_category: 0.3,
            sd_product: 0.3,
            sd_article_size: 0.2,
            sd_eta_brand: 0.3,
            sd_eta_category: 0.3,
            sd_eta_product: 0.3,
        }
    }
}

/// An estimated offset in size steps (> 0: runs large, < 0: runs small).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Offset {
    /// Posterior mean.
    pub value: f64,
    /// Standard error.
    pub se: f64,
    /// Fit events behind it.
    pub n: u64,
}

/// Alignment of a size system onto the common customer scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemParams {
    /// The system.
    pub system: SizeSystem,
    /// Position units per size step (2 for jeans inches; estimated from the spread of
    /// chosen sizes for bare numeric scales; 1 otherwise).
    pub scale: f64,
    /// Added to `pos / scale` to land on the common scale.
    pub align: f64,
    /// Events in this system.
    pub n: u64,
}

/// A size label seen in training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelParams {
    /// Canonical label text.
    pub canonical: String,
    /// Its system.
    pub system: SizeSystem,
    /// Position in the system's units.
    pub pos: f64,
    /// Catalogue-wide offset of this size label.
    pub offset: Offset,
}

/// A brand, category or product: location offset and fit-band log-width.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupParams {
    /// Key (brand name, category name, product id).
    pub name: String,
    /// Offset (for products: relative to brand and category).
    pub offset: Offset,
    /// Log-width adjustment of the fit band (> 0: wider band, fewer misfits).
    pub eta: f64,
}

/// Product metadata beyond its offsets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductInfo {
    /// Brand index or [`NONE`].
    pub brand: u32,
    /// Category index or [`NONE`].
    pub category: u32,
    /// Label indices offered (seen in training), in size order.
    pub sizes: Vec<u32>,
}

/// A product in one size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArticleSizeParams {
    /// Product index.
    pub product: u32,
    /// Label index.
    pub label: u32,
    /// Offset relative to the product.
    pub offset: Offset,
}

/// Customers seen in training: posterior mean and variance of their size.
///
/// The ids are a compact [`Dict`] (integer ids as `i64`, other ids in one text arena),
/// stored in the artifact in a compact form too (see [`compact_dict`]); look an id up
/// with [`Fitted::customer_index`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerTable {
    /// Customer ids, by customer index.
    #[serde(with = "compact_dict")]
    pub ids: Dict,
    /// Posterior mean size (common scale).
    pub mean: Vec<f32>,
    /// Posterior variance of the size.
    pub var: Vec<f32>,
    /// Posterior mean fit bias.
    pub bias: Vec<f32>,
    /// Posterior variance of the fit bias.
    pub bias_var: Vec<f32>,
    /// Posterior covariance of size and fit bias.
    pub cov: Vec<f32>,
    /// Fit events in training.
    pub n: Vec<u32>,
}

/// A fit's final customer state, handed over (consumed) to build the [`CustomerTable`].
#[derive(Clone, Debug, Default)]
pub struct CustomerFit {
    /// Posterior mean size per customer.
    pub s: Vec<f64>,
    /// Posterior mean fit bias per customer.
    pub u: Vec<f32>,
    /// Posterior covariance per customer: `[var(s), cov(s, u), var(u)]`.
    pub cov: Vec<[f32; 3]>,
}

impl CustomerTable {
    /// The table of a finished fit: the ids (the events' customer dictionary), the fit's
    /// state (consumed: each input vector is freed as soon as its columns are built, so
    /// the end of a 50M-customer fit holds at most one extra state vector) and the
    /// customers' event ranges (`cust_start[c]..cust_start[c + 1]`, see
    /// [`crate::model::fitdata::FitData`]) for the event counts.
    pub fn from_fit(ids: Dict, fit: CustomerFit, cust_start: &[u64]) -> CustomerTable {
        let CustomerFit { s, u, cov } = fit;
        let [mean] = columns_from_back(s, |&x| [x as f32]);
        let [var, cov_su, bias_var] = columns_from_back(cov, |c| *c);
        let n = cust_start
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]) as u32)
            .collect();
        CustomerTable {
            ids,
            mean,
            var,
            bias: u,
            bias_var,
            cov: cov_su,
            n,
        }
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the table is empty (e.g. trained with `--no-customers`).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of customer `i` as text (`None` when out of range; allocates only for
    /// integer ids).
    pub fn id(&self, i: usize) -> Option<Cow<'_, str>> {
        self.ids.get(i)
    }

    /// Heap bytes held by the ids and the per-customer columns (capacities).
    pub fn heap_bytes(&self) -> usize {
        self.ids.heap_bytes()
            + (self.mean.capacity()
                + self.var.capacity()
                + self.bias.capacity()
                + self.bias_var.capacity()
                + self.cov.capacity()
                + self.n.capacity())
                * 4
    }
}

/// Rows per block of [`columns_from_back`].
const COLUMN_BLOCK: usize = 1 << 20;

/// The `K` `f32` columns `f(row)` of `rows`, consuming `rows` from the back a block at a
/// time and shrinking it as the columns grow (then reversing them in place), so that
/// at 50M customers the conversion costs one block of memory rather than a second copy
/// of the fit state.
fn columns_from_back<T, const K: usize>(
    mut rows: Vec<T>,
    f: impl Fn(&T) -> [f32; K],
) -> [Vec<f32>; K] {
    let mut cols: [Vec<f32>; K] = std::array::from_fn(|_| Vec::with_capacity(rows.len()));
    while !rows.is_empty() {
        let start = rows.len().saturating_sub(COLUMN_BLOCK);
        for row in rows.iter().skip(start).rev() {
            for (col, x) in cols.iter_mut().zip(f(row)) {
                col.push(x);
            }
        }
        rows.truncate(start);
        rows.shrink_to_fit();
    }
    for col in &mut cols {
        col.reverse();
    }
    cols
}

/// Index-only hash table over a [`Dict`] of customer ids: the table holds `u32` indices
/// (5 bytes per slot with hashbrown's control byte, about 7 bytes per customer at its
/// load factor) and compares candidates against the dictionary, so the ids are stored
/// once. Integer dictionaries are hashed as `i64`, text dictionaries as text; a text id
/// is looked up in an integer dictionary through its canonical integer (see
/// [`canonical_int`]), so `"42"` and `42` are the same customer, as in ingest.
#[derive(Clone, Default)]
pub struct CustomerIndex {
    table: HashTable<u32>,
    state: foldhash::fast::RandomState,
}

impl std::fmt::Debug for CustomerIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerIndex")
            .field("len", &self.table.len())
            .finish()
    }
}

impl CustomerIndex {
    /// Index `ids` (when an id occurs twice, the later index wins, as with a map).
    pub fn build(ids: &Dict) -> CustomerIndex {
        let mut ix = CustomerIndex {
            table: HashTable::with_capacity(ids.len()),
            state: foldhash::fast::RandomState::default(),
        };
        let state = &ix.state;
        let table = &mut ix.table;
        if let Some(keys) = ids.as_ints() {
            let hash = |&j: &u32| state.hash_one(keys.get(j as usize).copied().unwrap_or(0));
            for (i, &k) in keys.iter().enumerate() {
                let h = state.hash_one(k);
                let eq = |&j: &u32| keys.get(j as usize) == Some(&k);
                upsert(table, (h, i as u32), eq, hash);
            }
        } else {
            let hash = |&j: &u32| state.hash_one(ids.text_at(j as usize).unwrap_or_default());
            for i in 0..ids.len() {
                let Some(key) = ids.text_at(i) else { continue };
                let h = state.hash_one(key);
                let eq = |&j: &u32| ids.text_at(j as usize) == Some(key);
                upsert(table, (h, i as u32), eq, hash);
            }
        }
        ix
    }

    /// Number of distinct ids indexed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Heap bytes of the hash table (the ids are not counted: they live in the [`Dict`]).
    pub fn heap_bytes(&self) -> usize {
        self.table.allocation_size()
    }

    /// Index of `id` in `ids` (the dictionary this index was built over).
    pub fn find(&self, ids: &Dict, id: &str) -> Option<u32> {
        if ids.as_ints().is_some() {
            return self.find_int(ids, canonical_int(id)?);
        }
        let h = self.state.hash_one(id);
        self.table
            .find(h, |&j| ids.text_at(j as usize) == Some(id))
            .copied()
    }

    /// Index of the integer id `k` (the id whose text is `k`'s decimal form) in `ids`.
    pub fn find_int(&self, ids: &Dict, k: i64) -> Option<u32> {
        let Some(keys) = ids.as_ints() else {
            let mut text = String::with_capacity(20);
            write_int(&mut text, k);
            return self.find(ids, &text);
        };
        let h = self.state.hash_one(k);
        self.table
            .find(h, |&j| keys.get(j as usize) == Some(&k))
            .copied()
    }
}

/// Insert `(hash, i)` into `table`, replacing an equal key's index.
fn upsert(
    table: &mut HashTable<u32>,
    (hash, i): (u64, u32),
    eq: impl FnMut(&u32) -> bool,
    hasher: impl Fn(&u32) -> u64,
) {
    match table.entry(hash, eq, hasher) {
        hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = i,
        hashbrown::hash_table::Entry::Vacant(e) => {
            e.insert(i);
        }
    }
}

/// Compact serde form of a [`Dict`] for `#[serde(with = "compact_dict")]`: an enum of
/// `Ints` (the `i64` keys as one sequence; postcard writes each as a zigzag varint) or
/// `Text` (the keys as a sequence of strings; postcard writes each as its length and
/// bytes). Neither direction builds a `Vec<String>`: keys are written straight from the
/// dictionary and read straight into a new one. (A `Dict`'s own serde form is
/// `{"names": [...]}`, kept for its other users.)
pub mod compact_dict {
    use crate::data::schema::Dict;
    use serde::de::{DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt;

    const NAME: &str = "CompactDict";
    const VARIANTS: &[&str] = &["Ints", "Text"];

    /// Serialise `dict` in the compact form.
    pub fn serialize<S: Serializer>(dict: &Dict, ser: S) -> Result<S::Ok, S::Error> {
        match dict.as_ints() {
            Some(keys) => ser.serialize_newtype_variant(NAME, 0, "Ints", keys),
            None => ser.serialize_newtype_variant(NAME, 1, "Text", &TextKeys(dict)),
        }
    }

    /// Read a dictionary written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Dict, D::Error> {
        de.deserialize_enum(NAME, VARIANTS, DictVisitor)
    }

    /// The keys of a text dictionary as a sequence of strings.
    struct TextKeys<'a>(&'a Dict);

    impl serde::Serialize for TextKeys<'_> {
        fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
            let mut seq = ser.serialize_seq(Some(self.0.len()))?;
            for i in 0..self.0.len() {
                seq.serialize_element(self.0.text_at(i).unwrap_or_default())?;
            }
            seq.end()
        }
    }

    #[derive(Deserialize)]
    #[serde(variant_identifier)]
    enum Tag {
        Ints,
        Text,
    }

    struct DictVisitor;

    impl<'de> Visitor<'de> for DictVisitor {
        type Value = Dict;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a compact key dictionary (Ints or Text)")
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Dict, A::Error> {
            let (tag, variant) = data.variant::<Tag>()?;
            let text = matches!(tag, Tag::Text);
            variant.newtype_variant_seed(KeysSeed { text })
        }
    }

    /// Reads the key sequence of either variant into a new [`Dict`].
    struct KeysSeed {
        text: bool,
    }

    impl<'de> DeserializeSeed<'de> for KeysSeed {
        type Value = Dict;

        fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Dict, D::Error> {
            de.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for KeysSeed {
        type Value = Dict;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(if self.text {
                "a sequence of text keys"
            } else {
                "a sequence of integer keys"
            })
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dict, A::Error> {
            // no reservation from the length prefix: a corrupt prefix must not reserve
            // gigabytes, and large vectors grow by remapping, not copying
            let mut dict = Dict::new();
            if self.text {
                while seq.next_element_seed(PushText(&mut dict))?.is_some() {}
            } else {
                while let Some(k) = seq.next_element::<i64>()? {
                    dict.push_int(k);
                }
            }
            Ok(dict)
        }
    }

    /// Appends one text key to the dictionary without allocating a `String` for it.
    struct PushText<'a>(&'a mut Dict);

    impl<'de> DeserializeSeed<'de> for PushText<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
            de.deserialize_string(self)
        }
    }

    impl<'de> Visitor<'de> for PushText<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a text key")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
            self.0.push(v);
            Ok(())
        }
    }
}

/// One fitting iteration's diagnostics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// Iteration number, from 1.
    pub iter: usize,
    /// Penalised objective per fit event (outcome + choice + priors).
    pub objective: f64,
    /// Leave-one-out outcome log loss per fit event (what a new purchase would see).
    pub loo_log_loss: f64,
    /// Seconds spent in this iteration.
    pub seconds: f64,
    /// How far the article true sizes and band widths moved in this iteration's update
    /// (event-weighted RMS, sizes; band widths relative): the stopping criterion.
    pub param_change: f64,
    /// Fit events this iteration visited (fewer than all during a big fit's sample phase).
    pub events: u64,
    /// Seconds of the pass over the events (customers solved, sums by article-size).
    pub pass_seconds: f64,
    /// Seconds of the update from the pass's sums (offset hierarchy, globals, priors).
    pub update_seconds: f64,
}

/// Training summary stored in the artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Events read.
    pub events: u64,
    /// Events used for fit learning (small / fit / large).
    pub fit_events: u64,
    /// Events with other return reasons (kept out).
    pub other_events: u64,
    /// Outcome counts small, fit, large.
    pub outcome_counts: [u64; 3],
    /// Distinct customers, products, brands, categories, size labels.
    pub customers: u64,
    /// Distinct products.
    pub products: u64,
    /// Distinct brands.
    pub brands: u64,
    /// Distinct categories.
    pub categories: u64,
    /// Distinct size labels.
    pub sizes: u64,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the tolerance was reached.
    pub converged: bool,
    /// Per-iteration diagnostics.
    pub history: Vec<IterationStats>,
    /// Wall seconds of the fit.
    pub fit_seconds: f64,
    /// Input description (files, mapping), free text.
    pub source: String,
}

/// The fitted model: the artifact's plain serde data, nothing derived (`Send + Sync`).
/// [`Fitted::validate`] checks its invariants; [`crate::model::Predictor::new`] builds
/// every index and cache prediction reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Fitted {
    /// Global constants.
    pub globals: Globals,
    /// Feature model for customers' prior size.
    pub features: FeatureModel,
    /// Size systems seen.
    pub systems: Vec<SystemParams>,
    /// Size labels.
    pub labels: Vec<LabelParams>,
    /// Brands.
    pub brands: Vec<GroupParams>,
    /// Categories.
    pub categories: Vec<GroupParams>,
    /// Products.
    pub products: Vec<GroupParams>,
    /// Product metadata (same order as `products`).
    pub product_info: Vec<ProductInfo>,
    /// Products in sizes.
    pub article_sizes: Vec<ArticleSizeParams>,
    /// Customers seen in training.
    pub customers: CustomerTable,
    /// Training summary.
    pub summary: TrainingSummary,
    /// Second stage applied to every probability (None: structural probabilities only).
    pub stack: Option<crate::model::stack::Stack>,
}

impl Fitted {
    /// The smallest model that passes [`Fitted::validate`]: one size label, default
    /// constants, no keys (for tests and examples).
    pub fn minimal() -> Fitted {
        Fitted {
            labels: vec![LabelParams {
                canonical: "M".into(),
                system: SizeSystem::Letter,
                pos: 3.0,
                offset: Offset::default(),
            }],
            ..Fitted::default()
        }
    }

    /// Alignment of a size system (0 when the system was not seen).
    pub fn align(&self, system: SizeSystem) -> f64 {
        self.systems
            .iter()
            .find(|s| s.system == system)
            .map_or(0.0, |s| s.align)
    }

    /// Position units per size step of a system (its default step when not seen).
    pub fn scale(&self, system: SizeSystem) -> f64 {
        self.systems
            .iter()
            .find(|s| s.system == system)
            .map_or(system.step(), |s| s.scale)
    }

    /// Brand offset value, 0 for [`NONE`] or out of range.
    pub fn brand_offset(&self, b: u32) -> f64 {
        group_value(&self.brands, b)
    }
}

/// Offset value of group `i`, 0 for [`NONE`] or out of range.
pub fn group_value(groups: &[GroupParams], i: u32) -> f64 {
    if i == NONE {
        return 0.0;
    }
    groups.get(i as usize).map_or(0.0, |g| g.offset.value)
}

/// Uncertainty (variance) of group `i`'s offset: its squared standard error; the
/// level's prior variance `sd²` for [`NONE`] or an unknown group; 0 when the level has no
/// groups at all (it plays no part).
pub fn group_var(groups: &[GroupParams], i: u32, sd: f64) -> f64 {
    if groups.is_empty() {
        0.0
    } else if i == NONE {
        sd * sd
    } else {
        groups
            .get(i as usize)
            .map_or(sd * sd, |x| x.offset.se * x.offset.se)
    }
}

/// Fit-band log-width of group `i`, 0 for [`NONE`] or out of range.
pub fn group_eta(groups: &[GroupParams], i: u32) -> f64 {
    if i == NONE {
        return 0.0;
    }
    groups.get(i as usize).map_or(0.0, |g| g.eta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(keys: &[&str]) -> Dict {
        keys.iter().collect()
    }

    #[test]
    fn customer_table_from_fit_takes_columns_apart() {
        let fit = CustomerFit {
            s: vec![1.5, -0.25],
            u: vec![0.1, 0.2],
            cov: vec![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
        };
        let t = CustomerTable::from_fit(dict(&["7", "9"]), fit, &[0, 3, 4]);
        assert_eq!(t.mean, vec![1.5, -0.25]);
        assert_eq!(t.var, vec![1.0, 4.0]);
        assert_eq!(t.cov, vec![2.0, 5.0]);
        assert_eq!(t.bias_var, vec![3.0, 6.0]);
        assert_eq!(t.bias, vec![0.1, 0.2]);
        assert_eq!(t.n, vec![3, 1]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.id(1).as_deref(), Some("9"));
        assert_eq!(t.id(2), None);
    }

    #[test]
    fn columns_from_back_keep_row_order_across_blocks() {
        let n = 2 * COLUMN_BLOCK + 3;
        let rows: Vec<[f32; 2]> = (0..n).map(|i| [i as f32, -(i as f32)]).collect();
        let [a, b] = columns_from_back(rows, |r| *r);
        assert_eq!(a.len(), n);
        assert!(a.iter().enumerate().all(|(i, &x)| x == i as f32));
        assert!(b.iter().enumerate().all(|(i, &x)| x == -(i as f32)));
        let [empty] = columns_from_back(Vec::<f64>::new(), |&x| [x as f32]);
        assert!(empty.is_empty());
    }

    #[test]
    fn customer_index_finds_integer_and_text_ids() {
        let ints = dict(&["42", "-7", "1000000000000"]);
        assert!(ints.as_ints().is_some());
        let ix = CustomerIndex::build(&ints);
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.find(&ints, "42"), Some(0));
        assert_eq!(ix.find(&ints, "-7"), Some(1));
        assert_eq!(ix.find_int(&ints, 1_000_000_000_000), Some(2));
        // not canonical integers: not the same keys
        for unknown in ["042", "+42", "-0", "", "x", "43"] {
            assert_eq!(ix.find(&ints, unknown), None, "{unknown}");
        }
        assert_eq!(ix.find_int(&ints, 43), None);

        let text = dict(&["a", "42", "bb", ""]);
        assert!(text.as_ints().is_none());
        let ix = CustomerIndex::build(&text);
        for (i, k) in ["a", "42", "bb", ""].iter().enumerate() {
            assert_eq!(ix.find(&text, k), Some(i as u32), "{k}");
        }
        assert_eq!(ix.find_int(&text, 42), Some(1), "integer 42 is the text 42");
        assert_eq!(ix.find(&text, "b"), None);
        assert_eq!(ix.find_int(&text, 7), None);
        // a later duplicate wins, as with a map
        let dup = dict(&["x", "y", "x"]);
        let ix = CustomerIndex::build(&dup);
        assert_eq!((ix.len(), ix.find(&dup, "x")), (2, Some(2)));
        // empty
        let ix = CustomerIndex::build(&Dict::new());
        assert!(ix.is_empty());
        assert_eq!(ix.find(&Dict::new(), "1"), None);
    }

    #[test]
    fn compact_dict_serde_hand_checked_bytes() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct W(#[serde(with = "compact_dict")] Dict);
        // Ints: variant 0, length 3, zigzag varints 1 -> 2, -2 -> 3, 300 -> 600 = d8 04
        let ints = W(dict(&["1", "-2", "300"]));
        let bytes = postcard::to_stdvec(&ints).unwrap();
        assert_eq!(bytes, vec![0, 3, 2, 3, 0xd8, 0x04]);
        let back: W = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, ints);
        assert!(back.0.as_ints().is_some());
        // Text: variant 1, length 2, then each key as length + bytes
        let text = W(dict(&["a", "bc"]));
        let bytes = postcard::to_stdvec(&text).unwrap();
        assert_eq!(bytes, vec![1, 2, 1, b'a', 2, b'b', b'c']);
        assert_eq!(postcard::from_bytes::<W>(&bytes).unwrap(), text);
        // empty, and JSON (self-describing formats work too)
        let empty = W(Dict::new());
        assert_eq!(postcard::to_stdvec(&empty).unwrap(), vec![0, 0]);
        let json = serde_json::to_string(&text).unwrap();
        assert_eq!(json, r#"{"Text":["a","bc"]}"#);
        assert_eq!(serde_json::from_str::<W>(&json).unwrap(), text);
        assert_eq!(
            serde_json::from_str::<W>(r#"{"Ints":[4,-5]}"#).unwrap(),
            W(dict(&["4", "-5"]))
        );
        assert!(serde_json::from_str::<W>(r#"{"Other":[]}"#).is_err());
    }
}
