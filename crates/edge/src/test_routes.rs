//! Test-only routes, compiled in by the `test-routes` feature for the
//! `wrangler dev --env test` build and never by `wrangler deploy`.
//!
//! `POST /__test/vectors` runs one golden-vector file through the core inside
//! workerd and returns the report, so the same files are proven natively, in
//! Chromium and here.

use crate::errors::error;
use worker::{Request, Response, Result, RouteContext};

pub async fn vectors(mut req: Request, _ctx: RouteContext<()>) -> Result<Response> {
    let text = req.text().await?;
    match microfunnel_core::vectors::run_file(&text) {
        Ok(report) => Response::from_json(&report),
        Err(e) => error(400, "bad_vector_file", &e),
    }
}

/// `POST /__test/cron`: runs the daily purge now (wrangler dev has no clock
/// to fast-forward).
pub async fn cron(_req: Request, ctx: RouteContext<()>) -> Result<Response> {
    crate::errors::reply(crate::cron::purge(&ctx.env).await.and_then(|v| Ok(Response::from_json(&v)?)))
}
