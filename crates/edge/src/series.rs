//! `GET /v1/reports/series?site=&period=&model=` (aggregates): what the
//! dashboard's charts draw — conversions and credited value per channel
//! over time, new visitors per tier over time, and time to attribution as a
//! distribution — counted in the site's own time zone, by hour for a period
//! of up to two days and by day otherwise.
//!
//! The period is a preset (`today`, `yesterday`, `7d`, `30d`), or `custom`
//! with `from_date`/`to_date` (local dates, both included), all in the site's
//! zone, or `from`/`to` (RFC 3339); the answer names the window it resolved
//! to, so the other reports can be asked for the same one. Rows are summed
//! by D1 per quarter hour (every zone's offset is a whole number of them)
//! and each quarter hour falls in exactly one local bucket.

use crate::access::Permission;
use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::{js_num, now_ms};
use crate::zone::Zone;
use microfunnel_core::Timestamp;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use worker::{Env, Request, Response, Result, RouteContext};

const SLOT_MS: i64 = 15 * 60_000;
const HOUR_MS: i64 = 3_600_000;
/// Hourly buckets for at most this long a window; daily ones up to the next.
const MAX_HOURLY_MS: i64 = 31 * 24 * HOUR_MS;
const MAX_DAILY_MS: i64 = 400 * 24 * HOUR_MS;
/// Time-to-attribution bins: upper bounds in ms (the last bin is open).
const TTA_BINS: [(i64, &str); 9] = [
    (100, "< 100 ms"),
    (250, "100–250 ms"),
    (500, "250–500 ms"),
    (1_000, "0.5–1 s"),
    (2_000, "1–2 s"),
    (5_000, "2–5 s"),
    (10_000, "5–10 s"),
    (60_000, "10–60 s"),
    (i64::MAX, "≥ 60 s"),
];

pub async fn get(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(inner(&req, &ctx.env).await)
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", m.into())
}

#[derive(Deserialize)]
struct ChannelRow {
    slot: f64,
    channel: String,
    conversions: f64,
    value_minor: f64,
}

#[derive(Deserialize)]
struct TierRow {
    slot: f64,
    tier: String,
    n: f64,
}

#[derive(Deserialize)]
struct BinRow {
    bin: f64,
    n: f64,
}

/// A bucket: its first instant and its label in local time.
struct Bucket {
    start: i64,
    label: String,
}

