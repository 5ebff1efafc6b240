//! Instants in time, as integer milliseconds since the Unix epoch (UTC).
//!
//! The core never reads a clock: callers pass `now` in. On the wire a
//! timestamp is RFC 3339; it is always written back as UTC with exactly three
//! fractional digits (`2026-11-23T09:30:00.000Z`) so every side prints the
//! same text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let dt = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| "must be an RFC 3339 date-time")?;
        let ms = (dt.unix_timestamp_nanos() / 1_000_000) as i64;
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
}

impl Timestamp {
    /// `2026-11-23T09:30:00.000Z`: always UTC, exactly three fractional
    /// digits. Written by hand (civil-from-days), without `core::fmt`.
    pub fn to_rfc3339(self) -> String {
        let days = self.0.div_euclid(Self::MILLIS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(Self::MILLIS_PER_DAY);
        // Howard Hinnant's civil_from_days (proleptic Gregorian).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
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
