//! Reports (`?site=` names the site; aggregates for owner, analyst and share
//! links, leads for owner and analyst): attribution per model with
//! the Markov and Shapley aggregates fitted by the core on the path table,
//! KPIs (per channel with CPA/ROAS from uploaded spend, funnel, AQS, time to
//! attribute p50/p99), top paths, the stage funnel, and leads by tier and stage.
//! JSON by default, CSV with `Accept: text/csv`.

use crate::access::{self, Permission};
use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::{Site, js_num};
use microfunnel_core::Timestamp;
use microfunnel_core::attribution::PathTable;
use microfunnel_core::attribution::{
    AqsInputs, JourneyPath, Kpi, KpiInput, MarkovOptions, SetCounts, ShapleyOptions, aqs, fit_markov, kpi, percentile,
};
use microfunnel_core::scoring::Snapshot;
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Request, Response, Result, RouteContext, wasm_bindgen::JsValue};

/// A report's request: its site (the credential checked), window and parameters.
pub(crate) struct Query {
    pub(crate) site: Site,
    pub(crate) from: i64,
    pub(crate) to: i64,
    params: Vec<(String, String)>,
    csv: bool,
}

impl Query {
    /// `Accept: text/csv` was asked for.
    pub(crate) fn csv(&self) -> bool {
        self.csv
    }

    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

pub(crate) async fn query(req: &Request, env: &Env, needs: Permission) -> ApiResult<Query> {
    let actor = access::authenticate(req, env).await?;
    let params: Vec<(String, String)> =
        req.url()?.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let Some(site_id) = get("site") else {
        return Err(ApiError::bad_request("missing_site", "site: the query parameter is required"));
    };
    access::permit(&actor, &site_id, needs)?;
    let site = Site::load(env, &site_id).await?;
    let (from, to) = window(&params)?;
    Ok(Query { site, from, to, params, csv: wants_csv(req) })
}

/// The `from` / `to` (RFC 3339) window of a report or the audit log, in
/// epoch ms; unbounded where not given.
pub(crate) fn window(params: &[(String, String)]) -> ApiResult<(i64, i64)> {
    let time = |k: &str, default: i64| -> ApiResult<i64> {
        match params.iter().find(|(key, _)| key == k) {
            None => Ok(default),
            Some((_, t)) => Timestamp::parse(t)
                .map(Timestamp::millis)
                .map_err(|rule| ApiError::bad_request("invalid_query", format!("{k}: {rule}"))),
        }
    };
    Ok((time("from", 0)?, time("to", i64::from(i32::MAX) * 1_000_000)?))
}

/// `Accept: text/csv`.
pub(crate) fn wants_csv(req: &Request) -> bool {
    req.headers().get("Accept").ok().flatten().is_some_and(|a| a.to_ascii_lowercase().contains("text/csv"))
}

/// One CSV cell: quoted when needed; a leading `= + - @` is neutralised so a
/// spreadsheet does not run it as a formula.
fn cell(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        // Whole numbers print without a fraction (D1 hands back f64s).
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.parse::<f64>().is_err()) {
        format!("'{s}")
    } else {
        s
    };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

pub(crate) fn csv_response(header: &[&str], rows: &[Vec<Value>]) -> ApiResult<Response> {
    let mut out = header.join(",");
    out.push_str("\r\n");
    for row in rows {
        out.push_str(&row.iter().map(cell).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    let resp = Response::ok(out)?;
    resp.headers().set("Content-Type", "text/csv; charset=utf-8")?;
    Ok(resp)
}

#[derive(Deserialize)]
struct CreditRow {
    model: String,
    channel: String,
    conversions: f64,
    value_minor: f64,
}

#[derive(Deserialize)]
struct PathRowDb {
    path: String,
    conversions: f64,
    value_minor: f64,
    nulls: f64,
}

async fn path_rows(env: &Env, site: &str, limit: i64) -> ApiResult<Vec<PathRowDb>> {
    Ok(env
        .d1("DB")?
        .prepare(
            "SELECT path, conversions, value_minor, nulls FROM paths WHERE site_id = ?1 \
             ORDER BY conversions DESC, path LIMIT ?2",
        )
        .bind(&[site.into(), js_num(limit)])?
        .all()
        .await?
        .results()?)
}

/// One conversion's paths (from its stored conversions) beside every path's
/// non-converting journeys.
async fn conversion_path_rows(env: &Env, site: &str, name: &str, limit: i64) -> ApiResult<Vec<PathRowDb>> {
    Ok(env
        .d1("DB")?
        .prepare(
            "SELECT path, COUNT(*) AS conversions, TOTAL(value_minor) AS value_minor, 0 AS nulls FROM conversions \
             WHERE site_id = ?1 AND name = ?2 AND path <> '' GROUP BY path \
             UNION ALL SELECT path, 0, 0, nulls FROM paths WHERE site_id = ?1 AND nulls > 0 \
             ORDER BY 2 DESC, 1 LIMIT ?3",
        )
        .bind(&[site.into(), name.into(), js_num(limit)])?
        .all()
        .await?
        .results()?)
}

/// `GET /v1/reports/attribution?site=&from=&to=&conversion=`.
pub async fn attribution(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(attribution_inner(&req, &ctx.env).await)
}

async fn attribution_inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Aggregates).await?;
    // `conversion=<event name>`: only that definition's conversions.
    let only = match q.param("conversion") {
        None => None,
        Some(name) if q.site.config.site.conversions().find(name).is_some() => Some(name.to_owned()),
        Some(_) => {
            let names: Vec<&str> = q.site.config.site.conversions().iter().map(|d| d.event.as_str()).collect();
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("conversion: one of the site's conversion definitions ({})", names.join(", ")),
            ));
        }
    };
    let name = only.as_deref().map_or(JsValue::NULL, Into::into);
    let rows: Vec<CreditRow> = env
        .d1("DB")?
        .prepare(
            "SELECT c.model AS model, c.channel AS channel, SUM(c.share) AS conversions, CAST(TOTAL(c.credit_minor) AS INTEGER) AS value_minor \
             FROM credits c JOIN conversions v ON v.site_id = c.site_id AND v.message_id = c.message_id \
             WHERE c.site_id = ?1 AND v.ts >= ?2 AND v.ts < ?3 AND (?4 IS NULL OR v.name = ?4) \
             GROUP BY c.model, c.channel ORDER BY c.model, c.channel",
        )
        .bind(&[q.site.id.as_str().into(), js_num(q.from), js_num(q.to), name])?
        .all()
        .await?
        .results()?;
    // Data-driven models over the whole path table (it has no time axis);
    // for one conversion, over its own paths and every journey that
    // converted to nothing.
    let paths = match &only {
        None => path_rows(env, &q.site.id, 10_000).await?,
        Some(n) => conversion_path_rows(env, &q.site.id, n, 10_000).await?,
    };
    let mut table = PathTable::new();
    for p in paths {
        let path = JourneyPath::parse(&p.path);
        let steps: Vec<&str> = path.steps().collect();
        let _ = table.push_names(&steps, p.conversions, p.value_minor, p.nulls, None);
    }
    let markov = fit_markov(&table, &MarkovOptions::default());
    let shapley = SetCounts::from_table(&table).shapley(&table.channels, &ShapleyOptions::default());
    if q.csv {
        let mut out: Vec<Vec<Value>> = rows
            .iter()
            .map(|r| vec![json!(r.model), json!(r.channel), json!(r.conversions), json!(r.value_minor)])
            .collect();
        if let Ok(m) = &markov {
            out.extend(
                m.channels
                    .iter()
                    .map(|c| vec![json!("markov"), json!(c.channel), json!(c.conversions), json!(c.value)]),
            );
        }
        if let Ok(s) = &shapley {
            out.extend(
                s.channels
                    .iter()
                    .map(|c| vec![json!("shapley"), json!(c.channel), json!(c.conversions), json!(c.value)]),
            );
        }
        return csv_response(&["model", "channel", "conversions", "value_minor"], &out);
    }
    let mut models = serde_json::Map::new();
    for r in &rows {
        let list = models.entry(r.model.clone()).or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(json!({"channel": r.channel, "conversions": r.conversions, "value_minor": r.value_minor}));
        }
    }
    let fitted = |r: std::result::Result<Value, String>| match r {
        Ok(v) => v,
        Err(e) => json!({"error": e}),
    };
    let body = json!({
        "site": q.site.id,
        "conversion": only,
        "models": models,
        "markov": fitted(markov.map(|m| json!(m)).map_err(|e| e.to_string())),
        "shapley": fitted(shapley.map(|s| json!(s)).map_err(|e| e.to_string())),
    });
    Ok(Response::from_json(&body)?)
}

