//! Heuristic (rule-based) models: first touch, last touch, last non-direct,
//! linear, time decay and position-based (U, J, inverse J, custom).
//!
//! Definitions, for touches 1..n in time order:
//! - **first / last touch**: all credit to touch 1 / touch n;
//! - **last non-direct**: all credit to the last touch whose channel is not
//!   direct ([`super::is_direct_name`]); a direct-only journey credits its
//!   last (direct) touch, as GA does;
//! - **linear**: 1/n per touch occurrence — a channel touched twice gets 2/n,
//!   exactly as ChannelAttribution's `linear_touch`;
//! - **time decay**: weight 2^(−Δh/H), Δh = hours from the touch to the
//!   conversion, H the half-life in hours; equal timestamps get equal weight;
//! - **position-based**: first f, last l, middle share m spread evenly over
//!   the n−2 middle touches; renormalised to sum 1. With two touches the
//!   first and last get f:l; with one touch, everything. U = 40/20/40,
//!   J = 20/20/60, inverse J = 60/20/20. If the weights that apply are all
//!   zero (e.g. custom 0/100/0 with two touches), touches are weighted
//!   equally.
//!
//! Lookback: touches after the conversion are dropped (they cannot have
//! caused it), then, with a lookback of L ms, touches earlier than
//! `conversion − L` are dropped (a touch exactly L before still counts).

use super::journey::{ChannelId, Conversion, Credit, Credits, PathTable, Touch};
use super::{AttributionError, is_direct_name, money};
use crate::timestamp::Timestamp;

/// Position-based weights (first, middle, last), renormalised on use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionWeights {
    pub first: f64,
    pub middle: f64,
    pub last: f64,
}

impl PositionWeights {
    pub const U: Self = Self { first: 40.0, middle: 20.0, last: 40.0 };
    pub const J: Self = Self { first: 20.0, middle: 20.0, last: 60.0 };
    pub const INVERSE_J: Self = Self { first: 60.0, middle: 20.0, last: 20.0 };

    /// Custom weights: finite, ≥ 0, not all zero.
    pub fn custom(first: f64, middle: f64, last: f64) -> Result<Self, AttributionError> {
        for (name, w) in [("first", first), ("middle", middle), ("last", last)] {
            if !w.is_finite() || w < 0.0 {
                return Err(AttributionError::invalid(format!("weights.{name}"), "must be finite and ≥ 0"));
            }
        }
        if first + middle + last <= 0.0 {
            return Err(AttributionError::invalid("weights", "must not all be zero"));
        }
        Ok(Self { first, middle, last })
    }
}

/// A heuristic model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    FirstTouch,
    LastTouch,
    LastNonDirect,
    Linear,
    /// Half-life in hours (> 0).
    TimeDecay {
        half_life_h: f64,
    },
    Position(PositionWeights),
}

impl Model {
    /// Default half-life for time decay: micro-funnels live in hours.
    pub const DEFAULT_HALF_LIFE_H: f64 = 6.0;

    pub fn time_decay(half_life_h: f64) -> Result<Self, AttributionError> {
        if !half_life_h.is_finite() || half_life_h <= 0.0 {
            return Err(AttributionError::invalid("half_life", "must be a positive number of hours"));
        }
        Ok(Self::TimeDecay { half_life_h })
    }

