//! Timestamps: column kinds (native, epoch numbers, ISO text) and the ISO 8601 text
//! parser (a strict lexer for the accepted forms; chrono's calendar for the dates).

use super::*;

/// How a timestamp column is turned into ms since the epoch.
#[derive(Clone, Copy, Debug)]
pub(super) enum TsKind {
    /// Physical i64 divided by this to get ms.
    Datetime(i64),
    /// Days since epoch.
    Date,
    /// Epoch seconds (integer).
    IntSeconds,
    /// Epoch seconds (float).
    FloatSeconds,
    /// ISO-8601 text.
    Text,
}

pub(super) fn ts_kind(dt: &DataType) -> Option<TsKind> {
    match dt {
        DataType::Datetime(tu, _) => Some(TsKind::Datetime(match tu {
            TimeUnit::Nanoseconds => 1_000_000,
            TimeUnit::Microseconds => 1_000,
            TimeUnit::Milliseconds => 1,
        })),
        DataType::Date => Some(TsKind::Date),
        d if d.is_integer() => Some(TsKind::IntSeconds),
        d if d.is_float() => Some(TsKind::FloatSeconds),
        d if d.is_string() || d.is_categorical() || d.is_null() => Some(TsKind::Text),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum TsVal {
    Ok(i64),
    Null,
    Bad,
}

/// Timestamps of a batch, plus the text of up to 5 unparseable values.
pub(super) fn timestamps(
    c: &Column,
    kind: TsKind,
) -> Result<(Vec<TsVal>, Vec<String>), PolarsError> {
    let mut bad_values = Vec::new();
    let vals = match kind {
        TsKind::Datetime(div) => {
            let phys = c.to_physical_repr().cast(&DataType::Int64)?;
            let mut out = Vec::with_capacity(phys.len());
            for_each_prim(phys.i64()?, |v| {
                out.push(v.map_or(TsVal::Null, |v| TsVal::Ok(v.div_euclid(div))))
            });
            out
        }
        TsKind::Date => {
            let phys = c.to_physical_repr().cast(&DataType::Int64)?;
            phys.i64()?
                .iter()
                .map(|v| v.map_or(TsVal::Null, |d| TsVal::Ok(d.saturating_mul(86_400_000))))
                .collect()
        }
        TsKind::IntSeconds => {
            let c = c.cast(&DataType::Int64)?;
            c.i64()?
                .iter()
                .map(|v| v.map_or(TsVal::Null, |s| TsVal::Ok(s.saturating_mul(1000))))
                .collect()
        }
        TsKind::FloatSeconds => {
            let c = c.cast(&DataType::Float64)?;
            c.f64()?
                .iter()
                .map(|v| match v {
                    None => TsVal::Null,
                    Some(s) if s.is_finite() && s.abs() < 9.0e15 => {
                        TsVal::Ok((s * 1000.0).round() as i64)
                    }
                    Some(_) => TsVal::Bad,
                })
                .collect()
        }
        TsKind::Text => {
            let ca = text_column(c)?;
            ca.iter()
                .map(|v| match v {
                    None => TsVal::Null,
                    Some(s) => match parse_timestamp_ms(s) {
                        Some(ms) => TsVal::Ok(ms),
                        None => {
                            if bad_values.len() < 5 && !bad_values.iter().any(|b| b == s) {
                                bad_values.push(s.to_string());
                            }
                            TsVal::Bad
                        }
                    },
                })
                .collect()
        }
    };
    Ok((vals, bad_values))
}

// ---------------------------------------------------------------------------------------
// Timestamp text
// ---------------------------------------------------------------------------------------

/// Days since 1970-01-01 of a calendar date (chrono's proleptic Gregorian calendar),
/// `None` for an impossible date (month 13, February 30th, ...).
fn days_since_epoch(y: i64, m: i64, d: i64) -> Option<i64> {
    use chrono::Datelike as _;
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(y).ok()?,
        u32::try_from(m).ok()?,
        u32::try_from(d).ok()?,
    )?;
    Some(i64::from(date.num_days_from_ce()) - DAYS_CE_TO_EPOCH)
}

/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const DAYS_CE_TO_EPOCH: i64 = 719_163;

pub(super) struct Cursor<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
}

