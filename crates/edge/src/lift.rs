//! `GET /v1/reports/lift?site=&from=&to=&conversion=`: does switching CTAs by
//! tier earn? Visitors exposed in the window (an event with a CTA holdout
//! arm, which the collector stamps) per arm, those of them who converted
//! after their first exposure, and the core's lift with 95 % intervals and an
//! always-valid p-value over daily looks — overall and per tier — beside the
//! tier calibration (conversion rate by the visitors' current tier, all
//! visitors seen in the window, whether or not a test runs). Aggregates only.

use crate::access::Permission;
use crate::errors::{ApiError, ApiResult, reply};
use crate::reports::query;
use crate::sites::js_num;
use microfunnel_core::experiment::{Arm, Counts, DEFAULT_TAU2, Lift, Snapshot, always_valid_p, calibration, lift};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use worker::{Env, Request, Response, Result, RouteContext};

/// The most exposed visitors (and visitor tiers) one report reads: past it,
/// the report says `truncated` (bounded work per request).
const SCAN: i64 = 50_000;
/// Looks are daily (UTC); a window of more days than this is refused.
const MAX_DAYS: i64 = 400;
const DAY_MS: i64 = 86_400_000;

pub async fn get(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(inner(&req, &ctx.env).await)
}

#[derive(Deserialize)]
struct Exposure {
    visitor_id: String,
    arm: String,
    first_ts: f64,
    tier: Option<String>,
}

#[derive(Deserialize)]
struct Converted {
    visitor_id: String,
    ts: f64,
}

#[derive(Deserialize)]
struct TierRow {
    tier: String,
    visitors: f64,
    converted: f64,
}

/// One visitor in the test: arm, first exposure, tier, first conversion after it.
struct Subject {
    arm: Arm,
    exposed: i64,
    tier: String,
    converted: Option<i64>,
}

