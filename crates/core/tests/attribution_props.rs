//! Property tests for attribution: money exactness, non-negativity,
//! invariance under renaming channels and under the orders the models say
//! they ignore, and the exact Markov solution against an independent
//! computation (fixed-point iteration on the "visited c" product chain).

use microfunnel_core::attribution::{
    Conversion, MarkovOptions, Model, PathTable, PositionWeights, SetCounts, ShapleyOptions, Touch, attribute,
    fit_markov, split_minor, table_totals,
};
use proptest::prelude::*;
use std::collections::HashMap;

const NAMES: [&str; 6] = ["Direct", "Email", "Paid Search", "Display", "SMS", "Referral"];

fn models() -> Vec<Model> {
    vec![
        Model::FirstTouch,
        Model::LastTouch,
        Model::LastNonDirect,
        Model::Linear,
        Model::Position(PositionWeights::U),
        Model::Position(PositionWeights::J),
        Model::Position(PositionWeights::INVERSE_J),
        Model::Position(PositionWeights::custom(0.3, 0.1, 0.6).unwrap()),
    ]
}

fn journey() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..NAMES.len(), 1..8)
}

fn rows() -> impl Strategy<Value = Vec<(Vec<usize>, u32, u32, u32)>> {
    prop::collection::vec((journey(), 0..5_u32, 0..4_u32, 0..1000_u32), 1..12)
}

