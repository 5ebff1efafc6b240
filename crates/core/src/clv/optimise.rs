//! A deterministic quasi-Newton minimiser (BFGS with a backtracking Armijo
//! line search) for the models' few parameters. Written here rather than
//! taken from `argmin`, which brings a random-number generator and a clock
//! into a crate that must have neither; the same inputs take the same steps
//! on every platform because every operation is IEEE arithmetic.

/// Where the search stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Minimum<const N: usize> {
    pub x: [f64; N],
    pub value: f64,
    pub iterations: u32,
    /// The inverse-Hessian estimate there: a warm start for a search on
    /// more of the same data (`minimise_from`).
    pub inverse: [[f64; N]; N],
}

/// Why no minimum was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The objective or its gradient was not finite at the start.
    BadStart,
    /// Coordinate `i` ran past `BOUND`, or stalled on its way there (the
    /// likelihood keeps rising as a parameter grows or shrinks without
    /// limit: the data cannot pin it).
    Unbounded(usize),
    /// Still moving after the iteration budget, or stuck with a large gradient.
    NoConvergence(u32),
}

/// Coordinates are log-parameters: e^±30 is far past any sensible value.
const BOUND: f64 = 30.0;
/// A search that stalls with a coordinate past this is drifting to the bound.
const DRIFT: f64 = 12.0;
const MAX_ITERATIONS: u32 = 1000;
/// Converged when every gradient component is this small...
const GRADIENT_TOLERANCE: f64 = 1e-10;
/// ...or when no step lowers the value any more and the gradient is this small
/// (the floor of rounding in a mean over millions of customers).
const STALL_TOLERANCE: f64 = 1e-6;

/// Minimises `f`, which returns the value and the gradient at a point.
pub(crate) fn minimise<const N: usize>(
    f: impl FnMut(&[f64; N]) -> (f64, [f64; N]),
    start: [f64; N],
) -> Result<Minimum<N>, Failure> {
    minimise_from(f, start, None)
}

