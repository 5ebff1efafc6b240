//! Customers: who brought value, who will buy again, who is slipping away.
//!
//! The daily cron refits each site's book ([`refit_due`]): its valued
//! conversions (value > 0, the most recent `CONVERSIONS`) in the site's main
//! currency, judged by the core's `clv::book` (BG/NBD and Gamma-Gamma in
//! days, segments by the site's `customers` thresholds), written whole in one
//! D1 batch (a transaction: a reader sees the old book or the new, never
//! half of one). At most `SITES` sites per run, the stalest first.
//!
//! `POST /v1/reports/customers/refit?site=` (config) refits one book now.
//!
//! `GET /v1/reports/customers?site=&segment=&limit=` (leads permission: a
//! row is a person) serves what the last refit stored, with each customer's
//! current stage; `GET /v1/reports/cohorts?site=&by=first_channel|first_month`
//! (aggregates) computes value per cohort per month since acquisition from
//! the same conversions at request time.

use crate::access::Permission;
use crate::errors::{ApiError, ApiResult, reply};
use crate::reports::{csv_response, limit, query};
use crate::sites::{Site, js_num, now_ms};
use microfunnel_core::Timestamp;
use microfunnel_core::attribution::JourneyPath;
use microfunnel_core::clv::segment::Segment;
use microfunnel_core::clv::{self, ClvError, Transaction, book::Book};
use microfunnel_core::money::{self, Currency};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use worker::{D1Database, Env, Request, Response, Result, RouteContext, wasm_bindgen::JsValue};

const DAY_MS: i64 = 86_400_000;
/// The most valued conversions one refit or cohort report reads (the most
/// recent); past it the result says `truncated`.
const CONVERSIONS: i64 = 50_000;
/// The most sites one cron run refits.
const SITES: i64 = 25;
/// A site's book is due again after this long.
const STALE_MS: i64 = 20 * 3_600_000;
/// Customers per insert statement: one JSON text bound once, well under
/// D1's 2 MB per value.
const ROWS_PER_INSERT: usize = 2_000;

#[derive(Deserialize)]
struct ConversionRow {
    visitor_id: String,
    ts: f64,
    value_minor: f64,
    currency: String,
    path: String,
}

/// A site's valued conversions in its main currency.
struct Loaded {
    rows: Vec<ConversionRow>,
    /// The currency counted (`""`: conversions that name none).
    currency: String,
    digits: u32,
    /// Valued conversions in other currencies: purchases not counted.
    other_currency: usize,
    truncated: bool,
}

async fn load(db: &D1Database, site: &str) -> ApiResult<Loaded> {
    let rows: Vec<ConversionRow> = db
        .prepare(
            "SELECT visitor_id, ts, value_minor, COALESCE(currency, '') AS currency, path FROM conversions \
             WHERE site_id = ?1 AND value_minor > 0 ORDER BY ts DESC, message_id LIMIT ?2",
        )
        .bind(&[site.into(), js_num(CONVERSIONS)])?
        .all()
        .await?
        .results()?;
    let truncated = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= CONVERSIONS;
    // The currency most conversions are in (ties: the first by code): values
    // in different currencies cannot be summed.
    let mut by_currency: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *by_currency.entry(r.currency.as_str()).or_insert(0) += 1;
    }
    let currency = by_currency
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(c, _)| (*c).to_owned())
        .unwrap_or_default();
    let digits = if currency.is_empty() {
        money::DEFAULT_DIGITS
    } else {
        Currency::parse(&currency).map_or(money::DEFAULT_DIGITS, |c| c.digits())
    };
    let total = rows.len();
    let mut rows: Vec<ConversionRow> = rows.into_iter().filter(|r| r.currency == currency).collect();
    rows.reverse();
    Ok(Loaded { other_currency: total - rows.len(), rows, currency, digits, truncated })
}

impl Loaded {
    /// The transactions up to `end_day`; a conversion dated later (a clock
    /// ahead) is left out and counted.
    fn transactions(&self, end_day: i64) -> (Vec<Transaction<'_>>, usize) {
        let all: Vec<Transaction<'_>> = self
            .rows
            .iter()
            .map(|r| Transaction {
                customer: r.visitor_id.as_str(),
                day: (r.ts as i64).div_euclid(DAY_MS),
                value_minor: r.value_minor as i64,
            })
            .collect();
        let n = all.len();
        let kept: Vec<Transaction<'_>> = all.into_iter().filter(|t| t.day <= end_day).collect();
        let later = n - kept.len();
        (kept, later)
    }

