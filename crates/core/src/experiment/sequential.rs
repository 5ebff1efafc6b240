//! The always-valid p-value of a holdout test: one that may be looked at
//! every morning without inventing wins.
//!
//! A fixed-horizon test's p-value is valid once, at the sample size chosen
//! in advance; checked daily and stopped at the first p < 0.05, it declares
//! a difference between identical arms far more often than 5% of the time.
//! The mixture sequential probability ratio test (mSPRT; Johari, Pekelis,
//! Walsh, "Always valid inference: continuous monitoring of A/B tests",
//! arXiv 2015, Operations Research 2022) gives instead a p-value sequence
//! `p_k` with `P(p_k ≤ α for some k) ≤ α` under the null, however often it
//! is read.
//!
//! At look `k`, from the cumulative counts (`n` visitors, `x` conversions):
//!
//! - `θ̂ = x_t/n_t − x_h/n_h`, the difference of rates;
//! - `p̄ = (x_t + x_h)/(n_t + n_h)` and `V = p̄(1 − p̄)(1/n_t + 1/n_h)`, the
//!   variance of `θ̂` under the null, pooled;
//! - `Λ = √(V/(V + τ²)) · exp(τ²θ̂² / (2V(V + τ²)))`, the likelihood ratio of
//!   `θ ~ N(0, τ²)` against `θ = 0` under the Gaussian approximation;
//! - `p_k = min(p_{k−1}, 1/Λ)`, with `p_0 = 1`.
//!
//! A look where an arm has no visitor or `V = 0` (no conversion yet, or
//! only conversions) carries no evidence: `Λ = 1`. The variance is pooled
//! rather than per arm because the null says the arms share one rate, and
//! because a small holdout's own variance is 0 until its first conversion,
//! which would make `Λ` explode on the treated arm's first few. `Λ` is
//! reported as `ln Λ`, which stays finite where `Λ` overflows.
//!
//! The guarantee is exact for normal data of known variance; with the
//! variance estimated at each look it holds asymptotically (as in Johari et
//! al.'s binary-metric version), which the unit test below checks by
//! simulation at a holdout's sizes.

use super::counts::Counts;
use crate::error::ValidationError;
use crate::text::{cat, int};

/// The default mixing variance τ² of the difference of rates: τ = 0.01, one
/// percentage point. Johari et al. tune τ to the effects expected; the CTA
/// rates this measures are a few percent, and a lift worth acting on moves
/// them by about a point. A τ ten times too large or small costs some power,
/// never validity.
pub const DEFAULT_TAU2: f64 = 1e-4;

/// The cumulative counts of both arms at one look (one per day, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub treated: Counts,
    pub holdout: Counts,
}

/// One look's statistic.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Look {
    /// `θ̂`, `None` while an arm has no visitor.
    pub theta: Option<f64>,
    /// `V`, `None` while an arm has no visitor.
    pub variance: Option<f64>,
    /// `ln Λ` (0 where the look carries no evidence).
    pub log_lambda: f64,
    /// The always-valid p-value after this look.
    pub p_value: f64,
}

/// The test after every look.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sequential {
    /// `min(1, min_k 1/Λ_k)`: 1 with no look.
    pub p_value: f64,
    pub looks: Vec<Look>,
}

/// The always-valid p-value over `snapshots`, in the order they were taken,
/// with mixing variance `tau2` ([`DEFAULT_TAU2`] unless tuned). Refused: a
/// `tau2` that is not a finite number above 0, and a snapshot with fewer
/// visitors or conversions in an arm than the one before it (the counts
/// are cumulative), named by its index.
pub fn always_valid_p(snapshots: &[Snapshot], tau2: f64) -> Result<Sequential, ValidationError> {
    if !(tau2.is_finite() && tau2 > 0.0) {
        return Err(ValidationError::new("tau2", "a finite number above 0"));
    }
    for (k, pair) in snapshots.windows(2).enumerate() {
        if let [before, after] = pair {
            cumulative(k + 1, before, after)?;
        }
    }
    let mut p = 1.0f64;
    let looks = snapshots
        .iter()
        .map(|s| {
            let (theta, variance, log_lambda) = statistic(s, tau2);
            p = p.min((-log_lambda).exp());
            Look { theta, variance, log_lambda, p_value: p }
        })
        .collect();
    Ok(Sequential { p_value: p, looks })
}

/// Refuses snapshot `k` (`after`) if an arm's count fell since `before`.
fn cumulative(k: usize, before: &Snapshot, after: &Snapshot) -> Result<(), ValidationError> {
    for (arm, b, a) in [("treated", before.treated, after.treated), ("holdout", before.holdout, after.holdout)] {
        for (name, was, is) in
            [("visitors", b.visitors(), a.visitors()), ("conversions", b.conversions(), a.conversions())]
        {
            if is < was {
                let field = cat(&["snapshots[", &int(k as i64), "].", arm, ".", name]);
                let was = int(i64::try_from(was).unwrap_or(i64::MAX));
                let rule =
                    cat(&["at least snapshots[", &int(k as i64 - 1), "]'s ", &was, ": snapshots are cumulative"]);
                return Err(ValidationError::new(field, rule));
            }
        }
    }
    Ok(())
}

