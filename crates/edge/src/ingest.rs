//! `POST /v1/batch` (browser events) and the pipeline it shares with
//! `POST /v1/events` and Segment's API (`segment`: server and offline events): validate every event with
//! the core, re-check and minimise it to its consent stamp, derive its
//! channel, store it exactly once (D1, keyed by `messageId`) and hand it to
//! the visitor's Durable Object, which scores it and keeps the journey.
//!
//! Per-event results: `{accepted, duplicates, rejected: [{index, error}],
//! consent: {stripped, dropped}, bots}` — counts about the caller's own
//! events only: the browser endpoint is public, so its answer names no
//! visitor, score or conversion. A batch with nothing acceptable is a 400
//! carrying the same `rejected` list; nothing of it is stored.
//!
//! Identity from the public endpoint is a claim, not a fact. A browser event
//! lands on its own device's visitor. It joins another profile (a known
//! userId, a known e-mail hash) only when it proves it: an `identify` whose
//! `identitySignature` is the site's HMAC of that userId or e-mail hash.
//! Unproven userIds and e-mail hashes are kept as claims (`user_claim`,
//! `email_claim`), which no lookup for joining reads; `alias` is refused.
//! Server events are authenticated, so what they say is taken as proven;
//! one sent without a consent stamp gets the site's declared basis
//! (`consent.server_purposes`: by default stored and attributed, not scored).

use crate::auth::identity_proven;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Browser,
    Server,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Browser => "browser",
            Source::Server => "server",
        }
    }
}

/// `POST /v1/batch`: the browser's form `{site, batch}`, or Segment's with
/// a credential (`segment`).
pub async fn batch(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    if crate::segment::is_segment_request(&req) {
        return reply(crate::segment::batch(req, &ctx.env).await);
    }
    let origin = cors::origin(&req);
    let (result, site) = batch_inner(req, &ctx.env).await;
    cors::finish(&ctx.env, reply(result)?, origin.as_deref(), site.as_ref()).await
}

