//! Segment's HTTP Tracking API, so the server libraries a firm already has
//! (`@segment/analytics-node`, `segment-analytics-python`, …) send to us
//! unmodified: `POST /v1/batch` with a credential and a body
//! `{batch, sentAt?, context?, writeKey?}`, and `POST /v1/track`,
//! `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias` with
//! one message each.
//!
//! The credential is the site: its server key (`mfsk_…`) or an `ingest`
//! token (`mft_…`), as `Authorization: Basic base64(<key>:)` or as
//! `writeKey` in the body. The messages then go through the same pipeline
//! as `POST /v1/events` (server events: validated, minimised, stored once
//! by messageId, budgeted apart from browsers). Answers are what the
//! libraries read: `200 {"success": true}` (with our counts), a 400 for a
//! batch with nothing acceptable (the libraries do not retry it), 401 for
//! a wrong key, 429 with `Retry-After`, 5xx only for our own failures.
//!
//! A message without our consent stamp gets the site's declared basis for
//! server events (`consent.server_purposes`), recorded on the event.

use crate::access::{self, Permission, TOKEN_PREFIX};
use crate::auth::sha256_hex;
use crate::body;
use crate::errors::{ApiError, ApiResult, reply};
use crate::ingest::{Source, check, store, take_events};
use crate::ratelimit;
use crate::sites::Site;
use microfunnel_core::EventType;
use serde_json::{Map, Value};
use worker::{Env, Request, Response, Result, RouteContext};

/// Segment's own bound on a batch (500 KB), applied to the inflated body.
pub const MAX_BATCH_BODY: usize = 500 * 1024;
/// Segment's bound on one message (32 KB).
const MAX_MESSAGE_BODY: usize = 32 * 1024;

