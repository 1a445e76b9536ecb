//! The synthetic world: model constants, size systems on a common scale, categories,
//! brands, products, and customers whose attributes are a pure function of their id.

use super::draw::Stream;
use super::names::brand_names;
use crate::data::{DataError, SizeSystem};
use rand::seq::SliceRandom;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Constants of the generative model. Every field is recorded in the truth file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelParams {
    /// Standard deviation of a customer's latent size `u` on the common (letter) scale.
    /// Default 1.3.
    pub customer_size_sd: f64,
    /// Standard deviation of brand offsets, in size steps. Default 0.45.
    pub brand_offset_sd: f64,
    /// Standard deviation of a product's offset around its brand, in size steps. Default 0.25.
    pub product_offset_sd: f64,
    /// How much of a brand's offset shoppers correct for when they pick a size
    /// (0 = ignore reputation, 1 = fully correct). Default 0.5.
    pub reputation_k: f64,
    /// Standard deviation of the noise in a shopper's aimed size, in size steps. Default 0.45.
    pub choice_noise_sd: f64,
    /// Slope of the ordinal logistic outcome model per size step of gap. Default 3.0.
    pub slope: f64,
    /// Outcome threshold: too small when `slope * gap + logistic > threshold`, too large
    /// when it is `< -threshold`. Default 2.75.
    pub threshold: f64,
    /// Probability that a purchase becomes a return for a reason unrelated to fit.
    /// Default 0.06.
    pub other_return_rate: f64,
    /// Zipf exponent of product popularity (weight of rank r is `1 / (r + 1)^s`). Default 1.0.
    pub product_zipf: f64,
    /// Repeat-purchase concentration: a repeat purchase goes to the acquired customer at
    /// normalised rank `x = ((f + (1 - f) U)^a - f^a) / (1 - f^a)`; this is `a`. Default 3.0.
    pub repeat_exponent: f64,
    /// The floor `f` of the repeat-purchase draw above (caps the busiest customer). Default 0.1.
    pub repeat_floor: f64,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            customer_size_sd: 1.3,
            brand_offset_sd: 0.45,
            product_offset_sd: 0.25,
            reputation_k: 0.5,
            choice_noise_sd: 0.45,
            slope: 3.0,
            threshold: 2.75,
            other_return_rate: 0.06,
            product_zipf: 1.0,
            repeat_exponent: 3.0,
            repeat_floor: 0.1,
        }
    }
}

impl ModelParams {
    /// Reject non-finite or out-of-range constants.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |message: String| DataError::Config {
            what: "synthetic model parameter",
            message,
        };
        let non_negative = [
            ("customer_size_sd", self.customer_size_sd),
            ("brand_offset_sd", self.brand_offset_sd),
            ("product_offset_sd", self.product_offset_sd),
            ("choice_noise_sd", self.choice_noise_sd),
            ("product_zipf", self.product_zipf),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                return Err(bad(format!("{name} = {v}; expected a number in [0, 100]")));
            }
        }
        if !(self.reputation_k.is_finite() && (0.0..=1.0).contains(&self.reputation_k)) {
            return Err(bad(format!(
                "reputation_k = {}; expected a number in [0, 1]",
                self.reputation_k
            )));
        }
        if !(self.slope.is_finite() && self.slope > 0.0 && self.slope <= 1000.0) {
            return Err(bad(format!(
                "slope = {}; expected a number in (0, 1000]",
                self.slope
            )));
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0 && self.threshold <= 1000.0) {
            return Err(bad(format!(
                "threshold = {}; expected a number in (0, 1000]",
                self.threshold
            )));
        }
        if !(self.other_return_rate.is_finite() && (0.0..=1.0).contains(&self.other_return_rate)) {
            return Err(bad(format!(
                "other_return_rate = {}; expected a probability in [0, 1]",
                self.other_return_rate
            )));
        }
        if !(self.repeat_exponent.is_finite() && (1.0..=20.0).contains(&self.repeat_exponent)) {
            return Err(bad(format!(
                "repeat_exponent = {}; expected a number in [1, 20]",
                self.repeat_exponent
            )));
        }
        if !(self.repeat_floor.is_finite() && (0.0..1.0).contains(&self.repeat_floor)) {
            return Err(bad(format!(
                "repeat_floor = {}; expected a number in [0, 1)",
                self.repeat_floor
            )));
        }
        Ok(())
    }
}

/// How one size system maps onto the common customer scale: an article of label position
/// `pos` (as parsed by `parse_size`) has nominal size `(pos - origin) / scale` on the
/// common scale (letter steps, M = 0).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemScale {
    /// The size system.
    pub system: SizeSystem,
    /// Label position of the common-scale size 0 (the letter M).
    pub origin: f64,
    /// Label positions per common-scale step.
    pub scale: f64,
}

