//! Readers: Parquet, CSV and NDJSON (optionally gzip) from a file, directory or glob, into
//! the compact [`Events`] table: column mapping, dictionary encoding of keys, size-label and
//! outcome parsing (each distinct value once), bad-row accounting, row filters (split / time
//! window) and per-customer features.
//!
//! # How a file is read
//! Each file's schema comes from a lazy polars scan; only the needed columns are read.
//! Parquet is decoded with polars' in-memory reader in units of whole row groups (about
//! [`IngestConfig::read_rows`] rows) on a helper thread, one unit ahead; CSV and NDJSON
//! (gzip included) stream through polars' streaming engine (`sink_batches`). Either way
//! the rows arrive in batches of [`IngestConfig::chunk_rows`], so peak memory is the
//! compact [`Events`] table plus a few batches. Every batch is checked row by row; good
//! rows are appended to [`Events`], bad rows are counted by reason.
//!
//! # Memory
//! Keys are stored once, in compact [`Dict`]s (integer ids as `i64`, text in one arena),
//! indexed by `u32`-only hash tables; repeated strings are recognised by their Arrow view
//! (no hashing of the text per row); row numbers cost nothing when every row is kept
//! ([`super::schema::RowIds`]). At 100M synthetic events (50M customers) the table is
//! about 3 GB (21 bytes per event plus 8 bytes and three features per customer).
//!
//! # Customer features
//! Feature columns are row-level in the file, but [`Events::features`] holds one value per
//! customer: the **last non-null value** seen for that customer among the kept rows, in file
//! order (files in the order of [`list_inputs`]). Integer and float columns become numeric
//! features (`f32`, NaN when unknown); string, categorical and boolean columns become
//! categorical features with levels in order of first appearance.

use super::labels::parse_size;
use super::outcome::OutcomeMap;
use super::schema::{
    canonical_int, col as canon, write_int, CategoricalFeature, CustomerFeatures, Dict, Events,
    NumericFeature, Outcome, SizeLabel, SizeSystem, NONE,
};
use super::DataError;
use hashbrown::HashTable;
use polars::prelude::{
    ChunkedArray, Column, DataFrame, DataType, Engine, Float64Chunked, HiveOptions, Int64Chunked,
    LazyCsvReader, LazyFileListReader, LazyFrame, LazyJsonLineReader, ParquetReader, PlRefPath,
    PlanCallback, PolarsDataType, PolarsError, PolarsNumericType, ScanArgsParquet, Schema,
    SchemaRef, SerReader, StringChunked, StringType, TimeUnit,
};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

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
    /// features, the standard outcome map, `max_bad_fraction` 0.01, outcomes required, no
    /// filter, `chunk_rows` 262_144, `read_rows` 1_048_576, timestamps kept.
    pub fn new(inputs: Vec<String>) -> Self {
        IngestConfig {
            inputs,
            columns: BTreeMap::new(),
            customer_features: Vec::new(),
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

    fn validate(&self) -> Result<(), DataError> {
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

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

/// Why a row was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadReason {
    /// The customer id is null.
    MissingCustomerId,
    /// The size label is null.
    MissingSize,
    /// The outcome is null (only when outcomes are required).
    MissingOutcome,
    /// The size label could not be parsed.
    BadSize,
    /// The outcome value is not in the outcome map (only when outcomes are required).
    UnknownOutcome,
    /// The timestamp is null (only when a timestamp column is read).
    MissingTimestamp,
    /// The timestamp could not be parsed.
    BadTimestamp,
}

impl BadReason {
    /// Every reason, in check order (a row gets the first that applies).
    pub const ALL: [BadReason; 7] = [
        BadReason::MissingCustomerId,
        BadReason::MissingSize,
        BadReason::MissingOutcome,
        BadReason::BadSize,
        BadReason::UnknownOutcome,
        BadReason::MissingTimestamp,
        BadReason::BadTimestamp,
    ];

    /// Human text of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::MissingCustomerId => "missing customer_id",
            BadReason::MissingSize => "missing size",
            BadReason::MissingOutcome => "missing outcome",
            BadReason::BadSize => "unparseable size",
            BadReason::UnknownOutcome => "unknown outcome",
            BadReason::MissingTimestamp => "missing timestamp",
            BadReason::BadTimestamp => "bad timestamp",
        }
    }

    fn code(self) -> u8 {
        self as u8 + ST_BAD0
    }
}

/// A row of an input file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowRef {
    /// The file.
    pub file: PathBuf,
    /// 1-based data row number within the file (the header is not counted).
    pub row: u64,
}

/// Bad rows of one reason.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BadRows {
    /// The reason.
    pub reason: BadReason,
    /// The reason as text.
    pub message: String,
    /// How many rows.
    pub count: u64,
    /// Up to 5 example rows.
    pub examples: Vec<RowRef>,
    /// Up to 5 distinct offending values (size labels, outcome values, timestamps).
    pub values: Vec<String>,
}

/// Counts of kept events per outcome class.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutcomeCounts {
    /// Too small.
    pub small: u64,
    /// Fit.
    pub fit: u64,
    /// Too large.
    pub large: u64,
    /// Other (kept, but out of fit learning).
    pub other: u64,
}

/// Summary of what ingest read and rejected.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IngestReport {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Data rows read (all files).
    pub rows_read: u64,
    /// Rows removed by the row filter (not bad).
    pub rows_filtered: u64,
    /// Rows rejected as bad (sum over `bad_rows`).
    pub rows_bad: u64,
    /// Rows kept as events.
    pub rows_kept: u64,
    /// Bad rows by reason (only reasons that occurred, in check order).
    pub bad_rows: Vec<BadRows>,
    /// Kept events whose outcome is [`Outcome::Other`] (kept out of fit learning).
    pub other_outcomes: u64,
    /// Kept events without an outcome value (only when outcomes are optional).
    pub rows_without_outcome: u64,
    /// Kept events per outcome class (events with an outcome value only).
    pub outcomes: OutcomeCounts,
    /// Distinct customers among kept events.
    pub customers: usize,
    /// Distinct products among kept events.
    pub products: usize,
    /// Distinct brands among kept events.
    pub brands: usize,
    /// Distinct categories among kept events.
    pub categories: usize,
    /// Distinct parsed size labels among kept events.
    pub sizes: usize,
    /// Wall-clock seconds spent.
    pub seconds: f64,
}

impl IngestReport {
    /// A short human summary (a few lines).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "read {} rows from {} file(s) in {:.2}s ({:.0} rows/s): kept {}, filtered {}, bad {}\n",
            self.rows_read,
            self.files.len(),
            self.seconds,
            if self.seconds > 0.0 {
                self.rows_read as f64 / self.seconds
            } else {
                0.0
            },
            self.rows_kept,
            self.rows_filtered,
            self.rows_bad
        );
        s.push_str(&format!(
            "outcomes: small {}, fit {}, large {}, other {} (other outcomes kept out of fit learning){}\n",
            self.outcomes.small,
            self.outcomes.fit,
            self.outcomes.large,
            self.outcomes.other,
            if self.rows_without_outcome > 0 {
                format!(", no outcome {}", self.rows_without_outcome)
            } else {
                String::new()
            }
        ));
        s.push_str(&format!(
            "distinct: {} customers, {} products, {} brands, {} categories, {} sizes",
            self.customers, self.products, self.brands, self.categories, self.sizes
        ));
        if !self.bad_rows.is_empty() {
            s.push('\n');
            s.push_str(&bad_rows_text(&self.bad_rows));
        }
        s
    }
}

