//! Size recommendation for one shopper and one product: the shopper's size is computed
//! on the fly from whatever the request carries (a known customer id, past purchases,
//! reference sizes, body features), so serving needs no per-customer state beyond the
//! optional training table.

use super::features::FeatureValues;
use super::fitted::Model;
use super::predict::{ArticleRef, CustomerState, EvidenceTerm};
use super::report::FitProfile;
use crate::data::schema::{Outcome, SizeLabel, SizeSystem, NONE};
use crate::data::{parse_size, OutcomeMap};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// Errors of a recommendation request; each names the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecommendError {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// JSON path of the field, e.g. `history[2].size`.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The product, brand or customer is unknown and nothing else identifies it.
    #[error("{field}: {message}")]
    NotFound {
        /// The field.
        field: String,
        /// What was not found.
        message: String,
    },
}

/// The product being looked at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductQuery {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Product id (optional; unseen products fall back on brand and category).
    #[serde(default)]
    pub product_id: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Sizes on offer (labels); default: the sizes seen for the product in training.
    #[serde(default)]
    pub sizes: Option<Vec<String>>,
    /// Size system of the labels (optional; e.g. `us`, `eu`, `letter`).
    #[serde(default)]
    pub size_system: Option<String>,
}

/// A past purchase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PastPurchase {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Product id.
    #[serde(default)]
    pub product_id: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Size label bought.
    pub size: String,
    /// Size system of the label.
    #[serde(default)]
    pub size_system: Option<String>,
    /// What became of it (`kept`, `fit`, `too_small`, `returned_too_large`, ...).
    pub outcome: String,
}

/// "I wear M at Acme".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReferenceSize {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Size label worn.
    pub size: String,
    /// Size system of the label.
    #[serde(default)]
    pub size_system: Option<String>,
}

/// A body feature value: a number or a category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FeatureValue {
    /// Numeric (height, weight, ...).
    Number(f64),
    /// Categorical (body type, ...).
    Text(String),
}

/// Everything the request knows about the shopper.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shopper {
    /// A customer id seen in training.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Past purchases with outcomes.
    #[serde(default)]
    pub history: Vec<PastPurchase>,
    /// Reference sizes the shopper says they wear.
    #[serde(default)]
    pub reference: Vec<ReferenceSize>,
    /// Body features by name, as in training (`height_in`, `body_type`, ...).
    #[serde(default)]
    pub features: BTreeMap<String, FeatureValue>,
}

/// Probabilities for one size on offer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SizeOdds {
    /// Size label as given.
    pub size: String,
    /// Probability it is too small.
    pub p_small: f64,
    /// Probability it fits.
    pub p_fit: f64,
    /// Probability it is too large.
    pub p_large: f64,
}

/// Confidence of a recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Confidence {
    /// `high`, `medium` or `low`.
    pub level: String,
    /// 0..1: fit probability discounted by the uncertainty about the shopper.
    pub score: f64,
    /// Standard deviation of the shopper's size estimate, in sizes.
    pub shopper_size_sd: f64,
    /// What the shopper's size is based on: `customer`, `history`, `reference`, `features`, `population`.
    pub basis: Vec<String>,
}

/// A recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendation {
    /// The size to buy.
    pub recommended_size: String,
    /// Its probability of fitting.
    pub fit_probability: f64,
    /// Every size on offer, in size order.
    pub sizes: Vec<SizeOdds>,
    /// How sure we are.
    pub confidence: Confidence,
    /// How the brand runs (when the brand is known).
    pub brand_fit: Option<FitProfile>,
    /// One sentence a shop can show.
    pub explanation: String,
}

