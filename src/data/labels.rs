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

use super::schema::{SizeLabel, SizeSystem};
use std::fmt::Write as _;

/// Longest label accepted, in bytes after whitespace collapsing.
const MAX_LEN: usize = 64;
/// Byte standing in for `½` in a normalised label (control bytes are rejected on input,
/// so this cannot collide with user text).
const HALF: u8 = 0x01;
/// Accepted names of the `size_system` column, for error messages.
const SYSTEM_NAMES: &str =
    "letter (alpha, letters, intl), us, uk (gb), eu (de), it, fr, jp, jeans, \
shoe_us (us_shoe, shoes_us), shoe_uk (uk_shoe, shoes_uk), shoe_eu (eu_shoe, shoes_eu), \
one_size (onesize), numeric (num)";
/// What a label may look like, for error messages.
const EXPECTED: &str = "expected a letter size (XS, M, XXL, 3XL, 1X), one size (OS), jeans \
(32x30, W32 L30, W32), a number (8, 8.5) or a number with a system (US 8, UK 10, EU 38, \
IT 42, FR 40, JP 9, US 8.5 shoe, EU 42 shoe)";
/// Reason for fractions other than halves.
const HALVES_ONLY: &str = "only whole and half sizes are supported (8, 8.5, 8½, 8 1/2)";

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
    fn new(label: &str, reason: impl Into<String>) -> Self {
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

/// Jeans length range in inches (inclusive).
const JEANS_LENGTH: (f64, f64) = (18.0, 44.0);

/// Accepted label numbers per numeric system (inclusive, in the label's own units).
fn value_range(system: SizeSystem) -> (f64, f64) {
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
fn is_clothing(system: SizeSystem) -> bool {
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
fn allows_halves(system: SizeSystem) -> bool {
    matches!(
        system,
        SizeSystem::ShoeUs | SizeSystem::ShoeUk | SizeSystem::ShoeEu | SizeSystem::Numeric
    )
}

/// The shoe system of a clothing region, if it has one.
fn shoe_of(system: SizeSystem) -> Option<SizeSystem> {
    match system {
        SizeSystem::Us | SizeSystem::ShoeUs => Some(SizeSystem::ShoeUs),
        SizeSystem::Uk | SizeSystem::ShoeUk => Some(SizeSystem::ShoeUk),
        SizeSystem::Eu | SizeSystem::ShoeEu => Some(SizeSystem::ShoeEu),
        _ => None,
    }
}

/// True when `x` is a multiple of `step`.
fn on_grid(x: f64, step: f64) -> bool {
    x.is_finite() && (x / step).fract() == 0.0
}

/// A whole or half number as text, without a trailing `.0`.
fn fmt_num(value: f64) -> String {
    let twice = (value * 2.0).round() as i64;
    if twice % 2 == 0 {
        (twice / 2).to_string()
    } else {
        format!("{}.5", twice / 2)
    }
}

/// Canonical text of a numeric (non-letter, non-one-size) label.
fn render(system: SizeSystem, value: f64, double_zero: bool, suffix: Option<u8>) -> String {
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
fn letter_canonical(base: u8, x: u32) -> String {
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

/// A label upper-cased into a stack buffer, whitespace collapsed to single spaces and
/// trimmed, `½` replaced by [`HALF`].
struct Norm {
    buf: [u8; MAX_LEN],
    len: usize,
}

impl Norm {
    fn new(label: &str) -> Result<Norm, String> {
        let mut norm = Norm {
            buf: [0; MAX_LEN],
            len: 0,
        };
        let mut pending_space = false;
        for c in label.chars() {
            let b = if c.is_whitespace() {
                pending_space = norm.len > 0;
                continue;
            } else if c == '½' {
                HALF
            } else if c.is_ascii_graphic() {
                c.to_ascii_uppercase() as u8
            } else {
                return Err(format!("unexpected character {c:?}; {EXPECTED}"));
            };
            if pending_space {
                norm.push(b' ')?;
                pending_space = false;
            }
            norm.push(b)?;
        }
        Ok(norm)
    }

    fn push(&mut self, b: u8) -> Result<(), String> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or_else(|| format!("label is too long (at most {MAX_LEN} characters)"))?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// Copy `s` without the bytes in `drop` into a stack buffer; returns the used length.
fn compact(s: &[u8], drop: &[u8], out: &mut [u8; MAX_LEN]) -> usize {
    let mut n = 0;
    for &b in s.iter().filter(|b| !drop.contains(b)) {
        if let Some(slot) = out.get_mut(n) {
            *slot = b;
            n += 1;
        }
    }
    n
}

/// One-size spellings.
fn is_one_size(s: &[u8]) -> bool {
    let mut buf = [0u8; MAX_LEN];
    let n = compact(s, b" -/_.", &mut buf);
    matches!(
        buf.get(..n).unwrap_or(&[]),
        b"ONESIZE"
            | b"OS"
            | b"OSFA"
            | b"OSFM"
            | b"ONESIZEFITSALL"
            | b"ONESIZEFITSMOST"
            | b"UNI"
            | b"UNISIZE"
            | b"TU"
    )
}

/// Letter and plus sizes. `None` when the label does not have a letter shape; `Some(Err)`
/// when it does but names no size (`6XL`, `XM`).
fn parse_letter(s: &[u8]) -> Option<Result<SizeLabel, String>> {
    let mut buf = [0u8; MAX_LEN];
    let n = compact(s, b" -_", &mut buf);
    let c = buf.get(..n)?;
    const BASES: [(&[u8], u8); 10] = [
        (b"SMALL", b'S'),
        (b"MEDIUM", b'M'),
        (b"LARGE", b'L'),
        (b"MED", b'M'),
        (b"SM", b'S'),
        (b"MD", b'M'),
        (b"LG", b'L'),
        (b"S", b'S'),
        (b"M", b'M'),
        (b"L", b'L'),
    ];
    let (rest, base) = BASES
        .iter()
        .find_map(|(word, base)| c.strip_suffix(*word).map(|r| (r, Some(*base))))
        .unwrap_or((c, None));
    // rest = [digits] (X | EXTRA)*
    let digit_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digit_len > 2 {
        return None;
    }
    let (digits, mut xs) = rest.split_at(digit_len);
    let mut count: u32 = 0;
    while !xs.is_empty() {
        if let Some(r) = xs.strip_prefix(b"EXTRA") {
            xs = r;
        } else if let Some(r) = xs.strip_prefix(b"X") {
            xs = r;
        } else {
            return None;
        }
        count += 1;
    }
    let number: Option<u32> = (!digits.is_empty()).then(|| {
        digits
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    });
    let x = match number {
        Some(_) if count != 1 => return None,
        Some(k) => k,
        None => count,
    };
    let label = |pos: f64, canonical: String| {
        Ok(SizeLabel {
            system: SizeSystem::Letter,
            pos,
            secondary: None,
            canonical,
        })
    };
    Some(match base {
        Some(b'M') if x == 0 && number.is_none() => label(0.0, "M".to_string()),
        Some(b'M') => Err(format!(
            "'M' takes no X or number (letter sizes run 4XS..XS, S, M, L, XL..5XL); {EXPECTED}"
        )),
        Some(b'S') if x <= 4 && number != Some(0) => {
            label(-1.0 - f64::from(x), letter_canonical(b'S', x))
        }
        Some(b'L') if x <= 5 && number != Some(0) => {
            label(1.0 + f64::from(x), letter_canonical(b'L', x))
        }
        Some(_) => Err(format!(
            "letter sizes run from 4XS to 5XL (plus sizes 1X to 5X); {EXPECTED}"
        )),
        None => match number {
            Some(k @ 1..=5) => label(1.0 + f64::from(k), format!("{k}X")),
            Some(_) => Err(format!("plus sizes run from 1X to 5X; {EXPECTED}")),
            None => return None,
        },
    })
}

/// A byte cursor over a normalised label.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, i: 0 }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn bump(&mut self) {
        self.i += 1;
    }
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn skip_space(&mut self) {
        while self.eat(b' ') {}
    }
    fn run(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&pred) {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or(&[])
    }
    fn digits(&mut self) -> &'a [u8] {
        self.run(|b| b.is_ascii_digit())
    }
}

/// Value of a run of at most four ASCII digits (`None` when longer or empty).
fn small_int(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 4 {
        return None;
    }
    Some(d.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0')))
}

/// Jeans waist x length. `None` when the label has no jeans shape.
fn parse_jeans(s: &[u8]) -> Option<Result<SizeLabel, String>> {
    let mut c = Cursor::new(s);
    let w_prefix = c.eat(b'W');
    c.skip_space();
    let waist = small_int(c.digits())?;
    c.skip_space();
    let w_suffix = !w_prefix && c.eat(b'W');
    c.skip_space();
    let length = if c.at_end() {
        if !w_prefix {
            return None;
        }
        None
    } else {
        let sep = c.eat(b'X') || c.eat(b'/');
        c.skip_space();
        let l_prefix = c.eat(b'L');
        c.skip_space();
        let length = small_int(c.digits())?;
        c.skip_space();
        let l_suffix = !l_prefix && c.eat(b'L');
        c.skip_space();
        if !c.at_end() {
            return None;
        }
        let marked = l_prefix || (l_suffix && (w_prefix || w_suffix));
        if !sep && !marked {
            return None;
        }
        Some(length)
    };
    let (lo, hi) = value_range(SizeSystem::Jeans);
    let (llo, lhi) = JEANS_LENGTH;
    let waist = f64::from(waist);
    if !(lo..=hi).contains(&waist) {
        return Some(Err(format!(
            "jeans waist must be {lo}..={hi} inches (32x30, W32 L30); {EXPECTED}"
        )));
    }
    let secondary = length.map(f64::from);
    if secondary.is_some_and(|l| !(llo..=lhi).contains(&l)) {
        return Some(Err(format!(
            "jeans length must be {llo}..={lhi} inches (32x30, W32 L30); {EXPECTED}"
        )));
    }
    let canonical = match length {
        Some(l) => format!("{}x{}", waist as u32, l),
        None => render(SizeSystem::Jeans, waist, false, None),
    };
    Some(Ok(SizeLabel {
        system: SizeSystem::Jeans,
        pos: waist,
        secondary,
        canonical,
    }))
}

/// A lexed number: whole part, whether it had a half, whether it was written `00`.
#[derive(Clone, Copy)]
struct Num {
    int: u32,
    half: bool,
    double_zero: bool,
}

impl Num {
    fn value(self) -> f64 {
        f64::from(self.int) + if self.half { 0.5 } else { 0.0 }
    }
}

/// Lex a number at the cursor (which is on a digit): `8`, `8.5`, `8,5`, `8½`, `8 ½`,
/// `8 1/2`, `8-1/2`.
fn lex_number(c: &mut Cursor<'_>) -> Result<Num, String> {
    let d = c.digits();
    let int = small_int(d).ok_or_else(|| format!("number is out of range; {EXPECTED}"))?;
    let double_zero = d == b"00";
    let mut half = false;
    if matches!(c.peek(), Some(b'.' | b',')) && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
        c.bump();
        match c.digits() {
            b"0" | b"00" => {}
            b"5" | b"50" => half = true,
            _ => return Err(HALVES_ONLY.to_string()),
        }
    } else {
        let save = c.i;
        if !c.eat(b' ') {
            let _ = c.eat(b'-');
        }
        if c.eat(HALF) {
            half = true;
        } else {
            let numerator = c.digits();
            if !numerator.is_empty() && c.eat(b'/') {
                let denominator = c.digits();
                if numerator == b"1" && denominator == b"2" {
                    half = true;
                } else {
                    return Err(HALVES_ONLY.to_string());
                }
            } else {
                c.i = save;
            }
        }
    }
    if double_zero && half {
        return Err(format!("'00' cannot have a half; {EXPECTED}"));
    }
    Ok(Num {
        int,
        half,
        double_zero,
    })
}

/// Parts of a numeric label collected while scanning.
#[derive(Default)]
struct NumParts {
    size_word: bool,
    region: Option<SizeSystem>,
    shoe: bool,
    num: Option<Num>,
    suffix: Option<u8>,
    last_was_num: bool,
}

impl NumParts {
    fn word(&mut self, w: &[u8]) -> Result<(), String> {
        let region = match w {
            b"US" => Some(SizeSystem::Us),
            b"UK" | b"GB" => Some(SizeSystem::Uk),
            b"EU" | b"DE" => Some(SizeSystem::Eu),
            b"IT" => Some(SizeSystem::It),
            b"FR" => Some(SizeSystem::Fr),
            b"JP" => Some(SizeSystem::Jp),
            _ => None,
        };
        let suffix = match w {
            b"P" | b"PETITE" => Some(b'P'),
            b"T" | b"TALL" => Some(b'T'),
            b"W" | b"WOMEN" | b"WOMENS" | b"WOMAN" => Some(b'W'),
            _ => None,
        };
        let word = String::from_utf8_lossy(w);
        if let Some(r) = region {
            if self.num.is_some() {
                return Err(format!(
                    "the system '{word}' must come before the number (US 8); {EXPECTED}"
                ));
            }
            if self.region.is_some() {
                return Err(format!(
                    "more than one size system in the label; {EXPECTED}"
                ));
            }
            self.region = Some(r);
        } else if let Some(x) = suffix {
            if !self.last_was_num || self.suffix.is_some() {
                return Err(format!(
                    "the suffix '{word}' (petite / tall / women's) must directly follow the number (US 8P); {EXPECTED}"
                ));
            }
            self.suffix = Some(x);
        } else if w == b"SHOE" || w == b"SHOES" {
            if self.shoe {
                return Err(format!("'shoe' appears twice; {EXPECTED}"));
            }
            self.shoe = true;
        } else if (w == b"SIZE" || w == b"SZ") && !self.size_word && self.num.is_none() {
            self.size_word = true;
        } else {
            return Err(format!("'{word}' is not part of a size label; {EXPECTED}"));
        }
        self.last_was_num = false;
        Ok(())
    }
}

/// Numbers with optional system prefix, shoe word and suffix.
fn parse_number(s: &[u8], column: Option<SizeSystem>) -> Result<SizeLabel, String> {
    let mut c = Cursor::new(s);
    let mut parts = NumParts::default();
    let mut after_word = false;
    while let Some(b) = c.peek() {
        match b {
            b' ' | b'_' => {
                c.bump();
                after_word = false;
            }
            b'-' => {
                if c.peek_at(1).is_some_and(|d| d.is_ascii_digit()) && !after_word {
                    return Err(format!("a size cannot be negative; {EXPECTED}"));
                }
                c.bump();
                after_word = false;
            }
            b'A'..=b'Z' => {
                let w = c.run(|b| b.is_ascii_uppercase());
                parts.word(w)?;
                after_word = true;
            }
            b'0'..=b'9' => {
                if parts.num.is_some() {
                    return Err(format!("more than one number in the label; {EXPECTED}"));
                }
                parts.num = Some(lex_number(&mut c)?);
                parts.last_was_num = true;
                after_word = false;
            }
            HALF => return Err(format!("'½' must follow a number (8½); {EXPECTED}")),
            other => {
                return Err(format!(
                    "unexpected character {:?}; {EXPECTED}",
                    char::from(other)
                ))
            }
        }
    }
    let num = parts
        .num
        .ok_or_else(|| format!("no size number found; {EXPECTED}"))?;
    let system = resolve_system(&parts, column)?;
    let name = system.as_str();
    if num.double_zero && system != SizeSystem::Us {
        return Err(format!(
            "'00' is a US size (write US 00 or set size_system us), not {name}; {EXPECTED}"
        ));
    }
    if num.half && !allows_halves(system) {
        return Err(format!(
            "{name} sizes are whole numbers (for shoes write e.g. 'US 8.5 shoe' or set size_system shoe_us)"
        ));
    }
    if parts.suffix.is_some() && !(is_clothing(system) || system == SizeSystem::Numeric) {
        return Err(format!(
            "suffixes P / T / W are only for clothing and plain numbers, not {name}"
        ));
    }
    let value = num.value();
    let (lo, hi) = value_range(system);
    if !(lo..=hi).contains(&value) {
        return Err(format!(
            "{} is outside the {name} range {lo}..={hi}",
            fmt_num(value)
        ));
    }
    let pos = if num.double_zero {
        -1.0
    } else if is_clothing(system) {
        value / 2.0
    } else {
        value
    };
    Ok(SizeLabel {
        system,
        pos,
        secondary: None,
        canonical: render(system, value, num.double_zero, parts.suffix),
    })
}

/// Which system a number belongs to, from the label's prefix and shoe word and the column.
fn resolve_system(parts: &NumParts, column: Option<SizeSystem>) -> Result<SizeSystem, String> {
    let column_shoe = matches!(
        column,
        Some(SizeSystem::ShoeUs | SizeSystem::ShoeUk | SizeSystem::ShoeEu)
    );
    let no_shoe = |region: &str| {
        format!(
            "there are no {region} shoe sizes; shoe sizes are US, UK or EU (US 8.5 shoe, EU 42 shoe)"
        )
    };
    match (parts.region, column) {
        (Some(region), _) => {
            if parts.shoe {
                shoe_of(region).ok_or_else(|| no_shoe(region.as_str()))
            } else if column_shoe {
                // A shoe column makes US/UK/EU prefixes shoe sizes; IT/FR/JP stay clothing.
                Ok(shoe_of(region).unwrap_or(region))
            } else {
                Ok(region)
            }
        }
        (None, None) => {
            if parts.shoe {
                Err(
                    "a shoe size needs a region: write 'US shoe 8.5', 'UK shoe 8', 'EU shoe 42' or set size_system"
                        .to_string(),
                )
            } else {
                Ok(SizeSystem::Numeric)
            }
        }
        (None, Some(col)) => match col {
            SizeSystem::Letter => Err(format!(
                "size_system is letter but the label is a number; letter sizes are XS, S, M, L, XL, ...; {EXPECTED}"
            )),
            SizeSystem::OneSize => Err(format!(
                "size_system is one_size but the label is a number (expected one size, OS, OSFA); {EXPECTED}"
            )),
            _ if parts.shoe => shoe_of(col).ok_or_else(|| no_shoe(col.as_str())),
            _ => Ok(col),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SizeSystem::*;

    fn p(label: &str) -> SizeLabel {
        parse_size(label, None).unwrap_or_else(|e| panic!("{label}: {e}"))
    }
    fn pc(label: &str, col: &str) -> SizeLabel {
        parse_size(label, Some(col)).unwrap_or_else(|e| panic!("{label} [{col}]: {e}"))
    }
    fn check(l: &SizeLabel, system: SizeSystem, pos: f64, sec: Option<f64>, canonical: &str) {
        assert_eq!(l.system, system, "{l:?}");
        assert_eq!(l.pos, pos, "{l:?}");
        assert_eq!(l.secondary, sec, "{l:?}");
        assert_eq!(l.canonical, canonical, "{l:?}");
    }
    fn bad(label: &str, col: Option<&str>) -> LabelError {
        match parse_size(label, col) {
            Ok(l) => panic!("{label:?} should fail, got {l:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn letters_all_spellings() {
        let cases: &[(&str, f64, &str)] = &[
            ("4XS", -5.0, "4XS"),
            ("XXXXS", -5.0, "4XS"),
            ("3XS", -4.0, "3XS"),
            ("XXXS", -4.0, "3XS"),
            ("XXS", -3.0, "XXS"),
            ("2XS", -3.0, "XXS"),
            ("XS", -2.0, "XS"),
            ("S", -1.0, "S"),
            ("M", 0.0, "M"),
            ("L", 1.0, "L"),
            ("XL", 2.0, "XL"),
            ("XXL", 3.0, "XXL"),
            ("2XL", 3.0, "XXL"),
            ("XXXL", 4.0, "3XL"),
            ("3XL", 4.0, "3XL"),
            ("4XL", 5.0, "4XL"),
            ("XXXXL", 5.0, "4XL"),
            ("5XL", 6.0, "5XL"),
            ("xl", 2.0, "XL"),
            (" x l ", 2.0, "XL"),
            ("Small", -1.0, "S"),
            ("MEDIUM", 0.0, "M"),
            ("medium", 0.0, "M"),
            ("Med", 0.0, "M"),
            ("Large", 1.0, "L"),
            ("X-Large", 2.0, "XL"),
            ("Extra Large", 2.0, "XL"),
            ("Extra Small", -2.0, "XS"),
            ("extra-extra-large", 3.0, "XXL"),
            ("XX-Large", 3.0, "XXL"),
            ("2X-Large", 3.0, "XXL"),
            ("lg", 1.0, "L"),
            ("SM", -1.0, "S"),
            ("XLG", 2.0, "XL"),
        ];
        for &(label, pos, canon) in cases {
            check(&p(label), Letter, pos, None, canon);
        }
    }

    #[test]
    fn plus_sizes() {
        check(&p("1X"), Letter, 2.0, None, "1X");
        check(&p("2x"), Letter, 3.0, None, "2X");
        check(&p("3X"), Letter, 4.0, None, "3X");
        check(&p("4X"), Letter, 5.0, None, "4X");
        check(&p("5X"), Letter, 6.0, None, "5X");
        assert_eq!(p("1X").pos, p("XL").pos);
        assert_ne!(p("1X").canonical, p("XL").canonical);
        assert!(bad("6X", None).reason.contains("1X to 5X"));
        bad("0X", None);
    }

    #[test]
    fn bad_letters() {
        for l in [
            "XXLL", "6XL", "XXXXXXL", "5XS", "XM", "2M", "X", "XX", "SL", "0XL",
        ] {
            let e = bad(l, None);
            assert!(e.reason.contains("expected"), "{l}: {}", e.reason);
        }
        assert!(bad("6XL", None).reason.contains("4XS to 5XL"));
    }

    #[test]
    fn letters_ignore_the_column() {
        check(&pc("M", "us"), Letter, 0.0, None, "M");
        check(&pc("XL", "shoe_eu"), Letter, 2.0, None, "XL");
        check(&pc("2XL", "letter"), Letter, 3.0, None, "XXL");
    }

    #[test]
    fn one_size() {
        for l in [
            "one size",
            "ONE SIZE",
            "onesize",
            "one-size",
            "OS",
            "o/s",
            "OSFA",
            "One Size Fits All",
            "uni",
        ] {
            check(&p(l), OneSize, 0.0, None, "ONE SIZE");
        }
        check(&pc("OS", "one_size"), OneSize, 0.0, None, "ONE SIZE");
        assert!(bad("8", Some("one_size")).reason.contains("one_size"));
    }

    #[test]
    fn jeans_forms() {
        for l in [
            "32x30", "32X30", "32 x 30", "32/30", "W32 L30", "W32L30", "w32 l30", "32W 30L",
            "32w30l", "W32/L30",
        ] {
            check(&p(l), Jeans, 32.0, Some(30.0), "32x30");
        }
        check(&p("W32"), Jeans, 32.0, None, "W32");
        check(&p("W 34"), Jeans, 34.0, None, "W34");
        // Jeans regardless of the column.
        check(&pc("30x32", "us"), Jeans, 30.0, Some(32.0), "30x32");
        check(&pc("W30", "shoe_eu"), Jeans, 30.0, None, "W30");
        // Column jeans + bare number: waist only.
        check(&pc("33", "jeans"), Jeans, 33.0, None, "W33");
        assert_eq!(p("30x32").cmp_order(&p("32x32")), std::cmp::Ordering::Less);
        assert_eq!(p("32x30").cmp_order(&p("32x32")), std::cmp::Ordering::Less);
        assert_eq!(p("W32").cmp_order(&p("32x30")), std::cmp::Ordering::Less);
        assert!(bad("5x30", None).reason.contains("waist"));
        assert!(bad("32x99", None).reason.contains("length"));
        assert!(bad("32.5", Some("jeans")).reason.contains("whole"));
        // "32W" alone is a US women's plus-style number, not jeans.
        check(&p("32W"), Numeric, 32.0, None, "32W");
        check(&pc("32W", "us"), Us, 16.0, None, "US 32W");
    }

    #[test]
    fn us_sizes() {
        check(&pc("00", "us"), Us, -1.0, None, "US 00");
        check(&pc("0", "us"), Us, 0.0, None, "US 0");
        check(&pc("2", "US"), Us, 1.0, None, "US 2");
        check(&pc("8", "us"), Us, 4.0, None, "US 8");
        check(&pc("24", "us"), Us, 12.0, None, "US 24");
        check(&pc("3", "us"), Us, 1.5, None, "US 3");
        check(&p("US 8"), Us, 4.0, None, "US 8");
        check(&p("us8"), Us, 4.0, None, "US 8");
        check(&p("US 00"), Us, -1.0, None, "US 00");
        check(&p("US 8P"), Us, 4.0, None, "US 8P");
        check(&p("US 8 Petite"), Us, 4.0, None, "US 8P");
        check(&pc("10T", "us"), Us, 5.0, None, "US 10T");
        check(&pc("16W", "us"), Us, 8.0, None, "US 16W");
        check(&p("Size US 8"), Us, 4.0, None, "US 8");
        check(&p("US-8"), Us, 4.0, None, "US 8");
        assert!(bad("US 8.5", None).reason.contains("whole"));
        assert!(bad("US 42", None).reason.contains("range"));
        assert!(bad("US", None).reason.contains("no size number"));
    }

    #[test]
    fn other_clothing_systems() {
        check(&pc("10", "uk"), Uk, 5.0, None, "UK 10");
        check(&p("UK 10"), Uk, 5.0, None, "UK 10");
        check(&p("GB 12"), Uk, 6.0, None, "UK 12");
        check(&pc("38", "eu"), Eu, 19.0, None, "EU 38");
        check(&pc("38", "DE"), Eu, 19.0, None, "EU 38");
        check(&p("EU 38"), Eu, 19.0, None, "EU 38");
        check(&p("DE 38"), Eu, 19.0, None, "EU 38");
        check(&p("IT 42"), It, 21.0, None, "IT 42");
        check(&pc("42", "it"), It, 21.0, None, "IT 42");
        check(&p("FR 40"), Fr, 20.0, None, "FR 40");
        check(&pc("40", "fr"), Fr, 20.0, None, "FR 40");
        check(&p("JP 9"), Jp, 4.5, None, "JP 9");
        check(&pc("9", "jp"), Jp, 4.5, None, "JP 9");
        check(&p("EU 38T"), Eu, 19.0, None, "EU 38T");
        assert!(bad("EU 10", None).reason.contains("range"));
        assert!(bad("IT 20", None).reason.contains("range"));
        assert!(bad("00", Some("uk")).reason.contains("US size"));
    }

    #[test]
    fn prefix_beats_column() {
        check(&pc("US 8", "uk"), Us, 4.0, None, "US 8");
        check(&pc("EU 38", "letter"), Eu, 19.0, None, "EU 38");
        check(&pc("US 8", "numeric"), Us, 4.0, None, "US 8");
        // A shoe column keeps a prefixed label a shoe size.
        check(&pc("US 8.5", "shoe_eu"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&pc("IT 42", "shoe_eu"), It, 21.0, None, "IT 42");
    }

    #[test]
    fn shoes() {
        check(&pc("8.5", "shoe_us"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&pc("8 1/2", "us_shoe"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&pc("8½", "shoes_us"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&pc("8 ½", "shoe-us"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&pc("8-1/2", "shoe us"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&pc("9", "shoe_us"), ShoeUs, 9.0, None, "US 9 shoe");
        check(&pc("9.0", "shoe_us"), ShoeUs, 9.0, None, "US 9 shoe");
        check(&p("US shoe 8.5"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&p("US 8.5 shoe"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&p("us 8 1/2 shoes"), ShoeUs, 8.5, None, "US 8.5 shoe");
        check(&pc("7", "shoe_uk"), ShoeUk, 7.0, None, "UK 7 shoe");
        check(&p("UK shoe 7.5"), ShoeUk, 7.5, None, "UK 7.5 shoe");
        check(&pc("42", "shoe_eu"), ShoeEu, 42.0, None, "EU 42 shoe");
        check(&pc("42.5", "eu_shoe"), ShoeEu, 42.5, None, "EU 42.5 shoe");
        check(&pc("42,5", "shoe_eu"), ShoeEu, 42.5, None, "EU 42.5 shoe");
        check(&p("EU shoe 42"), ShoeEu, 42.0, None, "EU 42 shoe");
        check(&p("DE 42 shoe"), ShoeEu, 42.0, None, "EU 42 shoe");
        // shoe word + region column
        check(&pc("8.5 shoe", "us"), ShoeUs, 8.5, None, "US 8.5 shoe");
        assert!(p("US 8.5 shoe").cmp_order(&p("US 9 shoe")).is_lt());
        assert!(bad("42 2/3", Some("shoe_eu")).reason.contains("half"));
        assert!(bad("8.25", Some("shoe_us")).reason.contains("half"));
        assert!(bad("shoe 8", None).reason.contains("region"));
        assert!(bad("IT shoe 40", None).reason.contains("no it shoe"));
        assert!(bad("EU 60 shoe", None).reason.contains("range"));
        assert!(bad("9W", Some("shoe_us")).reason.contains("suffix"));
    }

    #[test]
    fn bare_numbers() {
        check(&p("8"), Numeric, 8.0, None, "8");
        check(&p("8.5"), Numeric, 8.5, None, "8.5");
        check(&p("8.0"), Numeric, 8.0, None, "8");
        check(&p("8 1/2"), Numeric, 8.5, None, "8.5");
        check(&p("0"), Numeric, 0.0, None, "0");
        check(&p("120"), Numeric, 120.0, None, "120");
        check(&p("8P"), Numeric, 8.0, None, "8P");
        check(&pc("8", "numeric"), Numeric, 8.0, None, "8");
        check(&pc("8", "num"), Numeric, 8.0, None, "8");
        check(&pc("8", ""), Numeric, 8.0, None, "8");
        check(&pc("8", "  "), Numeric, 8.0, None, "8");
        check(&p("Size 8"), Numeric, 8.0, None, "8");
        assert!(bad("00", None).reason.contains("US"));
        assert!(bad("8", Some("letter")).reason.contains("letter"));
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        for l in [
            "",
            "   ",
            "abc",
            "XXLL",
            "-3",
            "US -3",
            "NaN",
            "inf",
            "1e9",
            "1000000000",
            "999",
            "8.",
            ".5",
            "8 9",
            "US UK 8",
            "8 US",
            "P8",
            "½",
            "8.5½",
            "é",
            "32x",
            "x30",
            "S/M",
            "\u{0}",
            "8 P P",
        ] {
            let e = bad(l, None);
            assert!(!e.reason.is_empty());
            assert_eq!(e.label, l);
        }
        assert!(bad("", None).reason.contains("empty"));
        assert!(bad("-3", None).reason.contains("negative"));
        assert!(bad("1e9", None).reason.contains("expected"));
        assert!(bad(&"M".repeat(100), None).reason.contains("too long"));
    }

    #[test]
    fn unknown_column_system_is_an_error() {
        let e = bad("M", Some("martian"));
        assert!(e.reason.contains("martian"));
        assert!(e.reason.contains("shoe_eu"));
    }

    #[test]
    fn parse_system_names() {
        let cases: &[(&str, SizeSystem)] = &[
            ("letter", Letter),
            ("ALPHA", Letter),
            ("letters", Letter),
            ("intl", Letter),
            ("us", Us),
            ("US", Us),
            (" uk ", Uk),
            ("eu", Eu),
            ("de", Eu),
            ("it", It),
            ("fr", Fr),
            ("jp", Jp),
            ("jeans", Jeans),
            ("shoe_us", ShoeUs),
            ("us_shoe", ShoeUs),
            ("Shoe-US", ShoeUs),
            ("shoes us", ShoeUs),
            ("shoe_uk", ShoeUk),
            ("uk-shoe", ShoeUk),
            ("shoe_eu", ShoeEu),
            ("EU_SHOE", ShoeEu),
            ("one_size", OneSize),
            ("onesize", OneSize),
            ("one size", OneSize),
            ("numeric", Numeric),
            ("num", Numeric),
        ];
        for &(name, sys) in cases {
            assert_eq!(parse_system(name), Some(sys), "{name}");
        }
        for sys in SizeSystem::ALL {
            assert_eq!(parse_system(sys.as_str()), Some(sys));
        }
        assert_eq!(parse_system(""), None);
        assert_eq!(parse_system("   "), None);
        assert_eq!(parse_system("mars"), None);
        assert_eq!(parse_system("a_very_long_system_name_indeed"), None);
    }

    #[test]
    fn label_for_renders_and_rejects() {
        assert_eq!(label_for(Letter, 0.0, None).as_deref(), Some("M"));
        assert_eq!(label_for(Letter, -5.0, None).as_deref(), Some("4XS"));
        assert_eq!(label_for(Letter, 3.0, None).as_deref(), Some("XXL"));
        assert_eq!(label_for(Letter, 6.0, None).as_deref(), Some("5XL"));
        assert_eq!(label_for(Letter, 7.0, None), None);
        assert_eq!(label_for(Letter, 0.5, None), None);
        assert_eq!(label_for(Us, -1.0, None).as_deref(), Some("US 00"));
        assert_eq!(label_for(Us, 4.0, None).as_deref(), Some("US 8"));
        assert_eq!(label_for(Us, 1.5, None).as_deref(), Some("US 3"));
        assert_eq!(label_for(Us, -0.5, None), None);
        assert_eq!(label_for(Us, 1.25, None), None);
        assert_eq!(label_for(Eu, 19.0, None).as_deref(), Some("EU 38"));
        assert_eq!(label_for(Jp, 4.5, None).as_deref(), Some("JP 9"));
        assert_eq!(label_for(Jeans, 32.0, Some(30.0)).as_deref(), Some("32x30"));
        assert_eq!(label_for(Jeans, 32.0, None).as_deref(), Some("W32"));
        assert_eq!(label_for(Jeans, 32.0, Some(30.5)), None);
        assert_eq!(label_for(ShoeUs, 8.5, None).as_deref(), Some("US 8.5 shoe"));
        assert_eq!(label_for(ShoeEu, 42.0, None).as_deref(), Some("EU 42 shoe"));
        assert_eq!(label_for(OneSize, 0.0, None).as_deref(), Some("ONE SIZE"));
        assert_eq!(label_for(OneSize, 1.0, None), None);
        assert_eq!(label_for(Numeric, 8.5, None).as_deref(), Some("8.5"));
        assert_eq!(label_for(Numeric, f64::NAN, None), None);
        assert_eq!(label_for(Us, 4.0, Some(1.0)), None);
    }

    #[test]
    fn pos_range_matches_label_for() {
        for sys in SizeSystem::ALL {
            let r = pos_range(sys);
            assert!(label_for(sys, r.min, None).is_some(), "{sys:?} min");
            assert!(label_for(sys, r.max, None).is_some(), "{sys:?} max");
            assert!(
                label_for(sys, r.max + r.step, None).is_none(),
                "{sys:?} above"
            );
        }
        assert_eq!(pos_range(Us).min, 0.0);
        assert_eq!(pos_range(Jeans).secondary, Some((18.0, 44.0)));
    }
}
