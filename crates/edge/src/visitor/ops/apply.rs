//! New events: [`admit`] them to the ledger (cut down to any withdrawal the
//! object knows of), [`Visitor::step`] every state change they cause (score,
//! journey, sessions, conversions), then [`Visitor::publish`] the results (D1
//! rows, webhooks, the alarm).

use super::super::object::{Scoring, Visitor, now_ts};
use super::super::projection;
use super::super::protocol::{AppliedEvent, ApplyReply, ApplyRequest};
use super::super::store::{MetaKey, Store, Withdrawal, stored_event};
use crate::conversions::{self, Pending};
use crate::errors::{ApiError, ApiResult};
use crate::ingest::Source;
use crate::webhooks;
use microfunnel_core::attribution::Touch;
use microfunnel_core::attribution::{self as timeline, Kind, SessionStep, TouchStep};
use microfunnel_core::conversion::{Definition, Definitions};
use microfunnel_core::scoring::{Score, Scorer, Snapshot};
use microfunnel_core::{Event, EventType, Timestamp, consent};
use serde_json::Value;

/// Events one visitor object's ledger holds by default (`limits.ledger_events`).
pub const LEDGER_CAP: i64 = 5_000;
/// Payload bytes one ledger holds.
pub const LEDGER_MAX_BYTES: i64 = 4 * 1024 * 1024;

/// What [`Visitor::step`] changed, for [`Visitor::publish`].
struct Stepped {
    tier_changes: Vec<Value>,
    stage_changes: Vec<Value>,
    pending: Vec<Pending>,
    touched_sessions: Vec<String>,
    score: Score,
    snapshot: Snapshot,
    events_total: i64,
}

impl Visitor {
    pub(in super::super) async fn apply(&self, body: ApplyRequest) -> ApiResult<ApplyReply> {
        // Schema ensured and forward checked by `fetch`.
        let store = self.store();
        let now = now_ts()?;
        let rules = self.scoring(&body.rules, &body.conversions)?;
        store.remember(&body.site, &body.visitor)?;
        // The scorer must exist before new rows land, or a rebuild would
        // count them and the incremental step would count them again.
        self.with_scorer(&rules, |_| ())?;
        let fresh = admit(&store, &store.withdrawals()?, &store.receipts()?, &body.events, now)?;
        let stepped = self.step(&store, &rules, &body, &fresh, now)?;
        self.cap_ledger(&store, &rules, body.ledger_cap.unwrap_or(LEDGER_CAP))?;
        self.publish(&store, &body, fresh, stepped, now).await
    }

    /// Keeps the ledger within `cap` events and [`LEDGER_MAX_BYTES`]: past
    /// either, its oldest rows go down to four fifths of both, folded first
    /// into the carry the scorer resumes from (the score is unchanged; the
    /// events stay in D1 under the site's retention). Synchronous, like `step`.
    fn cap_ledger(&self, store: &Store, rules: &Scoring, cap: i64) -> ApiResult<()> {
        let (count, bytes) = store.ledger_size()?;
        if count <= cap && bytes <= LEDGER_MAX_BYTES {
            return Ok(());
        }
        let (keep_count, keep_bytes) = (cap * 4 / 5, LEDGER_MAX_BYTES * 4 / 5);
        let mut carried = Scorer::resume(rules.rules.clone(), rules.stages.clone(), store.carry()?);
        let (mut left, mut left_bytes, mut dropped) = (count, bytes, 0);
        for (row, len) in store.oldest_ledger(count.saturating_sub(1))? {
            if left <= keep_count && left_bytes <= keep_bytes {
                break;
            }
            match row.event() {
                Ok(e) => {
                    carried.apply(&e);
                }
                Err(e) => worker::console_error!("visitor ledger row {} unreadable, dropped: {e}", row.message_id),
            }
            store.delete_ledger(&row.message_id)?;
            (left, left_bytes, dropped) = (left - 1, left_bytes - len, dropped + 1);
        }
        let carry = carried.carry().to_json().map_err(|e| ApiError::new(500, "internal", e))?;
        store.set_meta(MetaKey::Carry, &carry)?;
        self.drop_scorer();
        worker::console_log!("visitor ledger capped: {dropped} oldest events carried, {left} kept");
        Ok(())
    }

