//! The visitor's Durable Object (SQLite storage), one per `site:visitor`:
//! the visitor's ledger (every event, de-duplicated by `messageId`), the open
//! journey (touches since the last conversion) and the score, computed by the
//! core's `Scorer` over the whole ledger — across sessions, channels and
//! offline events. Requests for one visitor run one at a time, so its score,
//! journey and conversions are always consistent.
//!
//! The Worker talks to it over `fetch` with internal paths: `POST /apply`,
//! `POST /score`, `POST /withdraw`, `POST /handover`, `POST /import`,
//! `POST /retire`, `GET /export`, `DELETE /`.
//!
//! A visitor merged into another (same person, another device) keeps only a
//! forward (`merged_into`): requests that still reach it answer
//! `{"moved_to": id}` and the Worker follows ([`follow`]).

use crate::conversions;
use crate::errors::{ApiError, ApiResult};
use crate::ingest::Source;
use crate::sites::{ConversionDef, Site, js_num, now_ms};
use crate::webhooks;
use microfunnel_core::consent::{self, ConsentStamp, MinimisePolicy};
use microfunnel_core::scoring::{Rules, Scorer};
use microfunnel_core::{Consent, Event, EventType, Limits, Purpose, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{
    DurableObject, Env, Method, Request, RequestInit, Response, Result, SqlStorage, SqlStorageValue, State,
    durable_object, wasm_bindgen::JsValue,
};

/// A new touch after this much inactivity even on the same channel (GA4's
/// session timeout).
const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

// ---- Worker side -----------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct ApplyRequest {
    site: String,
    visitor: String,
    rules: Value,
    conversions: Vec<ConversionDef>,
    #[serde(default)]
    webhooks: Vec<String>,
    /// Milliseconds of inactivity after which an open journey closes as a
    /// non-converting path.
    #[serde(default)]
    journey_timeout_ms: Option<i64>,
    events: Vec<Value>,
}

fn stub(env: &Env, site: &str, visitor: &str) -> ApiResult<worker::Stub> {
    let ns = env.durable_object("VISITOR")?;
    Ok(ns.id_from_name(&format!("{site}:{visitor}"))?.get_stub()?)
}

async fn call(
    env: &Env,
    site: &str,
    visitor: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> ApiResult<Value> {
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(b) = body {
        init.with_body(Some(JsValue::from_str(&b)));
    }
    let req = Request::new_with_init(&format!("https://visitor{path}"), &init)?;
    let mut resp = stub(env, site, visitor)?.fetch_with_request(req).await?;
    let status = resp.status_code();
    let value: Value = resp.json().await?;
    if status >= 400 {
        worker::console_error!("visitor object {path}: {status} {value}");
        return Err(ApiError::new(503, "unavailable", "the visitor store is unavailable; retry"));
    }
    Ok(value)
}

/// How many forwards a request follows (a visitor merged into one that was
/// merged in turn); more means a loop, answered as unavailable.
const MAX_HOPS: usize = 4;

/// Calls `path` on the visitor's object and, when that object was merged
/// into another (`{"moved_to": id}`: a request that resolved the visitor
/// just before the merge), re-keys the D1 rows the request wrote under the
/// old id and calls the object it moved to. `body(visitor)` builds the body
/// for each object. Answers the final object's reply and its visitor id.
async fn follow(
    env: &Env,
    site: &str,
    visitor: &str,
    method: Method,
    path: &str,
    body: impl Fn(&str) -> ApiResult<String>,
) -> ApiResult<(Value, String)> {
    let mut current = visitor.to_owned();
    for _ in 0..MAX_HOPS {
        let reply = call(env, site, &current, method.clone(), path, Some(body(&current)?)).await?;
        match reply.get("moved_to").and_then(Value::as_str) {
            Some(next) if next != current => {
                rekey(env, site, &current, next).await?;
                current = next.to_owned();
            }
            _ => return Ok((reply, current)),
        }
    }
    worker::console_error!("visitor {visitor}: more than {MAX_HOPS} forwards");
    Err(ApiError::new(503, "unavailable", "the visitor store is unavailable; retry"))
}

/// Hands events (`{payload, channel, received_at}`) to the visitor's object;
/// answers `{visitor, score, tier, new}` (`visitor` is the one that took
/// them, after any forward).
pub async fn apply(env: &Env, site: &Site, visitor: &str, events: Vec<Value>) -> ApiResult<Value> {
    let rules = site.config.rules().to_json();
    let journey_timeout_ms = Some((site.config.attribution.journey_timeout_hours * 3_600_000.0) as i64);
    let (reply, _) = follow(env, &site.id, visitor, Method::Post, "/apply", |v| {
        Ok(serde_json::to_string(&ApplyRequest {
            site: site.id.clone(),
            visitor: v.to_owned(),
            rules: rules.clone(),
            conversions: site.config.conversions.clone(),
            webhooks: site.webhooks.clone(),
            journey_timeout_ms,
            events: events.clone(),
        })?)
    })
    .await?;
    Ok(reply)
}

pub async fn score(env: &Env, site: &Site, visitor: &str) -> ApiResult<Value> {
    let body = json!({"rules": site.config.rules().to_json()}).to_string();
    let (reply, _) = follow(env, &site.id, visitor, Method::Post, "/score", |_| Ok(body.clone())).await?;
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
    stamp: &ConsentStamp,
    at: Timestamp,
) -> ApiResult<Value> {
    let rules = site.config.rules().to_json();
    let (reply, _) = follow(env, &site.id, visitor, Method::Post, "/withdraw", |v| {
        Ok(json!({
            "site": site.id,
            "visitor": v,
            "rules": rules,
            "policy": {"cookieless_pageviews": site.config.consent.cookieless_pageviews, "sanitise": site.config.consent.sanitise},
            "consent": stamp.to_json(),
            "at": at.millis(),
            "device": device,
        })
        .to_string())
    })
    .await?;
    Ok(reply)
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
    for _ in 0..MAX_HOPS {
        let body = json!({"into": into}).to_string();
        let handed = call(env, &site.id, &from, Method::Post, "/handover", Some(body)).await?;
        if handed.get("retired").and_then(Value::as_bool) == Some(true) {
            // Merged already: its rows are wherever it forwards to.
            rekey(env, &site.id, &from, &into).await?;
            match handed.get("merged_into").and_then(Value::as_str) {
                Some(other) if other != into => {
                    from = other.to_owned();
                    continue;
                }
                _ => return Ok(into),
            }
        }
        let body = json!({
            "site": site.id,
            "visitor": into,
            "rules": site.config.rules().to_json(),
            "journey_timeout_ms": (site.config.attribution.journey_timeout_hours * 3_600_000.0) as i64,
            "ledger": handed.get("ledger").cloned().unwrap_or(Value::Array(Vec::new())),
            "journey": handed.get("journey").cloned().unwrap_or(Value::Array(Vec::new())),
            "withdrawals": handed.get("withdrawals").cloned().unwrap_or(Value::Array(Vec::new())),
            "closed_at": handed.get("closed_at").cloned().unwrap_or(Value::Null),
            "from": from,
        });
        let imported = call(env, &site.id, &into, Method::Post, "/import", Some(body.to_string())).await?;
        if let Some(next) = imported.get("moved_to").and_then(Value::as_str) {
            // `into` was merged away itself: `from` joins where it went (the
            // next hand-over re-points `from`'s forward there).
            into = next.to_owned();
            continue;
        }
        call(env, &site.id, &from, Method::Post, "/retire", None).await?;
        rekey(env, &site.id, &from, &into).await?;
        return Ok(into);
    }
    worker::console_error!("merge of {from}: more than {MAX_HOPS} forwards");
    Err(ApiError::new(503, "unavailable", "the visitor store is unavailable; retry"))
}

/// Every D1 row keyed by visitor `from` moves to `into`, in one batch (a
/// transaction); `into`'s row keeps the earlier first and later last visit.
async fn rekey(env: &Env, site: &str, from: &str, into: &str) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let ids = [site.into(), from.into(), into.into()];
    let mut statements = Vec::new();
    for table in ["events", "sessions", "identities", "conversions", "credits", "webhook_deliveries"] {
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
    db.batch(statements).await?;
    Ok(())
}

pub async fn export(env: &Env, site: &str, visitor: &str) -> ApiResult<Value> {
    call(env, site, visitor, Method::Get, "/export", None).await
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
        let reply = call(env, site, &v, Method::Delete, "/", None).await?;
        for m in reply.get("merged_from").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            todo.push(m.to_owned());
        }
        done.push(v);
    }
    Ok(done.len())
}

