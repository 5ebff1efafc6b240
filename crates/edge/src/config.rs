//! `GET /v1/sites/{site}/config`: what the browser module runs on and
//! nothing more (`SiteConfig::browser_config`: the scoring rules in the
//! core's compact form, the CTA variants, the URL parameters to remove),
//! with an `ETag` (a hash of the body; `If-None-Match` → 304) and short
//! shared caching. It is public: the rule document's labels, the channel
//! overrides (internal host names) and the conversion definitions stay with
//! the owner (`GET /v1/sites/{site}`).
//!
//! Every page view of a consenting visitor asks for it, unauthenticated, so
//! it is answered from the Worker's cache (the Cache API, one minute, by
//! site) without reading D1; a change of the site's settings deletes the
//! cached copy ([`forget`]). The cached copy carries the site's origins, so
//! the CORS answer and a preflight need no D1 read either.

use crate::auth::sha256_hex;
use crate::cors;
use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::{Site, is_loopback, loopback_allowed};
use worker::{Cache, Env, Request, Response, Result, RouteContext};

const CACHE_CONTROL: &str = "public, max-age=60, stale-while-revalidate=600";
/// How long the Worker keeps its copy (a settings change deletes it sooner).
const EDGE_CACHE_CONTROL: &str = "public, max-age=60";
const ORIGINS_HEADER: &str = "X-MF-Origins";

/// The site's browser config as the Worker keeps it.
struct Cached {
    text: String,
    etag: String,
    origins: Vec<String>,
}

/// The Cache API key of a site's config (a URL of our own, never fetched).
fn key(site: &str) -> String {
    format!("https://config.microfunnel.internal/v1/sites/{site}")
}

pub async fn get(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    let origin = cors::origin(&req);
    let resp = match cached(&ctx.env, &id).await {
        Ok((c, hit)) => {
            let r = respond(&req, &c).and_then(|r| {
                r.headers().set("X-MF-Cache", if hit { "hit" } else { "miss" })?;
                Ok(r)
            });
            let allowed = origin.as_deref().filter(|o| allows(&ctx.env, &c.origins, o));
            return cors::allow(reply(r)?, allowed);
        }
        Err(e) => reply(Err(e))?,
    };
    cors::apply(resp, origin.as_deref(), None)
}

fn allows(env: &Env, origins: &[String], origin: &str) -> bool {
    origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) || (loopback_allowed(env) && is_loopback(origin))
}

/// Whether `origin` may call the site's config (for its preflight).
pub async fn allows_origin(env: &Env, site: &str, origin: &str) -> ApiResult<bool> {
    Ok(allows(env, &cached(env, site).await?.0.origins, origin))
}

/// The config from the Worker's cache, else built from the site and kept;
/// `true` for a cache hit.
async fn cached(env: &Env, id: &str) -> ApiResult<(Cached, bool)> {
    let cache = Cache::default();
    if let Some(mut hit) = cache.get(key(id), true).await? {
        let h = hit.headers();
        let etag = h.get("ETag")?.unwrap_or_default();
        let origins = h.get(ORIGINS_HEADER)?.and_then(|o| serde_json::from_str(&o).ok());
        if let (false, Some(origins)) = (etag.is_empty(), origins) {
            return Ok((Cached { text: hit.text().await?, etag, origins }, true));
        }
    }
    let site = Site::load(env, id).await?;
    let text = serde_json::to_string(&site.config.site.browser_config(&site.id))?;
    let etag = format!("\"{}\"", sha256_hex(text.as_bytes()).get(..32).unwrap_or_default());
    let copy = Response::ok(text.clone())?;
    let h = copy.headers();
    h.set("ETag", &etag)?;
    h.set("Cache-Control", EDGE_CACHE_CONTROL)?;
    h.set(ORIGINS_HEADER, &serde_json::to_string(&site.origins)?)?;
    // A failure to keep a copy costs the next request a D1 read, nothing more.
    if let Err(e) = cache.put(key(id), copy).await {
        worker::console_error!("site {id}: the config could not be cached: {e}");
    }
    Ok((Cached { text, etag, origins: site.origins }, false))
}

/// Drops the cached config after a change of the site's settings.
pub async fn forget(site: &str) {
    if let Err(e) = Cache::default().delete(key(site), true).await {
        worker::console_error!("site {site}: the cached config could not be deleted: {e}");
    }
}

fn respond(req: &Request, c: &Cached) -> ApiResult<Response> {
    let matches = req
        .headers()
        .get("If-None-Match")
        .ok()
        .flatten()
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == c.etag || t.trim() == "*"));
    let resp = if matches {
        Response::empty()?.with_status(304)
    } else {
        let r = Response::ok(c.text.clone())?;
        r.headers().set("Content-Type", "application/json")?;
        r
    };
    let h = resp.headers();
    h.set("ETag", &c.etag).map_err(ApiError::from)?;
    h.set("Cache-Control", CACHE_CONTROL)?;
    Ok(resp)
}
