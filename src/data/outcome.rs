//! Outcome vocabularies: mapping retailers' raw outcome values onto small / fit / large / other.
//!
//! Raw values are normalised before lookup: surrounding whitespace is trimmed, letters are
//! lower-cased, and every run of `-`, `_` and whitespace counts as one `_`, so `too small`,
//! `too-small`, `TOO_SMALL` and ` Too  Small ` are the same value.

use super::schema::Outcome;
use super::DataError;
use std::collections::HashMap;

/// The standard vocabulary, already normalised.
const STANDARD: [(&[&str], Outcome); 4] = [
    (
        &[
            "small",
            "too_small",
            "returned_too_small",
            "runs_small",
            "too_tight",
            "tight",
        ],
        Outcome::Small,
    ),
    (
        &[
            "fit",
            "kept",
            "true_to_size",
            "fits",
            "perfect",
            "ok",
            "keep",
        ],
        Outcome::Fit,
    ),
    (
        &[
            "large",
            "too_large",
            "too_big",
            "returned_too_large",
            "too_loose",
            "loose",
            "big",
            "runs_large",
        ],
        Outcome::Large,
    ),
    (
        &[
            "returned_other",
            "other",
            "damaged",
            "changed_mind",
            "defective",
            "wrong_item",
            "not_as_described",
            "late_delivery",
            "quality",
            "returned",
            "style",
            "color",
        ],
        Outcome::Other,
    ),
];

/// Longest raw value normalised on the stack in [`OutcomeMap::classify`]; longer or
/// non-ASCII values take a slower, allocating path.
const STACK_LEN: usize = 64;

/// Maps raw outcome strings to [`Outcome`].
#[derive(Clone, Debug)]
pub struct OutcomeMap {
    map: HashMap<String, Outcome>,
}

impl Default for OutcomeMap {
    /// The standard vocabulary ([`OutcomeMap::standard`]).
    fn default() -> Self {
        Self::standard()
    }
}

impl OutcomeMap {
    /// The standard vocabulary:
    /// * small: `small`, `too_small`, `returned_too_small`, `runs_small`, `too_tight`, `tight`;
    /// * fit: `fit`, `kept`, `true_to_size`, `fits`, `perfect`, `ok`, `keep`;
    /// * large: `large`, `too_large`, `too_big`, `returned_too_large`, `too_loose`, `loose`,
    ///   `big`, `runs_large`;
    /// * other: `returned_other`, `other`, `damaged`, `changed_mind`, `defective`,
    ///   `wrong_item`, `not_as_described`, `late_delivery`, `quality`, `returned`, `style`,
    ///   `color`.
    pub fn standard() -> Self {
        let map = STANDARD
            .iter()
            .flat_map(|(words, outcome)| words.iter().map(|w| ((*w).to_string(), *outcome)))
            .collect();
        OutcomeMap { map }
    }

