//! Privacy rights (owner or privacy token; `?site=` names the site): `GET
//! /v1/subjects/{id}` exports everything held about a subject, `GET
//! /v1/subjects/{id}/score` explains their score, `DELETE /v1/subjects/{id}`
//! erases them from every table and from their Durable Objects.
//!
//! A subject id is an anonymousId, a userId, a visitor id, or `email:<address>`
//! (matched by its SHA-256, as is a userId that is an address). It resolves to every visitor linked to it —
//! unproven claims of that id included, so an erasure reaches them too.
//! `POST /v1/subjects/export` and `POST /v1/subjects/erase` take `{site, id}`
//! in the body instead, so an address never sits in a URL (and in the logs
//! that keep URLs).
//!
//! Erasure is written down first (`erasures`: the visitors and ids it must
//! reach), then goes objects first, then D1: an object erase repeats
//! harmlessly, and while the D1 rows stand a retry still finds every object
//! to erase. The last D1 batch also marks the record done and clears its
//! ids; a record a failed request left pending is completed by the daily
//! cron ([`complete_pending`]).

use crate::access::{self, Actor, Permission};
use crate::audit;
use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::{Site, js_num, now_ms};
use crate::visitor;
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{D1Database, Env, Request, Response, Result, RouteContext};

/// Tables holding rows about a visitor, and the column naming it.
const VISITOR_TABLES: &[&str] =
    &["visitors", "sessions", "identities", "conversions", "credits", "webhook_deliveries", "customers"];

struct Subject {
    site: Site,
    /// Who asked, and the request's id, for the audit log.
    actor: Actor,
    request_id: String,
    /// The id as given, and the ids linked to it.
    ids: Vec<String>,
    visitors: Vec<String>,
}

async fn resolve(req: &Request, env: &Env, raw_id: &str) -> ApiResult<Subject> {
    let actor = access::authenticate(req, env).await?;
    let site_id = req.url()?.query_pairs().find(|(k, _)| k == "site").map(|(_, v)| v.into_owned());
    let Some(site_id) = site_id else {
        return Err(ApiError::bad_request("missing_site", "site: the query parameter is required"));
    };
    access::permit(&actor, &site_id, Permission::Subjects)?;
    resolve_in(env, &site_id, raw_id, actor, access::request_id(req)).await
}

/// `{site, id}` from a POST body (admin).
async fn resolve_body(mut req: Request, env: &Env) -> ApiResult<(Subject, String)> {
    let actor = access::authenticate(&req, env).await?;
    crate::body::check_json_media_type(&req)?;
    let text = crate::body::read_limited(&mut req, 2048).await?;
    let Value::Object(b) = crate::body::parse_json(&text)? else {
        return Err(ApiError::bad_request("invalid_subject", "the body must be a JSON object {site, id}"));
    };
    if let Some(k) = b.keys().find(|k| !matches!(k.as_str(), "site" | "id")) {
        return Err(ApiError::bad_request("invalid_subject", format!("{k}: unknown field")));
    }
    let (Some(Value::String(site)), Some(Value::String(id))) = (b.get("site"), b.get("id")) else {
        return Err(ApiError::bad_request("invalid_subject", "site and id: both are required strings"));
    };
    access::permit(&actor, site, Permission::Subjects)?;
    Ok((resolve_in(env, site, id, actor, access::request_id(&req)).await?, id.clone()))
}

impl Subject {
    async fn audit(&self, env: &Env, action: &str, detail: Value) -> ApiResult<()> {
        audit::record(env, &self.request_id, &self.site.id, &self.actor, action, detail).await
    }
}