/// The systems the generator uses, with their mapping onto the common scale.
pub const SYSTEMS: [SystemScale; 8] = [
    SystemScale {
        system: SizeSystem::Letter,
        origin: 0.0,
        scale: 1.0,
    },
    SystemScale {
        system: SizeSystem::Us,
        origin: 4.0,
        scale: 1.0,
    },
    SystemScale {
        system: SizeSystem::Uk,
        origin: 6.0,
        scale: 1.0,
    },
    SystemScale {
        system: SizeSystem::Eu,
        origin: 19.0,
        scale: 1.0,
    },
    SystemScale {
        system: SizeSystem::It,
        origin: 21.0,
        scale: 1.0,
    },
    SystemScale {
        system: SizeSystem::Fr,
        origin: 20.0,
        scale: 1.0,
    },
    SystemScale {
        system: SizeSystem::Jp,
        origin: 4.5,
        scale: 1.0,
    },
    SystemScale {
        system: SizeSystem::Jeans,
        origin: 31.0,
        scale: 2.0,
    },
];

/// The scale entry of a system the generator uses.
pub(crate) fn system_scale(system: SizeSystem) -> SystemScale {
    SYSTEMS
        .iter()
        .copied()
        .find(|s| s.system == system)
        .unwrap_or(SYSTEMS[0])
}

/// Letter labels from XXS (position -3) to 3XL (position 4).
const LETTERS: [&str; 8] = ["XXS", "XS", "S", "M", "L", "XL", "XXL", "3XL"];
/// Lowest letter position.
const LETTER_MIN: i32 = -3;
/// Jeans leg lengths offered with every waist, in inches.
pub(crate) const JEANS_LENGTHS: [u32; 3] = [30, 32, 34];

/// Render the canonical label of grid step `k` (label position `origin + k`) in `system`,
/// with a jeans length in inches for jeans. Uses [`crate::data::labels::label_for`], with
/// a local rendering of the same canonical forms as a fallback.
pub(crate) fn render_label(system: SizeSystem, k: i32, length: u32) -> String {
    let sc = system_scale(system);
    let pos = sc.origin + f64::from(k);
    let secondary = (system == SizeSystem::Jeans).then_some(f64::from(length));
    if let Some(label) = crate::data::labels::label_for(system, pos, secondary) {
        return label;
    }
    match system {
        SizeSystem::Letter => {
            let i = (k - LETTER_MIN).clamp(0, LETTERS.len() as i32 - 1) as usize;
            LETTERS.get(i).copied().unwrap_or("M").to_string()
        }
        SizeSystem::Jeans => format!("{}x{length}", pos.round() as i64),
        other => {
            let prefix = match other {
                SizeSystem::Us => "US",
                SizeSystem::Uk => "UK",
                SizeSystem::Eu => "EU",
                SizeSystem::It => "IT",
                SizeSystem::Fr => "FR",
                _ => "JP",
            };
            format!("{prefix} {}", (2.0 * pos).round() as i64)
        }
    }
}

/// A brand's home market: decides which numeric system it labels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Market {
    /// United States (US sizes).
    Us,
    /// United Kingdom (UK sizes).
    Uk,
    /// Continental Europe (EU / DE sizes).
    Eu,
    /// Italy (IT sizes).
    It,
    /// France (FR sizes).
    Fr,
    /// Japan (JP sizes).
    Jp,
}

const MARKETS: [(Market, f64); 6] = [
    (Market::Us, 3.0),
    (Market::Uk, 2.0),
    (Market::Eu, 3.0),
    (Market::It, 1.5),
    (Market::Fr, 1.5),
    (Market::Jp, 1.0),
];

impl Market {
    /// The numeric clothing system of this market.
    fn numeric_system(self) -> SizeSystem {
        match self {
            Market::Us => SizeSystem::Us,
            Market::Uk => SizeSystem::Uk,
            Market::Eu => SizeSystem::Eu,
            Market::It => SizeSystem::It,
            Market::Fr => SizeSystem::Fr,
            Market::Jp => SizeSystem::Jp,
        }
    }
}

/// How a category picks its size system.
#[derive(Clone, Copy, Debug)]
enum SystemRule {
    /// Always letter sizes.
    Letter,
    /// The brand's home-market numeric system.
    Home,
    /// Jeans waist x length.
    Jeans,
    /// Numeric for Italian and French brands, letters otherwise.
    LetterOrHome,
}