/// `minimise` from a known inverse-Hessian estimate (`None`: the identity,
/// scaled to the problem after the first step).
pub(crate) fn minimise_from<const N: usize>(
    mut f: impl FnMut(&[f64; N]) -> (f64, [f64; N]),
    start: [f64; N],
    warm: Option<[[f64; N]; N]>,
) -> Result<Minimum<N>, Failure> {
    let finite = |v: f64, g: &[f64; N]| v.is_finite() && g.iter().all(|x| x.is_finite());
    let mut x = start;
    let (mut value, mut gradient) = f(&x);
    if !finite(value, &gradient) {
        return Err(Failure::BadStart);
    }
    let mut inverse = warm.unwrap_or_else(identity::<N>);
    for iteration in 0..MAX_ITERATIONS {
        if max_abs(&gradient) <= GRADIENT_TOLERANCE {
            return Ok(Minimum { x, value, iterations: iteration, inverse });
        }
        let mut direction = mul(&inverse, &gradient).map(|d| -d);
        let mut slope = dot(&direction, &gradient);
        if slope >= 0.0 {
            // The curvature estimate went bad: restart from steepest descent.
            inverse = identity::<N>();
            direction = gradient.map(|g| -g);
            slope = dot(&direction, &gradient);
        }
        // Near the optimum the quasi-Newton step's predicted decrease
        // (−slope / 2) falls below the rounding of the value itself: no step
        // can show a decrease any more, and searching for one only halves it
        // sixty times. Stop there, once the gradient is at the rounding floor.
        if max_abs(&gradient) <= STALL_TOLERANCE && -slope <= 1e-15 * value.abs().max(1.0) {
            return Ok(Minimum { x, value, iterations: iteration, inverse });
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..60 {
            let candidate: [f64; N] = std::array::from_fn(|i| x[i] + step * direction[i]);
            let (v, g) = f(&candidate);
            // Strictly lower: a step too small to change the value is no step.
            if finite(v, &g) && v < value && v <= value + 1e-4 * step * slope {
                accepted = Some((candidate, v, g));
                break;
            }
            step *= 0.5;
        }
        let Some((next, next_value, next_gradient)) = accepted else {
            if max_abs(&gradient) <= STALL_TOLERANCE {
                return Ok(Minimum { x, value, iterations: iteration, inverse });
            }
            // Stuck far out: a parameter on its way to 0 or infinity, where
            // the likelihood flattens out before the bound is reached.
            return Err(match largest(&x) {
                Some(i) if x[i].abs() > DRIFT => Failure::Unbounded(i),
                _ => Failure::NoConvergence(iteration),
            });
        };
        if let Some(i) = next.iter().position(|c| c.abs() > BOUND) {
            return Err(Failure::Unbounded(i));
        }
        let s: [f64; N] = std::array::from_fn(|i| next[i] - x[i]);
        let y: [f64; N] = std::array::from_fn(|i| next_gradient[i] - gradient[i]);
        let sy = dot(&s, &y);
        if sy > 1e-300 {
            if iteration == 0 && warm.is_none() {
                // Scale the first guess of the inverse Hessian to the problem.
                let scale = sy / dot(&y, &y);
                inverse = identity::<N>().map(|row| row.map(|v| v * scale));
            }
            update(&mut inverse, &s, &y, sy);
        }
        x = next;
        value = next_value;
        gradient = next_gradient;
    }
    Err(Failure::NoConvergence(MAX_ITERATIONS))
}

fn largest<const N: usize>(v: &[f64; N]) -> Option<usize> {
    (0..N).max_by(|&i, &j| v[i].abs().total_cmp(&v[j].abs()))
}

fn identity<const N: usize>() -> [[f64; N]; N] {
    std::array::from_fn(|i| std::array::from_fn(|j| if i == j { 1.0 } else { 0.0 }))
}

fn dot<const N: usize>(a: &[f64; N], b: &[f64; N]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn mul<const N: usize>(m: &[[f64; N]; N], v: &[f64; N]) -> [f64; N] {
    std::array::from_fn(|i| dot(&m[i], v))
}

fn max_abs<const N: usize>(v: &[f64; N]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// The BFGS update of the inverse Hessian:
/// H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ, ρ = 1/(yᵀs).
fn update<const N: usize>(h: &mut [[f64; N]; N], s: &[f64; N], y: &[f64; N], sy: f64) {
    let rho = 1.0 / sy;
    let hy = mul(h, y);
    let yhy = dot(y, &hy);
    for i in 0..N {
        for j in 0..N {
            h[i][j] += (1.0 + rho * yhy) * rho * s[i] * s[j] - rho * (hy[i] * s[j] + s[i] * hy[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let rosenbrock = |p: &[f64; 2]| {
            let (x, y) = (p[0], p[1]);
            let v = (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
            (v, [-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)])
        };
        let m = minimise(rosenbrock, [-1.2, 1.0]).unwrap();
        assert!((m.x[0] - 1.0).abs() < 1e-8 && (m.x[1] - 1.0).abs() < 1e-8, "{m:?}");
        // Deterministic: the same steps again.
        assert_eq!(minimise(rosenbrock, [-1.2, 1.0]).unwrap(), m);
    }

    #[test]
    fn a_warm_start_and_a_flat_optimum_cost_few_evaluations() {
        let calls = std::cell::Cell::new(0u32);
        // A narrow valley with its optimum far below the value's rounding.
        let bowl = |p: &[f64; 2]| {
            calls.set(calls.get() + 1);
            let (x, y) = (p[0] - 3.0, p[1] + 1.0);
            (1.0 + x * x + 50.0 * y * y, [2.0 * x, 100.0 * y])
        };
        let cold = minimise(bowl, [0.0, 0.0]).unwrap();
        let cold_calls = calls.replace(0);
        assert!((cold.x[0] - 3.0).abs() < 1e-6 && (cold.x[1] + 1.0).abs() < 1e-6, "{cold:?}");
        // Stopped once no step could show a decrease: not sixty halvings.
        assert!(cold_calls < 30, "{cold_calls} evaluations");
        // From near the optimum with its curvature: a step or two.
        let warm = minimise_from(bowl, [3.001, -0.999], Some(cold.inverse)).unwrap();
        assert!(calls.get() <= 4, "{} evaluations", calls.get());
        assert!((warm.x[0] - 3.0).abs() < 1e-6, "{warm:?}");
    }

    #[test]
    fn reports_a_coordinate_that_runs_away() {
        // −x falls for ever as x grows: no minimum.
        let slide = |p: &[f64; 1]| (-p[0], [-1.0]);
        assert_eq!(minimise(slide, [0.0]), Err(Failure::Unbounded(0)));
        let nan = |_: &[f64; 1]| (f64::NAN, [0.0]);
        assert_eq!(minimise(nan, [0.0]), Err(Failure::BadStart));
    }
}