    /// Everything that changes this object's state for the new events, in
    /// their order. Synchronous on purpose: concurrent requests for the
    /// visitor cannot interleave inside it.
    fn step(
        &self,
        store: &Store,
        rules: &Scoring,
        body: &ApplyRequest,
        fresh: &[(Event, i64, Source)],
        now: Timestamp,
    ) -> ApiResult<Stepped> {
        let mut tier_changes = Vec::new();
        let mut stage_changes = Vec::new();
        let mut pending = Vec::new();
        let mut touched_sessions: Vec<String> = Vec::new();
        for (event, received_at, source) in fresh {
            let (tier, stages) = self.with_scorer(rules, |s| s.apply_staged(event))?;
            if let Some(change) = tier {
                tier_changes.push(serde_json::to_value(change)?);
            }
            for change in stages {
                stage_changes.push(serde_json::to_value(change)?);
            }
            let timeout = rules.rules.session_timeout_ms();
            let (session, step) = session_step(store, event, timeout)?;
            journey_step(store, event, step)?;
            if !touched_sessions.contains(&session) {
                touched_sessions.push(session);
            }
            if let Some(def) = conversion_def(&body.conversions, event) {
                let open: Vec<Touch> = store
                    .touches()?
                    .into_iter()
                    .map(|t| Touch::new(t.channel, Timestamp::from_millis(t.ts as i64)))
                    .collect();
                let past = store.converted()?;
                let (p, credited_on, closes) =
                    conversions::compute(&body.visitor, event, def, &open, &past, *received_at, *source);
                match (p.recorded(credited_on), p.adjustment()) {
                    (Some(r), _) => store.record_conversion(&r)?,
                    (None, Some((original, value))) => store.adjust_conversion(original, value)?,
                    (None, None) => {}
                }
                if closes {
                    store.clear_journey()?;
                    store.close_journey_at(event.timestamp.millis())?;
                }
                pending.push(p);
            }
        }
        let (score, snapshot) = self.with_scorer(rules, |s| (s.score(now), s.snapshot()))?;
        let events_total = store.ledger_count()?;
        Ok(Stepped { tier_changes, stage_changes, pending, touched_sessions, score, snapshot, events_total })
    }

    /// The step's results outside the object's state: conversions and the
    /// visitor's rows in D1 (idempotent), webhooks queued, the alarm set.
    async fn publish(
        &self,
        store: &Store,
        body: &ApplyRequest,
        fresh: Vec<(Event, i64, Source)>,
        stepped: Stepped,
        now: Timestamp,
    ) -> ApiResult<ApplyReply> {
        let Stepped { tier_changes, stage_changes, pending, touched_sessions, score, snapshot, events_total } = stepped;
        let mut converted = Vec::new();
        for p in pending {
            converted.push(conversions::store(&self.env, &body.site, p).await?);
        }
        if !body.webhooks.is_empty() && (!tier_changes.is_empty() || !stage_changes.is_empty() || !converted.is_empty())
        {
            let first = fresh.first().map(|(e, _, _)| e.message_id.to_string()).unwrap_or_default();
            for (i, change) in tier_changes.iter().enumerate() {
                let id = format!("{first}:{i}");
                let note = webhooks::body("tier_changed", &body.site, &body.visitor, change.clone());
                webhooks::enqueue(store.sql(), &body.webhooks, &id, "tier_changed", &note)?;
            }
            // A stage is entered once per visitor: its id is the delivery's.
            for change in &stage_changes {
                let to = change.get("to").and_then(Value::as_str).unwrap_or_default();
                let id = format!("stage:{}:{to}", body.visitor);
                let note = webhooks::body("stage_changed", &body.site, &body.visitor, change.clone());
                webhooks::enqueue(store.sql(), &body.webhooks, &id, "stage_changed", &note)?;
            }
            for c in &converted {
                let id = c.get("message_id").and_then(Value::as_str).unwrap_or_default();
                let note = webhooks::body("conversion", &body.site, &body.visitor, c.clone());
                webhooks::enqueue(store.sql(), &body.webhooks, id, "conversion", &note)?;
            }
        }
        if let Some(t) = body.journey_timeout_ms {
            store.set_journey_expiry(now.millis().saturating_add(t))?;
        }
        self.schedule().await?;
        let sessions = store.sessions(&touched_sessions)?;
        projection::save_summary(&self.env, &body.site, &body.visitor, &score, &snapshot, events_total, &fresh).await?;
        projection::save_sessions(&self.env, &body.site, &body.visitor, &sessions).await?;
        Ok(ApplyReply {
            visitor: body.visitor.clone(),
            score: score.score.to_json(),
            tier: score.tier,
            new: fresh.len(),
            tier_changes,
            conversions: converted,
        })
    }
}

