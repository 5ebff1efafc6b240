//! `scoring.*` golden vectors.
//!
//! - `scoring.evaluate` — input `{rules?, events, at, report?}`:
//!   `rules` is absent/`"default"` (the built-in set), a JSON rule object, or
//!   a string of TOML; `events` are compact events (below); `conversions`
//!   (optional) are `{event, stage?}` — the site's conversion events and the
//!   stage each names; `report` lists the fields of the score to compare
//!   (default `score`, `engagement`, `fit`, `tier`; `changes` = the tier
//!   changes `Scorer::apply` returned, `stage_changes` = the stage changes
//!   `Scorer::apply_staged` returned, event by event; `top_drivers` =
//!   `Score::top_drivers(10)`). Every
//!   case runs three ways — batch `evaluate`, a `Scorer` fed in input order,
//!   a `Scorer` fed in reverse order — and fails unless all three agree.
//! - `scoring.rules` — input `{toml}` or `{json}`: `ok` is
//!   `{version, actions, tiers}`, `error` the list of `{line, field, rule}`.
//!
//! A compact event: `{"at": RFC 3339, "id"?: UUID, "consent"?: false |
//! {purpose: bool}, ...}` plus one of `"event": name` (a track event; with
//! `"element"` it carries `properties.mf_element`), `"page": path`,
//! `"url": url` (page events), `"identify": {traits}`, or `"segment": {…}`, a
//! full Segment event used as is. Without `id`, the n-th event (from 0) gets
//! `00000000-0000-4000-8000-` + n in 12 hex digits, so ids sort in input
//! order. Without `consent`, the stamp grants every purpose.

use microfunnel_core::event::{Event, Limits};
use microfunnel_core::scoring::{ConversionStages, Rules, Scorer, evaluate_with};
use microfunnel_core::timestamp::Timestamp;
use serde_json::{Map, Value, json};

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    match suite {
        "scoring.evaluate" => evaluate_case(input),
        "scoring.rules" => rules_case(input),
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}

fn rules_case(input: &Value) -> Result<Value, Value> {
    let parsed = match (input.get("toml"), input.get("json")) {
        (Some(Value::String(text)), None) => from_toml(text),
        (None, Some(Value::String(text))) => Rules::from_json(text),
        (None, Some(v)) => Rules::from_json_value(v),
        _ => return Err(json!("vector input needs `toml` (text) or `json` (value or text)")),
    };
    if let Ok(r) = &parsed
        && Rules::from_compact(&r.to_compact()).as_ref() != Ok(r)
    {
        return Err(json!("the compact form does not round-trip"));
    }
    match parsed {
        Ok(r) => {
            let mut out = json!({
                "version": r.version(),
                "actions": r.action_ids().count(),
                "tiers": r.tier_ids().collect::<Vec<_>>(),
            });
            if !r.stages().is_empty()
                && let Some(o) = out.as_object_mut()
            {
                o.insert("stages".into(), json!(r.stages().iter().map(|s| s.id()).collect::<Vec<_>>()));
            }
            Ok(out)
        }
        Err(e) => Err(json!(e)),
    }
}

#[cfg(feature = "toml")]
fn from_toml(text: &str) -> Result<Rules, microfunnel_core::scoring::RuleFileError> {
    Rules::from_toml(text)
}

#[cfg(not(feature = "toml"))]
fn from_toml(_text: &str) -> Result<Rules, microfunnel_core::scoring::RuleFileError> {
    Err(microfunnel_core::scoring::RuleFileError::one(None, "", "built without TOML support"))
}

