//! A site's credentials, managed by its owner (or the super-admin):
//! `/v1/sites/{site}/tokens` (a role each) and `/v1/sites/{site}/shares`
//! (read-only links to the aggregates). Create answers the secret once;
//! only its SHA-256 is stored. List answers no secret. Delete revokes at
//! once: the next request with it is a 401. Every act goes to the audit log.

use crate::access::{self, Actor, Permission, Role, SHARE_PREFIX, TOKEN_PREFIX};
use crate::audit;
use crate::auth::{random_hex, sha256_hex};
use crate::body;
use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::{Site, js_num, now_ms};
use microfunnel_core::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Request, Response, Result, RouteContext};

/// Live credentials of one kind a site may hold: a bound on what one owner
/// token can make.
const MAX_LIVE: i64 = 100;

/// The two kinds, and what differs between them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    Share,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Token => "site_tokens",
            Kind::Share => "shares",
        }
    }
    fn permission(self) -> Permission {
        match self {
            Kind::Token => Permission::Tokens,
            Kind::Share => Permission::Shares,
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Kind::Token => "token",
            Kind::Share => "share",
        }
    }
    fn id_prefix(self) -> &'static str {
        match self {
            Kind::Token => "mftk_",
            Kind::Share => "mfsh_",
        }
    }
    fn secret_prefix(self) -> &'static str {
        match self {
            Kind::Token => TOKEN_PREFIX,
            Kind::Share => SHARE_PREFIX,
        }
    }
}

/// A create request, validated.
struct New {
    name: String,
    role: Option<Role>,
    expires_at: Option<i64>,
}

fn parse_new(kind: Kind, value: Value, now: i64) -> ApiResult<New> {
    let code = match kind {
        Kind::Token => "invalid_token_request",
        Kind::Share => "invalid_share_request",
    };
    let bad = |m: String| ApiError::bad_request(code, m);
    let Value::Object(o) = value else {
        return Err(bad("the body must be a JSON object".into()));
    };
    let allowed: &[&str] = match kind {
        Kind::Token => &["role", "name", "expires_at"],
        Kind::Share => &["name", "expires_at"],
    };
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("{k}: unknown field")));
    }
    let role = match (kind, o.get("role")) {
        (Kind::Share, _) => None,
        (Kind::Token, Some(Value::String(r))) => {
            Some(Role::parse(r).ok_or_else(|| bad("role: one of owner, analyst, privacy, ingest".into()))?)
        }
        (Kind::Token, _) => return Err(bad("role: is required (owner, analyst, privacy or ingest)".into())),
    };
    let name = match (kind, o.get("name")) {
        (_, Some(Value::String(n))) => n.trim().to_owned(),
        (Kind::Share, None) => "share link".to_owned(),
        (Kind::Token, None) => return Err(bad("name: is required".into())),
        (_, Some(_)) => return Err(bad("name: must be a string".into())),
    };
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(bad("name: 1 to 100 characters, no control characters".into()));
    }
    let expires_at = match o.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => {
            let at = Timestamp::parse(t).map_err(|rule| bad(format!("expires_at: {rule}")))?.millis();
            if at <= now {
                return Err(bad("expires_at: must be in the future".into()));
            }
            Some(at)
        }
        Some(_) => return Err(bad("expires_at: an RFC 3339 time".into())),
    };
    Ok(New { name, role, expires_at })
}

