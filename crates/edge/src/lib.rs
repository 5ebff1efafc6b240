//! `microfunnel-edge`: the collector Worker — ingest, storage, attribution,
//! reports and privacy endpoints on Cloudflare Workers.
//!
//! What it must never do: decide a score, a credit, a channel or what consent
//! allows by itself (it calls `microfunnel-core`); store a raw IP; panic (no
//! `unwrap`/`expect`/fallible indexing — a panic poisons the instance).
//! This file is the routing table; handlers live in modules named for the
//! resource they serve.

mod errors;
mod health;
mod site;
#[cfg(feature = "test-routes")]
mod test_routes;

use worker::{Context, Env, Request, Response, Result, Router, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let router = Router::new().get_async("/", site::demo_home).get_async("/health", health::get);
    #[cfg(feature = "test-routes")]
    let router = router.post_async("/__test/vectors", test_routes::vectors);
    router.or_else_any_method("/*rest", |_, _| errors::not_found()).run(req, env).await
}