/// The standard outcome vocabulary, built once (it was rebuilt on every request).
fn standard_outcomes() -> &'static OutcomeMap {
    static MAP: std::sync::OnceLock<OutcomeMap> = std::sync::OnceLock::new();
    MAP.get_or_init(OutcomeMap::standard)
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> RecommendError {
    RecommendError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A request string: borrowed from the request body when it has no escapes, owned
/// otherwise (deserialising a [`ShopperRef`] then allocates nothing per string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text of an optional field.
    pub fn opt<'s>(t: &'s Option<Text<'_>>) -> Option<&'s str> {
        t.as_ref().map(Text::as_str)
    }

    fn of(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn text(t: &Option<String>) -> Option<Text<'_>> {
    t.as_deref().map(Text::of)
}

fn opt<'s>(t: &'s Option<Text<'_>>) -> Option<&'s str> {
    Text::opt(t)
}

/// [`ProductQuery`] borrowing its strings (the server parses request bodies into this).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ProductQueryRef<'a> {
    /// Brand name.
    #[serde(default, borrow)]
    pub brand: Option<Text<'a>>,
    /// Product id.
    #[serde(default, borrow)]
    pub product_id: Option<Text<'a>>,
    /// Category.
    #[serde(default, borrow)]
    pub category: Option<Text<'a>>,
    /// Sizes on offer; default: the product's sizes in training.
    #[serde(default, borrow)]
    pub sizes: Option<Vec<Text<'a>>>,
    /// Size system of the labels.
    #[serde(default, borrow)]
    pub size_system: Option<Text<'a>>,
}

/// [`PastPurchase`] borrowing its strings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PastPurchaseRef<'a> {
    /// Brand name.
    #[serde(default, borrow)]
    pub brand: Option<Text<'a>>,
    /// Product id.
    #[serde(default, borrow)]
    pub product_id: Option<Text<'a>>,
    /// Category.
    #[serde(default, borrow)]
    pub category: Option<Text<'a>>,
    /// Size label bought.
    #[serde(borrow)]
    pub size: Text<'a>,
    /// Size system of the label.
    #[serde(default, borrow)]
    pub size_system: Option<Text<'a>>,
    /// What became of it.
    #[serde(borrow)]
    pub outcome: Text<'a>,
}

/// [`ReferenceSize`] borrowing its strings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ReferenceSizeRef<'a> {
    /// Brand name.
    #[serde(default, borrow)]
    pub brand: Option<Text<'a>>,
    /// Category.
    #[serde(default, borrow)]
    pub category: Option<Text<'a>>,
    /// Size label worn.
    #[serde(borrow)]
    pub size: Text<'a>,
    /// Size system of the label.
    #[serde(default, borrow)]
    pub size_system: Option<Text<'a>>,
}

/// [`Shopper`] borrowing its strings (features stay owned: few, and untagged).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ShopperRef<'a> {
    /// A customer id seen in training.
    #[serde(default, borrow)]
    pub customer_id: Option<Text<'a>>,
    /// Past purchases with outcomes.
    #[serde(default, borrow)]
    pub history: Vec<PastPurchaseRef<'a>>,
    /// Reference sizes.
    #[serde(default, borrow)]
    pub reference: Vec<ReferenceSizeRef<'a>>,
    /// Body features by name.
    #[serde(default)]
    pub features: Cow<'a, BTreeMap<String, FeatureValue>>,
}

impl ProductQuery {
    /// A borrowed view.
    pub fn view(&self) -> ProductQueryRef<'_> {
        ProductQueryRef {
            brand: text(&self.brand),
            product_id: text(&self.product_id),
            category: text(&self.category),
            sizes: self
                .sizes
                .as_ref()
                .map(|v| v.iter().map(|s| Text::of(s)).collect()),
            size_system: text(&self.size_system),
        }
    }
}

impl Shopper {
    /// A borrowed view.
    pub fn view(&self) -> ShopperRef<'_> {
        ShopperRef {
            customer_id: text(&self.customer_id),
            history: self
                .history
                .iter()
                .map(|h| PastPurchaseRef {
                    brand: text(&h.brand),
                    product_id: text(&h.product_id),
                    category: text(&h.category),
                    size: Text::of(&h.size),
                    size_system: text(&h.size_system),
                    outcome: Text::of(&h.outcome),
                })
                .collect(),
            reference: self
                .reference
                .iter()
                .map(|r| ReferenceSizeRef {
                    brand: text(&r.brand),
                    category: text(&r.category),
                    size: Text::of(&r.size),
                    size_system: text(&r.size_system),
                })
                .collect(),
            features: Cow::Borrowed(&self.features),
        }
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One label text parsed under each size-system text it was given with.
type ParsedByText = Vec<(Option<Box<str>>, LabelHit)>;

/// A parsed size label as recommendation reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LabelHit {
    system: SizeSystem,
    pos: f64,
    secondary: Option<f64>,
    /// Model label index or [`NONE`].
    label: u32,
}

