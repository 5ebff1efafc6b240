//! The daily cron: each site's `retention_days` reaches every place data
//! lives — the D1 tables keyed by visitor (raw events, sessions,
//! conversions and their credits, customers, visitors who went quiet and
//! their identity links) and the visitors' Durable Objects (their ledger, journey
//! and sessions; an object left empty deletes itself). Delivery-log rows go
//! after 30 days.
//!
//! Work is bounded: each statement deletes at most `BATCH` rows and is
//! repeated at most `ROUNDS` times, and at most `OBJECTS` visitor objects are
//! swept per run (the oldest first, so a backlog drains over the next days).
//! What is left is reported (`more: true`) and logged.

use crate::errors::ApiResult;
use crate::sites::{js_num, now_ms};
use crate::visitor;
use serde::Deserialize;
use serde_json::{Value, json};
use worker::Env;

const DAY_MS: i64 = 86_400_000;
const BATCH: i64 = 5_000;
const ROUNDS: usize = 20;
const OBJECTS: i64 = 200;
const ERASURES: i64 = 50;

/// Each statement deletes rows past their site's retention (`?1` = now,
/// `?2` = a day in ms, `?3` = the batch size), oldest dependent rows first.
const PURGES: &[(&str, &str)] = &[
    (
        "events",
        "DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM events e JOIN sites s ON s.id = e.site_id \
         WHERE e.received_at < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    (
        "sessions",
        "DELETE FROM sessions WHERE rowid IN (SELECT x.rowid FROM sessions x JOIN sites s ON s.id = x.site_id \
         WHERE x.ended_at < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    (
        "credits",
        "DELETE FROM credits WHERE rowid IN (SELECT c.rowid FROM credits c JOIN conversions v \
         ON v.site_id = c.site_id AND v.message_id = c.message_id JOIN sites s ON s.id = v.site_id \
         WHERE v.ts < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    (
        "conversions",
        "DELETE FROM conversions WHERE rowid IN (SELECT v.rowid FROM conversions v JOIN sites s ON s.id = v.site_id \
         WHERE v.ts < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    // A customer whose last purchase is past the retention (their
    // conversions go above; the next refit would drop them too).
    (
        "customers",
        "DELETE FROM customers WHERE rowid IN (SELECT c.rowid FROM customers c JOIN sites s ON s.id = c.site_id \
         WHERE c.last_ts < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    (
        "identities",
        "DELETE FROM identities WHERE rowid IN (SELECT i.rowid FROM identities i JOIN sites s ON s.id = i.site_id \
         JOIN visitors v ON v.site_id = i.site_id AND v.visitor_id = i.visitor_id \
         WHERE v.last_seen < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    (
        "visitors",
        "DELETE FROM visitors WHERE rowid IN (SELECT v.rowid FROM visitors v JOIN sites s ON s.id = v.site_id \
         WHERE v.last_seen < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    // Links whose visitor row is gone (claims of visitors swept above, or
    // never scored) once they are themselves older than the retention.
    (
        "identities_orphaned",
        "DELETE FROM identities WHERE rowid IN (SELECT i.rowid FROM identities i JOIN sites s ON s.id = i.site_id \
         WHERE i.created_at < ?1 - s.retention_days * ?2 AND NOT EXISTS (SELECT 1 FROM visitors v \
         WHERE v.site_id = i.site_id AND v.visitor_id = i.visitor_id) LIMIT ?3)",
    ),
    // At least a year, whatever the site's retention: an owner who lowers
    // it must not erase the record of what they did.
    (
        "audit_log",
        "DELETE FROM audit_log WHERE id IN (SELECT a.id FROM audit_log a JOIN sites s ON s.id = a.site_id \
         WHERE a.at < ?1 - MAX(s.retention_days, 365) * ?2 LIMIT ?3)",
    ),
    // Completed erasure records (counts of nothing personal), kept like the
    // audit log.
    (
        "erasure_records",
        "DELETE FROM erasures WHERE rowid IN (SELECT e.rowid FROM erasures e JOIN sites s ON s.id = e.site_id \
         WHERE e.completed_at < ?1 - MAX(s.retention_days, 365) * ?2 LIMIT ?3)",
    ),
    // Credentials that stopped working longer than the retention ago.
    (
        "site_tokens",
        "DELETE FROM site_tokens WHERE rowid IN (SELECT t.rowid FROM site_tokens t JOIN sites s ON s.id = t.site_id \
         WHERE COALESCE(t.revoked_at, t.expires_at) < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    (
        "shares",
        "DELETE FROM shares WHERE rowid IN (SELECT t.rowid FROM shares t JOIN sites s ON s.id = t.site_id \
         WHERE COALESCE(t.revoked_at, t.expires_at) < ?1 - s.retention_days * ?2 LIMIT ?3)",
    ),
    (
        "rate_limits",
        "DELETE FROM rate_limits WHERE rowid IN (SELECT rowid FROM rate_limits WHERE window_end < ?1 LIMIT ?3)",
    ),
    (
        "webhook_deliveries",
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE at < ?1 - 30 * ?2 LIMIT ?3)",
    ),
];

#[derive(Deserialize)]
struct Due {
    site_id: String,
    visitor_id: String,
    cutoff: f64,
}

pub async fn purge(env: &Env) -> ApiResult<Value> {
    let now = now_ms();
    let db = env.d1("DB")?;
    let mut report = serde_json::Map::new();
    let mut more = false;
    // Objects first, while the visitors rows still say which hold old data:
    // a visitor whose first event is past the retention.
    let due: Vec<Due> = db
        .prepare(
            "SELECT v.site_id AS site_id, v.visitor_id AS visitor_id, ?1 - s.retention_days * ?2 AS cutoff \
             FROM visitors v JOIN sites s ON s.id = v.site_id WHERE v.first_seen < ?1 - s.retention_days * ?2 \
             ORDER BY v.first_seen LIMIT ?3",
        )
        .bind(&[js_num(now), js_num(DAY_MS), js_num(OBJECTS)])?
        .all()
        .await?
        .results()?;
    more |= due.len() as i64 >= OBJECTS;
    let (mut swept, mut dropped) = (0, 0);
    for d in &due {
        let cutoff = d.cutoff as i64;
        let reply = visitor::sweep(env, &d.site_id, &d.visitor_id, cutoff).await?;
        swept += 1;
        let ids = [d.site_id.as_str().into(), d.visitor_id.as_str().into()];
        if reply.dropped {
            dropped += 1;
            // Nothing is left of this visitor: its row and links go now.
            db.batch(vec![
                db.prepare("DELETE FROM identities WHERE site_id = ?1 AND visitor_id = ?2").bind(&ids)?,
                db.prepare("DELETE FROM visitors WHERE site_id = ?1 AND visitor_id = ?2").bind(&ids)?,
            ])
            .await?;
        } else {
            db.prepare("UPDATE visitors SET first_seen = MAX(first_seen, ?3) WHERE site_id = ?1 AND visitor_id = ?2")
                .bind(&[ids[0].clone(), ids[1].clone(), js_num(reply.oldest.unwrap_or(cutoff).max(cutoff))])?
                .run()
                .await?;
        }
    }
    report.insert("visitor_objects".into(), json!({"swept": swept, "dropped": dropped}));
    // Erasures a failed request left half done.
    let (completed, failing) = crate::subjects::complete_pending(env, ERASURES).await?;
    more |= failing > 0;
    report.insert("erasures".into(), json!({"completed": completed, "failing": failing}));
    for (name, sql) in PURGES {
        let mut total = 0;
        for round in 0..ROUNDS {
            let result = db.prepare(*sql).bind(&[js_num(now), js_num(DAY_MS), js_num(BATCH)])?.run().await?;
            let n = result.meta()?.and_then(|m| m.changes).unwrap_or(0);
            total += n;
            if (n as i64) < BATCH {
                break;
            }
            more |= round + 1 == ROUNDS;
        }
        report.insert((*name).into(), json!(total));
    }
    // A plain-text secret from before derivation (`secrets`), once neither
    // direction uses it.
    let cleared = db
        .prepare(
            "UPDATE sites SET signing_secret = '' WHERE signing_secret != '' \
             AND (signing_version >= 2 OR (signing_version = 1 AND signing_previous_until <= ?1)) \
             AND (webhook_version >= 2 OR (webhook_version = 1 AND webhook_previous_until <= ?1))",
        )
        .bind(&[js_num(now)])?
        .run()
        .await?;
    report.insert("legacy_secrets".into(), json!(cleared.meta()?.and_then(|m| m.changes).unwrap_or(0)));
    report.insert("more".into(), json!(more));
    if more {
        worker::console_warn!("cron purge: more rows past retention than one run removes; the next runs continue");
    }
    Ok(Value::Object(report))
}