// ---- The object ------------------------------------------------------------

#[durable_object]
pub struct Visitor {
    state: State,
    env: Env,
    /// The scorer over the ledger, rebuilt lazily (after an eviction or a
    /// rule change), then fed incrementally.
    scorer: RefCell<Option<Scorer>>,
    /// The site's rules as last received and as validated: every request
    /// carries them, and comparing the JSON is ~10× cheaper than validating
    /// it again (27 µs → 3 µs natively for the default rules).
    rules: RefCell<Option<(Value, Rc<Rules>)>>,
}

#[derive(Deserialize)]
struct WithdrawRequest {
    site: String,
    visitor: String,
    rules: Value,
    policy: Value,
    consent: Value,
    at: i64,
    /// Only this anonymousId's events (a device not linked by a verified
    /// identity); `None`: the whole profile.
    #[serde(default)]
    device: Option<String>,
}

#[derive(Deserialize)]
struct HandoverRequest {
    into: String,
}

#[derive(Deserialize)]
struct ImportRequest {
    site: String,
    visitor: String,
    rules: Value,
    journey_timeout_ms: i64,
    ledger: Vec<HandedLedgerRow>,
    journey: Vec<HandedJourneyRow>,
    withdrawals: Vec<WithdrawalRow>,
    /// When the handing object's last journey closed (see `closed_at`).
    #[serde(default)]
    closed_at: Option<i64>,
    /// The handing visitor: kept (`merged_from`) so erasing this visitor
    /// erases its forward too.
    from: String,
}

#[derive(Serialize, Deserialize)]
struct HandedLedgerRow {
    message_id: String,
    ts: f64,
    received_at: f64,
    channel: Option<String>,
    payload: String,
}

#[derive(Serialize, Deserialize)]
struct HandedJourneyRow {
    message_id: String,
    ts: f64,
    channel: String,
}

/// A withdrawal as the object keeps it, to cut down events captured before
/// it that arrive after it.
struct Withdrawal {
    at: i64,
    consent: Consent,
    policy: MinimisePolicy,
    /// Only this device's events; `None`: every event.
    device: Option<String>,
}

impl Withdrawal {
    fn reaches(&self, e: &Event) -> bool {
        self.at >= e.timestamp.millis() && self.device.as_ref().is_none_or(|d| e.anonymous_id.as_ref() == Some(d))
    }
}

#[derive(Serialize, Deserialize)]
struct WithdrawalRow {
    at: f64,
    consent: String,
    policy: String,
    #[serde(default)]
    device: Option<String>,
}

#[derive(Deserialize)]
struct LedgerRow {
    payload: String,
    channel: Option<String>,
}

#[derive(Deserialize)]
struct SessionRow {
    session_id: String,
    started_at: f64,
    ended_at: f64,
    events: f64,
    channel: Option<String>,
    landing: Option<String>,
}

#[derive(Deserialize)]
struct TouchRow {
    channel: String,
    ts: f64,
}

