//! The BG/NBD model of repeat purchases (Fader, Hardie & Lee 2005, "Counting
//! Your Customers the Easy Way"): while alive a customer buys at a rate
//! λ ~ Gamma(r, α); after each purchase they drop out with probability
//! p ~ Beta(a, b). Fitted by maximum likelihood (the paper's equation 6).

use super::optimise::{self, Failure};
use super::special::{exp, ln, ln_1p, ln_hyp2f1};
use super::{ClvError, Rfm};

/// Fitting needs at least this many customers...
pub const MIN_CUSTOMERS: usize = 20;
/// ...of whom at least this many bought again (else the dropout process has
/// nothing to be estimated from).
pub const MIN_REPEAT_CUSTOMERS: usize = 5;

/// The model's four parameters, in the time unit of the data it was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// A fitted model with its log-likelihood on the fitting data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fitted<M> {
    pub model: M,
    pub log_likelihood: f64,
    pub iterations: u32,
}

/// Customers with the same history, counted once with a weight.
#[derive(Clone)]
struct Group {
    x: u32,
    recency: f64,
    age: f64,
    weight: f64,
}

/// From this many distinct (x, tₓ, T) groups on, the fit starts from a sample's.
const WARM_GROUPS: usize = 20_000;
const WARM_STRIDE: usize = 16;

/// The mean negative log-likelihood of `groups` over log-parameters, and
/// its gradient: what the fit minimises.
fn mean_objective(groups: &[Group]) -> impl Fn(&[f64; 4]) -> (f64, [f64; 4]) + '_ {
    let total: f64 = groups.iter().map(|g| g.weight).sum();
    move |theta: &[f64; 4]| {
        let p = theta.map(exp);
        let model = BgNbd { r: p[0], alpha: p[1], a: p[2], b: p[3] };
        let (ll, g) = model.log_likelihood_and_gradient(groups);
        (-ll / total, std::array::from_fn(|i| -g[i] * p[i] / total))
    }
}

fn groups(customers: &[Rfm], time_scale: f64) -> Vec<Group> {
    let mut keys: Vec<(u32, u64, u64)> = customers
        .iter()
        .map(|c| (c.frequency(), (c.recency() * time_scale).to_bits(), (c.age() * time_scale).to_bits()))
        .collect();
    // Non-negative floats order as their bits do.
    keys.sort_unstable();
    let mut out: Vec<Group> = Vec::new();
    for (x, recency, age) in keys {
        let (recency, age) = (f64::from_bits(recency), f64::from_bits(age));
        match out.last_mut() {
            Some(g) if g.x == x && g.recency == recency && g.age == age => g.weight += 1.0,
            _ => out.push(Group { x, recency, age, weight: 1.0 }),
        }
    }
    out
}

/// Per frequency x: Σ_{i<x} ln(θ+i) and Σ_{i<x} 1/(θ+i), i.e. ln Γ(θ+x) − ln Γ(θ)
/// and ψ(θ+x) − ψ(θ), exactly as the integer recurrence gives them.
fn rising(theta: f64, max_x: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut logs, mut inverses) = (Vec::with_capacity(max_x + 1), Vec::with_capacity(max_x + 1));
    let (mut l, mut d) = (0.0, 0.0);
    for i in 0..=max_x {
        logs.push(l);
        inverses.push(d);
        let v = theta + i as f64;
        l += ln(v);
        d += 1.0 / v;
    }
    (logs, inverses)
}