async fn inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = crate::reports::query(req, env, Permission::Aggregates).await?;
    let get = |k: &str| q.param(k);
    let site = &q.site;
    let tz = site.config.site.timezone();
    let Some(zone) = Zone::new(tz) else {
        worker::console_error!("site {}: time zone `{tz}` unknown to the runtime", site.id);
        return Err(ApiError::new(500, "config_unreadable", "the site's time zone is unknown to the collector"));
    };
    let model = get("model").unwrap_or("last");
    let names: Vec<&str> = crate::conversions::models().iter().map(|m| m.name()).collect();
    if !names.contains(&model) {
        return Err(bad(format!("model: one of {}", names.join(", "))));
    }
    let (from, to) = if get("period") == Some("custom") {
        let date = |k: &str| -> ApiResult<i64> {
            let text = get(k).ok_or_else(|| bad(format!("{k}: required with period=custom (YYYY-MM-DD)")))?;
            zone.start_of_date(text).ok_or_else(|| bad(format!("{k}: a date, YYYY-MM-DD")))
        };
        let from = date("from_date")?;
        let to = zone
            .start_of_next_day(date("to_date")?)
            .ok_or_else(|| ApiError::new(500, "internal", "time zone failure"))?;
        if to <= from {
            return Err(bad("to_date: not before from_date"));
        }
        (from, to)
    } else {
        period(&zone, get("period"), get("from"), get("to"), now_ms())?
    };
    let hourly = match get("bucket").unwrap_or("auto") {
        "auto" => to - from <= 2 * 24 * HOUR_MS,
        "hour" => true,
        "day" => false,
        _ => return Err(bad("bucket: auto, hour or day")),
    };
    if to - from > if hourly { MAX_HOURLY_MS } else { MAX_DAILY_MS } {
        return Err(bad(if hourly { "the period: at most 31 days by hour" } else { "the period: at most 400 days" }));
    }
    let buckets =
        buckets(&zone, from, to, hourly).ok_or_else(|| ApiError::new(500, "internal", "time zone failure"))?;

    let db = env.d1("DB")?;
    let id = site.id.as_str();
    let range = [id.into(), js_num(from), js_num(to)];
    let tta_case: String = TTA_BINS
        .iter()
        .enumerate()
        .take(TTA_BINS.len() - 1)
        .map(|(i, (le, _))| format!("WHEN tta_ms < {le} THEN {i} "))
        .collect();
    let results = db
        .batch(vec![
            db.prepare(
                "SELECT c.ts / 900000 AS slot, k.channel AS channel, TOTAL(k.share) AS conversions, \
                 TOTAL(k.credit_minor) AS value_minor FROM credits k JOIN conversions c \
                 ON c.site_id = k.site_id AND c.message_id = k.message_id \
                 WHERE k.site_id = ?1 AND k.model = ?4 AND c.ts >= ?2 AND c.ts < ?3 GROUP BY 1, 2",
            )
            .bind(&[id.into(), js_num(from), js_num(to), model.into()])?,
            db.prepare(
                "SELECT first_seen / 900000 AS slot, tier, COUNT(*) AS n FROM visitors \
                 WHERE site_id = ?1 AND first_seen >= ?2 AND first_seen < ?3 GROUP BY 1, 2",
            )
            .bind(&range)?,
            db.prepare(format!(
                "SELECT CASE {tta_case}ELSE {} END AS bin, COUNT(*) AS n FROM conversions \
                 WHERE site_id = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY 1",
                TTA_BINS.len() - 1
            ))
            .bind(&range)?,
        ])
        .await?;
    let rows = |i: usize| results.get(i).ok_or_else(|| ApiError::new(500, "internal", "a report query is missing"));
    let channel_rows: Vec<ChannelRow> = rows(0)?.results()?;
    let tier_rows: Vec<TierRow> = rows(1)?.results()?;
    let bin_rows: Vec<BinRow> = rows(2)?.results()?;

    let index = |slot: f64| -> Option<usize> {
        let start = slot as i64 * SLOT_MS;
        let i = buckets.partition_point(|b| b.start <= start);
        i.checked_sub(1)
    };
    let n = buckets.len();
    let mut channels: BTreeMap<String, (Vec<f64>, Vec<i64>)> = BTreeMap::new();
    for r in &channel_rows {
        let Some(i) = index(r.slot) else { continue };
        let (c, v) = channels.entry(r.channel.clone()).or_insert_with(|| (vec![0.0; n], vec![0; n]));
        if let (Some(c), Some(v)) = (c.get_mut(i), v.get_mut(i)) {
            *c += r.conversions;
            *v = v.saturating_add(r.value_minor as i64);
        }
    }
    // Tiers in the rules' order, lowest first, then any the rules no longer have.
    let mut tiers: Vec<(String, Vec<u64>)> =
        site.config.site.rules().tier_ids().map(|t| (t.to_owned(), vec![0; n])).collect();
    for r in &tier_rows {
        let Some(i) = index(r.slot) else { continue };
        let pos = match tiers.iter().position(|(t, _)| *t == r.tier) {
            Some(p) => p,
            None => {
                tiers.push((r.tier.clone(), vec![0; n]));
                tiers.len() - 1
            }
        };
        if let Some(x) = tiers.get_mut(pos).and_then(|(_, counts)| counts.get_mut(i)) {
            *x += r.n as u64;
        }
    }
    let mut bins = vec![0u64; TTA_BINS.len()];
    for r in &bin_rows {
        if let Some(b) = bins.get_mut(r.bin as usize) {
            *b += r.n as u64;
        }
    }
    let currency = site.config.site.conversions().currency();
    let iso = |ms: i64| Timestamp::from_millis(ms).map(Timestamp::to_rfc3339);
    Ok(Response::from_json(&json!({
        "site": site.id,
        "model": model,
        "timezone": tz,
        "from": iso(from),
        "to": iso(to),
        "bucket": if hourly { "hour" } else { "day" },
        "labels": buckets.iter().map(|b| b.label.as_str()).collect::<Vec<_>>(),
        "starts": buckets.iter().map(|b| b.start).collect::<Vec<_>>(),
        "channels": channels.into_iter().map(|(channel, (c, v))| json!({
            "channel": channel, "conversions": c, "value_minor": v,
        })).collect::<Vec<_>>(),
        "tiers": tiers.into_iter().map(|(tier, visitors)| json!({"tier": tier, "visitors": visitors})).collect::<Vec<_>>(),
        "tta": TTA_BINS.iter().zip(bins).map(|((_, label), n)| json!({"bin": label, "conversions": n})).collect::<Vec<_>>(),
        "currency": currency.map(|c| c.code()),
        "currency_digits": microfunnel_core::money::digits_of(currency),
    }))?)
}