impl LabelHit {
    /// Order of [`SizeLabel::cmp_order`].
    fn cmp_order(&self, other: &LabelHit) -> std::cmp::Ordering {
        let key = |l: &LabelHit| SizeLabel {
            system: l.system,
            pos: l.pos,
            secondary: l.secondary,
            canonical: String::new(),
        };
        key(self).cmp_order(&key(other))
    }
}

/// Lookups a server builds once per model so that a request allocates and hashes as
/// little as possible. Every table is an exact cache of what [`Model::recommend`]
/// computes without it (same keys, same answers), so answers do not depend on it:
/// brand / category / product / label names with a fast hasher, parsed size labels for
/// each label's canonical text (with and without its system name), the standard
/// outcome words, brand fit profiles, and the population prior.
#[derive(Clone, Debug, Default)]
pub struct RecommendIndex {
    /// False for the empty index ([`RecommendIndex::default`]): every lookup then goes
    /// to the model itself.
    complete: bool,
    brand: FastMap<Box<str>, u32>,
    category: FastMap<Box<str>, u32>,
    product: FastMap<Box<str>, u32>,
    label: FastMap<Box<str>, u32>,
    /// Model label -> the label its canonical text looks up (itself, but for a
    /// duplicate text, where the later label wins).
    canonical_label: Vec<u32>,
    /// Brand -> the brand its name looks up (itself, but for a duplicate name).
    own_brand: Vec<u32>,
    /// (product, label) -> product-in-size index.
    article_size: FastMap<(u32, u32), u32>,
    /// Raw label text -> [(system text given, parsed)].
    parsed: FastMap<Box<str>, ParsedByText>,
    /// Raw outcome text -> outcome.
    outcomes: FastMap<Box<str>, Outcome>,
    /// Brand fit profile by brand index.
    brand_profiles: Vec<Option<FitProfile>>,
    /// The same profiles as JSON (what serde writes for them).
    brand_json: Vec<Option<Box<str>>>,
    /// Prior of a shopper without features.
    population: Option<CustomerState>,
}

impl RecommendIndex {
    /// Build the tables for `model` (once per loaded model; linear in its size).
    pub fn new(model: &Model) -> Self {
        fn names<'a>(it: impl Iterator<Item = &'a str>) -> FastMap<Box<str>, u32> {
            let mut m = FastMap::default();
            // as HashMap::collect in Model::reindex: a later duplicate wins
            for (i, n) in it.enumerate() {
                m.insert(n.into(), i as u32);
            }
            m
        }
        let label = names(model.labels.iter().map(|l| l.canonical.as_str()));
        let mut parsed: FastMap<Box<str>, ParsedByText> = FastMap::default();
        for l in &model.labels {
            for system in [None, Some(l.system.as_str())] {
                let Ok(p) = parse_size(&l.canonical, system) else {
                    continue;
                };
                let hit = LabelHit {
                    system: p.system,
                    pos: p.pos,
                    secondary: p.secondary,
                    label: label.get(p.canonical.as_str()).copied().unwrap_or(NONE),
                };
                let entry = parsed.entry(l.canonical.as_str().into()).or_default();
                if !entry.iter().any(|(s, _)| s.as_deref() == system) {
                    entry.push((system.map(Into::into), hit));
                }
            }
        }
        let canonical_label = model
            .labels
            .iter()
            .map(|l| label.get(l.canonical.as_str()).copied().unwrap_or(NONE))
            .collect();
        let brand = names(model.brands.iter().map(|b| b.name.as_str()));
        let own_brand = model
            .brands
            .iter()
            .map(|b| brand.get(b.name.as_str()).copied().unwrap_or(NONE))
            .collect();
        let outcomes = standard_outcomes()
            .entries()
            .into_iter()
            .filter_map(|(word, _)| Some((word.into(), standard_outcomes().classify(word)?)))
            .collect();
        let brand_profiles: Vec<Option<FitProfile>> = (0..model.brands.len())
            .map(|i| model.brand_profile(i))
            .collect();
        let brand_json = brand_profiles
            .iter()
            .map(|p| {
                p.as_ref()
                    .and_then(|p| serde_json::to_string(p).ok())
                    .map(String::into_boxed_str)
            })
            .collect();
        RecommendIndex {
            complete: true,
            brand,
            own_brand,
            category: names(model.categories.iter().map(|b| b.name.as_str())),
            product: names(model.products.iter().map(|b| b.name.as_str())),
            label,
            canonical_label,
            article_size: model
                .index
                .article_size
                .iter()
                .map(|(&k, &v)| (k, v))
                .collect(),
            parsed,
            outcomes,
            brand_profiles,
            brand_json,
            population: Some(model.customer_prior(None)),
        }
    }
}

