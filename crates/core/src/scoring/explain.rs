//! The score as a person may read it (a GDPR access request for "my score"
//! returns exactly this): totals, every driver in fold order, velocity, and
//! what would move the tier.

use super::rules::{Decay, Rules, TRAITS};
use super::stages::{ConversionStages, StageChange};
use super::state::{IgnoreReason, Points, RawDriver, State, allows, decayed};
use crate::timestamp::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

/// A score with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// `engagement + fit`; the tier comes from it.
    pub score: Points,
    /// Behavioural points after decay, ≥ 0.
    pub engagement: Points,
    /// Points of the fit rules that hold on the latest traits.
    pub fit: Points,
    pub tier: String,
    pub rules_version: String,
    /// The evaluation time: the requested one, or the last entry's if later.
    pub at: Timestamp,
    pub drivers: Vec<Driver>,
    pub next_tier_hint: Hint,
    pub velocity: Velocity,
    /// The lifecycle stage reached (`None` before any, or without stages).
    pub stage: Option<String>,
    /// Every stage change, in order.
    pub stages: Vec<StageChange>,
}

/// One step of the fold, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Driver {
    /// An action that counted; `engagement` is the running value after it
    /// (a negative action cannot take it below 0).
    Action { at: Timestamp, action: String, points: i64, engagement: Points },
    /// An entry that did not count (`entry` is the action id, or `identify`).
    Ignored { at: Timestamp, entry: String, reason: IgnoreReason },
    /// Inactivity between `from` and `to`; `points` is what was taken (≤ 0).
    Decay { from: Timestamp, to: Timestamp, points: Points, engagement: Points },
    /// A fit rule started to hold.
    FitGranted { at: Timestamp, rule: String, r#trait: String, points: i64, fit: Points },
    /// A fit rule stopped holding (a later trait contradicted it): its points go.
    FitRemoved { at: Timestamp, rule: String, r#trait: String, points: i64, fit: Points },
}

/// An action (or `fit.<rule>`) and what it adds up to in a score: the
/// lead's "why", as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopDriver {
    pub action: String,
    /// Points it contributed (all its counted occurrences; a fit rule's
    /// while it holds).
    pub points: i64,
    /// How many times it counted.
    pub count: u32,
}

impl Score {
    /// The `n` drivers that weigh most, by absolute points, then by name:
    /// every counted action summed, and each fit rule that still holds;
    /// decay is not a driver.
    pub fn top_drivers(&self, n: usize) -> Vec<TopDriver> {
        let mut by: Vec<TopDriver> = Vec::new();
        let mut add = |name: &str, points: i64, count: i32| {
            if let Some(d) = by.iter_mut().find(|d| d.action == name) {
                d.points += points;
                d.count = d.count.saturating_add_signed(count);
            } else {
                by.push(TopDriver { action: name.to_owned(), points, count: u32::try_from(count.max(0)).unwrap_or(0) });
            }
        };
        for d in &self.drivers {
            match d {
                Driver::Action { action, points, .. } => add(action, *points, 1),
                Driver::FitGranted { rule, points, .. } => add(&format!("fit.{rule}"), *points, 1),
                Driver::FitRemoved { rule, points, .. } => add(&format!("fit.{rule}"), -*points, -1),
                _ => {}
            }
        }
        by.retain(|d| d.points != 0 && d.count > 0);
        by.sort_by(|a, b| b.points.abs().cmp(&a.points.abs()).then_with(|| a.action.cmp(&b.action)));
        by.truncate(n);
        by
    }
}

/// What would change the tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hint {
    /// `None` in the top tier.
    pub next: Option<Lift>,
    /// `None` in the bottom tier.
    pub drop: Option<Fall>,
}

/// The smallest set of actions that would reach the next tier now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lift {
    pub tier: String,
    pub points_needed: i64,
    /// Fewest distinct actions that may still count now (frequency policies
    /// applied) whose points reach `points_needed`, largest first; empty when
    /// even all of them would not.
    pub actions: Vec<String>,
}

