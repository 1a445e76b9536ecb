//! The catalogue index: every name-to-index lookup of a fitted model (brands,
//! categories, products, size labels, products in sizes), plus the parsed size labels
//! and outcome words a request most often carries. Built once per [`super::Predictor`].

use crate::data::schema::{Outcome, SizeLabel, SizeSystem, NONE};
use crate::data::{parse_size, OutcomeMap};
use crate::model::fitted::Fitted;
use crate::model::predict::ArticleRef;
use std::collections::HashMap;

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One label text parsed under each size-system text it was given with.
type ParsedByText = Vec<(Option<Box<str>>, LabelHit)>;

/// A parsed size label with its model label index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LabelHit {
    pub(crate) system: SizeSystem,
    pub(crate) pos: f64,
    pub(crate) secondary: Option<f64>,
    /// Model label index or [`NONE`].
    pub(crate) label: u32,
}

impl LabelHit {
    /// Order of [`SizeLabel::cmp_order`].
    pub(crate) fn cmp_order(&self, other: &LabelHit) -> std::cmp::Ordering {
        let key = |l: &LabelHit| SizeLabel {
            system: l.system,
            pos: l.pos,
            secondary: l.secondary,
            canonical: String::new(),
        };
        key(self).cmp_order(&key(other))
    }
}

/// The standard outcome vocabulary, built once.
pub(crate) fn standard_outcomes() -> &'static OutcomeMap {
    static MAP: std::sync::OnceLock<OutcomeMap> = std::sync::OnceLock::new();
    MAP.get_or_init(OutcomeMap::standard)
}

/// Name lookups of one model. Where a name occurs twice the later one wins (as a map
/// collected in order).
#[derive(Clone, Debug, Default)]
pub(crate) struct Catalog {
    pub(crate) brand: FastMap<Box<str>, u32>,
    pub(crate) category: FastMap<Box<str>, u32>,
    pub(crate) product: FastMap<Box<str>, u32>,
    pub(crate) label: FastMap<Box<str>, u32>,
    /// Model label -> the label its canonical text looks up (itself, but for a
    /// duplicate text, where the later label wins).
    canonical_label: Vec<u32>,
    /// Brand -> the brand its name looks up (itself, but for a duplicate name).
    own_brand: Vec<u32>,
    /// (product, label) -> product-in-size index.
    pub(crate) article_size: FastMap<(u32, u32), u32>,
    /// Raw label text -> [(system text given, parsed)].
    parsed: FastMap<Box<str>, ParsedByText>,
    /// Raw outcome text -> outcome.
    outcomes: FastMap<Box<str>, Outcome>,
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> FastMap<Box<str>, u32> {
    let mut m = FastMap::default();
    for (i, n) in it.enumerate() {
        m.insert(n.into(), i as u32);
    }
    m
}

impl Catalog {
    /// Build every lookup of `model` (linear in its size).
    pub(crate) fn new(model: &Fitted) -> Self {
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
        Catalog {
            brand,
            own_brand,
            category: names(model.categories.iter().map(|b| b.name.as_str())),
            product: names(model.products.iter().map(|b| b.name.as_str())),
            label,
            canonical_label,
            article_size: model
                .article_sizes
                .iter()
                .enumerate()
                .map(|(i, a)| ((a.product, a.label), i as u32))
                .collect(),
            parsed,
            outcomes,
        }
    }

    /// Index of `key` in a name map, [`NONE`] when absent or not given.
    pub(crate) fn find(map: &FastMap<Box<str>, u32>, key: Option<&str>) -> u32 {
        key.and_then(|k| map.get(k).copied()).unwrap_or(NONE)
    }

    /// The label index of model label `i`'s own canonical text (without hashing it).
    pub(crate) fn label_of(&self, i: u32, canonical: &str) -> u32 {
        match self.canonical_label.get(i as usize) {
            Some(&l) => l,
            None => Self::find(&self.label, Some(canonical)),
        }
    }

    /// `parse_size` plus the label's model index.
    pub(crate) fn parse(&self, raw: &str, system: Option<&str>) -> Result<LabelHit, String> {
        if let Some(list) = self.parsed.get(raw) {
            if let Some((_, hit)) = list.iter().find(|(s, _)| s.as_deref() == system) {
                return Ok(*hit);
            }
        }
        let l = parse_size(raw, system).map_err(|e| e.to_string())?;
        Ok(LabelHit {
            system: l.system,
            pos: l.pos,
            secondary: l.secondary,
            label: Self::find(&self.label, Some(&l.canonical)),
        })
    }

    /// The product-in-size index of an article, if the model has one.
    pub(crate) fn article_size(&self, a: &ArticleRef) -> Option<u32> {
        if a.product == NONE || a.label == NONE {
            return None;
        }
        self.article_size.get(&(a.product, a.label)).copied()
    }

    /// The outcome a raw word names, if any.
    pub(crate) fn outcome(&self, raw: &str) -> Option<Outcome> {
        match self.outcomes.get(raw) {
            Some(&o) => Some(o),
            None => standard_outcomes().classify(raw),
        }
    }

    /// (brand, product, category) indices of a product's keys: an unknown or missing
    /// brand or category falls back on the known product's own.
    pub(crate) fn resolve_product(
        &self,
        model: &Fitted,
        (brand, product, category): (Option<&str>, Option<&str>, Option<&str>),
    ) -> (u32, u32, u32) {
        let p = Self::find(&self.product, product);
        let info = (p != NONE)
            .then(|| model.product_info.get(p as usize))
            .flatten();
        // a past purchase usually names its product's own brand: compared, not hashed
        let own = info.and_then(|i| Some((self.own_brand.get(i.brand as usize)?, i.brand)));
        let b = match (brand, own) {
            (Some(name), Some((&hit, own)))
                if model
                    .brands
                    .get(own as usize)
                    .is_some_and(|g| g.name == name) =>
            {
                hit
            }
            _ => match Self::find(&self.brand, brand) {
                NONE => info.map_or(NONE, |i| i.brand),
                b => b,
            },
        };
        let c = match Self::find(&self.category, category) {
            NONE => info.map_or(NONE, |i| i.category),
            c => c,
        };
        (b, p, c)
    }
}
