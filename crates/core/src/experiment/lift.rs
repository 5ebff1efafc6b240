//! Lift: how much the treated arm's conversion rate differs from the
//! holdout's, as a difference and as a ratio, each with a 95% interval.
//!
//! - **Absolute lift** `d = p_t − p_h`, interval by Newcombe's hybrid score
//!   method (Newcombe 1998, "Interval estimation for the difference between
//!   independent proportions", method 10): with `[l, u]` the Wilson score
//!   interval of each rate,
//!   `L = d − √((p_t − l_t)² + (u_h − p_h)²)`,
//!   `U = d + √((u_t − p_t)² + (p_h − l_h)²)`.
//!   It stays inside [−1, 1], behaves at 0 and 100% conversion and for the
//!   small arms a holdout makes, where the Wald interval collapses; the
//!   vectors hold it to the paper's Table II.
//! - **Relative lift** `p_t / p_h − 1`, interval by the Katz log method for
//!   the risk ratio: `exp(ln RR ± z·√(1/x_t − 1/n_t + 1/x_h − 1/n_h)) − 1`.
//!   It needs a conversion in each arm (the log of 0 is no bound), so the
//!   interval is `None` when either arm has none, and when every visitor of
//!   both arms converted (its variance is then 0); the estimate is `None`
//!   only when the holdout's rate is 0 (or unknown), where a ratio is
//!   undefined. No continuity correction is added: an invented half
//!   conversion would move a small holdout's bound by a visible amount.
//!
//! An arm without visitors has no rate: every number that needs it is
//! `None` (JSON `null`), never NaN.

use super::counts::Counts;

/// The two-sided 95% normal quantile, Φ⁻¹(0.975).
pub const Z_95: f64 = 1.959963984540054;

/// One arm as reported: its counts and rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ArmRate {
    pub visitors: u64,
    pub conversions: u64,
    /// `conversions / visitors`, `None` without visitors.
    pub rate: Option<f64>,
}

/// A point estimate and its 95% interval; any may be `None` (see the module).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    pub estimate: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

impl Estimate {
    const NONE: Self = Self { estimate: None, lower: None, upper: None };
}

/// The lift of the treated arm over the holdout.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Lift {
    pub treated: ArmRate,
    pub holdout: ArmRate,
    /// `p_t − p_h`, Newcombe's hybrid score interval.
    pub absolute: Estimate,
    /// `p_t / p_h − 1`, Katz's log interval.
    pub relative: Estimate,
}

/// The lift of `treated` over `holdout`. Infallible: [`Counts`] are checked
/// when made, and every undefined number is `None`.
pub fn lift(treated: Counts, holdout: Counts) -> Lift {
    let arm = |c: Counts| ArmRate { visitors: c.visitors(), conversions: c.conversions(), rate: c.rate() };
    Lift {
        treated: arm(treated),
        holdout: arm(holdout),
        absolute: absolute(treated, holdout),
        relative: relative(treated, holdout),
    }
}

/// The Wilson score interval of `x` successes in `n > 0` trials. The ends at
/// `x = 0` and `x = n` are exactly 0 and 1 (the formula gives them up to a
/// rounding of `√(z²/4)·z` against `z²/2`, which would make −1e-17 appear).
fn wilson(x: u64, n: u64) -> (f64, f64) {
    let (x, n) = (x as f64, n as f64);
    let z2 = Z_95 * Z_95;
    let centre = (x + z2 / 2.0) / (n + z2);
    let half = Z_95 * (x * (n - x) / n + z2 / 4.0).sqrt() / (n + z2);
    let lower = if x == 0.0 { 0.0 } else { centre - half };
    let upper = if x == n { 1.0 } else { centre + half };
    (lower, upper)
}

fn absolute(t: Counts, h: Counts) -> Estimate {
    let (Some(pt), Some(ph)) = (t.rate(), h.rate()) else {
        return Estimate::NONE;
    };
    let (lt, ut) = wilson(t.conversions(), t.visitors());
    let (lh, uh) = wilson(h.conversions(), h.visitors());
    let d = pt - ph;
    Estimate {
        estimate: Some(d),
        lower: Some(d - ((pt - lt).powi(2) + (uh - ph).powi(2)).sqrt()),
        upper: Some(d + ((ut - pt).powi(2) + (ph - lh).powi(2)).sqrt()),
    }
}

