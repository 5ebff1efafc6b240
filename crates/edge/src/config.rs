//! `GET /v1/sites/{site}/config`: what the browser module runs on and
//! nothing more — the scoring rules in the core's compact form, the CTA
//! variants and the consent policy — with an `ETag` (a hash of the body;
//! `If-None-Match` → 304) and short shared caching. It is public: the rule
//! document's labels, the channel overrides (internal host names) and the
//! conversion definitions stay with the owner (`GET /v1/sites/{site}`).

use crate::auth::sha256_hex;
use crate::cors;
use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::Site;
use worker::{Env, Request, Response, Result, RouteContext};

const CACHE_CONTROL: &str = "public, max-age=60, stale-while-revalidate=600";

pub async fn get(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    let origin = cors::origin(&req);
    let (result, site) = inner(&req, &ctx.env, &id).await;
    cors::apply(reply(result)?, origin.as_deref(), site.as_ref())
}

async fn inner(req: &Request, env: &Env, id: &str) -> (ApiResult<Response>, Option<Site>) {
    let site = match Site::load(env, id).await {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    (respond(req, &site), Some(site))
}

fn respond(req: &Request, site: &Site) -> ApiResult<Response> {
    // Derived by the core, in one place (`SiteConfig::browser_config`).
    let body = site.config.site.browser_config(&site.id);
    let text = serde_json::to_string(&body)?;
    let etag = format!("\"{}\"", sha256_hex(text.as_bytes()).get(..32).unwrap_or_default());
    let matches = req
        .headers()
        .get("If-None-Match")
        .ok()
        .flatten()
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"));
    let resp = if matches {
        Response::empty()?.with_status(304)
    } else {
        let r = Response::ok(text)?;
        r.headers().set("Content-Type", "application/json")?;
        r
    };
    let h = resp.headers();
    h.set("ETag", &etag).map_err(ApiError::from)?;
    h.set("Cache-Control", CACHE_CONTROL)?;
    Ok(resp)
}