/// A model with its (possibly empty) serving index: every lookup of a request.
struct Lookup<'m> {
    model: &'m Model,
    index: &'m RecommendIndex,
}

impl<'m> Lookup<'m> {
    fn name(
        &self,
        fast: &FastMap<Box<str>, u32>,
        slow: &HashMap<String, u32>,
        key: Option<&str>,
    ) -> u32 {
        let Some(k) = key else {
            return NONE;
        };
        if self.index.complete {
            fast.get(k).copied().unwrap_or(NONE)
        } else {
            slow.get(k).copied().unwrap_or(NONE)
        }
    }

    fn label_index(&self, canonical: &str) -> u32 {
        self.name(&self.index.label, &self.model.index.label, Some(canonical))
    }

    /// [`Lookup::label_index`] of model label `i`'s own canonical text (without hashing
    /// it when the index has the answer).
    fn label_of(&self, i: u32, canonical: &str) -> u32 {
        match self.index.canonical_label.get(i as usize) {
            Some(&l) => l,
            None => self.label_index(canonical),
        }
    }

    /// `parse_size` plus the label's model index.
    fn parse(&self, raw: &str, system: Option<&str>) -> Result<LabelHit, String> {
        if let Some(list) = self.index.parsed.get(raw) {
            if let Some((_, hit)) = list.iter().find(|(s, _)| s.as_deref() == system) {
                return Ok(*hit);
            }
        }
        let l = parse_size(raw, system).map_err(|e| e.to_string())?;
        Ok(LabelHit {
            system: l.system,
            pos: l.pos,
            secondary: l.secondary,
            label: self.label_index(&l.canonical),
        })
    }

    /// [`Model::article_size_index`].
    fn article_size(&self, a: &ArticleRef) -> Option<u32> {
        if !self.index.complete {
            return self.model.article_size_index(a);
        }
        if a.product == NONE || a.label == NONE {
            return None;
        }
        self.index.article_size.get(&(a.product, a.label)).copied()
    }

    fn outcome(&self, raw: &str) -> Option<Outcome> {
        match self.index.outcomes.get(raw) {
            Some(&o) => Some(o),
            None => standard_outcomes().classify(raw),
        }
    }

    fn resolve_product(
        &self,
        brand: Option<&str>,
        product: Option<&str>,
        category: Option<&str>,
    ) -> (u32, u32, u32) {
        let (m, ix) = (self.model, self.index);
        let p = self.name(&ix.product, &m.index.product, product);
        let info = (p != NONE)
            .then(|| m.product_info.get(p as usize))
            .flatten();
        // a past purchase usually names its product's own brand: compared, not hashed
        let own = info.and_then(|i| Some((ix.own_brand.get(i.brand as usize)?, i.brand)));
        let b = match (brand, own) {
            (Some(name), Some((&hit, own)))
                if m.brands.get(own as usize).is_some_and(|g| g.name == name) =>
            {
                hit
            }
            _ => match self.name(&ix.brand, &m.index.brand, brand) {
                NONE => info.map_or(NONE, |i| i.brand),
                b => b,
            },
        };
        let c = match self.name(&ix.category, &m.index.category, category) {
            NONE => info.map_or(NONE, |i| i.category),
            c => c,
        };
        (b, p, c)
    }

