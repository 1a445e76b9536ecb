//! Per-system rules: accepted number ranges, half sizes, shoe systems, and rendering
//! canonical label text.

use crate::data::schema::SizeSystem;
use std::fmt::Write as _;

/// Jeans length range in inches (inclusive).
pub(super) const JEANS_LENGTH: (f64, f64) = (18.0, 44.0);

/// Accepted label numbers per numeric system (inclusive, in the label's own units).
pub(super) fn value_range(system: SizeSystem) -> (f64, f64) {
    match system {
        SizeSystem::Us | SizeSystem::Uk => (0.0, 40.0),
        SizeSystem::Eu | SizeSystem::Fr => (20.0, 70.0),
        SizeSystem::It => (30.0, 70.0),
        SizeSystem::Jp => (1.0, 31.0),
        SizeSystem::Jeans => (18.0, 70.0),
        SizeSystem::ShoeUs | SizeSystem::ShoeUk => (0.0, 20.0),
        SizeSystem::ShoeEu => (15.0, 55.0),
        SizeSystem::Numeric => (0.0, 500.0),
        SizeSystem::Letter | SizeSystem::OneSize => (0.0, 0.0),
    }
}

/// Numeric clothing systems whose position is value/2.
pub(super) fn is_clothing(system: SizeSystem) -> bool {
    matches!(
        system,
        SizeSystem::Us
            | SizeSystem::Uk
            | SizeSystem::Eu
            | SizeSystem::It
            | SizeSystem::Fr
            | SizeSystem::Jp
    )
}

/// Systems whose numbers may be halves.
pub(super) fn allows_halves(system: SizeSystem) -> bool {
    matches!(
        system,
        SizeSystem::ShoeUs | SizeSystem::ShoeUk | SizeSystem::ShoeEu | SizeSystem::Numeric
    )
}

/// The shoe system of a clothing region, if it has one.
pub(super) fn shoe_of(system: SizeSystem) -> Option<SizeSystem> {
    match system {
        SizeSystem::Us | SizeSystem::ShoeUs => Some(SizeSystem::ShoeUs),
        SizeSystem::Uk | SizeSystem::ShoeUk => Some(SizeSystem::ShoeUk),
        SizeSystem::Eu | SizeSystem::ShoeEu => Some(SizeSystem::ShoeEu),
        _ => None,
    }
}

/// True when `x` is a multiple of `step`.
pub(super) fn on_grid(x: f64, step: f64) -> bool {
    x.is_finite() && (x / step).fract() == 0.0
}

/// A whole or half number as text, without a trailing `.0`.
pub(super) fn fmt_num(value: f64) -> String {
    let twice = (value * 2.0).round() as i64;
    if twice % 2 == 0 {
        (twice / 2).to_string()
    } else {
        format!("{}.5", twice / 2)
    }
}

/// Canonical text of a numeric (non-letter, non-one-size) label.
pub(super) fn render(
    system: SizeSystem,
    value: f64,
    double_zero: bool,
    suffix: Option<u8>,
) -> String {
    let (prefix, shoe) = match system {
        SizeSystem::Us => ("US ", false),
        SizeSystem::Uk => ("UK ", false),
        SizeSystem::Eu => ("EU ", false),
        SizeSystem::It => ("IT ", false),
        SizeSystem::Fr => ("FR ", false),
        SizeSystem::Jp => ("JP ", false),
        SizeSystem::ShoeUs => ("US ", true),
        SizeSystem::ShoeUk => ("UK ", true),
        SizeSystem::ShoeEu => ("EU ", true),
        SizeSystem::Jeans => ("W", false),
        _ => ("", false),
    };
    let mut out = String::with_capacity(16);
    out.push_str(prefix);
    if double_zero {
        out.push_str("00");
    } else {
        out.push_str(&fmt_num(value));
    }
    if let Some(c) = suffix {
        out.push(char::from(c));
    }
    if shoe {
        out.push_str(" shoe");
    }
    out
}

/// Canonical letter text for base `S` or `L` with `x` leading X's.
pub(super) fn letter_canonical(base: u8, x: u32) -> String {
    let mut out = String::with_capacity(4);
    match x {
        0 => {}
        1 => out.push('X'),
        2 => out.push_str("XX"),
        n => {
            let _ = write!(out, "{n}X");
        }
    }
    out.push(char::from(base));
    out
}
