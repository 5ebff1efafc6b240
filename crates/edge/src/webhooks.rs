//! Outgoing webhooks (conversions, tier changes), delivered by the visitor's
//! Durable Object: queued in its SQLite `outbox` in the same step as the
//! change, sent by its alarm, signed like incoming server events
//! (`X-MF-Signature: t=<unix s>,v1=<hex HMAC-SHA256("<t>.<body>")>` under the
//! site's signing secret), retried with exponential backoff (1 s × 4^n, five
//! attempts), every attempt logged in D1 `webhook_deliveries`.

use crate::auth::{hex, hmac_sha256};
use crate::errors::ApiResult;
use crate::sites::{Site, js_num, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, SqlStorage, SqlStorageValue, State};

pub const MAX_ATTEMPTS: i64 = 5;
const BASE_DELAY_MS: i64 = 1_000;

pub fn ensure_schema(sql: &SqlStorage) -> ApiResult<()> {
    sql.exec(
        "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, url TEXT NOT NULL, kind TEXT NOT NULL, \
         body TEXT NOT NULL, attempt INTEGER NOT NULL, next_at INTEGER NOT NULL)",
        None,
    )?;
    Ok(())
}

/// Queues one notification per URL. `id` makes it idempotent (a conversion's
/// messageId, a tier change's event id).
pub fn enqueue(sql: &SqlStorage, urls: &[String], id: &str, kind: &str, body: &Value) -> ApiResult<()> {
    for (i, url) in urls.iter().enumerate() {
        sql.exec(
            "INSERT INTO outbox (id, url, kind, body, attempt, next_at) VALUES (?, ?, ?, ?, 0, ?) \
             ON CONFLICT(id) DO NOTHING",
            vec![
                SqlStorageValue::from(format!("{kind}:{id}:{i}")),
                SqlStorageValue::from(url.as_str()),
                SqlStorageValue::from(kind),
                SqlStorageValue::from(body.to_string()),
                SqlStorageValue::from(now_ms()),
            ],
        )?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct Outgoing {
    id: String,
    url: String,
    kind: String,
    body: String,
    attempt: f64,
}

/// Sends what is due, logs each attempt, reschedules the rest (the caller
/// sets the alarm from the outbox).
pub async fn deliver_due(state: &State, env: &Env, site_id: &str, visitor: &str) -> ApiResult<()> {
    let sql = state.storage().sql();
    ensure_schema(&sql)?;
    let now = now_ms();
    let due: Vec<Outgoing> = sql
        .exec(
            "SELECT id, url, kind, body, attempt FROM outbox WHERE next_at <= ? ORDER BY next_at LIMIT 20",
            vec![SqlStorageValue::from(now)],
        )?
        .to_array()?;
    if !due.is_empty() {
        let site = Site::load(env, site_id).await?;
        let db = env.d1("DB")?;
        for item in due {
            let attempt = item.attempt as i64 + 1;
            let (status, error) = send(&site, &item).await;
            db.prepare(
                "INSERT INTO webhook_deliveries (site_id, url, event, visitor_id, attempt, status, error, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(&[
                site_id.into(),
                item.url.as_str().into(),
                item.kind.as_str().into(),
                visitor.into(),
                js_num(attempt),
                status.map_or(worker::wasm_bindgen::JsValue::NULL, |s| js_num(i64::from(s))),
                error.as_deref().map_or(worker::wasm_bindgen::JsValue::NULL, Into::into),
                js_num(now_ms()),
            ])?
            .run()
            .await?;
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            if delivered || attempt >= MAX_ATTEMPTS {
                sql.exec("DELETE FROM outbox WHERE id = ?", vec![SqlStorageValue::from(item.id)])?;
            } else {
                let delay = BASE_DELAY_MS.saturating_mul(4_i64.saturating_pow(u32::try_from(attempt - 1).unwrap_or(0)));
                sql.exec(
                    "UPDATE outbox SET attempt = ?, next_at = ? WHERE id = ?",
                    vec![
                        SqlStorageValue::from(attempt),
                        SqlStorageValue::from(now_ms() + delay),
                        SqlStorageValue::from(item.id),
                    ],
                )?;
            }
        }
    }
    Ok(())
}

async fn send(site: &Site, item: &Outgoing) -> (Option<u16>, Option<String>) {
    let t = now_ms() / 1000;
    let signature = hex(&hmac_sha256(site.signing_secret.as_bytes(), format!("{t}.{}", item.body).as_bytes()));
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v);
    if set("Content-Type", "application/json").is_err()
        || set("X-MF-Signature", &format!("t={t},v1={signature}")).is_err()
        || set("X-MF-Delivery", &item.id).is_err()
    {
        return (None, Some("could not build the request".into()));
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(item.body.as_str().into()));
    let req = match Request::new_with_init(&item.url, &init) {
        Ok(r) => r,
        Err(e) => return (None, Some(e.to_string())),
    };
    match Fetch::Request(req).send().await {
        Ok(resp) => (Some(resp.status_code()), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// The notification body.
pub fn body(kind: &str, site: &str, visitor: &str, data: Value) -> Value {
    json!({"type": kind, "site": site, "visitor": visitor, "data": data, "created_at": now_ms()})
}
