//! `microfunnel-edge`: the collector Worker — ingest, storage, attribution,
//! reports and privacy endpoints on Cloudflare Workers.
//!
//! What it must never do: decide a score, a credit, a channel or what consent
//! allows by itself (it calls `microfunnel-core`); store a raw IP; panic (no
//! `unwrap`/`expect`/fallible indexing — a panic poisons the instance).
//! This file is the routing table; handlers live in modules named for the
//! resource they serve.

mod access;
mod audit;
mod auth;
mod body;
mod bots;
mod config;
mod conversions;
mod cors;
mod cron;
mod customers;
mod errors;
mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod health;
mod ingest;
mod install;
mod lift;
mod ratelimit;
mod reports;
mod rule_check;
mod schema;
mod secrets;
mod segment;
mod series;
mod site;
mod sites;
mod spend;
mod subjects;
#[cfg(feature = "test-routes")]
mod test_routes;
mod tokens;
mod visitor;
mod webhooks;
mod withdrawals;
mod zone;

pub use ratelimit::Limiter;
pub use visitor::Visitor;

use worker::{Context, Env, Request, Response, Result, Router, ScheduleContext, ScheduledEvent, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let router = Router::new()
        .get_async("/", site::demo_home)
        .get_async("/health", health::get)
        .get("/v1/openapi.json", |_, _| openapi())
        .post_async("/v1/batch", ingest::batch)
        .options_async("/v1/batch", cors::preflight)
        .post_async("/v1/consent", withdrawals::post)
        .options_async("/v1/consent", cors::preflight)
        .post_async("/v1/events", events::post)
        .post_async("/v1/track", segment::track)
        .post_async("/v1/identify", segment::identify)
        .post_async("/v1/page", segment::page)
        .post_async("/v1/screen", segment::screen)
        .post_async("/v1/group", segment::group)
        .post_async("/v1/alias", segment::alias)
        .post_async("/v1/sites", sites::create)
        .post_async("/v1/spend", spend::post)
        .get_async("/v1/sites/:site", sites::get)
        .patch_async("/v1/sites/:site", sites::update)
        .post_async("/v1/sites/:site/secrets/rotate", sites::rotate_secret)
        .post_async("/v1/sites/:site/tokens", tokens::create_token)
        .get_async("/v1/sites/:site/tokens", tokens::list_tokens)
        .delete_async("/v1/sites/:site/tokens/:id", tokens::revoke_token)
        .post_async("/v1/sites/:site/shares", tokens::create_share)
        .get_async("/v1/sites/:site/shares", tokens::list_shares)
        .delete_async("/v1/sites/:site/shares/:id", tokens::revoke_share)
        .get_async("/v1/sites/:site/audit", audit::get)
        .get_async("/v1/sites/:site/install", install::get)
        .post_async("/v1/sites/:site/rules/check", rule_check::post)
        .post_async("/v1/sites/:site/webhooks/test", webhooks::test)
        .get_async("/v1/sites/:site/webhooks/deliveries", webhooks::deliveries)
        .get_async("/v1/sites/:site/config", config::get)
        .options_async("/v1/sites/:site/config", cors::preflight)
        .post_async("/v1/subjects/export", subjects::export_post)
        .post_async("/v1/subjects/erase", subjects::erase_post)
        .get_async("/v1/subjects/:id", subjects::export)
        .delete_async("/v1/subjects/:id", subjects::erase)
        .get_async("/v1/subjects/:id/score", subjects::score)
        .get_async("/v1/reports/attribution", reports::attribution)
        .get_async("/v1/reports/kpis", reports::kpis)
        .get_async("/v1/reports/paths", reports::paths)
        .get_async("/v1/reports/stages", reports::stages)
        .get_async("/v1/reports/lift", lift::get)
        .get_async("/v1/reports/customers", customers::report)
        .post_async("/v1/reports/customers/refit", customers::refit_now)
        .get_async("/v1/reports/cohorts", customers::cohorts)
        .get_async("/v1/reports/series", series::get)
        .get_async("/v1/leads", reports::leads);
    #[cfg(feature = "test-routes")]
    let router = router
        .post_async("/__test/vectors", test_routes::vectors)
        .post_async("/__test/cron", test_routes::cron)
        .post_async("/__test/stale-batch", test_routes::stale_batch);
    let result = router.or_else_any_method("/*rest", |_, _| errors::not_found()).run(req, env).await;
    match result {
        // The router's own 405 is plain text: give it the error shape.
        Ok(resp) if resp.status_code() == 405 => {
            errors::error(405, "method_not_allowed", "this route does not accept that method")
        }
        Ok(resp) => Ok(resp),
        Err(e) => {
            worker::console_error!("unhandled: {e}");
            errors::error(500, "internal", "internal error")
        }
    }
}

/// `GET /v1/openapi.json`: the API as OpenAPI 3.1 (`crates/edge/openapi.json`,
/// written by `tools/openapi.py`; `tests/openapi.rs` holds it to the routes above).
fn openapi() -> Result<Response> {
    let resp = Response::ok(include_str!("../openapi.json"))?;
    resp.headers().set("Content-Type", "application/json")?;
    Ok(resp)
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    match cron::purge(&env).await {
        Ok(report) => worker::console_log!("cron purge: {report}"),
        Err(e) => worker::console_error!("cron purge failed: {}", e.message),
    }
    // After the purge, so a book never holds what retention just removed.
    match customers::refit_due(&env, None).await {
        Ok(report) => worker::console_log!("cron customers refit: {report}"),
        Err(e) => worker::console_error!("cron customers refit failed: {}", e.message),
    }
}
