//! `GET /v1/sites/{site}/install` (owner): what a new site owner needs to
//! see that the tag works — the script tag to copy, and the latest event
//! the site's pages sent, naming its kind, page and consent. Read from the
//! stored (minimised) events; answers nothing a report does not already.

use crate::access::{self, Permission};
use crate::errors::{ApiResult, reply};
use crate::sites::{Site, js_num, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Request, Response, Result, RouteContext};

const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize)]
struct Row {
    received_at: f64,
    payload: String,
}

#[derive(Deserialize)]
struct Count {
    n: f64,
}

pub async fn get(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    reply(inner(&req, &ctx.env, &id).await)
}

async fn inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    access::authorize(req, env, id, Permission::Config).await?;
    let site = Site::load(env, id).await?;
    let db = env.d1("DB")?;
    let site_id = site.id.as_str();
    let edge = |order: &str| {
        format!(
            "SELECT received_at, payload FROM events WHERE site_id = ?1 AND source = 'browser' \
             ORDER BY received_at {order} LIMIT 1"
        )
    };
    let first: Option<Row> = db.prepare(edge("ASC")).bind(&[site_id.into()])?.first(None).await?;
    let last: Option<Row> = db.prepare(edge("DESC")).bind(&[site_id.into()])?.first(None).await?;
    let day: Option<Count> = db
        .prepare("SELECT COUNT(*) AS n FROM events WHERE site_id = ?1 AND source = 'browser' AND received_at >= ?2")
        .bind(&[site_id.into(), js_num(now_ms() - DAY_MS)])?
        .first(None)
        .await?;
    let collector = req.url()?.origin().ascii_serialization();
    Ok(Response::from_json(&json!({
        "site": site.id,
        "script_tag": site.config.site.script_tag(&collector, &site.id),
        "origins": site.origins,
        "first_event": first.as_ref().map(describe),
        "last_event": last.as_ref().map(describe),
        "events_24h": day.map_or(0, |c| c.n as i64),
    }))?)
}

/// What was received, in the owner's terms: its kind (a page view, an
/// event's name), the page path and the consent it was captured under.
fn describe(row: &Row) -> Value {
    let e: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
    let kind = match e.get("type").and_then(Value::as_str) {
        Some("page") => "page view".to_owned(),
        Some("track") => e.get("event").and_then(Value::as_str).unwrap_or("track").to_owned(),
        Some(other) => other.to_owned(),
        None => "event".to_owned(),
    };
    let page = e.pointer("/context/page/path").and_then(Value::as_str);
    let consent = e.get("consent").cloned().unwrap_or(Value::Null);
    let purpose = |p: &str| consent.get(p).and_then(Value::as_bool).unwrap_or(false);
    json!({
        "received_at": row.received_at as i64,
        "kind": kind,
        "page": page,
        "consent": {
            "analytics": purpose("analytics"),
            "personalization": purpose("personalization"),
            "marketing": purpose("marketing"),
        },
    })
}