/// What would bring the visitor below the current tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fall {
    pub tier: String,
    pub points_to_lose: i64,
    /// Fewest negative actions that may still count now and would do it;
    /// empty when none would (e.g. fit alone keeps the tier).
    pub actions: Vec<String>,
    /// When decay alone would do it if nothing else happens; `None` if never.
    pub inactive_until: Option<Timestamp>,
}

/// Pace of engagement (positive points of counted actions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Velocity {
    /// Points in `(at − 1 h, at]`.
    pub last_hour: i64,
    /// Points in `(at − 24 h, at]`.
    pub last_day: i64,
    /// `last_day ≥ min_points` and `last_day > factor × (points in the
    /// baseline_days before that day) / baseline_days`.
    pub accelerating: bool,
}

type Obj = Map<String, Value>;

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Obj::new();
    for (k, v) in pairs {
        m.insert(k.into(), v);
    }
    Value::Object(m)
}

fn ts(t: Timestamp) -> Value {
    Value::String(t.to_rfc3339())
}

fn strs(list: &[String]) -> Value {
    Value::Array(list.iter().cloned().map(Value::String).collect())
}

impl Score {
    /// The score as its wire JSON, the same value `serde_json::to_value`
    /// gives (the scoring vectors hold them equal on every side). Built by
    /// hand so the browser returns explanations without serde.
    pub fn to_json(&self) -> Value {
        let h = &self.next_tier_hint;
        let next = h.next.as_ref().map_or(Value::Null, |l| {
            obj(vec![
                ("tier", Value::String(l.tier.clone())),
                ("points_needed", Value::from(l.points_needed)),
                ("actions", strs(&l.actions)),
            ])
        });
        let drop = h.drop.as_ref().map_or(Value::Null, |f| {
            obj(vec![
                ("tier", Value::String(f.tier.clone())),
                ("points_to_lose", Value::from(f.points_to_lose)),
                ("actions", strs(&f.actions)),
                ("inactive_until", f.inactive_until.map_or(Value::Null, ts)),
            ])
        });
        let v = &self.velocity;
        obj(vec![
            ("score", self.score.to_json()),
            ("engagement", self.engagement.to_json()),
            ("fit", self.fit.to_json()),
            ("tier", Value::String(self.tier.clone())),
            ("rules_version", Value::String(self.rules_version.clone())),
            ("at", ts(self.at)),
            ("drivers", Value::Array(self.drivers.iter().map(Driver::to_json).collect())),
            ("next_tier_hint", obj(vec![("next", next), ("drop", drop)])),
            (
                "velocity",
                obj(vec![
                    ("last_hour", Value::from(v.last_hour)),
                    ("last_day", Value::from(v.last_day)),
                    ("accelerating", Value::Bool(v.accelerating)),
                ]),
            ),
            ("stage", self.stage.clone().map_or(Value::Null, Value::String)),
            ("stages", Value::Array(self.stages.iter().map(StageChange::to_json).collect())),
        ])
    }
}