    /// Each customer's first channel: the first touch of their first valued
    /// conversion's path.
    fn first_channels(&self) -> BTreeMap<&str, String> {
        let mut out = BTreeMap::new();
        for r in &self.rows {
            out.entry(r.visitor_id.as_str())
                .or_insert_with(|| JourneyPath::parse(&r.path).steps().next().unwrap_or("(none)").to_owned());
        }
        out
    }
}

fn fit_json(b: &Book) -> Value {
    let error = |e: &ClvError| Value::String(e.to_string());
    json!({
        "bg_nbd": b.purchases.as_ref().map(|f| json!({"params": f.model, "log_likelihood": f.log_likelihood})).unwrap_or_else(|e| json!({"error": error(e)})),
        "gamma_gamma": b.spend.as_ref().map(|f| json!({"params": f.model, "log_likelihood": f.log_likelihood})).unwrap_or_else(|e| json!({"error": error(e)})),
    })
}

/// What one refit did.
pub struct Refitted {
    pub customers: usize,
    /// Reading and judging the conversions (the batch write follows).
    pub refit_ms: i64,
}

/// Refits one site's book now and stores it with its summary.
pub async fn refit(env: &Env, site: &Site) -> ApiResult<Refitted> {
    let started = now_ms();
    let db = env.d1("DB")?;
    let loaded = load(&db, &site.id).await?;
    let end_day = started.div_euclid(DAY_MS);
    let (transactions, later) = loaded.transactions(end_day);
    let rules = site.config.site.customers();
    let book = clv::book::book(&transactions, end_day, loaded.digits, rules).map_err(|r| {
        // Every value and day was checked above: a bug, logged.
        worker::console_error!("customers refit of {}: transaction {} refused: {}", site.id, r.index, r.error);
        ApiError::new(500, "internal", "internal error")
    })?;
    let channels = loaded.first_channels();
    let rows: Vec<Value> = book
        .customers
        .iter()
        .map(|e| {
            json!([
                e.id,
                channels.get(e.id.as_str()).map_or("(none)", String::as_str),
                e.first_day * DAY_MS,
                e.last_day * DAY_MS,
                e.purchase_days,
                e.value_minor,
                e.p_alive,
                e.expected_purchases,
                e.predicted_minor,
                e.segment.as_str(),
            ])
        })
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &book.customers {
        *counts.entry(e.segment.as_str()).or_insert(0) += 1;
    }
    let refit_ms = now_ms() - started;
    let summary = json!({
        "currency": if loaded.currency.is_empty() { Value::Null } else { json!(loaded.currency) },
        "customers": book.customers.len(),
        "conversions": transactions.len(),
        "other_currency_conversions": loaded.other_currency,
        "future_dated_conversions": later,
        "truncated": loaded.truncated,
        "horizon_days": rules.horizon_days(),
        "high_value_threshold_minor": book.high_value_threshold,
        "segments": counts,
        "fit": fit_json(&book),
        "rules": rules.to_json(),
        "refit_ms": refit_ms,
    });
    let ids = [JsValue::from(site.id.as_str())];
    let mut statements = vec![db.prepare("DELETE FROM customers WHERE site_id = ?1").bind(&ids)?];
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        statements.push(
            db.prepare(
                "INSERT INTO customers (site_id, visitor_id, first_channel, first_ts, last_ts, purchase_days, \
                 value_minor, p_alive, expected_purchases, predicted_minor, segment) \
                 SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), json_extract(value, '$[6]'), \
                 json_extract(value, '$[7]'), json_extract(value, '$[8]'), json_extract(value, '$[9]') FROM json_each(?2)",
            )
            .bind(&[site.id.as_str().into(), serde_json::to_string(chunk)?.into()])?,
        );
    }
    statements.push(
        db.prepare(
            "INSERT INTO customer_fits (site_id, fitted_at, summary) VALUES (?1, ?2, ?3) \
             ON CONFLICT (site_id) DO UPDATE SET fitted_at = excluded.fitted_at, summary = excluded.summary",
        )
        .bind(&[site.id.as_str().into(), js_num(started), summary.to_string().into()])?,
    );
    db.batch(statements).await?;
    Ok(Refitted { customers: book.customers.len(), refit_ms })
}

#[derive(Deserialize)]
struct Due {
    id: String,
}

