//! The Worker's side: one call per [`Call`], following a merged visitor's
//! forward ([`follow`]) and re-keying the D1 rows that follow it ([`rekey`]).

use super::protocol::{
    AppliedEvent, ApplyRequest, Call, EraseRequest, ExportRequest, HandoverReply, HandoverRequest, ImportRequest,
    Reply, RetireRequest, ScoreRequest, SweepReply, SweepRequest, WithdrawRequest,
};
use crate::errors::{ApiError, ApiResult};
use crate::schema::VISITOR_KEYED;
use crate::sites::Site;
use microfunnel_core::Timestamp;
use microfunnel_core::consent::ConsentStamp;
use serde_json::Value;
use worker::{Env, Request, RequestInit, wasm_bindgen::JsValue};

/// How many forwards a request follows (a visitor merged into one that was
/// merged in turn); more means a loop, answered as unavailable.
const MAX_HOPS: usize = 4;

fn unavailable() -> ApiError {
    ApiError::new(503, "unavailable", "the visitor store is unavailable; retry")
}

fn stub(env: &Env, site: &str, visitor: &str) -> ApiResult<worker::Stub> {
    let ns = env.durable_object("VISITOR")?;
    Ok(ns.id_from_name(&format!("{site}:{visitor}"))?.get_stub()?)
}

async fn call<C: Call>(env: &Env, site: &str, visitor: &str, msg: &C) -> ApiResult<Reply<C::Reply>> {
    let route = C::ROUTE;
    let mut init = RequestInit::new();
    init.with_method(route.method());
    if C::HAS_BODY {
        init.with_body(Some(JsValue::from_str(&serde_json::to_string(msg)?)));
    }
    let req = Request::new_with_init(&format!("https://visitor{}", route.path()), &init)?;
    let mut resp = stub(env, site, visitor)?.fetch_with_request(req).await?;
    let status = resp.status_code();
    if status >= 400 {
        let text = resp.text().await?;
        worker::console_error!("visitor object {}: {status} {text}", route.path());
        return Err(unavailable());
    }
    Ok(resp.json().await?)
}

/// The reply of a request that a forward does not concern (hand-over,
/// retire, export, erase): those never answer [`Reply::Moved`].
async fn call_here<C: Call>(env: &Env, site: &str, visitor: &str, msg: &C) -> ApiResult<C::Reply> {
    match call(env, site, visitor, msg).await? {
        Reply::Done(r) => Ok(r),
        Reply::Moved { to } => {
            worker::console_error!("visitor object {}: moved to {to}", C::ROUTE.path());
            Err(unavailable())
        }
    }
}

/// Calls the visitor's object and, when that object was merged into another
/// ([`Reply::Moved`]: a request that resolved the visitor just before the
/// merge), re-keys the D1 rows the request wrote under the old id and calls
/// the object it moved to. `msg(visitor)` builds the request for each
/// object. Answers the final object's reply and its visitor id.
async fn follow<C: Call>(
    env: &Env,
    site: &str,
    visitor: &str,
    msg: impl Fn(&str) -> C,
) -> ApiResult<(C::Reply, String)> {
    let mut current = visitor.to_owned();
    for _ in 0..MAX_HOPS {
        match call(env, site, &current, &msg(&current)).await? {
            Reply::Done(reply) => return Ok((reply, current)),
            Reply::Moved { to } if to != current => {
                rekey(env, site, &current, &to).await?;
                current = to;
            }
            Reply::Moved { .. } => break,
        }
    }
    worker::console_error!("visitor {visitor}: more than {MAX_HOPS} forwards");
    Err(unavailable())
}

fn journey_timeout_ms(site: &Site) -> i64 {
    site.config.site.attribution().journey_timeout_ms
}

/// Hands events (`{payload, channel, received_at}`, see [`AppliedEvent`]) to
/// the visitor's object; answers `{visitor, score, tier, new, tier_changes,
/// conversions}` (`visitor` is the one that took them, after any forward).
pub async fn apply(env: &Env, site: &Site, visitor: &str, events: Vec<Value>) -> ApiResult<Value> {
    let events =
        events.into_iter().map(serde_json::from_value::<AppliedEvent>).collect::<Result<Vec<_>, _>>().map_err(|e| {
            worker::console_error!("visitor {visitor}: an event to apply does not decode: {e}");
            unavailable()
        })?;
    let rules = site.config.site.rules().to_json();
    let (reply, _) = follow(env, &site.id, visitor, |v| ApplyRequest {
        site: site.id.clone(),
        visitor: v.to_owned(),
        rules: rules.clone(),
        conversions: site.config.site.conversions().clone(),
        webhooks: site.webhooks.clone(),
        journey_timeout_ms: Some(journey_timeout_ms(site)),
        events: events.clone(),
        ledger_cap: Some(site.config.limits.ledger_events),
    })
    .await?;
    Ok(serde_json::to_value(reply)?)
}

/// The visitor's score with its explanation.
pub async fn score(env: &Env, site: &Site, visitor: &str) -> ApiResult<Value> {
    let rules = site.config.site.rules().to_json();
    let (reply, _) = follow(env, &site.id, visitor, |_| ScoreRequest {
        rules: rules.clone(),
        conversions: site.config.site.conversions().clone(),
    })
    .await?;
    Ok(reply)
}