/// Categories: name, size-system rule, and weight when brands pick what they sell.
const CATEGORIES: [(&str, SystemRule, f64); 7] = [
    ("tops", SystemRule::Letter, 3.0),
    ("knitwear", SystemRule::Letter, 1.5),
    ("dresses", SystemRule::Home, 2.0),
    ("skirts", SystemRule::Home, 1.0),
    ("trousers", SystemRule::Home, 1.5),
    ("jeans", SystemRule::Jeans, 2.0),
    ("outerwear", SystemRule::LetterOrHome, 1.5),
];

/// Body-shape levels.
pub(crate) const SHAPES: [&str; 3] = ["straight", "curvy", "athletic"];

/// One brand.
#[derive(Clone, Debug)]
pub(crate) struct Brand {
    pub(crate) name: String,
    pub(crate) offset: f64,
    pub(crate) market: Market,
    pub(crate) categories: Vec<&'static str>,
}

/// One product: a brand's article in one category and one size system.
#[derive(Clone, Debug)]
pub(crate) struct Product {
    pub(crate) id: String,
    pub(crate) brand: usize,
    pub(crate) category: &'static str,
    pub(crate) system: SizeSystem,
    /// Offset relative to the brand, in common-scale steps.
    pub(crate) offset: f64,
    /// Lowest offered grid step (label position `origin + lo`).
    pub(crate) lo: i32,
    /// Highest offered grid step.
    pub(crate) hi: i32,
    /// Label ids by (step - lo) and jeans length index.
    pub(crate) labels: Vec<[u32; 3]>,
    /// Relative popularity (sums to 1 over products).
    pub(crate) popularity: f64,
}

/// Customer attributes, a pure function of (seed, customer id).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Customer {
    /// Latent true size on the common scale.
    pub(crate) size: f64,
    /// Reported height in cm (rounded to 0.1), if the customer gave it.
    pub(crate) height: Option<f64>,
    /// Reported weight in kg (rounded to 0.1), if given.
    pub(crate) weight: Option<f64>,
    /// Body shape level, if given.
    pub(crate) shape: Option<u8>,
    /// Preferred jeans length index into [`JEANS_LENGTHS`].
    pub(crate) length: usize,
}

/// Round to one decimal.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Everything fixed before events are drawn.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) params: ModelParams,
    pub(crate) brands: Vec<Brand>,
    pub(crate) products: Vec<Product>,
    /// Cumulative popularity, for inverse-CDF product draws.
    pub(crate) cumulative: Vec<f64>,
    /// Interned size labels.
    pub(crate) labels: Vec<String>,
    /// Customer universe size.
    pub(crate) customers: u64,
    /// Customers acquired (`min(customers, events)`).
    pub(crate) acquired: u64,
    /// Total events.
    pub(crate) events: u64,
    /// Affine permutation from acquisition order to id: `id - 1 = (c * mult + add) mod customers`.
    pub(crate) perm_mult: u64,
    pub(crate) perm_add: u64,
    /// Draw streams.
    pub(crate) customer_stream: Stream,
    pub(crate) customer_stream2: Stream,
    pub(crate) event_stream: Stream,
}

/// Greatest common divisor.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Inputs to [`World::build`].
pub(crate) struct WorldSpec<'a> {
    pub(crate) params: &'a ModelParams,
    pub(crate) seed: u64,
    pub(crate) events: u64,
    pub(crate) brands: usize,
    pub(crate) customers: u64,
    pub(crate) products_per_brand: usize,
}

