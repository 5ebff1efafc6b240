//! The Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005,
//! "RFM and CLV"; Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary
//! Value"): a customer's purchases are Gamma(p, ν) with ν ~ Gamma(q, v) across
//! customers, independent of how often they buy. Fitted on the customers with
//! a repeat purchase and a positive mean value.

use super::bgnbd::{Fitted, failure};
use super::optimise;
use super::special::{digamma, exp, ln, ln_gamma};
use super::{ClvError, Rfm};

/// Fitting needs at least this many repeat customers with a positive value.
pub const MIN_CUSTOMERS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
}

struct Spender {
    x: f64,
    /// Index into the per-frequency terms.
    slot: usize,
    /// x·m, for ln(x·m + v).
    xm: f64,
    weight: f64,
}

/// What does not change while fitting: the spenders, their distinct
/// frequencies, and Σ ln m and Σ x(ln m + ln x), weighted.
struct Data {
    spenders: Vec<Spender>,
    frequencies: Vec<f64>,
    sum_ln_m: f64,
    sum_x_ln_xm: f64,
    total: f64,
}

fn data(customers: &[Rfm]) -> Data {
    let mut rows: Vec<(u32, u64)> = customers
        .iter()
        .filter_map(|c| match c.monetary() {
            Some(m) if c.frequency() > 0 && m > 0.0 => Some((c.frequency(), m.to_bits())),
            _ => None,
        })
        .collect();
    rows.sort_unstable();
    let mut d = Data { spenders: Vec::new(), frequencies: Vec::new(), sum_ln_m: 0.0, sum_x_ln_xm: 0.0, total: 0.0 };
    let mut last: Option<(u32, u64)> = None;
    for (x, m) in rows {
        let xf = f64::from(x);
        let mf = f64::from_bits(m);
        d.sum_ln_m += ln(mf);
        d.sum_x_ln_xm += xf * (ln(mf) + ln(xf));
        d.total += 1.0;
        if last == Some((x, m)) {
            d.spenders.last_mut().expect("a previous spender").weight += 1.0;
            continue;
        }
        if d.frequencies.last() != Some(&xf) {
            d.frequencies.push(xf);
        }
        d.spenders.push(Spender { x: xf, slot: d.frequencies.len() - 1, xm: xf * mf, weight: 1.0 });
        last = Some((x, m));
    }
    d
}

impl GammaGamma {
    fn log_likelihood_and_gradient(&self, d: &Data) -> (f64, [f64; 3]) {
        let GammaGamma { p, q, v } = *self;
        // Per distinct frequency: ln Γ(px+q) − ln Γ(px), ψ(px+q), ψ(px).
        let terms: Vec<(f64, f64, f64)> = d
            .frequencies
            .iter()
            .map(|&x| (ln_gamma(p * x + q) - ln_gamma(p * x), digamma(p * x + q), digamma(p * x)))
            .collect();
        let (ln_v, ln_gamma_q, digamma_q) = (ln(v), ln_gamma(q), digamma(q));
        let mut ll = p * d.sum_x_ln_xm - d.sum_ln_m + d.total * (q * ln_v - ln_gamma_q);
        let mut g = [d.sum_x_ln_xm, d.total * (ln_v - digamma_q), d.total * q / v];
        for s in &d.spenders {
            let (gamma_ratio, psi_sum, psi_px) = terms[s.slot];
            let pxq = p * s.x + q;
            let ln_xmv = ln(s.xm + v);
            let w = s.weight;
            ll += w * (gamma_ratio - pxq * ln_xmv);
            g[0] += w * s.x * (psi_sum - psi_px - ln_xmv);
            g[1] += w * (psi_sum - ln_xmv);
            g[2] -= w * pxq / (s.xm + v);
        }
        (ll, g)
    }

    /// The log-likelihood of these customers' mean spend (the note's
    /// equation 1a), over repeat customers with a positive value.
    pub fn log_likelihood(&self, customers: &[Rfm]) -> f64 {
        self.log_likelihood_and_gradient(&data(customers)).0
    }

    pub fn fit(customers: &[Rfm]) -> Result<Fitted<GammaGamma>, ClvError> {
        let d = data(customers);
        if d.total < MIN_CUSTOMERS as f64 {
            return Err(ClvError::TooFew {
                model: "Gamma-Gamma",
                need: MIN_CUSTOMERS,
                what: "customers with a repeat purchase and a positive monetary value",
                have: d.total as usize,
            });
        }
        let objective = |theta: &[f64; 3]| {
            let p = theta.map(exp);
            let (ll, g) = GammaGamma { p: p[0], q: p[1], v: p[2] }.log_likelihood_and_gradient(&d);
            (-ll / d.total, std::array::from_fn(|i| -g[i] * p[i] / d.total))
        };
        let min = optimise::minimise(objective, [0.1; 3]).map_err(|f| failure("Gamma-Gamma", &["p", "q", "v"], f))?;
        let p = min.x.map(exp);
        let model = GammaGamma { p: p[0], q: p[1], v: p[2] };
        let log_likelihood = model.log_likelihood_and_gradient(&d).0;
        Ok(Fitted { model, log_likelihood, iterations: min.iterations })
    }

    /// E[mean spend | x purchases averaging m] (the note's equation 5): the
    /// population mean v·p/(q−1) shrunk towards the customer's own mean as
    /// their purchases accumulate. Undefined for q ≤ 1 (no population mean).
    pub fn expected_mean_value(&self, frequency: u32, monetary: f64) -> Result<f64, ClvError> {
        let GammaGamma { p, q, v } = *self;
        if q <= 1.0 {
            return Err(ClvError::Degenerate(format!("Gamma-Gamma q = {q} ≤ 1: spend has no population mean")));
        }
        let px = p * f64::from(frequency);
        let weight = px / (px + q - 1.0);
        Ok((1.0 - weight) * v * p / (q - 1.0) + weight * monetary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Rfm> {
        [(1, 11.77), (2, 22.35), (1, 30.0), (4, 12.5), (3, 60.0), (2, 8.0), (6, 19.9), (1, 5.0), (2, 25.0), (5, 33.3)]
            .iter()
            .map(|&(x, m)| Rfm::new(x, 1.0, 2.0, Some(m)).unwrap())
            .collect()
    }

    #[test]
    fn gradient_is_the_likelihoods_slope() {
        let d = data(&sample());
        let at = GammaGamma { p: 2.1, q: 3.4, v: 12.0 };
        let (_, g) = at.log_likelihood_and_gradient(&d);
        let ll = |m: GammaGamma| m.log_likelihood_and_gradient(&d).0;
        let h = 1e-6;
        let numeric = [
            (ll(GammaGamma { p: at.p + h, ..at }) - ll(GammaGamma { p: at.p - h, ..at })) / (2.0 * h),
            (ll(GammaGamma { q: at.q + h, ..at }) - ll(GammaGamma { q: at.q - h, ..at })) / (2.0 * h),
            (ll(GammaGamma { v: at.v + h, ..at }) - ll(GammaGamma { v: at.v - h, ..at })) / (2.0 * h),
        ];
        for i in 0..3 {
            assert!((g[i] - numeric[i]).abs() < 1e-5 * (1.0 + numeric[i].abs()), "{i}: {g:?} vs {numeric:?}");
        }
    }
}
