//! `POST /v1/batch` (browser events) and the pipeline it shares with
//! `POST /v1/events` (server and offline events): validate every event with
//! the core, re-check and minimise it to its consent stamp, derive its
//! channel, store it exactly once (D1, keyed by `messageId`) and hand it to
//! the visitor's Durable Object, which scores it and keeps the journey.
//!
//! Per-event results: `{accepted, duplicates, rejected: [{index, error}],
//! consent: {stripped, dropped}, bots}`. A batch with nothing acceptable is a
//! 400 carrying the same `rejected` list; nothing of it is stored.

use crate::body;
use crate::cors;
use crate::errors::{ApiError, ApiResult, reply};
use crate::ratelimit;
use crate::sites::{Site, js_num, now_ms};
use crate::visitor;
use microfunnel_core::consent::{Consent, minimise_with};
use microfunnel_core::identity::EMAIL_HASH_TRAIT;
use microfunnel_core::{Event, EventType, Limits, Timestamp};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use worker::{D1PreparedStatement, Env, Request, Response, Result, RouteContext};

/// At most this many events per request.
pub const MAX_EVENTS: usize = 100;

/// Where an event came from: the browser may not declare a channel; an
/// authenticated server may.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Browser,
    Server,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Browser => "browser",
            Source::Server => "server",
        }
    }
}

/// `POST /v1/batch`.
pub async fn batch(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let origin = cors::origin(&req);
    let (result, site) = batch_inner(req, &ctx.env).await;
    let resp = reply(result)?;
    cors::apply(resp, origin.as_deref(), site.as_ref())
}

async fn batch_inner(mut req: Request, env: &Env) -> (ApiResult<Response>, Option<Site>) {
    let mut site_out = None;
    let result = async {
        body::check_json_media_type(&req)?;
        let text = body::read_limited(&mut req, body::MAX_BODY).await?;
        let value = body::parse_json(&text)?;
        let Value::Object(mut envelope) = value else {
            return Err(ApiError::bad_request("invalid_batch", "the body must be a JSON object {site, batch}"));
        };
        let query_site = req.url()?.query_pairs().find(|(k, _)| k == "site").map(|(_, v)| v.into_owned());
        let site_id = match (envelope.remove("site"), query_site) {
            (Some(Value::String(s)), _) => s,
            (None, Some(q)) => q,
            (Some(_), _) => return Err(ApiError::bad_request("invalid_batch", "site: must be a string")),
            (None, None) => return Err(ApiError::bad_request("invalid_batch", "site: is required")),
        };
        let site = Site::load(env, &site_id).await?;
        site_out = Some(site.clone());
        cors::check_origin(&req, &site)?;
        if let Some(k) = envelope.keys().find(|k| !matches!(k.as_str(), "batch" | "sentAt")) {
            return Err(ApiError::bad_request("invalid_batch", format!("{k}: unknown field")));
        }
        let events = take_events(envelope.remove("batch"))?;
        ratelimit::check(env, &req, &site, events.len()).await?;
        let user_agent = req.headers().get("User-Agent").ok().flatten().unwrap_or_default();
        let outcome = ingest(env, &site, events, Source::Browser, &user_agent).await?;
        outcome.into_response()
    }
    .await;
    (result, site_out)
}

/// The `batch` array: 1 to 100 items.
pub fn take_events(v: Option<Value>) -> ApiResult<Vec<Value>> {
    match v {
        Some(Value::Array(items)) if items.is_empty() => {
            Err(ApiError::bad_request("invalid_batch", "batch: must hold at least one event"))
        }
        Some(Value::Array(items)) if items.len() > MAX_EVENTS => Err(ApiError::new(
            413,
            "too_many_events",
            format!("batch: at most {MAX_EVENTS} events per request, got {}", items.len()),
        )),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ApiError::bad_request("invalid_batch", "batch: must be an array of events")),
        None => Err(ApiError::bad_request("invalid_batch", "batch: is required")),
    }
}

#[derive(Default)]
pub struct Outcome {
    accepted: usize,
    duplicates: usize,
    rejected: Vec<Value>,
    stripped: usize,
    dropped: usize,
    bots: usize,
    scores: Vec<Value>,
}

