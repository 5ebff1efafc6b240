//! Holdout assignment: which arm of a CTA holdout test a visitor is in.
//!
//! A holdout visitor sees the site's default CTA whatever their tier; a
//! treated visitor sees the tier-switched one. Comparing the two arms'
//! conversion rates is what tells a site whether switching CTAs by tier
//! earns anything ([`super::lift`]).

use crate::error::ValidationError;
use crate::text::{cat, int};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The share of visitors held out, a whole percent from 0 (off) to
/// [`HoldoutPercent::MAX`]. Parsed once from configuration
/// ([`HoldoutPercent::parse`]); serialised as the bare integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(transparent)]
pub struct HoldoutPercent(u8);

impl HoldoutPercent {
    /// No holdout: every visitor is treated.
    pub const OFF: Self = Self(0);
    /// The largest holdout. Above half, the holdout would be the bigger
    /// arm: most visitors would lose the treatment the site is paying to
    /// test, for no gain in precision over the mirror-image split.
    pub const MAX: u8 = 50;

    /// `percent` if it is at most [`Self::MAX`].
    pub fn new(percent: u8) -> Option<Self> {
        (percent <= Self::MAX).then_some(Self(percent))
    }

    /// From JSON: an integer 0 to 50 as JSON wrote it. A string (`"10"`), a
    /// fraction (`2.5`) or a float spelling (`10.0`) is refused, as the core
    /// refuses them for its other whole-number settings.
    pub fn parse(field: &str, value: &Value) -> Result<Self, ValidationError> {
        if let Some(n) = value.as_u64() {
            return u8::try_from(n).ok().and_then(Self::new).ok_or_else(|| {
                let rule = cat(&["at most ", &int(i64::from(Self::MAX)), ": the holdout is the smaller arm"]);
                ValidationError::new(field, rule)
            });
        }
        if value.as_i64().is_some() {
            return Err(ValidationError::new(field, "at least 0 (0 turns the holdout off)"));
        }
        Err(ValidationError::new(field, "a whole number of percent, 0 (off) to 50"))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// The arm a visitor is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// Sees the CTA switched by tier.
    Treated,
    /// Sees the site's default CTA.
    Holdout,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Treated => "treated",
            Arm::Holdout => "holdout",
        }
    }

    pub fn parse(text: &str) -> Option<Arm> {
        match text {
            "treated" => Some(Arm::Treated),
            "holdout" => Some(Arm::Holdout),
            _ => None,
        }
    }
}

/// The arm an event's visitor is in: none while the test is off, or without
/// a visitor id (which exists only with analytics consent) — such a visitor
/// is in neither arm and sees the CTAs by tier.
pub fn arm_of(site_id: &str, anonymous_id: Option<&str>, percent: HoldoutPercent) -> Option<Arm> {
    let id = anonymous_id.filter(|_| percent.0 > 0)?;
    Some(assign(site_id, id, percent))
}

/// The tier whose CTA variants and `[data-mf-tier]` elements a visitor is
/// shown: the holdout sees the coldest tier's whatever their score, so the
/// difference between the arms is the switching itself.
pub fn shown_tier<'a>(arm: Option<Arm>, tier: &'a str, coldest: &'a str) -> &'a str {
    if arm == Some(Arm::Holdout) { coldest } else { tier }
}

/// What the hash is taken over, before the ids. Versioned so that a future
/// change of scheme is a new name, never a silent reshuffle of arms.
const DOMAIN: &[u8] = b"microfunnel/holdout/v1\0";

/// How many buckets a percent is counted in: a percent is 100 buckets.
const BUCKETS: u64 = 10_000;