impl Driver {
    fn to_json(&self) -> Value {
        let s = |t: &str| Value::String(t.into());
        match self {
            Driver::Action { at, action, points, engagement } => obj(vec![
                ("type", s("action")),
                ("at", ts(*at)),
                ("action", s(action)),
                ("points", Value::from(*points)),
                ("engagement", engagement.to_json()),
            ]),
            Driver::Ignored { at, entry, reason } => {
                obj(vec![("type", s("ignored")), ("at", ts(*at)), ("entry", s(entry)), ("reason", s(reason.as_str()))])
            }
            Driver::Decay { from, to, points, engagement } => obj(vec![
                ("type", s("decay")),
                ("from", ts(*from)),
                ("to", ts(*to)),
                ("points", points.to_json()),
                ("engagement", engagement.to_json()),
            ]),
            Driver::FitGranted { at, rule, r#trait, points, fit }
            | Driver::FitRemoved { at, rule, r#trait, points, fit } => {
                let kind = if matches!(self, Driver::FitGranted { .. }) { "fit_granted" } else { "fit_removed" };
                obj(vec![
                    ("type", s(kind)),
                    ("at", ts(*at)),
                    ("rule", s(rule)),
                    ("trait", s(r#trait)),
                    ("points", Value::from(*points)),
                    ("fit", fit.to_json()),
                ])
            }
        }
    }
}

/// The evaluation time: never before the last entry.
fn effective_at(state: &State, at: Timestamp) -> Timestamp {
    state.last_at.map_or(at, |last| at.max(last))
}

/// Engagement after the decay accrued since the last activity, at `at`.
pub(crate) fn engagement_at(rules: &Rules, state: &State, at: Timestamp) -> i64 {
    let at = effective_at(state, at);
    match state.last_activity {
        Some(last) => decayed(&rules.decay, state.engagement, at.since(last)),
        None => state.engagement,
    }
}

pub(crate) fn report(rules: &Rules, conversions: &ConversionStages, state: &State, at: Timestamp) -> Score {
    let at = effective_at(state, at);
    let engagement = engagement_at(rules, state, at);
    let total = engagement.saturating_add(state.fit);
    let tier = rules.tier_of(total);
    let action_id = |i: u32| rules.action(i).map_or(String::new(), |a| a.id.clone());
    let mut drivers: Vec<Driver> = state
        .drivers
        .iter()
        .map(|d| match *d {
            RawDriver::Counted { at, action, engagement } => Driver::Action {
                at,
                action: action_id(action),
                points: rules.action(action).map_or(0, |a| a.points),
                engagement: Points::from_milli(engagement),
            },
            RawDriver::Ignored { at, action, reason } => {
                Driver::Ignored { at, entry: action.map_or_else(|| "identify".to_owned(), action_id), reason }
            }
            RawDriver::Decay { from, to, amount, engagement } => Driver::Decay {
                from,
                to,
                points: Points::from_milli(-amount),
                engagement: Points::from_milli(engagement),
            },
            RawDriver::Fit { at, rule, granted, fit } => {
                let r = rules.fit.get(rule as usize);
                let id = r.map_or(String::new(), |r| r.id.clone());
                let name = r.and_then(|r| TRAITS.get(r.trait_index)).copied().unwrap_or("").to_owned();
                let points = r.map_or(0, |r| r.points);
                let fit = Points::from_milli(fit);
                if granted {
                    Driver::FitGranted { at, rule: id, r#trait: name, points, fit }
                } else {
                    Driver::FitRemoved { at, rule: id, r#trait: name, points: -points, fit }
                }
            }
        })
        .collect();
    if let Some(last) = state.last_activity
        && engagement < state.engagement
    {
        drivers.push(Driver::Decay {
            from: last,
            to: at,
            points: Points::from_milli(engagement - state.engagement),
            engagement: Points::from_milli(engagement),
        });
    }
    Score {
        score: Points::from_milli(total),
        engagement: Points::from_milli(engagement),
        fit: Points::from_milli(state.fit),
        tier: rules.tier_id(tier).to_owned(),
        rules_version: rules.version.clone(),
        at,
        drivers,
        next_tier_hint: hint(rules, state, at, engagement, tier),
        velocity: velocity(rules, state, at),
        stage: state.stage.and_then(|s| rules.stages.get(usize::from(s))).map(|s| s.id.clone()),
        stages: state.stage_changes.iter().map(|c| StageChange::from_raw(rules, conversions, c)).collect(),
    }
}

fn velocity(rules: &Rules, state: &State, at: Timestamp) -> Velocity {
    let v = rules.velocity;
    let hour_start = at.millis() - Timestamp::MILLIS_PER_HOUR;
    let day_start = at.millis() - Timestamp::MILLIS_PER_DAY;
    let base_start = day_start - v.baseline_days * Timestamp::MILLIS_PER_DAY;
    let (mut last_hour, mut last_day, mut baseline) = (0i64, 0i64, 0i64);
    // Counted drivers are in time order: walk back until the baseline starts.
    for d in state.drivers.iter().rev() {
        let RawDriver::Counted { at: t, action, .. } = *d else {
            continue;
        };
        let t = t.millis();
        if t <= base_start {
            break;
        }
        let points = rules.action(action).map_or(0, |a| a.points).max(0);
        if t > day_start {
            last_day += points;
            if t > hour_start {
                last_hour += points;
            }
        } else {
            baseline += points;
        }
    }
    // last_day / 1 day > factor × baseline / baseline_days, in integers.
    let accelerating = last_day > 0
        && last_day >= v.min_points
        && i128::from(last_day) * i128::from(v.baseline_days) * 1000
            > i128::from(v.factor_milli) * i128::from(baseline);
    Velocity { last_hour, last_day, accelerating }
}

fn hint(rules: &Rules, state: &State, at: Timestamp, engagement: i64, tier: usize) -> Hint {
    let total = engagement.saturating_add(state.fit);
    // Whether each action would count if it happened at `at`.
    let session_at = match state.last_activity {
        Some(last) if at.since(last) < rules.session_timeout_ms => state.session,
        _ => state.session + 1,
    };
    let day = at.day();
    let mut available: Vec<(i64, &str)> = rules
        .actions
        .iter()
        .zip(&state.freq)
        .filter(|(a, f)| allows(a.frequency, f, session_at, day))
        .map(|(a, _)| (a.points, a.id.as_str()))
        .collect();

    let next = rules.tiers.get(tier + 1).map(|next| {
        let needed_milli = next.min.saturating_mul(1000) - total;
        let points_needed = ceil_div(needed_milli, 1000);
        // Largest first: the k largest reach any sum the k-element sets can.
        super::sort_small(&mut available, |a, b| (b.0, a.1) < (a.0, b.1));
        let mut actions = Vec::new();
        let mut sum = 0i64;
        for (points, id) in available.iter().filter(|(p, _)| *p > 0) {
            if sum >= points_needed {
                break;
            }
            sum += points;
            actions.push((*id).to_owned());
        }
        if sum < points_needed {
            actions.clear();
        }
        Lift { tier: next.id.clone(), points_needed, actions }
    });

    let drop = tier.checked_sub(1).and_then(|below| rules.tiers.get(below)).and_then(|below| {
        let min = rules.tiers.get(tier)?.min.saturating_mul(1000);
        // Below the tier: total < min, i.e. lose more than total − min.
        let points_to_lose = (total - min).div_euclid(1000) + 1;
        // Engagement cannot go below 0, so the fit alone may hold the tier.
        let reachable = state.fit < min;
        let mut actions = Vec::new();
        if reachable {
            super::sort_small(&mut available, |a, b| a < b);
            let mut e = engagement;
            for (points, id) in available.iter().filter(|(p, _)| *p < 0) {
                if e.saturating_add(state.fit) < min {
                    break;
                }
                e = (e + points * 1000).max(0);
                actions.push((*id).to_owned());
            }
            if e.saturating_add(state.fit) >= min {
                actions.clear();
            }
        }
        let inactive_until = if reachable { decay_crossing(rules, state, min) } else { None };
        Some(Fall { tier: below.id.clone(), points_to_lose, actions, inactive_until })
    });
    Hint { next, drop }
}

/// The first instant at which decay alone brings the total below `min`.
/// A binary search on the same `decayed` the fold uses, so it is exact.
fn decay_crossing(rules: &Rules, state: &State, min: i64) -> Option<Timestamp> {
    let last = state.last_activity?;
    if matches!(rules.decay, Decay::None) {
        return None;
    }
    let below = |gap: i64| decayed(&rules.decay, state.engagement, gap).saturating_add(state.fit) < min;
    let mut hi: i64 = Timestamp::MILLIS_PER_DAY;
    while !below(hi) {
        hi = hi.checked_mul(2)?;
        if hi > 1_000_000 * Timestamp::MILLIS_PER_DAY {
            return None;
        }
    }
    let mut lo = 0i64; // not below at lo (the current tier holds)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if below(mid) { hi = mid } else { lo = mid }
    }
    Timestamp::from_millis(last.millis().checked_add(hi)?)
}

fn ceil_div(a: i64, b: i64) -> i64 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 { q } else { q + 1 }
}