    fn brand_profile(&self, b: u32) -> Option<Cow<'m, FitProfile>> {
        if b == NONE {
            return None;
        }
        if self.index.complete {
            return self
                .index
                .brand_profiles
                .get(b as usize)
                .and_then(Option::as_ref)
                .map(Cow::Borrowed);
        }
        self.model.brand_profile(b as usize).map(Cow::Owned)
    }
}

/// Keys of one article: brand, product, category indices.
type Keys = (u32, u32, u32);

fn article(keys: Keys, label: &LabelHit) -> ArticleRef {
    ArticleRef {
        product: keys.1,
        brand: keys.0,
        category: keys.2,
        label: label.label,
        system: label.system,
        pos: label.pos,
    }
}

/// What a shopper's size estimate is based on, in the order found: `customer`,
/// `features`, `history`, `reference`, or only `population` (no allocation).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Basis {
    items: [&'static str; 4],
    len: usize,
}

impl Basis {
    fn push(&mut self, item: &'static str) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = item;
            self.len += 1;
        }
    }

    /// The bases, in order.
    pub fn as_slice(&self) -> &[&'static str] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn contains(&self, item: &str) -> bool {
        self.as_slice().contains(&item)
    }

    fn to_strings(self) -> Vec<String> {
        self.as_slice().iter().map(|b| (*b).to_string()).collect()
    }
}

impl FromIterator<&'static str> for Basis {
    /// The first four items (a basis has at most four: customer, features, history,
    /// reference).
    fn from_iter<I: IntoIterator<Item = &'static str>>(iter: I) -> Self {
        let mut b = Basis::default();
        for item in iter {
            b.push(item);
        }
        b
    }
}

/// What a shopper's posterior is computed from.
struct ShopperInputs {
    prior: CustomerState,
    terms: Vec<EvidenceTerm>,
    basis: Basis,
    /// Index of the last past purchase that fit (for the explanation).
    last_fit: Option<usize>,
    /// The history's small / fit / large counts and the sum of those purchases' label
    /// positions (the second stage's view of the request's history).
    history_counts: ([f64; 3], f64),
}

impl Model {
    fn lookup<'m>(&'m self, index: &'m RecommendIndex) -> Lookup<'m> {
        Lookup { model: self, index }
    }

    /// The shopper's long-run size and fit bias (posterior) and what it is based on.
    pub fn shopper_belief(
        &self,
        shopper: &Shopper,
    ) -> Result<(CustomerState, Vec<String>), RecommendError> {
        let x = self.shopper_inputs(&self.lookup(&RecommendIndex::default()), &shopper.view())?;
        Ok((self.posterior(x.prior, &x.terms), x.basis.to_strings()))
    }

    /// What the shopper's posterior is computed from: the prior (features or known
    /// customer) and one evidence term per past purchase and reference size.
    pub fn shopper_evidence(
        &self,
        shopper: &Shopper,
    ) -> Result<(CustomerState, Vec<EvidenceTerm>), RecommendError> {
        let x = self.shopper_inputs(&self.lookup(&RecommendIndex::default()), &shopper.view())?;
        Ok((x.prior, x.terms))
    }