impl DurableObject for Visitor {
    fn new(state: State, env: Env) -> Self {
        Visitor { state, env, scorer: RefCell::new(None), rules: RefCell::new(None) }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.run_alarm().await {
            worker::console_error!("visitor alarm: {}", e.message);
        }
        Response::ok("")
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // The schema, once per request; a visitor merged into another takes
        // no request of its own: it answers where it went (see `follow`).
        let own = matches!(req.path().as_str(), "/apply" | "/score" | "/withdraw" | "/import");
        if own && let Some(moved) = self.ensure_schema().and_then(|()| self.moved()).transpose() {
            return crate::errors::reply(moved.and_then(|v| Ok(Response::from_json(&v)?)));
        }
        let result = match (req.method(), req.path().as_str()) {
            (Method::Post, "/apply") => match req.json::<ApplyRequest>().await {
                Ok(body) => self.apply(body).await,
                Err(e) => Err(ApiError::bad_request("invalid_apply", e.to_string())),
            },
            (Method::Post, "/score") => match req.json::<Value>().await {
                Ok(body) => self.score(body.get("rules").unwrap_or(&Value::Null)),
                Err(e) => Err(ApiError::bad_request("invalid_score", e.to_string())),
            },
            (Method::Post, "/withdraw") => match req.json::<WithdrawRequest>().await {
                Ok(body) => self.withdraw(body).await,
                Err(e) => Err(ApiError::bad_request("invalid_withdraw", e.to_string())),
            },
            (Method::Get, "/export") => self.export(),
            (Method::Post, "/handover") => match req.json::<HandoverRequest>().await {
                Ok(body) => self.handover(&body.into),
                Err(e) => Err(ApiError::bad_request("invalid_handover", e.to_string())),
            },
            (Method::Post, "/retire") => self.retire().await,
            (Method::Post, "/import") => match req.json::<ImportRequest>().await {
                Ok(body) => self.import(body).await,
                Err(e) => Err(ApiError::bad_request("invalid_import", e.to_string())),
            },
            (Method::Delete, "/") => self.erase().await,
            _ => Err(ApiError::new(404, "not_found", "no such visitor route")),
        };
        crate::errors::reply(result.and_then(|v| Ok(Response::from_json(&v)?)))
    }
}

fn ledger_limits() -> Limits {
    // Stored events were validated on arrival; re-reading them must not
    // depend on how old they are now.
    Limits { max_age_ms: i64::MAX / 4, max_future_ms: i64::MAX / 4, ..Limits::DEFAULT }
}

fn now_ts() -> ApiResult<Timestamp> {
    Timestamp::from_millis(now_ms()).ok_or_else(|| ApiError::new(500, "internal", "clock out of range"))
}

impl Visitor {
    /// `raw` validated by the core, or the rules already validated from the
    /// same JSON.
    fn rules(&self, raw: &Value) -> ApiResult<Rc<Rules>> {
        if let Some((seen, rules)) = self.rules.borrow().as_ref()
            && seen == raw
        {
            return Ok(Rc::clone(rules));
        }
        let rules = Rc::new(
            Rules::from_json_value(raw).map_err(|e| ApiError::bad_request("invalid_rules", format!("rules: {e}")))?,
        );
        *self.rules.borrow_mut() = Some((raw.clone(), Rc::clone(&rules)));
        Ok(rules)
    }

    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn ensure_schema(&self) -> ApiResult<()> {
        let sql = self.sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS ledger (message_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, \
             received_at INTEGER NOT NULL, channel TEXT, payload TEXT NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS journey (message_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, channel TEXT NOT NULL)",
            None,
        )?;
        sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", None)?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS withdrawals (at INTEGER NOT NULL, consent TEXT NOT NULL, policy TEXT NOT NULL, \
             device TEXT)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, \
             ended_at INTEGER NOT NULL, events INTEGER NOT NULL, channel TEXT, landing TEXT)",
            None,
        )?;
        webhooks::ensure_schema(&sql)?;
        // Objects made before withdrawals were scoped to a device.
        if self.meta("schema")?.is_none() {
            let _ = sql.exec("ALTER TABLE withdrawals ADD COLUMN device TEXT", None);
            self.set_meta("schema", "2")?;
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> ApiResult<Option<String>> {
        #[derive(Deserialize)]
        struct M {
            value: String,
        }
        let rows: Vec<M> =
            self.sql().exec("SELECT value FROM meta WHERE key = ?", vec![SqlStorageValue::from(key)])?.to_array()?;
        Ok(rows.into_iter().next().map(|m| m.value))
    }

    fn set_meta(&self, key: &str, value: &str) -> ApiResult<()> {
        self.sql().exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![SqlStorageValue::from(key), SqlStorageValue::from(value)],
        )?;
        Ok(())
    }

