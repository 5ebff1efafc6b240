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