/// Adds the events the ledger does not have yet, each cut down to the
/// withdrawals made after it was captured (by the core) or left out, and a
/// browser's to its visitor's latest consent receipt before it: a stamp
/// wider than the last recorded choice needs a new grant first (the stamp
/// is what the page wrote; the receipt is what the visitor chose). Answers
/// the new ones with when they were received and who sent them, in scoring
/// order.
fn admit(
    store: &Store,
    withdrawals: &[Withdrawal],
    receipts: &[Withdrawal],
    events: &[AppliedEvent],
    now: Timestamp,
) -> ApiResult<Vec<(Event, i64, Source)>> {
    let mut fresh: Vec<(Event, i64, Source)> = Vec::new();
    for item in events {
        let received_at = item.received_at.unwrap_or_else(|| now.millis());
        // Only what the Worker authenticated is a server's.
        let source = if item.source.as_deref() == Some("server") { Source::Server } else { Source::Browser };
        let Ok(event) = stored_event(&item.payload, item.channel.as_deref()) else {
            return Err(ApiError::bad_request("invalid_apply", "an event payload does not parse"));
        };
        let mut later: Vec<&Withdrawal> = withdrawals.iter().filter(|w| w.reaches(&event)).collect();
        if source == Source::Browser
            && let Some(choice) = receipts
                .iter()
                .filter(|r| r.at <= event.timestamp.millis() && r.device.is_some() && r.covers(&event))
                .max_by_key(|r| r.at)
        {
            later.push(choice);
        }
        let (event, payload, channel) = if later.is_empty() {
            (event, item.payload.clone(), item.channel.clone())
        } else {
            let mut cut = Some(event);
            for w in later {
                cut = cut.and_then(|e| consent::withdraw(e, &w.consent, &w.policy).event);
            }
            let Some(e) = cut else { continue };
            let payload = serde_json::to_string(&e)?;
            let channel = e.channel.as_ref().map(|c| c.name().to_owned());
            (e, payload, channel)
        };
        if store.insert_ledger(&event, received_at, channel, &payload)? {
            fresh.push((event, received_at, source));
        }
    }
    fresh.sort_by(|(a, _, _), (b, _, _)| (a.timestamp, &a.message_id).cmp(&(b.timestamp, &b.message_id)));
    Ok(fresh)
}

fn conversion_def<'a>(defs: &'a Definitions, e: &Event) -> Option<&'a Definition> {
    if e.kind != EventType::Track {
        return None;
    }
    defs.find(e.event.as_deref()?)
}

/// Journey: the core's timeline says whether the event is a new touch of
/// the open journey (`attribution::touch_step`).
fn journey_step(store: &Store, event: &Event, session: SessionStep) -> ApiResult<()> {
    let kind = if event.context.channel.is_some() {
        Kind::Declared
    } else if event.kind.is_view() {
        Kind::Page
    } else {
        return Ok(());
    };
    let channel = event.channel.as_ref().map(|c| c.name());
    let closed = store.closed_at()?.and_then(Timestamp::from_millis);
    let last = store.last_touch()?;
    let step = timeline::touch_step(
        kind,
        channel,
        event.timestamp,
        last.as_ref().map(|t| t.channel.as_str()),
        session,
        closed,
    );
    if let (TouchStep::Touch, Some(channel)) = (step, channel) {
        store.insert_touch(&event.message_id.to_string(), event.timestamp.millis(), channel)?;
    }
    Ok(())
}

/// Sessions: the core's timeline says whether the event extends the latest
/// session that started before it (`attribution::session_step`, by the rules'
/// session timeout); answers the session's id and the step.
fn session_step(store: &Store, event: &Event, timeout_ms: i64) -> ApiResult<(String, SessionStep)> {
    let ts = event.timestamp.millis();
    let before = store.session_before(ts)?;
    let end = before.as_ref().and_then(|s| Timestamp::from_millis(s.ended_at as i64));
    let step = timeline::session_step(event.timestamp, end, timeout_ms);
    if let (SessionStep::Extends, Some(s)) = (step, before) {
        store.extend_session(&s.session_id, ts)?;
        return Ok((s.session_id, step));
    }
    let id = event.message_id.to_string();
    let channel = event.channel.as_ref().map(|c| c.name().to_owned());
    store.start_session(&id, ts, channel, event.context.page.path.clone())?;
    Ok((id, SessionStep::Starts))
}
