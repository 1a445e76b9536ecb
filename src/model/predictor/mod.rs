//! The [`Predictor`]: a validated [`Fitted`] model with every index and cache that
//! prediction reads, built once (on load, or after a fit) and never changed. Scoring,
//! evaluation, recommendations and fit profiles are its methods; a server holds one per
//! model and swaps it whole on reload.

mod catalog;
mod recommend;
mod stage;

pub(crate) use catalog::{Catalog, FastMap, LabelHit};
pub use recommend::{confidence_level, Basis, RecommendError, RecommendationView, SizeOddsView};

use crate::data::dict::DictIndex;
use crate::data::schema::{Dict, NONE};
use crate::model::fitted::Fitted;
use crate::model::predict::{ArticleRef, CustomerState, EvidenceTerm, SizeBelief};
use crate::model::report::{FitProfile, ProfileBy};
use crate::model::stack::PreparedStage;
use crate::model::ModelError;
use rayon::prelude::*;

/// A fitted model ready to predict: the [`Fitted`] data (readable through `Deref`) plus
/// its catalogue index, customer index, prepared second stage, fit profiles and the
/// population prior. `Send + Sync`; build it with [`Predictor::new`].
#[derive(Debug)]
pub struct Predictor {
    fitted: Fitted,
    catalog: Catalog,
    customers: DictIndex,
    stage: Option<PreparedStage>,
    /// Profiles by brand, category, product, ranked (most certain first).
    profiles: [Vec<FitProfile>; 3],
    /// Brand profile by brand index.
    brand_profiles: Vec<Option<FitProfile>>,
    /// The same profiles as JSON (byte for byte what serde writes for them).
    brand_json: Vec<Option<Box<str>>>,
    /// Prior of a shopper without features.
    population: CustomerState,
}

impl std::ops::Deref for Predictor {
    type Target = Fitted;

    /// A predictor reads as the fitted data it was built from.
    fn deref(&self) -> &Fitted {
        &self.fitted
    }
}

impl Predictor {
    /// Validate `fitted` ([`Fitted::validate`]) and build every index and cache
    /// (linear in the model's size; about a second per 10M training customers).
    pub fn new(fitted: Fitted) -> Result<Predictor, ModelError> {
        fitted.validate()?;
        let catalog = Catalog::new(&fitted);
        let customers = DictIndex::build(&fitted.customers.ids);
        let brand_profiles: Vec<Option<FitProfile>> = (0..fitted.brands.len())
            .map(|i| fitted.brand_profile(i))
            .collect();
        let brand_json = brand_profiles
            .iter()
            .map(|p| {
                p.as_ref()
                    .and_then(|p| serde_json::to_string(p).ok())
                    .map(String::into_boxed_str)
            })
            .collect();
        let profiles = [
            fitted.profiles(ProfileBy::Brand),
            fitted.profiles(ProfileBy::Category),
            fitted.profiles(ProfileBy::Product),
        ];
        let population = fitted.customer_prior(None);
        let mut predictor = Predictor {
            fitted,
            catalog,
            customers,
            stage: None,
            profiles,
            brand_profiles,
            brand_json,
            population,
        };
        // the stage's caches are computed through the catalogue built above
        predictor.stage = predictor
            .fitted
            .stack
            .as_ref()
            .map(|s| predictor.prepare_stage(s));
        Ok(predictor)
    }

    /// The fitted data.
    pub fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    /// Forget the stored customers (their table and its index): every customer then reads
    /// as new (their prior). Cross-fitting frees a fold model's customers this way once
    /// it has read their beliefs, before its rows are made (at 10M customers, ~200 MB).
    pub(crate) fn release_customers(&mut self) {
        self.fitted.customers = Default::default();
        self.customers = DictIndex::default();
    }