fn rfc3339(ms: Option<f64>) -> Value {
    ms.and_then(|m| Timestamp::from_millis(m as i64)).map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

async fn create(mut req: Request, env: &Env, site_id: &str, kind: Kind) -> ApiResult<Response> {
    let actor = access::authorize(&req, env, site_id, kind.permission()).await?;
    body::check_json_media_type(&req)?;
    let text = body::read_limited(&mut req, 2048).await?;
    let now = now_ms();
    let mut new = parse_new(kind, body::parse_json(&text)?, now)?;
    // What a token makes lives no longer than the token itself: a
    // contractor's 7-day owner token cannot mint a permanent one.
    if let Actor::Token { expires_at: Some(limit), .. } = actor {
        if new.expires_at.is_some_and(|t| t > limit) {
            return Err(ApiError::bad_request(
                if kind == Kind::Token { "invalid_token_request" } else { "invalid_share_request" },
                "expires_at: not after the expiry of the token making it",
            ));
        }
        new.expires_at = Some(new.expires_at.unwrap_or(limit));
    }
    let site = Site::load(env, site_id).await?;
    let db = env.d1("DB")?;
    let id = format!("{}{}", kind.id_prefix(), random_hex(1)?);
    let secret = format!("{}{}", kind.secret_prefix(), random_hex(2)?);
    let expires = new.expires_at.map_or(worker::wasm_bindgen::JsValue::NULL, js_num);
    // The bound is checked in the insert itself, so two racing creates
    // cannot pass it together.
    let (columns, role) = match new.role {
        Some(r) => (", role", format!(", '{}'", r.as_str())),
        None => ("", String::new()),
    };
    let table = kind.table();
    let result = db
        .prepare(format!(
            "INSERT INTO {table} (id, site_id, name, digest, created_at, created_by, expires_at{columns}) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7{role} WHERE (SELECT COUNT(*) FROM {table} WHERE site_id = ?2 \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?5)) < ?8"
        ))
        .bind(&[
            id.as_str().into(),
            site.id.as_str().into(),
            new.name.as_str().into(),
            sha256_hex(secret.as_bytes()).into(),
            js_num(now),
            actor.id().into(),
            expires,
            js_num(MAX_LIVE),
        ])?
        .run()
        .await?;
    if result.meta()?.and_then(|m| m.changes).unwrap_or(0) == 0 {
        return Err(ApiError::new(
            409,
            "too_many_credentials",
            format!("this site already has {MAX_LIVE} live {}s: revoke some first", kind.noun()),
        ));
    }
    let created_at = rfc3339(Some(now as f64));
    let expires_at = rfc3339(new.expires_at.map(|t| t as f64));
    let mut answer = serde_json::Map::new();
    answer.insert("id".into(), json!(id));
    answer.insert("name".into(), json!(new.name));
    answer.insert("created_at".into(), created_at);
    answer.insert("expires_at".into(), expires_at.clone());
    let mut detail = json!({"id": id, "name": new.name, "expires_at": expires_at});
    match new.role {
        Some(role) => {
            answer.insert("token".into(), json!(secret));
            answer.insert("role".into(), json!(role.as_str()));
            detail = json!({"id": id, "name": new.name, "expires_at": expires_at, "role": role.as_str()});
        }
        None => {
            // In the fragment: a browser never sends it to any server, so
            // the secret stays out of access logs and Referer headers.
            let url = req.url()?;
            let link = format!("{}/dashboard/?site={}#share={secret}", url.origin().ascii_serialization(), site.id);
            answer.insert("url".into(), json!(link));
        }
    }
    audit::record(env, &access::request_id(&req), &site.id, &actor, &format!("{}.created", kind.noun()), detail)
        .await?;
    Ok(Response::from_json(&answer)?.with_status(201))
}

#[derive(Deserialize)]
struct ListRow {
    id: String,
    name: String,
    #[serde(default)]
    role: Option<String>,
    created_at: f64,
    created_by: String,
    #[serde(default)]
    expires_at: Option<f64>,
    #[serde(default)]
    revoked_at: Option<f64>,
    #[serde(default)]
    last_used_at: Option<f64>,
}

async fn list(req: &Request, env: &Env, site_id: &str, kind: Kind) -> ApiResult<Response> {
    access::authorize(req, env, site_id, kind.permission()).await?;
    let site = Site::load(env, site_id).await?;
    let extra = match kind {
        Kind::Token => "role, last_used_at",
        Kind::Share => "NULL AS role, NULL AS last_used_at",
    };
    let rows: Vec<ListRow> = env
        .d1("DB")?
        .prepare(format!(
            "SELECT id, name, {extra}, created_at, created_by, expires_at, revoked_at FROM {} \
             WHERE site_id = ?1 ORDER BY created_at DESC, id LIMIT 1000",
            kind.table()
        ))
        .bind(&[site.id.as_str().into()])?
        .all()
        .await?
        .results()?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let common = json!({
                "id": r.id, "name": r.name, "created_at": rfc3339(Some(r.created_at)), "created_by": r.created_by,
                "expires_at": rfc3339(r.expires_at), "revoked_at": rfc3339(r.revoked_at),
            });
            match (kind, common) {
                (Kind::Token, Value::Object(mut v)) => {
                    v.insert("role".into(), json!(r.role));
                    v.insert("last_used_at".into(), rfc3339(r.last_used_at));
                    Value::Object(v)
                }
                (_, v) => v,
            }
        })
        .collect();
    let key = format!("{}s", kind.noun());
    Ok(Response::from_json(&json!({"site": site.id, key: items}))?)
}

