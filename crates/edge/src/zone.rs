//! A site's time zone, through the runtime's `Intl` (the tz database the
//! core does not carry): an instant's wall-clock date and time there, and
//! the instant a local date starts. Only `Intl.DateTimeFormat`'s
//! `formatToParts` is used, called through `Reflect` so that an unknown
//! zone is an error, never a thrown exception.

use microfunnel_core::Timestamp;
use worker::js_sys::{Array, Date, Function, Object, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};

/// A wall-clock reading: year, month (1–12), day, hour, minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Local {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
}

impl Local {
    pub fn date_label(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
    pub fn hour_label(&self) -> String {
        format!("{} {:02}:00", self.date_label(), self.hour)
    }
}

pub struct Zone {
    format: JsValue,
    to_parts: Function,
}

impl Zone {
    /// `None` when the runtime knows no zone of that name.
    pub fn new(name: &str) -> Option<Zone> {
        let intl = Reflect::get(&worker::js_sys::global(), &"Intl".into()).ok()?;
        let ctor: Function = Reflect::get(&intl, &"DateTimeFormat".into()).ok()?.dyn_into().ok()?;
        let opts = Object::new();
        for (k, v) in [
            ("timeZone", name),
            ("year", "numeric"),
            ("month", "numeric"),
            ("day", "numeric"),
            ("hour", "numeric"),
            ("minute", "numeric"),
            ("hourCycle", "h23"),
        ] {
            Reflect::set(&opts, &k.into(), &v.into()).ok()?;
        }
        let args = Array::of2(&"en-US".into(), &opts);
        let format = Reflect::construct(&ctor, &args).ok()?;
        let to_parts: Function = Reflect::get(&format, &"formatToParts".into()).ok()?.dyn_into().ok()?;
        Some(Zone { format, to_parts })
    }

    /// The wall-clock reading of `ms` in this zone.
    pub fn local(&self, ms: i64) -> Option<Local> {
        let date = Date::new(&JsValue::from_f64(ms as f64));
        let parts: Array = self.to_parts.call1(&self.format, &date).ok()?.dyn_into().ok()?;
        let mut l = Local { year: 0, month: 0, day: 0, hour: 0, minute: 0 };
        for p in parts.iter() {
            let kind = Reflect::get(&p, &"type".into()).ok()?.as_string()?;
            let value = || -> Option<i64> { Reflect::get(&p, &"value".into()).ok()?.as_string()?.parse().ok() };
            match kind.as_str() {
                "year" => l.year = value()?,
                "month" => l.month = value()?,
                "day" => l.day = value()?,
                "hour" => l.hour = value()? % 24,
                "minute" => l.minute = value()?,
                _ => {}
            }
        }
        Some(l)
    }

    /// The first instant of the local date of `at` (its midnight, or the
    /// first minute that exists where a clock change skips midnight).
    pub fn start_of_day(&self, at: i64) -> Option<i64> {
        let d = self.local(at)?;
        self.instant(Local { hour: 0, minute: 0, ..d })
    }

    /// The instant whose reading is `want`, found by correcting a guess by
    /// the zone's offset there (twice: the offset may change in between).
    fn instant(&self, want: Local) -> Option<i64> {
        let wall =
            |l: Local| Timestamp::from_utc_parts(l.year, l.month, l.day, l.hour, l.minute).map(Timestamp::millis);
        let target = wall(want)?;
        let mut guess = target;
        for _ in 0..3 {
            let offset = wall(self.local(guess)?)? - guess;
            let next = target - offset;
            if next == guess {
                break;
            }
            guess = next;
        }
        // In a skipped hour no instant reads `want`: the next one that exists.
        for _ in 0..8 {
            if self.local(guess)? >= want {
                break;
            }
            guess += 15 * 60_000;
        }
        Some(guess)
    }

    /// The first instant of a local date (`YYYY-MM-DD`); `None` for text that is
    /// not a date.
    pub fn start_of_date(&self, date: &str) -> Option<i64> {
        let mut it = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let (year, month, day) = (it.next()??, it.next()??, it.next()??);
        Timestamp::from_utc_parts(year, month, day, 0, 0)?;
        self.instant(Local { year, month, day, hour: 0, minute: 0 })
    }

    /// The first instant of the local date after that of `at`.
    pub fn start_of_next_day(&self, at: i64) -> Option<i64> {
        let start = self.start_of_day(at)?;
        // 36 hours on is always within the next date (days are 23 to 25 h).
        self.start_of_day(start + 36 * 3_600_000)
    }
}
