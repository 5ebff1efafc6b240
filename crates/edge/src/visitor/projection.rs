//! The D1 rows derived from a visitor's object (`visitors`, `sessions`),
//! written after its state changed. Every write is idempotent (an upsert
//! that keeps the later figures), so a retried request repeats it harmlessly.

use super::store::SessionRow;
use crate::errors::ApiResult;
use crate::ingest::Source;
use crate::sites::{js_num, now_ms};
use microfunnel_core::Event;
use microfunnel_core::scoring::{Score, Snapshot};
use serde_json::{Value, json};
use worker::Env;
use worker::wasm_bindgen::JsValue;

/// The visitor's row after new events: first and last visit from them, the
/// latest user id, the event count and the score.
pub async fn save_summary(
    env: &Env,
    site: &str,
    visitor: &str,
    score: &Score,
    snapshot: &Snapshot,
    events: i64,
    fresh: &[(Event, i64, Source)],
) -> ApiResult<()> {
    let now = now_ms();
    let first = fresh.iter().map(|(e, _, _)| e.timestamp.millis()).min().unwrap_or(now);
    let last = fresh.iter().map(|(e, _, _)| e.timestamp.millis()).max().unwrap_or(now);
    let user_id = fresh.iter().rev().find_map(|(e, _, _)| e.user_id.clone());
    env.d1("DB")?
        .prepare(
            "INSERT INTO visitors (site_id, visitor_id, user_id, first_seen, last_seen, events, score_milli, tier, \
             rules_version, drivers, engagement_milli, fit_milli, last_activity_ms, last_at_ms, stage, stages) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
             ON CONFLICT(site_id, visitor_id) \
             DO UPDATE SET user_id = COALESCE(excluded.user_id, visitors.user_id), \
             first_seen = MIN(visitors.first_seen, excluded.first_seen), \
             last_seen = MAX(visitors.last_seen, excluded.last_seen), events = excluded.events, \
             score_milli = excluded.score_milli, tier = excluded.tier, rules_version = excluded.rules_version, \
             drivers = excluded.drivers, engagement_milli = excluded.engagement_milli, fit_milli = excluded.fit_milli, \
             last_activity_ms = excluded.last_activity_ms, last_at_ms = excluded.last_at_ms, \
             stage = excluded.stage, stages = excluded.stages \
             WHERE excluded.events >= visitors.events",
        )
        .bind(
            &[
                site.into(),
                visitor.into(),
                user_id.as_deref().map_or(JsValue::NULL, Into::into),
                js_num(first),
                js_num(last),
                js_num(events),
            ]
            .into_iter()
            .chain(score_columns(score, snapshot)?)
            .collect::<Vec<_>>(),
        )?
        .run()
        .await?;
    Ok(())
}

/// The visitor's row after its ledger changed other than by new events (a
/// withdrawal, a merge): the new score, tier, drivers and event count.
pub async fn save_rescore(
    env: &Env,
    site: &str,
    visitor: &str,
    score: &Score,
    snapshot: &Snapshot,
    events: i64,
) -> ApiResult<()> {
    env.d1("DB")?
        .prepare(
            "UPDATE visitors SET events = ?3, score_milli = ?4, tier = ?5, rules_version = ?6, drivers = ?7, \
             engagement_milli = ?8, fit_milli = ?9, last_activity_ms = ?10, last_at_ms = ?11, stage = ?12, \
             stages = ?13 WHERE site_id = ?1 AND visitor_id = ?2",
        )
        .bind(
            &[site.into(), visitor.into(), js_num(events)]
                .into_iter()
                .chain(score_columns(score, snapshot)?)
                .collect::<Vec<_>>(),
        )?
        .run()
        .await?;
    Ok(())
}

/// The sessions a request touched, as the object now has them.
pub async fn save_sessions(env: &Env, site: &str, visitor: &str, sessions: &[SessionRow]) -> ApiResult<()> {
    if sessions.is_empty() {
        return Ok(());
    }
    let db = env.d1("DB")?;
    let mut statements = Vec::new();
    for s in sessions {
        statements.push(
            db.prepare(
                "INSERT INTO sessions (site_id, session_id, visitor_id, started_at, ended_at, events, channel, landing) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(site_id, session_id) DO UPDATE SET \
                 ended_at = MAX(sessions.ended_at, excluded.ended_at), events = MAX(sessions.events, excluded.events)",
            )
            .bind(&[
                site.into(),
                s.session_id.as_str().into(),
                visitor.into(),
                JsValue::from_f64(s.started_at),
                JsValue::from_f64(s.ended_at),
                JsValue::from_f64(s.events),
                s.channel.as_deref().map_or(JsValue::NULL, Into::into),
                s.landing.as_deref().map_or(JsValue::NULL, Into::into),
            ])?,
        );
    }
    db.batch(statements).await?;
    Ok(())
}

/// The `visitors` columns a score fills, in their statement order:
/// `score_milli, tier, rules_version, drivers, engagement_milli, fit_milli,
/// last_activity_ms, last_at_ms, stage, stages`. `drivers` are the core's
/// top ten (the full explanation stays in the object: `GET
/// /v1/subjects/{id}/score`); `stages` is the stage history as
/// `[{"to", "at" (ms)}]`, what the stages report reads.
fn score_columns(score: &Score, snapshot: &Snapshot) -> ApiResult<[JsValue; 10]> {
    let stages: Vec<Value> = score.stages.iter().map(|c| json!({"to": c.to, "at": c.at.millis()})).collect();
    Ok([
        js_num(score.score.milli()),
        score.tier.as_str().into(),
        score.rules_version.as_str().into(),
        serde_json::to_string(&score.top_drivers(10))?.into(),
        js_num(snapshot.engagement_milli),
        js_num(snapshot.fit_milli),
        snapshot.last_activity_ms.map_or(JsValue::NULL, js_num),
        snapshot.last_at_ms.map_or(JsValue::NULL, js_num),
        score.stage.as_deref().map_or(JsValue::NULL, Into::into),
        if stages.is_empty() { JsValue::NULL } else { serde_json::to_string(&stages)?.into() },
    ])
}