impl Outcome {
    pub fn into_response(self) -> ApiResult<Response> {
        if self.accepted == 0 && self.duplicates == 0 && self.bots == 0 {
            let message = match self.rejected.first().and_then(|r| r.pointer("/error/message")) {
                Some(Value::String(m)) => format!("no event was accepted; first: {m}"),
                _ => "no event was accepted".to_owned(),
            };
            let code = if self.dropped > 0 && self.dropped == self.rejected.len() {
                "consent_denied"
            } else {
                "invalid_events"
            };
            return Err(ApiError::bad_request(code, message).with("rejected", Value::Array(self.rejected)));
        }
        let body = json!({
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "consent": {"stripped": self.stripped, "dropped": self.dropped},
            "bots": self.bots,
            "visitors": self.scores,
        });
        Ok(Response::from_json(&body)?)
    }
}

fn rejection(index: usize, code: &str, field: &str, message: &str) -> Value {
    json!({"index": index, "error": {"code": code, "field": field, "message": message}})
}

/// A validated, minimised event ready to store.
pub struct Ready {
    pub event: Event,
    pub visitor: Option<String>,
    pub payload: String,
}

/// Validates, minimises, stores and forwards `raw` events.
pub async fn ingest(env: &Env, site: &Site, raw: Vec<Value>, source: Source, user_agent: &str) -> ApiResult<Outcome> {
    ingest_resolved(env, site, raw, source, user_agent, None).await
}

/// `ingest` with some ids taken as resolved to the given visitors instead
/// of what D1 says now: a batch that resolved them just before a merge
/// moved them (test routes only, to replay that race on purpose).
#[cfg(feature = "test-routes")]
pub async fn ingest_stale(env: &Env, site: &Site, raw: Vec<Value>, stale: &Map<String, Value>) -> ApiResult<Outcome> {
    ingest_resolved(env, site, raw, Source::Browser, "", Some(stale)).await
}

async fn ingest_resolved(
    env: &Env,
    site: &Site,
    raw: Vec<Value>,
    source: Source,
    user_agent: &str,
    stale: Option<&Map<String, Value>>,
) -> ApiResult<Outcome> {
    let mut out = Outcome::default();
    if source == Source::Browser && crate::bots::is_bot(user_agent) {
        out.bots = raw.len();
        return Ok(out);
    }
    let now_ms = now_ms();
    let now = Timestamp::from_millis(now_ms).ok_or_else(|| ApiError::new(500, "internal", "clock out of range"))?;
    let policy = site.config.minimise_policy();
    let channel_rules = site.config.channel_rules();
    let mut ready: Vec<Event> = Vec::new();
    for (index, item) in raw.iter().enumerate() {
        let mut event = match Event::parse(item, &Limits::DEFAULT, now) {
            Ok(e) => e,
            Err(e) => {
                out.rejected.push(rejection(index, "invalid_event", &e.field, &format!("{}: {}", e.field, e.rule)));
                continue;
            }
        };
        if source == Source::Browser && event.context.channel.is_some() {
            out.rejected.push(rejection(
                index,
                "invalid_event",
                "context.channel",
                "context.channel: only authenticated server events may declare a channel",
            ));
            continue;
        }
        if source == Source::Browser && event.context.user_agent.as_deref().is_some_and(crate::bots::is_bot) {
            out.bots += 1;
            continue;
        }
        let consent = event.consent.as_ref().map_or(Consent::DENIED, Consent::from_stamp);
        event.derive_channel(&channel_rules);
        let minimised = minimise_with(event, &consent, &policy);
        match minimised.event {
            None => {
                out.dropped += 1;
                out.rejected.push(rejection(
                    index,
                    "consent_denied",
                    "consent",
                    "consent: the event's consent stamp does not allow analytics",
                ));
            }
            Some(mut e) => {
                if !minimised.stripped.is_empty() {
                    out.stripped += 1;
                }
                // Stitching and erasure by e-mail need only its hash; the address is
                // never stored (the browser module already sends only the hash).
                microfunnel_core::identity::pseudonymise(&mut e.traits);
                ready.push(e);
            }
        }
    }
    if ready.is_empty() {
        return Ok(out);
    }
    let db = env.d1("DB")?;
    let mut visitors = resolve_visitors(&db, &site.id, &ready).await?;
    if let Some(stale) = stale {
        visitors.extend(stale.clone());
    }
    merge_devices(env, site, &ready, &mut visitors).await?;
    let mut statements: Vec<D1PreparedStatement> = Vec::new();
    let mut items: Vec<Ready> = Vec::new();
    for event in ready {
        let visitor = visitor_of(&event, &visitors);
        let payload = serde_json::to_string(&event)?;
        statements.push(
            db.prepare(
                "INSERT INTO events (site_id, message_id, type, name, visitor_id, anonymous_id, user_id, channel, \
                 source, ts, received_at, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT(site_id, message_id) DO NOTHING",
            )
            .bind(&[
                site.id.as_str().into(),
                event.message_id.to_string().into(),
                kind_name(event.kind).into(),
                opt(event.event.as_deref()),
                opt(visitor.as_deref()),
                opt(event.anonymous_id.as_deref()),
                opt(event.user_id.as_deref()),
                opt(event.channel.as_ref().map(|c| c.name())),
                source.name().into(),
                js_num(event.timestamp.millis()),
                js_num(now_ms),
                payload.as_str().into(),
            ])?,
        );
        items.push(Ready { event, visitor, payload });
    }
    let n_events = statements.len();
    for item in &items {
        statements.extend(identity_statements(&db, &site.id, item, now_ms)?);
    }
    // One D1 batch: a transaction, so a batch is stored whole or not at all.
    let results = db.batch(statements).await?;
    let mut by_visitor: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (item, result) in items.iter().zip(results.iter().take(n_events)) {
        let inserted = result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0;
        if inserted {
            out.accepted += 1;
        } else {
            out.duplicates += 1;
        }
        // Duplicates are forwarded too: the Durable Object de-duplicates on
        // its own ledger, so a retry after a failed hand-off completes it.
        if let Some(v) = &item.visitor {
            let entry = json!({
                "payload": item.payload,
                "channel": item.event.channel.as_ref().map(|c| c.name()),
                "received_at": now_ms,
            });
            by_visitor.entry(v.clone()).or_default().push(entry);
        }
    }
    for (visitor_id, events) in by_visitor {
        let score = visitor::apply(env, site, &visitor_id, events).await?;
        out.scores.push(score);
    }
    Ok(out)
}

