//! The Durable Object: decodes a request by its [`Route`], runs the
//! operation (`ops`) and encodes its [`Reply`]; its alarm delivers webhooks
//! and closes an expired journey.

use super::protocol::{
    ApplyRequest, Call, HandoverRequest, ImportRequest, Reply, Route, ScoreRequest, SweepRequest, WithdrawRequest,
};
use super::store::{MetaKey, Store};
use crate::conversions;
use crate::errors::{ApiError, ApiResult};
use crate::sites::now_ms;
use crate::webhooks;
use microfunnel_core::Timestamp;
use microfunnel_core::attribution::JourneyPath;
use microfunnel_core::conversion::Definitions;
use microfunnel_core::scoring::{ConversionStages, Rules, Scorer};
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};

#[durable_object]
pub struct Visitor {
    pub(super) state: State,
    pub(super) env: Env,
    /// The scorer over the ledger, rebuilt lazily (after an eviction or a
    /// rule change), then fed incrementally.
    scorer: RefCell<Option<Scorer>>,
    /// The site's rules and conversions as last received, and as validated:
    /// every request carries them, and comparing the JSON is ~10× cheaper
    /// than validating it again (27 µs → 3 µs natively for the default rules).
    rules: RefCell<Option<(Value, Definitions, Rc<Scoring>)>>,
}

/// What a score is computed under: the rules, and the stages the site's
/// conversions enter under them.
#[derive(Debug, PartialEq)]
pub(super) struct Scoring {
    pub(super) rules: Rules,
    pub(super) stages: ConversionStages,
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
        let Some(route) = Route::of(&req.method(), req.path().as_str()) else {
            return crate::errors::reply(Err(ApiError::new(404, "not_found", "no such visitor route")));
        };
        // The schema, once per request; a visitor merged into another takes
        // no request of its own: it answers where it went (see `client::follow`).
        if route.forwards() {
            let store = self.store();
            match store.ensure_schema().and_then(|()| store.forward()) {
                Err(e) => return crate::errors::reply(Err(e)),
                Ok(Some(to)) => return crate::errors::reply(encode(Ok(Reply::<()>::Moved { to }))),
                Ok(None) => {}
            }
        }
        let result = match route {
            Route::Apply => match decode::<ApplyRequest>(&mut req).await {
                Ok(body) => encode(self.apply(body).await.map(Reply::Done)),
                Err(e) => Err(e),
            },
            Route::Score => match decode::<ScoreRequest>(&mut req).await {
                Ok(body) => encode(self.score(&body.rules, &body.conversions).map(Reply::Done)),
                Err(e) => Err(e),
            },
            Route::Withdraw => match decode::<WithdrawRequest>(&mut req).await {
                Ok(body) => encode(self.withdraw(body).await.map(Reply::Done)),
                Err(e) => Err(e),
            },
            Route::Handover => match decode::<HandoverRequest>(&mut req).await {
                Ok(body) => encode(self.handover(&body.into, body.page).map(Reply::Done)),
                Err(e) => Err(e),
            },
            Route::Import => match decode::<ImportRequest>(&mut req).await {
                Ok(body) => encode(self.import(body).await.map(Reply::Done)),
                Err(e) => Err(e),
            },
            Route::Retire => encode(self.retire().await.map(Reply::Done)),
            Route::Export => encode(self.export().map(Reply::Done)),
            Route::Erase => encode(self.erase().await.map(Reply::Done)),
            Route::Sweep => match decode::<SweepRequest>(&mut req).await {
                Ok(body) => encode(self.sweep(body.before).await.map(Reply::Done)),
                Err(e) => Err(e),
            },
        };
        crate::errors::reply(result)
    }
}

/// The body of a request for `C`'s route; a body that does not decode is a 400.
async fn decode<C: Call>(req: &mut Request) -> ApiResult<C> {
    req.json::<C>().await.map_err(|e| ApiError::bad_request(C::ROUTE.invalid(), e.to_string()))
}

