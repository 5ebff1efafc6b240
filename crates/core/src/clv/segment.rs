//! Customer segments by rules a site sets (`customers` in its config): who is
//! new, who brings the most value, who is slipping away and who has gone.
//! The rules read the models' P(alive) when a fit exists and the days since
//! the last purchase always (BG/NBD keeps a one-time buyer "alive" forever:
//! the model only lets customers drop out after a repeat purchase).

use crate::error::ValidationError;
use crate::money::MAX_MINOR;
use serde_json::{Map, Value, json};

/// A customer's segment; the first rule that matches, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// P(alive) under `lapsed_p_alive`, or no purchase for `lapsed_days`.
    Lapsed,
    /// First purchase within the last `new_days`.
    New,
    /// P(alive) under `at_risk_p_alive`, or no purchase for `at_risk_days`.
    AtRisk,
    /// Value to date plus predicted value at or over the threshold
    /// (`high_value_minor`, or the top fifth of the site's customers).
    HighValue,
    /// Everyone else: alive, not new, not among the most valuable.
    Occasional,
}

impl Segment {
    pub const ALL: [Segment; 5] =
        [Segment::New, Segment::HighValue, Segment::Occasional, Segment::AtRisk, Segment::Lapsed];

    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Lapsed => "lapsed",
            Segment::New => "new",
            Segment::AtRisk => "at_risk",
            Segment::HighValue => "high_value",
            Segment::Occasional => "occasional",
        }
    }

    pub fn parse(text: &str) -> Option<Segment> {
        Segment::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The thresholds of the segments and the prediction horizon, validated:
/// `0 < lapsed_p_alive ≤ at_risk_p_alive < 1`, `at_risk_days < lapsed_days`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentRules {
    new_days: u32,
    at_risk_days: u32,
    lapsed_days: u32,
    at_risk_p_alive: f64,
    lapsed_p_alive: f64,
    high_value_minor: Option<i64>,
    horizon_days: u32,
}

impl Default for SegmentRules {
    fn default() -> Self {
        SegmentRules {
            new_days: 30,
            at_risk_days: 120,
            lapsed_days: 365,
            at_risk_p_alive: 0.5,
            lapsed_p_alive: 0.15,
            high_value_minor: None,
            horizon_days: 365,
        }
    }
}

/// The fields of `customers` in a site's config.
pub const FIELDS: [&str; 7] = [
    "new_days",
    "at_risk_days",
    "lapsed_days",
    "at_risk_p_alive",
    "lapsed_p_alive",
    "high_value_minor",
    "horizon_days",
];
/// The longest window any threshold or horizon may name: ten years.
pub const MAX_DAYS: u32 = 3650;

/// What one customer is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    pub days_since_first: i64,
    pub days_since_last: i64,
    /// `None` without a fitted model.
    pub p_alive: Option<f64>,
    /// Value to date plus the predicted value over the horizon.
    pub value_minor: i64,
}

