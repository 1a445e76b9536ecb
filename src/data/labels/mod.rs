//! Size labels: parsing every supported size system into an ordered position, and
//! rendering canonical labels back from positions ([`label_for`] is the exact inverse of
//! [`parse_size`] on canonical text).
//!
//! # Accepted label forms
//!
//! Labels are matched case-insensitively; runs of whitespace (including non-breaking
//! spaces) count as one space. The *shape* of a label is tried in this order, and the
//! first shape that matches decides the system:
//!
//! 1. **One size**: `one size`, `onesize`, `one-size`, `OS`, `O/S`, `OSFA`, `OSFM`,
//!    `one size fits all`, `one size fits most`, `uni`, `TU` → [`SizeSystem::OneSize`],
//!    position 0, canonical `ONE SIZE`.
//! 2. **Letter**: `4XS`/`XXXXS` = -5, `3XS`/`XXXS` = -4, `XXS`/`2XS` = -3, `XS` = -2,
//!    `S` = -1, `M` = 0, `L` = 1, `XL` = 2, `XXL`/`2XL` = 3, `3XL`/`XXXL` = 4,
//!    `4XL`/`XXXXL` = 5, `5XL`/`XXXXXL` = 6; the words `Small`, `Medium`/`Med`, `Large`,
//!    `Extra`/`X-` (`X-Large`, `Extra Small`, `Extra Extra Large`) and the abbreviations
//!    `SM`, `MD`, `LG`; plus sizes `1X` = 2 .. `5X` = 6 (canonical `1X`..`5X`, so `1X`
//!    and `XL` share a position but not a canonical text). Canonical letter text is
//!    `4XS`, `3XS`, `XXS`, `XS`, `S`, `M`, `L`, `XL`, `XXL`, `3XL`, `4XL`, `5XL`.
//! 3. **Jeans** (whatever the system column says): `32x30`, `32 X 30`, `32/30`,
//!    `W32 L30`, `W32L30`, `32W 30L`, and waist only `W32` → [`SizeSystem::Jeans`],
//!    position = waist (18..=70), secondary = length (18..=44). Canonical `32x30` / `W32`.
//! 4. **Numbers**: `[system] [shoe] number [suffix] [shoe]`, optionally led by `Size`:
//!    * the number is whole or a half: `8`, `8.5`, `8,5`, `8½`, `8 ½`, `8 1/2`, `8-1/2`
//!      (other fractions such as `42 2/3` are rejected);
//!    * the system prefix is one of `US`, `UK` (or `GB`), `EU` (or `DE`), `IT`, `FR`,
//!      `JP`, written `US 8` or `US8`;
//!    * the word `shoe`/`shoes` (or a shoe system in the column) makes it a shoe size:
//!      `US shoe 8.5`, `US 8.5 shoe`, `EU 42 shoe`; shoes exist for US, UK and EU only;
//!    * the suffix (clothing and bare numbers only) is `P`/`Petite`, `T`/`Tall` or
//!      `W`/`Women`/`Womens`/`Woman` and is kept in the canonical text (`US 8P`) but does
//!      not move the position.
//!
//! # How the system column and the label combine
//!
//! * The column (`size_system`, parsed by [`parse_system`]) only decides how a number
//!   without a system prefix is read: column `eu` + `38` → EU 38; column `jeans` + `32`
//!   → jeans `W32`; no column → [`SizeSystem::Numeric`].
//! * A prefix in the label wins over the column: column `uk` + `US 8` → US 8. A shoe column
//!   still makes a prefixed label a shoe size: column `shoe_eu` + `US 8.5` → US shoe 8.5.
//! * One-size, letter and jeans shapes are recognised by shape whatever the column says.
//! * A number under column `letter` or `one_size` is an error, as is an unknown system
//!   name in the column.
//!
//! # Positions and canonical text per numeric system
//!
//! | system    | numbers accepted        | position        | canonical      |
//! |-----------|-------------------------|-----------------|----------------|
//! | `us`      | `00`, 0..=40, whole     | value/2 (00=-1) | `US 8`, `US 00`, `US 8P` |
//! | `uk`      | 0..=40, whole           | value/2         | `UK 10`        |
//! | `eu`      | 20..=70, whole          | value/2         | `EU 38`        |
//! | `it`      | 30..=70, whole          | value/2         | `IT 42`        |
//! | `fr`      | 20..=70, whole          | value/2         | `FR 40`        |
//! | `jp`      | 1..=31, whole           | value/2         | `JP 9`         |
//! | `shoe_us` | 0..=20, halves          | value           | `US 8.5 shoe`  |
//! | `shoe_uk` | 0..=20, halves          | value           | `UK 8 shoe`    |
//! | `shoe_eu` | 15..=55, halves         | value           | `EU 42.5 shoe` |
//! | `numeric` | 0..=500, halves         | value           | `8`, `8.5`, `8P` |
//!
//! Unsupported on purpose: combined sizes (`S/M`), shoe widths (`9W`), numbers outside the
//! ranges above, negative numbers, exponents.