async fn revoke(req: &Request, env: &Env, site_id: &str, id: &str, kind: Kind) -> ApiResult<Response> {
    let actor = access::authorize(req, env, site_id, kind.permission()).await?;
    let now = now_ms();
    let db = env.d1("DB")?;
    let revoke = |table: &str, column: &str| {
        db.prepare(format!(
            "UPDATE {table} SET revoked_at = ?3 WHERE {column} = ?1 AND site_id = ?2 AND revoked_at IS NULL"
        ))
        .bind(&[id.into(), site_id.into(), js_num(now)])
    };
    // A revoked token takes what it made with it (tokens and share links it
    // created), in the same batch.
    let mut statements = vec![revoke(kind.table(), "id")?];
    if kind == Kind::Token {
        statements.push(revoke("site_tokens", "created_by")?);
        statements.push(revoke("shares", "created_by")?);
    }
    let results = db.batch(statements).await?;
    let changed = |i: usize| results.get(i).and_then(|r| r.meta().ok().flatten()).and_then(|m| m.changes).unwrap_or(0);
    if changed(0) == 0 {
        let code = match kind {
            Kind::Token => "token_not_found",
            Kind::Share => "share_not_found",
        };
        return Err(ApiError::new(404, code, format!("no live {} `{id}` on this site", kind.noun())));
    }
    let detail = json!({"id": id, "tokens_made_by_it": changed(1), "shares_made_by_it": changed(2)});
    audit::record(env, &access::request_id(req), site_id, &actor, &format!("{}.revoked", kind.noun()), detail).await?;
    Ok(Response::from_json(&json!({"id": id, "revoked_at": rfc3339(Some(now as f64))}))?)
}

fn site_param(ctx: &RouteContext<()>) -> String {
    ctx.param("site").cloned().unwrap_or_default()
}

fn id_param(ctx: &RouteContext<()>) -> String {
    ctx.param("id").cloned().unwrap_or_default()
}

/// `POST /v1/sites/{site}/tokens` `{role, name, expires_at?}` → 201 with the token, once.
pub async fn create_token(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(create(req, &ctx.env, &site_param(&ctx), Kind::Token).await)
}

/// `GET /v1/sites/{site}/tokens`: no secrets; `last_used_at` to the minute.
pub async fn list_tokens(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(list(&req, &ctx.env, &site_param(&ctx), Kind::Token).await)
}

/// `DELETE /v1/sites/{site}/tokens/{id}`.
pub async fn revoke_token(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(revoke(&req, &ctx.env, &site_param(&ctx), &id_param(&ctx), Kind::Token).await)
}

/// `POST /v1/sites/{site}/shares` `{name?, expires_at?}` → 201 `{id, url}`.
pub async fn create_share(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(create(req, &ctx.env, &site_param(&ctx), Kind::Share).await)
}

/// `GET /v1/sites/{site}/shares`.
pub async fn list_shares(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(list(&req, &ctx.env, &site_param(&ctx), Kind::Share).await)
}

/// `DELETE /v1/sites/{site}/shares/{id}`.
pub async fn revoke_share(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(revoke(&req, &ctx.env, &site_param(&ctx), &id_param(&ctx), Kind::Share).await)
}
