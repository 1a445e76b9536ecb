//! Ingest configuration: inputs, column mapping, features, chunk sizes, row filters (random split parts, time window).

use super::*;

/// How to read events.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Input files, directories or globs (see [`list_inputs`]).
    pub inputs: Vec<String>,
    /// canonical column name -> source column name (default: empty = identity). Keys must be
    /// names from [`canon::ALL`]. A mapped column must exist; an unmapped optional canonical
    /// column is used when the file has a column of that name.
    pub columns: BTreeMap<String, String>,
    /// Customer feature columns, by source name (default: none).
    pub customer_features: Vec<String>,
    /// Customer feature columns read only where every input file has them (default:
    /// none): scoring commands name a model's own body features here, so a file without
    /// one is scored with it unknown instead of failing. Those also in
    /// `customer_features` are read as listed there.
    pub optional_customer_features: Vec<String>,
    /// Outcome vocabulary (default: [`OutcomeMap::standard`]).
    pub outcome_map: OutcomeMap,
    /// Abort when bad rows exceed this fraction of the rows checked (read minus filtered)
    /// (default 0.01).
    pub max_bad_fraction: f64,
    /// Whether the outcome column is required (default true; false for predict).
    pub require_outcome: bool,
    /// Row filters applied before bad-row checks (default: none).
    pub filter: RowFilter,
    /// Rows per processing batch (default 262_144: big enough to amortise per-batch work,
    /// small enough that batch temporaries stay in cache and CSV/NDJSON batches stay small).
    pub chunk_rows: usize,
    /// Parquet rows decoded per read (default 1_048_576): consecutive row groups are read
    /// together up to this many rows, a longer row group in ranges of this many rows. About
    /// two reads are in memory at once (the one being encoded and the next).
    pub read_rows: usize,
    /// Keep the timestamps in [`Events::timestamp`] (default true). Time filters and
    /// timestamp checks work either way; training turns this off to save 8 bytes per event.
    pub keep_timestamps: bool,
}

impl IngestConfig {
    /// A config reading `inputs` with all defaults: identity column names, no customer
    /// features (listed or optional), the standard outcome map, `max_bad_fraction` 0.01,
    /// outcomes required, no filter, `chunk_rows` 262_144, `read_rows` 1_048_576,
    /// timestamps kept.
    pub fn new(inputs: Vec<String>) -> Self {
        IngestConfig {
            inputs,
            columns: BTreeMap::new(),
            customer_features: Vec::new(),
            optional_customer_features: Vec::new(),
            outcome_map: OutcomeMap::standard(),
            max_bad_fraction: 0.01,
            require_outcome: true,
            filter: RowFilter::default(),
            chunk_rows: 1 << 18,
            read_rows: 1 << 20,
            keep_timestamps: true,
        }
    }

    /// The source column name for a canonical column (identity unless mapped).
    pub fn source(&self, canonical: &str) -> String {
        self.columns
            .get(canonical)
            .cloned()
            .unwrap_or_else(|| canonical.to_string())
    }
}

/// Row filters used by evaluation protocols. Filtered rows are counted in
/// [`IngestReport::rows_filtered`], never as bad.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowFilter {
    /// Keep only one part of a random split of the rows (default: none).
    pub split: Option<SplitFilter>,
    /// Keep rows with timestamp >= this (ms since epoch; default: none). Needs a timestamp column.
    pub since_ms: Option<i64>,
    /// Keep rows with timestamp < this (ms since epoch; default: none). Needs a timestamp column.
    pub before_ms: Option<i64>,
}

impl RowFilter {
    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        self.split.is_none() && self.since_ms.is_none() && self.before_ms.is_none()
    }
}

/// A deterministic random split of rows into parts: global row `r` goes to the first part
/// `k` with `u(seed, r) < (f_0 + .. + f_k) / sum(f)`, where `u` is [`split_uniform`].
/// Independent of batching and of which other filters are set.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitFilter {
    /// Seed of the hash.
    pub seed: u64,
    /// Relative part sizes (positive; normalised by their sum).
    pub fractions: Vec<f64>,
    /// The part to keep (0-based index into `fractions`).
    pub part: usize,
}

impl SplitFilter {
    /// The part a global row number belongs to.
    pub fn part_of(&self, row: u64) -> usize {
        split_part(self.seed, row, &self.fractions)
    }

    pub(super) fn validate(&self) -> Result<(), DataError> {
        let bad = |m: String| {
            Err(DataError::Config {
                what: "split",
                message: m,
            })
        };
        if self.fractions.is_empty() {
            return bad("no split fractions given".into());
        }
        if self.fractions.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
            return bad(format!(
                "split fractions must be positive numbers, got {:?}",
                self.fractions
            ));
        }
        if self.part >= self.fractions.len() {
            return bad(format!(
                "part {} out of range: the split has {} parts (0..{})",
                self.part,
                self.fractions.len(),
                self.fractions.len()
            ));
        }
        Ok(())
    }
}

/// SplitMix64 finaliser: a bijective 64-bit mix.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform number in `[0, 1)` for a (seed, global row) pair:
/// `(splitmix64(splitmix64(seed) ^ row) >> 11) * 2^-53`.
pub fn split_uniform(seed: u64, row: u64) -> f64 {
    (splitmix64(splitmix64(seed) ^ row) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Which part of a split (relative sizes `fractions`, normalised by their sum) a global row
/// number falls in. Returns the last part for rounding leftovers; 0 when `fractions` is empty.
pub fn split_part(seed: u64, row: u64, fractions: &[f64]) -> usize {
    let total: f64 = fractions.iter().sum();
    let u = split_uniform(seed, row) * total;
    let mut acc = 0.0;
    for (k, f) in fractions.iter().enumerate() {
        acc += f;
        if u < acc {
            return k;
        }
    }
    fractions.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_parts_follow_fractions() {
        let f = [0.8, 0.1, 0.1];
        let mut counts = [0usize; 3];
        for r in 0..100_000u64 {
            let p = split_part(7, r, &f);
            assert!(p < 3);
            if let Some(c) = counts.get_mut(p) {
                *c += 1;
            }
        }
        // Binomial sd for 0.1 of 100k is ~95: 5 sd bounds.
        assert!((79_500..80_500).contains(&counts[0]), "{counts:?}");
        assert!((9_500..10_500).contains(&counts[1]), "{counts:?}");
        // Deterministic; seed matters.
        assert_eq!(split_part(7, 12_345, &f), split_part(7, 12_345, &f));
        let differ = (0..1000u64)
            .filter(|&r| split_part(7, r, &f) != split_part(8, r, &f))
            .count();
        assert!(differ > 100);
        // Unnormalised fractions behave the same.
        assert_eq!(
            split_part(3, 99, &[80.0, 10.0, 10.0]),
            split_part(3, 99, &f)
        );
    }
}
