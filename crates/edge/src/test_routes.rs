//! Test-only routes, compiled in by the `test-routes` feature for the
//! `wrangler dev --env test` build and never by `wrangler deploy`.
//!
//! `POST /__test/vectors` runs one golden-vector file through the core inside
//! workerd and returns the report, so the same files are proven natively, in
//! Chromium and here. `POST /__test/cron?site=` runs the daily purge and
//! customer refit (`site`: that site's refit, however fresh its book).
//! `POST /__test/stale-batch` stores a browser batch as one that resolved its
//! ids just before a merge would.

use crate::errors::error;
use worker::{Request, Response, Result, RouteContext};

/// Even in the test build these routes answer only on a loopback host, so a
/// test build deployed by mistake does not expose them.
fn off_loopback(req: &Request) -> bool {
    !req.url().is_ok_and(|u| crate::access::is_loopback_host(u.host_str().unwrap_or("")))
}

pub async fn vectors(mut req: Request, _ctx: RouteContext<()>) -> Result<Response> {
    if off_loopback(&req) {
        return crate::errors::not_found();
    }
    let text = req.text().await?;
    match microfunnel_core::vectors::run_file(&text) {
        Ok(report) => Response::from_json(&report),
        Err(e) => error(400, "bad_vector_file", &e),
    }
}

/// `POST /__test/cron`: runs the daily purge now (wrangler dev has no clock
/// to fast-forward).
pub async fn cron(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    if off_loopback(&req) {
        return crate::errors::not_found();
    }
    // `?site=`: refit that site's customers whatever the age of its book.
    let site = req.url()?.query_pairs().find(|(k, _)| k == "site").map(|(_, v)| v.into_owned());
    let result = async {
        let mut report = crate::cron::purge(&ctx.env).await?;
        if let serde_json::Value::Object(m) = &mut report {
            m.insert("customers".into(), crate::customers::refit_due(&ctx.env, site.as_deref()).await?);
        }
        Ok(Response::from_json(&report)?)
    }
    .await;
    crate::errors::reply(result)
}

/// `POST /__test/stale-batch` `{site, batch, resolved: {id: visitor}}`: the
/// real ingest path, with `resolved` standing in for what D1 said when the
/// batch began (a merge has since moved those ids on).
pub async fn stale_batch(mut req: Request, ctx: RouteContext<()>) -> Result<Response> {
    if off_loopback(&req) {
        return crate::errors::not_found();
    }
    let body: serde_json::Value = match req.json().await {
        Ok(v) => v,
        Err(e) => return error(400, "invalid_json", &e.to_string()),
    };
    let (Some(site), Some(resolved)) =
        (body.get("site").and_then(|s| s.as_str()), body.get("resolved").and_then(|r| r.as_object()))
    else {
        return error(400, "invalid_body", "site and resolved are required");
    };
    let result = async {
        let site = crate::sites::Site::load(&ctx.env, site).await?;
        let events = crate::ingest::take_events(body.get("batch").cloned())?;
        crate::ingest::ingest_stale(&ctx.env, &site, events, resolved).await?.into_response(true)
    }
    .await;
    crate::errors::reply(result)
}