    fn shopper_inputs(
        &self,
        look: &Lookup<'_>,
        shopper: &ShopperRef<'_>,
    ) -> Result<ShopperInputs, RecommendError> {
        let mut basis = Basis::default();
        let features: &BTreeMap<String, FeatureValue> = &shopper.features;
        let mut prior = if features.is_empty() {
            look.index
                .population
                .unwrap_or_else(|| self.customer_prior(None))
        } else {
            let values = FeatureValues::from_request(&self.features, features);
            for (name, v) in features {
                let known_num = self.features.numeric.iter().any(|f| &f.name == name);
                let known_cat = self.features.categorical.iter().any(|f| &f.name == name);
                match v {
                    FeatureValue::Number(x) if known_num && !x.is_finite() => {
                        return Err(invalid(
                            format!("shopper.features.{name}"),
                            "expected a finite number",
                        ))
                    }
                    FeatureValue::Text(_) if known_num => {
                        return Err(invalid(
                            format!("shopper.features.{name}"),
                            "expected a number",
                        ))
                    }
                    FeatureValue::Number(_) if known_cat => {
                        return Err(invalid(
                            format!("shopper.features.{name}"),
                            "expected a text category",
                        ))
                    }
                    _ => {}
                }
            }
            if super::features::FeatureModel::any_present(&values) {
                basis.push("features");
            }
            self.customer_prior(Some(&values))
        };
        if let Some(id) = &shopper.customer_id {
            if let Some(st) = self
                .customer_index(id.as_str())
                .and_then(|c| self.known_customer(c as usize))
            {
                prior = st;
                basis.push("customer");
            }
        }
        let mut terms: Vec<EvidenceTerm> =
            Vec::with_capacity(shopper.history.len() + shopper.reference.len());
        let mut last_fit = None;
        let mut history_counts = ([0.0; 3], 0.0);
        for (i, h) in shopper.history.iter().enumerate() {
            let label = look
                .parse(h.size.as_str(), opt(&h.size_system))
                .map_err(|e| invalid(format!("shopper.history[{i}].size"), e))?;
            let outcome = look.outcome(h.outcome.as_str()).ok_or_else(|| {
                invalid(
                    format!("shopper.history[{i}].outcome"),
                    format!("unknown outcome '{}': expected e.g. kept, fit, too_small, too_large, returned_other", h.outcome.as_str()),
                )
            })?;
            if outcome == Outcome::Fit {
                last_fit = Some(i);
            }
            let keys = look.resolve_product(opt(&h.brand), opt(&h.product_id), opt(&h.category));
            let a = article(keys, &label);
            if let Some(k) = outcome.class() {
                // as Model::shopper_stack counts them (same parse, same outcome words)
                if let Some(c) = history_counts.0.get_mut(k) {
                    *c += 1.0;
                }
                history_counts.1 += self.label_position(&a);
            }
            terms.push(self.evidence_with(&a, look.article_size(&a), outcome.class(), true));
        }
        if !shopper.history.is_empty() {
            basis.push("history");
        }
        for (i, r) in shopper.reference.iter().enumerate() {
            let label = look
                .parse(r.size.as_str(), opt(&r.size_system))
                .map_err(|e| invalid(format!("shopper.reference[{i}].size"), e))?;
            let keys = look.resolve_product(opt(&r.brand), None, opt(&r.category));
            let a = article(keys, &label);
            // "I wear M at Acme": chosen, and it fits
            terms.push(self.evidence_with(&a, look.article_size(&a), Some(1), true));
        }
        if !shopper.reference.is_empty() {
            basis.push("reference");
        }
        if basis.is_empty() {
            basis.push("population");
        }
        Ok(ShopperInputs {
            prior,
            terms,
            basis,
            last_fit,
            history_counts,
        })
    }

    /// Recommend a size of `product` for `shopper` (without a serving index: the same
    /// answer as [`Model::recommend_ref`] with one).
    pub fn recommend(
        &self,
        product: &ProductQuery,
        shopper: &Shopper,
    ) -> Result<Recommendation, RecommendError> {
        self.recommend_ref(&RecommendIndex::default(), &product.view(), &shopper.view())
    }

    /// Recommend a size of `product` for `shopper` using the serving lookups `index`
    /// (built by [`RecommendIndex::new`] for this model; an empty index works too, slower).
    pub fn recommend_ref(
        &self,
        index: &RecommendIndex,
        product: &ProductQueryRef<'_>,
        shopper: &ShopperRef<'_>,
    ) -> Result<Recommendation, RecommendError> {
        Ok(self.recommend_view(index, product, shopper)?.into_owned())
    }