mod letter;
mod normal;
mod number;
mod system;

use self::letter::{is_one_size, parse_letter};
use self::normal::Norm;
use self::number::{parse_jeans, parse_number};
use self::system::{
    allows_halves, is_clothing, letter_canonical, on_grid, render, value_range, JEANS_LENGTH,
};
use super::schema::{SizeLabel, SizeSystem};

/// Longest label accepted, in bytes after whitespace collapsing.
pub(super) const MAX_LEN: usize = 64;
/// Byte standing in for `½` in a normalised label (control bytes are rejected on input,
/// so this cannot collide with user text).
pub(super) const HALF: u8 = 0x01;
/// Accepted names of the `size_system` column, for error messages.
pub(super) const SYSTEM_NAMES: &str =
    "letter (alpha, letters, intl), us, uk (gb), eu (de), it, fr, jp, jeans, \
shoe_us (us_shoe, shoes_us), shoe_uk (uk_shoe, shoes_uk), shoe_eu (eu_shoe, shoes_eu), \
one_size (onesize), numeric (num)";
/// What a label may look like, for error messages.
pub(super) const EXPECTED: &str =
    "expected a letter size (XS, M, XXL, 3XL, 1X), one size (OS), jeans \
(32x30, W32 L30, W32), a number (8, 8.5) or a number with a system (US 8, UK 10, EU 38, \
IT 42, FR 40, JP 9, US 8.5 shoe, EU 42 shoe)";
/// Reason for fractions other than halves.
pub(super) const HALVES_ONLY: &str = "only whole and half sizes are supported (8, 8.5, 8½, 8 1/2)";

/// A size label that could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot parse size label '{label}': {reason}")]
pub struct LabelError {
    /// The label as given.
    pub label: String,
    /// Why it was rejected and what was expected.
    pub reason: String,
}

impl LabelError {
    pub(super) fn new(label: &str, reason: impl Into<String>) -> Self {
        LabelError {
            label: label.to_string(),
            reason: reason.into(),
        }
    }
}

/// The positions a system can represent: [`label_for`] renders every `min + k * step`
/// up to `max` (and, for jeans, every whole length in `secondary`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PosRange {
    /// Lowest position (US: 0; `US 00` at position -1 is representable too).
    pub min: f64,
    /// Highest position.
    pub max: f64,
    /// Distance between neighbouring positions.
    pub step: f64,
    /// Range of the secondary dimension (jeans length, whole inches), `None` for other systems.
    pub secondary: Option<(f64, f64)>,
}

/// The range of positions [`label_for`] can render for `system`.
pub fn pos_range(system: SizeSystem) -> PosRange {
    let (min, max, step) = match system {
        SizeSystem::Letter => (-5.0, 6.0, 1.0),
        SizeSystem::OneSize => (0.0, 0.0, 1.0),
        SizeSystem::Jeans => {
            let (lo, hi) = value_range(system);
            (lo, hi, 1.0)
        }
        s if is_clothing(s) => {
            let (lo, hi) = value_range(s);
            (lo / 2.0, hi / 2.0, 0.5)
        }
        s => {
            let (lo, hi) = value_range(s);
            (lo, hi, 0.5)
        }
    };
    let secondary = (system == SizeSystem::Jeans).then_some((JEANS_LENGTH.0, JEANS_LENGTH.1));
    PosRange {
        min,
        max,
        step,
        secondary,
    }
}

/// Render the canonical label of a position, the exact inverse of [`parse_size`]:
/// `parse_size(&label_for(s, p, sec)?, None)` gives back system `s`, position `p`,
/// secondary `sec` and the returned text as canonical.
///
/// `secondary` is the jeans length (`None` renders waist only, `W32`); it must be `None`
/// for every other system. Returns `None` when the position is not representable
/// (outside [`pos_range`], off the step grid, or not finite). Letters render as letter
/// sizes (`XL`), never as plus sizes (`1X`); numbers render without suffix.
pub fn label_for(system: SizeSystem, pos: f64, secondary: Option<f64>) -> Option<String> {
    if !pos.is_finite() {
        return None;
    }
    match system {
        SizeSystem::Letter => {
            if secondary.is_some() || !on_grid(pos, 1.0) || !(-5.0..=6.0).contains(&pos) {
                return None;
            }
            // Exact small integer after the grid check.
            let p = pos as i32;
            Some(if p < 0 {
                letter_canonical(b'S', (-p - 1) as u32)
            } else if p == 0 {
                "M".to_string()
            } else {
                letter_canonical(b'L', (p - 1) as u32)
            })
        }
        SizeSystem::OneSize => (secondary.is_none() && pos == 0.0).then(|| "ONE SIZE".to_string()),
        SizeSystem::Jeans => {
            let (lo, hi) = value_range(system);
            if !on_grid(pos, 1.0) || !(lo..=hi).contains(&pos) {
                return None;
            }
            match secondary {
                None => Some(render(system, pos, false, None)),
                Some(len) => {
                    let (llo, lhi) = JEANS_LENGTH;
                    if !len.is_finite() || !on_grid(len, 1.0) || !(llo..=lhi).contains(&len) {
                        return None;
                    }
                    Some(format!("{}x{}", pos as u32, len as u32))
                }
            }
        }
        s => {
            if secondary.is_some() {
                return None;
            }
            if s == SizeSystem::Us && pos == -1.0 {
                return Some(render(s, 0.0, true, None));
            }
            let value = if is_clothing(s) { pos * 2.0 } else { pos };
            let step = if allows_halves(s) { 0.5 } else { 1.0 };
            let (lo, hi) = value_range(s);
            if !on_grid(value, step) || !(lo..=hi).contains(&value) {
                return None;
            }
            Some(render(s, value, false, None))
        }
    }
}