impl World {
    /// Draw brands and products, and fix the customer permutation.
    pub(crate) fn build(spec: &WorldSpec<'_>) -> Result<World, DataError> {
        let params = spec.params.clone();
        let mut rng =
            ChaCha8Rng::seed_from_u64(super::draw::mix(spec.seed ^ 0xB4A2_D5EE_D000_0001));
        let normal = |sd: f64| {
            Normal::new(0.0, sd).map_err(|e| DataError::Config {
                what: "synthetic model parameter",
                message: format!("bad standard deviation {sd}: {e}"),
            })
        };
        let brand_dist = normal(params.brand_offset_sd)?;
        let product_dist = normal(params.product_offset_sd)?;

        let names = brand_names(spec.brands, &mut rng);
        let mut brands = Vec::with_capacity(spec.brands);
        for name in names {
            let offset = brand_dist.sample(&mut rng);
            let market = MARKETS
                .choose_weighted(&mut rng, |m| m.1)
                .map(|m| m.0)
                .unwrap_or(Market::Eu);
            let n_cat = [1usize, 2, 2, 3, 3][rng.gen_range(0..5)];
            let mut pool: Vec<usize> = (0..CATEGORIES.len()).collect();
            let mut categories = Vec::with_capacity(n_cat);
            for _ in 0..n_cat {
                let Ok(&pick) = pool.choose_weighted(&mut rng, |&i| CATEGORIES[i].2) else {
                    break;
                };
                pool.retain(|&i| i != pick);
                categories.push(CATEGORIES[pick].0);
            }
            brands.push(Brand {
                name,
                offset,
                market,
                categories,
            });
        }

        let mut labels: Vec<String> = Vec::new();
        let mut label_ids: HashMap<String, u32> = HashMap::new();
        let mut intern = |s: String| -> u32 {
            if let Some(&id) = label_ids.get(&s) {
                return id;
            }
            let id = labels.len() as u32;
            labels.push(s.clone());
            label_ids.insert(s, id);
            id
        };

        let mut products = Vec::new();
        for (b, brand) in brands.iter().enumerate() {
            let factor: f64 = rng.gen_range(0.5..1.5);
            let count = ((spec.products_per_brand as f64 * factor).round() as usize).max(1);
            for i in 0..count {
                let category = brand
                    .categories
                    .get(i % brand.categories.len().max(1))
                    .copied()
                    .unwrap_or("tops");
                let rule = CATEGORIES
                    .iter()
                    .find(|c| c.0 == category)
                    .map(|c| c.1)
                    .unwrap_or(SystemRule::Letter);
                let system = match rule {
                    SystemRule::Letter => SizeSystem::Letter,
                    SystemRule::Home => brand.market.numeric_system(),
                    SystemRule::Jeans => SizeSystem::Jeans,
                    SystemRule::LetterOrHome => match brand.market {
                        Market::It | Market::Fr => brand.market.numeric_system(),
                        _ => SizeSystem::Letter,
                    },
                };
                // Offered range in common-scale steps: from -3 or -2 up to 2..4.
                let lo_u = -rng.gen_range(2..=3);
                let hi_u = rng.gen_range(2..=4);
                let scale = system_scale(system).scale.round() as i32;
                let (lo, hi) = (lo_u * scale, hi_u * scale);
                let mut ids = Vec::with_capacity((hi - lo + 1) as usize);
                for k in lo..=hi {
                    if system == SizeSystem::Jeans {
                        let mut row = [0u32; 3];
                        for (slot, len) in row.iter_mut().zip(JEANS_LENGTHS) {
                            *slot = intern(render_label(system, k, len));
                        }
                        ids.push(row);
                    } else {
                        let id = intern(render_label(system, k, 0));
                        ids.push([id; 3]);
                    }
                }
                let offset = product_dist.sample(&mut rng);
                products.push(Product {
                    id: format!("P{:06}", products.len() + 1),
                    brand: b,
                    category,
                    system,
                    offset,
                    lo,
                    hi,
                    labels: ids,
                    popularity: 0.0,
                });
            }
        }

        // Zipf popularity over a random ranking of products.
        let mut ranks: Vec<usize> = (0..products.len()).collect();
        ranks.shuffle(&mut rng);
        let weights: Vec<f64> = (0..products.len())
            .map(|r| 1.0 / ((r + 1) as f64).powf(params.product_zipf))
            .collect();
        let total: f64 = weights.iter().sum();
        for (r, &p) in ranks.iter().enumerate() {
            if let (Some(prod), Some(w)) = (products.get_mut(p), weights.get(r)) {
                prod.popularity = w / total;
            }
        }
        let mut acc = 0.0;
        let cumulative = products
            .iter()
            .map(|p| {
                acc += p.popularity;
                acc
            })
            .collect();

        let customers = spec.customers.max(1);
        let mut perm_mult = (super::draw::mix(spec.seed ^ 0xC0FF_EE00) % customers).max(1);
        while gcd(perm_mult, customers) != 1 {
            perm_mult = perm_mult % customers + 1;
        }
        let perm_add = super::draw::mix(spec.seed ^ 0xADD0) % customers;

        Ok(World {
            params,
            brands,
            products,
            cumulative,
            labels,
            customers,
            acquired: customers.min(spec.events),
            events: spec.events,
            perm_mult,
            perm_add,
            customer_stream: Stream::new(spec.seed, 1),
            customer_stream2: Stream::new(spec.seed, 2),
            event_stream: Stream::new(spec.seed, 3),
        })
    }

