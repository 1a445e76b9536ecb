//! The compact key dictionary ([`Dict`]: integer keys as `i64`, other keys in one text
//! arena) and its one hash index ([`DictIndex`], `u32` slots compared against the
//! dictionary), used by ingest (which builds dictionaries through [`IndexedDict`]), the
//! fit data, the model's customer table and its compact serde form ([`compact_dict`]).

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::hash::BuildHasher;

/// `Some(v)` when `s` is the canonical decimal text of an i64 (no sign `+`, no leading
/// zeros, no `-0`), so that string ids `"42"` and integer ids `42` are the same key.
pub fn canonical_int(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.first() == Some(&b'0') && (digits.len() > 1 || digits.len() != b.len()) {
        return None;
    }
    s.parse().ok()
}

/// A dictionary of keys seen in the data: dense index -> key text.
///
/// Stored compactly: while every key is the canonical decimal text of an integer (see
/// [`canonical_int`]) the keys are kept as `i64` (8 bytes each, no text); the first other
/// key turns the dictionary into one text arena with end offsets (key bytes + 8 bytes
/// each). Keys are never deduplicated here (ingest's encoders do that). Serialises as
/// `{"names": [...]}` and compares by key text, whatever the storage.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "DictNames", into = "DictNames")]
pub struct Dict {
    keys: DictKeys,
}

#[derive(Clone, Debug)]
enum DictKeys {
    /// Every key is an integer in canonical text.
    Ints(Vec<i64>),
    /// Key `i` is `bytes[ends[i-1]..ends[i]]` (`ends[-1]` = 0), valid UTF-8.
    Text { bytes: String, ends: Vec<u64> },
}

impl Default for DictKeys {
    fn default() -> Self {
        DictKeys::Ints(Vec::new())
    }
}

/// Serde form of [`Dict`] (the historical layout).
#[derive(Serialize, Deserialize)]
struct DictNames {
    names: Vec<String>,
}

impl From<DictNames> for Dict {
    fn from(d: DictNames) -> Self {
        d.names.iter().collect()
    }
}

impl From<Dict> for DictNames {
    fn from(d: Dict) -> Self {
        DictNames { names: d.names() }
    }
}

impl PartialEq for Dict {
    fn eq(&self, other: &Self) -> bool {
        match (&self.keys, &other.keys) {
            (DictKeys::Ints(a), DictKeys::Ints(b)) => a == b,
            _ => self.len() == other.len() && self.iter().eq(other.iter()),
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for Dict {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut d = Dict::default();
        for s in iter {
            d.push(s.as_ref());
        }
        d
    }
}

impl Dict {
    /// An empty dictionary (integer storage until a non-integer key is pushed).
    pub fn new() -> Self {
        Dict::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        match &self.keys {
            DictKeys::Ints(v) => v.len(),
            DictKeys::Text { ends, .. } => ends.len(),
        }
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append a key (no deduplication); returns its index.
    pub fn push(&mut self, key: &str) -> usize {
        if let DictKeys::Ints(v) = &mut self.keys {
            if let Some(i) = canonical_int(key) {
                v.push(i);
                return v.len() - 1;
            }
            self.make_text();
        }
        self.push_text(key)
    }

    /// Append an integer key (its text is the decimal form); returns its index.
    pub fn push_int(&mut self, key: i64) -> usize {
        match &mut self.keys {
            DictKeys::Ints(v) => {
                v.push(key);
                v.len() - 1
            }
            DictKeys::Text { .. } => self.push_text(&key.to_string()),
        }
    }

    fn push_text(&mut self, key: &str) -> usize {
        if let DictKeys::Ints(_) = self.keys {
            self.make_text();
        }
        match &mut self.keys {
            DictKeys::Text { bytes, ends } => {
                bytes.push_str(key);
                ends.push(bytes.len() as u64);
                ends.len() - 1
            }
            DictKeys::Ints(v) => v.len(),
        }
    }

    /// Switch to text storage (all keys so far become text).
    pub(crate) fn make_text(&mut self) {
        if let DictKeys::Ints(v) = &self.keys {
            let mut bytes = String::with_capacity(v.len() * 8);
            let mut ends = Vec::with_capacity(v.len() + 1);
            for &i in v {
                write_int(&mut bytes, i);
                ends.push(bytes.len() as u64);
            }
            self.keys = DictKeys::Text { bytes, ends };
        }
    }

    /// The key at `i` as text (`None` when out of range). Allocates only for integer
    /// storage.
    pub fn get(&self, i: usize) -> Option<Cow<'_, str>> {
        match &self.keys {
            DictKeys::Ints(v) => v.get(i).map(|k| Cow::Owned(k.to_string())),
            DictKeys::Text { .. } => self.text_at(i).map(Cow::Borrowed),
        }
    }

    /// All keys as text, in index order.
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// All keys as owned strings, in index order (allocates one `String` per key).
    pub fn names(&self) -> Vec<String> {
        self.iter().map(Cow::into_owned).collect()
    }

    /// Index of a key by linear search (`None` when absent). O(len): for occasional
    /// lookups only; ingest keeps its own hash index.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        match &self.keys {
            DictKeys::Ints(v) => {
                let k = canonical_int(key)?;
                v.iter().position(|&x| x == k)
            }
            DictKeys::Text { .. } => (0..self.len()).find(|&i| self.text_at(i) == Some(key)),
        }
    }

    /// The integer keys, when every key is an integer (integer storage).
    pub fn as_ints(&self) -> Option<&[i64]> {
        match &self.keys {
            DictKeys::Ints(v) => Some(v),
            DictKeys::Text { .. } => None,
        }
    }