    /// [`Model::recommend_ref`] without copying texts: the answer borrows the size labels
    /// from the request and the model, and the brand profile from `index` (what a server
    /// writes straight to JSON).
    pub fn recommend_view<'a>(
        &'a self,
        index: &'a RecommendIndex,
        product: &'a ProductQueryRef<'_>,
        shopper: &ShopperRef<'_>,
    ) -> Result<RecommendationView<'a>, RecommendError> {
        let look = self.lookup(index);
        let keys = look.resolve_product(
            opt(&product.brand),
            opt(&product.product_id),
            opt(&product.category),
        );
        let (b, p, c) = keys;
        if b == NONE && p == NONE && c == NONE && product.sizes.is_none() {
            return Err(RecommendError::NotFound {
                field: "product".into(),
                message: "unknown product, brand and category, and no sizes given: nothing to recommend from".into(),
            });
        }
        // sizes on offer: (text as given or canonical, parsed)
        let mut offered: Vec<(&str, LabelHit)> = match &product.sizes {
            Some(list) => {
                if list.is_empty() {
                    return Err(invalid("product.sizes", "expected at least one size label"));
                }
                let mut v = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let l = look
                        .parse(s.as_str(), opt(&product.size_system))
                        .map_err(|e| invalid(format!("product.sizes[{i}]"), e))?;
                    v.push((s.as_str(), l));
                }
                v
            }
            None => {
                let info = (p != NONE)
                    .then(|| self.product_info.get(p as usize))
                    .flatten();
                let Some(info) = info else {
                    return Err(invalid(
                        "product.sizes",
                        "the product was not seen in training: list the sizes on offer",
                    ));
                };
                info.sizes
                    .iter()
                    .filter_map(|&i| Some((i, self.labels.get(i as usize)?)))
                    .map(|(i, l)| {
                        (
                            l.canonical.as_str(),
                            LabelHit {
                                system: l.system,
                                pos: l.pos,
                                secondary: None,
                                label: look.label_of(i, &l.canonical),
                            },
                        )
                    })
                    .collect()
            }
        };
        offered.sort_by(|x, y| x.1.cmp_order(&y.1));
        let inputs = self.shopper_inputs(&look, shopper)?;
        let state = self.posterior(inputs.prior, &inputs.terms);
        let belief = self.at_purchase(&state, None);
        let sc = self.stack.is_some().then(|| {
            let (counts, pos) = inputs.history_counts;
            self.shopper_stack_with(shopper, counts, pos)
        });
        let mut sizes = Vec::with_capacity(offered.len());
        let mut best = 0usize;
        // every size here is of one product for one shopper: the offer calibration's
        // size-invariant part is computed once
        let mut tail = None;
        for (i, (text, label)) in offered.iter().enumerate() {
            let a = article(keys, label);
            let art = look.article_size(&a);
            let pr = match &sc {
                Some(sc) => self.probs_offer_at((belief, &a, art), sc, &mut tail),
                None => self.probs_article_with(belief, &a, art),
            };
            if sizes
                .get(best)
                .is_some_and(|s: &SizeOddsView<'_>| pr[1] > s.probs[1])
            {
                best = i;
            }
            sizes.push(SizeOddsView {
                size: text,
                probs: pr,
            });
        }
        let Some(chosen) = sizes.get(best).copied() else {
            // a product seen in training without a size label
            return Err(invalid(
                "product.sizes",
                "no sizes known for the product: list the sizes on offer",
            ));
        };
        let sd = belief.var.sqrt();
        let p_fit = chosen.probs[1];
        let score = p_fit / (1.0 + sd);
        let level = super::insight::worth::confidence_level(sd, p_fit);
        let brand_fit = look.brand_profile(b);
        let explanation = explain(&ExplainInput {
            brand: brand_fit.as_deref(),
            shopper,
            basis: &inputs.basis,
            last_fit: inputs.last_fit,
            size: chosen.size,
        });
        Ok(RecommendationView {
            sizes,
            best,
            level,
            score,
            shopper_size_sd: sd,
            basis: inputs.basis,
            brand_json: (b != NONE)
                .then(|| index.brand_json.get(b as usize))
                .flatten()
                .and_then(|j| j.as_deref()),
            brand_fit,
            explanation,
        })
    }
}

/// Probabilities of one size on offer, its label borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeOddsView<'a> {
    /// Size label as given (or the model's canonical label).
    pub size: &'a str,
    /// `[small, fit, large]`.
    pub probs: [f64; 3],
}