/// Whether a `POST /v1/batch` is Segment's form: it carries Basic auth.
/// (One with `writeKey` in its body is found once the body is read.)
pub fn is_segment_request(req: &Request) -> bool {
    authorization(req).is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// `POST /v1/batch` with a Segment credential.
pub async fn batch(mut req: Request, env: &Env) -> ApiResult<Response> {
    body::check_json_media_type(&req)?;
    let text = body::read_limited(&mut req, MAX_BATCH_BODY).await?;
    receive(&req, env, None, body::parse_json(&text)?).await
}

macro_rules! single_call {
    ($name:ident, $kind:expr) => {
        pub async fn $name(req: Request, ctx: RouteContext<()>) -> Result<Response> {
            reply(single(req, &ctx.env, $kind).await)
        }
    };
}
single_call!(track, EventType::Track);
single_call!(identify, EventType::Identify);
single_call!(page, EventType::Page);
single_call!(screen, EventType::Screen);
single_call!(group, EventType::Group);
single_call!(alias, EventType::Alias);

async fn single(mut req: Request, env: &Env, kind: EventType) -> ApiResult<Response> {
    body::check_json_media_type(&req)?;
    let text = body::read_limited(&mut req, MAX_MESSAGE_BODY).await?;
    receive(&req, env, Some(kind), body::parse_json(&text)?).await
}

/// A parsed body, either form: `kind` is the single call's type, `None`
/// for a batch.
pub async fn receive(req: &Request, env: &Env, kind: Option<EventType>, value: Value) -> ApiResult<Response> {
    let Value::Object(mut body) = value else {
        let shape = if kind.is_some() { "a message" } else { "{batch, sentAt?, context?}" };
        return Err(ApiError::bad_request("invalid_batch", format!("the body must be a JSON object: {shape}")));
    };
    let key = credential(req, &mut body)?;
    let site = site_of(req, env, &key).await?;
    let mut events = match kind {
        None => messages_of(body)?,
        Some(kind) => vec![one_message(body, kind)?],
    };
    // Segment gives a message sent without an id one of its own; so do we
    // (such a message cannot be told from its retry: the sender's choice).
    for event in &mut events {
        if let Value::Object(m) = event
            && m.get("messageId").is_none_or(Value::is_null)
        {
            m.insert("messageId".into(), Value::String(crate::auth::random_uuid()?));
        }
    }
    let user_key = crate::secrets::user_id_key(env, &site)?;
    let checked = check(&site, events, Source::Server, "", user_key.as_deref())?;
    ratelimit::server(env, &site, checked.passed()).await?;
    store(env, &site, checked, Source::Server, None).await?.into_segment_response()
}

/// The batch's messages, each given the batch's `context` (its own keys
/// win) and `sentAt` when it has none.
fn messages_of(mut body: Map<String, Value>) -> ApiResult<Vec<Value>> {
    if let Some(k) = body.keys().find(|k| !matches!(k.as_str(), "batch" | "sentAt" | "context" | "integrations")) {
        return Err(ApiError::bad_request("invalid_batch", format!("{k}: unknown field")));
    }
    let context = match body.remove("context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => Some(c),
        Some(_) => return Err(ApiError::bad_request("invalid_batch", "context: must be an object")),
    };
    let sent_at = match body.remove("sentAt") {
        None | Some(Value::Null) => None,
        Some(s @ Value::String(_)) => Some(s),
        Some(_) => return Err(ApiError::bad_request("invalid_batch", "sentAt: must be an RFC 3339 date-time")),
    };
    let mut events = take_events(body.remove("batch"))?;
    for event in &mut events {
        let Value::Object(m) = event else { continue }; // refused per event by the core
        if let Some(shared) = &context {
            let own = match m.remove("context") {
                Some(Value::Object(own)) => own,
                // A context of another shape is the core's to refuse.
                Some(other) => {
                    m.insert("context".into(), other);
                    continue;
                }
                None => Map::new(),
            };
            let mut merged = shared.clone();
            merged.extend(own);
            m.insert("context".into(), Value::Object(merged));
        }
        if let Some(s) = &sent_at {
            m.entry("sentAt").or_insert_with(|| s.clone());
        }
    }
    Ok(events)
}

/// A single call's message: its `type` is the endpoint's.
fn one_message(mut body: Map<String, Value>, kind: EventType) -> ApiResult<Value> {
    match body.get("type") {
        None | Some(Value::Null) => {
            body.insert("type".into(), Value::String(kind.as_str().into()));
        }
        Some(Value::String(t)) if t == kind.as_str() => {}
        Some(_) => {
            let k = kind.as_str();
            return Err(ApiError::bad_request("invalid_event", format!("type: must be {k} on /v1/{k}")));
        }
    }
    Ok(Value::Object(body))
}

/// The write key: Basic auth's user name (the password is empty and not
/// read) or the body's `writeKey`, which is removed from the body either way.
fn credential(req: &Request, body: &mut Map<String, Value>) -> ApiResult<String> {
    let in_body = match body.remove("writeKey") {
        None => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => return Err(unauthorized("writeKey: must be a string")),
    };
    let basic = match authorization(req) {
        Some((scheme, value)) if scheme.eq_ignore_ascii_case("basic") => Some(basic_user(&value)?),
        _ => None,
    };
    match (basic, in_body) {
        (Some(a), Some(b)) if a != b => Err(unauthorized("writeKey: differs from the Basic credential")),
        (Some(k), _) | (None, Some(k)) if !k.is_empty() => Ok(k),
        _ => Err(unauthorized("send Authorization: Basic base64(<server key>:) or the key as writeKey")),
    }
}

fn authorization(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get("Authorization").ok().flatten()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    Some((scheme.to_owned(), rest.trim().to_owned()))
}

/// `base64(<user>:<password>)` → the user.
fn basic_user(encoded: &str) -> ApiResult<String> {
    use base64::Engine;
    let bad = || unauthorized("Authorization: Basic must carry base64(<server key>:)");
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    Ok(text.split_once(':').map_or(text.as_str(), |(user, _)| user).to_owned())
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(401, "unauthorized", message)
}

/// The site a write key opens: an `ingest` token's site, or the site whose
/// server key it is (found by the key's SHA-256, all that is stored).
async fn site_of(req: &Request, env: &Env, key: &str) -> ApiResult<Site> {
    if key.starts_with(TOKEN_PREFIX) {
        let actor = access::authenticate_credential(req, env, key).await?;
        let access::Actor::Token { site, .. } = &actor else {
            return Err(unauthorized("the write key is not valid"));
        };
        access::permit(&actor, site, Permission::Ingest)?;
        return Site::load(env, site).await;
    }
    #[derive(serde::Deserialize)]
    struct Row {
        id: String,
    }
    let row: Option<Row> = env
        .d1("DB")?
        .prepare("SELECT id FROM sites WHERE secret_hash = ?1 AND secret_hash != ''")
        .bind(&[sha256_hex(key.as_bytes()).into()])?
        .first(None)
        .await?;
    match row {
        Some(r) => Site::load(env, &r.id).await,
        None => Err(ApiError::new(401, "invalid_write_key", "the write key is not a server key or ingest token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_batch_lends_its_context_and_sent_at_to_each_message() {
        let body = json!({
            "batch": [
                {"type": "track", "context": {"locale": "fr-FR"}},
                {"type": "track", "sentAt": "2026-01-01T00:00:00Z"},
                {"type": "track", "context": 7},
            ],
            "sentAt": "2026-12-04T10:00:00Z",
            "context": {"locale": "en-GB", "library": {"name": "x"}},
        });
        let Value::Object(m) = body else { unreachable!() };
        let out = messages_of(m).unwrap();
        assert_eq!(out[0]["context"], json!({"locale": "fr-FR", "library": {"name": "x"}}));
        assert_eq!(out[0]["sentAt"], "2026-12-04T10:00:00Z");
        assert_eq!(out[1]["sentAt"], "2026-01-01T00:00:00Z");
        assert_eq!(out[1]["context"]["locale"], "en-GB");
        assert_eq!(out[2]["context"], 7);
    }

    #[test]
    fn a_single_call_takes_its_type_from_the_endpoint() {
        let Value::Object(m) = json!({"event": "x"}) else { unreachable!() };
        assert_eq!(one_message(m, EventType::Track).unwrap()["type"], "track");
        let Value::Object(m) = json!({"type": "page"}) else { unreachable!() };
        let e = one_message(m, EventType::Track).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (400, "type: must be track on /v1/track"));
    }

    #[test]
    fn basic_auth_carries_the_key_as_its_user() {
        assert_eq!(basic_user("bWZza190ZXN0Og==").unwrap(), "mfsk_test"); // mfsk_test:
        assert_eq!(basic_user("bWZza190ZXN0").unwrap(), "mfsk_test"); // no colon
        assert_eq!(basic_user("%%%").unwrap_err().status, 401);
    }
}
