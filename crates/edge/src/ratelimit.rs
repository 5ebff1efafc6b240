//! Rate limits: fixed one-minute windows per (site, IP hash) — batches — and
//! per site — events — counted in D1 (`rate_limits`, purged by the cron).
//! The IP is only ever an HMAC under a key that changes every UTC day.
//! Over a limit: 429 with `Retry-After` (seconds to the window's end).

use crate::auth::ip_hash;
use crate::errors::{ApiError, ApiResult};
use crate::sites::{Site, js_num, now_ms};
use serde::Deserialize;
use worker::{Env, Request};

const WINDOW_MS: i64 = 60_000;

#[derive(Deserialize)]
struct Count {
    count: i64,
}

pub async fn check(env: &Env, req: &Request, site: &Site, events: usize) -> ApiResult<()> {
    let now = now_ms();
    let window = now.div_euclid(WINDOW_MS);
    let window_end = (window + 1) * WINDOW_MS;
    let ip = req.headers().get("CF-Connecting-IP").ok().flatten().unwrap_or_else(|| "unknown".to_owned());
    let ip_key = format!("ip:{}:{}:{window}", site.id, ip_hash(env, &ip, now.div_euclid(86_400_000)));
    let site_key = format!("site:{}:{window}", site.id);
    let db = env.d1("DB")?;
    let upsert = "INSERT INTO rate_limits (key, window_end, count) VALUES (?1, ?2, ?3) \
                  ON CONFLICT(key) DO UPDATE SET count = count + excluded.count RETURNING count";
    let n = i64::try_from(events).unwrap_or(i64::MAX);
    let results = db
        .batch(vec![
            db.prepare(upsert).bind(&[ip_key.as_str().into(), js_num(window_end), js_num(1)])?,
            db.prepare(upsert).bind(&[site_key.as_str().into(), js_num(window_end), js_num(n)])?,
        ])
        .await?;
    let count_of = |i: usize| -> ApiResult<i64> {
        Ok(results
            .get(i)
            .map(|r| r.results::<Count>())
            .transpose()?
            .and_then(|v| v.first().map(|c| c.count))
            .unwrap_or(0))
    };
    let limits = &site.config.limits;
    let over = if count_of(0)? > limits.ip_per_minute {
        Some("too many requests from this address")
    } else if count_of(1)? > limits.site_per_minute {
        Some("too many events for this site")
    } else {
        None
    };
    match over {
        None => Ok(()),
        Some(what) => {
            let mut e = ApiError::new(429, "rate_limited", format!("{what}; retry after the window ends"));
            e.retry_after = Some(((window_end - now) / 1000).max(1));
            Err(e)
        }
    }
}
