//! Exact money: splitting an integer amount of minor units by weights.
//!
//! **Remainder rule (largest remainder, Hamilton).** Each part first gets
//! `floor(|V| · wᵢ / W)`; the units left over (fewer than the number of
//! parts) go one each to the parts with the largest remainders
//! `|V| · wᵢ mod W`; equal remainders are broken by position (the earlier
//! part wins — for a conversion, parts are channels in order of their first
//! touch). A negative amount (a refund) is split as its absolute value and
//! negated, so the rule is symmetric.
//!
//! The arithmetic is integer (`u128`), so it is identical on every platform.
//! Weights that are all integers below 2⁵³ are used as they are (so 40/20/40
//! and linear splits are exact rationals); other weights are first scaled so
//! the largest is 2⁵² and rounded to integers — a deterministic step, since
//! it uses only IEEE-exact operations.

use super::AttributionError;

const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
const SCALE: f64 = 4_503_599_627_370_496.0; // 2^52

/// Integer weights for `weights` (see the module doc).
pub fn integer_weights(weights: &[f64]) -> Result<Vec<u128>, AttributionError> {
    let mut max = 0.0_f64;
    for w in weights {
        if !w.is_finite() || *w < 0.0 {
            return Err(AttributionError::invalid("weights", "must be finite and ≥ 0"));
        }
        max = max.max(*w);
    }
    if max <= 0.0 {
        return Err(AttributionError::invalid("weights", "must not all be zero"));
    }
    let integral = weights.iter().all(|w| w.fract() == 0.0 && *w < EXACT_LIMIT);
    Ok(weights.iter().map(|w| if integral { *w as u128 } else { ((w / max) * SCALE).round() as u128 }).collect())
}

/// Splits `total` minor units by `weights`; the parts sum exactly to `total`.
pub fn split(total: i64, weights: &[f64]) -> Result<Vec<i64>, AttributionError> {
    let ints = integer_weights(weights)?;
    Ok(split_integer(total, &ints))
}

/// [`split`] over integer weights; all-zero weights give all-zero parts
/// except the first, which takes everything (never reached from [`split`]).
pub(crate) fn split_integer(total: i64, weights: &[u128]) -> Vec<i64> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let sum: u128 = weights.iter().sum();
    let magnitude = u128::from(total.unsigned_abs());
    let mut parts = vec![0_u128; n];
    let mut rems = Vec::with_capacity(n);
    let mut given = 0_u128;
    for (i, (w, part)) in weights.iter().zip(parts.iter_mut()).enumerate() {
        // Weights come from `integer_weights` (< 2^53), |total| ≤ 2^63: no overflow.
        let num = magnitude.saturating_mul(*w);
        if let (Some(q), Some(r)) = (num.checked_div(sum), num.checked_rem(sum)) {
            *part = q;
            given += q;
            rems.push((r, i));
        }
    }
    if sum == 0 {
        if let Some(first) = parts.first_mut() {
            *first = magnitude;
        }
    } else {
        // Largest remainder first; ties: earlier position first.
        rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let left = magnitude.saturating_sub(given);
        for &(_, i) in rems.iter().take(left as usize) {
            if let Some(p) = parts.get_mut(i) {
                *p += 1;
            }
        }
    }
    parts
        .into_iter()
        .map(|p| {
            // p ≤ |total| ≤ 2^63: in i128 the signed part always fits back
            // into i64 (2^63 only ever occurs negated, for i64::MIN).
            let p = p as i128;
            let signed = if total < 0 { -p } else { p };
            signed.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirds_give_the_extra_cent_to_the_first() {
        assert_eq!(split(100, &[1.0, 1.0, 1.0]).unwrap(), vec![34, 33, 33]);
        assert_eq!(split(-100, &[1.0, 1.0, 1.0]).unwrap(), vec![-34, -33, -33]);
        assert_eq!(
            split(i64::MIN, &[1.0, 1.0]).unwrap().iter().map(|x| i128::from(*x)).sum::<i128>(),
            i128::from(i64::MIN)
        );
    }

    #[test]
    fn largest_remainder_wins() {
        // 10 × (2/3, 1/3) = 6.67, 3.33 → 7, 3
        assert_eq!(split(10, &[2.0, 1.0]).unwrap(), vec![7, 3]);
        assert_eq!(split(1, &[1.0, 3.0]).unwrap(), vec![0, 1]);
    }
}