impl BgNbd {
    /// Each customer's log-likelihood summed, and its gradient in
    /// (r, α, a, b).
    fn log_likelihood_and_gradient(&self, groups: &[Group]) -> (f64, [f64; 4]) {
        let BgNbd { r, alpha, a, b } = *self;
        let max_x = groups.iter().map(|g| g.x as usize).max().unwrap_or(0);
        let (lr, dr) = rising(r, max_x);
        let (lb, db) = rising(b, max_x);
        let (lab, dab) = rising(a + b, max_x);
        let (ln_alpha, ln_a) = (ln(alpha), ln(a));
        let (mut ll, mut g) = (0.0, [0.0; 4]);
        for group in groups {
            let x = group.x as usize;
            let rx = r + x as f64;
            let ln_age = ln(alpha + group.age);
            let a3 = -rx * ln_age;
            let common = lr[x] + lb[x] - lab[x] + r * ln_alpha;
            let (value, w4, ln_rec, grad_b_extra) = if x == 0 {
                (common + a3, 0.0, 0.0, 0.0)
            } else {
                let ln_rec = ln(alpha + group.recency);
                let bx1 = b + x as f64 - 1.0;
                let a4 = ln_a - ln(bx1) - rx * ln_rec;
                let (hi, lo) = if a3 > a4 { (a3, a4) } else { (a4, a3) };
                let e = exp(lo - hi);
                let w_hi = 1.0 / (1.0 + e);
                let w4 = if a4 >= a3 { w_hi } else { 1.0 - w_hi };
                (common + hi + ln_1p(e), w4, ln_rec, 1.0 / bx1)
            };
            let w3 = 1.0 - w4;
            let w = group.weight;
            ll += w * value;
            g[0] += w * (dr[x] + ln_alpha - w3 * ln_age - w4 * ln_rec);
            g[1] += w * (r / alpha - rx * (w3 / (alpha + group.age) + w4 / (alpha + group.recency)));
            g[2] += w * (-dab[x] + w4 / a);
            g[3] += w * (db[x] - dab[x] - w4 * grad_b_extra);
        }
        (ll, g)
    }

    /// The log-likelihood of these customers under the model (equation 6).
    pub fn log_likelihood(&self, customers: &[Rfm]) -> f64 {
        self.log_likelihood_and_gradient(&groups(customers, 1.0)).0
    }

    /// The maximum-likelihood fit. Times are rescaled by the largest `T`
    /// while fitting (so that α is near 1, as in `lifetimes`), which changes
    /// the likelihood by a constant only.
    pub fn fit(customers: &[Rfm]) -> Result<Fitted<BgNbd>, ClvError> {
        let repeaters = customers.iter().filter(|c| c.frequency() > 0).count();
        if customers.len() < MIN_CUSTOMERS {
            return Err(ClvError::TooFew {
                model: "BG/NBD",
                need: MIN_CUSTOMERS,
                what: "customers",
                have: customers.len(),
            });
        }
        if repeaters < MIN_REPEAT_CUSTOMERS {
            return Err(ClvError::TooFew {
                model: "BG/NBD",
                need: MIN_REPEAT_CUSTOMERS,
                what: "customers with a repeat purchase",
                have: repeaters,
            });
        }
        let max_age = customers.iter().map(Rfm::age).fold(0.0, f64::max);
        if max_age <= 0.0 {
            return Err(ClvError::Degenerate("every customer's T is 0".into()));
        }
        let scale = 1.0 / max_age;
        let groups = groups(customers, scale);
        // Many customers: first fit every WARM_STRIDE-th group (sorted by
        // frequency, so every frequency is in it), then the whole book from
        // that optimum and its curvature — a few passes over all of it
        // instead of dozens. The same steps on every platform either way.
        let (start, warm) = if groups.len() >= WARM_GROUPS {
            let sample: Vec<Group> = groups.iter().step_by(WARM_STRIDE).cloned().collect();
            match optimise::minimise(mean_objective(&sample), [0.1; 4]) {
                Ok(m) => (m.x, Some(m.inverse)),
                Err(_) => ([0.1; 4], None),
            }
        } else {
            ([0.1; 4], None)
        };
        let min = optimise::minimise_from(mean_objective(&groups), start, warm)
            .map_err(|f| failure("BG/NBD", &["r", "alpha", "a", "b"], f))?;
        let p = min.x.map(exp);
        let model = BgNbd { r: p[0], alpha: p[1] / scale, a: p[2], b: p[3] };
        Ok(Fitted { model, log_likelihood: model.log_likelihood(customers), iterations: min.iterations })
    }