/// `GET /v1/reports/kpis?site=&from=&to=&model=`: totals, TTA p50/p99, tiers,
/// per-channel KPIs (sessions, conversions and value credited by `model` —
/// default `last` —, conversion rate, CPA and ROAS from uploaded spend), the
/// funnel (visited → engaged → qualified → converted, with pass-through
/// rates) and the attribution quality score (AQS). CSV: the totals as
/// `metric,value`, or one row per channel with `view=channels`.
pub async fn kpis(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(kpis_inner(&req, &ctx.env).await)
}

/// A data-driven result rests on at least this many journeys (AQS support).
const AQS_MIN_JOURNEYS: f64 = 100.0;

fn rows_of(results: &[worker::D1Result], i: usize) -> ApiResult<Vec<Value>> {
    Ok(match results.get(i) {
        Some(r) => r.results::<Value>()?,
        None => Vec::new(),
    })
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

async fn kpis_inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Aggregates).await?;
    let model = q.param("model").unwrap_or("last").to_owned();
    let names: Vec<&str> = crate::conversions::models().iter().map(|m| m.name()).collect();
    if !names.contains(&model.as_str()) {
        return Err(ApiError::bad_request("invalid_query", format!("model: one of {}", names.join(", "))));
    }
    let db = env.d1("DB")?;
    let site = q.site.id.as_str();
    let range = [site.into(), js_num(q.from), js_num(q.to)];
    // The site's tiers in their order: every one above the lowest qualifies.
    let rules = q.site.config.site.rules();
    let qualified_tiers = serde_json::to_string(&rules.tier_ids().skip(1).collect::<Vec<_>>())?;
    let results = db
        .batch(vec![
            db.prepare(
                "SELECT COUNT(*) AS events, COUNT(DISTINCT visitor_id) AS visitors FROM events \
                 WHERE site_id = ?1 AND ts >= ?2 AND ts < ?3",
            )
            .bind(&range)?,
            db.prepare(
                "SELECT COUNT(*) AS conversions, CAST(TOTAL(value_minor) AS INTEGER) AS value_minor, \
                 COUNT(DISTINCT visitor_id) AS converted FROM conversions WHERE site_id = ?1 AND ts >= ?2 AND ts < ?3",
            )
            .bind(&range)?,
            db.prepare(
                "SELECT tta_ms FROM conversions WHERE site_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY tta_ms LIMIT 100000",
            )
            .bind(&range)?,
            db.prepare("SELECT tier, COUNT(*) AS n FROM visitors WHERE site_id = ?1 GROUP BY tier ORDER BY tier")
                .bind(&[site.into()])?,
            db.prepare(
                "SELECT COUNT(*) AS sessions, COALESCE(AVG(events), 0) AS events_per_session FROM sessions \
                 WHERE site_id = ?1 AND started_at >= ?2 AND started_at < ?3",
            )
            .bind(&range)?,
            // 5: sessions per channel.
            db.prepare(
                "SELECT COALESCE(channel, 'Unassigned') AS channel, COUNT(*) AS n FROM sessions \
                 WHERE site_id = ?1 AND started_at >= ?2 AND started_at < ?3 GROUP BY 1",
            )
            .bind(&range)?,
            // 6: credits per channel under the chosen model.
            db.prepare(
                "SELECT c.channel AS channel, SUM(c.share) AS conversions, CAST(TOTAL(c.credit_minor) AS INTEGER) AS value_minor \
                 FROM credits c JOIN conversions v ON v.site_id = c.site_id AND v.message_id = c.message_id \
                 WHERE c.site_id = ?1 AND v.ts >= ?2 AND v.ts < ?3 AND c.model = ?4 GROUP BY c.channel",
            )
            .bind(&[site.into(), js_num(q.from), js_num(q.to), model.as_str().into()])?,
            // 7: spend per channel, by the day it was spent.
            db.prepare(
                "SELECT channel, CAST(TOTAL(amount_minor) AS INTEGER) AS spend_minor FROM spend \
                 WHERE site_id = ?1 AND day_ms >= ?2 AND day_ms < ?3 GROUP BY channel",
            )
            .bind(&range)?,
            // 8: engaged visitors (two events or more in the window).
            db.prepare(
                "SELECT COUNT(*) AS n FROM (SELECT visitor_id FROM events WHERE site_id = ?1 AND ts >= ?2 AND ts < ?3 \
                 GROUP BY visitor_id HAVING COUNT(*) >= 2)",
            )
            .bind(&range)?,
            // 9: qualified visitors (any tier above the site's lowest, seen in the window).
            db.prepare(
                "SELECT COUNT(*) AS n FROM visitors WHERE site_id = ?1 AND last_seen >= ?2 AND first_seen < ?3 \
                 AND tier IN (SELECT value FROM json_each(?4))",
            )
            .bind(&[site.into(), js_num(q.from), js_num(q.to), qualified_tiers.as_str().into()])?,
            // 10: conversions' paths and whether their visitor is identified (AQS).
            db.prepare(
                "SELECT v.path AS path, EXISTS (SELECT 1 FROM identities i WHERE i.site_id = v.site_id \
                 AND i.visitor_id = v.visitor_id AND i.kind <> 'anonymous') AS identified \
                 FROM conversions v WHERE v.site_id = ?1 AND v.ts >= ?2 AND v.ts < ?3 LIMIT 100000",
            )
            .bind(&range)?,
            // 11: journeys behind the data-driven models.
            db.prepare("SELECT CAST(TOTAL(conversions + nulls) AS INTEGER) AS n FROM paths WHERE site_id = ?1")
                .bind(&[site.into()])?,
        ])
        .await?;
    let first = |i: usize| -> ApiResult<Value> { Ok(rows_of(&results, i)?.into_iter().next().unwrap_or(Value::Null)) };
    let events = first(0)?;
    let conv = first(1)?;
    let tta: Vec<f64> = rows_of(&results, 2)?.iter().filter_map(|v| v.get("tta_ms").and_then(Value::as_f64)).collect();
    let tiers = rows_of(&results, 3)?;
    let sessions = first(4)?;
    let n_visitors = num(&events, "visitors");
    let n_conv = num(&conv, "conversions");

    // Per channel: the union of channels with sessions, credit or spend.
    let mut channels: std::collections::BTreeMap<String, KpiInput> = std::collections::BTreeMap::new();
    fn entry<'a>(channels: &'a mut std::collections::BTreeMap<String, KpiInput>, name: &str) -> &'a mut KpiInput {
        channels.entry(name.to_owned()).or_insert_with(|| KpiInput {
            channel: name.to_owned(),
            conversions: 0.0,
            value: 0.0,
            sessions: Some(0.0),
            spend: None,
        })
    }
    for r in rows_of(&results, 5)? {
        entry(&mut channels, r.get("channel").and_then(Value::as_str).unwrap_or("Unassigned")).sessions =
            Some(num(&r, "n"));
    }
    for r in rows_of(&results, 6)? {
        let e = entry(&mut channels, r.get("channel").and_then(Value::as_str).unwrap_or("Unassigned"));
        e.conversions = num(&r, "conversions");
        e.value = num(&r, "value_minor");
    }
    for r in rows_of(&results, 7)? {
        entry(&mut channels, r.get("channel").and_then(Value::as_str).unwrap_or("Unassigned")).spend =
            Some(num(&r, "spend_minor"));
    }
    let per_channel: Vec<Kpi> = channels.values().map(kpi).collect();

    let engaged = num(&first(8)?, "n");
    let qualified = num(&first(9)?, "n");
    let converted = num(&conv, "converted");
    let rate = |a: f64, b: f64| if b > 0.0 { Some(a / b) } else { None };
    let funnel = json!([
        {"stage": "visited", "visitors": n_visitors},
        {"stage": "engaged", "visitors": engaged, "pass_through": rate(engaged, n_visitors)},
        {"stage": "qualified", "visitors": qualified, "pass_through": rate(qualified, engaged)},
        {"stage": "converted", "visitors": converted, "pass_through": rate(converted, qualified)},
    ]);

    // AQS. Touches are the stored journeys' steps; the visitor's object builds
    // a journey in time order within the lookback, so every stored touch is
    // temporally consistent by construction.
    let mut inputs = AqsInputs {
        conversions: 0,
        identified_conversions: 0,
        touches: 0,
        classified_touches: 0,
        consistent_touches: 0,
        journeys: num(&first(11)?, "n"),
        min_journeys: AQS_MIN_JOURNEYS,
    };
    for r in rows_of(&results, 10)? {
        inputs.conversions += 1;
        inputs.identified_conversions += u64::from(num(&r, "identified") > 0.0);
        for step in JourneyPath::parse(r.get("path").and_then(Value::as_str).unwrap_or("")).steps() {
            {
                inputs.touches += 1;
                inputs.classified_touches += u64::from(step != "Unassigned");
            }
        }
    }
    inputs.consistent_touches = inputs.touches;
    let aqs = aqs(&inputs);
    let currency = q.site.config.site.conversions().currency();

    let body = json!({
        "site": site,
        "model": model,
        "events": events.get("events"),
        "visitors": events.get("visitors"),
        "sessions": sessions.get("sessions"),
        "events_per_session": sessions.get("events_per_session"),
        "conversions": conv.get("conversions"),
        "value_minor": conv.get("value_minor"),
        "conversion_rate": if n_visitors > 0.0 { n_conv / n_visitors } else { 0.0 },
        "tta_ms": {"p50": percentile(&tta, 50.0), "p99": percentile(&tta, 99.0), "max": tta.last(), "n": tta.len()},
        "tiers": tiers,
        // The currency values are in, and how many digits its minor units have.
        "currency": currency.map(|c| c.code()),
        "currency_digits": microfunnel_core::money::digits_of(currency),
        "channels": per_channel,
        "funnel": funnel,
        "aqs": aqs,
    });
    if q.csv && q.param("view") == Some("channels") {
        let rows: Vec<Vec<Value>> = per_channel
            .iter()
            .map(|k| {
                let input = channels.get(&k.channel);
                vec![
                    json!(k.channel),
                    json!(input.and_then(|c| c.sessions)),
                    json!(k.conversions),
                    json!(k.value),
                    json!(k.conversion_rate),
                    json!(input.and_then(|c| c.spend)),
                    json!(k.cpa),
                    json!(k.roas),
                ]
            })
            .collect();
        return csv_response(
            &[
                "channel",
                "sessions",
                "conversions",
                "value_minor",
                "conversion_rate",
                "spend_minor",
                "cpa_minor",
                "roas",
            ],
            &rows,
        );
    }
    if q.csv {
        let flat = [
            ("events", body.get("events")),
            ("visitors", body.get("visitors")),
            ("sessions", body.get("sessions")),
            ("conversions", body.get("conversions")),
            ("value_minor", body.get("value_minor")),
            ("conversion_rate", body.get("conversion_rate")),
            ("tta_ms_p50", body.pointer("/tta_ms/p50")),
            ("tta_ms_p99", body.pointer("/tta_ms/p99")),
            ("aqs", body.pointer("/aqs/score")),
        ];
        let rows: Vec<Vec<Value>> =
            flat.iter().map(|(k, v)| vec![json!(k), v.cloned().unwrap_or(Value::Null)]).collect();
        return csv_response(&["metric", "value"], &rows);
    }
    Ok(Response::from_json(&body)?)
}

