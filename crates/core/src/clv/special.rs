//! The special functions the customer-value models need, from `libm` (a pure
//! Rust port of musl's) rather than the platform's: `std`'s `ln`/`exp` call
//! the native libm natively and another one in wasm, and a fit that iterates
//! hundreds of times must take the same steps on every side.

/// `ln Γ(x)` for `x > 0`.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

pub(crate) fn ln(x: f64) -> f64 {
    libm::log(x)
}

pub(crate) fn exp(x: f64) -> f64 {
    libm::exp(x)
}

pub(crate) fn ln_1p(x: f64) -> f64 {
    libm::log1p(x)
}

/// The digamma function ψ(x) for `x > 0`: the recurrence ψ(x) = ψ(x+1) − 1/x
/// up to 10, then the asymptotic series to x⁻¹², whose first omitted term is
/// below 1e-15 there.
pub(crate) fn digamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 10.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv2 = 1.0 / (x * x);
    let series = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0 - inv2 * (691.0 / 32760.0))))));
    shift + ln(x) - 0.5 / x - series
}

/// `ln ₂F₁(a, b; c; z)` for `a, b, c > 0` and `0 ≤ z < 1`, by Gauss's series.
/// Every term is positive there, so the sum has no cancellation; it is kept
/// rescaled so that a customer with thousands of purchases does not overflow.
/// `None` when the series has not converged within its term budget (`z` very
/// close to 1 with huge parameters).
pub(crate) fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    const MAX_TERMS: u32 = 2_000_000;
    const RESCALE: f64 = 1e200;
    if !(a > 0.0 && b > 0.0 && c > 0.0 && (0.0..1.0).contains(&z)) {
        return None;
    }
    let (mut sum, mut term, mut log_scale) = (1.0_f64, 1.0_f64, 0.0_f64);
    for k in 0..MAX_TERMS {
        let k = f64::from(k);
        let ratio = (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        term *= ratio;
        sum += term;
        if sum > RESCALE {
            sum /= RESCALE;
            term /= RESCALE;
            log_scale += ln(RESCALE);
        }
        // Past the peak the ratios fall towards z (or rise towards it from
        // below): the rest is at most a geometric tail of the larger of the two.
        let bound = ratio.max(z);
        if bound < 1.0 && term * bound / (1.0 - bound) <= 1e-17 * sum {
            return Some(ln(sum) + log_scale);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digamma_matches_known_values() {
        // ψ(1) = −γ, ψ(1/2) = −γ − 2 ln 2, ψ(10) = H₉ − γ.
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-13);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-13);
        let h9: f64 = (1..10).map(|k| 1.0 / f64::from(k)).sum();
        assert!((digamma(10.0) - (h9 - euler)).abs() < 1e-14);
        // ψ agrees with the derivative of ln Γ.
        for x in [0.05, 0.7, 3.3, 12.5, 250.0] {
            let h = 1e-5 * x;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!((digamma(x) - numeric).abs() < 1e-7 * (1.0 + numeric.abs()), "{x}");
        }
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1−z)/z and ₂F₁(a, b; b; z) = (1−z)^−a.
        for z in [0.0_f64, 0.1, 0.5, 0.9, 0.999] {
            let want = if z == 0.0 { 1.0 } else { -(1.0 - z).ln() / z };
            let got = ln_hyp2f1(1.0, 1.0, 2.0, z).unwrap().exp();
            assert!((got - want).abs() < 1e-12 * want, "{z}: {got} vs {want}");
            let got = ln_hyp2f1(2.5, 3.0, 3.0, z).unwrap();
            assert!((got - (-2.5 * (1.0 - z).ln())).abs() < 1e-12 * (1.0 + got.abs()), "{z}");
        }
        // Thousands of purchases: far past f64's range, still finite in logs.
        let big = ln_hyp2f1(5000.0, 5000.0, 5000.0, 0.9).unwrap();
        assert!((big - (-5000.0 * 0.1f64.ln())).abs() < 1e-9 * big);
        assert!(ln_hyp2f1(1.0, 1.0, 2.0, 1.0).is_none());
        assert!(ln_hyp2f1(1.0, 1.0, 0.0, 0.5).is_none());
    }
}