/// `(θ̂, V, ln Λ)` at one look.
fn statistic(s: &Snapshot, tau2: f64) -> (Option<f64>, Option<f64>, f64) {
    let (t, h) = (s.treated, s.holdout);
    let (Some(pt), Some(ph)) = (t.rate(), h.rate()) else {
        return (None, None, 0.0);
    };
    let (nt, nh) = (t.visitors() as f64, h.visitors() as f64);
    let pooled = (t.conversions() + h.conversions()) as f64 / (nt + nh);
    let v = pooled * (1.0 - pooled) * (1.0 / nt + 1.0 / nh);
    let theta = pt - ph;
    if v <= 0.0 {
        return (Some(theta), Some(v), 0.0);
    }
    let log_lambda = 0.5 * (v / (v + tau2)).ln() + tau2 * theta * theta / (2.0 * v * (v + tau2));
    (Some(theta), Some(v), log_lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(nt: u64, xt: u64, nh: u64, xh: u64) -> Snapshot {
        Snapshot { treated: Counts::new("t", nt, xt).unwrap(), holdout: Counts::new("h", nh, xh).unwrap() }
    }

    #[test]
    fn refuses_decreasing_snapshots_and_bad_tau() {
        let e = always_valid_p(&[snap(10, 1, 10, 1), snap(12, 2, 12, 2), snap(12, 2, 11, 2)], DEFAULT_TAU2);
        let e = e.unwrap_err();
        assert_eq!(e.field, "snapshots[2].holdout.visitors");
        assert_eq!(e.rule, "at least snapshots[1]'s 12: snapshots are cumulative");
        for bad in [0.0, -1e-4, f64::NAN, f64::INFINITY] {
            assert_eq!(always_valid_p(&[], bad).unwrap_err().field, "tau2");
        }
    }

    #[test]
    fn no_evidence_is_p_one() {
        let r = always_valid_p(&[], DEFAULT_TAU2).unwrap();
        assert_eq!((r.p_value, r.looks.len()), (1.0, 0));
        // An arm without visitors, then no conversion anywhere (V = 0).
        let r = always_valid_p(&[snap(0, 0, 5, 0), snap(5, 0, 5, 0)], DEFAULT_TAU2).unwrap();
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.looks[0], Look { theta: None, variance: None, log_lambda: 0.0, p_value: 1.0 });
        assert_eq!(r.looks[1], Look { theta: Some(0.0), variance: Some(0.0), log_lambda: 0.0, p_value: 1.0 });
    }

    /// A 64-bit linear congruential generator (Knuth's MMIX constants): the
    /// simulation's data are the same on every run.
    struct Lcg(u64);

    impl Lcg {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // The top 53 bits: the low bits of an LCG are its weakest.
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Under the null (both arms convert at 5%), read every day for 30 days:
    /// the always-valid p-value crosses 0.05 in at most about 5% of the
    /// experiments, the fixed-horizon z-test read the same way far more often.
    #[test]
    fn peeking_daily_does_not_invent_wins() {
        const EXPERIMENTS: usize = 400;
        const DAYS: usize = 30;
        const VISITORS_PER_DAY: u64 = 200;
        const HOLDOUT: f64 = 0.2;
        const RATE: f64 = 0.05;
        let mut rng = Lcg(0x6d69_6372_6f66_756e);
        let (mut always_valid, mut naive) = (0, 0);
        for _ in 0..EXPERIMENTS {
            let (mut t, mut h) = ((0u64, 0u64), (0u64, 0u64));
            let mut snapshots = Vec::with_capacity(DAYS);
            let mut naive_crossed = false;
            for _ in 0..DAYS {
                for _ in 0..VISITORS_PER_DAY {
                    let arm = if rng.uniform() < HOLDOUT { &mut h } else { &mut t };
                    arm.0 += 1;
                    arm.1 += u64::from(rng.uniform() < RATE);
                }
                let s = snap(t.0, t.1, h.0, h.1);
                let (theta, v, _) = statistic(&s, DEFAULT_TAU2);
                if let (Some(theta), Some(v)) = (theta, v) {
                    // Two-sided p < 0.05 ⇔ |z| > Φ⁻¹(0.975).
                    naive_crossed |= v > 0.0 && theta.abs() / v.sqrt() > crate::experiment::Z_95;
                }
                snapshots.push(s);
            }
            always_valid += usize::from(always_valid_p(&snapshots, DEFAULT_TAU2).unwrap().p_value < 0.05);
            naive += usize::from(naive_crossed);
        }
        let rate = |n: usize| n as f64 / EXPERIMENTS as f64;
        assert!(rate(always_valid) <= 0.05, "always-valid false positives: {}", rate(always_valid));
        assert!(rate(naive) >= 0.15, "naive daily false positives: {}", rate(naive));
        assert!(naive > 2 * always_valid.max(1), "always-valid {always_valid}, naive {naive}");
    }
}
