//! `GET /health`: liveness, plus whether the D1 schema is in place. Public,
//! so it says whether, never why: the details go to the log.

use serde_json::json;
use worker::{Request, Response, Result, RouteContext};

pub async fn get(_req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let database = match ctx.env.d1("DB") {
        Ok(db) => match db.prepare("SELECT COUNT(*) AS n FROM d1_migrations").first::<serde_json::Value>(None).await {
            Ok(Some(row)) => json!({"ok": true, "migrations": row.get("n")}),
            Ok(None) => json!({"ok": false}),
            Err(e) => {
                worker::console_error!("health: D1: {e}");
                json!({"ok": false})
            }
        },
        Err(e) => {
            worker::console_error!("health: no D1 binding: {e}");
            json!({"ok": false})
        }
    };
    let ok = database.get("ok").and_then(serde_json::Value::as_bool) == Some(true);
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "consent_policy": microfunnel_core::consent::POLICY_VERSION,
        "database": database,
    });
    Ok(Response::from_json(&body)?.with_status(if ok { 200 } else { 503 }))
}
