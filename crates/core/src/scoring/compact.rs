//! The compact rule form the edge sends the browser: the same validated
//! [`Rules`], written as plain JSON arrays so the browser decodes it with a
//! small decoder instead of the rule-file validator (whose precise,
//! line-numbered messages are for people editing rule files, not for a wasm
//! module every visitor downloads).
//!
//! Made only by [`Rules::to_compact`] from rules that passed validation.
//! [`Rules::from_compact`] still checks every structural invariant the
//! engine relies on (types, ranges, tier order, unique ids and keys, glob
//! limits) and answers `Err` on anything else, never panics:
//! `Rules::from_compact(&r.to_compact()) == Ok(r)` for every valid `r`.
//!
//! ```text
//! ["mf1", version, session_timeout_ms, decay, velocity, tiers, actions, fit, stages?]
//! decay    = [] | [points_milli, period_ms] (linear) | [half_life_ms] (exponential)
//! velocity = [factor_milli, baseline_days, min_points]
//! tiers    = [id, min, id, min, …]                       (ascending min, first 0)
//! actions  = [[id, label|null, points, freq, matcher…], …]
//!            freq = "v" once per visitor | "s" once per session | "u" unlimited | N per day
//!            matcher = "e" + event name | "l" + element | "p" + page glob
//! fit      = [[id, trait index, points, label|null, "in"|"not_in", [text…]]
//!             | [id, trait index, points, label|null, "range", min|null, max|null], …]
//! stages   = [[id, label, min_score|null, any_conversion (0|1)], …]   (absent: none)
//! ```

use super::glob::Glob;
use super::rules::{
    Action, Decay, FitRule, Frequency, MAX_ACTIONS, MAX_FIT_RULES, MAX_POINTS, MAX_STAGES, MAX_TIERS, Matcher,
    Predicate, Rules, Stage, TRAITS, Tier, VelocityRules, assemble,
};
use serde_json::Value;

const TAG: &str = "mf1";
const BAD: &str = "invalid compact rules";

type Res<T> = Result<T, &'static str>;