impl SegmentRules {
    /// Reads the `customers` object; every error names its field
    /// (`customers.lapsed_days`, …), an unknown field included.
    pub fn from_json(value: &Value) -> Result<SegmentRules, ValidationError> {
        let m = match value {
            Value::Null => return Ok(SegmentRules::default()),
            Value::Object(m) => m,
            _ => return Err(ValidationError::new("customers", "must be an object")),
        };
        if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(ValidationError::new(
                format!("customers.{k}"),
                format!("unknown field (expected one of: {})", FIELDS.join(", ")),
            ));
        }
        let d = SegmentRules::default();
        let days = |key: &str, default: u32| -> Result<u32, ValidationError> {
            match m.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => {
                    v.as_u64().filter(|n| (1..=u64::from(MAX_DAYS)).contains(n)).map(|n| n as u32).ok_or_else(|| {
                        ValidationError::new(
                            format!("customers.{key}"),
                            format!("a whole number of days, 1 to {MAX_DAYS}"),
                        )
                    })
                }
            }
        };
        let share = |key: &str, default: f64| -> Result<f64, ValidationError> {
            match m.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_f64().filter(|p| *p > 0.0 && *p < 1.0).ok_or_else(|| {
                    ValidationError::new(format!("customers.{key}"), "a probability between 0 and 1, both excluded")
                }),
            }
        };
        let rules = SegmentRules {
            new_days: days("new_days", d.new_days)?,
            at_risk_days: days("at_risk_days", d.at_risk_days)?,
            lapsed_days: days("lapsed_days", d.lapsed_days)?,
            at_risk_p_alive: share("at_risk_p_alive", d.at_risk_p_alive)?,
            lapsed_p_alive: share("lapsed_p_alive", d.lapsed_p_alive)?,
            high_value_minor: match m.get("high_value_minor") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().filter(|n| (1..=MAX_MINOR).contains(n)).ok_or_else(|| {
                    ValidationError::new(
                        "customers.high_value_minor",
                        format!("whole minor units, 1 to {MAX_MINOR}, or null for the top fifth"),
                    )
                })?),
            },
            horizon_days: days("horizon_days", d.horizon_days)?,
        };
        if rules.at_risk_days >= rules.lapsed_days {
            return Err(ValidationError::new("customers.at_risk_days", "must be fewer than lapsed_days"));
        }
        if rules.lapsed_p_alive > rules.at_risk_p_alive {
            return Err(ValidationError::new("customers.lapsed_p_alive", "must not exceed at_risk_p_alive"));
        }
        Ok(rules)
    }

    /// The stored form; [`SegmentRules::from_json`] reads it back equal.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("new_days".into(), json!(self.new_days));
        m.insert("at_risk_days".into(), json!(self.at_risk_days));
        m.insert("lapsed_days".into(), json!(self.lapsed_days));
        m.insert("at_risk_p_alive".into(), json!(self.at_risk_p_alive));
        m.insert("lapsed_p_alive".into(), json!(self.lapsed_p_alive));
        m.insert("high_value_minor".into(), json!(self.high_value_minor));
        m.insert("horizon_days".into(), json!(self.horizon_days));
        Value::Object(m)
    }

    pub fn horizon_days(&self) -> u32 {
        self.horizon_days
    }

    /// The value at or over which a customer is high-value: the site's
    /// threshold, or else the smallest value of the top fifth of `values`
    /// (at least one customer; none when every value is 0).
    pub fn high_value_threshold(&self, values: &[i64]) -> Option<i64> {
        if let Some(t) = self.high_value_minor {
            return Some(t);
        }
        let mut sorted: Vec<i64> = values.iter().copied().filter(|v| *v > 0).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let top = values.len().div_ceil(5).clamp(1, sorted.len());
        Some(sorted[top - 1])
    }

    /// The segment of one customer, given the high-value threshold.
    pub fn classify(&self, s: &Standing, threshold: Option<i64>) -> Segment {
        let below = |limit: f64| s.p_alive.is_some_and(|p| p < limit);
        if below(self.lapsed_p_alive) || s.days_since_last >= i64::from(self.lapsed_days) {
            Segment::Lapsed
        } else if s.days_since_first < i64::from(self.new_days) {
            Segment::New
        } else if below(self.at_risk_p_alive) || s.days_since_last >= i64::from(self.at_risk_days) {
            Segment::AtRisk
        } else if threshold.is_some_and(|t| s.value_minor >= t) {
            Segment::HighValue
        } else {
            Segment::Occasional
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_checked_by_name() {
        let e = |v: Value| SegmentRules::from_json(&v).unwrap_err().field;
        assert_eq!(e(json!({"lapsed_days": 0})), "customers.lapsed_days");
        assert_eq!(e(json!({"at_risk_days": 400})), "customers.at_risk_days");
        assert_eq!(e(json!({"lapsed_p_alive": 0.9})), "customers.lapsed_p_alive");
        assert_eq!(e(json!({"at_risk_p_alive": 1.0})), "customers.at_risk_p_alive");
        assert_eq!(e(json!({"high_value_minor": 1.5})), "customers.high_value_minor");
        assert_eq!(e(json!({"dormant_days": 90})), "customers.dormant_days");
        assert_eq!(e(json!([])), "customers");
        let r = SegmentRules::from_json(&json!({"new_days": 14, "high_value_minor": 50000})).unwrap();
        assert_eq!(SegmentRules::from_json(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn first_rule_that_matches() {
        let r = SegmentRules::default();
        let s = |first, last, p_alive, value_minor| Standing {
            days_since_first: first,
            days_since_last: last,
            p_alive,
            value_minor,
        };
        assert_eq!(r.classify(&s(400, 365, None, 9), Some(1)), Segment::Lapsed);
        assert_eq!(r.classify(&s(40, 10, Some(0.1), 9), Some(1)), Segment::Lapsed);
        assert_eq!(r.classify(&s(10, 10, Some(0.3), 9), Some(1)), Segment::New);
        assert_eq!(r.classify(&s(200, 130, Some(0.9), 9), Some(1)), Segment::AtRisk);
        assert_eq!(r.classify(&s(200, 10, Some(0.4), 9), Some(1)), Segment::AtRisk);
        assert_eq!(r.classify(&s(200, 10, Some(0.9), 9), Some(9)), Segment::HighValue);
        assert_eq!(r.classify(&s(200, 10, Some(0.9), 8), Some(9)), Segment::Occasional);
        assert_eq!(r.classify(&s(200, 10, None, 8), None), Segment::Occasional);
    }

    #[test]
    fn top_fifth() {
        let r = SegmentRules::default();
        assert_eq!(r.high_value_threshold(&[10, 50, 20, 40, 30, 0, 0, 0, 0, 0]), Some(40));
        assert_eq!(r.high_value_threshold(&[7]), Some(7));
        assert_eq!(r.high_value_threshold(&[0, 0]), None);
    }
}