fn bad_rows_text(bad: &[BadRows]) -> String {
    let mut lines = Vec::new();
    for b in bad {
        let examples: Vec<String> = b
            .examples
            .iter()
            .map(|r| format!("{} row {}", r.file.display(), r.row))
            .collect();
        let mut line = format!(
            "  {}: {} row(s), e.g. {}",
            b.message,
            b.count,
            examples.join(", ")
        );
        if !b.values.is_empty() {
            let vals: Vec<String> = b.values.iter().map(|v| format!("'{v}'")).collect();
            line.push_str(&format!(" (values: {})", vals.join(", ")));
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Events plus the ingest report.
#[derive(Clone, Debug)]
pub struct Ingested {
    /// The events.
    pub events: Events,
    /// What was read and rejected.
    pub report: IngestReport,
}

// ---------------------------------------------------------------------------------------
// Input listing
// ---------------------------------------------------------------------------------------

/// File formats ingest reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// CSV with a header row (`.csv`, `.csv.gz`).
    Csv,
    /// Newline-delimited JSON (`.ndjson`, `.jsonl`, `.json`, optionally `.gz`).
    Ndjson,
}

/// The format of a file by its extension (case-insensitive; a trailing `.gz` is allowed
/// for CSV and NDJSON; polars detects the compression itself).
pub fn detect_format(path: &Path) -> Result<InputFormat, DataError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let (stem, gz) = match name.strip_suffix(".gz") {
        Some(s) => (s, true),
        None => (name.as_str(), false),
    };
    if !gz && (stem.ends_with(".parquet") || stem.ends_with(".pq")) {
        Ok(InputFormat::Parquet)
    } else if stem.ends_with(".csv") {
        Ok(InputFormat::Csv)
    } else if stem.ends_with(".ndjson") || stem.ends_with(".jsonl") || stem.ends_with(".json") {
        Ok(InputFormat::Ndjson)
    } else {
        Err(DataError::UnsupportedFormat(path.to_path_buf()))
    }
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expand inputs into the list of files to read. Each input is a file (its extension must
/// be supported), a directory (its supported files, not recursive, sorted by path; hidden
/// files skipped) or a glob (matching supported files, sorted by path). Inputs are taken in
/// the order given; a file listed twice is read once.
///
/// Errors: [`DataError::NoInput`] when an input matches nothing,
/// [`DataError::UnsupportedFormat`] for an explicit file of unknown type,
/// [`DataError::Io`] when a directory cannot be listed.
pub fn list_inputs(inputs: &[String]) -> Result<Vec<PathBuf>, DataError> {
    if inputs.is_empty() {
        return Err(DataError::NoInput("(no --events given)".into()));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for input in inputs {
        let p = Path::new(input);
        let mut found: Vec<PathBuf> = Vec::new();
        if p.is_file() {
            detect_format(p)?;
            found.push(p.to_path_buf());
        } else if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| DataError::Io {
                path: p.to_path_buf(),
                source: e,
            })?;
            for entry in rd {
                let entry = entry.map_err(|e| DataError::Io {
                    path: p.to_path_buf(),
                    source: e,
                })?;
                let path = entry.path();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if path.is_file() && !hidden && detect_format(&path).is_ok() {
                    found.push(path);
                }
            }
            found.sort();
        } else if has_glob_chars(input) {
            let paths = glob::glob(input).map_err(|e| DataError::Config {
                what: "input glob",
                message: format!("'{input}': {e}"),
            })?;
            for path in paths.flatten() {
                if path.is_file() && detect_format(&path).is_ok() {
                    found.push(path);
                }
            }
            found.sort();
        }
        if found.is_empty() {
            return Err(DataError::NoInput(input.clone()));
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Hashing helpers (fast, non-cryptographic; keys come from the operator's own files)
// ---------------------------------------------------------------------------------------

#[inline]
fn mix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z ^ (z >> 32)
}

#[inline]
fn hash_bytes(seed: u64, b: &[u8]) -> u64 {
    const K: u64 = 0x517C_C1B7_2722_0A95;
    let mut h = seed ^ (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(chunks.remainder()) {
        *d = *s;
    }
    h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    mix64(h)
}

/// Hasher for integer keys and short strings (fast, not DoS-resistant: keys come from the
/// operator's own files).
#[derive(Default, Clone, Copy)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(self.0, bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = mix64(self.0.rotate_left(23) ^ i ^ 0x9E37_79B9_7F4A_7C15);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
}

/// Builds [`MixHasher`]s (for `HashMap<K, V, MixState>`).
#[derive(Default, Clone, Copy)]
pub struct MixState;

impl BuildHasher for MixState {
    type Hasher = MixHasher;
    fn build_hasher(&self) -> MixHasher {
        MixHasher(0)
    }
}

type FastMap<K, V> = HashMap<K, V, MixState>;

/// Text of a float id or size: integral values without a fraction (`8.0` -> `8`), others
/// in the shortest round-trip form (`8.5`).
fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

// ---------------------------------------------------------------------------------------
// Column views
// ---------------------------------------------------------------------------------------

/// A key-like column cast to one of three physical forms.
enum KeyData {
    Int(Int64Chunked),
    Float(Float64Chunked),
    Str(StringChunked),
}

/// The Arrow array behind a [`StringChunked`] chunk.
type StrArray = <StringType as PolarsDataType>::Array;

/// Source of unique ids for string array chunks (see [`StrCell::chunk`]).
static STR_CHUNK_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One non-null cell of a string column: its 16-byte Arrow view plus where to find the
/// text. An inline view (text of at most 12 bytes) is the text itself, so it is an exact key
/// anywhere; a longer value's view (length, prefix, buffer, offset) is an exact key only
/// within its array chunk, where equal views mean the same bytes (dictionary-decoded
/// Parquet pages reuse one copy of each value).
#[derive(Clone, Copy)]
struct StrCell<'a> {
    view: u128,
    chunk: u64,
    arr: &'a StrArray,
    j: usize,
}

impl<'a> StrCell<'a> {
    #[inline]
    fn text(self) -> &'a str {
        self.arr.value(self.j)
    }
    #[inline]
    fn is_inline(self) -> bool {
        (self.view as u32) <= 12
    }
}

/// Visit the rows of a string column in order: `f(None)` for a null, else the cell.
#[inline]
fn for_each_str<'a>(ca: &'a StringChunked, mut f: impl FnMut(Option<StrCell<'a>>)) {
    for (arr, validity) in ca.downcast_iter().zip(ca.iter_validities()) {
        let chunk = STR_CHUNK_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (j, v) in arr.views().iter().enumerate() {
            if validity.is_some_and(|b| !b.get_bit(j)) {
                f(None);
                continue;
            }
            f(Some(StrCell {
                view: v.as_u128(),
                chunk,
                arr,
                j,
            }));
        }
    }
}

/// Visit the rows of a primitive column in order (`None` for nulls), chunk by chunk over
/// the value slices.
#[inline]
fn for_each_prim<T>(ca: &ChunkedArray<T>, mut f: impl FnMut(Option<T::Native>))
where
    T: PolarsNumericType,
{
    for (arr, validity) in ca.downcast_iter().zip(ca.iter_validities()) {
        match validity {
            None => arr.values().iter().for_each(|&v| f(Some(v))),
            Some(b) => {
                for (j, &v) in arr.values().iter().enumerate() {
                    f(b.get_bit(j).then_some(v))
                }
            }
        }
    }
}

/// Slots of a [`ViewCache`] (log2) unless given.
const VIEW_CACHE_BITS: u32 = 12;

/// Codes of string cells keyed by their Arrow view (see [`StrCell`]): a direct-mapped
/// table, so a repeated value costs one multiply and one 16-byte compare, no hashing or
/// comparing of the text. Entries for long (non-inline) values are valid only within the
/// array chunk that made them. Turns itself off (and frees its slots) after a batch in which
/// most lookups missed (high-cardinality columns such as customer ids), since each miss
/// costs a little on top of the real lookup.
struct ViewCache<V> {
    bits: u32,
    keys: Vec<u128>,
    vals: Vec<V>,
    /// 0 for inline entries, the chunk generation for long ones, `u32::MAX` when empty.
    gens: Vec<u32>,
    chunk: u64,
    gen: u32,
    on: bool,
    lookups: u64,
    hits: u64,
}

impl<V: Copy + Default> Default for ViewCache<V> {
    fn default() -> Self {
        ViewCache::with_bits(VIEW_CACHE_BITS)
    }
}

impl<V: Copy + Default> ViewCache<V> {
    /// A cache of `2^bits` slots (allocated on first use).
    fn with_bits(bits: u32) -> Self {
        ViewCache {
            bits: bits.clamp(4, 24),
            keys: Vec::new(),
            vals: Vec::new(),
            gens: Vec::new(),
            chunk: 0,
            gen: 0,
            on: true,
            lookups: 0,
            hits: 0,
        }
    }

    /// The cached code of `cell`, or `make(text)` (then cached).
    #[inline]
    fn get_or(&mut self, cell: StrCell<'_>, make: impl FnOnce(&str) -> V) -> V {
        if !self.on {
            return make(cell.text());
        }
        if self.keys.is_empty() {
            let n = 1usize << self.bits;
            self.keys = vec![0; n];
            self.vals = vec![V::default(); n];
            self.gens = vec![u32::MAX; n];
        }
        let tag = if cell.is_inline() {
            0
        } else {
            if cell.chunk != self.chunk {
                self.chunk = cell.chunk;
                self.gen = if self.gen >= u32::MAX - 1 {
                    1
                } else {
                    self.gen + 1
                };
            }
            self.gen
        };
        let key = cell.view;
        let h = ((key as u64) ^ ((key >> 64) as u64).rotate_left(29))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = (h >> (64 - self.bits)) as usize;
        self.lookups += 1;
        if self.keys.get(slot) == Some(&key) && self.gens.get(slot) == Some(&tag) {
            if let Some(&v) = self.vals.get(slot) {
                self.hits += 1;
                return v;
            }
        }
        let v = make(cell.text());
        if let (Some(k), Some(val), Some(g)) = (
            self.keys.get_mut(slot),
            self.vals.get_mut(slot),
            self.gens.get_mut(slot),
        ) {
            *k = key;
            *val = v;
            *g = tag;
        }
        v
    }

    /// End of a batch: switch off when most of a good number of lookups missed.
    fn end_batch(&mut self) {
        if self.on && self.lookups >= 1 << 16 && self.hits * 2 < self.lookups {
            self.on = false;
            self.keys = Vec::new();
            self.vals = Vec::new();
            self.gens = Vec::new();
        }
        self.lookups = 0;
        self.hits = 0;
    }
}

fn is_text_like(dt: &DataType) -> bool {
    dt.is_string() || dt.is_categorical() || dt.is_enum() || dt.is_bool() || dt.is_null()
}

fn key_type_ok(dt: &DataType) -> bool {
    dt.is_integer() || dt.is_float() || is_text_like(dt)
}

impl KeyData {
    fn from_column(c: &Column) -> Result<KeyData, PolarsError> {
        let dt = c.dtype();
        if dt.is_integer() {
            Ok(KeyData::Int(c.cast(&DataType::Int64)?.i64()?.clone()))
        } else if dt.is_float() {
            Ok(KeyData::Float(c.cast(&DataType::Float64)?.f64()?.clone()))
        } else {
            Ok(KeyData::Str(c.cast(&DataType::String)?.str()?.clone()))
        }
    }

    fn null_mask(&self) -> Vec<bool> {
        fn mask<T: PolarsDataType>(ca: &ChunkedArray<T>) -> Vec<bool> {
            let mut out = Vec::with_capacity(ca.len());
            for (n, validity) in ca.chunk_lengths().zip(ca.iter_validities()) {
                match validity {
                    None => out.resize(out.len() + n, false),
                    Some(b) => out.extend((0..n).map(|j| !b.get_bit(j))),
                }
            }
            out
        }
        match self {
            KeyData::Int(ca) => mask(ca),
            KeyData::Float(ca) => mask(ca),
            KeyData::Str(ca) => mask(ca),
        }
    }
}

fn text_column(c: &Column) -> Result<StringChunked, PolarsError> {
    Ok(c.cast(&DataType::String)?.str()?.clone())
}

/// How a timestamp column is turned into ms since the epoch.
#[derive(Clone, Copy, Debug)]
enum TsKind {
    /// Physical i64 divided by this to get ms.
    Datetime(i64),
    /// Days since epoch.
    Date,
    /// Epoch seconds (integer).
    IntSeconds,
    /// Epoch seconds (float).
    FloatSeconds,
    /// ISO-8601 text.
    Text,
}

fn ts_kind(dt: &DataType) -> Option<TsKind> {
    match dt {
        DataType::Datetime(tu, _) => Some(TsKind::Datetime(match tu {
            TimeUnit::Nanoseconds => 1_000_000,
            TimeUnit::Microseconds => 1_000,
            TimeUnit::Milliseconds => 1,
        })),
        DataType::Date => Some(TsKind::Date),
        d if d.is_integer() => Some(TsKind::IntSeconds),
        d if d.is_float() => Some(TsKind::FloatSeconds),
        d if d.is_string() || d.is_categorical() || d.is_null() => Some(TsKind::Text),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum TsVal {
    Ok(i64),
    Null,
    Bad,
}

/// Timestamps of a batch, plus the text of up to 5 unparseable values.
fn timestamps(c: &Column, kind: TsKind) -> Result<(Vec<TsVal>, Vec<String>), PolarsError> {
    let mut bad_values = Vec::new();
    let vals = match kind {
        TsKind::Datetime(div) => {
            let phys = c.to_physical_repr().cast(&DataType::Int64)?;
            let mut out = Vec::with_capacity(phys.len());
            for_each_prim(phys.i64()?, |v| {
                out.push(v.map_or(TsVal::Null, |v| TsVal::Ok(v.div_euclid(div))))
            });
            out
        }
        TsKind::Date => {
            let phys = c.to_physical_repr().cast(&DataType::Int64)?;
            phys.i64()?
                .iter()
                .map(|v| v.map_or(TsVal::Null, |d| TsVal::Ok(d.saturating_mul(86_400_000))))
                .collect()
        }
        TsKind::IntSeconds => {
            let c = c.cast(&DataType::Int64)?;
            c.i64()?
                .iter()
                .map(|v| v.map_or(TsVal::Null, |s| TsVal::Ok(s.saturating_mul(1000))))
                .collect()
        }
        TsKind::FloatSeconds => {
            let c = c.cast(&DataType::Float64)?;
            c.f64()?
                .iter()
                .map(|v| match v {
                    None => TsVal::Null,
                    Some(s) if s.is_finite() && s.abs() < 9.0e15 => {
                        TsVal::Ok((s * 1000.0).round() as i64)
                    }
                    Some(_) => TsVal::Bad,
                })
                .collect()
        }
        TsKind::Text => {
            let ca = text_column(c)?;
            ca.iter()
                .map(|v| match v {
                    None => TsVal::Null,
                    Some(s) => match parse_timestamp_ms(s) {
                        Some(ms) => TsVal::Ok(ms),
                        None => {
                            if bad_values.len() < 5 && !bad_values.iter().any(|b| b == s) {
                                bad_values.push(s.to_string());
                            }
                            TsVal::Bad
                        }
                    },
                })
                .collect()
        }
    };
    Ok((vals, bad_values))
}

// ---------------------------------------------------------------------------------------
// Timestamp text
// ---------------------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn digits(&mut self, n: usize) -> Option<i64> {
        let mut v = 0i64;
        for _ in 0..n {
            let c = self.peek()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        Some(v)
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

/// Parse an ISO-8601 / RFC 3339 date or date-time into ms since the Unix epoch:
/// `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.fff...]]`, optionally
/// followed by `Z` or an offset `±HH[:MM]` / `±HHMM`. No offset means UTC. `None` when the
/// text is not such a timestamp or names an impossible date.
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let mut c = Cursor {
        b: text.trim().as_bytes(),
        i: 0,
    };
    let y = c.digits(4)?;
    if !c.eat(b'-') {
        return None;
    }
    let m = c.digits(2)?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.digits(2)?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if c.done() {
        return Some(ms);
    }
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let hh = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let mm = c.digits(2)?;
    let mut ss = 0;
    let mut frac_ms = 0;
    if c.eat(b':') {
        ss = c.digits(2)?;
        if c.eat(b'.') || c.eat(b',') {
            let mut scale = 100;
            let mut any = false;
            while let Some(ch) = c.peek().filter(u8::is_ascii_digit) {
                frac_ms += i64::from(ch - b'0') * scale;
                scale /= 10;
                any = true;
                c.i += 1;
            }
            if !any {
                return None;
            }
        }
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    ms += ((hh * 60 + mm) * 60 + ss) * 1000 + frac_ms;
    if c.done() || c.eat(b'Z') || c.eat(b'z') {
        return if c.done() { Some(ms) } else { None };
    }
    let sign = if c.eat(b'+') {
        1
    } else if c.eat(b'-') {
        -1
    } else {
        return None;
    };
    let oh = c.digits(2)?;
    let om = if c.done() {
        0
    } else {
        c.eat(b':');
        c.digits(2)?
    };
    if !c.done() || oh > 23 || om > 59 {
        return None;
    }
    Some(ms - sign * (oh * 60 + om) * 60_000)
}

// ---------------------------------------------------------------------------------------
// Encoders
// ---------------------------------------------------------------------------------------

#[inline]
fn int_hash(v: i64) -> u64 {
    mix64((v as u64) ^ 0x9E37_79B9_7F4A_7C15)
}

#[inline]
fn text_hash(s: &str) -> u64 {
    hash_bytes(0, s.as_bytes())
}

/// Dictionary encoder for keys: the keys live once, in the compact [`Dict`]; the hash
/// index holds only `u32` indices (5 bytes per slot with hashbrown's control byte) and
/// compares candidates against the dictionary. Integer keys are hashed as integers while
/// the dictionary stores integers; once a non-integer key arrives, the dictionary turns to
/// text and the index is rebuilt over text hashes (integer keys then go through their
/// canonical text, so `42` and `"42"` stay one key).
#[derive(Default)]
struct KeyIndex {
    dict: Dict,
    index: HashTable<u32>,
    /// Scratch text of an integer key (text storage only).
    buf: String,
}

/// A [`KeyIndex`] plus a cache of text keys by Arrow view.
struct KeyEncoder {
    keys: KeyIndex,
    cache: ViewCache<u32>,
}

impl Default for KeyEncoder {
    fn default() -> Self {
        KeyEncoder {
            keys: KeyIndex::default(),
            // Products number in the tens of thousands: a bigger table than the default.
            cache: ViewCache::with_bits(16),
        }
    }
}

impl KeyIndex {
    #[inline]
    fn int(&mut self, v: i64) -> u32 {
        let Some(keys) = self.dict.as_ints() else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            write_int(&mut buf, v);
            let i = self.text_stored(&buf);
            self.buf = buf;
            return i;
        };
        let h = int_hash(v);
        if let Some(&i) = self.index.find(h, |&i| keys.get(i as usize) == Some(&v)) {
            return i;
        }
        let i = self.dict.push_int(v) as u32;
        let keys = self.dict.as_ints().unwrap_or_default();
        self.index.insert_unique(h, i, |&j| {
            int_hash(keys.get(j as usize).copied().unwrap_or_default())
        });
        i
    }

    #[inline]
    fn text(&mut self, s: &str) -> u32 {
        if self.dict.as_ints().is_some() {
            if let Some(v) = canonical_int(s) {
                return self.int(v);
            }
            self.switch_to_text();
        }
        self.text_stored(s)
    }

    /// Look up or add a text key; the dictionary is in text storage.
    #[inline]
    fn text_stored(&mut self, s: &str) -> u32 {
        let h = text_hash(s);
        let dict = &self.dict;
        if let Some(&i) = self.index.find(h, |&i| dict.text_at(i as usize) == Some(s)) {
            return i;
        }
        let i = self.dict.push(s) as u32;
        let dict = &self.dict;
        self.index.insert_unique(h, i, |&j| {
            text_hash(dict.text_at(j as usize).unwrap_or_default())
        });
        i
    }

    /// Switch the dictionary to text storage and rebuild the index over text hashes.
    fn switch_to_text(&mut self) {
        self.dict.make_text();
        let dict = &self.dict;
        let hasher = |&j: &u32| text_hash(dict.text_at(j as usize).unwrap_or_default());
        self.index.clear();
        self.index.reserve(dict.len(), hasher);
        for i in 0..dict.len() {
            let h = text_hash(dict.text_at(i).unwrap_or_default());
            self.index.insert_unique(h, i as u32, hasher);
        }
    }

    #[inline]
    fn float(&mut self, f: f64) -> u32 {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
            self.int(f as i64)
        } else {
            self.text(&float_text(f))
        }
    }
}

impl KeyEncoder {
    /// Encode the kept rows of a column; nulls become [`NONE`].
    fn encode_kept(&mut self, data: &KeyData, kept: &[bool], n_kept: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(n_kept);
        let mut keep = kept.iter();
        let mut next_kept = || keep.next().copied().unwrap_or(false);
        match data {
            KeyData::Int(ca) => for_each_prim(ca, |v| {
                if next_kept() {
                    out.push(v.map_or(NONE, |v| self.keys.int(v)));
                }
            }),
            KeyData::Float(ca) => for_each_prim(ca, |v| {
                if next_kept() {
                    out.push(v.map_or(NONE, |v| self.keys.float(v)));
                }
            }),
            KeyData::Str(ca) => {
                let (keys, cache) = (&mut self.keys, &mut self.cache);
                for_each_str(ca, |v| {
                    if next_kept() {
                        out.push(match v {
                            None => NONE,
                            Some(cell) => cache.get_or(cell, |t| keys.text(t)),
                        });
                    }
                });
                self.cache.end_batch();
            }
        }
        out
    }

    fn check_capacity(&self, what: &'static str) -> Result<(), DataError> {
        if self.keys.dict.len() >= NONE as usize {
            return Err(DataError::Config {
                what,
                message: format!("more than {} distinct keys", NONE - 1),
            });
        }
        Ok(())
    }

    fn into_dict(self) -> Dict {
        let mut d = self.keys.dict;
        d.shrink_to_fit();
        d
    }
}

const SIZE_NULL: u32 = u32::MAX;

/// Size labels: each distinct (raw label, system) pair is parsed once.
#[derive(Default)]
struct SizeEncoder {
    /// System text -> code (1-based; 0 = no system).
    system_codes: HashMap<String, u32>,
    /// System text by code - 1.
    system_names: Vec<String>,
    /// (integer label, system code) -> parsed id.
    by_int: FastMap<(i64, u32), u32>,
    /// (float bits, system code) -> parsed id.
    by_float: FastMap<(u64, u32), u32>,
    /// Per system code: label text -> parsed id.
    by_text: Vec<HashMap<String, u32, MixState>>,
    /// Per system code: label cell -> parsed id.
    by_view: Vec<ViewCache<u32>>,
    /// System text by Arrow view -> code.
    system_by_view: ViewCache<u32>,
    /// Parsed id -> distinct label index, `None` when unparseable.
    parsed: Vec<Option<u32>>,
    /// Parsed id -> the raw text (for reporting bad labels).
    parsed_text: Vec<String>,
    /// Distinct labels by (system, canonical text).
    uniq_map: HashMap<(SizeSystem, String), u32>,
    uniq: Vec<SizeLabel>,
    /// Distinct label index -> index in `Events.sizes` (NONE until a kept row uses it).
    uniq_event: Vec<u32>,
    /// `Events.sizes`, in order of first kept use.
    event_sizes: Vec<SizeLabel>,
}

impl SizeEncoder {
    fn system_code(&mut self, s: Option<&str>) -> u32 {
        match s {
            None => 0,
            Some(s) => {
                if let Some(&c) = self.system_codes.get(s) {
                    return c;
                }
                self.system_names.push(s.to_string());
                let c = self.system_names.len() as u32;
                self.system_codes.insert(s.to_string(), c);
                c
            }
        }
    }

    /// System codes per row (0 = no system).
    fn system_codes(&mut self, ca: &StringChunked) -> Vec<u32> {
        let mut out = Vec::with_capacity(ca.len());
        let mut cache = std::mem::take(&mut self.system_by_view);
        for_each_str(ca, |v| {
            out.push(match v {
                None => 0,
                Some(cell) => cache.get_or(cell, |t| self.system_code(Some(t))),
            })
        });
        cache.end_batch();
        self.system_by_view = cache;
        out
    }

    /// The parsed id of a text label under a system code (parsed on first sight).
    fn text_id(&mut self, v: &str, s: u32) -> u32 {
        let si = s as usize;
        if self.by_text.len() <= si {
            self.by_text.resize_with(si + 1, HashMap::default);
        }
        match self.by_text.get(si).and_then(|m| m.get(v)) {
            Some(&id) => id,
            None => {
                let id = self.parse_new(v.to_string(), s);
                if let Some(m) = self.by_text.get_mut(si) {
                    m.insert(v.to_string(), id);
                }
                id
            }
        }
    }

    fn parse_new(&mut self, text: String, sys: u32) -> u32 {
        let system = if sys == 0 {
            None
        } else {
            self.system_names.get(sys as usize - 1).map(String::as_str)
        };
        let entry = match parse_size(&text, system) {
            Ok(label) => {
                let key = (label.system, label.canonical.clone());
                let u = match self.uniq_map.get(&key) {
                    Some(&u) => u,
                    None => {
                        let u = self.uniq.len() as u32;
                        self.uniq.push(label);
                        self.uniq_event.push(NONE);
                        self.uniq_map.insert(key, u);
                        u
                    }
                };
                Some(u)
            }
            Err(_) => None,
        };
        let id = self.parsed.len() as u32;
        self.parsed.push(entry);
        self.parsed_text.push(text);
        id
    }

    /// Parsed ids per row ([`SIZE_NULL`] for null labels and rows already filtered).
    fn ids(&mut self, data: &KeyData, sys: &[u32], skip: &[bool]) -> Vec<u32> {
        let mut out = Vec::with_capacity(skip.len());
        let mut row = sys.iter().zip(skip);
        let mut next = || match row.next() {
            Some((&s, &k)) => (s, k),
            None => (0, true),
        };
        match data {
            KeyData::Int(ca) => for_each_prim(ca, |v| {
                let (s, k) = next();
                out.push(match v {
                    Some(v) if !k => match self.by_int.get(&(v, s)) {
                        Some(&id) => id,
                        None => {
                            let id = self.parse_new(v.to_string(), s);
                            self.by_int.insert((v, s), id);
                            id
                        }
                    },
                    _ => SIZE_NULL,
                });
            }),
            KeyData::Float(ca) => for_each_prim(ca, |v| {
                let (s, k) = next();
                out.push(match v {
                    Some(v) if !k => match self.by_float.get(&(v.to_bits(), s)) {
                        Some(&id) => id,
                        None => {
                            let id = self.parse_new(float_text(v), s);
                            self.by_float.insert((v.to_bits(), s), id);
                            id
                        }
                    },
                    _ => SIZE_NULL,
                });
            }),
            KeyData::Str(ca) => {
                let mut caches = std::mem::take(&mut self.by_view);
                for_each_str(ca, |v| {
                    let (s, k) = next();
                    out.push(match v {
                        Some(cell) if !k => {
                            let si = s as usize;
                            if caches.len() <= si {
                                caches.resize_with(si + 1, || ViewCache::with_bits(10));
                            }
                            match caches.get_mut(si) {
                                Some(c) => c.get_or(cell, |t| self.text_id(t, s)),
                                None => self.text_id(cell.text(), s),
                            }
                        }
                        _ => SIZE_NULL,
                    });
                });
                caches.iter_mut().for_each(ViewCache::end_batch);
                self.by_view = caches;
            }
        }
        out
    }

    fn is_bad(&self, id: u32) -> bool {
        !matches!(self.parsed.get(id as usize), Some(Some(_)))
    }

    /// The `Events.sizes` index of a good parsed id (assigned on first use).
    fn event_index(&mut self, id: u32) -> u32 {
        let Some(Some(u)) = self.parsed.get(id as usize).copied() else {
            return NONE;
        };
        match self.uniq_event.get(u as usize).copied() {
            Some(e) if e != NONE => e,
            Some(_) => {
                let e = self.event_sizes.len() as u32;
                if let Some(l) = self.uniq.get(u as usize) {
                    self.event_sizes.push(l.clone());
                }
                if let Some(slot) = self.uniq_event.get_mut(u as usize) {
                    *slot = e;
                }
                e
            }
            None => NONE,
        }
    }
}

const OUT_NULL: u8 = 255;
const OUT_UNKNOWN: u8 = 254;

/// Outcome values: each distinct raw value classified once.
struct OutcomeEncoder {
    map: OutcomeMap,
    /// Codes of raw values by Arrow view.
    by_view: ViewCache<u8>,
    small: Vec<(String, u8)>,
    big: HashMap<String, u8, MixState>,
}

impl OutcomeEncoder {
    fn new(map: OutcomeMap) -> Self {
        OutcomeEncoder {
            map,
            by_view: ViewCache::default(),
            small: Vec::new(),
            big: HashMap::default(),
        }
    }

    #[inline]
    fn code(&mut self, raw: &str) -> u8 {
        for (s, c) in &self.small {
            if s == raw {
                return *c;
            }
        }
        if let Some(&c) = self.big.get(raw) {
            return c;
        }
        let c = self.map.classify(raw).map_or(OUT_UNKNOWN, |o| o as u8);
        if self.small.len() < 16 {
            self.small.push((raw.to_string(), c));
        } else {
            self.big.insert(raw.to_string(), c);
        }
        c
    }

    fn codes(&mut self, ca: &StringChunked, skip: &[bool]) -> Vec<u8> {
        let mut out = Vec::with_capacity(skip.len());
        let mut skip = skip.iter();
        let mut cache = std::mem::take(&mut self.by_view);
        for_each_str(ca, |v| {
            let k = skip.next().copied().unwrap_or(true);
            out.push(match v {
                Some(cell) if !k => cache.get_or(cell, |t| self.code(t)),
                _ => OUT_NULL,
            });
        });
        cache.end_batch();
        self.by_view = cache;
        out
    }
}

/// One customer feature being folded per customer.
enum FeatureState {
    Numeric {
        name: String,
        values: Vec<f32>,
    },
    Categorical {
        name: String,
        codes: Vec<u32>,
        levels: Vec<String>,
        index: HashMap<String, u32, MixState>,
    },
}

/// Most distinct values of one categorical customer feature. Each level is a column of
/// the ridge design (whose normal matrix is levels² numbers), so an id-like or free-text
/// column would make the fit allocate without bound; such a file is refused.
pub const MAX_FEATURE_LEVELS: usize = 1000;

/// Refuse a categorical feature with more than [`MAX_FEATURE_LEVELS`] levels (checked
/// after each batch, so at most one batch's levels are held beyond the bound).
fn check_feature_levels(features: &[FeatureState], path: &Path) -> Result<(), DataError> {
    for st in features {
        if let FeatureState::Categorical { name, levels, .. } = st {
            if levels.len() > MAX_FEATURE_LEVELS {
                return Err(DataError::Read {
                    path: path.to_path_buf(),
                    message: format!(
                        "customer feature '{name}' has more than {MAX_FEATURE_LEVELS} distinct values \
({} so far); a categorical body feature is one-hot encoded, so at most {MAX_FEATURE_LEVELS} are \
accepted (is it an id, free text, or a numeric column read as text?)",
                        levels.len()
                    ),
                });
            }
        }
    }
    Ok(())
}

enum FeatureData {
    Num(Float64Chunked),
    Cat(StringChunked),
}

impl FeatureState {
    fn new(name: &str, dt: &DataType) -> Self {
        if dt.is_primitive_numeric() {
            FeatureState::Numeric {
                name: name.to_string(),
                values: Vec::new(),
            }
        } else {
            FeatureState::Categorical {
                name: name.to_string(),
                codes: Vec::new(),
                levels: Vec::new(),
                index: HashMap::default(),
            }
        }
    }

    fn accepts(&self, dt: &DataType) -> bool {
        match self {
            FeatureState::Numeric { .. } => dt.is_primitive_numeric() || dt.is_null(),
            FeatureState::Categorical { .. } => dt.is_primitive_numeric() || is_text_like(dt),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            FeatureState::Numeric { .. } => "a numeric column (as in earlier files)",
            FeatureState::Categorical { .. } => "a string/boolean column (as in earlier files)",
        }
    }

    fn data(&self, c: &Column) -> Result<FeatureData, PolarsError> {
        Ok(match self {
            FeatureState::Numeric { .. } => {
                FeatureData::Num(c.cast(&DataType::Float64)?.f64()?.clone())
            }
            FeatureState::Categorical { .. } => FeatureData::Cat(text_column(c)?),
        })
    }

    /// Fold the kept rows of a batch: last non-null value per customer wins.
    fn update(&mut self, data: &FeatureData, kept: &[bool], cust: &[u32], n_customers: usize) {
        match (self, data) {
            (FeatureState::Numeric { values, .. }, FeatureData::Num(ca)) => {
                values.resize(n_customers, f32::NAN);
                let mut ci = cust.iter();
                let mut keep = kept.iter();
                for_each_prim(ca, |v| {
                    if !keep.next().copied().unwrap_or(false) {
                        return;
                    }
                    let Some(&c) = ci.next() else { return };
                    if let (Some(v), Some(slot)) = (v, values.get_mut(c as usize)) {
                        if !v.is_nan() {
                            *slot = v as f32;
                        }
                    }
                });
            }
            (
                FeatureState::Categorical {
                    codes,
                    levels,
                    index,
                    ..
                },
                FeatureData::Cat(ca),
            ) => {
                codes.resize(n_customers, NONE);
                let mut ci = cust.iter();
                let mut keep = kept.iter();
                for_each_str(ca, |v| {
                    if !keep.next().copied().unwrap_or(false) {
                        return;
                    }
                    let Some(&c) = ci.next() else { return };
                    let Some(cell) = v else { return };
                    let v = cell.text();
                    // Few levels (the usual case): a linear scan beats hashing.
                    let small = if levels.len() <= 16 {
                        levels.iter().position(|l| l == v).map(|p| p as u32)
                    } else {
                        index.get(v).copied()
                    };
                    let code = match small {
                        Some(code) => code,
                        None => {
                            let code = levels.len() as u32;
                            levels.push(v.to_string());
                            index.insert(v.to_string(), code);
                            code
                        }
                    };
                    if let Some(slot) = codes.get_mut(c as usize) {
                        *slot = code;
                    }
                });
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// Column resolution
// ---------------------------------------------------------------------------------------

/// Source column names used for one file (None = absent optional column).
#[derive(Clone, Debug, Default)]
struct FileColumns {
    customer: String,
    size: String,
    outcome: Option<String>,
    product: Option<String>,
    brand: Option<String>,
    category: Option<String>,
    size_system: Option<String>,
    timestamp: Option<(String, TsKind)>,
    features: Vec<String>,
}

impl FileColumns {
    /// Distinct source columns to read, in a stable order.
    fn projection(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut add = |s: &String| {
            if !v.contains(s) {
                v.push(s.clone());
            }
        };
        add(&self.customer);
        add(&self.size);
        for s in [
            &self.outcome,
            &self.product,
            &self.brand,
            &self.category,
            &self.size_system,
        ]
        .into_iter()
        .flatten()
        {
            add(s);
        }
        if let Some((s, _)) = &self.timestamp {
            add(s);
        }
        for f in &self.features {
            add(f);
        }
        v
    }
}

/// The columns of a file for error messages: control and replacement characters shown as
/// `?` (binary files), at most 60 names.
fn available(schema: &Schema) -> String {
    const MAX: usize = 60;
    let mut names: Vec<String> = schema
        .iter_names()
        .take(MAX)
        .map(|n| {
            n.chars()
                .map(|c| {
                    if c.is_control() || c == '\u{FFFD}' {
                        '?'
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    if schema.len() > MAX {
        names.push(format!("... ({} more)", schema.len() - MAX));
    }
    names.join(", ")
}

fn validate_config(cfg: &IngestConfig) -> Result<(), DataError> {
    for k in cfg.columns.keys() {
        if !canon::ALL.contains(&k.as_str()) {
            return Err(DataError::Config {
                what: "column mapping",
                message: format!(
                    "unknown canonical column '{k}'; canonical columns are: {}",
                    canon::ALL.join(", ")
                ),
            });
        }
    }
    if !(cfg.max_bad_fraction.is_finite() && (0.0..=1.0).contains(&cfg.max_bad_fraction)) {
        return Err(DataError::Config {
            what: "max bad fraction",
            message: format!("must be within 0..=1, got {}", cfg.max_bad_fraction),
        });
    }
    if cfg.chunk_rows == 0 || cfg.read_rows == 0 {
        return Err(DataError::Config {
            what: "chunk rows",
            message: format!(
                "chunk_rows ({}) and read_rows ({}) must be at least 1",
                cfg.chunk_rows, cfg.read_rows
            ),
        });
    }
    if let Some(s) = &cfg.filter.split {
        s.validate()?;
    }
    if let (Some(a), Some(b)) = (cfg.filter.since_ms, cfg.filter.before_ms) {
        if a >= b {
            return Err(DataError::Config {
                what: "time filter",
                message: format!("since ({a} ms) must be before before ({b} ms)"),
            });
        }
    }
    Ok(())
}

fn resolve_columns(
    cfg: &IngestConfig,
    path: &Path,
    schema: &Schema,
) -> Result<FileColumns, DataError> {
    let missing = |canonical: &str, column: &str| DataError::MissingColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
        canonical: canonical.to_string(),
        available: available(schema),
    };
    let wrong = |column: &str, expected: &str, found: &DataType| DataError::WrongType {
        path: path.to_path_buf(),
        column: column.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    };
    const KEY_TYPES: &str = "an integer, float or string column";
    // Required key-like columns.
    let required = |canonical: &str| -> Result<String, DataError> {
        let src = cfg.source(canonical);
        let dt = schema.get(&src).ok_or_else(|| missing(canonical, &src))?;
        if !key_type_ok(dt) {
            return Err(wrong(&src, KEY_TYPES, dt));
        }
        Ok(src)
    };
    // Optional: used when mapped (then it must exist) or when present under its own name.
    let optional = |canonical: &str, text_only: bool| -> Result<Option<String>, DataError> {
        let src = cfg.source(canonical);
        match schema.get(&src) {
            None if cfg.columns.contains_key(canonical) => Err(missing(canonical, &src)),
            None => Ok(None),
            Some(dt) => {
                if text_only && !is_text_like(dt) {
                    Err(wrong(&src, "a string column", dt))
                } else if !key_type_ok(dt) {
                    Err(wrong(&src, KEY_TYPES, dt))
                } else {
                    Ok(Some(src))
                }
            }
        }
    };
    let customer = required(canon::CUSTOMER_ID)?;
    let size = required(canon::SIZE)?;
    let outcome = if cfg.require_outcome {
        Some(required(canon::OUTCOME)?)
    } else {
        optional(canon::OUTCOME, false)?
    };
    let product = optional(canon::PRODUCT_ID, false)?;
    let brand = optional(canon::BRAND, false)?;
    let category = optional(canon::CATEGORY, false)?;
    let size_system = optional(canon::SIZE_SYSTEM, true)?;
    let ts_src = cfg.source(canon::TIMESTAMP);
    let timestamp = match schema.get(&ts_src) {
        None if cfg.columns.contains_key(canon::TIMESTAMP) => {
            return Err(missing(canon::TIMESTAMP, &ts_src))
        }
        None => None,
        Some(dt) => match ts_kind(dt) {
            Some(k) => Some((ts_src, k)),
            None => {
                return Err(wrong(
                    &ts_src,
                    "a datetime, date, integer (epoch seconds) or ISO-8601 string column",
                    dt,
                ))
            }
        },
    };
    if timestamp.is_none() && (cfg.filter.since_ms.is_some() || cfg.filter.before_ms.is_some()) {
        return Err(DataError::Config {
            what: "time filter",
            message: format!(
                "{}: --since/--before need a timestamp column; map one with --col timestamp=<column> (the file has: {})",
                path.display(),
                available(schema)
            ),
        });
    }
    let mut features = Vec::new();
    for f in &cfg.customer_features {
        let dt = schema
            .get(f)
            .ok_or_else(|| missing("customer feature", f))?;
        if !(dt.is_primitive_numeric() || is_text_like(dt)) {
            return Err(wrong(
                f,
                "a numeric, string or boolean column (customer feature)",
                dt,
            ));
        }
        features.push(f.clone());
    }
    Ok(FileColumns {
        customer,
        size,
        outcome,
        product,
        brand,
        category,
        size_system,
        timestamp,
        features,
    })
}

// ---------------------------------------------------------------------------------------
// Scanning
// ---------------------------------------------------------------------------------------

fn read_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Run a polars call, turning errors and panics into [`DataError::Read`].
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, PolarsError>) -> Result<T, DataError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(read_err(path, e)),
        Err(p) => Err(read_err(
            path,
            format!("the reader failed: {}", panic_text(p.as_ref())),
        )),
    }
}

/// Canonical columns read as text from CSV, so ids like `007` or mixed ids survive.
fn csv_text_columns(cfg: &IngestConfig) -> Vec<String> {
    [
        canon::CUSTOMER_ID,
        canon::SIZE,
        canon::OUTCOME,
        canon::PRODUCT_ID,
        canon::BRAND,
        canon::CATEGORY,
        canon::SIZE_SYSTEM,
    ]
    .iter()
    .map(|c| cfg.source(c))
    .collect()
}

const INFER_ROWS: usize = 10_000;

/// Lazily scan one file. CSV key columns are read as text and integer feature columns as
/// floats (a later `140.5` must not break a column inferred as integer).
fn scan_file(cfg: &IngestConfig, path: &Path) -> Result<LazyFrame, DataError> {
    let format = detect_format(path)?;
    let pl_path = PlRefPath::try_from_path(path).map_err(|e| read_err(path, e))?;
    guarded(path, || match format {
        InputFormat::Parquet => {
            let args = ScanArgsParquet {
                glob: false,
                hive_options: HiveOptions::new_disabled(),
                ..Default::default()
            };
            LazyFrame::scan_parquet(pl_path, args)
        }
        InputFormat::Csv => {
            let base = || {
                LazyCsvReader::new(pl_path.clone())
                    .with_has_header(true)
                    .with_glob(false)
                    .with_infer_schema_length(Some(INFER_ROWS))
            };
            let mut probe = base().finish()?;
            let schema = probe.collect_schema()?;
            let text_cols = csv_text_columns(cfg);
            let mut over = Schema::default();
            for (name, dt) in schema.iter() {
                if text_cols.iter().any(|c| c.as_str() == name.as_str()) {
                    over.with_column(name.clone(), DataType::String);
                } else if dt.is_integer()
                    && cfg
                        .customer_features
                        .iter()
                        .any(|f| f.as_str() == name.as_str())
                {
                    over.with_column(name.clone(), DataType::Float64);
                }
            }
            let over: SchemaRef = Arc::new(over);
            base().with_dtype_overwrite(Some(over)).finish()
        }
        InputFormat::Ndjson => {
            let base = || {
                LazyJsonLineReader::new(pl_path.clone())
                    .with_infer_schema_length(NonZeroUsize::new(INFER_ROWS))
            };
            let mut probe = base().finish()?;
            let schema = probe.collect_schema()?;
            let mut over = Schema::default();
            for (name, dt) in schema.iter() {
                if dt.is_integer()
                    && cfg
                        .customer_features
                        .iter()
                        .any(|f| f.as_str() == name.as_str())
                {
                    over.with_column(name.clone(), DataType::Float64);
                }
            }
            if over.is_empty() {
                Ok(probe)
            } else {
                base().with_schema_overwrite(Some(Arc::new(over))).finish()
            }
        }
    })
}

enum Msg {
    Batch(DataFrame),
    Done(Result<(), DataError>),
}

/// Row ranges `(offset, len)` to read a Parquet file in: consecutive row groups together
/// while they stay within `unit` rows, a row group longer than `2 * unit` in ranges of
/// `unit` rows.
fn parquet_units(row_groups: &[usize], unit: usize) -> Vec<(usize, usize)> {
    let unit = unit.max(1);
    let mut out = Vec::new();
    let (mut start, mut len) = (0usize, 0usize);
    for &n in row_groups {
        if len > 0 && len + n > unit {
            out.push((start, len));
            start += len;
            len = 0;
        }
        if n > 2 * unit {
            let mut off = 0;
            while off < n {
                let l = unit.min(n - off);
                out.push((start + off, l));
                off += l;
            }
            start += n;
        } else {
            len += n;
        }
    }
    if len > 0 {
        out.push((start, len));
    }
    out
}

/// Read a Parquet file's `columns` unit by unit (see [`parquet_units`],
/// [`IngestConfig::read_rows`]) with polars' in-memory reader on a helper thread, one unit
/// ahead, and feed them to `f` in slices of [`IngestConfig::chunk_rows`] rows, in order.
///
/// Why not the streaming engine: with a consumer slower than the decoder (ours, by
/// design) polars' streaming Parquet source decodes far ahead: 2.6 GB of buffered row
/// groups for a 100M-row file with 1M-row groups, plus the whole file mapped. Here at most
/// two units (the one being processed and the next) are in memory, and each unit's file
/// mapping is dropped once it is decoded.
fn read_parquet_units(
    path: &Path,
    columns: &[String],
    cfg: &IngestConfig,
    mut f: impl FnMut(DataFrame) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let chunk_rows = cfg.chunk_rows;
    let open = |p: &Path| {
        std::fs::File::open(p).map_err(|e| DataError::Io {
            path: p.to_path_buf(),
            source: e,
        })
    };
    let metadata = {
        let mut reader = ParquetReader::new(open(path)?);
        guarded(path, || reader.get_metadata().cloned())?
    };
    let row_groups: Vec<usize> = metadata.row_groups.iter().map(|rg| rg.num_rows()).collect();
    let units = parquet_units(&row_groups, cfg.read_rows);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(0);
    let thread_path = path.to_path_buf();
    let columns = columns.to_vec();
    let handle = std::thread::Builder::new()
        .name("runsize-parquet-reader".into())
        .spawn(move || {
            for unit in units {
                let file = match open(&thread_path) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx.send(Msg::Done(Err(e)));
                        return;
                    }
                };
                let md = metadata.clone();
                let read = guarded(&thread_path, || {
                    let mut reader = ParquetReader::new(file)
                        .with_columns(Some(columns.clone()))
                        .with_slice(Some(unit));
                    reader.set_metadata(md);
                    reader.finish()
                });
                let msg = match read {
                    Ok(df) => Msg::Batch(df),
                    Err(e) => Msg::Done(Err(e)),
                };
                let stop = matches!(msg, Msg::Done(_));
                if tx.send(msg).is_err() || stop {
                    return;
                }
            }
            let _ = tx.send(Msg::Done(Ok(())));
        })
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    let chunk = chunk_rows.max(1);
    let mut result = Err(read_err(path, "the reader stopped unexpectedly"));
    'units: while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch(df) => {
                let mut offset = 0usize;
                while offset < df.height() {
                    if let Err(e) = f(df.slice(offset as i64, chunk)) {
                        result = Err(e);
                        break 'units;
                    }
                    offset += chunk;
                }
            }
            Msg::Done(r) => {
                result = r;
                break;
            }
        }
    }
    drop(rx);
    let _ = handle.join();
    result
}

/// Stream a lazy frame through `f` in batches of about `chunk_rows` rows, in order.
fn stream_batches(
    lf: LazyFrame,
    chunk_rows: usize,
    path: &Path,
    mut f: impl FnMut(DataFrame) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(1);
    let tx_batch = tx.clone();
    let callback =
        PlanCallback::new(move |df: DataFrame| Ok(tx_batch.send(Msg::Batch(df)).is_err()));
    let lf = guarded(path, || {
        lf.sink_batches(callback, true, NonZeroUsize::new(chunk_rows))
    })?;
    let thread_path = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("runsize-ingest-reader".into())
        .spawn(move || {
            let r = guarded(&thread_path, || {
                lf.collect_with_engine(Engine::Streaming).map(|_| ())
            });
            let _ = tx.send(Msg::Done(r));
        })
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    let mut result = Err(read_err(path, "the reader stopped unexpectedly"));
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch(df) => {
                if let Err(e) = f(df) {
                    result = Err(e);
                    break;
                }
            }
            Msg::Done(r) => {
                result = r;
                break;
            }
        }
    }
    drop(rx);
    let _ = handle.join();
    result
}

// ---------------------------------------------------------------------------------------
// Batch processing
// ---------------------------------------------------------------------------------------

const ST_OK: u8 = 0;
const ST_FILTERED: u8 = 1;
const ST_BAD0: u8 = 2;

#[derive(Default)]
struct BadAcc {
    count: u64,
    examples: Vec<RowRef>,
    values: Vec<String>,
}

impl BadAcc {
    fn add_value(&mut self, v: &str) {
        if self.values.len() < 5 && !self.values.iter().any(|x| x == v) {
            self.values.push(v.to_string());
        }
    }
}

/// Ingest state across files and batches.
struct Builder<'a> {
    cfg: &'a IngestConfig,
    customers: KeyEncoder,
    products: KeyEncoder,
    brands: KeyEncoder,
    categories: KeyEncoder,
    sizes: SizeEncoder,
    outcomes: OutcomeEncoder,
    features: Vec<FeatureState>,
    ev: Events,
    timestamps: Vec<i64>,
    any_timestamp: bool,
    all_timestamp: bool,
    all_outcome: bool,
    bad: Vec<BadAcc>,
    report: IngestReport,
    /// Global row number of the next row.
    global_row: u64,
}

fn batch_col<'c>(b: &Batch<'c>, name: &str) -> Result<&'c Column, DataError> {
    b.df.column(name).map_err(|e| read_err(b.path, e))
}