async fn resolve_in(env: &Env, site_id: &str, raw_id: &str, actor: Actor, request_id: String) -> ApiResult<Subject> {
    let site = Site::load(env, site_id).await?;
    if raw_id.is_empty() || raw_id.len() > 320 {
        return Err(ApiError::bad_request("invalid_subject", "the subject id must be 1 to 320 bytes"));
    }
    let id = match raw_id.strip_prefix("email:") {
        // The same key the browser and ingest make (`identity::email_sha256`).
        Some(email) => microfunnel_core::identity::email_sha256(email)
            .ok_or_else(|| ApiError::bad_request("invalid_subject", "email: must be an address, local@domain"))?,
        // A userId that is an address is stored as its key (`consent::minimise_with`).
        None if microfunnel_core::pii::is_email_address(raw_id) => {
            microfunnel_core::identity::email_sha256(raw_id).unwrap_or_else(|| raw_id.to_owned())
        }
        None => raw_id.to_owned(),
    };
    let db = env.d1("DB")?;
    #[derive(Deserialize)]
    struct V {
        visitor_id: String,
    }
    // A site that stores userIds as their keyed hash finds its subject by it.
    let hashed = crate::secrets::user_id_key(env, &site)?.map(|k| crate::secrets::hashed_user_id(&k, &id));
    let user = hashed.clone().unwrap_or_else(|| id.clone());
    let visitors: Vec<V> = db
        .prepare(
            "SELECT visitor_id FROM identities WHERE site_id = ?1 AND value IN (?2, ?3) \
             UNION SELECT visitor_id FROM visitors WHERE site_id = ?1 AND (visitor_id = ?2 OR user_id IN (?2, ?3)) \
             UNION SELECT visitor_id FROM events WHERE site_id = ?1 AND visitor_id IS NOT NULL \
               AND (visitor_id = ?2 OR anonymous_id = ?2 OR user_id IN (?2, ?3))",
        )
        .bind(&[site.id.as_str().into(), id.as_str().into(), user.as_str().into()])?
        .all()
        .await?
        .results()?;
    let visitors: Vec<String> = visitors.into_iter().map(|v| v.visitor_id).collect();
    if visitors.is_empty() {
        return Err(ApiError::new(404, "subject_not_found", "nothing is held about this subject on this site"));
    }
    let mut ids = linked_ids(&db, &site.id, &visitors).await?;
    ids.push(id);
    ids.extend(hashed);
    ids.extend(visitors.iter().cloned());
    ids.sort();
    ids.dedup();
    Ok(Subject { site, actor, request_id, ids, visitors })
}

async fn linked_ids(db: &D1Database, site: &str, visitors: &[String]) -> ApiResult<Vec<String>> {
    #[derive(Deserialize)]
    struct I {
        value: String,
    }
    let rows: Vec<I> = db
        .prepare("SELECT value FROM identities WHERE site_id = ?1 AND visitor_id IN (SELECT value FROM json_each(?2))")
        .bind(&[site.into(), serde_json::to_string(visitors)?.into()])?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(|r| r.value).collect())
}

fn id_param(ctx: &RouteContext<()>) -> String {
    ctx.param("id").cloned().unwrap_or_default()
}

/// `GET /v1/subjects/{id}?site=`.
pub async fn export(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = id_param(&ctx);
    reply(export_inner(&req, &ctx.env, &id).await)
}

async fn export_inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    export_subject(env, resolve(req, env, id).await?, id).await
}

/// `POST /v1/subjects/export {site, id}`.
pub async fn export_post(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(
        async {
            let (s, id) = resolve_body(req, &ctx.env).await?;
            export_subject(&ctx.env, s, &id).await
        }
        .await,
    )
}

