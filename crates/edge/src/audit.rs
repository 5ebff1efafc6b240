//! The audit log: every administrative act on a site (tokens, shares,
//! settings, secrets, spend, subject exports and erasures), with who did it,
//! when, and the request's id. `GET /v1/sites/{site}/audit?from=&to=`
//! (owner) reads it, as JSON or CSV; the daily purge keeps it under the
//! site's retention. A detail names fields and counts, never a secret or a
//! data subject's id.

use crate::access::{self, Actor, Permission};
use crate::errors::{ApiResult, reply};
use crate::reports::{csv_response, wants_csv, window};
use crate::sites::{Site, js_num, now_ms};
use microfunnel_core::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Request, Response, Result, RouteContext};

/// Writes one entry (`request_id` from [`access::request_id`]). It is written
/// after the act succeeded; if writing it fails the caller answers 500, so
/// an act is never reported done without its entry.
pub async fn record(
    env: &Env,
    request_id: &str,
    site: &str,
    actor: &Actor,
    action: &str,
    detail: Value,
) -> ApiResult<()> {
    env.d1("DB")?
        .prepare(
            "INSERT INTO audit_log (site_id, at, action, actor_id, actor_name, request_id, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&[
            site.into(),
            js_num(now_ms()),
            action.into(),
            actor.id().into(),
            actor.name().into(),
            request_id.into(),
            serde_json::to_string(&detail)?.into(),
        ])?
        .run()
        .await?;
    Ok(())
}

#[derive(Deserialize)]
struct Row {
    at: f64,
    action: String,
    actor_id: String,
    actor_name: String,
    request_id: String,
    detail: String,
}

/// At most this many entries per answer, newest first.
const PAGE: i64 = 1000;

/// `GET /v1/sites/{site}/audit?from=&to=` (owner).
pub async fn get(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    reply(get_inner(&req, &ctx.env, &id).await)
}

async fn get_inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    access::authorize(req, env, id, Permission::Audit).await?;
    let site = Site::load(env, id).await?;
    let params: Vec<(String, String)> =
        req.url()?.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let (from, to) = window(&params)?;
    let rows: Vec<Row> = env
        .d1("DB")?
        .prepare(
            "SELECT at, action, actor_id, actor_name, request_id, detail FROM audit_log \
             WHERE site_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at DESC, id DESC LIMIT ?4",
        )
        .bind(&[site.id.as_str().into(), js_num(from), js_num(to), js_num(PAGE)])?
        .all()
        .await?
        .results()?;
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let at = Timestamp::from_millis(r.at as i64).map(Timestamp::to_rfc3339).unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null);
            json!({"at": at, "action": r.action, "actor_id": r.actor_id, "actor_name": r.actor_name,
                   "request_id": r.request_id, "detail": detail})
        })
        .collect();
    if wants_csv(req) {
        let keys = ["at", "action", "actor_id", "actor_name", "request_id"];
        let rows: Vec<Vec<Value>> = entries
            .iter()
            .map(|e| {
                let mut row: Vec<Value> = keys.iter().map(|k| e.get(*k).cloned().unwrap_or(Value::Null)).collect();
                row.push(Value::String(e.get("detail").map(Value::to_string).unwrap_or_default()));
                row
            })
            .collect();
        return csv_response(&["at", "action", "actor_id", "actor_name", "request_id", "detail"], &rows);
    }
    Ok(Response::from_json(&json!({"site": site.id, "entries": entries}))?)
}