impl Cursor<'_> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    pub(super) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    pub(super) fn digits(&mut self, n: usize) -> Option<i64> {
        let mut v = 0i64;
        for _ in 0..n {
            let c = self.peek()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        Some(v)
    }
    pub(super) fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

/// Parse an ISO-8601 / RFC 3339 date or date-time into ms since the Unix epoch:
/// `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.fff...]]`, optionally
/// followed by `Z` or an offset `±HH[:MM]` / `±HHMM`. No offset means UTC. `None` when the
/// text is not such a timestamp or names an impossible date.
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let mut c = Cursor {
        b: text.trim().as_bytes(),
        i: 0,
    };
    let y = c.digits(4)?;
    if !c.eat(b'-') {
        return None;
    }
    let m = c.digits(2)?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.digits(2)?;
    let mut ms = days_since_epoch(y, m, d)? * 86_400_000;
    if c.done() {
        return Some(ms);
    }
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let hh = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let mm = c.digits(2)?;
    let mut ss = 0;
    let mut frac_ms = 0;
    if c.eat(b':') {
        ss = c.digits(2)?;
        if c.eat(b'.') || c.eat(b',') {
            let mut scale = 100;
            let mut any = false;
            while let Some(ch) = c.peek().filter(u8::is_ascii_digit) {
                frac_ms += i64::from(ch - b'0') * scale;
                scale /= 10;
                any = true;
                c.i += 1;
            }
            if !any {
                return None;
            }
        }
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    ms += ((hh * 60 + mm) * 60 + ss) * 1000 + frac_ms;
    if c.done() || c.eat(b'Z') || c.eat(b'z') {
        return if c.done() { Some(ms) } else { None };
    }
    let sign = if c.eat(b'+') {
        1
    } else if c.eat(b'-') {
        -1
    } else {
        return None;
    };
    let oh = c.digits(2)?;
    let om = if c.done() {
        0
    } else {
        c.eat(b':');
        c.digits(2)?
    };
    if !c.done() || oh > 23 || om > 59 {
        return None;
    }
    Some(ms - sign * (oh * 60 + om) * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_iso8601() {
        assert_eq!(parse_timestamp_ms("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp_ms("1970-01-02"), Some(86_400_000));
        // 2016-04-20 = 16911 days after the epoch
        assert_eq!(parse_timestamp_ms("2016-04-20"), Some(16_911 * 86_400_000));
        assert_eq!(
            parse_timestamp_ms("2016-04-20T01:02:03.5Z"),
            Some(16_911 * 86_400_000 + 3_723_500)
        );
        assert_eq!(
            parse_timestamp_ms("2016-04-20 02:02:03+01:00"),
            Some(16_911 * 86_400_000 + 3_723_000)
        );
        assert_eq!(
            parse_timestamp_ms("2016-04-20T00:00-0130"),
            Some(16_911 * 86_400_000 + 5_400_000)
        );
        assert_eq!(parse_timestamp_ms("2000-02-29"), Some(11_016 * 86_400_000));
        assert_eq!(parse_timestamp_ms("1969-12-31"), Some(-86_400_000));
        assert_eq!(parse_timestamp_ms("2001-02-29"), None);
        assert_eq!(parse_timestamp_ms("2016-13-01"), None);
        assert_eq!(parse_timestamp_ms("April 20, 2016"), None);
        assert_eq!(parse_timestamp_ms("2016-04-20T25:00"), None);
        assert_eq!(parse_timestamp_ms("2016-04-20Tx"), None);
        assert_eq!(parse_timestamp_ms("2016-04-20Z junk"), None);
        assert_eq!(parse_timestamp_ms(""), None);
        // the calendar: leap years by the century rules, month lengths
        assert_eq!(parse_timestamp_ms("1900-02-29"), None);
        assert_eq!(parse_timestamp_ms("2400-02-29"), Some(157_113 * 86_400_000));
        assert_eq!(parse_timestamp_ms("2016-04-31"), None);
        assert_eq!(parse_timestamp_ms("2016-00-10"), None);
        assert_eq!(
            parse_timestamp_ms("0000-01-01"),
            Some(-719_528 * 86_400_000)
        );
    }
}
