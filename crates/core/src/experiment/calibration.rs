//! Tier calibration: do visitors in higher scoring tiers convert more?
//!
//! A scoring model whose tiers are worth switching CTAs on should see the
//! conversion rate rise with the tier. This reports each tier's rate and
//! whether they rise; it is a check of the rules, not a statistical test.

use super::counts::Counts;
use crate::error::ValidationError;
use crate::text::{cat, int};

/// One tier's counts and rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TierRate {
    pub tier: String,
    pub visitors: u64,
    pub conversions: u64,
    /// `None` without visitors.
    pub rate: Option<f64>,
}

/// Rates per tier, in the order given, and whether they never fall.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calibration {
    pub tiers: Vec<TierRate>,
    /// Each tier's rate is at least the rate of the tier before it; a tier
    /// without visitors is skipped (it is evidence neither way), so no tiers
    /// or one tier is monotone.
    pub monotone: bool,
}

/// The calibration of `tiers`, given lowest tier first (the rules' order).
/// A tier id given twice is refused: its counts would be ambiguous.
pub fn calibration(tiers: &[(&str, Counts)]) -> Result<Calibration, ValidationError> {
    for (i, (id, _)) in tiers.iter().enumerate() {
        if let Some(j) = tiers.iter().take(i).position(|(other, _)| other == id) {
            let field = cat(&["tiers[", &int(i as i64), "].tier"]);
            return Err(ValidationError::new(field, cat(&["unique: `", id, "` is tiers[", &int(j as i64), "]"])));
        }
    }
    let tiers: Vec<TierRate> = tiers
        .iter()
        .map(|(id, c)| TierRate {
            tier: (*id).to_owned(),
            visitors: c.visitors(),
            conversions: c.conversions(),
            rate: c.rate(),
        })
        .collect();
    let rates: Vec<f64> = tiers.iter().filter_map(|t| t.rate).collect();
    let monotone = rates.windows(2).all(|w| matches!(w, [a, b] if a <= b));
    Ok(Calibration { tiers, monotone })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: u64, x: u64) -> Counts {
        Counts::new("c", v, x).unwrap()
    }

    #[test]
    fn monotone_skips_empty_tiers() {
        let cal = calibration(&[("cold", c(100, 1)), ("warm", c(0, 0)), ("hot", c(10, 1))]).unwrap();
        assert!(cal.monotone);
        assert_eq!(cal.tiers[1].rate, None);
        assert!(!calibration(&[("cold", c(100, 5)), ("hot", c(100, 4))]).unwrap().monotone);
        assert!(calibration(&[("a", c(10, 1)), ("b", c(20, 2))]).unwrap().monotone, "ties never fall");
        assert!(calibration(&[]).unwrap().monotone);
    }

    #[test]
    fn refuses_a_tier_twice() {
        let e = calibration(&[("a", c(1, 0)), ("b", c(1, 0)), ("a", c(1, 1))]).unwrap_err();
        assert_eq!((e.field.as_str(), e.rule.as_str()), ("tiers[2].tier", "unique: `a` is tiers[0]"));
    }
}