fn opt(s: Option<&str>) -> worker::wasm_bindgen::JsValue {
    s.map_or(worker::wasm_bindgen::JsValue::NULL, Into::into)
}

pub fn kind_name(k: EventType) -> &'static str {
    match k {
        EventType::Page => "page",
        EventType::Track => "track",
        EventType::Identify => "identify",
        EventType::Alias => "alias",
    }
}

/// Known `userId` / `previousId` / `anonymousId` → visitor links for the ids
/// of these events, and the visitors their identifies' e-mail hashes link to.
async fn resolve_visitors(db: &worker::D1Database, site: &str, events: &[Event]) -> ApiResult<Map<String, Value>> {
    let mut ids: Vec<&str> = Vec::new();
    for e in events {
        ids.extend(e.user_id.as_deref());
        ids.extend(e.previous_id.as_deref());
        ids.extend(e.anonymous_id.as_deref());
    }
    ids.sort_unstable();
    ids.dedup();
    let hashes: Vec<&str> = events.iter().filter_map(email_hash).collect();
    let mut found = Map::new();
    if ids.is_empty() && hashes.is_empty() {
        return Ok(found);
    }
    let rows: Vec<Value> = db
        .prepare(
            "SELECT kind, value, visitor_id FROM identities WHERE site_id = ?1 AND \
             ((kind IN ('user', 'anonymous') AND value IN (SELECT value FROM json_each(?2))) \
             OR (kind = 'email_sha256' AND value IN (SELECT value FROM json_each(?3))))",
        )
        .bind(&[site.into(), serde_json::to_string(&ids)?.into(), serde_json::to_string(&hashes)?.into()])?
        .all()
        .await?
        .results()?;
    for row in rows {
        if let (Some(Value::String(kind)), Some(Value::String(k)), Some(v)) =
            (row.get("kind"), row.get("value"), row.get("visitor_id"))
        {
            let key = if kind == "email_sha256" { email_key(k) } else { k.clone() };
            found.insert(key, v.clone());
        }
    }
    Ok(found)
}

