//! The canonical event schema: column names, outcomes, size labels and the compact,
//! dictionary-encoded event table every other layer works on.

use serde::{Deserialize, Serialize};

/// Sentinel index for an optional key (brand, product, category) that a row does not have.
pub const NONE: u32 = u32::MAX;

/// Canonical column names. A file's own names are mapped onto these with `--col canonical=source`.
pub mod col {
    /// Who bought (required; integer or string).
    pub const CUSTOMER_ID: &str = "customer_id";
    /// The size label as sold (required).
    pub const SIZE: &str = "size";
    /// What became of the purchase (required for training and evaluation).
    pub const OUTCOME: &str = "outcome";
    /// Brand of the article (optional).
    pub const BRAND: &str = "brand";
    /// Product / article id (optional; integer or string).
    pub const PRODUCT_ID: &str = "product_id";
    /// Product category, e.g. dress, jeans (optional).
    pub const CATEGORY: &str = "category";
    /// Size system of the label, e.g. US, EU, UK, letter, shoe_eu (optional).
    pub const SIZE_SYSTEM: &str = "size_system";
    /// When the purchase happened (optional; datetime, date, ISO string or epoch seconds).
    pub const TIMESTAMP: &str = "timestamp";
    /// All canonical columns, required ones first.
    pub const ALL: [&str; 8] = [
        CUSTOMER_ID,
        SIZE,
        OUTCOME,
        BRAND,
        PRODUCT_ID,
        CATEGORY,
        SIZE_SYSTEM,
        TIMESTAMP,
    ];
}

/// What became of one purchase. The first three are ordinal: the article was too small,
/// fit, or was too large for the customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Outcome {
    /// The article was too small (the customer needed a bigger size).
    Small = 0,
    /// The article fit (kept, true to size).
    Fit = 1,
    /// The article was too large.
    Large = 2,
    /// Returned or flagged for a reason unrelated to fit (damaged, changed mind, ...);
    /// counted, but kept out of fit learning.
    Other = 3,
}

impl Outcome {
    /// The three fit classes in ordinal order.
    pub const FIT_CLASSES: [Outcome; 3] = [Outcome::Small, Outcome::Fit, Outcome::Large];

    /// Canonical lower-case name (`small`, `fit`, `large`, `other`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Small => "small",
            Outcome::Fit => "fit",
            Outcome::Large => "large",
            Outcome::Other => "other",
        }
    }

    /// Class index 0..=2 for the fit classes, `None` for [`Outcome::Other`].
    pub fn class(self) -> Option<usize> {
        match self {
            Outcome::Other => None,
            o => Some(o as usize),
        }
    }

    /// Inverse of `as u8`.
    pub fn from_code(code: u8) -> Option<Outcome> {
        match code {
            0 => Some(Outcome::Small),
            1 => Some(Outcome::Fit),
            2 => Some(Outcome::Large),
            3 => Some(Outcome::Other),
            _ => None,
        }
    }
}

/// A size system: labels are ordered and compared only within one system; the model
/// learns how systems align with each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeSystem {
    /// XXS..5XL, plus plus-sizes such as 1X, 2X.
    Letter,
    /// US women's numeric clothing sizes (00, 0, 2, 4, ...).
    Us,
    /// UK clothing sizes (4, 6, 8, ...).
    Uk,
    /// EU / DE clothing sizes (32, 34, 36, ...).
    Eu,
    /// Italian clothing sizes (38, 40, 42, ...).
    It,
    /// French clothing sizes (34, 36, 38, ...).
    Fr,
    /// Japanese clothing sizes (5, 7, 9, ...).
    Jp,
    /// Jeans waist x length, e.g. `32x30`, `W32 L30`.
    Jeans,
    /// US shoe sizes with halves.
    ShoeUs,
    /// UK shoe sizes with halves.
    ShoeUk,
    /// EU shoe sizes with halves.
    ShoeEu,
    /// `one size`: a single size, no choice to make.
    OneSize,
    /// A bare number with no stated system (e.g. a retailer's own numeric scale).
    Numeric,
}

impl SizeSystem {
    /// Every system, in declaration order.
    pub const ALL: [SizeSystem; 13] = [
        SizeSystem::Letter,
        SizeSystem::Us,
        SizeSystem::Uk,
        SizeSystem::Eu,
        SizeSystem::It,
        SizeSystem::Fr,
        SizeSystem::Jp,
        SizeSystem::Jeans,
        SizeSystem::ShoeUs,
        SizeSystem::ShoeUk,
        SizeSystem::ShoeEu,
        SizeSystem::OneSize,
        SizeSystem::Numeric,
    ];