async fn export_subject(env: &Env, s: Subject, id: &str) -> ApiResult<Response> {
    let db = env.d1("DB")?;
    let ids = serde_json::to_string(&s.ids)?;
    let vis = serde_json::to_string(&s.visitors)?;
    let mut tables = serde_json::Map::new();
    let events: Vec<Value> = db
        .prepare(
            "SELECT message_id, type, name, visitor_id, anonymous_id, user_id, channel, source, ts, received_at, payload \
             FROM events WHERE site_id = ?1 AND (visitor_id IN (SELECT value FROM json_each(?2)) \
             OR anonymous_id IN (SELECT value FROM json_each(?3)) OR user_id IN (SELECT value FROM json_each(?3))) \
             ORDER BY ts",
        )
        .bind(&[s.site.id.as_str().into(), vis.as_str().into(), ids.as_str().into()])?
        .all()
        .await?
        .results()?;
    tables.insert("events".into(), Value::Array(events));
    for table in VISITOR_TABLES {
        let rows: Vec<Value> = db
            .prepare(format!(
                "SELECT * FROM {table} WHERE site_id = ?1 AND visitor_id IN (SELECT value FROM json_each(?2))"
            ))
            .bind(&[s.site.id.as_str().into(), vis.as_str().into()])?
            .all()
            .await?
            .results()?;
        tables.insert((*table).into(), Value::Array(rows));
    }
    let mut objects = Vec::new();
    for v in &s.visitors {
        objects.push(json!({"visitor": v, "state": visitor::export(env, &s.site.id, v).await?}));
    }
    s.audit(env, "subject.exported", json!({"visitors": s.visitors.len()})).await?;
    let body = json!({"site": s.site.id, "subject": id, "ids": s.ids, "visitors": s.visitors, "tables": tables, "visitor_objects": objects});
    Ok(Response::from_json(&body)?)
}

/// `GET /v1/subjects/{id}/score?site=`: the score with its explanation.
pub async fn score(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = id_param(&ctx);
    reply(score_inner(&req, &ctx.env, &id).await)
}

async fn score_inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    let s = resolve(req, env, id).await?;
    let mut scores = Vec::new();
    for v in &s.visitors {
        scores.push(json!({"visitor": v, "score": visitor::score(env, &s.site, v).await?}));
    }
    s.audit(env, "subject.explained", json!({"visitors": s.visitors.len()})).await?;
    Ok(Response::from_json(&json!({"site": s.site.id, "subject": id, "scores": scores}))?)
}

/// `DELETE /v1/subjects/{id}?site=`.
pub async fn erase(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = id_param(&ctx);
    reply(erase_inner(&req, &ctx.env, &id).await)
}

async fn erase_inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    erase_subject(env, resolve(req, env, id).await?, id).await
}

/// `POST /v1/subjects/erase {site, id}`.
pub async fn erase_post(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(
        async {
            let (s, id) = resolve_body(req, &ctx.env).await?;
            erase_subject(&ctx.env, s, &id).await
        }
        .await,
    )
}

async fn erase_subject(env: &Env, s: Subject, id: &str) -> ApiResult<Response> {
    let site = s.site.id.as_str();
    let record = Erasure {
        id: format!("er_{}", crate::auth::random_hex(1)?),
        site: site.to_owned(),
        visitors: s.visitors.clone(),
        ids: s.ids.clone(),
    };
    env.d1("DB")?
        .prepare("INSERT INTO erasures (id, site_id, visitors, ids, requested_at) VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(&[
            record.id.as_str().into(),
            site.into(),
            serde_json::to_string(&record.visitors)?.into(),
            serde_json::to_string(&record.ids)?.into(),
            js_num(now_ms()),
        ])?
        .run()
        .await?;
    let (deleted, objects) = match run(env, &record).await {
        Ok(done) => done,
        Err(e) => {
            failed(env, &record.id, &e).await;
            return Err(e);
        }
    };
    // Counts only: the log must not keep the id the erasure removed.
    s.audit(env, "subject.erased", json!({"visitors": s.visitors.len(), "deleted": deleted})).await?;
    Ok(Response::from_json(&json!({
        "site": site, "subject": id, "deleted": deleted, "visitor_objects": objects, "erasure": record.id,
    }))?)
}

/// An erasure as recorded: what it must reach.
struct Erasure {
    id: String,
    site: String,
    visitors: Vec<String>,
    ids: Vec<String>,
}