    /// The key at `i` when the dictionary stores text (`None` for integer storage or out
    /// of range).
    pub fn text_at(&self, i: usize) -> Option<&str> {
        match &self.keys {
            DictKeys::Ints(_) => None,
            DictKeys::Text { bytes, ends } => {
                let end = *ends.get(i)? as usize;
                let start = match i.checked_sub(1) {
                    Some(p) => *ends.get(p)? as usize,
                    None => 0,
                };
                bytes.get(start..end)
            }
        }
    }

    /// Heap bytes held (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        match &self.keys {
            DictKeys::Ints(v) => v.capacity() * 8,
            DictKeys::Text { bytes, ends } => bytes.capacity() + ends.capacity() * 8,
        }
    }

    /// Drop spare capacity.
    pub fn shrink_to_fit(&mut self) {
        match &mut self.keys {
            DictKeys::Ints(v) => v.shrink_to_fit(),
            DictKeys::Text { bytes, ends } => {
                bytes.shrink_to_fit();
                ends.shrink_to_fit();
            }
        }
    }
}

/// Append the decimal text of `v` to `out` without a temporary allocation.
pub fn write_int(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        pos -= 1;
        if let Some(b) = buf.get_mut(pos) {
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push('-');
    }
    for &b in buf.get(pos..).unwrap_or_default() {
        out.push(char::from(b));
    }
}

/// Index-only hash table over a [`Dict`]: the table holds `u32` indices
/// (5 bytes per slot with hashbrown's control byte, about 7 bytes per customer at its
/// load factor) and compares candidates against the dictionary, so the ids are stored
/// once. Integer dictionaries are hashed as `i64`, text dictionaries as text; a text id
/// is looked up in an integer dictionary through its canonical integer (see
/// [`canonical_int`]), so `"42"` and `42` are the same customer, as in ingest.
#[derive(Clone, Default)]
pub struct DictIndex {
    table: HashTable<u32>,
    state: FixedState,
}

impl std::fmt::Debug for DictIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DictIndex")
            .field("len", &self.table.len())
            .finish()
    }
}

impl DictIndex {
    /// Index `ids` (when an id occurs twice, the later index wins, as with a map).
    pub fn build(ids: &Dict) -> DictIndex {
        let mut ix = DictIndex {
            table: HashTable::with_capacity(ids.len()),
            state: FixedState::default(),
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

/// Text of a float id or size: integral values without a fraction (`8.0` -> `8`), others
/// in the shortest round-trip form (`8.5`).
pub fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// A dictionary being built with its index: keys get dense indices in order of first
/// appearance. Integer keys are hashed as integers while the dictionary stores integers;
/// once a non-integer key arrives the dictionary turns to text and the index is rebuilt
/// over text hashes (integer keys then go through their canonical text, so `42` and
/// `"42"` stay one key).
#[derive(Clone, Debug, Default)]
pub struct IndexedDict {
    dict: Dict,
    index: DictIndex,
    /// Scratch text of an integer key (text storage only).
    buf: String,
}

impl IndexedDict {
    /// The dictionary so far.
    pub fn dict(&self) -> &Dict {
        &self.dict
    }

    /// The dictionary, without its index.
    pub fn into_dict(self) -> Dict {
        self.dict
    }

    /// Index of integer key `v`, added if new.
    #[inline]
    pub fn int(&mut self, v: i64) -> u32 {
        let Some(keys) = self.dict.as_ints() else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            write_int(&mut buf, v);
            let i = self.text_stored(&buf);
            self.buf = buf;
            return i;
        };
        let state = &self.index.state;
        let h = state.hash_one(v);
        if let Some(&i) = self
            .index
            .table
            .find(h, |&i| keys.get(i as usize) == Some(&v))
        {
            return i;
        }
        let i = self.dict.push_int(v) as u32;
        let keys = self.dict.as_ints().unwrap_or_default();
        self.index.table.insert_unique(h, i, |&j| {
            state.hash_one(keys.get(j as usize).copied().unwrap_or_default())
        });
        i
    }

    /// Index of text key `s`, added if new.
    #[inline]
    pub fn text(&mut self, s: &str) -> u32 {
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
        let state = &self.index.state;
        let h = state.hash_one(s);
        let dict = &self.dict;
        if let Some(&i) = self
            .index
            .table
            .find(h, |&i| dict.text_at(i as usize) == Some(s))
        {
            return i;
        }
        let i = self.dict.push(s) as u32;
        let dict = &self.dict;
        self.index.table.insert_unique(h, i, |&j| {
            state.hash_one(dict.text_at(j as usize).unwrap_or_default())
        });
        i
    }

    /// Index of a float key: an integral value is the integer key (`8.0` is `8`), any
    /// other the text of its shortest round-trip form.
    #[inline]
    pub fn float(&mut self, f: f64) -> u32 {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
            self.int(f as i64)
        } else {
            self.text(&float_text(f))
        }
    }

    /// Switch the dictionary to text storage and rebuild the index over text hashes.
    pub fn switch_to_text(&mut self) {
        self.dict.make_text();
        self.index = DictIndex::build(&self.dict);
    }
}

/// Compact serde form of a [`Dict`] for `#[serde(with = "compact_dict")]`: an enum of
/// `Ints` (the `i64` keys as one sequence; postcard writes each as a zigzag varint) or
/// `Text` (the keys as a sequence of strings; postcard writes each as its length and
/// bytes). Neither direction builds a `Vec<String>`: keys are written straight from the
/// dictionary and read straight into a new one. (A `Dict`'s own serde form is
/// `{"names": [...]}`, kept for its other users.)
pub mod compact_dict {
    use super::Dict;
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

#[cfg(test)]
mod tests;
