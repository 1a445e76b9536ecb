//! Column views: string cells read through their Arrow views, primitive cells, and a cache of recent views.

use super::*;

/// A key-like column cast to one of three physical forms.
pub(super) enum KeyData {
    Int(Int64Chunked),
    Float(Float64Chunked),
    Str(StringChunked),
}

/// The Arrow array behind a [`StringChunked`] chunk.
pub(super) type StrArray = <StringType as PolarsDataType>::Array;

/// Source of unique ids for string array chunks (see [`StrCell::chunk`]).
pub(super) static STR_CHUNK_IDS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(1);

/// One non-null cell of a string column: its 16-byte Arrow view plus where to find the
/// text. An inline view (text of at most 12 bytes) is the text itself, so it is an exact key
/// anywhere; a longer value's view (length, prefix, buffer, offset) is an exact key only
/// within its array chunk, where equal views mean the same bytes (dictionary-decoded
/// Parquet pages reuse one copy of each value).
#[derive(Clone, Copy)]
pub(super) struct StrCell<'a> {
    pub(super) view: u128,
    pub(super) chunk: u64,
    pub(super) arr: &'a StrArray,
    pub(super) j: usize,
}

impl<'a> StrCell<'a> {
    #[inline]
    pub(super) fn text(self) -> &'a str {
        self.arr.value(self.j)
    }
    #[inline]
    pub(super) fn is_inline(self) -> bool {
        (self.view as u32) <= 12
    }
}

/// Visit the rows of a string column in order: `f(None)` for a null, else the cell.
#[inline]
pub(super) fn for_each_str<'a>(ca: &'a StringChunked, mut f: impl FnMut(Option<StrCell<'a>>)) {
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
pub(super) fn for_each_prim<T>(ca: &ChunkedArray<T>, mut f: impl FnMut(Option<T::Native>))
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
pub(super) const VIEW_CACHE_BITS: u32 = 12;

/// Codes of string cells keyed by their Arrow view (see [`StrCell`]): a direct-mapped
/// table, so a repeated value costs one multiply and one 16-byte compare, no hashing or
/// comparing of the text. Entries for long (non-inline) values are valid only within the
/// array chunk that made them. Turns itself off (and frees its slots) after a batch in which
/// most lookups missed (high-cardinality columns such as customer ids), since each miss
/// costs a little on top of the real lookup.
pub(super) struct ViewCache<V> {
    pub(super) bits: u32,
    pub(super) keys: Vec<u128>,
    pub(super) vals: Vec<V>,
    /// 0 for inline entries, the chunk generation for long ones, `u32::MAX` when empty.
    pub(super) gens: Vec<u32>,
    pub(super) chunk: u64,
    pub(super) gen: u32,
    pub(super) on: bool,
    pub(super) lookups: u64,
    pub(super) hits: u64,
}

impl<V: Copy + Default> Default for ViewCache<V> {
    fn default() -> Self {
        ViewCache::with_bits(VIEW_CACHE_BITS)
    }
}

impl<V: Copy + Default> ViewCache<V> {
    /// A cache of `2^bits` slots (allocated on first use).
    pub(super) fn with_bits(bits: u32) -> Self {
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
    pub(super) fn get_or(&mut self, cell: StrCell<'_>, make: impl FnOnce(&str) -> V) -> V {
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
    pub(super) fn end_batch(&mut self) {
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

pub(super) fn is_text_like(dt: &DataType) -> bool {
    dt.is_string() || dt.is_categorical() || dt.is_enum() || dt.is_bool() || dt.is_null()
}

pub(super) fn key_type_ok(dt: &DataType) -> bool {
    dt.is_integer() || dt.is_float() || is_text_like(dt)
}

impl KeyData {
    pub(super) fn from_column(c: &Column) -> Result<KeyData, PolarsError> {
        let dt = c.dtype();
        if dt.is_integer() {
            Ok(KeyData::Int(c.cast(&DataType::Int64)?.i64()?.clone()))
        } else if dt.is_float() {
            Ok(KeyData::Float(c.cast(&DataType::Float64)?.f64()?.clone()))
        } else {
            Ok(KeyData::Str(c.cast(&DataType::String)?.str()?.clone()))
        }
    }

    pub(super) fn null_mask(&self) -> Vec<bool> {
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

pub(super) fn text_column(c: &Column) -> Result<StringChunked, PolarsError> {
    Ok(c.cast(&DataType::String)?.str()?.clone())
}