/// Notes a failed attempt on the record, for the cron to try again.
async fn failed(env: &Env, id: &str, e: &ApiError) {
    worker::console_error!("erasure {id} failed: {}", e.message);
    let note = async {
        env.d1("DB")?
            .prepare("UPDATE erasures SET last_error = ?2 WHERE id = ?1")
            .bind(&[id.into(), e.message.as_str().into()])?
            .run()
            .await?;
        ApiResult::Ok(())
    };
    if let Err(n) = note.await {
        worker::console_error!("erasure {id}: the failure could not be noted: {}", n.message);
    }
}

/// Erases what the record names, objects first, then every D1 row and the
/// record's own ids in one batch. Answers the rows deleted per table and the
/// objects erased.
async fn run(env: &Env, e: &Erasure) -> ApiResult<(serde_json::Map<String, Value>, usize)> {
    let db = env.d1("DB")?;
    let site = e.site.as_str();
    let ids = serde_json::to_string(&e.ids)?;
    let vis = serde_json::to_string(&e.visitors)?;
    let mut statements = vec![
        db.prepare(
            "DELETE FROM events WHERE site_id = ?1 AND (visitor_id IN (SELECT value FROM json_each(?2)) \
             OR anonymous_id IN (SELECT value FROM json_each(?3)) OR user_id IN (SELECT value FROM json_each(?3)))",
        )
        .bind(&[site.into(), vis.as_str().into(), ids.as_str().into()])?,
    ];
    for table in VISITOR_TABLES {
        statements.push(
            db.prepare(format!(
                "DELETE FROM {table} WHERE site_id = ?1 AND visitor_id IN (SELECT value FROM json_each(?2))"
            ))
            .bind(&[site.into(), vis.as_str().into()])?,
        );
    }
    statements.push(
        db.prepare(
            "UPDATE erasures SET completed_at = ?2, visitors = '[]', ids = '[]', last_error = NULL WHERE id = ?1",
        )
        .bind(&[e.id.as_str().into(), js_num(now_ms())])?,
    );
    // Objects first (see the module's header), then every D1 row at once.
    let mut objects = 0;
    for v in &e.visitors {
        objects += visitor::erase(env, site, v).await?;
    }
    let results = db.batch(statements).await?;
    let mut deleted = serde_json::Map::new();
    for (table, r) in std::iter::once(&"events").chain(VISITOR_TABLES).zip(&results) {
        deleted.insert((*table).into(), json!(r.meta()?.and_then(|m| m.changes).unwrap_or(0)));
    }
    Ok((deleted, objects))
}

/// Erasures left pending by a failed request (older than a minute, so none
/// still under way), completed now: `(completed, still failing)`.
pub(crate) async fn complete_pending(env: &Env, limit: i64) -> ApiResult<(u64, u64)> {
    #[derive(Deserialize)]
    struct Row {
        id: String,
        site_id: String,
        visitors: String,
        ids: String,
    }
    let rows: Vec<Row> = env
        .d1("DB")?
        .prepare(
            "SELECT id, site_id, visitors, ids FROM erasures WHERE completed_at IS NULL AND requested_at < ?1              ORDER BY requested_at LIMIT ?2",
        )
        .bind(&[js_num(now_ms() - 60_000), js_num(limit)])?
        .all()
        .await?
        .results()?;
    let (mut done, mut failing) = (0, 0);
    for r in rows {
        let (Ok(visitors), Ok(ids)) = (serde_json::from_str(&r.visitors), serde_json::from_str(&r.ids)) else {
            worker::console_error!("erasure {}: its record is unreadable", r.id);
            failing += 1;
            continue;
        };
        let e = Erasure { id: r.id, site: r.site_id, visitors, ids };
        env.d1("DB")?
            .prepare("UPDATE erasures SET attempts = attempts + 1 WHERE id = ?1")
            .bind(&[e.id.as_str().into()])?
            .run()
            .await?;
        match run(env, &e).await {
            Ok(_) => done += 1,
            Err(err) => {
                failed(env, &e.id, &err).await;
                failing += 1;
            }
        }
    }
    Ok((done, failing))
}
