//! One-size and letter labels (`OS`, `XS`, `3XL`, `Extra Large`, `1X`).

use super::normal::compact;
use super::system::letter_canonical;
use super::{EXPECTED, MAX_LEN};
use crate::data::schema::{SizeLabel, SizeSystem};

/// One-size spellings.
pub(super) fn is_one_size(s: &[u8]) -> bool {
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
pub(super) fn parse_letter(s: &[u8]) -> Option<Result<SizeLabel, String>> {
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