fn build(rows: &[(Vec<usize>, u32, u32, u32)], rename: impl Fn(usize) -> String) -> PathTable {
    let mut t = PathTable::new();
    for (steps, conv, nulls, val) in rows {
        let names: Vec<String> = steps.iter().map(|&i| rename(i)).collect();
        t.push_names(&names, f64::from(*conv), f64::from(*val), f64::from(*nulls), None).unwrap();
    }
    t
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #[test]
    fn split_is_exact_and_fair(total in -1_000_000_000_i64..1_000_000_000, w in prop::collection::vec(0.0..100.0_f64, 1..10)) {
        prop_assume!(w.iter().any(|x| *x > 0.0));
        let parts = split_minor(total, &w).unwrap();
        prop_assert_eq!(parts.iter().sum::<i64>(), total);
        let sum: f64 = w.iter().sum();
        for (p, x) in parts.iter().zip(&w) {
            let quota = total as f64 * x / sum;
            prop_assert!((*p as f64 - quota).abs() <= 1.0 + 1e-6 * quota.abs(), "{p} vs {quota}");
            if total >= 0 { prop_assert!(*p >= 0); }
        }
    }

    #[test]
    fn credits_non_negative_and_exact(steps in journey(), value in 0_i64..10_000_000) {
        let touches: Vec<Touch> = steps.iter().map(|&i| Touch::new(NAMES[i], None)).collect();
        for m in models() {
            let c = attribute(&m, &touches, &Conversion { value_minor: value, at: None }, None).unwrap();
            prop_assert_eq!(c.credits.iter().map(|x| x.value_minor).sum::<i64>() + c.unattributed_minor, value);
            prop_assert!(c.credits.iter().all(|x| x.value_minor >= 0 && x.conversions >= 0.0));
            prop_assert!(close(c.credits.iter().map(|x| x.conversions).sum::<f64>(), 1.0));
            prop_assert!(c.credits.windows(2).all(|w| w[0].channel < w[1].channel));
        }
    }

    #[test]
    fn time_decay_is_exact_with_timestamps(steps in prop::collection::vec((0..NAMES.len(), 0..100_000_000_i64), 1..8), value in 0_i64..1_000_000, half in 0.1..48.0_f64) {
        let base = 1_700_000_000_000_i64;
        let touches: Vec<Touch> = steps.iter().map(|&(i, dt)| Touch::new(NAMES[i], microfunnel_core::Timestamp::from_millis(base + dt))).collect();
        let m = Model::time_decay(half).unwrap();
        let c = attribute(&m, &touches, &Conversion { value_minor: value, at: None }, None).unwrap();
        prop_assert_eq!(c.credits.iter().map(|x| x.value_minor).sum::<i64>(), value);
        prop_assert!(c.credits.iter().all(|x| x.value_minor >= 0));
    }

    #[test]
    fn renaming_channels_changes_nothing(steps in journey(), value in 0_i64..1_000_000) {
        let touches: Vec<Touch> = steps.iter().map(|&i| Touch::new(NAMES[i], None)).collect();
        // A bijection that keeps "Direct" direct and reverses name order.
        let rename = |n: &str| if n == "Direct" { n.to_owned() } else { format!("{}-{}", 9 - NAMES.iter().position(|x| *x == n).unwrap(), n) };
        let renamed: Vec<Touch> = touches.iter().map(|t| Touch::new(rename(&t.channel), None)).collect();
        for m in models() {
            let a = attribute(&m, &touches, &Conversion { value_minor: value, at: None }, None).unwrap();
            let b = attribute(&m, &renamed, &Conversion { value_minor: value, at: None }, None).unwrap();
            let bm: HashMap<String, (f64, i64)> = b.credits.iter().map(|x| (x.channel.clone(), (x.conversions, x.value_minor))).collect();
            for x in &a.credits {
                let y = bm[&rename(&x.channel)];
                prop_assert!(close(x.conversions, y.0));
                prop_assert_eq!(x.value_minor, y.1);
            }
        }
    }

    #[test]
    fn linear_shares_ignore_touch_order(steps in journey(), seed in any::<u64>()) {
        let touches: Vec<Touch> = steps.iter().map(|&i| Touch::new(NAMES[i], None)).collect();
        let mut shuffled = touches.clone();
        let k = (seed as usize) % shuffled.len();
        shuffled.rotate_left(k);
        shuffled.reverse();
        let a = attribute(&Model::Linear, &touches, &Conversion { value_minor: 0, at: None }, None).unwrap();
        let b = attribute(&Model::Linear, &shuffled, &Conversion { value_minor: 0, at: None }, None).unwrap();
        prop_assert_eq!(a.credits.len(), b.credits.len());
        for (x, y) in a.credits.iter().zip(&b.credits) {
            prop_assert_eq!(&x.channel, &y.channel);
            prop_assert!(close(x.conversions, y.conversions));
        }
    }

    #[test]
    fn table_models_sum_to_totals(rows in rows()) {
        let t = build(&rows, |i| NAMES[i].to_owned());
        for m in models() {
            let (conv, val) = table_totals(&m, &t).unwrap();
            prop_assert!(conv.iter().chain(&val).all(|x| *x >= 0.0));
            prop_assert!(close(conv.iter().sum(), t.total_conversions()));
            prop_assert!(close(val.iter().sum(), t.total_value()));
        }
    }

    #[test]
    fn markov_and_shapley_ignore_row_order_and_names(rows in rows()) {
        prop_assume!(rows.iter().any(|r| r.1 > 0));
        let a = build(&rows, |i| NAMES[i].to_owned());
        let mut rev = rows.clone();
        rev.reverse();
        let b = build(&rev, |i| format!("x{}", NAMES[i]));
        let (ma, mb) = (fit_markov(&a, &MarkovOptions::default()).unwrap(), fit_markov(&b, &MarkovOptions::default()).unwrap());
        prop_assert!(close(ma.p_conversion, mb.p_conversion));
        let sum: f64 = ma.channels.iter().map(|c| c.conversions).sum();
        prop_assert!(close(sum, a.total_conversions()));
        let mbm: HashMap<String, f64> = mb.channels.iter().map(|c| (c.channel.clone(), c.conversions)).collect();
        for c in &ma.channels {
            prop_assert!(c.conversions >= 0.0 && c.removal_effect >= 0.0 && c.removal_effect <= 1.0 + 1e-12);
            let other = mbm[&format!("x{}", c.channel)];
            prop_assert!(close(c.conversions, other));
        }
        let (sa, sb) = (SetCounts::from_table(&a), SetCounts::from_table(&b));
        let (ra, rb) = (sa.shapley(&a.channels, &ShapleyOptions::default()).unwrap(), sb.shapley(&b.channels, &ShapleyOptions::default()).unwrap());
        let za = sa.zhao(&a.channels, 0.0).unwrap();
        let rbm: HashMap<String, f64> = rb.channels.iter().map(|c| (c.channel.clone(), c.conversions)).collect();
        for (x, z) in ra.channels.iter().zip(&za.channels) {
            let other = rbm[&format!("x{}", x.channel)];
            prop_assert!(close(x.conversions, other));
            // The subset-sum game's Shapley value is Zhao's formula.
            prop_assert!(close(x.phi, z.phi));
            prop_assert!(x.conversions >= 0.0);
        }
    }

    #[test]
    fn markov_matches_independent_computation(rows in rows()) {
        prop_assume!(rows.iter().any(|r| r.1 > 0));
        let t = build(&rows, |i| NAMES[i].to_owned());
        let m = fit_markov(&t, &MarkovOptions::default()).unwrap();
        let (p, visit) = independent(&t);
        prop_assert!(close(m.p_conversion, p), "{} vs {}", m.p_conversion, p);
        for c in &m.channels {
            let id = t.channels.get(&c.channel).unwrap() as usize;
            prop_assert!((c.removal_effect - visit[id] / p).abs() < 1e-9, "{}: {} vs {}", c.channel, c.removal_effect, visit[id] / p);
        }
    }
}