pub(crate) fn limit(q: &Query, default: i64, max: i64) -> ApiResult<i64> {
    match q.param("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_request("invalid_query", format!("limit: 1 to {max}"))),
    }
}

/// `GET /v1/reports/paths?site=&from=&to=&limit=`: top converting paths (all time, the
/// Markov/Shapley input) and the fastest converting sequences in the window;
/// CSV of either with `view=fastest`.
pub async fn paths(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(paths_inner(&req, &ctx.env).await)
}

async fn paths_inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Aggregates).await?;
    let n = limit(&q, 100, 1000)?;
    let rows = path_rows(env, &q.site.id, n).await?;
    // Fastest converting sequences: time from the journey's first touch to
    // the conversion, per path, over the window.
    let fastest: Vec<FastRow> = env
        .d1("DB")?
        .prepare(
            "SELECT path, COUNT(*) AS conversions, AVG(ts - first_touch_ts) AS avg_ms, MIN(ts - first_touch_ts) AS min_ms \
             FROM conversions WHERE site_id = ?1 AND ts >= ?2 AND ts < ?3 AND first_touch_ts IS NOT NULL \
             GROUP BY path ORDER BY avg_ms, path LIMIT ?4",
        )
        .bind(&[q.site.id.as_str().into(), js_num(q.from), js_num(q.to), js_num(n)])?
        .all()
        .await?
        .results()?;
    if q.csv && q.param("view") == Some("fastest") {
        let out: Vec<Vec<Value>> = fastest
            .iter()
            .map(|f| vec![json!(f.path), json!(f.conversions), json!(f.avg_ms), json!(f.min_ms)])
            .collect();
        return csv_response(&["path", "conversions", "avg_ms_to_convert", "min_ms_to_convert"], &out);
    }
    if q.csv {
        let out: Vec<Vec<Value>> = rows
            .iter()
            .map(|p| vec![json!(p.path), json!(p.conversions), json!(p.value_minor), json!(p.nulls)])
            .collect();
        return csv_response(&["path", "conversions", "value_minor", "nulls"], &out);
    }
    let paths: Vec<Value> = rows
        .iter()
        .map(|p| json!({"path": p.path, "conversions": p.conversions, "value_minor": p.value_minor, "nulls": p.nulls}))
        .collect();
    let fastest: Vec<Value> = fastest
        .iter()
        .map(|f| json!({"path": f.path, "conversions": f.conversions, "avg_ms_to_convert": f.avg_ms, "min_ms_to_convert": f.min_ms}))
        .collect();
    Ok(Response::from_json(&json!({"site": q.site.id, "paths": paths, "fastest": fastest}))?)
}

