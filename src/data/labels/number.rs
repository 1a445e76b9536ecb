//! Jeans and numeric labels: the lexer, system prefixes and suffixes, and how the
//! label's system and the column's combine.

use super::system::{
    allows_halves, fmt_num, is_clothing, render, shoe_of, value_range, JEANS_LENGTH,
};
use super::{EXPECTED, HALF, HALVES_ONLY};
use crate::data::schema::{SizeLabel, SizeSystem};

/// A byte cursor over a normalised label.
pub(super) struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(s: &'a [u8]) -> Self {
        Cursor { s, i: 0 }
    }
    pub(super) fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    pub(super) fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }
    pub(super) fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    pub(super) fn bump(&mut self) {
        self.i += 1;
    }
    pub(super) fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }
    pub(super) fn skip_space(&mut self) {
        while self.eat(b' ') {}
    }
    pub(super) fn run(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&pred) {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or(&[])
    }
    pub(super) fn digits(&mut self) -> &'a [u8] {
        self.run(|b| b.is_ascii_digit())
    }
}

/// Value of a run of at most four ASCII digits (`None` when longer or empty).
pub(super) fn small_int(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 4 {
        return None;
    }
    Some(d.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0')))
}

/// Jeans waist x length. `None` when the label has no jeans shape.
pub(super) fn parse_jeans(s: &[u8]) -> Option<Result<SizeLabel, String>> {
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
pub(super) struct Num {
    int: u32,
    half: bool,
    double_zero: bool,
}

impl Num {
    pub(super) fn value(self) -> f64 {
        f64::from(self.int) + if self.half { 0.5 } else { 0.0 }
    }
}

/// Lex a number at the cursor (which is on a digit): `8`, `8.5`, `8,5`, `8½`, `8 ½`,
/// `8 1/2`, `8-1/2`.
pub(super) fn lex_number(c: &mut Cursor<'_>) -> Result<Num, String> {
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
pub(super) struct NumParts {
    size_word: bool,
    region: Option<SizeSystem>,
    shoe: bool,
    num: Option<Num>,
    suffix: Option<u8>,
    last_was_num: bool,
}

impl NumParts {
    pub(super) fn word(&mut self, w: &[u8]) -> Result<(), String> {
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
pub(super) fn parse_number(s: &[u8], column: Option<SizeSystem>) -> Result<SizeLabel, String> {
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
pub(super) fn resolve_system(
    parts: &NumParts,
    column: Option<SizeSystem>,
) -> Result<SizeSystem, String> {
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