    /// Stable snake_case name, as accepted in a `size_system` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SizeSystem::Letter => "letter",
            SizeSystem::Us => "us",
            SizeSystem::Uk => "uk",
            SizeSystem::Eu => "eu",
            SizeSystem::It => "it",
            SizeSystem::Fr => "fr",
            SizeSystem::Jp => "jp",
            SizeSystem::Jeans => "jeans",
            SizeSystem::ShoeUs => "shoe_us",
            SizeSystem::ShoeUk => "shoe_uk",
            SizeSystem::ShoeEu => "shoe_eu",
            SizeSystem::OneSize => "one_size",
            SizeSystem::Numeric => "numeric",
        }
    }

    /// Width of one size step in the system's position units: 2 inches for jeans waists,
    /// 1 elsewhere. The model works in size steps, `pos / step()`.
    pub fn step(self) -> f64 {
        match self {
            SizeSystem::Jeans => 2.0,
            _ => 1.0,
        }
    }

    /// Dense index 0..13 (position in [`SizeSystem::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A parsed size label: its system and its position on that system's scale, in size
/// steps (one step = one size up; letters: M = 0, L = 1; US/UK/EU/IT/FR/JP numeric: value/2;
/// jeans: waist inches; shoes: the number itself, halves included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizeLabel {
    /// The size system.
    pub system: SizeSystem,
    /// Fit position on the system's scale, in size steps.
    pub pos: f64,
    /// A secondary dimension that orders labels but does not move fit (jeans length).
    pub secondary: Option<f64>,
    /// Canonical text of the label (`XXL` for `2XL`, `32x30` for `W32 L30`).
    pub canonical: String,
}

impl SizeLabel {
    /// Total order within a system: by position, then secondary dimension. Labels of
    /// different systems order by system first.
    pub fn cmp_order(&self, other: &SizeLabel) -> std::cmp::Ordering {
        self.system
            .cmp(&other.system)
            .then(self.pos.total_cmp(&other.pos))
            .then(
                self.secondary
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&other.secondary.unwrap_or(f64::NEG_INFINITY)),
            )
    }
}

/// A dictionary of keys seen in the data: index -> the key as text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dict {
    /// Key text by dense index.
    pub names: Vec<String>,
}

impl Dict {
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.names.len()
    }
    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Customer feature columns (body data), one value per customer: the last non-null
/// value seen for that customer in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CustomerFeatures {
    /// Numeric features: name and one value per customer (NaN when unknown).
    pub numeric: Vec<NumericFeature>,
    /// Categorical features: name, one code per customer ([`NONE`] when unknown), and
    /// the levels by code.
    pub categorical: Vec<CategoricalFeature>,
}

/// One numeric customer feature column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NumericFeature {
    /// Column name as given to `--customer-features`.
    pub name: String,
    /// Value per customer, NaN when unknown.
    pub values: Vec<f32>,
}

/// One categorical customer feature column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CategoricalFeature {
    /// Column name as given to `--customer-features`.
    pub name: String,
    /// Level code per customer, [`NONE`] when unknown.
    pub codes: Vec<u32>,
    /// Level text by code.
    pub levels: Vec<String>,
}

/// The compact canonical event table: one entry per good row, keys dictionary-encoded to
/// dense `u32` indices so fitting loops touch a few bytes per event.
#[derive(Clone, Debug, Default)]
pub struct Events {
    /// Customer index per event (into `customers`).
    pub customer: Vec<u32>,
    /// Product index per event (into `products`), [`NONE`] when the row has none.
    pub product: Vec<u32>,
    /// Brand index per event (into `brands`), [`NONE`] when the row has none.
    pub brand: Vec<u32>,
    /// Category index per event (into `categories`), [`NONE`] when the row has none.
    pub category: Vec<u32>,
    /// Size index per event (into `sizes`).
    pub size: Vec<u32>,
    /// Outcome per event ([`Outcome::Other`] when ingest did not require outcomes and the
    /// row had none or an unknown value; see `has_outcome`).
    pub outcome: Vec<Outcome>,
    /// Whether the file had an outcome for the row (false only when outcomes are optional).
    pub has_outcome: bool,
    /// Event time in milliseconds since the Unix epoch, when a timestamp column was given.
    pub timestamp: Option<Vec<i64>>,
    /// Original row number (0-based, across all input files in order) of each event.
    pub row: Vec<u64>,
    /// Customer keys.
    pub customers: Dict,
    /// Product keys.
    pub products: Dict,
    /// Brand keys.
    pub brands: Dict,
    /// Category keys.
    pub categories: Dict,
    /// Distinct size labels (parsed), by size index.
    pub sizes: Vec<SizeLabel>,
    /// Customer features, one row per customer index.
    pub features: CustomerFeatures,
}

impl Events {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.customer.len()
    }
    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.customer.is_empty()
    }
}