/// One batch, columns resolved.
struct Batch<'b> {
    df: &'b DataFrame,
    path: &'b Path,
    cols: &'b FileColumns,
    /// 0-based row number within the file of the batch's first row.
    file_row0: u64,
}

impl<'a> Builder<'a> {
    fn new(cfg: &'a IngestConfig) -> Self {
        Builder {
            cfg,
            customers: KeyEncoder::default(),
            products: KeyEncoder::default(),
            brands: KeyEncoder::default(),
            categories: KeyEncoder::default(),
            sizes: SizeEncoder::default(),
            outcomes: OutcomeEncoder::new(cfg.outcome_map.clone()),
            features: Vec::new(),
            ev: Events::default(),
            timestamps: Vec::new(),
            any_timestamp: false,
            all_timestamp: true,
            all_outcome: true,
            bad: BadReason::ALL.iter().map(|_| BadAcc::default()).collect(),
            report: IngestReport::default(),
            global_row: 0,
        }
    }

    /// Check a file's columns against earlier files (features keep their kind).
    fn start_file(
        &mut self,
        path: &Path,
        schema: &Schema,
        cols: &FileColumns,
    ) -> Result<(), DataError> {
        for (i, name) in cols.features.iter().enumerate() {
            let Some(dt) = schema.get(name) else { continue };
            if let Some(st) = self.features.get(i) {
                if !st.accepts(dt) {
                    return Err(DataError::WrongType {
                        path: path.to_path_buf(),
                        column: name.clone(),
                        expected: st.kind_name().to_string(),
                        found: dt.to_string(),
                    });
                }
            } else {
                self.features.push(FeatureState::new(name, dt));
            }
        }
        if cols.timestamp.is_some() {
            self.any_timestamp = true;
        } else {
            self.all_timestamp = false;
        }
        if cols.outcome.is_none() {
            self.all_outcome = false;
        }
        self.report.files.push(path.to_path_buf());
        Ok(())
    }

