//! Instants in time, as integer milliseconds since the Unix epoch (UTC).
//!
//! The core never reads a clock: callers pass `now` in. On the wire a
//! timestamp is RFC 3339; it is always written back as UTC with exactly three
//! fractional digits (`2026-11-23T09:30:00.000Z`) so every side prints the
//! same text. Both directions are written by hand, without the `time` crate
//! or `core::fmt`: the parser alone was ~10 KB of the browser's wasm. The
//! tests hold both to the `time` crate's RFC 3339 on generated inputs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Earliest and latest instants we accept (years 1970 and 9999): outside this
/// range a timestamp is certainly a client bug.
const MIN_MS: i64 = 0;
const MAX_MS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub const MILLIS_PER_HOUR: i64 = 3_600_000;
    pub const MILLIS_PER_DAY: i64 = 86_400_000;

    /// A timestamp from epoch milliseconds, if within years 1970–9999.
    pub fn from_millis(ms: i64) -> Option<Self> {
        (MIN_MS..=MAX_MS).contains(&ms).then_some(Self(ms))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2026-11-23T09:30:00Z`, `…+01:00`, fractional seconds
    /// allowed). Sub-millisecond digits are truncated.
    ///
    /// The grammar is the `time` crate's: any one byte between date and time
    /// (RFC 3339 §5.6 allows a space), `Z` in either case, offsets up to
    /// ±23:59, and a leap second `:60` only as the last second of a month in
    /// UTC, read as `…:59.999`.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (secs, milli) = parse_rfc3339(text.as_bytes()).ok_or("must be an RFC 3339 date-time")?;
        // Before the epoch by any amount is out of range (the `time` crate
        // would truncate −0.5 ms to 0).
        let ms = if secs < 0 { -1 } else { secs * 1000 + milli };
        Self::from_millis(ms).ok_or("must be between 1970 and 9999")
    }

    /// Signed difference `self - earlier` in milliseconds.
    pub fn since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }

    /// `self + ms`, saturating within the accepted range.
    pub fn add_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms).clamp(MIN_MS, MAX_MS))
    }

    /// The UTC day number (days since the epoch), used for per-day caps.
    pub fn day(self) -> i64 {
        self.0.div_euclid(Self::MILLIS_PER_DAY)
    }

    /// The instant a wall-clock date and time reads in UTC (month 1–12);
    /// `None` for a date or time that does not exist. A time zone's wall
    /// clock is this minus its offset (the caller's to know: no tz table here).
    pub fn from_utc_parts(year: i64, month: i64, day: i64, hour: i64, minute: i64) -> Option<Timestamp> {
        let valid = (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && (0..24).contains(&hour)
            && (0..60).contains(&minute);
        let days = days_from_civil(year, month, day);
        valid.then_some(())?;
        Timestamp::from_millis(days * Self::MILLIS_PER_DAY + (hour * 60 + minute) * 60_000)
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil; `month` 1–12).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `(seconds since the epoch, milliseconds 0–999)` of an RFC 3339 text, or
/// `None` if it is not one.
fn parse_rfc3339(b: &[u8]) -> Option<(i64, i64)> {
    // Exactly `n` ASCII digits at `at`.
    let num = |at: usize, n: usize| -> Option<i64> {
        b.get(at..at + n)?.iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
    };
    let lit = |at: usize, c: u8| b.get(at) == Some(&c);
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    let hour = num(11, 2)?;
    let minute = num(14, 2)?;
    let mut second = num(17, 2)?;
    // Byte 10 is the separator: any byte, as in the `time` crate.
    if !(lit(4, b'-') && lit(7, b'-') && b.len() > 10 && lit(13, b':') && lit(16, b':')) {
        return None;
    }
    let mut at = 19;
    let mut milli = 0;
    if lit(at, b'.') {
        let digits = b.get(at + 1..).unwrap_or_default().iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Sub-millisecond digits are truncated.
        milli = (0..3).try_fold(0, |acc, i| Some(acc * 10 + if i < digits { num(at + 1 + i, 1)? } else { 0 }))?;
        at += 1 + digits;
    }
    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if !lit(at + 3, b':') || h > 23 || m > 59 {
                return None;
            }
            at += 6;
            if sign == b'-' { -(h * 60 + m) } else { h * 60 + m }
        }
        _ => return None,
    };
    if at != b.len() || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let leap = second == 60;
    if leap {
        second = 59;
        milli = 999;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    if leap {
        // Only 23:59:60 UTC on the last day of a month is a leap second.
        let utc_day = secs.div_euclid(86_400);
        let next = utc_day + 1;
        let first_of_next_month = days_from_civil_parts(next).2 == 1;
        if secs.rem_euclid(86_400) != 86_399 || !first_of_next_month {
            return None;
        }
    }
    Some((secs, milli))
}

/// `(year, month 1–12, day)` of a UTC day number (days since the epoch).
pub fn civil_date(day: i64) -> (i64, i64, i64) {
    days_from_civil_parts(day)
}

/// `(year, month, day)` of a day number (civil_from_days).
fn days_from_civil_parts(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

impl Timestamp {
    /// `2026-11-23T09:30:00.000Z`: always UTC, exactly three fractional
    /// digits. Written by hand (civil-from-days), without `core::fmt`.
    pub fn to_rfc3339(self) -> String {
        let ms_of_day = self.0.rem_euclid(Self::MILLIS_PER_DAY);
        let (year, month, day) = days_from_civil_parts(self.0.div_euclid(Self::MILLIS_PER_DAY));
        let mut s = String::with_capacity(24);
        for (n, width, sep) in [
            (year, 4, '-'),
            (month, 2, '-'),
            (day, 2, 'T'),
            (ms_of_day / 3_600_000, 2, ':'),
            (ms_of_day / 60_000 % 60, 2, ':'),
            (ms_of_day / 1000 % 60, 2, '.'),
            (ms_of_day % 1000, 3, 'Z'),
        ] {
            crate::text::push_padded(&mut s, n, width);
            s.push(sep);
        }
        s
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn utc_parts_read_as_their_rfc_3339_form() {
        let t = Timestamp::from_utc_parts(2026, 12, 4, 18, 5).unwrap();
        assert_eq!(t, Timestamp::parse("2026-12-04T18:05:00Z").unwrap());
        assert_eq!(Timestamp::from_utc_parts(2028, 2, 29, 0, 0), Timestamp::parse("2028-02-29T00:00:00Z").ok());
        for bad in
            [(2026, 2, 29, 0, 0), (2026, 13, 1, 0, 0), (2026, 1, 0, 0, 0), (2026, 1, 1, 24, 0), (2026, 1, 1, 0, 60)]
        {
            assert_eq!(Timestamp::from_utc_parts(bad.0, bad.1, bad.2, bad.3, bad.4), None, "{bad:?}");
        }
    }

    /// What the `time` crate makes of `text`, with our range and our one
    /// deliberate difference (anything before the epoch is out of range).
    fn by_time(text: &str) -> Result<Timestamp, &'static str> {
        let dt = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| "must be an RFC 3339 date-time")?;
        let nanos = dt.unix_timestamp_nanos();
        let ms = if nanos < 0 { -1 } else { (nanos / 1_000_000) as i64 };
        Timestamp::from_millis(ms).ok_or("must be between 1970 and 9999")
    }

    /// RFC 3339-shaped texts around every edge: field widths, calendar
    /// limits, leap seconds, offsets, separators, fractions, trailing bytes.
    fn rfc3339_like() -> impl Strategy<Value = String> {
        let field = |n: usize, hi: u32| {
            prop_oneof![
                8 => (0..=hi).prop_map(move |v| format!("{v:0n$}")),
                1 => "[0-9]{1,3}",
                1 => "[0-9a-z+: ]{0,3}",
            ]
        };
        (
            prop_oneof![(1960u32..2110).prop_map(|y| format!("{y:04}")), field(4, 9999)],
            field(2, 13),
            field(2, 32),
            prop_oneof![Just("T".to_owned()), Just("t".to_owned()), Just(" ".to_owned()), "[-_x:é]"],
            field(2, 24),
            field(2, 60),
            prop_oneof![3 => field(2, 60), 1 => Just("60".to_owned())],
            prop_oneof![Just(String::new()), "\\.[0-9]{0,12}", Just(".".to_owned())],
            prop_oneof![
                Just("Z".to_owned()),
                Just("z".to_owned()),
                (prop_oneof![Just('+'), Just('-')], 0u32..26, 0u32..62)
                    .prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
                "[-+Zz0-9:]{0,7}",
            ],
            prop_oneof![8 => Just(String::new()), 1 => "[ Z0-9x]{1,2}"],
        )
            .prop_map(|(y, mo, d, sep, h, mi, s, frac, off, tail)| {
                format!("{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{off}{tail}")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn parses_like_the_time_crate(text in rfc3339_like()) {
            prop_assert_eq!(Timestamp::parse(&text), by_time(&text), "{}", text);
        }
    }

    #[test]
    fn parses_like_the_time_crate_at_the_edges() {
        for text in [
            "2026-11-23T09:30:00Z",
            "2026-11-23t09:30:00.123456789z",
            "2026-11-23 09:30:00.1+01:00",
            "2026-11-23T09:30:00-00:00",
            "2026-11-23T09:30:00+23:59",
            "2026-11-23T09:30:00+24:00",
            "2026-11-23T09:30:00+01:60",
            "2026-11-23T09:30:00+0100",
            "2024-02-29T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2017-01-01T00:59:60+01:00",
            "2016-12-30T23:59:60Z",
            "2016-06-30T23:59:60Z",
            "2016-12-31T22:59:60Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.9999Z",
            "1970-01-01T00:59:59+01:00",
            "1970-01-01T01:00:00.000+01:00",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59.999-00:01",
            "2026-11-23T09:30:00.Z",
            "2026-11-23T09:30:00",
            "2026-11-23T09:30Z",
            "2026-11-23T9:30:00Z",
            "2026-11-23T09:30:00Z ",
            "2026-11-23é09:30:00Z",
            "2026-00-10T09:30:00Z",
            "2026-04-31T09:30:00Z",
            "2026-04-00T09:30:00Z",
            "+2026-11-23T09:30:00Z",
            "",
            "2026-11-23",
        ] {
            assert_eq!(Timestamp::parse(text), by_time(text), "{text}");
        }
    }

    #[test]
    fn round_trips_in_utc_with_millis() {
        let t = Timestamp::parse("2026-11-23T10:30:00.5+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T09:30:00.500Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn prints_like_the_time_crate() {
        for ms in [0, 1, 999, 86_399_999, 951_782_400_000, 1_772_445_600_123, MAX_MS] {
            let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let want = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            );
            assert_eq!(Timestamp(ms).to_rfc3339(), want);
        }
        // Every day boundary over four centuries.
        for d in (0..146_097 * 3).step_by(7) {
            let ms = d * Timestamp::MILLIS_PER_DAY;
            let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let t = Timestamp(ms).to_rfc3339();
            assert_eq!(t.get(..10).unwrap(), format!("{:04}-{:02}-{:02}", dt.year(), u8::from(dt.month()), dt.day()));
        }
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("1969-12-31T23:59:59Z").is_err());
        assert!(Timestamp::parse("2026-13-01T00:00:00Z").is_err());
        assert!(Timestamp::from_millis(-1).is_none());
    }
}
