//! Outgoing webhooks (conversions, tier changes), delivered by the visitor's
//! Durable Object: queued in its SQLite `outbox` in the same step as the
//! change, sent by its alarm, signed with the site's webhook secret — never
//! the one that authenticates incoming events, so a receiver cannot forge
//! them (`X-MF-Webhook-Signature: t=<unix s>,v1=<hex HMAC-SHA256("<t>.<body>")>`,
//! with a second `v1=` under the previous secret during a rotation's grace
//! period), retried with exponential backoff (1 s × 4^n, five
//! attempts), every attempt logged in D1 `webhook_deliveries`.
//!
//! A webhook cannot be aimed inside: https to a host name only (no IP
//! literal, no loopback, private or link-local name; `http://localhost`
//! only where `LOOPBACK_ORIGINS` is set), checked when configured and again
//! before every delivery; redirects are not followed; each attempt is cut
//! off after 10 s; a site sends at most `limits.webhooks_per_minute`
//! deliveries a minute (the rest wait for the next window).

use crate::auth::{hex, hmac_sha256};
use crate::errors::{ApiError, ApiResult};
use crate::sites::{Site, js_num, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{
    AbortController, Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response, SqlStorage,
    SqlStorageValue, State,
};

/// How long one delivery attempt may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `u` may receive webhooks: see the module's header.
pub fn allowed_url(u: &str, loopback_ok: bool) -> bool {
    let Ok(url) = worker::Url::parse(u) else { return false };
    let Some(host) = url.host() else { return false };
    if u.len() > 2048 || !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let name = match host {
        // An IP literal is refused whatever it is: public ones included, so
        // no check of ranges (and their many spellings) is needed.
        worker::url::Host::Ipv4(ip) => return loopback_ok && url.scheme() == "http" && ip.is_loopback(),
        worker::url::Host::Ipv6(_) => return false,
        worker::url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
    };
    let local = name == "localhost" || name.ends_with(".localhost");
    if local {
        return loopback_ok && matches!(url.scheme(), "http" | "https");
    }
    let internal =
        [".local", ".internal", ".lan", ".home.arpa", ".intranet", ".corp"].iter().any(|s| name.ends_with(s));
    url.scheme() == "https" && name.contains('.') && !internal
}

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
        // Nothing goes out unsigned: without its key this fails, and the
        // outbox keeps the deliveries for the next alarm.
        let keys = crate::secrets::valid(env, &site.id, &site.secrets, crate::secrets::Purpose::Webhook, now)?;
        if keys.is_empty() {
            return Err(crate::errors::ApiError::new(503, "no_webhook_secret", "this site has no webhook secret"));
        }
        let db = env.d1("DB")?;
        // The site's delivery budget for this minute: what it does not cover
        // waits for the next window.
        let (allowed, window_end) = crate::ratelimit::webhooks(env, &site, due.len()).await?;
        let (due, later) = due.split_at(allowed.min(due.len()));
        for item in later {
            sql.exec(
                "UPDATE outbox SET next_at = ? WHERE id = ?",
                vec![SqlStorageValue::from(window_end), SqlStorageValue::from(item.id.as_str())],
            )?;
        }
        for item in due {
            let attempt = item.attempt as i64 + 1;
            let (status, error) = if allowed_url(&item.url, site.loopback_ok) {
                send(&keys, item).await
            } else {
                (None, Some("the webhook URL is not allowed (https to a public host name only)".to_owned()))
            };
            let attempt_log =
                Attempt { site: site_id, url: &item.url, event: &item.kind, visitor: Some(visitor), attempt };
            log(&db, &attempt_log, status, error.as_deref()).await?;
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            if delivered || attempt >= MAX_ATTEMPTS {
                sql.exec("DELETE FROM outbox WHERE id = ?", vec![SqlStorageValue::from(item.id.as_str())])?;
            } else {
                let delay = BASE_DELAY_MS.saturating_mul(4_i64.saturating_pow(u32::try_from(attempt - 1).unwrap_or(0)));
                sql.exec(
                    "UPDATE outbox SET attempt = ?, next_at = ? WHERE id = ?",
                    vec![
                        SqlStorageValue::from(attempt),
                        SqlStorageValue::from(now_ms() + delay),
                        SqlStorageValue::from(item.id.as_str()),
                    ],
                )?;
            }
        }
    }
    Ok(())
}

/// One delivery attempt, as `webhook_deliveries` records it.
struct Attempt<'a> {
    site: &'a str,
    url: &'a str,
    event: &'a str,
    visitor: Option<&'a str>,
    attempt: i64,
}

async fn log(db: &worker::D1Database, a: &Attempt<'_>, status: Option<u16>, error: Option<&str>) -> ApiResult<()> {
    use worker::wasm_bindgen::JsValue;
    db.prepare(
        "INSERT INTO webhook_deliveries (site_id, url, event, visitor_id, attempt, status, error, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(&[
        a.site.into(),
        a.url.into(),
        a.event.into(),
        a.visitor.map_or(JsValue::NULL, Into::into),
        js_num(a.attempt),
        status.map_or(JsValue::NULL, |s| js_num(i64::from(s))),
        error.map_or(JsValue::NULL, Into::into),
        js_num(now_ms()),
    ])?
    .run()
    .await?;
    Ok(())
}