    fn process(&mut self, b: &Batch) -> Result<(), DataError> {
        let n = b.df.height();
        if n == 0 {
            return Ok(());
        }
        let path = b.path;
        let pe = |e: PolarsError| read_err(path, e);
        let g0 = self.global_row;
        self.global_row += n as u64;
        self.report.rows_read += n as u64;
        let cfg = self.cfg;

        // 1. Filters.
        let mut status = vec![ST_OK; n];
        if let Some(split) = &cfg.filter.split {
            for (i, s) in status.iter_mut().enumerate() {
                if split.part_of(g0 + i as u64) != split.part {
                    *s = ST_FILTERED;
                }
            }
        }
        let ts = match &b.cols.timestamp {
            Some((name, kind)) => {
                let (vals, bad_values) = timestamps(batch_col(b, name)?, *kind).map_err(pe)?;
                for v in bad_values {
                    if let Some(acc) = self.bad.get_mut(BadReason::BadTimestamp as usize) {
                        acc.add_value(&v);
                    }
                }
                if cfg.filter.since_ms.is_some() || cfg.filter.before_ms.is_some() {
                    let lo = cfg.filter.since_ms.unwrap_or(i64::MIN);
                    let hi = cfg.filter.before_ms.unwrap_or(i64::MAX);
                    for (s, v) in status.iter_mut().zip(&vals) {
                        if let TsVal::Ok(t) = v {
                            if *t < lo || *t >= hi {
                                *s = ST_FILTERED;
                            }
                        }
                    }
                }
                Some(vals)
            }
            None => None,
        };
        let skip: Vec<bool> = status.iter().map(|&s| s != ST_OK).collect();

        // 2. Required fields, sizes, outcomes (columns are independent: in parallel).
        let cust = KeyData::from_column(batch_col(b, &b.cols.customer)?).map_err(pe)?;
        let size = KeyData::from_column(batch_col(b, &b.cols.size)?).map_err(pe)?;
        let sys_col = match &b.cols.size_system {
            Some(name) => Some(text_column(batch_col(b, name)?).map_err(pe)?),
            None => None,
        };
        let out_col = match &b.cols.outcome {
            Some(name) => Some(text_column(batch_col(b, name)?).map_err(pe)?),
            None => None,
        };
        let sizes = &mut self.sizes;
        let outcomes = &mut self.outcomes;
        let ((cust_null, size_ids), out_codes) = rayon::join(
            || {
                let size_ids = {
                    let sys: Vec<u32> = match &sys_col {
                        Some(ca) => sizes.system_codes(ca),
                        None => vec![0; n],
                    };
                    sizes.ids(&size, &sys, &skip)
                };
                (cust.null_mask(), size_ids)
            },
            || out_col.as_ref().map(|ca| outcomes.codes(ca, &skip)),
        );

        // 3. Combine into row status; collect kept rows.
        let mut kept = vec![false; n];
        let mut n_kept = 0usize;
        let require_outcome = cfg.require_outcome;
        let keep_ts = cfg.keep_timestamps;
        let mut skipped_rows: Vec<u64> = Vec::new();
        for i in 0..n {
            let st = status.get(i).copied().unwrap_or(ST_FILTERED);
            if st == ST_FILTERED {
                self.report.rows_filtered += 1;
                skipped_rows.push(g0 + i as u64);
                continue;
            }
            let sid = size_ids.get(i).copied().unwrap_or(SIZE_NULL);
            let oc = out_codes
                .as_ref()
                .and_then(|o| o.get(i).copied())
                .unwrap_or(OUT_NULL);
            let tv = ts.as_ref().and_then(|t| t.get(i).copied());
            let reason = if cust_null.get(i).copied().unwrap_or(true) {
                Some(BadReason::MissingCustomerId)
            } else if sid == SIZE_NULL {
                Some(BadReason::MissingSize)
            } else if require_outcome && oc == OUT_NULL {
                Some(BadReason::MissingOutcome)
            } else if self.sizes.is_bad(sid) {
                Some(BadReason::BadSize)
            } else if require_outcome && oc == OUT_UNKNOWN {
                Some(BadReason::UnknownOutcome)
            } else if tv == Some(TsVal::Null) {
                Some(BadReason::MissingTimestamp)
            } else if tv == Some(TsVal::Bad) {
                Some(BadReason::BadTimestamp)
            } else {
                None
            };
            if let Some(r) = reason {
                if let Some(s) = status.get_mut(i) {
                    *s = r.code();
                }
                self.report.rows_bad += 1;
                if let Some(acc) = self.bad.get_mut(r as usize) {
                    acc.count += 1;
                    if acc.examples.len() < 5 {
                        acc.examples.push(RowRef {
                            file: path.to_path_buf(),
                            row: b.file_row0 + i as u64 + 1,
                        });
                    }
                    match r {
                        BadReason::BadSize => {
                            if let Some(t) = self.sizes.parsed_text.get(sid as usize) {
                                acc.add_value(t);
                            }
                        }
                        BadReason::UnknownOutcome => {
                            if let Some(Some(v)) = out_col.as_ref().map(|c| c.get(i)) {
                                acc.add_value(v);
                            }
                        }
                        _ => {}
                    }
                }
                skipped_rows.push(g0 + i as u64);
                continue;
            }
            if let Some(k) = kept.get_mut(i) {
                *k = true;
            }
            n_kept += 1;
            let e = self.sizes.event_index(sid);
            self.ev.size.push(e);
            let outcome = match Outcome::from_code(oc) {
                Some(o) => {
                    match o {
                        Outcome::Small => self.report.outcomes.small += 1,
                        Outcome::Fit => self.report.outcomes.fit += 1,
                        Outcome::Large => self.report.outcomes.large += 1,
                        Outcome::Other => self.report.outcomes.other += 1,
                    }
                    o
                }
                None => {
                    if oc == OUT_NULL {
                        self.report.rows_without_outcome += 1;
                    } else {
                        // unknown outcome with optional outcomes
                        self.report.outcomes.other += 1;
                    }
                    Outcome::Other
                }
            };
            self.ev.outcome.push(outcome);
            if let (true, Some(TsVal::Ok(t))) = (keep_ts, tv) {
                self.timestamps.push(t);
            }
        }
        self.ev.row.extend_batch(g0, n as u64, &skipped_rows);
        self.report.rows_kept += n_kept as u64;
        if n_kept == 0 {
            return Ok(());
        }

        // 4. Keys of kept rows (independent dictionaries: in parallel).
        let opt_data = |name: &Option<String>| -> Result<Option<KeyData>, DataError> {
            match name {
                Some(nm) => Ok(Some(KeyData::from_column(batch_col(b, nm)?).map_err(pe)?)),
                None => Ok(None),
            }
        };
        let prod = opt_data(&b.cols.product)?;
        let brand = opt_data(&b.cols.brand)?;
        let cat = opt_data(&b.cols.category)?;
        let mut feat_data = Vec::with_capacity(self.features.len());
        for (st, name) in self.features.iter().zip(&b.cols.features) {
            feat_data.push(st.data(batch_col(b, name)?).map_err(pe)?);
        }
        let encode = |enc: &mut KeyEncoder, d: &Option<KeyData>| match d {
            Some(d) => enc.encode_kept(d, &kept, n_kept),
            None => vec![NONE; n_kept],
        };
        let (customers, products, brands, categories) = (
            &mut self.customers,
            &mut self.products,
            &mut self.brands,
            &mut self.categories,
        );
        let (cust_codes, (prod_codes, (brand_codes, cat_codes))) = rayon::join(
            || customers.encode_kept(&cust, &kept, n_kept),
            || {
                rayon::join(
                    || encode(products, &prod),
                    || rayon::join(|| encode(brands, &brand), || encode(categories, &cat)),
                )
            },
        );
        self.customers.check_capacity("customer ids")?;
        self.products.check_capacity("product ids")?;
        self.brands.check_capacity("brands")?;
        self.categories.check_capacity("categories")?;

        // 5. Customer features (one column per task).
        let n_customers = self.customers.keys.dict.len();
        {
            use rayon::prelude::*;
            self.features
                .par_iter_mut()
                .zip(feat_data.par_iter())
                .for_each(|(st, d)| st.update(d, &kept, &cust_codes, n_customers));
        }
        check_feature_levels(&self.features, b.path)?;
        self.ev.customer.extend_from_slice(&cust_codes);
        self.ev.product.extend_from_slice(&prod_codes);
        self.ev.brand.extend_from_slice(&brand_codes);
        self.ev.category.extend_from_slice(&cat_codes);
        Ok(())
    }

