//! The daily cron: raw events past each site's retention are deleted, and so
//! are expired rate-limit windows and delivery-log rows older than 30 days.

use crate::errors::ApiResult;
use crate::sites::{js_num, now_ms};
use serde_json::{Value, json};
use worker::Env;

const DAY_MS: i64 = 86_400_000;

pub async fn purge(env: &Env) -> ApiResult<Value> {
    let now = now_ms();
    let db = env.d1("DB")?;
    let results = db
        .batch(vec![
            db.prepare(
                "DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM events e JOIN sites s ON s.id = e.site_id \
                 WHERE e.received_at < ?1 - s.retention_days * ?2)",
            )
            .bind(&[js_num(now), js_num(DAY_MS)])?,
            db.prepare("DELETE FROM rate_limits WHERE window_end < ?1").bind(&[js_num(now)])?,
            db.prepare("DELETE FROM webhook_deliveries WHERE at < ?1").bind(&[js_num(now - 30 * DAY_MS)])?,
        ])
        .await?;
    let changes = |i: usize| -> ApiResult<usize> {
        Ok(match results.get(i) {
            Some(r) => r.meta()?.and_then(|m| m.changes).unwrap_or(0),
            None => 0,
        })
    };
    Ok(json!({"events": changes(0)?, "rate_limits": changes(1)?, "webhook_deliveries": changes(2)?}))
}