    /// P(alive | x, tₓ, T) (Fader, Hardie & Lee 2008 note, equation 2): 1 for
    /// a customer who never bought again, since BG/NBD drops out only after a
    /// purchase.
    pub fn p_alive(&self, c: &Rfm) -> f64 {
        if c.frequency() == 0 {
            return 1.0;
        }
        let rx = self.r + f64::from(c.frequency());
        let log_div = rx * ln((self.alpha + c.age()) / (self.alpha + c.recency()))
            + ln(self.a / (self.b + f64::from(c.frequency()) - 1.0));
        1.0 / (1.0 + exp(log_div))
    }

    /// E[purchases in (T, T + t] | x, tₓ, T] (the paper's equation 10).
    pub fn expected_purchases(&self, c: &Rfm, t: f64) -> Result<f64, ClvError> {
        if !(t.is_finite() && t >= 0.0) {
            return Err(ClvError::Degenerate("the horizon must be a finite number ≥ 0".into()));
        }
        if t == 0.0 {
            return Ok(0.0);
        }
        let BgNbd { r, alpha, a, b } = *self;
        let x = f64::from(c.frequency());
        let (ha, hb, hc) = (r + x, b + x, a + b + x - 1.0);
        let z = t / (alpha + c.age() + t);
        if a == 1.0 || hc <= 0.0 {
            return Err(ClvError::Degenerate(format!(
                "expected purchases are undefined for a = {a}, b = {b} at frequency {x}"
            )));
        }
        let ln_hyp = ln_hyp2f1(ha, hb, hc, z).ok_or_else(|| {
            ClvError::Degenerate(format!("the series for frequency {x} over horizon {t} did not converge"))
        })?;
        let first = (a + b + x - 1.0) / (a - 1.0);
        let second = 1.0 - exp(ln_hyp + ha * ln((alpha + c.age()) / (alpha + c.age() + t)));
        let denominator = if c.frequency() > 0 {
            1.0 + a / (b + x - 1.0) * exp(ha * ln((alpha + c.age()) / (alpha + c.recency())))
        } else {
            1.0
        };
        Ok(first * second / denominator)
    }
}

pub(super) fn failure(model: &'static str, names: &[&'static str], f: Failure) -> ClvError {
    match f {
        Failure::BadStart => ClvError::Degenerate(format!("{model}: the likelihood is not finite at the start")),
        Failure::Unbounded(i) => ClvError::Unbounded { model, parameter: names[i] },
        Failure::NoConvergence(iterations) => ClvError::NoConvergence { model, iterations },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_is_the_likelihoods_slope() {
        let customers: Vec<Rfm> =
            [(2, 30.43, 38.86), (1, 1.71, 38.86), (0, 0.0, 38.86), (0, 0.0, 38.86), (4, 20.0, 30.0)]
                .iter()
                .map(|&(x, r, t)| Rfm::new(x, r, t, None).unwrap())
                .collect();
        let g_ = groups(&customers, 1.0);
        let at = BgNbd { r: 0.3, alpha: 4.0, a: 0.8, b: 2.5 };
        let (_, g) = at.log_likelihood_and_gradient(&g_);
        let ll = |m: BgNbd| m.log_likelihood_and_gradient(&g_).0;
        let h = 1e-6;
        let numeric = [
            (ll(BgNbd { r: at.r + h, ..at }) - ll(BgNbd { r: at.r - h, ..at })) / (2.0 * h),
            (ll(BgNbd { alpha: at.alpha + h, ..at }) - ll(BgNbd { alpha: at.alpha - h, ..at })) / (2.0 * h),
            (ll(BgNbd { a: at.a + h, ..at }) - ll(BgNbd { a: at.a - h, ..at })) / (2.0 * h),
            (ll(BgNbd { b: at.b + h, ..at }) - ll(BgNbd { b: at.b - h, ..at })) / (2.0 * h),
        ];
        for i in 0..4 {
            assert!((g[i] - numeric[i]).abs() < 1e-5 * (1.0 + numeric[i].abs()), "{i}: {g:?} vs {numeric:?}");
        }
    }
}