/// The cron's refit: the sites with valued conversions whose book is
/// missing or older than `STALE_MS`, the stalest first, at most `SITES`
/// (`only`: that one site, whatever its age). A site whose config no longer
/// parses is skipped (fails closed) and reported.
pub async fn refit_due(env: &Env, only: Option<&str>) -> ApiResult<Value> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let only_js = only.map_or(JsValue::NULL, Into::into);
    let due: Vec<Due> = db
        .prepare(
            "SELECT s.id AS id FROM sites s LEFT JOIN customer_fits f ON f.site_id = s.id \
             WHERE (?3 IS NULL AND (f.fitted_at IS NULL OR f.fitted_at < ?1) \
                    AND EXISTS (SELECT 1 FROM conversions c WHERE c.site_id = s.id AND c.value_minor > 0)) \
                OR s.id = ?3 \
             ORDER BY COALESCE(f.fitted_at, 0), s.id LIMIT ?2",
        )
        .bind(&[js_num(now - STALE_MS), js_num(SITES), only_js])?
        .all()
        .await?
        .results()?;
    let more = i64::try_from(due.len()).unwrap_or(i64::MAX) >= SITES;
    let (mut refitted, mut failed, mut customers, mut slowest) = (0, Vec::new(), 0usize, 0i64);
    for d in &due {
        let result = match Site::load(env, &d.id).await {
            Ok(site) => refit(env, &site).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => {
                refitted += 1;
                customers += r.customers;
                slowest = slowest.max(r.refit_ms);
            }
            Err(e) => {
                worker::console_error!("customers refit of {} failed: {}", d.id, e.message);
                failed.push(d.id.clone());
            }
        }
    }
    Ok(json!({"refitted": refitted, "failed": failed, "customers": customers, "slowest_ms": slowest, "more": more}))
}

#[derive(Deserialize)]
struct CustomerRow {
    visitor_id: String,
    first_channel: String,
    first_ts: f64,
    last_ts: f64,
    purchase_days: f64,
    value_minor: f64,
    p_alive: Option<f64>,
    expected_purchases: Option<f64>,
    predicted_minor: Option<f64>,
    segment: String,
    stage: Option<String>,
}

#[derive(Deserialize)]
struct SegmentRow {
    segment: String,
    customers: f64,
    value_minor: f64,
    predicted_minor: f64,
}

#[derive(Deserialize)]
struct FitRow {
    fitted_at: f64,
    summary: String,
}

fn date(ms: f64) -> Value {
    Timestamp::from_millis(ms as i64).map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

/// A book is refitted on demand at most this often (the cron's is daily).
const REFIT_SPACING_MS: f64 = 60_000.0;

/// `POST /v1/reports/customers/refit?site=` (config permission): refits the
/// book now — after a change of the thresholds, say, whose segments would
/// otherwise show the next night. Bounded like the cron's (`CONVERSIONS`),
/// and at most once a minute per site.
pub async fn refit_now(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(refit_now_inner(&req, &ctx.env).await)
}

async fn refit_now_inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Config).await?;
    let db = env.d1("DB")?;
    let last: Option<FitRow> = db
        .prepare("SELECT fitted_at, summary FROM customer_fits WHERE site_id = ?1")
        .bind(&[q.site.id.as_str().into()])?
        .first(None)
        .await?;
    let since = last.map(|f| now_ms() as f64 - f.fitted_at);
    if let Some(ago) = since.filter(|ago| *ago < REFIT_SPACING_MS) {
        let wait = ((REFIT_SPACING_MS - ago) / 1000.0).ceil().max(1.0);
        let mut e = ApiError::new(
            429,
            "refit_too_soon",
            format!("the book was refitted {:.0} s ago: once a minute at most, again in {wait:.0} s", ago / 1000.0),
        );
        e.retry_after = Some(wait as i64);
        return Err(e);
    }
    let done = refit(env, &q.site).await?;
    Ok(Response::from_json(&json!({ "customers": done.customers, "refit_ms": done.refit_ms }))?)
}

pub async fn report(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(report_inner(&req, &ctx.env).await)
}

