//! Encoders: keys into compact dictionaries, size labels and outcomes parsed once per distinct value.

use super::*;

/// An [`IndexedDict`] plus a cache of text keys by Arrow view.
pub(super) struct KeyEncoder {
    pub(super) keys: IndexedDict,
    pub(super) cache: ViewCache<u32>,
}

impl Default for KeyEncoder {
    fn default() -> Self {
        KeyEncoder {
            keys: IndexedDict::default(),
            // Products number in the tens of thousands: a bigger table than the default.
            cache: ViewCache::with_bits(16),
        }
    }
}

impl KeyEncoder {
    /// Encode the kept rows of a column; nulls become [`NONE`].
    pub(super) fn encode_kept(&mut self, data: &KeyData, kept: &[bool], n_kept: usize) -> Vec<u32> {
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

    pub(super) fn check_capacity(&self, what: &'static str) -> Result<(), DataError> {
        if self.keys.dict().len() >= NONE as usize {
            return Err(DataError::Config {
                what,
                message: format!("more than {} distinct keys", NONE - 1),
            });
        }
        Ok(())
    }

    pub(super) fn into_dict(self) -> Dict {
        let mut d = self.keys.into_dict();
        d.shrink_to_fit();
        d
    }
}

pub(super) const SIZE_NULL: u32 = u32::MAX;

pub(super) type FastMap<K, V> = HashMap<K, V, FixedState>;

/// Size labels: each distinct (raw label, system) pair is parsed once.
#[derive(Default)]
pub(super) struct SizeEncoder {
    /// System text -> code (1-based; 0 = no system).
    pub(super) system_codes: HashMap<String, u32>,
    /// System text by code - 1.
    pub(super) system_names: Vec<String>,
    /// (integer label, system code) -> parsed id.
    pub(super) by_int: FastMap<(i64, u32), u32>,
    /// (float bits, system code) -> parsed id.
    pub(super) by_float: FastMap<(u64, u32), u32>,
    /// Per system code: label text -> parsed id.
    pub(super) by_text: Vec<HashMap<String, u32, FixedState>>,
    /// Per system code: label cell -> parsed id.
    pub(super) by_view: Vec<ViewCache<u32>>,
    /// System text by Arrow view -> code.
    pub(super) system_by_view: ViewCache<u32>,
    /// Parsed id -> distinct label index, `None` when unparseable.
    pub(super) parsed: Vec<Option<u32>>,
    /// Parsed id -> the raw text (for reporting bad labels).
    pub(super) parsed_text: Vec<String>,
    /// Distinct labels by (system, canonical text).
    pub(super) uniq_map: HashMap<(SizeSystem, String), u32>,
    pub(super) uniq: Vec<SizeLabel>,
    /// Distinct label index -> index in `Events.sizes` (NONE until a kept row uses it).
    pub(super) uniq_event: Vec<u32>,
    /// `Events.sizes`, in order of first kept use.
    pub(super) event_sizes: Vec<SizeLabel>,
}

impl SizeEncoder {
    pub(super) fn system_code(&mut self, s: Option<&str>) -> u32 {
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
    pub(super) fn system_codes(&mut self, ca: &StringChunked) -> Vec<u32> {
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
    pub(super) fn text_id(&mut self, v: &str, s: u32) -> u32 {
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

    pub(super) fn parse_new(&mut self, text: String, sys: u32) -> u32 {
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
    pub(super) fn ids(&mut self, data: &KeyData, sys: &[u32], skip: &[bool]) -> Vec<u32> {
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

    pub(super) fn is_bad(&self, id: u32) -> bool {
        !matches!(self.parsed.get(id as usize), Some(Some(_)))
    }

    /// The `Events.sizes` index of a good parsed id (assigned on first use).
    pub(super) fn event_index(&mut self, id: u32) -> u32 {
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

pub(super) const OUT_NULL: u8 = 255;
pub(super) const OUT_UNKNOWN: u8 = 254;

/// Outcome values: each distinct raw value classified once.
pub(super) struct OutcomeEncoder {
    pub(super) map: OutcomeMap,
    /// Codes of raw values by Arrow view.
    pub(super) by_view: ViewCache<u8>,
    pub(super) small: Vec<(String, u8)>,
    pub(super) big: HashMap<String, u8, FixedState>,
}

impl OutcomeEncoder {
    pub(super) fn new(map: OutcomeMap) -> Self {
        OutcomeEncoder {
            map,
            by_view: ViewCache::default(),
            small: Vec::new(),
            big: HashMap::default(),
        }
    }

    #[inline]
    pub(super) fn code(&mut self, raw: &str) -> u8 {
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

    pub(super) fn codes(&mut self, ca: &StringChunked, skip: &[bool]) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoder_unifies_int_and_text_ids() {
        let mut e = IndexedDict::default();
        assert_eq!(e.int(42), 0);
        assert_eq!(e.text("42"), 0);
        assert_eq!(e.text("u1"), 1);
        assert_eq!(e.text("u1"), 1);
        assert_eq!(e.float(42.0), 0);
        assert_eq!(e.text("007"), 2);
        assert_eq!(e.dict().names(), vec!["42", "u1", "007"]);
        // After the switch to text storage, integer keys still find their entries.
        assert_eq!(e.int(42), 0);
        assert_eq!(e.text("42"), 0);
        assert_eq!(e.int(43), 3);
        assert_eq!(e.text("43"), 3);
    }
}