/// The window `[from, to)` of a preset in the zone, or of explicit bounds.
fn period(zone: &Zone, preset: Option<&str>, from: Option<&str>, to: Option<&str>, now: i64) -> ApiResult<(i64, i64)> {
    let fail = || ApiError::new(500, "internal", "time zone failure");
    let today = zone.start_of_day(now).ok_or_else(fail)?;
    let tomorrow = zone.start_of_next_day(now).ok_or_else(fail)?;
    let days_back = |n: i64| -> ApiResult<i64> {
        let mut start = today;
        for _ in 0..n {
            start = zone.start_of_day(start - HOUR_MS).ok_or_else(fail)?;
        }
        Ok(start)
    };
    let time =
        |k: &str, v: &str| Timestamp::parse(v).map(Timestamp::millis).map_err(|rule| bad(format!("{k}: {rule}")));
    let window = match (preset, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => return Err(bad("period: give a period or from/to, not both")),
        (Some("today") | None, None, None) => (today, tomorrow),
        (Some("yesterday"), ..) => (days_back(1)?, today),
        (Some("7d"), ..) => (days_back(6)?, tomorrow),
        (Some("30d"), ..) => (days_back(29)?, tomorrow),
        (Some(_), ..) => return Err(bad("period: today, yesterday, 7d, 30d or custom")),
        (None, f, t) => (
            f.map(|v| time("from", v)).transpose()?.unwrap_or(today),
            t.map(|v| time("to", v)).transpose()?.unwrap_or(tomorrow),
        ),
    };
    if window.1 <= window.0 {
        return Err(bad("to: must be after from"));
    }
    Ok(window)
}

/// The local hours or days that meet `[from, to)`, each from its first
/// instant (the first clipped to `from`).
fn buckets(zone: &Zone, from: i64, to: i64, hourly: bool) -> Option<Vec<Bucket>> {
    let mut out: Vec<Bucket> = Vec::new();
    if hourly {
        // Quarter hours from the one holding `from`: a new local hour starts a bucket.
        let mut t = from - from.rem_euclid(SLOT_MS);
        let mut last = None;
        while t < to {
            let l = zone.local(t)?;
            let key = (l.year, l.month, l.day, l.hour);
            if last != Some(key) {
                out.push(Bucket { start: t.max(from), label: l.hour_label() });
                last = Some(key);
            }
            t += SLOT_MS;
        }
    } else {
        let mut t = from;
        while t < to {
            out.push(Bucket { start: t, label: zone.local(t)?.date_label() });
            t = zone.start_of_next_day(t)?;
        }
    }
    Some(out)
}