/// Cross-device stitching: an event whose anonymousId already belongs to one
/// visitor and whose userId to another is one person on a second device (an
/// `alias` whose previousId and userId belong to two visitors, likewise; an
/// `identify` whose e-mail is linked to another visitor, unless the site
/// turned `attribution.merge_on_email` off).
/// The anonymous visitor is merged into the user's (`visitor::merge`: ledger,
/// open journey and withdrawals move, the score is rebuilt over both, every
/// D1 row keyed by it follows, and its object forwards from then on).
/// Repeating a merge is harmless, so a retried batch completes one that
/// failed half-way.
async fn merge_devices(env: &Env, site: &Site, events: &[Event], known: &mut Map<String, Value>) -> ApiResult<()> {
    let id = |known: &Map<String, Value>, k: &str| known.get(k).and_then(Value::as_str).map(str::to_owned);
    for e in events {
        // `alias` says the same of its previousId and userId.
        let earlier = if e.kind == EventType::Alias { &e.previous_id } else { &e.anonymous_id };
        if let (Some(a), Some(u)) = (earlier, &e.user_id)
            && let (Some(from), Some(into)) = (id(known, a), id(known, u))
            && from != into
        {
            join(env, site, known, &from, &into).await?;
        }
        // The same e-mail as a known visitor's: that visitor.
        let merge_on_email = site.config.attribution.merge_on_email;
        let Some(into) = email_hash(e).filter(|_| merge_on_email).and_then(|h| id(known, &email_key(h))) else {
            continue;
        };
        match visitor_of(e, known) {
            Some(v) if v != into && known.values().any(|k| k.as_str() == Some(v.as_str())) => {
                join(env, site, known, &v, &into).await?;
            }
            // A device seen for the first time: its ids go straight there.
            Some(v) if v != into => {
                for i in [&e.anonymous_id, &e.user_id].into_iter().flatten() {
                    known.insert(i.clone(), Value::String(into.clone()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Merges visitor `from` into `into` and points every id this batch knew as
/// either at the visitor that holds both now.
async fn join(env: &Env, site: &Site, known: &mut Map<String, Value>, from: &str, into: &str) -> ApiResult<()> {
    let holder = visitor::merge(env, site, from, into).await?;
    for v in known.values_mut() {
        if v.as_str().is_some_and(|id| id == from || id == into) {
            *v = Value::String(holder.clone());
        }
    }
    Ok(())
}

/// An identify's e-mail link: its `email_sha256` trait (already checked to
/// be a valid key by `identity::pseudonymise`).
fn email_hash(e: &Event) -> Option<&str> {
    if e.kind != EventType::Identify {
        return None;
    }
    e.traits.get(EMAIL_HASH_TRAIT).and_then(Value::as_str)
}

/// E-mail links share the resolved-id map under their own prefix, so no
/// anonymousId or userId can pass for one.
fn email_key(hash: &str) -> String {
    ["email_sha256:", hash].concat()
}

/// The visitor an event belongs to: a linked identity first, then its
/// anonymousId, then its userId (server events); `None` for a cookieless
/// page view, which only counts.
fn visitor_of(e: &Event, known: &Map<String, Value>) -> Option<String> {
    let linked =
        |id: &Option<String>| id.as_ref().and_then(|i| known.get(i)).and_then(Value::as_str).map(str::to_owned);
    if e.kind == EventType::Alias {
        return linked(&e.previous_id).or_else(|| e.previous_id.clone());
    }
    linked(&e.anonymous_id)
        .or_else(|| linked(&e.user_id))
        .or_else(|| e.anonymous_id.clone())
        .or_else(|| e.user_id.clone())
}

/// Identity stitching rows: anonymousId and userId (and, on identify, the
/// SHA-256 of a lower-cased e-mail trait) → the event's visitor.
fn identity_statements(
    db: &worker::D1Database,
    site: &str,
    item: &Ready,
    now: i64,
) -> ApiResult<Vec<D1PreparedStatement>> {
    let Some(visitor) = &item.visitor else { return Ok(Vec::new()) };
    let e = &item.event;
    let mut links: Vec<(&str, String)> = Vec::new();
    if let Some(a) = &e.anonymous_id {
        links.push(("anonymous", a.clone()));
    }
    if let Some(u) = &e.user_id {
        links.push(("user", u.clone()));
    }
    if e.kind == EventType::Identify
        && let Some(Value::String(hash)) = e.traits.get(EMAIL_HASH_TRAIT)
    {
        links.push(("email_sha256", hash.clone()));
    }
    let mut out = Vec::new();
    for (kind, value) in links {
        out.push(
            db.prepare(
                "INSERT INTO identities (site_id, kind, value, visitor_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(site_id, kind, value) DO NOTHING",
            )
            .bind(&[
                site.into(),
                kind.into(),
                value.as_str().into(),
                visitor.as_str().into(),
                js_num(now),
            ])?,
        );
    }
    Ok(out)
}