    /// Which site and visitor this object is (for its alarm), set once.
    fn remember(&self, site: &str, visitor: &str) -> ApiResult<()> {
        for (k, v) in [("site", site), ("visitor", visitor)] {
            self.sql().exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
                vec![SqlStorageValue::from(k), SqlStorageValue::from(v)],
            )?;
        }
        Ok(())
    }

    /// Where this visitor was merged into, if it was: it then takes no
    /// requests of its own.
    fn forward(&self) -> ApiResult<Option<String>> {
        self.meta("merged_into")
    }

    fn moved(&self) -> ApiResult<Option<Value>> {
        Ok(self.forward()?.map(|to| json!({"moved_to": to})))
    }

    /// The timestamp of the latest touch of the last journey that closed (by
    /// its conversion, or expired). A touch at or before it belongs to a path
    /// already counted, so it never opens the next one — a late offline
    /// event, or another device's touch brought in by a merge.
    fn closed_at(&self) -> ApiResult<Option<i64>> {
        Ok(self.meta("journey_closed_at")?.and_then(|v| v.parse().ok()))
    }

    fn close_journey_at(&self, ts: i64) -> ApiResult<()> {
        if self.closed_at()?.is_none_or(|c| c < ts) {
            self.set_meta("journey_closed_at", &ts.to_string())?;
        }
        Ok(())
    }

    /// When the open journey expires, if there is one.
    fn journey_expiry(&self) -> ApiResult<Option<i64>> {
        if self.count("journey")? == 0 {
            return Ok(None);
        }
        Ok(self.meta("journey_expires_at")?.and_then(|v| v.parse().ok()))
    }

    /// One alarm serves both the webhook outbox and the journey expiry: it is
    /// set to the earlier of the two (setting it replaces any earlier one).
    async fn schedule(&self) -> ApiResult<()> {
        #[derive(Deserialize)]
        struct Next {
            next_at: Option<f64>,
        }
        let rows: Vec<Next> = self.sql().exec("SELECT MIN(next_at) AS next_at FROM outbox", None)?.to_array()?;
        let next_webhook = rows.first().and_then(|n| n.next_at).map(|t| t as i64);
        let next = match (next_webhook, self.journey_expiry()?) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            self.state.storage().set_alarm((at - now_ms()).max(0)).await?;
        }
        Ok(())
    }

    async fn run_alarm(&self) -> ApiResult<()> {
        self.ensure_schema()?;
        let (Some(site), Some(visitor)) = (self.meta("site")?, self.meta("visitor")?) else { return Ok(()) };
        webhooks::deliver_due(&self.state, &self.env, &site, &visitor).await?;
        if self.journey_expiry()?.is_some_and(|at| at <= now_ms()) {
            // Close the journey (no await in between) and count it as a null.
            let touches: Vec<TouchRow> =
                self.sql().exec("SELECT channel, ts FROM journey ORDER BY ts, message_id", None)?.to_array()?;
            self.sql().exec("DELETE FROM journey", None)?;
            if let Some(last) = touches.iter().map(|t| t.ts as i64).max() {
                self.close_journey_at(last)?;
            }
            let path = touches.iter().map(|t| t.channel.as_str()).collect::<Vec<_>>().join(conversions::PATH_SEPARATOR);
            conversions::store_null(&self.env, &site, &path).await?;
        }
        self.schedule().await
    }

    fn parse_row(row: &LedgerRow, now: Timestamp) -> Option<Event> {
        let raw: Value = serde_json::from_str(&row.payload).ok()?;
        let mut e = Event::parse(&raw, &ledger_limits(), now).ok()?;
        e.channel = row.channel.as_deref().and_then(|c| microfunnel_core::Channel::parse(c).ok());
        Some(e)
    }

    fn ledger(&self, now: Timestamp) -> ApiResult<Vec<Event>> {
        let rows: Vec<LedgerRow> =
            self.sql().exec("SELECT payload, channel FROM ledger ORDER BY ts, message_id", None)?.to_array()?;
        Ok(rows.iter().filter_map(|r| Self::parse_row(r, now)).collect())
    }

    /// The scorer for `rules`, rebuilt from the ledger when missing or when
    /// the rules changed.
    fn with_scorer<T>(&self, rules: &Rules, now: Timestamp, f: impl FnOnce(&mut Scorer) -> T) -> ApiResult<T> {
        let mut slot = self.scorer.borrow_mut();
        let stale = slot.as_ref().is_none_or(|s| s.rules() != rules);
        if stale {
            let mut s = Scorer::new(rules.clone());
            for e in self.ledger(now)? {
                s.apply(&e);
            }
            *slot = Some(s);
        }
        match slot.as_mut() {
            Some(s) => Ok(f(s)),
            None => Err(ApiError::new(500, "internal", "scorer missing")),
        }
    }

    async fn apply(&self, body: ApplyRequest) -> ApiResult<Value> {
        // Schema ensured and forward checked by `fetch`.
        let sql = self.sql();
        let now = now_ts()?;
        let rules = self.rules(&body.rules)?;
        self.remember(&body.site, &body.visitor)?;
        // The scorer must exist before new rows land, or a rebuild would
        // count them and the incremental step would count them again.
        self.with_scorer(&rules, now, |_| ())?;
        let withdrawals = self.withdrawals()?;
        let mut fresh: Vec<(Event, i64, Source)> = Vec::new();
        for item in &body.events {
            let payload = item.get("payload").and_then(Value::as_str).unwrap_or_default();
            let channel = item.get("channel").and_then(Value::as_str).map(str::to_owned);
            let received_at = item.get("received_at").and_then(Value::as_i64).unwrap_or_else(|| now.millis());
            // Only what the Worker authenticated is a server's; anything else
            // is treated as the public endpoint's claim.
            let source = match item.get("source").and_then(Value::as_str) {
                Some("server") => Source::Server,
                _ => Source::Browser,
            };
            let row = LedgerRow { payload: payload.to_owned(), channel: channel.clone() };
            let Some(event) = Self::parse_row(&row, now) else {
                return Err(ApiError::bad_request("invalid_apply", "an event payload does not parse"));
            };
            // Captured before a withdrawal this object already knows of:
            // cut down to it by the core, or not kept at all.
            let later: Vec<&Withdrawal> = withdrawals.iter().filter(|w| w.reaches(&event)).collect();
            let (event, payload, channel) = if later.is_empty() {
                (event, payload.to_owned(), channel)
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
            let cursor = sql.exec(
                "INSERT INTO ledger (message_id, ts, received_at, channel, payload) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT(message_id) DO NOTHING",
                vec![
                    SqlStorageValue::from(event.message_id.to_string()),
                    SqlStorageValue::from(event.timestamp.millis()),
                    SqlStorageValue::from(received_at),
                    SqlStorageValue::from(channel),
                    SqlStorageValue::from(payload.as_str()),
                ],
            )?;
            // Drain the cursor so the write counts are final.
            let _ = cursor.to_array::<Value>();
            if cursor.rows_written() > 0 {
                fresh.push((event, received_at, source));
            }
        }
        fresh.sort_by_key(|(e, _, _)| (e.timestamp, e.message_id));
        // Everything that changes this object's state happens here, with no
        // await in between: concurrent requests for the visitor cannot
        // interleave inside it. The D1 writes that follow are idempotent.
        let mut tier_changes = Vec::new();
        let mut pending = Vec::new();
        let mut touched_sessions: Vec<String> = Vec::new();
        for (event, received_at, source) in &fresh {
            if let Some(change) = self.with_scorer(&rules, now, |s| s.apply(event))? {
                tier_changes.push(json!(change));
            }
            self.journey_step(event)?;
            let session = self.session_step(event)?;
            if !touched_sessions.contains(&session) {
                touched_sessions.push(session);
            }
            if let Some(def) = conversion_def(&body.conversions, event) {
                let touches: Vec<TouchRow> =
                    sql.exec("SELECT channel, ts FROM journey ORDER BY ts, message_id", None)?.to_array()?;
                let touches: Vec<(String, i64)> = touches.into_iter().map(|t| (t.channel, t.ts as i64)).collect();
                pending.push(conversions::compute(&body.visitor, event, def, &touches, *received_at, *source));
                // The journey closes with its conversion.
                sql.exec("DELETE FROM journey", None)?;
                self.close_journey_at(event.timestamp.millis())?;
            }
        }
        let (score, snapshot) = self.with_scorer(&rules, now, |s| (s.score(now), s.snapshot()))?;
        let events_total = self.count("ledger")?;
        let mut converted = Vec::new();
        for p in pending {
            converted.push(conversions::store(&self.env, &body.site, p).await?);
        }
        if !body.webhooks.is_empty() && (!tier_changes.is_empty() || !converted.is_empty()) {
            for (i, change) in tier_changes.iter().enumerate() {
                let id = format!("{}:{i}", fresh.first().map(|(e, _, _)| e.message_id.to_string()).unwrap_or_default());
                let note = webhooks::body("tier_changed", &body.site, &body.visitor, change.clone());
                webhooks::enqueue(&sql, &body.webhooks, &id, "tier_changed", &note)?;
            }
            for c in &converted {
                let id = c.get("message_id").and_then(Value::as_str).unwrap_or_default();
                let note = webhooks::body("conversion", &body.site, &body.visitor, c.clone());
                webhooks::enqueue(&sql, &body.webhooks, id, "conversion", &note)?;
            }
        }
        if let Some(t) = body.journey_timeout_ms {
            self.set_meta("journey_expires_at", &(now.millis().saturating_add(t)).to_string())?;
        }
        self.schedule().await?;
        let sessions = self.sessions(&touched_sessions)?;
        self.save_summary(&body.site, &body.visitor, &score, &snapshot, events_total, &fresh).await?;
        self.save_sessions(&body.site, &body.visitor, &sessions).await?;
        Ok(json!({
            "visitor": body.visitor,
            "score": score.score,
            "tier": score.tier,
            "new": fresh.len(),
            "tier_changes": tier_changes,
            "conversions": converted,
        }))
    }

    /// Journey: a touch per page view (or declared offline channel) whose
    /// channel differs from the last touch's, or after a session gap.
    fn journey_step(&self, event: &Event) -> ApiResult<()> {
        let declared = event.context.channel.is_some();
        if event.kind != EventType::Page && !declared {
            return Ok(());
        }
        let Some(channel) = event.channel.as_ref().map(|c| c.name().to_owned()) else { return Ok(()) };
        if self.closed_at()?.is_some_and(|c| event.timestamp.millis() <= c) {
            return Ok(());
        }
        let sql = self.sql();
        let last: Vec<TouchRow> =
            sql.exec("SELECT channel, ts FROM journey ORDER BY ts DESC, message_id DESC LIMIT 1", None)?.to_array()?;
        let new_touch = match last.first() {
            None => true,
            Some(t) => declared || t.channel != channel || event.timestamp.millis() - (t.ts as i64) >= SESSION_GAP_MS,
        };
        if new_touch {
            sql.exec(
                "INSERT INTO journey (message_id, ts, channel) VALUES (?, ?, ?) ON CONFLICT(message_id) DO NOTHING",
                vec![
                    SqlStorageValue::from(event.message_id.to_string()),
                    SqlStorageValue::from(event.timestamp.millis()),
                    SqlStorageValue::from(channel),
                ],
            )?;
        }
        Ok(())
    }

    /// Sessions: an event within `SESSION_GAP_MS` of the latest session
    /// that started before it extends that session; otherwise it starts one.
    /// Returns the session's id.
    fn session_step(&self, event: &Event) -> ApiResult<String> {
        let sql = self.sql();
        let ts = event.timestamp.millis();
        let rows: Vec<SessionRow> = sql
            .exec(
                "SELECT session_id, started_at, ended_at, events, channel, landing FROM sessions \
                 WHERE started_at <= ? ORDER BY started_at DESC LIMIT 1",
                vec![SqlStorageValue::from(ts)],
            )?
            .to_array()?;
        if let Some(s) = rows.first()
            && ts - (s.ended_at as i64) < SESSION_GAP_MS
        {
            sql.exec(
                "UPDATE sessions SET ended_at = MAX(ended_at, ?), events = events + 1 WHERE session_id = ?",
                vec![SqlStorageValue::from(ts), SqlStorageValue::from(s.session_id.as_str())],
            )?;
            return Ok(s.session_id.clone());
        }
        let id = event.message_id.to_string();
        sql.exec(
            "INSERT INTO sessions (session_id, started_at, ended_at, events, channel, landing) VALUES (?, ?, ?, 1, ?, ?) \
             ON CONFLICT(session_id) DO NOTHING",
            vec![
                SqlStorageValue::from(id.as_str()),
                SqlStorageValue::from(ts),
                SqlStorageValue::from(ts),
                SqlStorageValue::from(event.channel.as_ref().map(|c| c.name().to_owned())),
                SqlStorageValue::from(event.context.page.path.clone()),
            ],
        )?;
        Ok(id)
    }

    fn sessions(&self, ids: &[String]) -> ApiResult<Vec<SessionRow>> {
        let mut out = Vec::new();
        for id in ids {
            let rows: Vec<SessionRow> = self
                .sql()
                .exec(
                    "SELECT session_id, started_at, ended_at, events, channel, landing FROM sessions WHERE session_id = ?",
                    vec![SqlStorageValue::from(id.as_str())],
                )?
                .to_array()?;
            out.extend(rows);
        }
        Ok(out)
    }

    async fn save_sessions(&self, site: &str, visitor: &str, sessions: &[SessionRow]) -> ApiResult<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let db = self.env.d1("DB")?;
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

    fn count(&self, table: &str) -> ApiResult<i64> {
        #[derive(Deserialize)]
        struct N {
            n: f64,
        }
        let rows: Vec<N> = self.sql().exec(&format!("SELECT COUNT(*) AS n FROM {table}"), None)?.to_array()?;
        Ok(rows.first().map_or(0, |r| r.n as i64))
    }

    async fn save_summary(
        &self,
        site: &str,
        visitor: &str,
        score: &microfunnel_core::scoring::Score,
        snapshot: &microfunnel_core::scoring::Snapshot,
        events: i64,
        fresh: &[(Event, i64, Source)],
    ) -> ApiResult<()> {
        let now = now_ms();
        let first = fresh.iter().map(|(e, _, _)| e.timestamp.millis()).min().unwrap_or(now);
        let last = fresh.iter().map(|(e, _, _)| e.timestamp.millis()).max().unwrap_or(now);
        let user_id = fresh.iter().rev().find_map(|(e, _, _)| e.user_id.clone());
        let db = self.env.d1("DB")?;
        db.prepare(
            "INSERT INTO visitors (site_id, visitor_id, user_id, first_seen, last_seen, events, score_milli, tier, \
             rules_version, drivers, engagement_milli, fit_milli, last_activity_ms, last_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT(site_id, visitor_id) \
             DO UPDATE SET user_id = COALESCE(excluded.user_id, visitors.user_id), \
             first_seen = MIN(visitors.first_seen, excluded.first_seen), \
             last_seen = MAX(visitors.last_seen, excluded.last_seen), events = excluded.events, \
             score_milli = excluded.score_milli, tier = excluded.tier, rules_version = excluded.rules_version, \
             drivers = excluded.drivers, engagement_milli = excluded.engagement_milli, fit_milli = excluded.fit_milli, \
             last_activity_ms = excluded.last_activity_ms, last_at_ms = excluded.last_at_ms \
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

    fn score(&self, rules: &Value) -> ApiResult<Value> {
        // Schema ensured and forward checked by `fetch`.
        let rules = self.rules(rules)?;
        let now = now_ts()?;
        let score = self.with_scorer(&rules, now, |s| s.score(now))?;
        Ok(json!(score))
    }

    fn export(&self) -> ApiResult<Value> {
        self.ensure_schema()?;
        let sql = self.sql();
        let ledger: Vec<Value> = sql
            .exec("SELECT message_id, ts, received_at, channel, payload FROM ledger ORDER BY ts", None)?
            .to_array()?;
        let ledger: Vec<Value> = ledger
            .into_iter()
            .map(|mut row| {
                if let Some(p) = row.get("payload").and_then(Value::as_str).and_then(|p| serde_json::from_str(p).ok())
                    && let Some(obj) = row.as_object_mut()
                {
                    obj.insert("payload".into(), p);
                }
                row
            })
            .collect();
        let journey: Vec<Value> =
            sql.exec("SELECT message_id, ts, channel FROM journey ORDER BY ts", None)?.to_array()?;
        let withdrawals: Vec<Value> = sql.exec("SELECT at, consent FROM withdrawals ORDER BY at", None)?.to_array()?;
        let merged_into = self.forward()?;
        Ok(json!({"ledger": ledger, "journey": journey, "withdrawals": withdrawals, "merged_into": merged_into}))
    }

    /// After the ledger changed other than by new events (a withdrawal, a
    /// merge): the scorer is rebuilt over the whole ledger and the visitor's
    /// row gets the new score, tier, drivers and event count.
    async fn rescore(
        &self,
        site: &str,
        visitor: &str,
        rules: &Rules,
        now: Timestamp,
    ) -> ApiResult<(microfunnel_core::scoring::Score, i64)> {
        *self.scorer.borrow_mut() = None;
        let (score, snapshot) = self.with_scorer(rules, now, |s| (s.score(now), s.snapshot()))?;
        let events = self.count("ledger")?;
        self.env
            .d1("DB")?
            .prepare(
                "UPDATE visitors SET events = ?3, score_milli = ?4, tier = ?5, rules_version = ?6, drivers = ?7, \
                 engagement_milli = ?8, fit_milli = ?9, last_activity_ms = ?10, last_at_ms = ?11 \
                 WHERE site_id = ?1 AND visitor_id = ?2",
            )
            .bind(
                &[site.into(), visitor.into(), js_num(events)]
                    .into_iter()
                    .chain(score_columns(&score, &snapshot)?)
                    .collect::<Vec<_>>(),
            )?
            .run()
            .await?;
        Ok((score, events))
    }

    /// Everything `into`'s object needs to take this visitor over (raw rows),
    /// and from now on a forward to it, set with no await in between: a
    /// request arriving after the rows were read is forwarded, never left
    /// behind. Until `/retire` the forward may be re-pointed (`into` was
    /// itself merged away); after it, the answer is only where it went.
    fn handover(&self, into: &str) -> ApiResult<Value> {
        self.ensure_schema()?;
        if self.meta("retired")?.is_some() {
            return Ok(json!({"retired": true, "merged_into": self.forward()?}));
        }
        let sql = self.sql();
        let ledger: Vec<HandedLedgerRow> =
            sql.exec("SELECT message_id, ts, received_at, channel, payload FROM ledger", None)?.to_array()?;
        let journey: Vec<HandedJourneyRow> =
            sql.exec("SELECT message_id, ts, channel FROM journey", None)?.to_array()?;
        let withdrawals: Vec<WithdrawalRow> =
            sql.exec("SELECT at, consent, policy, device FROM withdrawals", None)?.to_array()?;
        let closed_at = self.closed_at()?;
        self.set_meta("merged_into", into)?;
        Ok(json!({"ledger": ledger, "journey": journey, "withdrawals": withdrawals, "closed_at": closed_at}))
    }

    /// After `into` took the rows over: they go, the forward stays. Pending
    /// webhook deliveries stay too, and their alarm.
    async fn retire(&self) -> ApiResult<Value> {
        self.ensure_schema()?;
        if self.forward()?.is_none() {
            return Err(ApiError::new(409, "not_handed_over", "retire comes after a hand-over"));
        }
        let sql = self.sql();
        for table in ["ledger", "journey", "withdrawals", "sessions"] {
            sql.exec(&format!("DELETE FROM {table}"), None)?;
        }
        self.set_meta("retired", "1")?;
        *self.scorer.borrow_mut() = None;
        self.schedule().await?;
        Ok(json!({"retired": true}))
    }

    /// Takes over another visitor's rows (same person, another device): its
    /// ledger joins this one (de-duplicated), its open touches join the open
    /// journey, and the score is rebuilt over both. Conversions already
    /// attributed stay as they were.
    async fn import(&self, body: ImportRequest) -> ApiResult<Value> {
        // Schema ensured and forward checked by `fetch`.
        let now = now_ts()?;
        let rules = self.rules(&body.rules)?;
        let sql = self.sql();
        self.remember(&body.site, &body.visitor)?;
        // Each row as its statement's parameters; `ON CONFLICT` makes a
        // repeated merge a no-op.
        let ledger = body.ledger.iter().map(|r| {
            vec![
                SqlStorageValue::from(r.message_id.as_str()),
                SqlStorageValue::from(r.ts as i64),
                SqlStorageValue::from(r.received_at as i64),
                SqlStorageValue::from(r.channel.clone()),
                SqlStorageValue::from(r.payload.as_str()),
            ]
        });
        let journey = body.journey.iter().map(|j| {
            vec![
                SqlStorageValue::from(j.message_id.as_str()),
                SqlStorageValue::from(j.ts as i64),
                SqlStorageValue::from(j.channel.as_str()),
            ]
        });
        let withdrawals = body.withdrawals.iter().map(|w| {
            vec![
                SqlStorageValue::from(w.at as i64),
                SqlStorageValue::from(w.consent.as_str()),
                SqlStorageValue::from(w.policy.as_str()),
                SqlStorageValue::from(w.device.clone()),
            ]
        });
        let inserts: [(&str, Vec<Vec<SqlStorageValue>>); 3] = [
            (
                "INSERT INTO ledger (message_id, ts, received_at, channel, payload) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT(message_id) DO NOTHING",
                ledger.collect(),
            ),
            (
                "INSERT INTO journey (message_id, ts, channel) VALUES (?, ?, ?) ON CONFLICT(message_id) DO NOTHING",
                journey.collect(),
            ),
            ("INSERT INTO withdrawals (at, consent, policy, device) VALUES (?, ?, ?, ?)", withdrawals.collect()),
        ];
        for (statement, rows) in inserts {
            for row in rows {
                sql.exec(statement, row)?;
            }
        }
        let mut from: Vec<String> =
            self.meta("merged_from")?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        if !from.contains(&body.from) {
            from.push(body.from.clone());
            self.set_meta("merged_from", &serde_json::to_string(&from)?)?;
        }
        // Touches of a path either device already closed count for neither.
        if let Some(c) = body.closed_at {
            self.close_journey_at(c)?;
        }
        if let Some(c) = self.closed_at()? {
            sql.exec("DELETE FROM journey WHERE ts <= ?", vec![SqlStorageValue::from(c)])?;
        }
        if !body.journey.is_empty() {
            self.set_meta("journey_expires_at", &(now.millis().saturating_add(body.journey_timeout_ms)).to_string())?;
        }
        let (score, events) = self.rescore(&body.site, &body.visitor, &rules, now).await?;
        self.schedule().await?;
        Ok(json!({"visitor": body.visitor, "score": score.score, "tier": score.tier, "events": events}))
    }

    fn withdrawals(&self) -> ApiResult<Vec<Withdrawal>> {
        let rows: Vec<WithdrawalRow> =
            self.sql().exec("SELECT at, consent, policy, device FROM withdrawals", None)?.to_array()?;
        let mut out = Vec::new();
        for r in rows {
            let stamp = serde_json::from_str::<Value>(&r.consent).ok().and_then(|v| ConsentStamp::parse(&v).ok());
            let policy = serde_json::from_str::<MinimisePolicy>(&r.policy).unwrap_or_default();
            if let Some(stamp) = stamp {
                out.push(Withdrawal {
                    at: r.at as i64,
                    consent: Consent::from_stamp(&stamp),
                    policy,
                    device: r.device,
                });
            }
        }
        Ok(out)
    }

    /// Cuts the ledger down to a withdrawal (by the core), drops the open
    /// journey without analytics, re-scores and updates the visitor's row.
    async fn withdraw(&self, body: WithdrawRequest) -> ApiResult<Value> {
        // Schema ensured and forward checked by `fetch`.
        let now = now_ts()?;
        let rules = self.rules(&body.rules)?;
        let stamp = ConsentStamp::parse(&body.consent).map_err(|e| ApiError::bad_request("invalid_withdraw", e))?;
        let consent = Consent::from_stamp(&stamp);
        let policy = serde_json::from_value::<MinimisePolicy>(body.policy.clone()).unwrap_or_default();
        let sql = self.sql();
        // Everything below until the D1 write runs with no await: no batch
        // for this visitor can interleave.
        // One row per device (and one for the whole profile): a new
        // withdrawal folds the earlier one in — the later instant, what both
        // allow. Late events between the two are cut a little more than they
        // had to be, never less, and the table stays bounded.
        let earlier: Vec<Withdrawal> = self.withdrawals()?.into_iter().filter(|w| w.device == body.device).collect();
        let mut kept_consent = consent;
        let mut kept_at = body.at;
        for w in &earlier {
            kept_consent = kept_consent.and(w.consent);
            kept_at = kept_at.max(w.at);
        }
        sql.exec("DELETE FROM withdrawals WHERE device IS ?", vec![SqlStorageValue::from(body.device.clone())])?;
        sql.exec(
            "INSERT INTO withdrawals (at, consent, policy, device) VALUES (?, ?, ?, ?)",
            vec![
                SqlStorageValue::from(kept_at),
                SqlStorageValue::from(kept_consent.stamp().to_json().to_string()),
                SqlStorageValue::from(body.policy.to_string()),
                SqlStorageValue::from(body.device.clone()),
            ],
        )?;
        #[derive(Deserialize)]
        struct Row {
            message_id: String,
            payload: String,
            channel: Option<String>,
        }
        let rows: Vec<Row> = sql
            .exec(
                "SELECT message_id, payload, channel FROM ledger WHERE ts <= ?",
                vec![SqlStorageValue::from(body.at)],
            )?
            .to_array()?;
        let (mut kept, mut removed) = (0, 0);
        for r in rows {
            let Some(event) = Self::parse_row(&LedgerRow { payload: r.payload, channel: r.channel }, now) else {
                continue;
            };
            if body.device.as_ref().is_some_and(|d| event.anonymous_id.as_ref() != Some(d)) {
                continue;
            }
            let cut = consent::withdraw(event, &consent, &policy).event;
            match cut {
                Some(e) => {
                    kept += 1;
                    sql.exec(
                        "UPDATE ledger SET payload = ?, channel = ? WHERE message_id = ?",
                        vec![
                            SqlStorageValue::from(serde_json::to_string(&e)?),
                            SqlStorageValue::from(e.channel.as_ref().map(|c| c.name().to_owned())),
                            SqlStorageValue::from(r.message_id),
                        ],
                    )?;
                }
                None => {
                    removed += 1;
                    sql.exec("DELETE FROM ledger WHERE message_id = ?", vec![SqlStorageValue::from(r.message_id)])?;
                }
            }
        }
        if !consent.allows(Purpose::Analytics) {
            // No journey goes on without analytics, not even to close as a
            // null path: the whole journey, or this device's touches.
            match &body.device {
                None => sql.exec("DELETE FROM journey", None)?,
                Some(_) => {
                    let ids: Vec<String> = self.ledger_ids()?;
                    sql.exec(
                        "DELETE FROM journey WHERE message_id NOT IN (SELECT value FROM json_each(?))",
                        vec![SqlStorageValue::from(serde_json::to_string(&ids)?)],
                    )?
                }
            };
        }
        let (score, _) = self.rescore(&body.site, &body.visitor, &rules, now).await?;
        self.schedule().await?;
        Ok(json!({
            "visitor": body.visitor,
            "score": score.score,
            "tier": score.tier,
            "kept": kept,
            "removed": removed,
        }))
    }

    /// The message ids left in the ledger.
    fn ledger_ids(&self) -> ApiResult<Vec<String>> {
        #[derive(Deserialize)]
        struct Id {
            message_id: String,
        }
        let rows: Vec<Id> = self.sql().exec("SELECT message_id FROM ledger", None)?.to_array()?;
        Ok(rows.into_iter().map(|r| r.message_id).collect())
    }

    async fn erase(&self) -> ApiResult<Value> {
        let had = self.ensure_schema().and_then(|()| self.count("ledger")).unwrap_or(0);
        let merged_from: Vec<String> =
            self.meta("merged_from").ok().flatten().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        self.state.storage().delete_alarm().await?;
        self.state.storage().delete_all().await?;
        *self.scorer.borrow_mut() = None;
        Ok(json!({"erased_events": had, "merged_from": merged_from}))
    }
}

/// The `visitors` columns a score fills, in their statement order:
/// `score_milli, tier, rules_version, drivers, engagement_milli, fit_milli,
/// last_activity_ms, last_at_ms`.
fn score_columns(
    score: &microfunnel_core::scoring::Score,
    snapshot: &microfunnel_core::scoring::Snapshot,
) -> ApiResult<[JsValue; 8]> {
    Ok([
        js_num(score.score.milli()),
        score.tier.as_str().into(),
        score.rules_version.as_str().into(),
        serde_json::to_string(&top_drivers(score))?.into(),
        js_num(snapshot.engagement_milli),
        js_num(snapshot.fit_milli),
        snapshot.last_activity_ms.map_or(JsValue::NULL, js_num),
        snapshot.last_at_ms.map_or(JsValue::NULL, js_num),
    ])
}

fn conversion_def<'a>(defs: &'a [ConversionDef], e: &Event) -> Option<&'a ConversionDef> {
    if e.kind != EventType::Track {
        return None;
    }
    let name = e.event.as_deref()?;
    defs.iter().find(|d| d.event == name)
}

