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

/// Original row numbers of the events (0-based, across all input files in order), stored
/// compactly: as the list of rows that were *not* kept while that list is shorter than the
/// events (no storage at all when every row was kept), else one `u64` per event.
#[derive(Clone, Debug)]
pub enum RowIds {
    /// Rows `0..len + skipped.len()` minus the (sorted, distinct) `skipped` rows.
    Skips {
        /// Number of events.
        len: usize,
        /// Rows not kept, ascending.
        skipped: Vec<u64>,
    },
    /// The row of each event.
    Dense(Vec<u64>),
}

impl Default for RowIds {
    fn default() -> Self {
        RowIds::Skips {
            len: 0,
            skipped: Vec::new(),
        }
    }
}

impl PartialEq for RowIds {
    /// Equal when the rows are, whatever the storage.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for RowIds {}

impl From<Vec<u64>> for RowIds {
    fn from(v: Vec<u64>) -> Self {
        RowIds::Dense(v)
    }
}

impl RowIds {
    /// Rows `0..n` (every row kept).
    pub fn identity(n: usize) -> Self {
        RowIds::Skips {
            len: n,
            skipped: Vec::new(),
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        match self {
            RowIds::Skips { len, .. } => *len,
            RowIds::Dense(v) => v.len(),
        }
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when event `i` is row `i` for every event.
    pub fn is_identity(&self) -> bool {
        match self {
            RowIds::Skips { skipped, .. } => skipped.is_empty(),
            RowIds::Dense(v) => v.iter().enumerate().all(|(i, &r)| r == i as u64),
        }
    }

    /// The row of event `i` (`None` when out of range). O(log skipped) for the skip list.
    pub fn get(&self, i: usize) -> Option<u64> {
        match self {
            RowIds::Skips { len, skipped } => {
                if i >= *len {
                    return None;
                }
                Some(i as u64 + partition_skips(skipped, i as u64) as u64)
            }
            RowIds::Dense(v) => v.get(i).copied(),
        }
    }

    /// The rows of all events, in event order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = u64> + '_> {
        match self {
            RowIds::Skips { len, skipped } => Box::new(SkipIter {
                next_row: 0,
                left: *len,
                skipped: skipped.iter().peekable(),
            }),
            RowIds::Dense(v) => Box::new(v.iter().copied()),
        }
    }

    /// The rows as a vector.
    pub fn to_vec(&self) -> Vec<u64> {
        self.iter().collect()
    }

    /// Append the kept rows of one batch: rows `first..first + n`, minus `skipped` (sorted,
    /// all within the batch). Switches to dense storage when the skip list would outgrow
    /// the events.
    pub fn extend_batch(&mut self, first: u64, n: u64, skipped: &[u64]) {
        let kept = n as usize - skipped.len();
        if let RowIds::Skips { len, skipped: all } = self {
            if all.len() + skipped.len() <= *len + kept {
                // Rows between the previous batch and this one are all accounted for: the
                // caller feeds every row read, in order.
                all.extend_from_slice(skipped);
                *len += kept;
                return;
            }
            *self = RowIds::Dense(self.to_vec());
        }
        if let RowIds::Dense(v) = self {
            let mut sk = skipped.iter().peekable();
            for r in first..first + n {
                if sk.peek().is_some_and(|&&s| s == r) {
                    sk.next();
                } else {
                    v.push(r);
                }
            }
        }
    }

    /// Heap bytes held (capacity).
    pub fn heap_bytes(&self) -> usize {
        match self {
            RowIds::Skips { skipped, .. } => skipped.capacity() * 8,
            RowIds::Dense(v) => v.capacity() * 8,
        }
    }
}

/// Number of skipped rows before the row of event `i`: the count of `j` with
/// `skipped[j] - j <= i` (non-decreasing in `j` as `skipped` is strictly increasing).
fn partition_skips(skipped: &[u64], i: u64) -> usize {
    let (mut lo, mut hi) = (0usize, skipped.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let s = skipped.get(mid).copied().unwrap_or(u64::MAX);
        if s - mid as u64 <= i {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

struct SkipIter<'a> {
    next_row: u64,
    left: usize,
    skipped: std::iter::Peekable<std::slice::Iter<'a, u64>>,
}

impl Iterator for SkipIter<'_> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.left == 0 {
            return None;
        }
        while self.skipped.peek().is_some_and(|&&s| s == self.next_row) {
            self.skipped.next();
            self.next_row += 1;
        }
        let r = self.next_row;
        self.next_row += 1;
        self.left -= 1;
        Some(r)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
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
    /// Event time in milliseconds since the Unix epoch, when a timestamp column was given
    /// (and `IngestConfig::keep_timestamps`, the default).
    pub timestamp: Option<Vec<i64>>,
    /// Original row number (0-based, across all input files in order) of each event
    /// (compact: no storage when every row was kept).
    pub row: RowIds,
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
    /// Number of events (the length of `outcome`, which [`Events::release_event_columns`]
    /// keeps).
    pub fn len(&self) -> usize {
        self.outcome.len()
    }
    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.outcome.is_empty()
    }

