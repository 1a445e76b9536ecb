//! Label text normalisation: upper case, collapsed whitespace, `½` as one byte.

use super::{EXPECTED, HALF, MAX_LEN};

/// A label upper-cased into a stack buffer, whitespace collapsed to single spaces and
/// trimmed, `½` replaced by [`HALF`].
pub(super) struct Norm {
    buf: [u8; MAX_LEN],
    len: usize,
}

impl Norm {
    pub(super) fn new(label: &str) -> Result<Norm, String> {
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

    pub(super) fn push(&mut self, b: u8) -> Result<(), String> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or_else(|| format!("label is too long (at most {MAX_LEN} characters)"))?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// Copy `s` without the bytes in `drop` into a stack buffer; returns the used length.
pub(super) fn compact(s: &[u8], drop: &[u8], out: &mut [u8; MAX_LEN]) -> usize {
    let mut n = 0;
    for &b in s.iter().filter(|b| !drop.contains(b)) {
        if let Some(slot) = out.get_mut(n) {
            *slot = b;
            n += 1;
        }
    }
    n
}