    /// The fitted data back (e.g. to attach a second stage and save it).
    pub fn into_fitted(self) -> Fitted {
        self.fitted
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(crate) fn stage(&self) -> Option<&PreparedStage> {
        self.stage.as_ref()
    }

    /// The prior of a shopper of whom nothing is known.
    pub fn population(&self) -> CustomerState {
        self.population
    }

    /// Index of a brand by name.
    pub fn brand_index(&self, name: &str) -> Option<u32> {
        self.catalog.brand.get(name).copied()
    }

    /// Index of a category by name.
    pub fn category_index(&self, name: &str) -> Option<u32> {
        self.catalog.category.get(name).copied()
    }

    /// Index of a product by id.
    pub fn product_index(&self, id: &str) -> Option<u32> {
        self.catalog.product.get(id).copied()
    }

    /// Index of a size label by its canonical text.
    pub fn label_index(&self, canonical: &str) -> Option<u32> {
        self.catalog.label.get(canonical).copied()
    }

    /// Index of a training customer by id (`None` for a customer the model has not
    /// seen). The one lookup of customer ids: the server, scoring and the second stage
    /// all go through it (or [`Predictor::customer_indices`] for a whole dictionary).
    pub fn customer_index(&self, id: &str) -> Option<u32> {
        self.customers.find(&self.fitted.customers.ids, id)
    }

    /// [`Predictor::customer_index`] of every key of `keys` ([`NONE`] when unseen), in
    /// parallel. When the model's ids are distinct, a key at the same position in both
    /// dictionaries is that index without hashing: scoring the table a model was trained
    /// on (same dictionary order) reads both in order instead of probing at random.
    pub fn customer_indices(&self, keys: &Dict) -> Vec<u32> {
        let ids = &self.fitted.customers.ids;
        let ix = &self.customers;
        let distinct = ix.len() == ids.len();
        let found = |o: Option<u32>| o.unwrap_or(NONE);
        match (keys.as_ints(), ids.as_ints()) {
            (Some(keys), Some(mine)) => keys
                .par_iter()
                .enumerate()
                .with_min_len(4096)
                .map(|(i, &k)| {
                    if distinct && mine.get(i) == Some(&k) {
                        i as u32
                    } else {
                        found(ix.find_int(ids, k))
                    }
                })
                .collect(),
            (Some(keys), None) => keys
                .par_iter()
                .with_min_len(4096)
                .map(|&k| found(ix.find_int(ids, k)))
                .collect(),
            (None, _) => (0..keys.len())
                .into_par_iter()
                .with_min_len(4096)
                .map(|i| {
                    let Some(key) = keys.text_at(i) else {
                        return NONE;
                    };
                    if distinct && ids.text_at(i) == Some(key) {
                        i as u32
                    } else {
                        found(ix.find(ids, key))
                    }
                })
                .collect(),
        }
    }

    /// The customer index (heap bytes, length).
    pub fn customer_lookup(&self) -> &DictIndex {
        &self.customers
    }

    /// Index of the article's product-in-size offset (`article_sizes`), if the model has one.
    pub fn article_size_index(&self, a: &ArticleRef) -> Option<u32> {
        self.catalog.article_size(a)
    }

    /// The article's true size on the common scale (size steps).
    pub fn true_size(&self, a: &ArticleRef) -> f64 {
        self.true_size_with(a, self.article_size_index(a))
    }

    /// How the article runs in size steps, relative to its label (> 0 large, < 0 small):
    /// everything in [`Predictor::true_size`] except the label's own position and system
    /// alignment.
    pub fn runs(&self, a: &ArticleRef) -> f64 {
        self.true_size(a) - a.pos / self.scale(a.system) - self.align(a.system)
    }

    /// Variance of the article's true size ([`Fitted::article_var_with`]).
    pub fn article_var(&self, a: &ArticleRef) -> f64 {
        self.article_var_with(a, self.article_size_index(a))
    }

    /// Probabilities `[small, fit, large]` of a purchase-time size belief in an article,
    /// integrating both the shopper's and the article's uncertainty.
    pub fn probs_article(&self, belief: SizeBelief, a: &ArticleRef) -> [f64; 3] {
        self.probs_article_with(belief, a, self.article_size_index(a))
    }

    /// Evidence term of one past purchase.
    pub fn evidence(&self, a: &ArticleRef, class: Option<usize>, chosen: bool) -> EvidenceTerm {
        self.evidence_with(a, self.article_size_index(a), class, chosen)
    }

    /// Profile of brand `b` (`None` for [`NONE`] or out of range).
    pub fn brand_profile(&self, b: u32) -> Option<&FitProfile> {
        self.brand_profiles.get(b as usize)?.as_ref()
    }

    /// [`Predictor::brand_profile`] as JSON.
    pub fn brand_profile_json(&self, b: u32) -> Option<&str> {
        self.brand_json.get(b as usize)?.as_deref()
    }

    /// The profiles of a kind, most certain large effects first.
    pub fn profiles(&self, by: ProfileBy) -> &[FitProfile] {
        let i = match by {
            ProfileBy::Brand => 0,
            ProfileBy::Category => 1,
            ProfileBy::Product => 2,
        };
        self.profiles.get(i).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::fitted::CustomerTable;

    fn send_sync<T: Send + Sync>() {}

    fn dict(keys: &[&str]) -> Dict {
        keys.iter().collect()
    }

    fn customers(ids: &[&str]) -> CustomerTable {
        let n = ids.len();
        CustomerTable {
            ids: dict(ids),
            mean: vec![0.0; n],
            var: vec![1.0; n],
            bias: vec![0.0; n],
            bias_var: vec![1.0; n],
            cov: vec![0.0; n],
            n: vec![1; n],
        }
    }

    #[test]
    fn predictor_is_send_and_sync() {
        send_sync::<Predictor>();
    }

    #[test]
    fn an_invalid_model_builds_no_predictor() {
        let e = Predictor::new(Fitted::default()).unwrap_err().to_string();
        assert!(e.contains("no size labels"), "{e}");
    }

    #[test]
    fn customer_indices_match_single_lookups_by_position_or_hash() {
        let mut f = Fitted::minimal();
        f.customers = customers(&["5", "6", "7", "8"]);
        let m = Predictor::new(f.clone()).unwrap();
        // same order, shifted, unseen, and the text forms of the same integers
        let same = dict(&["5", "6", "7", "8"]);
        let other = dict(&["8", "9", "5"]);
        let mut as_text = dict(&["7", "x"]);
        as_text.make_text();
        assert_eq!(m.customer_indices(&same), vec![0, 1, 2, 3]);
        assert_eq!(m.customer_indices(&other), vec![3, NONE, 0]);
        assert_eq!(m.customer_indices(&as_text), vec![2, NONE]);
        // a text model against integer keys
        f.customers = customers(&["x", "8", "5"]);
        let m = Predictor::new(f).unwrap();
        assert_eq!(m.customer_indices(&other), vec![1, NONE, 2]);
        assert_eq!(m.customer_index("x"), Some(0));
        assert_eq!(m.customer_index("y"), None);
    }
}