    /// Extend (or re-map) with `raw=class,raw=class` (the `--outcome-map` option).
    ///
    /// `raw` is normalised like every looked-up value; `class` is `small`, `fit`, `large`,
    /// `other` or any word of the standard vocabulary (`too_small`, `kept`, `returned`, ...).
    /// Later entries win over earlier ones and over the standard vocabulary. Empty entries
    /// (`a=fit,,b=small,`) are skipped; raw values cannot contain `,` or `=`.
    ///
    /// Errors: [`DataError::Config`] with `what = "--outcome-map"`, naming the bad entry and
    /// the expected form.
    pub fn with_overrides(mut self, spec: &str) -> Result<Self, DataError> {
        let standard = Self::standard();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: String| {
                DataError::Config {
                what: "--outcome-map",
                message: format!(
                    "bad entry '{entry}': {why}; expected raw=class[,raw=class...] with class one of \
small, fit, large, other (or a standard synonym such as too_small, kept, too_large, returned)"
                ),
            }
            };
            let Some((raw, class)) = entry.split_once('=') else {
                return Err(bad("missing '='".to_string()));
            };
            if class.contains('=') {
                return Err(bad("more than one '='".to_string()));
            }
            let key = normalise(raw);
            if key.is_empty() {
                return Err(bad("empty raw value".to_string()));
            }
            let class = class.trim();
            let outcome = standard
                .classify(class)
                .ok_or_else(|| bad(format!("unknown class '{class}'")))?;
            self.map.insert(key, outcome);
        }
        Ok(self)
    }

    /// Classify one raw value (normalised first); `None` when unknown.
    pub fn classify(&self, raw: &str) -> Option<Outcome> {
        let mut buf = [0u8; STACK_LEN];
        match normalise_ascii(raw, &mut buf) {
            Some(key) => self.map.get(key).copied(),
            None => self.map.get(normalise(raw).as_str()).copied(),
        }
    }

    /// Every known (normalised) raw value with its outcome, sorted by value.
    pub fn entries(&self) -> Vec<(&str, Outcome)> {
        let mut out: Vec<(&str, Outcome)> =
            self.map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// True for the characters that separate words in a raw value.
fn is_sep(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// Normalise a raw value: trim, lower-case, runs of separators become one `_`.
fn normalise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending = false;
    for c in raw.trim().chars() {
        if is_sep(c) {
            pending = !out.is_empty();
            continue;
        }
        if pending {
            out.push('_');
            pending = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// [`normalise`] into a stack buffer for short ASCII values; `None` otherwise.
fn normalise_ascii<'b>(raw: &str, buf: &'b mut [u8; STACK_LEN]) -> Option<&'b str> {
    let raw = raw.trim();
    if !raw.is_ascii() {
        return None;
    }
    let mut n = 0;
    let mut pending = false;
    for b in raw.bytes() {
        if is_sep(char::from(b)) {
            pending = n > 0;
            continue;
        }
        if pending {
            *buf.get_mut(n)? = b'_';
            n += 1;
            pending = false;
        }
        *buf.get_mut(n)? = b.to_ascii_lowercase();
        n += 1;
    }
    std::str::from_utf8(buf.get(..n)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_group(map: &OutcomeMap, words: &[&str], want: Outcome) {
        for w in words {
            assert_eq!(map.classify(w), Some(want), "{w}");
        }
    }

    #[test]
    fn standard_groups() {
        let m = OutcomeMap::standard();
        assert_group(
            &m,
            &[
                "small",
                "too_small",
                "returned_too_small",
                "runs_small",
                "too_tight",
                "tight",
            ],
            Outcome::Small,
        );
        assert_group(
            &m,
            &[
                "fit",
                "kept",
                "true_to_size",
                "fits",
                "perfect",
                "ok",
                "keep",
            ],
            Outcome::Fit,
        );
        assert_group(
            &m,
            &[
                "large",
                "too_large",
                "too_big",
                "returned_too_large",
                "too_loose",
                "loose",
                "big",
                "runs_large",
            ],
            Outcome::Large,
        );
        assert_group(
            &m,
            &[
                "returned_other",
                "other",
                "damaged",
                "changed_mind",
                "defective",
                "wrong_item",
                "not_as_described",
                "late_delivery",
                "quality",
                "returned",
                "style",
                "color",
            ],
            Outcome::Other,
        );
        assert_eq!(m.entries().len(), 6 + 7 + 8 + 12);
    }

    #[test]
    fn normalisation() {
        let m = OutcomeMap::standard();
        for raw in [
            "too small",
            "too-small",
            "TOO_SMALL",
            "  Too  Small ",
            "too - small",
            "Too\tsmall",
        ] {
            assert_eq!(m.classify(raw), Some(Outcome::Small), "{raw:?}");
        }
        assert_eq!(m.classify("True To Size"), Some(Outcome::Fit));
        assert_eq!(m.classify("NOT-AS-DESCRIBED"), Some(Outcome::Other));
        assert_eq!(normalise("  A--b  c_ "), "a_b_c");
        let mut buf = [0u8; STACK_LEN];
        assert_eq!(normalise_ascii("  A--b  c_ ", &mut buf), Some("a_b_c"));
        // Non-ASCII and long values take the allocating path and still work.
        assert_eq!(normalise("ÄRGER"), "ärger");
        let long = format!("{}small", "too ".repeat(40));
        assert_eq!(m.classify(&long), None);
    }

    #[test]
    fn unknown_values() {
        let m = OutcomeMap::standard();
        for raw in [
            "", "  ", "-", "banana", "too", "smallish", "ärger", "fit fit",
        ] {
            assert_eq!(m.classify(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn overrides_add_and_remap() {
        let m = OutcomeMap::standard()
            .with_overrides("zu klein=small, zu groß=too_large ,passt=kept,returned=too big,")
            .unwrap();
        assert_eq!(m.classify("zu klein"), Some(Outcome::Small));
        assert_eq!(m.classify("ZU-KLEIN"), Some(Outcome::Small));
        assert_eq!(m.classify("zu groß"), Some(Outcome::Large));
        assert_eq!(m.classify("Zu Groß"), Some(Outcome::Large));
        assert_eq!(m.classify("passt"), Some(Outcome::Fit));
        // Re-mapped from Other to Large.
        assert_eq!(m.classify("returned"), Some(Outcome::Large));
        // Untouched entries stay.
        assert_eq!(m.classify("damaged"), Some(Outcome::Other));
        // Later entries win; classes are looked up in the standard vocabulary.
        let m = OutcomeMap::standard()
            .with_overrides("x=small,x=other,ok=large,y=ok")
            .unwrap();
        assert_eq!(m.classify("x"), Some(Outcome::Other));
        assert_eq!(m.classify("ok"), Some(Outcome::Large));
        assert_eq!(m.classify("y"), Some(Outcome::Fit));
        // Empty spec: unchanged.
        let m = OutcomeMap::standard().with_overrides("  ").unwrap();
        assert_eq!(m.entries().len(), OutcomeMap::standard().entries().len());
    }

    #[test]
    fn bad_specs() {
        for (spec, needle) in [
            ("nosign", "nosign"),
            ("a=small,b", "'b'"),
            ("a=huge", "unknown class 'huge'"),
            ("=small", "empty raw value"),
            (" - =small", "empty raw value"),
            ("a=b=small", "more than one"),
            ("a=", "unknown class ''"),
        ] {
            match OutcomeMap::standard().with_overrides(spec) {
                Err(DataError::Config { what, message }) => {
                    assert_eq!(what, "--outcome-map");
                    assert!(message.contains(needle), "{spec}: {message}");
                    assert!(message.contains("raw=class"), "{spec}: {message}");
                }
                other => panic!("{spec}: expected Config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn default_is_standard() {
        assert_eq!(
            OutcomeMap::default().entries(),
            OutcomeMap::standard().entries()
        );
    }
}