#[derive(Deserialize)]
struct FastRow {
    path: String,
    conversions: f64,
    avg_ms: f64,
    min_ms: f64,
}

/// `GET /v1/leads?site=&tier=&limit=`: visitors by score, highest first. The
/// score and tier are as of the request — the stored snapshot decayed by the
/// core to now under the site's current rules — and `score_at_last_event`
/// is what the visitor's object last computed. Decay only lowers a score, so
/// the candidates are the `LEADS_SCAN` highest stored scores.
pub async fn leads(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(leads_inner(&req, &ctx.env).await)
}

/// How many stored leads (highest first) a leads request re-scores.
const LEADS_SCAN: i64 = 10_000;

async fn leads_inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Leads).await?;
    let rules = q.site.config.site.rules();
    let tier = q.param("tier").map(str::to_owned);
    if let Some(t) = &tier
        && !rules.tier_ids().any(|id| id == t)
    {
        let known: Vec<&str> = rules.tier_ids().collect();
        return Err(ApiError::bad_request("invalid_query", format!("tier: one of {}", known.join(", "))));
    }
    let stage = q.param("stage").map(str::to_owned);
    if let Some(s) = &stage
        && rules.stage_index(s).is_none()
    {
        let known: Vec<&str> = rules.stages().iter().map(|s| s.id()).collect();
        let known =
            if known.is_empty() { "none: the site's rules define no stages".to_owned() } else { known.join(", ") };
        return Err(ApiError::bad_request("invalid_query", format!("stage: one of {known}")));
    }
    let n = usize::try_from(limit(&q, 100, 1000)?).unwrap_or(100);
    let rows: Vec<Value> = env
        .d1("DB")?
        .prepare(
            "SELECT visitor_id, user_id, score_milli, tier, rules_version, first_seen, last_seen, events, drivers, \
             engagement_milli, fit_milli, last_activity_ms, last_at_ms, stage \
             FROM visitors WHERE site_id = ?1 AND (?3 IS NULL OR stage = ?3) \
             ORDER BY score_milli DESC, visitor_id LIMIT ?2",
        )
        .bind(&[q.site.id.as_str().into(), js_num(LEADS_SCAN), stage.as_deref().map_or(JsValue::NULL, Into::into)])?
        .all()
        .await?
        .results()?;
    let Some(now) = Timestamp::from_millis(crate::sites::now_ms()) else {
        return Err(ApiError::new(500, "internal", "the clock is out of range"));
    };
    let int = |r: &Value, k: &str| r.get(k).and_then(Value::as_f64).map(|f| f as i64);
    let mut leads: Vec<(i64, Value)> = Vec::with_capacity(rows.len().min(n));
    for r in rows {
        let stored = int(&r, "score_milli").unwrap_or(0);
        // Rows written before snapshots existed keep their stored score.
        let (milli, current_tier) = match (int(&r, "engagement_milli"), int(&r, "fit_milli")) {
            (Some(engagement_milli), Some(fit_milli)) => {
                let snap = Snapshot {
                    engagement_milli,
                    fit_milli,
                    last_activity_ms: int(&r, "last_activity_ms"),
                    last_at_ms: int(&r, "last_at_ms"),
                };
                (snap.total(rules, now).milli(), snap.tier(rules, now).to_owned())
            }
            _ => (stored, r.get("tier").and_then(Value::as_str).unwrap_or_default().to_owned()),
        };
        if tier.as_ref().is_some_and(|t| *t != current_tier) {
            continue;
        }
        let drivers = r.get("drivers").and_then(Value::as_str).and_then(|t| serde_json::from_str::<Value>(t).ok());
        leads.push((
            milli,
            json!({
                "visitor_id": r.get("visitor_id"),
                "user_id": r.get("user_id"),
                "score": milli as f64 / 1000.0,
                "tier": current_tier,
                "stage": r.get("stage").cloned().unwrap_or(Value::Null),
                "score_at_last_event": stored as f64 / 1000.0,
                "rules_version": r.get("rules_version"),
                "first_seen": r.get("first_seen"),
                "last_seen": r.get("last_seen"),
                "events": r.get("events"),
                "drivers": drivers.unwrap_or_else(|| json!([])),
            }),
        ));
    }
    // Stable: equal scores keep the stored order (score, then visitor id).
    leads.sort_by_key(|l| std::cmp::Reverse(l.0));
    leads.truncate(n);
    let leads: Vec<Value> = leads.into_iter().map(|(_, v)| v).collect();
    if q.csv {
        let cols = [
            "visitor_id",
            "user_id",
            "score",
            "tier",
            "stage",
            "score_at_last_event",
            "rules_version",
            "first_seen",
            "last_seen",
            "events",
            "drivers",
        ];
        let out: Vec<Vec<Value>> =
            leads.iter().map(|r| cols.iter().map(|c| r.get(*c).cloned().unwrap_or(Value::Null)).collect()).collect();
        return csv_response(&cols, &out);
    }
    // Tier ids, lowest first: what a reader without the settings filters by.
    let tiers: Vec<&str> = rules.tier_ids().collect();
    let stages: Vec<&str> = rules.stages().iter().map(|s| s.id()).collect();
    Ok(Response::from_json(&json!({
        "site": q.site.id, "tier": tier, "tiers": tiers, "stage": stage, "stages": stages, "at": now, "leads": leads
    }))?)
}