/// Parse a size system name (`US`, `eu`, `shoe_eu`, `letter`, ...), as found in a
/// `size_system` column. Case-insensitive; `-` and spaces count as `_`; surrounding
/// whitespace is ignored. Returns `None` for an empty or unknown name.
///
/// Accepted: `letter`/`letters`/`alpha`/`intl`/`international`, `us`, `uk`/`gb`,
/// `eu`/`de`, `it`, `fr`, `jp`, `jeans`, `shoe_us`/`us_shoe`/`shoes_us`/`us_shoes`,
/// `shoe_uk`/`uk_shoe`/`shoes_uk`/`uk_shoes`, `shoe_eu`/`eu_shoe`/`shoes_eu`/`eu_shoes`,
/// `one_size`/`onesize`, `numeric`/`num`.
pub fn parse_system(name: &str) -> Option<SizeSystem> {
    let t = name.trim();
    let mut buf = [0u8; 16];
    if t.is_empty() || t.len() > buf.len() {
        return None;
    }
    for (dst, b) in buf.iter_mut().zip(t.bytes()) {
        *dst = match b {
            b'-' | b' ' => b'_',
            _ => b.to_ascii_lowercase(),
        };
    }
    let s = buf.get(..t.len())?;
    Some(match s {
        b"letter" | b"letters" | b"alpha" | b"intl" | b"international" => SizeSystem::Letter,
        b"us" => SizeSystem::Us,
        b"uk" | b"gb" => SizeSystem::Uk,
        b"eu" | b"de" => SizeSystem::Eu,
        b"it" => SizeSystem::It,
        b"fr" => SizeSystem::Fr,
        b"jp" => SizeSystem::Jp,
        b"jeans" => SizeSystem::Jeans,
        b"shoe_us" | b"us_shoe" | b"shoes_us" | b"us_shoes" => SizeSystem::ShoeUs,
        b"shoe_uk" | b"uk_shoe" | b"shoes_uk" | b"uk_shoes" => SizeSystem::ShoeUk,
        b"shoe_eu" | b"eu_shoe" | b"shoes_eu" | b"eu_shoes" => SizeSystem::ShoeEu,
        b"one_size" | b"onesize" => SizeSystem::OneSize,
        b"numeric" | b"num" => SizeSystem::Numeric,
        _ => return None,
    })
}

/// Parse a size label, optionally with a size system name from a `size_system` column
/// (default `None`: no column; an empty or blank name counts as no column).
///
/// See the module documentation for the accepted forms and how the column and the
/// label combine. Never panics; every rejection says what was expected.
pub fn parse_size(label: &str, system: Option<&str>) -> Result<SizeLabel, LabelError> {
    let column = match system.map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(parse_system(name).ok_or_else(|| {
            LabelError::new(
                label,
                format!("unknown size system '{name}' in the size_system column; accepted: {SYSTEM_NAMES}"),
            )
        })?),
    };
    let norm = Norm::new(label).map_err(|r| LabelError::new(label, r))?;
    let s = norm.as_bytes();
    if s.is_empty() {
        return Err(LabelError::new(
            label,
            format!("empty size label; {EXPECTED}"),
        ));
    }
    let parsed = if is_one_size(s) {
        Ok(SizeLabel {
            system: SizeSystem::OneSize,
            pos: 0.0,
            secondary: None,
            canonical: "ONE SIZE".to_string(),
        })
    } else if let Some(res) = parse_letter(s) {
        res
    } else if let Some(res) = parse_jeans(s) {
        res
    } else {
        parse_number(s, column)
    };
    parsed.map_err(|r| LabelError::new(label, r))
}

#[cfg(test)]
mod tests;