async fn inner(req: &Request, env: &Env) -> ApiResult<Response> {
    let q = query(req, env, Permission::Aggregates).await?;
    let site = q.site.id.as_str();
    let conversion = q.param("conversion").map(str::to_owned);
    if let Some(name) = &conversion
        && q.site.config.site.conversions().find(name).is_none()
    {
        return Err(ApiError::bad_request("invalid_query", "conversion: not one of the site's conversions"));
    }
    let db = env.d1("DB")?;
    let name = conversion.as_deref().map_or(worker::wasm_bindgen::JsValue::NULL, Into::into);
    let exposures: Vec<Exposure> = db
        .prepare(
            "SELECT e.visitor_id AS visitor_id, e.cta_arm AS arm, MIN(e.ts) AS first_ts, MAX(v.tier) AS tier \
             FROM events e LEFT JOIN visitors v ON v.site_id = e.site_id AND v.visitor_id = e.visitor_id \
             WHERE e.site_id = ?1 AND e.cta_arm IS NOT NULL AND e.visitor_id IS NOT NULL \
               AND e.ts >= ?2 AND e.ts <= ?3 \
             GROUP BY e.visitor_id, e.cta_arm ORDER BY e.visitor_id LIMIT ?4",
        )
        .bind(&[site.into(), js_num(q.from), js_num(q.to), js_num(SCAN)])?
        .all()
        .await?
        .results()?;
    let truncated = i64::try_from(exposures.len()).unwrap_or(i64::MAX) >= SCAN;
    let conversions: Vec<Converted> = db
        .prepare(
            "SELECT visitor_id, ts FROM conversions WHERE site_id = ?1 AND ts >= ?2 AND ts <= ?3 \
               AND (?4 IS NULL OR name = ?4) \
               AND visitor_id IN (SELECT visitor_id FROM events WHERE site_id = ?1 AND cta_arm IS NOT NULL \
                                  AND ts >= ?2 AND ts <= ?3) \
             ORDER BY ts",
        )
        .bind(&[site.into(), js_num(q.from), js_num(q.to), name.clone()])?
        .all()
        .await?
        .results()?;

    // A visitor seen in both arms (the percent changed, or two devices joined
    // into one profile) saw both treatments: counted apart, in neither arm.
    let mut subjects: BTreeMap<String, Subject> = BTreeMap::new();
    let mut both = std::collections::BTreeSet::new();
    for e in exposures {
        let Some(arm) = Arm::parse(&e.arm) else { continue };
        if subjects.contains_key(&e.visitor_id) {
            both.insert(e.visitor_id.clone());
            continue;
        }
        let tier = e.tier.filter(|t| !t.is_empty()).unwrap_or_else(|| "unscored".into());
        subjects.insert(e.visitor_id, Subject { arm, exposed: e.first_ts as i64, tier, converted: None });
    }
    for v in &both {
        subjects.remove(v);
    }
    for c in conversions {
        if let Some(s) = subjects.get_mut(&c.visitor_id) {
            // Only a conversion after the visitor first saw the CTAs counts.
            let ts = c.ts as i64;
            if ts >= s.exposed && s.converted.is_none_or(|t| ts < t) {
                s.converted = Some(ts);
            }
        }
    }

    let rules = q.site.config.site.rules();
    let mut tier_ids: Vec<String> = rules.tier_ids().map(str::to_owned).collect();
    tier_ids.push("unscored".into());
    let counts = |pick: &dyn Fn(&Subject) -> bool, arm: Arm, until: i64| -> ApiResult<Counts> {
        let (mut n, mut x) = (0u64, 0u64);
        for s in subjects.values().filter(|s| s.arm == arm && pick(s) && s.exposed <= until) {
            n += 1;
            x += u64::from(s.converted.is_some_and(|t| t <= until));
        }
        Counts::new("counts", n, x).map_err(internal)
    };
    let pair = |pick: &dyn Fn(&Subject) -> bool| -> ApiResult<Lift> {
        Ok(lift(counts(pick, Arm::Treated, i64::MAX)?, counts(pick, Arm::Holdout, i64::MAX)?))
    };
    let overall = pair(&|_| true)?;

    // Daily cumulative looks from the first exposure to the window's end (or
    // the last event seen, when the window is open-ended).
    let first = subjects.values().map(|s| s.exposed).min();
    let last = subjects.values().map(|s| s.converted.unwrap_or(s.exposed).max(s.exposed)).max();
    let mut snapshots = Vec::new();
    if let (Some(first), Some(last)) = (first, last) {
        let end = q.to.min(last);
        let (d0, d1) = (first.div_euclid(DAY_MS), end.div_euclid(DAY_MS));
        if d1 - d0 >= MAX_DAYS {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("from: the test's looks span more than {MAX_DAYS} days; narrow from/to"),
            ));
        }
        for day in d0..=d1 {
            let until = (day + 1) * DAY_MS - 1;
            snapshots.push(Snapshot {
                treated: counts(&|_| true, Arm::Treated, until)?,
                holdout: counts(&|_| true, Arm::Holdout, until)?,
            });
        }
    }
    let sequential = always_valid_p(&snapshots, DEFAULT_TAU2).map_err(internal)?;

    let mut tiers = Vec::new();
    for t in &tier_ids {
        if !subjects.values().any(|s| &s.tier == t) {
            continue;
        }
        let l = pair(&|s: &Subject| &s.tier == t)?;
        tiers.push(json!({"tier": t, "lift": l}));
    }

    // Calibration: every visitor seen in the window by current tier.
    let rows: Vec<TierRow> = db
        .prepare(
            "SELECT v.tier AS tier, COUNT(*) AS visitors, COUNT(c.visitor_id) AS converted FROM visitors v \
             LEFT JOIN (SELECT DISTINCT visitor_id FROM conversions WHERE site_id = ?1 AND ts >= ?2 AND ts <= ?3 \
                        AND (?4 IS NULL OR name = ?4)) c ON c.visitor_id = v.visitor_id \
             WHERE v.site_id = ?1 AND v.last_seen >= ?2 AND v.first_seen <= ?3 AND v.tier != '' \
             GROUP BY v.tier",
        )
        .bind(&[site.into(), js_num(q.from), js_num(q.to), name])?
        .all()
        .await?
        .results()?;
    let mut by_tier = Vec::new();
    for id in rules.tier_ids() {
        let (n, x) = rows.iter().find(|r| r.tier == id).map_or((0, 0), |r| (r.visitors as u64, r.converted as u64));
        by_tier.push((id, Counts::new("calibration", n, x.min(n)).map_err(internal)?));
    }
    let calibration = calibration(&by_tier).map_err(internal)?;

    let body = json!({
        "site": site,
        "holdout_percent": q.site.config.site.cta().holdout().get(),
        "conversion": conversion,
        "overall": overall,
        "p_value": sequential.p_value,
        "looks": sequential.looks.len(),
        "tau2": DEFAULT_TAU2,
        "tiers": tiers,
        "calibration": calibration,
        "excluded_in_both_arms": both.len(),
        "truncated": truncated,
    });
    Ok(Response::from_json(&body)?)
}

/// A count the core refused although every one was made here: a bug, logged.
fn internal(e: impl std::fmt::Display) -> ApiError {
    worker::console_error!("lift report: {e}");
    ApiError::new(500, "internal", "internal error")
}
