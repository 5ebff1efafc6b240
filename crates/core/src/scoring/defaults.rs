//! The default rule set of `docs/scoring.md`, built in Rust so the browser
//! has it without a TOML parser or a fetch. `crates/core/rules/default.toml`
//! is the readable copy; a test holds the two equal. Also: rules back to
//! their JSON document form.

use super::glob::Glob;
use super::rules::{Action, Decay, Frequency, Matcher, Predicate, Rules, Stage, TRAITS, Tier, VelocityRules, assemble};
use crate::Timestamp;
use serde_json::{Map, Value, json};

use Frequency::{OncePerSession as Session, OncePerVisitor as Visitor, PerDay};

enum M {
    Event(&'static str),
    Page(&'static str),
    Element(&'static str),
}

/// (id, label, points, frequency, matchers), as in `default.toml`.
const ACTIONS: [(&str, &str, i64, Frequency, &[M]); 21] = [
    ("web.home_view", "home page view", 1, Session, &[M::Page("/")]),
    ("web.blog_read", "blog article read", 3, PerDay(5), &[M::Page("/blog/**")]),
    ("web.pricing_view", "pricing page view", 15, Session, &[M::Page("/pricing"), M::Page("/pricing/**")]),
    ("web.buy_click", "click on Buy / Book", 25, Session, &[M::Element("buy"), M::Element("book")]),
    ("email.open", "email open", 2, PerDay(3), &[M::Event("Email Opened")]),
    ("email.click", "email link click", 8, PerDay(3), &[M::Event("Email Link Clicked")]),
    ("email.reply", "direct reply to an email", 20, PerDay(1), &[]),
    ("social.follow", "follows the company page", 3, Visitor, &[]),
    ("social.comment", "comment on a post", 10, PerDay(2), &[]),
    ("social.message", "private message", 18, PerDay(1), &[]),
    ("event.webinar_register", "webinar registration", 12, PerDay(1), &[]),
    ("event.webinar_attend", "webinar attendance", 25, PerDay(1), &[]),
    ("event.webinar_question", "question asked during a webinar", 35, PerDay(1), &[]),
    ("offline.booth_visit", "visit at a trade-show booth", 8, PerDay(1), &[]),
    ("offline.qr_scan", "QR scan / brochure taken", 15, PerDay(1), &[]),
    ("offline.contact_left", "leaves contact details", 20, PerDay(1), &[]),
    ("offline.meeting_request", "asks for a sales meeting", 40, PerDay(1), &[]),
    ("email.unsubscribe", "newsletter unsubscribe", -30, Visitor, &[M::Event("Unsubscribed")]),
    ("email.spam_report", "email marked as spam", -40, Visitor, &[M::Event("Email Marked as Spam")]),
    ("ad.hide", "unsubscribe / hide on an ad", -15, PerDay(1), &[]),
    ("offline.call_refused", "explicitly refuses a sales call", -25, PerDay(1), &[]),
];

pub(crate) fn rules() -> Rules {
    let parsed = ACTIONS
        .iter()
        .map(|(id, label, points, frequency, matchers)| {
            let action = Action {
                id: (*id).to_owned(),
                label: Some((*label).to_owned()),
                points: *points,
                frequency: *frequency,
            };
            let matchers = matchers
                .iter()
                .map(|m| match m {
                    M::Event(e) => Matcher::Event((*e).to_owned()),
                    M::Element(e) => Matcher::Element((*e).to_owned()),
                    M::Page(p) => Matcher::Page(Glob::compile(p)),
                })
                .collect();
            (action, matchers)
        })
        .collect();
    let (actions, by_event, by_element, pages) = assemble(parsed);
    Rules {
        version: "default-1".to_owned(),
        session_timeout_ms: 30 * 60_000,
        actions,
        by_event,
        by_element,
        pages,
        fit: Vec::new(),
        decay: Decay::Linear { points_milli: 2000, period_ms: 7 * Timestamp::MILLIS_PER_DAY },
        tiers: [("cold", 0), ("warm", 26), ("hot", 51), ("very_hot", 76)]
            .into_iter()
            .map(|(id, min)| Tier { id: id.to_owned(), min })
            .collect(),
        velocity: VelocityRules::DEFAULT,
        // `qualified` at the third tier's threshold (hot, 51).
        stages: [
            ("lead", "Lead", None, true),
            ("qualified", "Qualified", Some(51), false),
            ("client", "Client", None, false),
        ]
        .into_iter()
        .map(|(id, label, min_score, any_conversion)| Stage {
            id: id.to_owned(),
            label: label.to_owned(),
            min_score,
            any_conversion,
        })
        .collect(),
    }
}

/// The JSON rule document of `rules` (labels kept, defaults written out).
pub(crate) fn to_json(rules: &Rules) -> Value {
    let mut channels: Map<String, Value> = Map::new();
    for (index, a) in rules.actions.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let mut matchers = Vec::new();
        for (name, i) in &rules.by_event {
            if *i == index {
                matchers.push(json!({ "event": name }));
            }
        }
        for (g, i) in &rules.pages {
            if *i == index {
                matchers.push(json!({ "page": g.pattern() }));
            }
        }
        for (el, i) in &rules.by_element {
            if *i == index {
                matchers.push(json!({ "element": el }));
            }
        }
        let frequency = match a.frequency {
            Frequency::OncePerVisitor => json!("once_per_visitor"),
            Frequency::OncePerSession => json!("once_per_session"),
            Frequency::Unlimited => json!("unlimited"),
            Frequency::PerDay(n) => json!({ "per_day": n }),
        };
        let mut body = Map::new();
        body.insert("points".into(), json!(a.points));
        body.insert("frequency".into(), frequency);
        if !matchers.is_empty() {
            body.insert("match".into(), Value::Array(matchers));
        }
        if let Some(label) = &a.label {
            body.insert("label".into(), json!(label));
        }
        let (channel, name) = a.id.split_once('.').unwrap_or((a.id.as_str(), ""));
        if let Value::Object(c) = channels.entry(channel).or_insert_with(|| json!({})) {
            c.insert(name.to_owned(), Value::Object(body));
        }
    }
    let mut fit = Map::new();
    for r in &rules.fit {
        let mut body = Map::new();
        body.insert("trait".into(), json!(TRAITS.get(r.trait_index).copied().unwrap_or("")));
        match &r.predicate {
            Predicate::In(list) => {
                body.insert("in".into(), json!(list));
            }
            Predicate::NotIn(list) => {
                body.insert("not_in".into(), json!(list));
            }
            Predicate::Range { min, max } => {
                if let Some(min) = min {
                    body.insert("min".into(), json!(min));
                }
                if let Some(max) = max {
                    body.insert("max".into(), json!(max));
                }
            }
        }
        body.insert("points".into(), json!(r.points));
        if let Some(label) = &r.label {
            body.insert("label".into(), json!(label));
        }
        fit.insert(r.id.clone(), Value::Object(body));
    }
    let decay = match rules.decay {
        Decay::None => json!({ "kind": "none" }),
        Decay::Linear { points_milli, period_ms } => json!({
            "kind": "linear",
            "points": points_milli / 1000,
            "period_days": period_ms / Timestamp::MILLIS_PER_DAY,
        }),
        Decay::Exponential { half_life_ms } => json!({
            "kind": "exponential",
            "half_life_days": half_life_ms / Timestamp::MILLIS_PER_DAY,
        }),
    };
    let tiers: Map<String, Value> = rules.tiers.iter().map(|t| (t.id.clone(), json!(t.min))).collect();
    let v = rules.velocity;
    let stages: Vec<Value> = rules
        .stages
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("id".into(), json!(s.id));
            m.insert("label".into(), json!(s.label));
            if let Some(min) = s.min_score {
                m.insert("min_score".into(), json!(min));
            }
            if s.any_conversion {
                m.insert("any_conversion".into(), json!(true));
            }
            Value::Object(m)
        })
        .collect();
    let mut doc = json!({
        "version": rules.version,
        "session_timeout_minutes": rules.session_timeout_ms / 60_000,
        "decay": decay,
        "velocity": {
            "factor": v.factor_milli as f64 / 1000.0,
            "baseline_days": v.baseline_days,
            "min_points": v.min_points,
        },
        "tiers": tiers,
        "actions": channels,
        "fit": fit,
    });
    if !stages.is_empty()
        && let Value::Object(m) = &mut doc
    {
        m.insert("stages".into(), Value::Array(stages));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_round_trip_through_json() {
        let r = Rules::default_rules();
        assert_eq!(Rules::from_json_value(&r.to_json()), Ok(r));
    }

    #[cfg(feature = "toml")]
    #[test]
    fn default_toml_file_is_the_built_in_set() {
        let file = Rules::from_toml(include_str!("../../rules/default.toml")).unwrap();
        assert_eq!(file, Rules::default_rules());
    }

    #[test]
    fn default_set_has_the_doc_tables() {
        let r = Rules::default_rules();
        assert_eq!(r.actions.iter().filter(|a| a.points > 0).count(), 17);
        assert_eq!(r.actions.iter().filter(|a| a.points < 0).count(), 4);
        assert_eq!(r.tier_ids().collect::<Vec<_>>(), ["cold", "warm", "hot", "very_hot"]);
        let stages: Vec<_> = r.stages().iter().map(|s| (s.id(), s.min_score(), s.any_conversion())).collect();
        assert_eq!(stages, [("lead", None, true), ("qualified", Some(51), false), ("client", None, false)]);
    }
}