    /// Free the per-event key columns (`customer`, `product`, `brand`, `category`, `size`),
    /// the timestamps and the row numbers, keeping `outcome` (so [`Events::len`] and outcome
    /// counts stay right), the dictionaries, size labels and customer features: what a fit
    /// from prepared data still reads. Returns the bytes freed.
    pub fn release_event_columns(&mut self) -> usize {
        let before = self.heap_bytes();
        self.customer = Vec::new();
        self.product = Vec::new();
        self.brand = Vec::new();
        self.category = Vec::new();
        self.size = Vec::new();
        self.timestamp = None;
        self.row = RowIds::default();
        before.saturating_sub(self.heap_bytes())
    }

    /// Heap bytes held by the table (capacities of columns, dictionaries, features;
    /// size labels counted roughly).
    pub fn heap_bytes(&self) -> usize {
        let cols = (self.customer.capacity()
            + self.product.capacity()
            + self.brand.capacity()
            + self.category.capacity()
            + self.size.capacity())
            * 4
            + self.outcome.capacity()
            + self.timestamp.as_ref().map_or(0, |t| t.capacity() * 8)
            + self.row.heap_bytes();
        let dicts = self.customers.heap_bytes()
            + self.products.heap_bytes()
            + self.brands.heap_bytes()
            + self.categories.heap_bytes();
        let sizes = self.sizes.capacity() * std::mem::size_of::<SizeLabel>();
        let features = self
            .features
            .numeric
            .iter()
            .map(|f| f.values.capacity() * 4)
            .sum::<usize>()
            + self
                .features
                .categorical
                .iter()
                .map(|f| f.codes.capacity() * 4)
                .sum::<usize>();
        cols + dicts + sizes + features
    }
}

pub use super::dict::{canonical_int, write_int, Dict};

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `keep` (one flag per row) in batches of `batch` rows.
    fn rows_of(keep: &[bool], batch: usize) -> RowIds {
        let mut r = RowIds::default();
        for (b, chunk) in keep.chunks(batch).enumerate() {
            let first = (b * batch) as u64;
            let skipped: Vec<u64> = chunk
                .iter()
                .enumerate()
                .filter(|(_, &k)| !k)
                .map(|(i, _)| first + i as u64)
                .collect();
            r.extend_batch(first, chunk.len() as u64, &skipped);
        }
        r
    }

    #[test]
    fn row_ids_match_the_kept_rows_in_every_storage() {
        let mut state = 12345u64;
        for keep_pct in [100u64, 99, 90, 50, 10, 0] {
            for batch in [1usize, 7, 64, 1000] {
                let keep: Vec<bool> = (0..500)
                    .map(|_| {
                        state = splitmix(state);
                        state % 100 < keep_pct
                    })
                    .collect();
                let want: Vec<u64> = (0..500u64).filter(|&i| keep[i as usize]).collect();
                let r = rows_of(&keep, batch);
                assert_eq!(r.len(), want.len());
                assert_eq!(r.to_vec(), want, "keep {keep_pct}% batch {batch}");
                for (i, &w) in want.iter().enumerate() {
                    assert_eq!(
                        r.get(i),
                        Some(w),
                        "keep {keep_pct}% batch {batch} event {i}"
                    );
                }
                assert_eq!(r.get(want.len()), None);
                assert_eq!(r, RowIds::from(want.clone()));
                assert_eq!(r.is_identity(), want.len() == 500 || want.is_empty());
                if keep_pct == 100 {
                    assert_eq!(r.heap_bytes(), 0);
                }
                if keep_pct >= 90 {
                    assert!(
                        matches!(r, RowIds::Skips { .. }),
                        "few skips stay a skip list"
                    );
                }
                if keep_pct <= 10 {
                    assert!(matches!(r, RowIds::Dense(_)), "many skips turn dense");
                }
            }
        }
    }

    fn splitmix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn released_events_keep_their_length() {
        let mut ev = Events {
            customer: vec![0, 1],
            product: vec![NONE; 2],
            brand: vec![NONE; 2],
            category: vec![NONE; 2],
            size: vec![0, 0],
            outcome: vec![Outcome::Fit, Outcome::Small],
            timestamp: Some(vec![1, 2]),
            row: RowIds::identity(2),
            customers: ["a", "b"].into_iter().collect(),
            ..Default::default()
        };
        let freed = ev.release_event_columns();
        assert!(freed >= 2 * 4 * 5 + 16, "{freed}");
        assert_eq!(ev.len(), 2);
        assert!(ev.customer.is_empty() && ev.timestamp.is_none());
        assert_eq!(ev.customers.len(), 2);
    }
}