async fn report_inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Leads).await?;
    let site = q.site.id.as_str();
    let segment = match q.param("segment") {
        None => None,
        Some(s) => Some(Segment::parse(s).ok_or_else(|| {
            let known: Vec<&str> = Segment::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request("invalid_query", format!("segment: one of {}", known.join(", ")))
        })?),
    };
    let limit = limit(&q, 100, 1000)?;
    let db = env.d1("DB")?;
    let fit: Option<FitRow> = db
        .prepare("SELECT fitted_at, summary FROM customer_fits WHERE site_id = ?1")
        .bind(&[site.into()])?
        .first(None)
        .await?;
    let rows: Vec<CustomerRow> = db
        .prepare(
            "SELECT c.visitor_id AS visitor_id, first_channel, first_ts, last_ts, purchase_days, value_minor, p_alive, \
             expected_purchases, predicted_minor, segment, v.stage AS stage FROM customers c \
             LEFT JOIN visitors v ON v.site_id = c.site_id AND v.visitor_id = c.visitor_id \
             WHERE c.site_id = ?1 AND (?2 IS NULL OR c.segment = ?2) \
             ORDER BY c.value_minor + COALESCE(c.predicted_minor, 0) DESC, c.visitor_id LIMIT ?3",
        )
        .bind(&[site.into(), segment.map_or(JsValue::NULL, |s| s.as_str().into()), js_num(limit)])?
        .all()
        .await?
        .results()?;
    let customers: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "visitor_id": r.visitor_id,
                "first_channel": r.first_channel,
                "stage": r.stage.as_deref().filter(|s| !s.is_empty()),
                "first_purchase": date(r.first_ts),
                "last_purchase": date(r.last_ts),
                "purchase_days": r.purchase_days as i64,
                "value_minor": r.value_minor as i64,
                "predicted_minor": r.predicted_minor.map(|v| v as i64),
                "p_alive": r.p_alive,
                "expected_purchases": r.expected_purchases,
                "segment": r.segment,
            })
        })
        .collect();
    if q.csv() {
        let cols = [
            "visitor_id",
            "first_channel",
            "stage",
            "first_purchase",
            "last_purchase",
            "purchase_days",
            "value_minor",
            "predicted_minor",
            "p_alive",
            "expected_purchases",
            "segment",
        ];
        let out: Vec<Vec<Value>> = customers
            .iter()
            .map(|c| cols.iter().map(|k| c.get(*k).cloned().unwrap_or(Value::Null)).collect())
            .collect();
        return csv_response(&cols, &out);
    }
    let totals: Vec<SegmentRow> = db
        .prepare(
            "SELECT segment, COUNT(*) AS customers, SUM(value_minor) AS value_minor, \
             COALESCE(SUM(predicted_minor), 0) AS predicted_minor FROM customers WHERE site_id = ?1 GROUP BY segment",
        )
        .bind(&[site.into()])?
        .all()
        .await?
        .results()?;
    let segments: Vec<Value> = Segment::ALL
        .iter()
        .map(|s| {
            let t = totals.iter().find(|t| t.segment == s.as_str());
            json!({
                "segment": s.as_str(),
                "customers": t.map_or(0, |t| t.customers as i64),
                "value_minor": t.map_or(0, |t| t.value_minor as i64),
                "predicted_minor": t.map_or(0, |t| t.predicted_minor as i64),
            })
        })
        .collect();
    // A stored summary that does not parse is reported as missing, not guessed at.
    let summary = fit.as_ref().and_then(|f| serde_json::from_str::<Value>(&f.summary).ok());
    let body = json!({
        "site": site,
        "fitted_at": fit.as_ref().map_or(Value::Null, |f| date(f.fitted_at)),
        "currency": summary.as_ref().and_then(|s| s.get("currency")).cloned().unwrap_or(Value::Null),
        "summary": summary,
        "segments": segments,
        "customers": customers,
    });
    Ok(Response::from_json(&body)?)
}

pub async fn cohorts(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(cohorts_inner(&req, &ctx.env).await)
}

async fn cohorts_inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Aggregates).await?;
    let by = q.param("by").unwrap_or("first_channel").to_owned();
    if by != "first_channel" && by != "first_month" {
        return Err(ApiError::bad_request("invalid_query", "by: first_channel or first_month"));
    }
    let loaded = load(&env.d1("DB")?, &q.site.id).await?;
    let end_day = now_ms().div_euclid(DAY_MS);
    let (transactions, _) = loaded.transactions(end_day);
    let channels = loaded.first_channels();
    let mut first_day: BTreeMap<&str, i64> = BTreeMap::new();
    for t in &transactions {
        first_day.entry(t.customer).and_modify(|d| *d = (*d).min(t.day)).or_insert(t.day);
    }
    let cohorts = clv::cohort::cohorts(&transactions, end_day, |id| match by.as_str() {
        "first_month" => first_day.get(id).map(|d| clv::cohort::month_label(*d)),
        _ => channels.get(id).cloned(),
    });
    if q.csv() {
        let mut out = Vec::new();
        for c in &cohorts {
            for m in &c.months {
                out.push(vec![
                    json!(c.cohort),
                    json!(m.month),
                    json!(m.customers),
                    json!(m.buyers),
                    json!(m.value_minor),
                    json!(m.cumulative_per_customer_minor),
                ]);
            }
        }
        return csv_response(
            &["cohort", "month", "customers", "buyers", "value_minor", "cumulative_per_customer_minor"],
            &out,
        );
    }
    let body = json!({
        "site": q.site.id,
        "by": by,
        "currency": if loaded.currency.is_empty() { Value::Null } else { json!(loaded.currency) },
        "other_currency_conversions": loaded.other_currency,
        "truncated": loaded.truncated,
        "cohorts": cohorts,
    });
    Ok(Response::from_json(&body)?)
}