/// A lead's top drivers for the leads report: points per action (and per fit
/// rule that still holds), largest first, at most ten. The full explanation
/// stays in the object (`GET /v1/subjects/{id}/score`).
fn top_drivers(score: &microfunnel_core::scoring::Score) -> Vec<Value> {
    use microfunnel_core::scoring::Driver;
    let mut by: Vec<(String, i64, u32)> = Vec::new();
    let mut add = |name: &str, points: i64, count: i64| match by.iter_mut().find(|(n, _, _)| n == name) {
        Some(e) => {
            e.1 += points;
            e.2 = e.2.saturating_add_signed(count as i32);
        }
        None => by.push((name.to_owned(), points, u32::try_from(count.max(0)).unwrap_or(0))),
    };
    for d in &score.drivers {
        match d {
            Driver::Action { action, points, .. } => add(action, *points, 1),
            Driver::FitGranted { rule, points, .. } => add(&format!("fit.{rule}"), *points, 1),
            Driver::FitRemoved { rule, points, .. } => add(&format!("fit.{rule}"), -*points, -1),
            _ => {}
        }
    }
    by.retain(|(_, points, count)| *points != 0 && *count > 0);
    by.sort_by(|a, b| b.1.abs().cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
    by.truncate(10);
    by.into_iter()
        .map(|(action, points, count)| serde_json::json!({"action": action, "points": points, "count": count}))
        .collect()
}