impl Rules {
    /// The compact form (see the module docs) the edge serves the browser.
    pub fn to_compact(&self) -> Value {
        let decay = match self.decay {
            Decay::None => vec![],
            Decay::Linear { points_milli, period_ms } => vec![points_milli.into(), period_ms.into()],
            Decay::Exponential { half_life_ms } => vec![half_life_ms.into()],
        };
        let v = self.velocity;
        let tiers: Vec<Value> =
            self.tiers.iter().flat_map(|t| [Value::String(t.id.clone()), Value::from(t.min)]).collect();
        let actions: Vec<Value> = self
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                let freq = match a.frequency {
                    Frequency::OncePerVisitor => Value::from("v"),
                    Frequency::OncePerSession => Value::from("s"),
                    Frequency::Unlimited => Value::from("u"),
                    Frequency::PerDay(n) => Value::from(n),
                };
                let mut out = vec![Value::String(a.id.clone()), opt(&a.label), Value::from(a.points), freq];
                let tagged = |tag: &str, text: &str| Value::String([tag, text].concat());
                out.extend(self.by_event.iter().filter(|(_, x)| *x == i).map(|(e, _)| tagged("e", e)));
                out.extend(self.by_element.iter().filter(|(_, x)| *x == i).map(|(e, _)| tagged("l", e)));
                out.extend(self.pages.iter().filter(|(_, x)| *x == i).map(|(g, _)| tagged("p", g.pattern())));
                Value::Array(out)
            })
            .collect();
        let fit: Vec<Value> = self
            .fit
            .iter()
            .map(|r| {
                let mut out =
                    vec![Value::String(r.id.clone()), Value::from(r.trait_index), Value::from(r.points), opt(&r.label)];
                let list = |l: &[String]| Value::Array(l.iter().cloned().map(Value::String).collect());
                match &r.predicate {
                    Predicate::In(l) => out.extend([Value::from("in"), list(l)]),
                    Predicate::NotIn(l) => out.extend([Value::from("not_in"), list(l)]),
                    Predicate::Range { min, max } => {
                        let n = |x: &Option<f64>| x.map_or(Value::Null, Value::from);
                        out.extend([Value::from("range"), n(min), n(max)]);
                    }
                }
                Value::Array(out)
            })
            .collect();
        let mut top = vec![
            Value::from(TAG),
            Value::String(self.version.clone()),
            Value::from(self.session_timeout_ms),
            Value::Array(decay),
            Value::Array(vec![v.factor_milli.into(), v.baseline_days.into(), v.min_points.into()]),
            Value::Array(tiers),
            Value::Array(actions),
            Value::Array(fit),
        ];
        if !self.stages.is_empty() {
            let stages = self.stages.iter().map(|s| {
                Value::Array(vec![
                    Value::String(s.id.clone()),
                    Value::String(s.label.clone()),
                    s.min_score.map_or(Value::Null, Value::from),
                    Value::from(u8::from(s.any_conversion)),
                ])
            });
            top.push(Value::Array(stages.collect()));
        }
        Value::Array(top)
    }

    /// Decodes [`Rules::to_compact`]'s form. Anything that form cannot be
    /// is an `Err` (one static message: the edge made it from validated
    /// rules, so a failure means a damaged or foreign document).
    pub fn from_compact(v: &Value) -> Result<Rules, &'static str> {
        let top = arr(v)?;
        let (top, stages) = match top {
            [head @ .., stages] if head.len() == 8 => (head, Some(stages)),
            _ => (top, None),
        };
        let [tag, version, session, decay, velocity, tiers, actions, fit] = top else {
            return Err(BAD);
        };
        if tag.as_str() != Some(TAG) {
            return Err(BAD);
        }
        let version = text(version, 64)?;
        let session_timeout_ms = int(session, 60_000, 1440 * 60_000)?;
        let decay = match arr(decay)? {
            [] => Decay::None,
            [p, d] => Decay::Linear {
                points_milli: int(p, 1000, MAX_POINTS * 1000)?,
                period_ms: int(d, 1, 365 * crate::Timestamp::MILLIS_PER_DAY)?,
            },
            [h] => Decay::Exponential { half_life_ms: int(h, 1, 3650 * crate::Timestamp::MILLIS_PER_DAY)? },
            _ => return Err(BAD),
        };
        let velocity = match arr(velocity)? {
            [f, b, m] => VelocityRules {
                factor_milli: int(f, 1000, 100_000)?,
                baseline_days: int(b, 1, 365)?,
                min_points: int(m, 0, 100_000)?,
            },
            _ => return Err(BAD),
        };
        let mut tier_list = Vec::new();
        for pair in arr(tiers)?.chunks(2) {
            let [id, min] = pair else { return Err(BAD) };
            let min = int(min, 0, 100_000)?;
            if tier_list.last().map_or(min != 0, |t: &Tier| t.min >= min) {
                return Err(BAD);
            }
            tier_list.push(Tier { id: text(id, 32)?, min });
        }
        if tier_list.is_empty() || tier_list.len() > MAX_TIERS {
            return Err(BAD);
        }
        let actions = arr(actions)?;
        if actions.is_empty() || actions.len() > MAX_ACTIONS {
            return Err(BAD);
        }
        let mut parsed = Vec::with_capacity(actions.len());
        for a in actions {
            let [id, label, points, freq, matchers @ ..] = arr(a)? else {
                return Err(BAD);
            };
            let frequency = match freq {
                Value::String(s) if s == "v" => Frequency::OncePerVisitor,
                Value::String(s) if s == "s" => Frequency::OncePerSession,
                Value::String(s) if s == "u" => Frequency::Unlimited,
                n => Frequency::PerDay(int(n, 1, 1000)? as u32),
            };
            let mut ms = Vec::with_capacity(matchers.len());
            for m in matchers {
                let m = text(m, 300)?;
                let rest = m.get(1..).unwrap_or("").to_owned();
                ms.push(match m.get(..1) {
                    Some("e") if !rest.is_empty() => Matcher::Event(rest),
                    Some("l") if !rest.is_empty() => Matcher::Element(rest),
                    Some("p") => Matcher::Page(Glob::new(&rest).map_err(|_| BAD)?),
                    _ => return Err(BAD),
                });
            }
            let action = Action {
                id: text(id, 65)?,
                label: opt_text(label)?,
                points: int(points, -MAX_POINTS, MAX_POINTS)?,
                frequency,
            };
            parsed.push((action, ms));
        }
        let (actions, by_event, by_element, pages) = assemble(parsed);
        // Ids, event names and elements each map to one action.
        if !increasing(actions.iter().map(|a| a.id.as_str()))
            || !increasing(by_event.iter().map(|(k, _)| k.as_str()))
            || !increasing(by_element.iter().map(|(k, _)| k.as_str()))
        {
            return Err(BAD);
        }
        let fit = arr(fit)?;
        if fit.len() > MAX_FIT_RULES {
            return Err(BAD);
        }
        let mut fit_rules = Vec::with_capacity(fit.len());
        for r in fit {
            let [id, trait_index, points, label, kind, rest @ ..] = arr(r)? else {
                return Err(BAD);
            };
            let trait_index = int(trait_index, 0, TRAITS.len() as i64 - 1)? as usize;
            let list = |v: &Value| -> Res<Vec<String>> {
                let items = arr(v)?;
                if items.is_empty() {
                    return Err(BAD);
                }
                items.iter().map(|x| text(x, 256)).collect()
            };
            let num = |v: &Value| -> Res<Option<f64>> {
                match v {
                    Value::Null => Ok(None),
                    v => v.as_f64().filter(|x| x.is_finite()).map(Some).ok_or(BAD),
                }
            };
            let predicate = match (kind.as_str(), rest) {
                (Some("in"), [l]) => Predicate::In(list(l)?),
                (Some("not_in"), [l]) => Predicate::NotIn(list(l)?),
                (Some("range"), [lo, hi]) => {
                    let (min, max) = (num(lo)?, num(hi)?);
                    if let (Some(a), Some(b)) = (min, max)
                        && a > b
                    {
                        return Err(BAD);
                    }
                    Predicate::Range { min, max }
                }
                _ => return Err(BAD),
            };
            fit_rules.push(FitRule {
                id: text(id, 32)?,
                trait_index,
                predicate,
                points: int(points, -MAX_POINTS, MAX_POINTS)?,
                label: opt_text(label)?,
            });
        }
        let mut stage_list: Vec<Stage> = Vec::new();
        if let Some(stages) = stages {
            let stages = arr(stages)?;
            if stages.is_empty() || stages.len() > MAX_STAGES {
                return Err(BAD);
            }
            for s in stages {
                let [id, label, min, any] = arr(s)? else {
                    return Err(BAD);
                };
                let id = text(id, 32)?;
                let min_score = match min {
                    Value::Null => None,
                    n => Some(int(n, 0, 100_000)?),
                };
                let any_conversion = int(any, 0, 1)? == 1;
                // Unique ids, one any-conversion stage, rising thresholds.
                let clash = stage_list.iter().any(|s| {
                    s.id == id
                        || (any_conversion && s.any_conversion)
                        || min_score.is_some_and(|m| s.min_score.is_some_and(|n| n >= m))
                });
                if clash {
                    return Err(BAD);
                }
                stage_list.push(Stage { id, label: text(label, 200)?, min_score, any_conversion });
            }
        }
        Ok(Rules {
            stages: stage_list,
            version,
            session_timeout_ms,
            actions,
            by_event,
            by_element,
            pages,
            fit: fit_rules,
            decay,
            tiers: tier_list,
            velocity,
        })
    }
}

