//! Property tests for size-label parsing: ordering, `label_for` / `parse_size` round
//! trips for every system, canonical idempotence, and no panics on arbitrary input.

use proptest::prelude::*;
use runsize::data::labels::{label_for, pos_range};
use runsize::data::{parse_size, SizeLabel, SizeSystem};
use std::cmp::Ordering;

fn parse(label: &str) -> SizeLabel {
    parse_size(label, None).unwrap_or_else(|e| panic!("{label}: {e}"))
}

/// Every representable position of a system (plus `US 00`).
fn positions(system: SizeSystem) -> Vec<f64> {
    let r = pos_range(system);
    let n = ((r.max - r.min) / r.step).round() as usize;
    let mut out: Vec<f64> = (0..=n).map(|k| r.min + k as f64 * r.step).collect();
    if system == SizeSystem::Us {
        out.insert(0, -1.0);
    }
    out
}

/// Pieces that label-like strings are glued together from.
const TOKENS: [&str; 30] = [
    "US", "uk", "EU", "de", "IT", "fr", "JP", "shoe", "Size ", " ", " ", "8", "9", "10", "38",
    "42", ".5", " 1/2", "½", "00", "32", "x", "W", "L", "P", "X", "S", "M", "extra", "large",
];

fn system_strategy() -> impl Strategy<Value = SizeSystem> {
    prop::sample::select(SizeSystem::ALL.to_vec())
}

#[test]
fn fixed_orderings() {
    assert_eq!(parse("M").cmp_order(&parse("L")), Ordering::Less);
    assert_eq!(parse("XS").cmp_order(&parse("S")), Ordering::Less);
    assert_eq!(parse("30x32").cmp_order(&parse("32x32")), Ordering::Less);
    assert_eq!(parse("32x30").cmp_order(&parse("32x32")), Ordering::Less);
    assert_eq!(
        parse("US 8.5 shoe").cmp_order(&parse("US 9 shoe")),
        Ordering::Less
    );
    assert_eq!(parse("US 00").cmp_order(&parse("US 0")), Ordering::Less);
    assert_eq!(parse("XXL").cmp_order(&parse("2XL")), Ordering::Equal);
}

#[test]
fn every_position_round_trips() {
    for system in SizeSystem::ALL {
        let r = pos_range(system);
        let lengths: Vec<Option<f64>> = match r.secondary {
            Some((lo, hi)) => std::iter::once(None)
                .chain((lo as i32..=hi as i32).map(|l| Some(f64::from(l))))
                .collect(),
            None => vec![None],
        };
        for pos in positions(system) {
            for &sec in &lengths {
                let text = label_for(system, pos, sec)
                    .unwrap_or_else(|| panic!("{system:?} {pos} {sec:?} not renderable"));
                for column in [None, Some(system.as_str())] {
                    let back = parse_size(&text, column)
                        .unwrap_or_else(|e| panic!("{text} [{column:?}]: {e}"));
                    assert_eq!(back.system, system, "{text}");
                    assert_eq!(back.pos, pos, "{text}");
                    assert_eq!(back.secondary, sec, "{text}");
                    assert_eq!(back.canonical, text, "{text}");
                }
            }
        }
    }
}

