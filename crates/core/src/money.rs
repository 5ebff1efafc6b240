//! Money: a validated ISO 4217 [`Currency`] with its minor-unit digits (0 for
//! JPY or KRW, 3 for KWD, BHD, JOD, OMR or TND, 2 for most), and amounts in
//! integer minor units read exactly from major-unit decimals ([`parse_major`]):
//! `"49.90"` EUR is 4990, `5000` JPY is 5000, `"1.250"` KWD is 1250. No
//! floating point touches an amount, so every runtime stores the same figure.

use crate::error::ValidationError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The largest amount accepted anywhere, in minor units (10^15: ten trillion
/// in a two-digit currency). Far below `i64::MAX`, and below 2^53, so the
/// figure survives JavaScript numbers and D1 exactly.
pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// Minor-unit digits where no currency is set.
pub const DEFAULT_DIGITS: u32 = 2;

/// An ISO 4217 currency that has minor units (not XAU, XDR or XXX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    code: iso_currency::Currency,
    digits: u32,
}

impl Currency {
    /// `code` as written in ISO 4217: three capital letters of a listed
    /// currency with minor units.
    pub fn parse(code: &str) -> Result<Currency, ValidationError> {
        let iso = iso_currency::Currency::from_code(code)
            .ok_or_else(|| ValidationError::new("currency", "an ISO 4217 code like EUR"))?;
        let digits = iso
            .exponent()
            .ok_or_else(|| ValidationError::new("currency", "a currency with minor units (not a metal or XXX)"))?;
        Ok(Currency { code: iso, digits: u32::from(digits) })
    }

    pub fn code(&self) -> &'static str {
        self.code.code()
    }

    /// How many digits a major unit has in minor units.
    pub fn digits(&self) -> u32 {
        self.digits
    }
}

/// The digits of an optional currency ([`DEFAULT_DIGITS`] without one).
pub fn digits_of(currency: Option<Currency>) -> u32 {
    currency.map_or(DEFAULT_DIGITS, |c| c.digits())
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// A major-unit amount as minor units: a plain decimal (`"49.90"`, `"5000"`,
/// `".5"`), surrounding spaces allowed; no sign, exponent or separator. More
/// fractional digits than the currency has are refused unless they are zeros
/// (`"49.900"` EUR is 4990, `"49.905"` is an error): an amount is never
/// rounded. The error names `field`.
pub fn parse_major(field: &str, text: &str, digits: u32) -> Result<i64, ValidationError> {
    let bad = |rule: String| ValidationError::new(field, rule);
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if (whole.is_empty() && frac.is_empty()) || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad("a decimal number of major units like 49.90 (no sign, exponent or separator)".into()));
    }
    let d = digits as usize;
    if frac.len() > d && frac.bytes().skip(d).any(|b| b != b'0') {
        return Err(bad(match digits {
            0 => "a whole number: this currency has no minor unit".into(),
            1 => "at most 1 decimal for this currency".into(),
            n => format!("at most {n} decimals for this currency"),
        }));
    }
    let mut minor: i64 = 0;
    let frac_digits = frac.bytes().chain(std::iter::repeat(b'0')).take(d);
    for b in whole.bytes().chain(frac_digits) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .filter(|m| *m <= MAX_MINOR)
            .ok_or_else(|| bad("too large an amount".into()))?;
    }
    Ok(minor)
}

/// [`parse_major`] of a JSON value: a number as JSON wrote it (`49.9`, the
/// shortest form that reads back, is 4990) or a string.
pub fn parse_major_json(field: &str, value: &Value, digits: u32) -> Result<i64, ValidationError> {
    match value {
        Value::String(s) => parse_major(field, s, digits),
        Value::Number(n) => parse_major(field, &n.to_string(), digits),
        _ => Err(ValidationError::new(field, "a decimal number of major units, as a number or a string")),
    }
}

/// Minor units written back as a major-unit decimal (`4990` at 2 digits is
/// `"49.90"`): what configuration answers, read back by [`parse_major`].
pub fn format_major(minor: i64, digits: u32) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{m}");
    }
    let scale = 10u64.pow(digits);
    format!("{sign}{}.{:0width$}", m / scale, m % scale, width = digits as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_carry_their_digits() {
        for (code, digits) in [("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3), ("TND", 3), ("CLF", 4)] {
            assert_eq!(Currency::parse(code).unwrap().digits(), digits, "{code}");
        }
        for bad in ["ABC", "eur", "EU", "EURO", "", "XAU", "XXX"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_are_exact_or_refused() {
        assert_eq!(parse_major("v", "49.90", 2), Ok(4990));
        assert_eq!(parse_major("v", "49.9", 2), Ok(4990));
        assert_eq!(parse_major("v", " 5000 ", 0), Ok(5000));
        assert_eq!(parse_major("v", "5000.00", 0), Ok(5000));
        assert_eq!(parse_major("v", "1.25", 3), Ok(1250));
        assert_eq!(parse_major("v", ".5", 2), Ok(50));
        assert_eq!(parse_major("v", "7.", 2), Ok(700));
        for bad in ["", ".", "-1", "+1", "1e3", "1,000", "49.905", "0x10", "1 000", "NaN", "10000000000000.01"] {
            assert!(parse_major("v", bad, 2).is_err(), "{bad}");
        }
        assert!(parse_major("v", "5000.5", 0).is_err());
        assert_eq!(parse_major("v", "9999999999999.99", 2), Ok(999_999_999_999_999));
    }

    #[test]
    fn json_numbers_read_as_written() {
        assert_eq!(parse_major_json("v", &serde_json::json!(49.9), 2), Ok(4990));
        assert_eq!(parse_major_json("v", &serde_json::json!(0.1), 2), Ok(10));
        assert_eq!(parse_major_json("v", &serde_json::json!(5000), 0), Ok(5000));
        assert!(parse_major_json("v", &serde_json::json!(-5), 2).is_err());
        assert!(parse_major_json("v", &serde_json::json!(true), 2).is_err());
    }

    #[test]
    fn formatting_reads_back() {
        for (minor, digits) in [(4990, 2), (5000, 0), (1250, 3), (5, 2), (0, 2), (MAX_MINOR, 3)] {
            let text = format_major(minor, digits);
            assert_eq!(parse_major("v", &text, digits), Ok(minor), "{text}");
        }
        assert_eq!(format_major(4990, 2), "49.90");
        assert_eq!(format_major(7, 3), "0.007");
    }
}