/// Strictly increasing (sorted and without repeats).
fn increasing<'a>(keys: impl Iterator<Item = &'a str>) -> bool {
    let mut prev: Option<&str> = None;
    for k in keys {
        if prev.is_some_and(|p| p >= k) {
            return false;
        }
        prev = Some(k);
    }
    true
}

fn opt(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn arr(v: &Value) -> Res<&[Value]> {
    v.as_array().map(Vec::as_slice).ok_or(BAD)
}

fn int(v: &Value, min: i64, max: i64) -> Res<i64> {
    v.as_i64().filter(|n| (min..=max).contains(n)).ok_or(BAD)
}

/// Non-empty text of at most `max` bytes.
fn text(v: &Value, max: usize) -> Res<String> {
    v.as_str().filter(|s| !s.is_empty() && s.len() <= max).map(str::to_owned).ok_or(BAD)
}

fn opt_text(v: &Value) -> Res<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.len() <= 200 => Ok(Some(s.clone())),
        _ => Err(BAD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_round_trip() {
        let r = Rules::default_rules();
        assert_eq!(Rules::from_compact(&r.to_compact()), Ok(r));
    }

    #[test]
    fn damaged_documents_are_errors() {
        let good = Rules::default_rules().to_compact();
        for bad in [
            serde_json::json!(null),
            serde_json::json!([]),
            serde_json::json!(["mf2"]),
            serde_json::json!(["mf1", "v", 1800000, [], [2000, 28, 15], ["cold", 5], [], []]),
            serde_json::json!([
                "mf1",
                "v",
                1800000,
                [],
                [2000, 28, 15],
                ["cold", 0, "hot", 0],
                [["a", null, 1, "u"]],
                []
            ]),
            serde_json::json!(["mf1", "v", 1800000, [], [2000, 28, 15], ["cold", 0], [["a", null, 1, "u", "x/"]], []]),
            serde_json::json!([
                "mf1",
                "v",
                1800000,
                [],
                [2000, 28, 15],
                ["cold", 0],
                [["a", null, 1, "u"]],
                [["f", 9, 1, null, "in", ["x"]]]
            ]),
        ] {
            assert_eq!(Rules::from_compact(&bad), Err(BAD), "{bad}");
        }
        // Stages: repeated ids, two any-conversion stages, falling thresholds, an empty list.
        for stages in [
            serde_json::json!([["lead", "Lead", null, 1], ["lead", "Again", null, 0]]),
            serde_json::json!([["lead", "Lead", null, 1], ["client", "Client", null, 1]]),
            serde_json::json!([["hot", "Hot", 80, 0], ["warm", "Warm", 20, 0]]),
            serde_json::json!([]),
            serde_json::json!([["lead", "Lead", null, 2]]),
        ] {
            let mut bad = good.clone();
            if let Value::Array(top) = &mut bad {
                top.truncate(8);
                top.push(stages.clone());
            }
            assert_eq!(Rules::from_compact(&bad), Err(BAD), "{stages}");
        }
        let mut dup = good.clone();
        if let Some(Value::Array(actions)) = dup.get_mut(6)
            && let Some(first) = actions.first().cloned()
        {
            actions.push(first);
        }
        assert_eq!(Rules::from_compact(&dup), Err(BAD));
    }
}