/// Order-1 chain by plain counting (self-loops kept, unlike the engine, which
/// collapses them — absorption probabilities are the same), then
/// P(convert) and P(convert ∧ visit c) by fixed-point iteration over the
/// product chain (state, visited c) — no removal, no elimination.
#[allow(clippy::needless_range_loop)]
fn independent(t: &PathTable) -> (f64, Vec<f64>) {
    let n = t.channels.len();
    let (start, conv, null) = (n, n + 1, n + 2);
    let mut cnt = vec![vec![0.0; n + 3]; n + 3];
    for r in &t.rows {
        let w = r.conversions + r.nulls;
        let mut prev = start;
        for &s in &r.steps {
            cnt[prev][s as usize] += w;
            prev = s as usize;
        }
        cnt[prev][conv] += r.conversions;
        cnt[prev][null] += r.nulls;
    }
    let p: Vec<Vec<f64>> = cnt
        .iter()
        .map(|row| {
            let s: f64 = row.iter().sum();
            row.iter().map(|x| if s > 0.0 { x / s } else { 0.0 }).collect()
        })
        .collect();
    let solve = |target: Option<usize>| {
        // x[s][v]: P(convert and, if target, visit target | at s, visited v)
        let mut x = vec![[0.0_f64; 2]; n + 3];
        for _ in 0..200_000 {
            let mut next = x.clone();
            for s in 0..n + 3 {
                if s == conv || s == null {
                    continue;
                }
                for v in 0..2 {
                    let mut acc = 0.0;
                    for to in 0..n + 3 {
                        let q = p[s][to];
                        if q == 0.0 {
                            continue;
                        }
                        let v2 = usize::from(v == 1 || Some(to) == target);
                        acc += q * if to == conv {
                            if target.is_none() || v2 == 1 { 1.0 } else { 0.0 }
                        } else {
                            x[to][v2]
                        };
                    }
                    next[s][v] = acc;
                }
            }
            let d = next.iter().zip(&x).map(|(a, b)| (a[0] - b[0]).abs().max((a[1] - b[1]).abs())).fold(0.0, f64::max);
            x = next;
            if d < 1e-16 {
                break;
            }
        }
        x[start][0]
    };
    let p_conv = solve(None);
    (p_conv, (0..n).map(|c| solve(Some(c))).collect())
}
