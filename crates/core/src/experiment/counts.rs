//! [`Counts`]: one arm's visitors and how many of them converted, the input
//! of every statistic in this module.

use crate::error::ValidationError;
use crate::text::{cat, int};
use serde_json::Value;

/// Visitors and conversions of one arm (or one tier). A conversion here is a
/// visitor who converted, so `conversions ≤ visitors`; the constructor checks
/// it and the fields stay private so nothing else can break it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct Counts {
    visitors: u64,
    conversions: u64,
}

impl Counts {
    /// Checked counts; `field` names them in the error (`treated`,
    /// `snapshots[2].holdout`), whose field is then `<field>.conversions`.
    pub fn new(field: &str, visitors: u64, conversions: u64) -> Result<Self, ValidationError> {
        if conversions > visitors {
            let rule = cat(&[
                "at most the visitors (",
                &int(i64::try_from(visitors).unwrap_or(i64::MAX)),
                "): a conversion is a visitor who converted",
            ]);
            return Err(ValidationError::new(cat(&[field, ".conversions"]), rule));
        }
        Ok(Self { visitors, conversions })
    }

    /// Counts from JSON `{"visitors": n, "conversions": m}`, both whole
    /// numbers ≥ 0 (other keys are ignored).
    pub fn parse(field: &str, value: &Value) -> Result<Self, ValidationError> {
        let Value::Object(map) = value else {
            return Err(ValidationError::new(field, "an object with visitors and conversions"));
        };
        let count = |name: &str| {
            map.get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| ValidationError::new(cat(&[field, ".", name]), "a whole number ≥ 0"))
        };
        Self::new(field, count("visitors")?, count("conversions")?)
    }

    pub fn visitors(self) -> u64 {
        self.visitors
    }

    pub fn conversions(self) -> u64 {
        self.conversions
    }

    /// The conversion rate, or `None` without visitors (never NaN).
    pub fn rate(self) -> Option<f64> {
        (self.visitors > 0).then(|| self.conversions as f64 / self.visitors as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversions_never_exceed_visitors() {
        assert_eq!(Counts::new("t", 10, 10).map(Counts::rate), Ok(Some(1.0)));
        assert_eq!(Counts::new("t", 0, 0).map(Counts::rate), Ok(None));
        let e = Counts::new("treated", 10, 11).unwrap_err();
        assert_eq!(e.field, "treated.conversions");
        assert!(e.rule.starts_with("at most the visitors (10)"), "{}", e.rule);
    }

    #[test]
    fn parses_whole_numbers_only() {
        assert_eq!(Counts::parse("h", &json!({"visitors": 5, "conversions": 2})), Counts::new("h", 5, 2));
        for (bad, field) in [
            (json!({"visitors": 5}), "h.conversions"),
            (json!({"visitors": -5, "conversions": 0}), "h.visitors"),
            (json!({"visitors": 5.5, "conversions": 0}), "h.visitors"),
            (json!({"visitors": "5", "conversions": 0}), "h.visitors"),
            (json!([5, 0]), "h"),
        ] {
            assert_eq!(Counts::parse("h", &bad).unwrap_err().field, field, "{bad}");
        }
    }
}