fn relative(t: Counts, h: Counts) -> Estimate {
    let (Some(pt), Some(ph)) = (t.rate(), h.rate()) else {
        return Estimate::NONE;
    };
    if ph == 0.0 {
        return Estimate::NONE;
    }
    let ratio = pt / ph;
    // No conversion in the treated arm: ln 0 is no bound. Every visitor
    // converted in both arms: the log method's variance is 0, and a
    // zero-width interval would claim a certainty five visitors cannot give.
    let all_converted = |c: Counts| c.conversions() == c.visitors();
    if t.conversions() == 0 || (all_converted(t) && all_converted(h)) {
        return Estimate { estimate: Some(ratio - 1.0), lower: None, upper: None };
    }
    let inv = |c: Counts| 1.0 / c.conversions() as f64 - 1.0 / c.visitors() as f64;
    let se = (inv(t) + inv(h)).sqrt();
    let log = ratio.ln();
    Estimate {
        estimate: Some(ratio - 1.0),
        lower: Some((log - Z_95 * se).exp() - 1.0),
        upper: Some((log + Z_95 * se).exp() - 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: u64, x: u64) -> Counts {
        Counts::new("c", v, x).unwrap()
    }

    fn round4(v: Option<f64>) -> f64 {
        (v.unwrap() * 10_000.0).round() / 10_000.0
    }

    /// Newcombe (1998), Table II, method 10, as printed (4 decimals).
    #[test]
    fn newcombe_table_ii() {
        for (x1, n1, x2, n2, lower, upper) in [
            (56, 70, 48, 80, 0.0524, 0.3339),
            (9, 10, 3, 10, 0.1705, 0.8090),
            (6, 7, 2, 7, 0.0582, 0.8062),
            (5, 56, 0, 29, -0.0381, 0.1926),
            (0, 10, 0, 20, -0.1611, 0.2775),
            (0, 10, 0, 10, -0.2775, 0.2775),
            (10, 10, 0, 20, 0.6791, 1.0),
            (10, 10, 0, 10, 0.6075, 1.0),
        ] {
            let a = lift(c(n1, x1), c(n2, x2)).absolute;
            assert_eq!((round4(a.lower), round4(a.upper)), (lower, upper), "{x1}/{n1} − {x2}/{n2}");
        }
    }

    #[test]
    fn undefined_numbers_are_none_not_nan() {
        let l = lift(c(0, 0), c(10, 1));
        assert_eq!(l.treated.rate, None);
        assert_eq!(l.absolute, Estimate::NONE);
        assert_eq!(l.relative, Estimate::NONE);
        // A holdout without conversions: a difference, no ratio.
        let l = lift(c(10, 2), c(10, 0));
        assert!(l.absolute.estimate.is_some());
        assert_eq!(l.relative, Estimate::NONE);
        // A treated arm without conversions: −100%, no interval.
        let l = lift(c(10, 0), c(10, 2));
        assert_eq!(l.relative, Estimate { estimate: Some(-1.0), lower: None, upper: None });
        let json = serde_json::to_value(lift(c(0, 0), c(0, 0))).unwrap();
        assert!(json["absolute"]["lower"].is_null() && json["treated"]["rate"].is_null());
    }

    #[test]
    fn intervals_hold_their_estimate() {
        for (x1, n1, x2, n2) in [(1, 3, 1, 2), (30, 1000, 20, 1000), (499, 500, 1, 500), (7, 9, 8, 9)] {
            let l = lift(c(n1, x1), c(n2, x2));
            for e in [l.absolute, l.relative] {
                let (d, lo, hi) = (e.estimate.unwrap(), e.lower.unwrap(), e.upper.unwrap());
                assert!(lo < d && d < hi, "{x1}/{n1} − {x2}/{n2}: {e:?}");
            }
            assert!(l.absolute.lower.unwrap() >= -1.0 && l.absolute.upper.unwrap() <= 1.0);
        }
    }
}