    /// A model from its name: `first`, `last`, `last-non-direct`, `linear`,
    /// `time-decay`, `position` (= `u`), `j`, `inverse-j`.
    pub fn parse(name: &str, half_life_h: f64) -> Result<Self, AttributionError> {
        Ok(match name {
            "first" | "first-touch" => Self::FirstTouch,
            "last" | "last-touch" => Self::LastTouch,
            "last-non-direct" => Self::LastNonDirect,
            "linear" => Self::Linear,
            "time-decay" => Self::time_decay(half_life_h)?,
            "position" | "u" => Self::Position(PositionWeights::U),
            "j" => Self::Position(PositionWeights::J),
            "inverse-j" => Self::Position(PositionWeights::INVERSE_J),
            _ => return Err(AttributionError::invalid("model", format!("unknown heuristic model `{name}`"))),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::FirstTouch => "first",
            Self::LastTouch => "last",
            Self::LastNonDirect => "last-non-direct",
            Self::Linear => "linear",
            Self::TimeDecay { .. } => "time-decay",
            Self::Position(w) if *w == PositionWeights::U => "position",
            Self::Position(w) if *w == PositionWeights::J => "j",
            Self::Position(w) if *w == PositionWeights::INVERSE_J => "inverse-j",
            Self::Position(_) => "position-custom",
        }
    }

    pub fn needs_timestamps(&self) -> bool {
        matches!(self, Self::TimeDecay { .. })
    }
}

/// 2^x, computed with IEEE basic operations only (no libm), so it is
/// bit-identical natively and in wasm. Relative error ≲ 1e-15.
pub fn exp2_det(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x >= 1024.0 {
        return f64::INFINITY;
    }
    if x < -1075.0 {
        return 0.0;
    }
    let n = x.floor();
    let t = (x - n) * std::f64::consts::LN_2; // in [0, ln 2)
    // Taylor series of e^t, Horner form, 22 terms: the tail is < 1e-23.
    let mut sum = 1.0;
    let mut k = 22.0;
    while k >= 1.0 {
        sum = 1.0 + sum * t / k;
        k -= 1.0;
    }
    // Scale by 2^n in two exact steps (keeps subnormal results deterministic).
    let n = n as i64;
    let half = n / 2;
    sum * pow2(half) * pow2(n - half)
}

fn pow2(n: i64) -> f64 {
    let n = n.clamp(-1022, 1023);
    f64::from_bits(((n + 1023) as u64) << 52)
}

/// Per-touch weights (not normalised) for `steps`, with ages in hours for
/// time decay.
pub(crate) fn touch_weights(
    model: &Model,
    n: usize,
    is_direct: impl Fn(usize) -> bool,
    ages_h: Option<&[f64]>,
) -> Result<Vec<f64>, AttributionError> {
    let mut w = vec![0.0; n];
    if n == 0 {
        return Ok(w);
    }
    let last = n - 1;
    match model {
        Model::FirstTouch => w[0] = 1.0,
        Model::LastTouch => w[last] = 1.0,
        Model::LastNonDirect => {
            let i = (0..n).rev().find(|&i| !is_direct(i)).unwrap_or(last);
            w[i] = 1.0;
        }
        Model::Linear => w.iter_mut().for_each(|x| *x = 1.0),
        Model::TimeDecay { half_life_h } => {
            let ages = ages_h.ok_or(AttributionError::MissingTimestamp { touch: 0 })?;
            for (x, age) in w.iter_mut().zip(ages) {
                *x = exp2_det(-age / half_life_h);
            }
            if w.iter().all(|x| *x == 0.0) {
                // Every touch decayed to nothing: credit the most recent.
                w[last] = 1.0;
            }
        }
        Model::Position(p) => {
            if n == 1 {
                w[0] = 1.0;
            } else if n == 2 {
                w[0] = p.first;
                w[1] = p.last;
            } else {
                let k = (n - 2) as f64;
                w[0] = p.first * k;
                w[last] = p.last * k;
                w[1..last].iter_mut().for_each(|x| *x = p.middle);
            }
            if w.iter().all(|x| *x == 0.0) {
                w.iter_mut().for_each(|x| *x = 1.0);
            }
        }
    }
    Ok(w)
}

/// Attributes one conversion over a visitor's touches.
///
/// Touches are put in time order (a stable sort, so equal timestamps keep
/// their input order) when they all carry timestamps; without timestamps
/// their input order is the journey order. Mixing is an error. Time decay
/// and a lookback window need timestamps. The conversion time defaults to
/// the last touch's.
pub fn attribute(
    model: &Model,
    touches: &[Touch],
    conversion: &Conversion,
    lookback_h: Option<f64>,
) -> Result<Credits, AttributionError> {
    if let Some(l) = lookback_h
        && (!l.is_finite() || l < 0.0)
    {
        return Err(AttributionError::invalid("lookback", "must be a number of hours ≥ 0"));
    }
    let timed = touches.iter().filter(|t| t.at.is_some()).count();
    if timed != 0 && timed != touches.len() {
        let i = touches.iter().position(|t| t.at.is_none()).unwrap_or(0);
        return Err(AttributionError::MissingTimestamp { touch: i });
    }
    if timed == 0 && !touches.is_empty() && (model.needs_timestamps() || lookback_h.is_some()) {
        return Err(AttributionError::MissingTimestamp { touch: 0 });
    }
    let mut order: Vec<(usize, Option<Timestamp>)> = touches.iter().map(|t| t.at).enumerate().collect();
    order.sort_by_key(|(_, at)| *at); // stable; all Some or all None
    let conv_at = conversion.at.or_else(|| order.last().and_then(|(_, at)| *at));
    if let Some(c) = conv_at {
        order.retain(|(_, at)| at.is_none_or(|t| t <= c));
        if let Some(l) = lookback_h {
            let l_ms = (l * Timestamp::MILLIS_PER_HOUR as f64).round() as i64;
            order.retain(|(_, at)| at.is_none_or(|t| c.since(t) <= l_ms));
        }
    }
    let kept: Vec<&Touch> = order.iter().filter_map(|(i, _)| touches.get(*i)).collect();
    if kept.is_empty() {
        return Ok(Credits {
            model: model.name().to_owned(),
            credits: Vec::new(),
            unattributed_conversions: 1.0,
            unattributed_minor: conversion.value_minor,
            touches_used: 0,
        });
    }
    let ages: Option<Vec<f64>> = conv_at.map(|c| {
        kept.iter().map(|t| t.at.map_or(0.0, |a| c.since(a) as f64 / Timestamp::MILLIS_PER_HOUR as f64)).collect()
    });
    let w =
        touch_weights(model, kept.len(), |i| kept.get(i).is_some_and(|t| is_direct_name(&t.channel)), ages.as_deref())?;
    // Channel-level weights, channels in order of first touch.
    let mut names: Vec<&str> = Vec::new();
    let mut cw: Vec<f64> = Vec::new();
    for (t, x) in kept.iter().zip(&w) {
        match names.iter().position(|n| *n == t.channel) {
            Some(j) => cw[j] += x,
            None => {
                names.push(&t.channel);
                cw.push(*x);
            }
        }
    }
    let total_w: f64 = cw.iter().sum();
    let minor = money::split(conversion.value_minor, &cw)?;
    let mut credits: Vec<Credit> = names
        .iter()
        .zip(cw.iter().zip(minor))
        .filter(|(_, (x, _))| **x > 0.0)
        .map(|(n, (x, m))| Credit { channel: (*n).to_owned(), conversions: x / total_w, value_minor: m })
        .collect();
    credits.sort_by(|a, b| a.channel.cmp(&b.channel));
    Ok(Credits {
        model: model.name().to_owned(),
        credits,
        unattributed_conversions: 0.0,
        unattributed_minor: 0,
        touches_used: kept.len(),
    })
}

/// Per-channel totals over a path table, indexed by channel id:
/// `(conversions, value)`. Each row's conversions and value are split by the
/// row's touch weights, in `f64` (ChannelAttribution's `heuristic_models`
/// semantics for first, last and linear).
pub fn table_totals(model: &Model, table: &PathTable) -> Result<(Vec<f64>, Vec<f64>), AttributionError> {
    let n = table.channels.len();
    let direct: Vec<bool> = (0..n as ChannelId).map(|c| is_direct_name(table.channels.name(c))).collect();
    let mut conv = vec![0.0; n];
    let mut val = vec![0.0; n];
    let mut scratch: Vec<f64> = Vec::new();
    for row in &table.rows {
        let steps = &row.steps;
        match model {
            // Fast paths for the single-touch models.
            Model::FirstTouch | Model::LastTouch | Model::LastNonDirect => {
                let i = match model {
                    Model::FirstTouch => 0,
                    Model::LastTouch => steps.len().saturating_sub(1),
                    _ => (0..steps.len())
                        .rev()
                        .find(|&i| steps.get(i).is_some_and(|c| !direct.get(*c as usize).copied().unwrap_or(false)))
                        .unwrap_or(steps.len().saturating_sub(1)),
                };
                if let Some(&c) = steps.get(i) {
                    conv[c as usize] += row.conversions;
                    val[c as usize] += row.value;
                }
            }
            Model::Linear => {
                // ChannelAttribution: per channel, (occurrences × conv) / n.
                let len = steps.len() as f64;
                scratch.clear();
                scratch.resize(n, 0.0);
                for &c in steps {
                    scratch[c as usize] += 1.0;
                }
                for &c in steps {
                    let k = scratch[c as usize];
                    if k > 0.0 {
                        conv[c as usize] += k * row.conversions / len;
                        val[c as usize] += k * row.value / len;
                        scratch[c as usize] = 0.0;
                    }
                }
            }
            _ => {
                let w = touch_weights(
                    model,
                    steps.len(),
                    |i| steps.get(i).is_some_and(|c| direct.get(*c as usize).copied().unwrap_or(false)),
                    row.ages_h.as_deref(),
                )?;
                let total: f64 = w.iter().sum();
                if total > 0.0 {
                    for (&c, x) in steps.iter().zip(&w) {
                        conv[c as usize] += row.conversions * x / total;
                        val[c as usize] += row.value * x / total;
                    }
                }
            }
        }
    }
    Ok((conv, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_matches_libm_closely() {
        for i in -2000..200 {
            let x = f64::from(i) * 0.37;
            let (a, b) = (exp2_det(x), x.exp2());
            assert!((a - b).abs() <= 4e-16 * b.abs() || (a - b).abs() < 1e-300, "{x}: {a} vs {b}");
        }
        assert_eq!(exp2_det(0.0), 1.0);
        assert_eq!(exp2_det(-1.0), 0.5);
    }
}
