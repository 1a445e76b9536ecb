//! Fictional, pronounceable brand names made deterministically from syllables.

use rand::Rng;
use std::collections::HashSet;

/// Opening syllables (capitalised later).
const HEADS: [&str; 24] = [
    "nor", "al", "lu", "ve", "sel", "tor", "ka", "ost", "bre", "il", "mar", "fen", "quel", "dal",
    "rho", "sav", "ew", "tam", "yr", "bel", "cor", "hal", "oro", "wil",
];
/// Middle and closing syllables.
const TAILS: [&str; 24] = [
    "vik", "ba", "mira", "den", "ra", "lin", "vo", "ette", "sund", "ora", "ith", "wyn", "aro",
    "mund", "ley", "tova", "nis", "quin", "rel", "bo", "stad", "ine", "ska", "vel",
];
/// Optional suffixes that make names sound like labels.
const SUFFIXES: [&str; 8] = ["", "", "", "", " & Co", " Studio", " Atelier", " Supply"];
/// Real fashion brands a syllable combination could spell by accident; never emitted.
const BLOCKED: [&str; 32] = [
    "zara", "mango", "gap", "levi", "nike", "puma", "gucci", "prada", "fendi", "dior", "hugo",
    "boss", "diesel", "guess", "vans", "lee", "uniqlo", "muji", "esprit", "armani", "kenzo",
    "lacoste", "marni", "loewe", "celine", "balmain", "arket", "monki", "only", "vila", "selected",
    "ganni",
];

/// Capitalise the first letter.
fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `n` distinct fictional brand names drawn with `rng`. Names never contain commas or
/// quotes (so they need no CSV quoting) and avoid a list of real brand names.
pub(crate) fn brand_names<R: Rng>(n: usize, rng: &mut R) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut seen = HashSet::new();
    let mut attempts = 0usize;
    while out.len() < n {
        attempts += 1;
        let head = HEADS[rng.gen_range(0..HEADS.len())];
        let tail = TAILS[rng.gen_range(0..TAILS.len())];
        let mut stem = format!("{head}{tail}");
        if rng.gen_bool(0.2) {
            stem.push_str(TAILS[rng.gen_range(0..TAILS.len())]);
        }
        let lower = stem.to_lowercase();
        if BLOCKED.iter().any(|b| lower == *b) {
            continue;
        }
        let suffix = SUFFIXES[rng.gen_range(0..SUFFIXES.len())];
        let mut name = format!("{}{suffix}", capitalise(&stem));
        // After many collisions (thousands of brands), number the names.
        if attempts > 20 * n.max(16) {
            name = format!("{name} {}", out.len() + 1);
        }
        if seen.insert(name.to_lowercase()) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn names_are_distinct_clean_and_deterministic() {
        let a = brand_names(500, &mut ChaCha8Rng::seed_from_u64(3));
        let b = brand_names(500, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        let set: HashSet<_> = a.iter().map(|s| s.to_lowercase()).collect();
        assert_eq!(set.len(), 500);
        for name in &a {
            assert!(!name.contains(',') && !name.contains('"'), "{name}");
            assert!(
                name.chars().next().is_some_and(|c| c.is_uppercase()),
                "{name}"
            );
            let stem = name.split(' ').next().unwrap_or("").to_lowercase();
            assert!(!BLOCKED.contains(&stem.as_str()), "{name}");
        }
        assert_eq!(capitalise("norvik"), "Norvik");
    }
}