fn evaluate_case(input: &Value) -> Result<Value, Value> {
    let rules = match input.get("rules") {
        None => Rules::default_rules(),
        Some(Value::String(s)) if s == "default" => Rules::default_rules(),
        Some(Value::String(toml)) => from_toml(toml).map_err(|e| json!(e))?,
        Some(v) => Rules::from_json_value(v).map_err(|e| json!(e))?,
    };
    let conversions = match input.get("conversions") {
        None => ConversionStages::none(),
        Some(list) => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Conv {
                event: String,
                stage: Option<String>,
            }
            let list: Vec<Conv> = serde_json::from_value(list.clone()).map_err(|e| json!(e.to_string()))?;
            ConversionStages::new(&rules, list.iter().map(|c| (c.event.as_str(), c.stage.as_deref())))
                .map_err(|(i, rule)| json!({ "field": format!("conversions[{i}].stage"), "rule": rule }))?
        }
    };
    let at: Timestamp = super::field(input, "at")?;
    let raw: Vec<Value> = super::field(input, "events")?;
    let mut events = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        events.push(compact_event(e, i, at).map_err(|msg| json!(format!("events[{i}]: {msg}")))?);
    }

    let batch_score = evaluate_with(&rules, &conversions, &events, at);
    let batch = serde_json::to_value(&batch_score).map_err(|e| json!(e.to_string()))?;
    // The browser's path: rules through the compact form, JSON by hand.
    let compact = Rules::from_compact(&rules.to_compact()).map_err(|e| json!(e))?;
    let mut scorer = Scorer::with_conversions(compact, conversions.clone());
    let mut changes = Vec::new();
    let mut stage_changes = Vec::new();
    for e in &events {
        let (tier, stages) = scorer.apply_staged(e);
        changes.extend(tier);
        for c in stages {
            if serde_json::to_value(&c).ok() != Some(c.to_json()) {
                return Err(json!("StageChange::to_json differs from its serde form"));
            }
            stage_changes.push(c);
        }
    }
    if scorer.stage() != batch.get("stage").and_then(Value::as_str) {
        return Err(json!("Scorer::stage disagrees with Scorer::score"));
    }
    let forward = serde_json::to_value(scorer.score(at)).map_err(|e| json!(e.to_string()))?;
    if forward != scorer.score(at).to_json() {
        return Err(json!("Score::to_json differs from its serde form"));
    }
    if changes.iter().any(|c| serde_json::to_value(c.score).ok() != Some(c.score.to_json())) {
        return Err(json!("Points::to_json differs from its serde form"));
    }
    let mut reversed = Scorer::with_conversions(rules, conversions);
    for e in events.iter().rev() {
        reversed.apply(e);
    }
    let backward = serde_json::to_value(reversed.score(at)).map_err(|e| json!(e.to_string()))?;
    if batch != forward || batch != backward {
        return Err(
            json!({ "batch_and_incremental_differ": { "batch": batch, "scorer": forward, "scorer_reversed": backward } }),
        );
    }
    // The cheap accessors agree with the full report.
    if scorer.tier(at) != batch.get("tier").and_then(Value::as_str).unwrap_or_default()
        || serde_json::to_value(scorer.total(at)).ok().as_ref() != batch.get("score")
    {
        return Err(json!("Scorer::tier/total disagree with Scorer::score"));
    }

    let fields: Vec<String> = match input.get("report") {
        None => ["score", "engagement", "fit", "tier"].map(String::from).to_vec(),
        Some(_) => super::field(input, "report")?,
    };
    let mut out = Map::new();
    for f in fields {
        let value = if f == "changes" {
            json!(changes)
        } else if f == "stage_changes" {
            json!(stage_changes)
        } else if f == "top_drivers" {
            json!(batch_score.top_drivers(10))
        } else {
            batch.get(&f).cloned().ok_or_else(|| json!(format!("no field `{f}` in a score")))?
        };
        out.insert(f, value);
    }
    Ok(Value::Object(out))
}

fn compact_event(e: &Value, index: usize, now: Timestamp) -> Result<Event, String> {
    let limits = Limits { max_age_ms: i64::MAX, max_future_ms: i64::MAX, ..Limits::DEFAULT };
    let parse = |raw: &Value| Event::parse(raw, &limits, now).map_err(|e| e.to_string());
    if let Some(raw) = e.get("segment") {
        return parse(raw);
    }
    let at = e.get("at").and_then(Value::as_str).ok_or("`at` is required")?;
    let id = match e.get("id") {
        Some(Value::String(s)) => s.clone(),
        _ => format!("00000000-0000-4000-8000-{index:012x}"),
    };
    // Built as maps, not by indexing a Value (which panics on a non-object).
    let mut raw = Map::new();
    raw.insert("messageId".into(), json!(id));
    raw.insert("timestamp".into(), json!(at));
    raw.insert("anonymousId".into(), json!("visitor-1"));
    let mut stamp = Map::new();
    for purpose in ["analytics", "personalization", "marketing"] {
        stamp.insert(purpose.into(), json!(true));
    }
    stamp.insert("policy".into(), json!(microfunnel_core::consent::POLICY_VERSION));
    match e.get("consent") {
        None => {
            raw.insert("consent".into(), Value::Object(stamp));
        }
        Some(Value::Bool(false)) => {}
        Some(Value::Object(over)) => {
            stamp.extend(over.clone());
            raw.insert("consent".into(), Value::Object(stamp));
        }
        Some(_) => return Err("`consent` must be false or an object".into()),
    }
    let mut set = |k: &str, v: Value| raw.insert(k.into(), v);
    if let Some(name) = e.get("event") {
        set("type", json!("track"));
        set("event", name.clone());
        if let Some(el) = e.get("element") {
            set("properties", json!({ "mf_element": el }));
        }
    } else if let Some(path) = e.get("page") {
        set("type", json!("page"));
        set("context", json!({ "page": { "path": path } }));
    } else if let Some(url) = e.get("url") {
        set("type", json!("page"));
        set("context", json!({ "page": { "url": url } }));
    } else if let Some(traits) = e.get("identify") {
        set("type", json!("identify"));
        set("traits", traits.clone());
    } else {
        return Err("needs one of event, page, url, identify, segment".into());
    }
    parse(&Value::Object(raw))
}