#[test]
fn canonical_texts_are_unique_per_system() {
    for system in SizeSystem::ALL {
        let texts: Vec<String> = positions(system)
            .into_iter()
            .filter_map(|p| label_for(system, p, None))
            .collect();
        let mut sorted = texts.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), texts.len(), "{system:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>(), col in proptest::option::of(any::<String>())) {
        let _ = parse_size(&s, col.as_deref());
    }

    #[test]
    fn label_like_strings_never_panic_and_canonical_is_a_fixpoint(
        s in "[0-9xXwWlLsSmMuUeEpPtT /.,½-]{0,14}",
        col in proptest::option::of(system_strategy()),
    ) {
        let column = col.map(|c| c.as_str());
        if let Ok(label) = parse_size(&s, column) {
            let again = parse_size(&label.canonical, None)
                .map_err(|e| TestCaseError::fail(format!("{s:?} -> {:?}: {e}", label.canonical)))?;
            prop_assert_eq!(&again, &label);
            let with_col = parse_size(&label.canonical, column)
                .map_err(|e| TestCaseError::fail(format!("{s:?} -> {:?}: {e}", label.canonical)))?;
            prop_assert_eq!(&with_col, &label);
        }
    }

    #[test]
    fn token_soup_canonical_is_a_fixpoint(
        parts in prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 1..5),
        col in proptest::option::of(system_strategy()),
    ) {
        let s = parts.concat();
        let column = col.map(|c| c.as_str());
        if let Ok(label) = parse_size(&s, column) {
            prop_assert_eq!(parse_size(&label.canonical, None).ok(), Some(label.clone()), "{:?}", s);
            prop_assert_eq!(parse_size(&label.canonical, column).ok(), Some(label), "{:?}", s);
        }
    }

    #[test]
    fn us_n_below_us_n_plus_2(n in 0u32..=38) {
        let a = parse(&format!("US {n}"));
        let b = parse(&format!("US {}", n + 2));
        prop_assert_eq!(a.cmp_order(&b), Ordering::Less);
        prop_assert_eq!(b.pos - a.pos, 1.0);
    }

    #[test]
    fn shoe_halves_order(
        system in prop::sample::select(vec![SizeSystem::ShoeUs, SizeSystem::ShoeUk, SizeSystem::ShoeEu]),
        k in 0usize..60,
    ) {
        let all = positions(system);
        prop_assume!(k + 1 < all.len());
        let (x, y) = (all[k], all[k + 1]);
        let a = parse_size(&format!("{x}"), Some(system.as_str())).unwrap();
        let b = parse_size(&format!("{y}"), Some(system.as_str())).unwrap();
        prop_assert_eq!(a.cmp_order(&b), Ordering::Less);
        prop_assert_eq!(b.pos - a.pos, 0.5);
    }

    #[test]
    fn jeans_order_is_waist_then_length(w1 in 18u32..=70, l1 in 18u32..=44, w2 in 18u32..=70, l2 in 18u32..=44) {
        let a = parse(&format!("W{w1} L{l1}"));
        let b = parse(&format!("{w2}/{l2}"));
        prop_assert_eq!(a.cmp_order(&b), (w1, l1).cmp(&(w2, l2)));
    }

    #[test]
    fn letter_order_follows_position(i in -5i32..=6, j in -5i32..=6) {
        let a = parse(&label_for(SizeSystem::Letter, f64::from(i), None).unwrap());
        let b = parse(&label_for(SizeSystem::Letter, f64::from(j), None).unwrap());
        prop_assert_eq!(a.cmp_order(&b), i.cmp(&j));
    }

    #[test]
    fn letters_are_case_insensitive(i in -5i32..=6, mask in any::<u16>()) {
        let canon = label_for(SizeSystem::Letter, f64::from(i), None).unwrap();
        let mixed: String = canon
            .chars()
            .enumerate()
            .map(|(k, c)| if mask >> (k % 16) & 1 == 1 { c.to_ascii_lowercase() } else { c })
            .collect();
        prop_assert_eq!(parse(&mixed), parse(&canon));
    }

    #[test]
    fn round_trip_random_positions(system in system_strategy(), k in 0usize..2000, len in 18u32..=44, with_len in any::<bool>()) {
        let all = positions(system);
        let pos = all[k % all.len()];
        let sec = (system == SizeSystem::Jeans && with_len).then_some(f64::from(len));
        let text = label_for(system, pos, sec).unwrap();
        let back = parse_size(&text, None).unwrap();
        prop_assert_eq!(back.system, system);
        prop_assert_eq!(back.pos, pos);
        prop_assert_eq!(back.secondary, sec);
        prop_assert_eq!(back.canonical, text);
    }
}