    fn finish(mut self, started: Instant) -> Result<Ingested, DataError> {
        let cfg = self.cfg;
        let mut bad_rows = Vec::new();
        for (reason, acc) in BadReason::ALL.iter().zip(std::mem::take(&mut self.bad)) {
            if acc.count > 0 {
                bad_rows.push(BadRows {
                    reason: *reason,
                    message: reason.as_str().to_string(),
                    count: acc.count,
                    examples: acc.examples,
                    values: acc.values,
                });
            }
        }
        let checked = self.report.rows_read - self.report.rows_filtered;
        let bad = self.report.rows_bad;
        if bad > 0 && (bad as f64) > cfg.max_bad_fraction * checked as f64 {
            return Err(DataError::TooManyBadRows {
                bad,
                total: checked,
                pct: 100.0 * bad as f64 / checked.max(1) as f64,
                max_pct: 100.0 * cfg.max_bad_fraction,
                summary: bad_rows_text(&bad_rows),
            });
        }
        if self.report.rows_read == 0 {
            return Err(DataError::Config {
                what: "input",
                message: format!(
                    "no data rows in {} (empty or header-only file(s))",
                    self.report
                        .files
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let n_customers = self.customers.keys.dict.len();
        let mut features = CustomerFeatures::default();
        for st in self.features {
            match st {
                FeatureState::Numeric { name, mut values } => {
                    values.resize(n_customers, f32::NAN);
                    features.numeric.push(NumericFeature { name, values });
                }
                FeatureState::Categorical {
                    name,
                    mut codes,
                    levels,
                    ..
                } => {
                    codes.resize(n_customers, NONE);
                    features.categorical.push(CategoricalFeature {
                        name,
                        codes,
                        levels,
                    });
                }
            }
        }
        let mut ev = self.ev;
        ev.has_outcome = cfg.require_outcome || self.all_outcome;
        ev.timestamp = if self.all_timestamp && self.any_timestamp && cfg.keep_timestamps {
            Some(self.timestamps)
        } else {
            None
        };
        ev.customers = self.customers.into_dict();
        ev.products = self.products.into_dict();
        ev.brands = self.brands.into_dict();
        ev.categories = self.categories.into_dict();
        ev.sizes = self.sizes.event_sizes;
        ev.features = features;
        let mut report = self.report;
        report.bad_rows = bad_rows;
        report.other_outcomes = report.outcomes.other;
        report.customers = ev.customers.len();
        report.products = ev.products.len();
        report.brands = ev.brands.len();
        report.categories = ev.categories.len();
        report.sizes = ev.sizes.len();
        report.seconds = started.elapsed().as_secs_f64();
        Ok(Ingested { events: ev, report })
    }
}

/// Read events as configured: list the inputs, stream every file in order through the
/// row checks and encoders, and return the events with a report.
///
/// Errors: [`DataError::NoInput`] / [`DataError::UnsupportedFormat`] for the inputs,
/// [`DataError::MissingColumn`] / [`DataError::WrongType`] for a file's columns,
/// [`DataError::Read`] for unreadable files, [`DataError::TooManyBadRows`] when bad rows
/// exceed `max_bad_fraction` of the rows checked, [`DataError::Config`] for invalid options,
/// a time filter without a timestamp column, or input without any data row.
pub fn ingest(cfg: &IngestConfig) -> Result<Ingested, DataError> {
    let started = Instant::now();
    validate_config(cfg)?;
    let files = list_inputs(&cfg.inputs)?;
    let mut builder = Builder::new(cfg);
    for path in &files {
        let mut lf = scan_file(cfg, path)?;
        let schema = guarded(path, || lf.collect_schema())?;
        let cols = resolve_columns(cfg, path, &schema)?;
        builder.start_file(path, &schema, &cols)?;
        let projection: Vec<polars::prelude::Expr> = cols
            .projection()
            .iter()
            .map(|c| polars::prelude::col(c.as_str()))
            .collect();
        let mut file_row0 = 0u64;
        let each = |df: DataFrame| {
            let batch = Batch {
                df: &df,
                path,
                cols: &cols,
                file_row0,
            };
            builder.process(&batch)?;
            file_row0 += df.height() as u64;
            Ok(())
        };
        if detect_format(path)? == InputFormat::Parquet {
            read_parquet_units(path, &cols.projection(), cfg, each)?;
        } else {
            stream_batches(lf.select(projection), cfg.chunk_rows, path, each)?;
        }
    }
    builder.finish(started)
}

/// Read all input files completely (every column, files concatenated in order) together
/// with the events, for batch prediction: `events.row.get(i)` is the index of the event's row
/// in the returned frame. All files must have the same columns and types. Row filters are
/// not allowed here ([`DataError::Config`]).
pub fn ingest_with_frame(cfg: &IngestConfig) -> Result<(DataFrame, Ingested), DataError> {
    let started = Instant::now();
    validate_config(cfg)?;
    if !cfg.filter.is_empty() {
        return Err(DataError::Config {
            what: "row filter",
            message: "row filters (--split/--since/--before) cannot be used when the full input frame is returned".into(),
        });
    }
    let files = list_inputs(&cfg.inputs)?;
    let mut builder = Builder::new(cfg);
    let mut frame: Option<DataFrame> = None;
    for path in &files {
        let mut lf = scan_file(cfg, path)?;
        let schema = guarded(path, || lf.collect_schema())?;
        let cols = resolve_columns(cfg, path, &schema)?;
        builder.start_file(path, &schema, &cols)?;
        let df = guarded(path, || lf.collect())?;
        let mut offset = 0usize;
        let chunk = cfg.chunk_rows.max(1);
        while offset < df.height() {
            let part = df.slice(offset as i64, chunk);
            let batch = Batch {
                df: &part,
                path,
                cols: &cols,
                file_row0: offset as u64,
            };
            builder.process(&batch)?;
            offset += chunk;
        }
        frame = Some(match frame {
            None => df,
            Some(mut acc) => {
                if acc.schema() != df.schema() {
                    return Err(DataError::Config {
                        what: "input files",
                        message: format!(
                            "{}: columns differ from the first file ({} vs {}); batch prediction needs files with the same columns and types",
                            path.display(),
                            available(df.schema()),
                            available(acc.schema())
                        ),
                    });
                }
                acc.vstack_mut_owned(df).map_err(|e| read_err(path, e))?;
                acc
            }
        });
    }
    let ingested = builder.finish(started)?;
    let frame = frame.unwrap_or_default();
    Ok((frame, ingested))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_units_group_small_row_groups_and_split_big_ones() {
        assert_eq!(parquet_units(&[], 10), vec![]);
        assert_eq!(parquet_units(&[4, 4, 4], 10), vec![(0, 8), (8, 4)]);
        assert_eq!(parquet_units(&[10, 10], 10), vec![(0, 10), (10, 10)]);
        assert_eq!(parquet_units(&[15], 10), vec![(0, 15)]);
        assert_eq!(
            parquet_units(&[3, 25, 2], 10),
            vec![(0, 3), (3, 10), (13, 10), (23, 5), (28, 2)]
        );
        let units = parquet_units(&[7, 1, 30, 0, 9, 9], 8);
        let total: usize = units.iter().map(|u| u.1).sum();
        assert_eq!(total, 56);
        for w in units.windows(2) {
            assert_eq!(w[0].0 + w[0].1, w[1].0, "contiguous: {units:?}");
        }
    }

    #[test]
    fn float_text_drops_integral_fraction() {
        assert_eq!(float_text(8.0), "8");
        assert_eq!(float_text(8.5), "8.5");
        assert_eq!(float_text(-2.0), "-2");
    }

    #[test]
    fn key_encoder_unifies_int_and_text_ids() {
        let mut e = KeyIndex::default();
        assert_eq!(e.int(42), 0);
        assert_eq!(e.text("42"), 0);
        assert_eq!(e.text("u1"), 1);
        assert_eq!(e.text("u1"), 1);
        assert_eq!(e.float(42.0), 0);
        assert_eq!(e.text("007"), 2);
        assert_eq!(e.dict.names(), vec!["42", "u1", "007"]);
        // After the switch to text storage, integer keys still find their entries.
        assert_eq!(e.int(42), 0);
        assert_eq!(e.text("42"), 0);
        assert_eq!(e.int(43), 3);
        assert_eq!(e.text("43"), 3);
    }

    #[test]
    fn timestamps_parse_iso8601() {
        assert_eq!(parse_timestamp_ms("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp_ms("1970-01-02"), Some(86_400_000));
        // 2016-04-20 = 16911 days after the epoch
        assert_eq!(parse_timestamp_ms("2016-04-20"), Some(16_911 * 86_400_000));
        assert_eq!(
            parse_timestamp_ms("2016-04-20T01:02:03.5Z"),
            Some(16_911 * 86_400_000 + 3_723_500)
        );
        assert_eq!(
            parse_timestamp_ms("2016-04-20 02:02:03+01:00"),
            Some(16_911 * 86_400_000 + 3_723_000)
        );
        assert_eq!(
            parse_timestamp_ms("2016-04-20T00:00-0130"),
            Some(16_911 * 86_400_000 + 5_400_000)
        );
        assert_eq!(parse_timestamp_ms("2000-02-29"), Some(11_016 * 86_400_000));
        assert_eq!(parse_timestamp_ms("1969-12-31"), Some(-86_400_000));
        assert_eq!(parse_timestamp_ms("2001-02-29"), None);
        assert_eq!(parse_timestamp_ms("2016-13-01"), None);
        assert_eq!(parse_timestamp_ms("April 20, 2016"), None);
        assert_eq!(parse_timestamp_ms("2016-04-20T25:00"), None);
        assert_eq!(parse_timestamp_ms("2016-04-20Tx"), None);
        assert_eq!(parse_timestamp_ms("2016-04-20Z junk"), None);
        assert_eq!(parse_timestamp_ms(""), None);
    }

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

    #[test]
    fn detect_format_by_extension() {
        assert_eq!(
            detect_format(Path::new("a/b.parquet")).unwrap(),
            InputFormat::Parquet
        );
        assert_eq!(
            detect_format(Path::new("b.CSV.gz")).unwrap(),
            InputFormat::Csv
        );
        assert_eq!(
            detect_format(Path::new("b.jsonl")).unwrap(),
            InputFormat::Ndjson
        );
        assert_eq!(
            detect_format(Path::new("b.ndjson.gz")).unwrap(),
            InputFormat::Ndjson
        );
        assert!(matches!(
            detect_format(Path::new("b.txt")),
            Err(DataError::UnsupportedFormat(_))
        ));
        assert!(detect_format(Path::new("b.parquet.gz")).is_err());
    }

    #[test]
    fn report_summary_mentions_reasons() {
        let r = IngestReport {
            rows_read: 10,
            rows_kept: 9,
            rows_bad: 1,
            bad_rows: vec![BadRows {
                reason: BadReason::BadSize,
                message: BadReason::BadSize.as_str().into(),
                count: 1,
                examples: vec![RowRef {
                    file: "x.csv".into(),
                    row: 4,
                }],
                values: vec!["XXXXXL?".into()],
            }],
            ..Default::default()
        };
        let s = r.summary();
        assert!(
            s.contains("unparseable size: 1 row(s), e.g. x.csv row 4"),
            "{s}"
        );
        assert!(s.contains("'XXXXXL?'"), "{s}");
    }
}
