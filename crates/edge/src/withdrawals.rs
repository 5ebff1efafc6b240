//! `POST /v1/consent`: the browser module tells the collector that its
//! visitor withdrew a purpose (one `text/plain` POST, retried until answered;
//! the only thing it sends after a withdrawal: honouring it is necessary
//! processing), or granted one again. Each is kept as the device's consent
//! receipt, and the device's later events are held to its latest receipt:
//! a page cannot widen a stamp past what the visitor last chose. The
//! visitor's object then cuts its stored ledger down, by the core, to what
//! both each event's stamp and the withdrawal allow: without
//! personalization the score falls to what is left (the lead loses its
//! profile), without analytics the ledger and the open journey are emptied.
//! Events captured before the withdrawal that arrive after it (an in-flight
//! batch) are cut down the same way. The raw `events` rows stay: they record
//! what was collected while consent stood, under the site's retention.
//!
//! The endpoint is public, so a withdrawal reaches only what its sender can
//! be trusted with: the events that device sent — or the whole profile when
//! the device is linked to it by a verified identity (a server event or a
//! signed identify). No one can wipe another person's profile with an id.
//!
//! Body: `{site, anonymousId, consent: {analytics, personalization,
//! marketing, policy}, timestamp}`. Answers counts about the device's own
//! events only: `{withdrawn, kept, removed}` (`withdrawn: false` when the
//! collector holds nothing for that id).

use crate::body;
use crate::cors;
use crate::errors::{ApiError, ApiResult, reply};
use crate::ratelimit;
use crate::sites::{Site, now_ms};
use crate::visitor;
use microfunnel_core::consent::ConsentStamp;
use microfunnel_core::event::MessageId;
use microfunnel_core::{Limits, Timestamp};
use serde_json::{Value, json};
use worker::{Env, Request, Response, Result, RouteContext};

/// A withdrawal is a few hundred bytes.
const MAX_BODY: usize = 4 * 1024;

pub async fn post(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let origin = cors::origin(&req);
    let (result, site) = inner(req, &ctx.env).await;
    cors::finish(&ctx.env, reply(result)?, origin.as_deref(), site.as_ref()).await
}

fn field<'a>(body: &'a serde_json::Map<String, Value>, name: &str) -> ApiResult<&'a Value> {
    body.get(name).ok_or_else(|| ApiError::bad_request("invalid_withdrawal", format!("{name}: is required")))
}

async fn inner(mut req: Request, env: &Env) -> (ApiResult<Response>, Option<Site>) {
    let mut site_out = None;
    let result = async {
        body::check_json_media_type(&req)?;
        let text = body::read_limited(&mut req, MAX_BODY).await?;
        let Value::Object(b) = body::parse_json(&text)? else {
            return Err(ApiError::bad_request("invalid_withdrawal", "the body must be a JSON object"));
        };
        if let Some(k) = b.keys().find(|k| !matches!(k.as_str(), "site" | "anonymousId" | "consent" | "timestamp")) {
            return Err(ApiError::bad_request("invalid_withdrawal", format!("{k}: unknown field")));
        }
        let Value::String(site_id) = field(&b, "site")? else {
            return Err(ApiError::bad_request("invalid_withdrawal", "site: must be a string"));
        };
        let site = Site::load(env, site_id).await?;
        site_out = Some(site.clone());
        cors::check_origin(&req, &site)?;
        let anon = match field(&b, "anonymousId")? {
            // The module's own device id: always a UUID.
            Value::String(s) if MessageId::parse(s).is_ok_and(|id| id.is_uuid()) => s.clone(),
            Value::String(_) => {
                return Err(ApiError::bad_request("invalid_withdrawal", "anonymousId: must be the module's UUID"));
            }
            _ => return Err(ApiError::bad_request("invalid_withdrawal", "anonymousId: must be a string")),
        };
        let stamp = ConsentStamp::parse(field(&b, "consent")?)
            .map_err(|r| ApiError::bad_request("invalid_withdrawal", format!("consent: {r}")))?;
        let at = match field(&b, "timestamp")? {
            Value::String(s) => Timestamp::parse(s)
                .map_err(|r| ApiError::bad_request("invalid_withdrawal", format!("timestamp: {r}")))?,
            _ => return Err(ApiError::bad_request("invalid_withdrawal", "timestamp: must be an RFC 3339 string")),
        };
        // The same clock-skew bound as events: a withdrawal dated far ahead
        // would reach over events not yet captured.
        if at.millis() > now_ms().saturating_add(Limits::DEFAULT.max_future_ms) {
            return Err(ApiError::bad_request("invalid_withdrawal", "timestamp: must not be in the future"));
        }
        ratelimit::browser(env, &req, &site, 1).await?;
        let db = env.d1("DB")?;
        let row = db
            .prepare(
                "SELECT visitor_id, verified FROM identities WHERE site_id = ?1 AND kind = 'anonymous' AND value = ?2",
            )
            .bind(&[site.id.as_str().into(), anon.as_str().into()])?
            .first::<Value>(None)
            .await?;
        let Some(visitor_id) = row.as_ref().and_then(|r| r.get("visitor_id")).and_then(Value::as_str) else {
            return Ok(Response::from_json(&json!({"withdrawn": false, "kept": 0, "removed": 0}))?);
        };
        let verified = row.as_ref().and_then(|r| r.get("verified")).and_then(Value::as_i64).unwrap_or(0) > 0;
        let device = (!verified).then_some(anon.as_str());
        let out = visitor::withdraw(env, &site, visitor_id, device, &anon, &stamp, at).await?;
        let count = |k: &str| out.get(k).cloned().unwrap_or(json!(0));
        Ok(Response::from_json(&json!({"withdrawn": true, "kept": count("kept"), "removed": count("removed")}))?)
    }
    .await;
    (result, site_out)
}