/// `t=<unix s>,v1=<sig>[,v1=<sig>]`: one signature per valid secret.
fn signature_header(keys: &[String], t: i64, body: &str) -> String {
    let signed = format!("{t}.{body}");
    let mut out = format!("t={t}");
    for k in keys {
        out.push_str(",v1=");
        out.push_str(&hex(&hmac_sha256(k.as_bytes(), signed.as_bytes())));
    }
    out
}

async fn send(keys: &[String], item: &Outgoing) -> (Option<u16>, Option<String>) {
    let t = now_ms() / 1000;
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v);
    if set("Content-Type", "application/json").is_err()
        || set("X-MF-Webhook-Signature", &signature_header(keys, t, &item.body)).is_err()
        || set("X-MF-Delivery", &item.id).is_err()
    {
        return (None, Some("could not build the request".into()));
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(item.body.as_str().into()))
        // A redirect is answered as it is (a 3xx: not delivered), never followed.
        .with_redirect(RequestRedirect::Manual);
    let req = match Request::new_with_init(&item.url, &init) {
        Ok(r) => r,
        Err(e) => return (None, Some(e.to_string())),
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let sending = std::pin::pin!(fetch.send_with_signal(&signal));
    let timer = std::pin::pin!(Delay::from(TIMEOUT));
    match futures_util::future::select(sending, timer).await {
        futures_util::future::Either::Left((Ok(resp), _)) => (Some(resp.status_code()), None),
        futures_util::future::Either::Left((Err(e), _)) => (None, Some(e.to_string())),
        futures_util::future::Either::Right(_) => {
            controller.abort();
            (None, Some("timed out after 10 s".to_owned()))
        }
    }
}

/// The notification body.
pub fn body(kind: &str, site: &str, visitor: &str, data: Value) -> Value {
    json!({"type": kind, "site": site, "visitor": visitor, "data": data, "created_at": now_ms()})
}

/// `POST /v1/sites/{site}/webhooks/test` (owner): one signed `test`
/// delivery to each of the site's webhook URLs, now, within the site's
/// delivery budget and logged like any other; answers each URL's outcome.
pub async fn test(req: Request, ctx: worker::RouteContext<()>) -> worker::Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    crate::errors::reply(test_inner(&req, &ctx.env, &id).await)
}

/// The site, for its owner (the webhook endpoints are settings).
async fn owned(req: &Request, env: &Env, id: &str) -> ApiResult<Site> {
    crate::access::authorize(req, env, id, crate::access::Permission::Config).await?;
    Site::load(env, id).await
}

async fn test_inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    let site = owned(req, env, id).await?;
    if site.webhooks.is_empty() {
        return Err(ApiError::bad_request("no_webhooks", "webhooks: this site has no webhook URL to test"));
    }
    let now = now_ms();
    let keys = crate::secrets::valid(env, &site.id, &site.secrets, crate::secrets::Purpose::Webhook, now)?;
    if keys.is_empty() {
        return Err(ApiError::new(503, "no_webhook_secret", "this site has no webhook secret"));
    }
    let (allowed, _) = crate::ratelimit::webhooks(env, &site, site.webhooks.len()).await?;
    let db = env.d1("DB")?;
    let mut out = Vec::new();
    for (i, url) in site.webhooks.iter().enumerate() {
        let (status, error) = if i >= allowed {
            (None, Some("over the site's deliveries per minute: try again in a minute".to_owned()))
        } else if !allowed_url(url, site.loopback_ok) {
            (None, Some("the webhook URL is not allowed (https to a public host name only)".to_owned()))
        } else {
            let data = json!({"message": "a test delivery from the dashboard: nothing happened to any visitor"});
            let item = Outgoing {
                id: format!("test_{}", crate::auth::random_hex(1)?),
                url: url.clone(),
                kind: "test".into(),
                body: serde_json::to_string(&body("test", &site.id, "", data))?,
                attempt: 0.0,
            };
            send(&keys, &item).await
        };
        let attempt_log = Attempt { site: &site.id, url, event: "test", visitor: None, attempt: 1 };
        log(&db, &attempt_log, status, error.as_deref()).await?;
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        out.push(json!({"url": url, "status": status, "error": error, "delivered": delivered}));
    }
    Ok(Response::from_json(&json!({"site": site.id, "deliveries": out}))?)
}

/// `GET /v1/sites/{site}/webhooks/deliveries` (owner): the latest 20
/// delivery attempts, newest first.
pub async fn deliveries(req: Request, ctx: worker::RouteContext<()>) -> worker::Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    crate::errors::reply(deliveries_inner(&req, &ctx.env, &id).await)
}

async fn deliveries_inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    let site = owned(req, env, id).await?;
    let rows: Vec<Value> = env
        .d1("DB")?
        .prepare(
            "SELECT url, event, attempt, status, error, at FROM webhook_deliveries WHERE site_id = ?1 \
             ORDER BY at DESC, id DESC LIMIT 20",
        )
        .bind(&[site.id.as_str().into()])?
        .all()
        .await?
        .results()?;
    Ok(Response::from_json(&json!({"site": site.id, "deliveries": rows}))?)
}
