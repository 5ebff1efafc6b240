//! CORS for the browser endpoints: a response carries
//! `Access-Control-Allow-Origin` only for an origin the site lists. The
//! browser sends `text/plain` batches (a simple request, no preflight), but a
//! preflight is answered too — and needed for the config, which the browser
//! module revalidates with `If-None-Match` (not a safelisted header).

use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::Site;
use worker::{Env, Request, Response, Result, RouteContext};

pub fn origin(req: &Request) -> Option<String> {
    req.headers().get("Origin").ok().flatten().filter(|o| !o.is_empty())
}

/// A request from a browser (it carries `Origin`) must come from an origin
/// the site lists; server-to-server calls carry none.
pub fn check_origin(req: &Request, site: &Site) -> ApiResult<()> {
    match origin(req) {
        Some(o) if !site.allows_origin(&o) => {
            Err(ApiError::new(403, "origin_not_allowed", format!("origin {o} is not allowed for this site")))
        }
        _ => Ok(()),
    }
}

pub fn apply(resp: Response, origin: Option<&str>, site: Option<&Site>) -> Result<Response> {
    allow(resp, origin.filter(|o| site.is_some_and(|s| s.allows_origin(o))))
}

/// The CORS headers for an origin already known to be allowed (`None`: none).
pub fn allow(resp: Response, allowed: Option<&str>) -> Result<Response> {
    let h = resp.headers();
    h.set("Vary", "Origin")?;
    if let Some(o) = allowed {
        h.set("Access-Control-Allow-Origin", o)?;
        h.set("Access-Control-Expose-Headers", "Retry-After, ETag")?;
    }
    Ok(resp)
}

/// [`apply`], on every answer — errors included, so the module can read a
/// 4xx and drop what was refused instead of retrying a status 0 forever.
/// An error raised before the site was known (a body too large, malformed
/// JSON, an unknown site id) carries the headers when any site lists the
/// origin.
pub async fn finish(env: &Env, resp: Response, origin: Option<&str>, site: Option<&Site>) -> Result<Response> {
    match (origin, site) {
        (Some(o), None) if resp.status_code() >= 400 && listed_anywhere(env, o).await.unwrap_or(false) => {
            let h = resp.headers();
            h.set("Vary", "Origin")?;
            h.set("Access-Control-Allow-Origin", o)?;
            h.set("Access-Control-Expose-Headers", "Retry-After, ETag")?;
            Ok(resp)
        }
        _ => apply(resp, origin, site),
    }
}

/// Whether some site lists `origin` (or, in the test environment, it is a
/// loopback origin every site allows).
async fn listed_anywhere(env: &Env, origin: &str) -> ApiResult<bool> {
    if crate::sites::loopback_allowed(env) && crate::sites::is_loopback(origin) {
        return Ok(true);
    }
    // `site_origins` is kept with each site's origins: one indexed lookup.
    Ok(env
        .d1("DB")?
        .prepare("SELECT 1 AS ok FROM site_origins WHERE origin = ?1 LIMIT 1")
        .bind(&[origin.into()])?
        .first::<serde_json::Value>(None)
        .await?
        .is_some())
}

/// `OPTIONS /v1/batch?site=…` (or without `site`: any site listing the
/// origin), and `OPTIONS /v1/sites/{site}/config` (from the config's cache).
pub async fn preflight(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let path_site = ctx.param("site").cloned();
    reply(preflight_inner(&req, &ctx.env, path_site).await)
}

async fn preflight_inner(req: &Request, env: &Env, path_site: Option<String>) -> ApiResult<Response> {
    let Some(origin) = origin(req) else {
        return Err(ApiError::bad_request("not_a_preflight", "a preflight carries an Origin header"));
    };
    let query_site = req.url()?.query_pairs().find(|(k, _)| k == "site").map(|(_, v)| v.into_owned());
    let allowed = match (path_site, query_site) {
        (Some(id), _) => crate::config::allows_origin(env, &id, &origin).await?,
        (None, Some(id)) => Site::load(env, &id).await?.allows_origin(&origin),
        (None, None) => listed_anywhere(env, &origin).await?,
    };
    if !allowed {
        return Err(ApiError::new(403, "origin_not_allowed", format!("origin {origin} is not allowed")));
    }
    let resp = Response::empty()?.with_status(204);
    let h = resp.headers();
    h.set("Access-Control-Allow-Origin", &origin)?;
    h.set("Access-Control-Allow-Methods", "POST, OPTIONS")?;
    h.set("Access-Control-Allow-Headers", "Content-Type, If-None-Match")?;
    h.set("Access-Control-Max-Age", "86400")?;
    h.set("Vary", "Origin")?;
    Ok(resp)
}
