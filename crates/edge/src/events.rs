//! `POST /v1/events`: server and offline events (a CRM, a phone system, a
//! trade-show scanner). Authenticated per site by a site token whose role
//! allows ingest (`mft_…`, see `access`), by its server key
//! (`Authorization: Bearer`, compared as SHA-256 digests in constant time) or
//! by a signature, `X-MF-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" under the site's signing secret>` within five minutes (the
//! previous secret too during a rotation's grace period). These
//! events may declare their channel; `identify`/`alias` stitch identities.

use crate::access::{self, Permission, TOKEN_PREFIX};
use crate::auth::{bearer, constant_time_eq, hex, hmac_sha256, sha256_hex};
use crate::body;
use crate::errors::{ApiError, ApiResult, reply};
use crate::ingest::{Source, check, store, take_events};
use crate::ratelimit;
use crate::secrets::{self, Purpose};
use crate::sites::{Site, now_ms};
use serde_json::Value;
use worker::{Env, Request, Response, Result, RouteContext};

const SIGNATURE_TOLERANCE_S: i64 = 300;

pub async fn post(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(inner(req, &ctx.env).await)
}

async fn inner(mut req: Request, env: &Env) -> ApiResult<Response> {
    body::check_json_media_type(&req)?;
    let text = body::read_limited(&mut req, body::MAX_BODY).await?;
    let value = body::parse_json(&text)?;
    let Value::Object(mut envelope) = value else {
        return Err(ApiError::bad_request("invalid_batch", "the body must be a JSON object {site, batch}"));
    };
    let site_id = match envelope.remove("site") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(ApiError::bad_request("invalid_batch", "site: must be a string")),
        None => return Err(ApiError::bad_request("invalid_batch", "site: is required")),
    };
    let site = Site::load(env, &site_id).await?;
    authenticate(&req, env, &site, &text).await?;
    if let Some(k) = envelope.keys().find(|k| !matches!(k.as_str(), "batch" | "sentAt")) {
        return Err(ApiError::bad_request("invalid_batch", format!("{k}: unknown field")));
    }
    let events = take_events(envelope.remove("batch"))?;
    let key = crate::secrets::user_id_key(env, &site)?;
    let checked = check(&site, events, Source::Server, "", key.as_deref())?;
    // Authenticated server events have a budget of their own: no browser
    // flood holds back a CRM's conversions.
    ratelimit::server(env, &site, checked.passed()).await?;
    store(env, &site, checked, Source::Server, None).await?.into_response(true)
}

async fn authenticate(req: &Request, env: &Env, site: &Site, body: &str) -> ApiResult<()> {
    if bearer(req).is_some_and(|t| t.starts_with(TOKEN_PREFIX)) {
        let actor = access::authenticate(req, env).await?;
        return access::permit(&actor, &site.id, Permission::Ingest);
    }
    if site.secret_hash.is_empty() {
        return Err(ApiError::new(403, "forbidden", "this site has no server key"));
    }
    if let Some(token) = bearer(req) {
        if constant_time_eq(sha256_hex(token.as_bytes()).as_bytes(), site.secret_hash.as_bytes()) {
            return Ok(());
        }
        // The super-admin keeps every right on every site.
        return match access::authenticate(req, env).await {
            Ok(access::Actor::SuperAdmin) => Ok(()),
            _ => Err(ApiError::new(403, "forbidden", "the server key is not valid for this site")),
        };
    }
    if let Some(sig) = req.headers().get("X-MF-Signature").ok().flatten() {
        let mut t = None;
        let mut v1 = None;
        for part in sig.split(',') {
            match part.trim().split_once('=') {
                Some(("t", x)) => t = x.parse::<i64>().ok(),
                Some(("v1", x)) => v1 = Some(x.to_ascii_lowercase()),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return Err(ApiError::new(401, "unauthorized", "X-MF-Signature: expected t=<unix seconds>,v1=<hex>"));
        };
        // `t` is the caller's: no arithmetic on it that could overflow.
        if (now_ms() / 1000).abs_diff(t) > SIGNATURE_TOLERANCE_S.unsigned_abs() {
            return Err(ApiError::new(403, "forbidden", "X-MF-Signature: the timestamp is more than 5 minutes off"));
        }
        // The current secret, and the previous one during a rotation's grace.
        let keys = secrets::valid(env, &site.id, &site.secrets, Purpose::Signing, now_ms())?;
        let signed = format!("{t}.{body}");
        return if keys
            .iter()
            .any(|k| constant_time_eq(hex(&hmac_sha256(k.as_bytes(), signed.as_bytes())).as_bytes(), v1.as_bytes()))
        {
            Ok(())
        } else {
            Err(ApiError::new(403, "forbidden", "X-MF-Signature: the signature does not match"))
        };
    }
    Err(ApiError::new(401, "unauthorized", "send Authorization: Bearer <server key> or X-MF-Signature"))
}