async fn batch_inner(mut req: Request, env: &Env) -> (ApiResult<Response>, Option<Site>) {
    let mut site_out = None;
    let result = async {
        // The module names its site in the URL too, so even an error about
        // the body is answered with the site's CORS headers.
        let query_site = req.url()?.query_pairs().find(|(k, _)| k == "site").map(|(_, v)| v.into_owned());
        if let Some(id) = &query_site {
            site_out = Some(Site::load(env, id).await?);
        }
        body::check_json_media_type(&req)?;
        let text = body::read_limited(&mut req, body::MAX_BODY).await?;
        let value = body::parse_json(&text)?;
        let Value::Object(mut envelope) = value else {
            return Err(ApiError::bad_request("invalid_batch", "the body must be a JSON object {site, batch}"));
        };
        // Segment's form with its key in the body: a server, not a browser.
        if query_site.is_none() && !envelope.contains_key("site") && envelope.contains_key("writeKey") {
            return crate::segment::receive(&req, env, None, Value::Object(envelope)).await;
        }
        let site = match (envelope.remove("site"), site_out.clone()) {
            (Some(Value::String(s)), Some(site)) if s != site.id => {
                return Err(ApiError::bad_request("invalid_batch", "site: differs from the site in the URL"));
            }
            (Some(Value::String(_)) | None, Some(site)) => site,
            (Some(Value::String(s)), None) => Site::load(env, &s).await?,
            (Some(_), _) => return Err(ApiError::bad_request("invalid_batch", "site: must be a string")),
            (None, None) => return Err(ApiError::bad_request("invalid_batch", "site: is required")),
        };
        site_out = Some(site.clone());
        cors::check_origin(&req, &site)?;
        if let Some(k) = envelope.keys().find(|k| !matches!(k.as_str(), "batch" | "sentAt")) {
            return Err(ApiError::bad_request("invalid_batch", format!("{k}: unknown field")));
        }
        let events = take_events(envelope.remove("batch"))?;
        let user_agent = req.headers().get("User-Agent").ok().flatten().unwrap_or_default();
        let key = crate::secrets::user_id_key(env, &site)?;
        let checked = check(&site, events, Source::Browser, &user_agent, key.as_deref())?;
        // Charged only now: the address for every request, the site only
        // with what passed validation.
        ratelimit::browser(env, &req, &site, checked.passed()).await?;
        store(env, &site, checked, Source::Browser, None).await?.into_response(false)
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
    /// The answer. `reveal` adds the visitors the events landed on, with
    /// their scores: only for authenticated callers (the site's servers).
    pub fn into_response(self, reveal: bool) -> ApiResult<Response> {
        Ok(Response::from_json(&self.answer(reveal)?)?)
    }

    /// Segment's answer (`success`, which the libraries read) with our
    /// counts; a batch with nothing acceptable is the same 400 as ours.
    pub fn into_segment_response(self) -> ApiResult<Response> {
        let mut body = self.answer(false)?;
        if let Some(o) = body.as_object_mut() {
            o.insert("success".into(), Value::Bool(true));
        }
        Ok(Response::from_json(&body)?)
    }

    fn answer(self, reveal: bool) -> ApiResult<Value> {
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
        let mut body = json!({
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "consent": {"stripped": self.stripped, "dropped": self.dropped},
            "bots": self.bots,
        });
        if reveal && let Some(o) = body.as_object_mut() {
            o.insert("visitors".into(), Value::Array(self.scores));
        }
        Ok(body)
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
    pub proof: Proof,
}

/// What an event proves of its identity claims: everything for an
/// authenticated server; for a browser, what its identity signature covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proof {
    pub user: bool,
    pub email: bool,
}

impl Proof {
    const ALL: Proof = Proof { user: true, email: true };

    fn any(self) -> bool {
        self.user || self.email
    }
}

/// The events of a request that passed validation, with the outcome so far
/// (rejections, bots, consent drops).
pub struct Checked {
    events: Vec<(Event, Proof)>,
    out: Outcome,
}

impl Checked {
    /// How many events passed: what the site's budget is charged.
    pub fn passed(&self) -> usize {
        self.events.len()
    }
}

/// A browser batch may start at most this many merges, and reach at most
/// this many visitors (a real page's batch reaches one); a server batch, more.
const fn max_merges(source: Source) -> usize {
    match source {
        Source::Browser => 2,
        Source::Server => 20,
    }
}
const MAX_BROWSER_VISITORS: usize = 20;

/// `ingest` with some ids taken as resolved to the given visitors instead
/// of what D1 says now: a batch that resolved them just before a merge
/// moved them (test routes only, to replay that race on purpose).
#[cfg(feature = "test-routes")]
pub async fn ingest_stale(env: &Env, site: &Site, raw: Vec<Value>, stale: &Map<String, Value>) -> ApiResult<Outcome> {
    let stale: Map<String, Value> = stale.iter().map(|(k, v)| (id_key("anonymous", k), v.clone())).collect();
    let key = crate::secrets::user_id_key(env, site)?;
    store(env, site, check(site, raw, Source::Browser, "", key.as_deref())?, Source::Browser, Some(&stale)).await
}

/// Every check that needs no storage: the core's validation, the browser's
/// restrictions, bots, consent and minimisation, identity proofs.
/// `user_key`: the site's userId hashing key (`secrets::user_id_key`), when
/// it stores userIds only as their keyed hash.
pub fn check(
    site: &Site,
    raw: Vec<Value>,
    source: Source,
    user_agent: &str,
    user_key: Option<&[u8]>,
) -> ApiResult<Checked> {
    let mut out = Outcome::default();
    let mut events = Vec::new();
    if source == Source::Browser && crate::bots::is_bot(user_agent) {
        out.bots = raw.len();
        return Ok(Checked { events, out });
    }
    let now = Timestamp::from_millis(now_ms()).ok_or_else(|| ApiError::new(500, "internal", "clock out of range"))?;
    let policy = site.config.site.minimise_policy();
    let channel_rules = site.config.site.channels();
    for (index, item) in raw.iter().enumerate() {
        let mut event = match Event::parse(item, &Limits::DEFAULT, now) {
            Ok(e) => e,
            Err(e) => {
                out.rejected.push(rejection(index, "invalid_event", &e.field, &format!("{}: {}", e.field, e.rule)));
                continue;
            }
        };
        // A conversion's value is read exactly in its currency, or refused.
        if event.kind == microfunnel_core::EventType::Track
            && let Some(def) = event.event.as_deref().and_then(|n| site.config.site.conversions().find(n))
            && let Err(e) = def.check_value(&event.properties)
        {
            out.rejected.push(rejection(index, "invalid_event", &e.field, &format!("{}: {}", e.field, e.rule)));
            continue;
        }
        if source == Source::Browser
            && let Some((field, message)) = browser_refusal(&event)
        {
            out.rejected.push(rejection(index, "invalid_event", field, message));
            continue;
        }
        if source == Source::Browser && event.context.user_agent.as_deref().is_some_and(crate::bots::is_bot) {
            out.bots += 1;
            continue;
        }
        // The proof is checked on the ids as sent (a site may sign a userId
        // that minimisation then turns into a key), the e-mail already hashed.
        microfunnel_core::identity::pseudonymise(&mut event.traits);
        let proof = match source {
            Source::Server => Proof::ALL,
            Source::Browser => match prove(site, &event) {
                Ok(p) => p,
                Err(message) => {
                    out.rejected.push(rejection(index, "invalid_signature", "identitySignature", message));
                    continue;
                }
            },
        };
        // A server speaks for its own records: unstamped, its event gets the
        // site's declared basis (stored and attributed; scored only if declared).
        if source == Source::Server && event.consent.is_none() {
            event.consent = Some(site.config.site.consent().server_stamp());
        }
        let consent = event.consent.as_ref().map_or(Consent::DENIED, Consent::from_stamp);
        event.derive_channel(channel_rules);
        let minimised = minimise_with(event, &consent, &policy);
        let Some(mut e) = minimised.event else {
            out.dropped += 1;
            out.rejected.push(rejection(
                index,
                "consent_denied",
                "consent",
                "consent: the event's consent stamp does not allow analytics",
            ));
            continue;
        };
        if !minimised.stripped.is_empty() {
            out.stripped += 1;
        }
        // The arm is the collector's to say, from the id that survived
        // minimisation (so only with analytics); the browser's claim is dropped.
        e.context.cta_arm =
            microfunnel_core::experiment::arm_of(&site.id, e.anonymous_id.as_deref(), site.config.site.cta().holdout());
        // The bot filter has read the User-Agent; reports need only the family.
        e.context.user_agent = e.context.user_agent.as_deref().map(microfunnel_core::pii::browser_family);
        // A proof is a credential: checked here, never stored or forwarded.
        e.identity_signature = None;
        // Checked on the id as sent (above), stored as its keyed hash.
        if let Some(key) = user_key {
            e.user_id = e.user_id.map(|u| crate::secrets::hashed_user_id(key, &u));
        }
        events.push((e, proof));
    }
    Ok(Checked { events, out })
}

/// What the public endpoint never accepts, whatever the event says.
fn browser_refusal(e: &Event) -> Option<(&'static str, &'static str)> {
    if e.context.channel.is_some() {
        return Some(("context.channel", "context.channel: only authenticated server events may declare a channel"));
    }
    // The module's ids are UUIDs; other spellings are for server libraries.
    if !e.message_id.is_uuid() {
        return Some(("messageId", "messageId: must be a UUID on the browser endpoint"));
    }
    if e.consent.is_some_and(|c| c.is_site_basis()) {
        return Some(("consent.basis", "consent.basis: only the collector stamps the site's basis, on server events"));
    }
    if e.kind == EventType::Alias {
        return Some((
            "type",
            "type: alias joins two profiles; only authenticated server events (POST /v1/events) may",
        ));
    }
    if e.user_id.is_some() && e.anonymous_id.is_none() {
        return Some(("anonymousId", "anonymousId: is required on a browser event that carries a userId"));
    }
    None
}

/// The identities a browser identify proves with its signature.
fn prove(site: &Site, e: &Event) -> Result<Proof, &'static str> {
    let Some(sig) = e.identity_signature.as_deref() else { return Ok(Proof::default()) };
    let proof = Proof {
        user: e.user_id.as_deref().is_some_and(|u| identity_proven(&site.identity_secret, u, sig)),
        email: email_hash(e).is_some_and(|h| identity_proven(&site.identity_secret, h, sig)),
    };
    if proof.any() {
        Ok(proof)
    } else {
        Err("identitySignature: is not this site's signature of the userId or of the e-mail's SHA-256")
    }
}