/// A withdrawal (see `withdrawals`): the object cuts its ledger down to it
/// — only `device`'s events when given, the whole profile otherwise — and
/// re-scores; answers `{visitor, score, tier, kept, removed}`.
pub async fn withdraw(
    env: &Env,
    site: &Site,
    visitor: &str,
    device: Option<&str>,
    from: &str,
    stamp: &ConsentStamp,
    at: Timestamp,
) -> ApiResult<Value> {
    let rules = site.config.site.rules().to_json();
    let policy = serde_json::to_value(site.config.site.minimise_policy())?;
    let (reply, _) = follow(env, &site.id, visitor, |v| WithdrawRequest {
        site: site.id.clone(),
        visitor: v.to_owned(),
        rules: rules.clone(),
        conversions: site.config.site.conversions().clone(),
        policy: policy.clone(),
        consent: stamp.to_json(),
        at: at.millis(),
        device: device.map(str::to_owned),
        from: Some(from.to_owned()),
    })
    .await?;
    Ok(serde_json::to_value(reply)?)
}

/// Cross-device merge (see `ingest::merge_devices`): `from`'s object hands
/// over its ledger, open journey and withdrawals and from then on forwards
/// to `into` (a request that resolved `from` just before the merge is
/// followed there, see [`follow`]); `into`'s object adds them, re-scores over
/// both devices and updates its row; `from` then drops its rows and keeps
/// only its forward; every D1 row keyed by `from` follows. Each step repeats
/// harmlessly, so a retried batch completes a merge that failed half-way.
/// Answers the visitor that holds both now: `into`, or where `into` itself
/// was merged in the meantime.
pub async fn merge(env: &Env, site: &Site, from: &str, into: &str) -> ApiResult<String> {
    let (mut from, mut into) = (from.to_owned(), into.to_owned());
    'hops: for _ in 0..MAX_HOPS {
        // The ledger comes over in pages; `into` rebuilds its score after the last.
        let mut page = 0u32;
        loop {
            let handed = call_here(env, &site.id, &from, &HandoverRequest { into: into.clone(), page }).await?;
            let (ledger, journey, withdrawals, closed_at, converted, carry, more) = match handed {
                HandoverReply::Retired { merged_into } => {
                    // Merged already: its rows are wherever it forwards to.
                    rekey(env, &site.id, &from, &into).await?;
                    match merged_into {
                        Some(other) if other != into => {
                            from = other;
                            continue 'hops;
                        }
                        _ => return Ok(into),
                    }
                }
                HandoverReply::Rows { ledger, journey, withdrawals, closed_at, converted, carry, more } => {
                    (ledger, journey, withdrawals, closed_at, converted, carry, more)
                }
            };
            let import = ImportRequest {
                site: site.id.clone(),
                visitor: into.clone(),
                rules: site.config.site.rules().to_json(),
                conversions: site.config.site.conversions().clone(),
                journey_timeout_ms: journey_timeout_ms(site),
                ledger,
                journey,
                withdrawals,
                converted,
                carry,
                last: !more,
                closed_at,
                from: from.clone(),
            };
            if let Reply::Moved { to } = call(env, &site.id, &into, &import).await? {
                // `into` was merged away itself: `from` joins where it went (the
                // next hand-over re-points `from`'s forward there).
                into = to;
                continue 'hops;
            }
            if !more {
                break;
            }
            page += 1;
        }
        call_here(env, &site.id, &from, &RetireRequest {}).await?;
        rekey(env, &site.id, &from, &into).await?;
        return Ok(into);
    }
    worker::console_error!("merge of {from}: more than {MAX_HOPS} forwards");
    Err(unavailable())
}

/// Every D1 row keyed by visitor `from` moves to `into`, in one batch (a
/// transaction); `into`'s row keeps the earlier first and later last visit.
async fn rekey(env: &Env, site: &str, from: &str, into: &str) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let ids = [site.into(), from.into(), into.into()];
    let mut statements = Vec::new();
    for table in VISITOR_KEYED {
        statements.push(
            db.prepare(format!("UPDATE {table} SET visitor_id = ?3 WHERE site_id = ?1 AND visitor_id = ?2"))
                .bind(&ids)?,
        );
    }
    statements.push(
        db.prepare(
            "UPDATE visitors SET \
             first_seen = MIN(first_seen, COALESCE((SELECT first_seen FROM visitors WHERE site_id = ?1 AND visitor_id = ?2), first_seen)), \
             last_seen = MAX(last_seen, COALESCE((SELECT last_seen FROM visitors WHERE site_id = ?1 AND visitor_id = ?2), last_seen)) \
             WHERE site_id = ?1 AND visitor_id = ?3",
        )
        .bind(&ids)?,
    );
    let gone = [site.into(), from.into()];
    statements.push(db.prepare("DELETE FROM visitors WHERE site_id = ?1 AND visitor_id = ?2").bind(&gone)?);
    // `from`'s customer row was judged on half the history: the next refit
    // judges the merged visitor on all of it.
    statements.push(db.prepare("DELETE FROM customers WHERE site_id = ?1 AND visitor_id = ?2").bind(&gone)?);
    db.batch(statements).await?;
    Ok(())
}

/// Retention in the visitor's object (see `cron`).
pub async fn sweep(env: &Env, site: &str, visitor: &str, before: i64) -> ApiResult<SweepReply> {
    call_here(env, site, visitor, &SweepRequest { before }).await
}

/// The object's state for a subject access request.
pub async fn export(env: &Env, site: &str, visitor: &str) -> ApiResult<Value> {
    Ok(serde_json::to_value(call_here(env, site, visitor, &ExportRequest {}).await?)?)
}

/// Erases the visitor's object and every object merged into it (their
/// forwards name it). Answers how many objects were erased.
pub async fn erase(env: &Env, site: &str, visitor: &str) -> ApiResult<usize> {
    let mut todo = vec![visitor.to_owned()];
    let mut done: Vec<String> = Vec::new();
    while let Some(v) = todo.pop() {
        if done.contains(&v) {
            continue;
        }
        let reply = call_here(env, site, &v, &EraseRequest {}).await?;
        todo.extend(reply.merged_from);
        done.push(v);
    }
    Ok(done.len())
}
