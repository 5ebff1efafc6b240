//! `POST /v1/sites/{site}/rules/check` (owner): the dashboard's rule
//! editor. Reads a rule file (TOML, or JSON) exactly as a `PATCH` of the
//! site's rules would, and answers every problem with its line and field —
//! or, when it is valid, the rule document to save, the same rules as TOML
//! to edit, and what a journey of actions would score under them. Stores
//! nothing: saving is `PATCH /v1/sites/{site} {rules}` with the document.
//!
//! Body: `{text, format?: "toml" | "json", journey?: [action id, …]}` (the
//! journey's actions one minute apart, ending now; at most 100).

use crate::access::{self, Permission};
use crate::body;
use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::{Site, now_ms};
use microfunnel_core::Timestamp;
use microfunnel_core::scoring::{Rules, evaluate_actions};
use serde_json::{Value, json};
use worker::{Env, Request, Response, Result, RouteContext};

const MAX_JOURNEY: usize = 100;

pub async fn post(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    reply(inner(req, &ctx.env, &id).await)
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_rule_check", m.into())
}

async fn inner(mut req: Request, env: &Env, id: &str) -> ApiResult<Response> {
    access::authorize(&req, env, id, Permission::Config).await?;
    let site = Site::load(env, id).await?;
    body::check_json_media_type(&req)?;
    let text = body::read_limited(&mut req, body::MAX_BODY).await?;
    let Value::Object(b) = body::parse_json(&text)? else {
        return Err(bad("the body must be a JSON object {text, format?, journey?}"));
    };
    if let Some(k) = b.keys().find(|k| !matches!(k.as_str(), "text" | "format" | "journey")) {
        return Err(bad(format!("{k}: unknown field")));
    }
    let Some(Value::String(source)) = b.get("text") else {
        return Err(bad("text: the rule file, a string, is required"));
    };
    let toml = match b.get("format") {
        Some(Value::String(f)) if f == "toml" => true,
        Some(Value::String(f)) if f == "json" => false,
        None | Some(Value::Null) => !source.trim_start().starts_with('{'),
        Some(_) => return Err(bad("format: toml or json")),
    };
    let journey: Vec<String> = match b.get("journey") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= MAX_JOURNEY => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("journey: action ids (strings)"))?,
        Some(_) => return Err(bad(format!("journey: at most {MAX_JOURNEY} action ids"))),
    };
    let parsed = if toml { Rules::from_toml(source) } else { Rules::from_json(source) };
    let rules = match parsed {
        Ok(r) => r,
        Err(e) => {
            let errors: Vec<Value> =
                e.errors.iter().map(|x| json!({"line": x.line, "field": x.field, "rule": x.rule})).collect();
            return Ok(Response::from_json(&json!({"ok": false, "errors": errors}))?);
        }
    };
    // The stages the site's conversions enter must exist in these rules too.
    if let Err(e) = site.config.site.conversions().stages(&rules) {
        let errors = [json!({"line": null, "field": e.field, "rule": e.rule})];
        return Ok(Response::from_json(&json!({"ok": false, "errors": errors}))?);
    }
    let document = rules.to_json();
    let as_toml = toml::to_string(&document).ok();
    let now = now_ms();
    let steps: Vec<(&str, Timestamp)> = journey
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let back = i64::try_from(journey.len() - i).ok()? * 60_000;
            Some((a.as_str(), Timestamp::from_millis(now - back)?))
        })
        .collect();
    let at = Timestamp::from_millis(now).ok_or_else(|| ApiError::new(500, "internal", "clock out of range"))?;
    let score = if steps.is_empty() {
        Value::Null
    } else {
        match evaluate_actions(&rules, &steps, at) {
            Ok(s) => s.to_json(),
            Err(m) => {
                let (field, rule) = m.split_once(": ").unwrap_or(("journey", m.as_str()));
                let errors = [json!({"line": null, "field": field, "rule": rule})];
                return Ok(Response::from_json(&json!({"ok": false, "errors": errors}))?);
            }
        }
    };
    Ok(Response::from_json(&json!({
        "ok": true,
        "version": rules.version(),
        "actions": rules.action_ids().collect::<Vec<_>>(),
        "tiers": rules.tier_ids().collect::<Vec<_>>(),
        "document": document,
        "toml": as_toml,
        "score": score,
    }))?)
}