/// Stores checked events exactly once and hands them to their visitors.
pub async fn store(
    env: &Env,
    site: &Site,
    checked: Checked,
    source: Source,
    stale: Option<&Map<String, Value>>,
) -> ApiResult<Outcome> {
    let Checked { events: ready, mut out } = checked;
    if ready.is_empty() {
        return Ok(out);
    }
    let now_ms = now_ms();
    let db = env.d1("DB")?;
    let lookup = resolve_visitors(&db, &site.id, &ready).await?;
    let mut visitors = lookup.links;
    if let Some(stale) = stale {
        visitors.extend(stale.clone());
    }
    // A browser device's own new visitor id must not be someone else's:
    // that would write into their profile without any proof.
    let mut kept = Vec::new();
    for (index, (event, proof)) in ready.into_iter().enumerate() {
        let own = source == Source::Browser
            && event.anonymous_id.as_ref().is_some_and(|a| {
                !visitors.contains_key(&id_key("anonymous", a)) && lookup.visitor_ids.iter().any(|v| v == a)
            });
        if own {
            out.rejected.push(rejection(
                index,
                "invalid_event",
                "anonymousId",
                "anonymousId: is already another visitor's id",
            ));
        } else {
            kept.push((event, proof));
        }
    }
    let ready = kept;
    let merges = merge_devices(env, site, source, &ready, &mut visitors).await?;
    let mut statements: Vec<D1PreparedStatement> = Vec::new();
    let mut items: Vec<Ready> = Vec::new();
    let mut reached: Vec<String> = Vec::new();
    for (index, (event, proof)) in ready.into_iter().enumerate() {
        if merges.refused.contains(&index) {
            out.rejected.push(rejection(
                index,
                "too_many_merges",
                "userId",
                "userId: this batch joins too many profiles; send this event again in the next batch",
            ));
            continue;
        }
        let visitor = visitor_of(&event, proof, site, &visitors);
        // What this event links (as its identity rows will), so a later
        // event of the same batch known by one of those ids alone — a
        // server's track by userId after its identify — finds this visitor.
        if let Some(v) = &visitor {
            let mut learn = |kind: &str, value: Option<&str>| {
                if let Some(value) = value {
                    visitors.entry(id_key(kind, value)).or_insert_with(|| Value::String(v.clone()));
                }
            };
            learn("anonymous", event.anonymous_id.as_deref());
            learn("user", event.user_id.as_deref().filter(|_| proof.user));
            learn("user", event.previous_id.as_deref().filter(|_| proof.user && event.kind == EventType::Alias));
            learn("email_sha256", email_hash(&event).filter(|_| proof.email));
        }
        if source == Source::Browser
            && let Some(v) = &visitor
            && !reached.contains(v)
        {
            if reached.len() >= MAX_BROWSER_VISITORS {
                out.rejected.push(rejection(
                    index,
                    "too_many_visitors",
                    "anonymousId",
                    "anonymousId: a browser batch reaches at most 20 visitors",
                ));
                continue;
            }
            reached.push(v.clone());
        }
        let payload = serde_json::to_string(&event)?;
        statements.push(
            db.prepare(
                "INSERT INTO events (site_id, message_id, type, name, visitor_id, anonymous_id, user_id, channel, \
                 source, ts, received_at, payload, cta_arm) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT(site_id, message_id) DO NOTHING",
            )
            .bind(&[
                site.id.as_str().into(),
                event.message_id.to_string().into(),
                event.kind.as_str().into(),
                opt(event.event.as_deref()),
                opt(visitor.as_deref()),
                opt(event.anonymous_id.as_deref()),
                opt(event.user_id.as_deref()),
                opt(event.channel.as_ref().map(|c| c.name())),
                source.name().into(),
                js_num(event.timestamp.millis()),
                js_num(now_ms),
                payload.as_str().into(),
                opt(event.context.cta_arm.map(|a| a.as_str())),
            ])?,
        );
        items.push(Ready { event, visitor, payload, proof });
    }
    if items.is_empty() {
        return Ok(out);
    }
    let n_events = statements.len();
    for item in &items {
        statements.extend(identity_statements(&db, &site.id, item, source, now_ms)?);
    }
    // One D1 batch: a transaction, so a batch is stored whole or not at all.
    let results = db.batch(statements).await?;
    let mut by_visitor: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut duplicates: Vec<String> = Vec::new();
    for (item, result) in items.iter().zip(results.iter().take(n_events)) {
        let inserted = result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0;
        if !inserted {
            out.duplicates += 1;
            duplicates.push(item.event.message_id.to_string());
            continue;
        }
        out.accepted += 1;
        if let Some(v) = &item.visitor {
            let entry = json!({
                "payload": item.payload,
                "channel": item.event.channel.as_ref().map(|c| c.name()),
                "received_at": now_ms,
                "source": source.name(),
            });
            by_visitor.entry(v.clone()).or_default().push(entry);
        }
    }
    // A duplicate is forwarded as it was first stored, to the visitor its row
    // names (merges keep that current): so a retry after a failed hand-off
    // completes it, and a copy re-sent under another id reaches no one else.
    for row in stored_rows(&db, &site.id, &duplicates).await? {
        by_visitor.entry(row.visitor_id).or_default().push(json!({
            "payload": row.payload,
            "channel": row.channel,
            "received_at": now_ms,
            "source": row.source,
        }));
    }
    for (visitor_id, events) in by_visitor {
        let score = visitor::apply(env, site, &visitor_id, events).await?;
        out.scores.push(score);
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct StoredRow {
    visitor_id: String,
    payload: String,
    channel: Option<String>,
    source: String,
}

/// The stored rows of these messages that belong to a visitor.
async fn stored_rows(db: &worker::D1Database, site: &str, ids: &[String]) -> ApiResult<Vec<StoredRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(db
        .prepare(
            "SELECT visitor_id, payload, channel, source FROM events WHERE site_id = ?1 AND visitor_id IS NOT NULL \
             AND message_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(&[site.into(), serde_json::to_string(ids)?.into()])?
        .all()
        .await?
        .results()?)
}

fn opt(s: Option<&str>) -> worker::wasm_bindgen::JsValue {
    s.map_or(worker::wasm_bindgen::JsValue::NULL, Into::into)
}

/// What D1 knows of a batch's ids.
struct Lookup {
    /// `kind:value` → visitor, for the links a join may follow: `anonymous`,
    /// `user` and `email_sha256` (never the unproven claims).
    links: Map<String, Value>,
    /// Which of the batch's anonymousIds are already some visitor's id.
    visitor_ids: Vec<String>,
}

/// An identity's key in the resolved map: by `(kind, value)`, so a userId
/// equal to someone's anonymousId resolves to nothing of theirs.
fn id_key(kind: &str, value: &str) -> String {
    [kind, ":", value].concat()
}

/// Known links for the ids of these events, and which of their anonymousIds
/// are already visitor ids.
async fn resolve_visitors(db: &worker::D1Database, site: &str, events: &[(Event, Proof)]) -> ApiResult<Lookup> {
    let mut anon: Vec<&str> = Vec::new();
    let mut users: Vec<&str> = Vec::new();
    for (e, _) in events {
        anon.extend(e.anonymous_id.as_deref());
        users.extend(e.user_id.as_deref());
        users.extend(e.previous_id.as_deref());
    }
    for v in [&mut anon, &mut users] {
        v.sort_unstable();
        v.dedup();
    }
    let hashes: Vec<&str> = events.iter().filter_map(|(e, _)| email_hash(e)).collect();
    let mut lookup = Lookup { links: Map::new(), visitor_ids: Vec::new() };
    if anon.is_empty() && users.is_empty() && hashes.is_empty() {
        return Ok(lookup);
    }
    let rows: Vec<Value> = db
        .prepare(
            "SELECT kind, value, visitor_id FROM identities WHERE site_id = ?1 AND \
             ((kind = 'anonymous' AND value IN (SELECT value FROM json_each(?2))) \
             OR (kind = 'user' AND value IN (SELECT value FROM json_each(?3))) \
             OR (kind = 'email_sha256' AND value IN (SELECT value FROM json_each(?4)))) \
             UNION ALL SELECT DISTINCT 'visitor', visitor_id, visitor_id FROM identities WHERE site_id = ?1 \
             AND visitor_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(&[
            site.into(),
            serde_json::to_string(&anon)?.into(),
            serde_json::to_string(&users)?.into(),
            serde_json::to_string(&hashes)?.into(),
        ])?
        .all()
        .await?
        .results()?;
    for row in rows {
        if let (Some(Value::String(kind)), Some(Value::String(value)), Some(v)) =
            (row.get("kind"), row.get("value"), row.get("visitor_id"))
        {
            if kind == "visitor" {
                lookup.visitor_ids.push(value.clone());
            } else {
                lookup.links.insert(id_key(kind, value), v.clone());
            }
        }
    }
    Ok(lookup)
}

/// Which events a batch could not merge for: over [`max_merges`].
struct Merges {
    refused: Vec<usize>,
}

/// Cross-device stitching, from proven identities only: an event whose
/// device already belongs to one visitor and whose userId to another is one
/// person on a second device (an `alias` — server only — whose previousId and
/// userId belong to two visitors, likewise; an `identify` whose e-mail hash
/// is linked to another visitor, unless the site turned
/// `attribution.merge_on_email` off). The device's visitor is merged into
/// the user's (`visitor::merge`: ledger, open journey and withdrawals move,
/// the score is rebuilt over both, every D1 row keyed by it follows, and its
/// object forwards from then on). Repeating a merge is harmless, so a
/// retried batch completes one that failed half-way.
async fn merge_devices(
    env: &Env,
    site: &Site,
    source: Source,
    events: &[(Event, Proof)],
    known: &mut Map<String, Value>,
) -> ApiResult<Merges> {
    let id = |known: &Map<String, Value>, k: String| known.get(&k).and_then(Value::as_str).map(str::to_owned);
    let mut merges = Merges { refused: Vec::new() };
    let mut done = 0;
    let max = max_merges(source);
    for (index, (e, proof)) in events.iter().enumerate() {
        // `alias` says the same of its previousId and userId.
        let earlier = if e.kind == EventType::Alias {
            e.previous_id.as_ref().map(|p| id_key("user", p))
        } else {
            e.anonymous_id.as_ref().map(|a| id_key("anonymous", a))
        };
        if proof.user
            && let (Some(a), Some(u)) = (earlier, &e.user_id)
            && let (Some(from), Some(into)) = (id(known, a), id(known, id_key("user", u)))
            && from != into
        {
            if done >= max {
                merges.refused.push(index);
                continue;
            }
            join(env, site, known, &from, &into).await?;
            done += 1;
        }
        // The same e-mail as a known visitor's: that visitor.
        let by_email = proof.email && site.config.site.attribution().merge_on_email;
        let Some(into) = email_hash(e).filter(|_| by_email).and_then(|h| id(known, id_key("email_sha256", h))) else {
            continue;
        };
        // Where the device would be without its e-mail: joined, or moved there.
        let device = visitor_of(e, Proof { email: false, ..*proof }, site, known);
        match device {
            Some(v) if v != into && known.values().any(|k| k.as_str() == Some(v.as_str())) => {
                if done >= max {
                    merges.refused.push(index);
                    continue;
                }
                join(env, site, known, &v, &into).await?;
                done += 1;
            }
            // A device seen for the first time: its ids go straight there.
            Some(v) if v != into => {
                if let Some(a) = &e.anonymous_id {
                    known.insert(id_key("anonymous", a), Value::String(into.clone()));
                }
                if let Some(u) = &e.user_id {
                    known.insert(id_key("user", u), Value::String(into.clone()));
                }
            }
            _ => {}
        }
    }
    Ok(merges)
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

/// The visitor an event belongs to: its device's link first, then what it
/// proves (its userId's link, its e-mail's), then its own anonymousId, then
/// its userId (server events); `None` for a cookieless page view, which
/// only counts. A browser's unproven userId never routes it anywhere.
fn visitor_of(e: &Event, proof: Proof, site: &Site, known: &Map<String, Value>) -> Option<String> {
    let linked = |kind: &str, id: Option<&str>| {
        id.and_then(|i| known.get(&id_key(kind, i))).and_then(Value::as_str).map(str::to_owned)
    };
    // An alias names one person by two ids: whichever is known already
    // holds them (the previous id first), else the previous id's own.
    if e.kind == EventType::Alias {
        return linked("user", e.previous_id.as_deref())
            .or_else(|| linked("user", e.user_id.as_deref().filter(|_| proof.user)))
            .or_else(|| e.previous_id.clone());
    }
    let by_email = proof.email && site.config.site.attribution().merge_on_email;
    linked("anonymous", e.anonymous_id.as_deref())
        .or_else(|| linked("user", e.user_id.as_deref().filter(|_| proof.user)))
        .or_else(|| linked("email_sha256", email_hash(e).filter(|_| by_email)))
        .or_else(|| e.anonymous_id.clone())
        .or_else(|| e.user_id.clone().filter(|_| proof.user))
}

/// Identity stitching rows: anonymousId, userId and (on identify) the
/// e-mail's SHA-256 → the event's visitor. What the event did not prove is a
/// claim, stored under its own kind. Each row is written only if this very
/// event's row is this visitor's, so a duplicate sent under other ids links
/// nothing.
fn identity_statements(
    db: &worker::D1Database,
    site: &str,
    item: &Ready,
    source: Source,
    now: i64,
) -> ApiResult<Vec<D1PreparedStatement>> {
    let Some(visitor) = &item.visitor else { return Ok(Vec::new()) };
    let e = &item.event;
    let proof = item.proof;
    let device_verified = source == Source::Server || proof.any();
    let mut links: Vec<(&str, &str, bool)> = Vec::new();
    if let Some(a) = &e.anonymous_id {
        links.push(("anonymous", a, device_verified));
    }
    if let Some(u) = &e.user_id {
        links.push(if proof.user { ("user", u, true) } else { ("user_claim", u, false) });
    }
    if let Some(hash) = email_hash(e) {
        links.push(if proof.email { ("email_sha256", hash, true) } else { ("email_claim", hash, false) });
    }
    // The previous id of a (server's) alias routes to this visitor from now on.
    if let Some(p) = e.previous_id.as_deref().filter(|_| e.kind == EventType::Alias && proof.user) {
        links.push(("user", p, true));
    }
    let mut out = Vec::new();
    for (kind, value, verified) in links {
        out.push(
            db.prepare(
                "INSERT INTO identities (site_id, kind, value, visitor_id, created_at, verified) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM events WHERE site_id = ?1 \
                 AND message_id = ?7 AND visitor_id = ?4) \
                 ON CONFLICT(site_id, kind, value) DO UPDATE SET verified = MAX(verified, excluded.verified) \
                 WHERE identities.visitor_id = excluded.visitor_id",
            )
            .bind(&[
                site.into(),
                kind.into(),
                value.into(),
                visitor.as_str().into(),
                js_num(now),
                js_num(i64::from(verified)),
                e.message_id.to_string().into(),
            ])?,
        );
    }
    Ok(out)
}