    /// Attributes of the customer with id `id` (1-based).
    pub(crate) fn customer(&self, id: u64) -> Customer {
        let s = self.customer_stream;
        let s2 = self.customer_stream2;
        let size = self.params.customer_size_sd * s.normal(id, 0);
        let true_height = 167.0 + 3.0 * size + 6.0 * s.normal(id, 2);
        let true_weight = 68.0 + 7.0 * size + 6.0 * s.normal(id, 4);
        let height = (s.unit(id, 6) >= 0.20).then(|| round1(true_height));
        let weight = (s.unit(id, 7) >= 0.25).then(|| round1(true_weight));
        let shape = if s2.unit(id, 0) < 0.10 {
            None
        } else {
            let p_curvy = (0.30 + 0.06 * size).clamp(0.05, 0.6);
            let p_athletic = (0.30 - 0.04 * size).clamp(0.05, 0.5);
            let u = s2.unit(id, 1);
            Some(if u < p_curvy {
                1
            } else if u < p_curvy + p_athletic {
                2
            } else {
                0
            })
        };
        let length = if true_height < 163.0 {
            0
        } else if true_height < 173.0 {
            1
        } else {
            2
        };
        Customer {
            size,
            height,
            weight,
            shape,
            length,
        }
    }

    /// The id (1-based) of the customer acquired `c`-th.
    pub(crate) fn customer_id(&self, c: u64) -> u64 {
        let m = u128::from(self.customers);
        let id0 = (u128::from(c) * u128::from(self.perm_mult) + u128::from(self.perm_add)) % m;
        id0 as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(events: u64, customers: u64) -> World {
        World::build(&WorldSpec {
            params: &ModelParams::default(),
            seed: 5,
            events,
            brands: 12,
            customers,
            products_per_brand: 10,
        })
        .unwrap()
    }

    #[test]
    fn labels_render_by_hand() {
        assert_eq!(render_label(SizeSystem::Letter, 0, 0), "M");
        assert_eq!(render_label(SizeSystem::Letter, -3, 0), "XXS");
        assert_eq!(render_label(SizeSystem::Letter, 4, 0), "3XL");
        assert_eq!(render_label(SizeSystem::Us, 0, 0), "US 8");
        assert_eq!(render_label(SizeSystem::Uk, 0, 0), "UK 12");
        assert_eq!(render_label(SizeSystem::Eu, 0, 0), "EU 38");
        assert_eq!(render_label(SizeSystem::It, 1, 0), "IT 44");
        assert_eq!(render_label(SizeSystem::Fr, -1, 0), "FR 38");
        assert_eq!(render_label(SizeSystem::Jp, 0, 0), "JP 9");
        assert_eq!(render_label(SizeSystem::Jeans, 1, 32), "32x32");
    }

    #[test]
    fn customer_permutation_is_a_bijection() {
        for n in [1u64, 2, 10, 97, 1000] {
            let w = world(2 * n, n);
            let mut ids: Vec<u64> = (0..n).map(|c| w.customer_id(c)).collect();
            ids.sort_unstable();
            assert_eq!(ids, (1..=n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn world_is_deterministic_and_popularity_sums_to_one() {
        let a = world(1000, 500);
        let b = world(1000, 500);
        assert_eq!(a.products.len(), b.products.len());
        assert!(a.products.len() >= 12);
        for (p, q) in a.products.iter().zip(&b.products) {
            assert_eq!(p.id, q.id);
            assert_eq!(p.offset, q.offset);
            assert_eq!(p.labels.len() as i32, p.hi - p.lo + 1);
        }
        let total: f64 = a.products.iter().map(|p| p.popularity).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!((a.cumulative.last().copied().unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(a.customer(42), b.customer(42));
    }

    #[test]
    fn customer_features_correlate_with_size() {
        let w = world(10, 10);
        let n = 50_000u64;
        let (mut sxy, mut sxx, mut missing_h) = (0.0, 0.0, 0u64);
        for id in 1..=n {
            let c = w.customer(id);
            match c.height {
                Some(h) => {
                    sxy += c.size * (h - 167.0);
                    sxx += c.size * c.size;
                }
                None => missing_h += 1,
            }
        }
        // Regression slope of height on size is 3 cm per step.
        let slope = sxy / sxx;
        assert!((slope - 3.0).abs() < 0.3, "slope {slope}");
        let frac = missing_h as f64 / n as f64;
        assert!((frac - 0.2).abs() < 0.01, "missing {frac}");
    }

    #[test]
    fn bad_params_are_rejected() {
        let p = ModelParams {
            other_return_rate: 1.5,
            ..ModelParams::default()
        };
        assert!(p.validate().is_err());
        let p = ModelParams {
            slope: f64::NAN,
            ..ModelParams::default()
        };
        assert!(p.validate().is_err());
        assert!(ModelParams::default().validate().is_ok());
    }
}