fn encode<T: Serialize>(reply: ApiResult<Reply<T>>) -> ApiResult<Response> {
    reply.and_then(|r| Ok(Response::from_json(&r)?))
}

pub(super) fn now_ts() -> ApiResult<Timestamp> {
    Timestamp::from_millis(now_ms()).ok_or_else(|| ApiError::new(500, "internal", "clock out of range"))
}

impl Visitor {
    pub(super) fn store(&self) -> Store {
        Store::new(self.state.storage().sql())
    }

    /// `raw` rules and the site's conversions validated by the core, or
    /// those already validated from the same input. Conversions naming a
    /// stage the rules lack fail closed (the Worker refuses to store them).
    pub(super) fn scoring(&self, raw: &Value, conversions: &Definitions) -> ApiResult<Rc<Scoring>> {
        if let Some((seen, defs, scoring)) = self.rules.borrow().as_ref()
            && seen == raw
            && defs == conversions
        {
            return Ok(Rc::clone(scoring));
        }
        let rules =
            Rules::from_json_value(raw).map_err(|e| ApiError::bad_request("invalid_rules", format!("rules: {e}")))?;
        let stages = conversions.stages(&rules).map_err(|e| ApiError::bad_request("invalid_rules", e.to_string()))?;
        let scoring = Rc::new(Scoring { rules, stages });
        *self.rules.borrow_mut() = Some((raw.clone(), conversions.clone(), Rc::clone(&scoring)));
        Ok(scoring)
    }

    /// The scorer for `rules`, rebuilt from the ledger when missing or when
    /// the rules changed.
    pub(super) fn with_scorer<T>(&self, scoring: &Scoring, f: impl FnOnce(&mut Scorer) -> T) -> ApiResult<T> {
        let mut slot = self.scorer.borrow_mut();
        let stale = slot.as_ref().is_none_or(|s| s.rules() != &scoring.rules || s.conversions() != &scoring.stages);
        if stale {
            // From the carry of rows the cap dropped, if any, then the ledger.
            let mut s = Scorer::resume(scoring.rules.clone(), scoring.stages.clone(), self.store().carry()?);
            let (events, skipped) = self.store().ledger()?;
            if skipped > 0 {
                worker::console_error!("visitor scorer rebuilt without {skipped} unreadable ledger rows");
            }
            for e in events {
                s.apply(&e);
            }
            *slot = Some(s);
        }
        match slot.as_mut() {
            Some(s) => Ok(f(s)),
            None => Err(ApiError::new(500, "internal", "scorer missing")),
        }
    }

    /// The next rebuild reads the whole ledger again.
    pub(super) fn drop_scorer(&self) {
        *self.scorer.borrow_mut() = None;
    }

    /// One alarm serves both the webhook outbox and the journey expiry: it is
    /// set to the earlier of the two (setting it replaces any earlier one).
    pub(super) async fn schedule(&self) -> ApiResult<()> {
        let store = self.store();
        let next = match (store.next_delivery()?, store.journey_expiry()?) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            self.state.storage().set_alarm((at - now_ms()).max(0)).await?;
        }
        Ok(())
    }

    async fn run_alarm(&self) -> ApiResult<()> {
        let store = self.store();
        store.ensure_schema()?;
        let (Some(site), Some(visitor)) = (store.meta(MetaKey::Site)?, store.meta(MetaKey::Visitor)?) else {
            return Ok(());
        };
        webhooks::deliver_due(&self.state, &self.env, &site, &visitor).await?;
        if store.journey_expiry()?.is_some_and(|at| at <= now_ms()) {
            // Close the journey (no await in between) and count it as a null.
            let touches = store.touches()?;
            store.clear_journey()?;
            if let Some(last) = touches.iter().map(|t| t.ts as i64).max() {
                store.close_journey_at(last)?;
            }
            let path = JourneyPath::of(touches.iter().map(|t| t.channel.as_str())).to_string();
            conversions::store_null(&self.env, &site, &path).await?;
        }
        self.schedule().await
    }
}