/// The visitor's bucket, 0 to 9999: the first 8 bytes of
/// `SHA-256("microfunnel/holdout/v1\0" ‖ site_id ‖ "\0" ‖ visitor_id)` as a
/// big-endian integer, modulo 10 000. (2⁶⁴ is not a multiple of 10 000, so
/// the low buckets are favoured by about 10⁻¹⁵: nothing a test can see.)
///
/// The site id is in the hash so that one visitor id seen by two sites
/// lands in unrelated buckets. The NUL separator is unambiguous for ids
/// without NUL bytes, which site and visitor ids never hold.
pub fn bucket(site_id: &str, visitor_id: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(site_id.as_bytes());
    h.update([0u8]);
    h.update(visitor_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    for (b, d) in first.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    // `BUCKETS` fits in a u32, so the remainder does.
    (u64::from_be_bytes(first) % BUCKETS) as u32
}

/// The visitor's arm: [`Arm::Holdout`] when their [`bucket`] is below
/// `percent × 100`, else [`Arm::Treated`]; at 0% always treated.
///
/// Stable: the arm depends only on the two ids and the percent — SHA-256
/// and integer arithmetic, the same bits natively, in the browser's wasm and
/// in workerd, with no seed, clock or stored state — so a visitor gets the
/// same arm on every page, every day and on both sides of the wire. Raising
/// the percent only moves treated visitors into the holdout (the buckets
/// below the old threshold stay below the new one), so a test can grow
/// without reshuffling those already in it.
///
/// Consent is the caller's job: assign (and count) a visitor only with
/// analytics consent, the purpose under which the visitor id itself exists.
/// Without it the visitor is in neither arm and must not be recorded.
pub fn assign(site_id: &str, visitor_id: &str, percent: HoldoutPercent) -> Arm {
    if percent.0 > 0 && u64::from(bucket(site_id, visitor_id)) < u64::from(percent.0) * (BUCKETS / 100) {
        Arm::Holdout
    } else {
        Arm::Treated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percent_is_refused_outside_0_to_50() {
        assert_eq!(HoldoutPercent::parse("p", &json!(0)), Ok(HoldoutPercent::OFF));
        assert_eq!(HoldoutPercent::parse("p", &json!(50)).map(HoldoutPercent::get), Ok(50));
        let rule = |v: Value| HoldoutPercent::parse("p", &v).unwrap_err().rule;
        assert!(rule(json!(51)).starts_with("at most 50"));
        assert!(rule(json!(300)).starts_with("at most 50"));
        assert!(rule(json!(u64::MAX)).starts_with("at most 50"));
        assert!(rule(json!(-1)).starts_with("at least 0"));
        for bad in [json!(2.5), json!(10.0), json!("10"), json!(null), json!(true)] {
            assert!(rule(bad.clone()).starts_with("a whole number"), "{bad}");
        }
    }

    #[test]
    fn arms_are_stable_nested_and_near_the_percent() {
        let p = |n| HoldoutPercent::new(n).unwrap();
        let mut held = [0u32; 3];
        for i in 0..20_000 {
            let v = format!("visitor-{i}");
            assert_eq!(assign("site", &v, p(0)), Arm::Treated);
            let arms = [assign("site", &v, p(5)), assign("site", &v, p(10)), assign("site", &v, p(50))];
            // Nested: held out at 5% means held out at 10% and at 50%.
            for w in arms.windows(2) {
                assert!(!(w[0] == Arm::Holdout && w[1] == Arm::Treated), "{v}");
            }
            for (h, a) in held.iter_mut().zip(arms) {
                *h += u32::from(a == Arm::Holdout);
            }
            assert_eq!(assign("site", &v, p(10)), arms[1], "same visitor, same arm");
        }
        // Binomial(20 000, p): within about 4 standard deviations.
        for (h, expected, sd) in [(held[0], 1000.0, 31.0), (held[1], 2000.0, 42.0), (held[2], 10_000.0, 71.0)] {
            assert!((f64::from(h) - expected).abs() < 4.0 * sd, "{h} vs {expected}");
        }
    }

    #[test]
    fn the_site_is_part_of_the_hash() {
        let differ = (0..100).filter(|i| {
            let v = format!("v{i}");
            bucket("a", &v) != bucket("b", &v)
        });
        assert!(differ.count() > 95);
    }
}