/// A [`Recommendation`] whose texts are borrowed (from the request, the model and its
/// serving index): the same answer, without a copy of every label and of the brand
/// profile. [`RecommendationView::into_owned`] makes the [`Recommendation`].
#[derive(Clone, Debug)]
pub struct RecommendationView<'a> {
    /// Every size on offer, in size order (never empty).
    pub sizes: Vec<SizeOddsView<'a>>,
    /// Index of the recommended size in `sizes`.
    pub best: usize,
    /// Confidence level: `high`, `medium` or `low`.
    pub level: &'static str,
    /// Confidence score ([`Confidence::score`]).
    pub score: f64,
    /// Standard deviation of the shopper's size estimate, in sizes.
    pub shopper_size_sd: f64,
    /// What the shopper's size is based on.
    pub basis: Basis,
    /// How the brand runs (when the brand is known).
    pub brand_fit: Option<Cow<'a, FitProfile>>,
    /// `brand_fit` as JSON, byte for byte what serde writes for it, when the serving
    /// index has it ready.
    pub brand_json: Option<&'a str>,
    /// One sentence a shop can show.
    pub explanation: String,
}

impl RecommendationView<'_> {
    /// The recommended size and its probabilities.
    pub fn chosen(&self) -> Option<&SizeOddsView<'_>> {
        self.sizes.get(self.best)
    }

    /// The owned [`Recommendation`].
    pub fn into_owned(self) -> Recommendation {
        let chosen = self.chosen().copied().unwrap_or(SizeOddsView {
            size: "",
            probs: [f64::NAN; 3],
        });
        Recommendation {
            recommended_size: chosen.size.to_string(),
            fit_probability: chosen.probs[1],
            sizes: self
                .sizes
                .iter()
                .map(|s| SizeOdds {
                    size: s.size.to_string(),
                    p_small: s.probs[0],
                    p_fit: s.probs[1],
                    p_large: s.probs[2],
                })
                .collect(),
            confidence: Confidence {
                level: self.level.to_string(),
                score: self.score,
                shopper_size_sd: self.shopper_size_sd,
                basis: self.basis.to_strings(),
            },
            brand_fit: self.brand_fit.map(Cow::into_owned),
            explanation: self.explanation,
        }
    }
}

struct ExplainInput<'a> {
    brand: Option<&'a FitProfile>,
    shopper: &'a ShopperRef<'a>,
    basis: &'a Basis,
    /// Index of the last past purchase that fit.
    last_fit: Option<usize>,
    size: &'a str,
}

/// One sentence: how the brand runs, what the size is based on, the size.
fn explain(x: &ExplainInput<'_>) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(160);
    if let Some(bf) = x.brand {
        // (a profile's verdict is `describe(offset, se)`'s, see report::profile)
        s.push_str(&bf.key);
        s.push(' ');
        s.push_str(&bf.verdict);
        s.push_str("; ");
    }
    let history = &x.shopper.history;
    let kept = x.last_fit.and_then(|i| history.get(i));
    let _ = if let Some(h) = kept {
        match &h.brand {
            Some(b) => write!(
                s,
                "based on the {} you kept from {}",
                h.size.as_str(),
                b.as_str()
            ),
            None => write!(s, "based on the {} you kept", h.size.as_str()),
        }
    } else if let Some(r) = x.shopper.reference.first() {
        match &r.brand {
            Some(b) => write!(
                s,
                "based on the {} you wear at {}",
                r.size.as_str(),
                b.as_str()
            ),
            None => write!(s, "based on the {} you usually wear", r.size.as_str()),
        }
    } else if let Some(h) = history.last() {
        write!(
            s,
            "based on your past purchases (the {} was {})",
            h.size.as_str(),
            h.outcome.as_str().replace('_', " ")
        )
    } else if x.basis.contains("customer") {
        s.write_str("based on your purchase history")
    } else if x.basis.contains("features") {
        s.write_str("based on your measurements")
    } else {
        s.write_str("based on what most shoppers keep")
    };
    let _ = write!(s, " we recommend {}.", x.size);
    // capitalise the first character when it is ASCII
    if let Some(first) = s.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    s
}