/// How many staged visitors a stages report reads (most recently seen first).
const STAGES_SCAN: i64 = 100_000;

/// `GET /v1/reports/stages?site=&from=&to=`: the stage funnel, in the rules'
/// stage order — per stage, the visitors who entered it in the period, those
/// in it now, and, from the stage before it, how many of those who entered
/// that one in the period have moved on, the rate and the median time it
/// took (the core's `scoring::stage_funnel` over each lead's stage history).
pub async fn stages(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(stages_inner(&req, &ctx.env).await)
}

async fn stages_inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Aggregates).await?;
    let rules = q.site.config.site.rules();
    #[derive(Deserialize)]
    struct Row {
        stages: String,
    }
    #[derive(Deserialize)]
    struct Entry {
        to: String,
        at: i64,
    }
    let rows: Vec<Row> = env
        .d1("DB")?
        .prepare(
            "SELECT stages FROM visitors WHERE site_id = ?1 AND stages IS NOT NULL \
             ORDER BY last_seen DESC LIMIT ?2",
        )
        .bind(&[q.site.id.as_str().into(), js_num(STAGES_SCAN)])?
        .all()
        .await?
        .results()?;
    let truncated = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= STAGES_SCAN;
    let mut unreadable = 0u64;
    let histories: Vec<Vec<(String, i64)>> = rows
        .iter()
        .filter_map(|r| match serde_json::from_str::<Vec<Entry>>(&r.stages) {
            Ok(list) => Some(list.into_iter().map(|e| (e.to, e.at)).collect()),
            Err(_) => {
                unreadable += 1;
                None
            }
        })
        .collect();
    if unreadable > 0 {
        worker::console_error!("stages report {}: {unreadable} unreadable stage histories skipped", q.site.id);
    }
    let funnel = microfunnel_core::scoring::stage_funnel(rules, histories.iter().map(Vec::as_slice), q.from, q.to);
    if q.csv {
        let rows: Vec<Vec<Value>> = funnel
            .iter()
            .map(|r| {
                let p = r.from_previous.as_ref();
                vec![
                    json!(r.stage),
                    json!(r.label),
                    json!(r.entered),
                    json!(r.current),
                    p.map_or(Value::Null, |p| json!(p.stage)),
                    p.map_or(Value::Null, |p| json!(p.moved)),
                    p.and_then(|p| p.rate).map_or(Value::Null, |r| json!(r)),
                    p.and_then(|p| p.median_ms).map_or(Value::Null, |m| json!(m)),
                ]
            })
            .collect();
        let header =
            ["stage", "label", "entered", "current", "previous_stage", "moved_from_previous", "rate", "median_ms"];
        return csv_response(&header, &rows);
    }
    Ok(Response::from_json(&json!({
        "site": q.site.id,
        "from": q.from,
        "to": q.to,
        "stages": funnel,
        "truncated": truncated,
    }))?)
}
