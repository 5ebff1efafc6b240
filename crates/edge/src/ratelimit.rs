//! Rate limits: fixed one-minute windows, counted in memory by one `Limiter`
//! Durable Object per site — no D1 write on any request, so a flood of cheap
//! requests cannot use up the database all sites share.
//!
//! What counts, in this order (a request over a limit changes no other
//! counter and is refused before any D1 write):
//! 1. browser requests per address (the daily-salted hash of an IPv4
//!    address or an IPv6 /64) — every request, rejected ones included;
//! 2. only then, and only the events that passed validation, against the
//!    site's budget — browser events and authenticated server events each
//!    have their own, so no browser flood can hold back a CRM's conversions.
//!
//! Over a limit: 429 with `Retry-After` (seconds to the window's end). Counts
//! live in the object's memory: an object evicted while idle starts from
//! zero, which only ever errs towards letting a quiet site's traffic through.

use crate::auth::ip_hash;
use crate::errors::{ApiError, ApiResult};
use crate::sites::{Site, now_ms};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{
    DurableObject, Env, Method, Request, RequestInit, Response, Result, State, durable_object, wasm_bindgen::JsValue,
};

const WINDOW_MS: i64 = 60_000;
/// Distinct counters one object keeps before it drops those of past windows.
const PRUNE_AT: usize = 10_000;

/// Whose budget a request's events are charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    Browser,
    Server,
    /// Webhook deliveries: granted in part, as many as the window has room for.
    Webhooks,
}

/// One request's charge, as the Worker sends it to the site's limiter.
#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    /// The hashed address (browser requests only).
    address: Option<String>,
    address_limit: i64,
    budget: Budget,
    budget_limit: i64,
    /// Events that passed validation.
    events: i64,
    now: i64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Verdict {
    Ok,
    Over {
        what: Over,
        window_end: i64,
    },
    /// Webhooks: how many of the asked deliveries may go in this window.
    Granted {
        n: i64,
        window_end: i64,
    },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Over {
    Address,
    Site,
}

/// The address a request comes from, as the platform gives it. Without one
/// the request is refused: a shared "unknown" bucket would let one client
/// use up everyone's per-address allowance, or dodge its own.
fn client_ip(req: &Request) -> ApiResult<String> {
    let ip = req.headers().get("CF-Connecting-IP").ok().flatten().unwrap_or_default();
    if ip.trim().parse::<std::net::IpAddr>().is_ok() {
        Ok(ip)
    } else {
        Err(ApiError::bad_request(
            "no_client_address",
            "CF-Connecting-IP: the platform's client address is missing or not an IP address (the collector must run behind Cloudflare or a proxy that sets it)",
        ))
    }
}

fn events(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Charges a browser request: its address, then its `valid` events.
pub async fn browser(env: &Env, req: &Request, site: &Site, valid: usize) -> ApiResult<()> {
    let now = now_ms();
    let limits = &site.config.limits;
    let charge = Charge {
        address: Some(ip_hash(env, &client_ip(req)?, now.div_euclid(86_400_000))?),
        address_limit: limits.ip_per_minute,
        budget: Budget::Browser,
        budget_limit: limits.site_per_minute,
        events: events(valid),
        now,
    };
    enforce(env, site, &charge).await
}

/// Charges an authenticated server request's `valid` events to the site's
/// server budget.
pub async fn server(env: &Env, site: &Site, valid: usize) -> ApiResult<()> {
    let charge = Charge {
        address: None,
        address_limit: 0,
        budget: Budget::Server,
        budget_limit: site.config.limits.server_per_minute,
        events: events(valid),
        now: now_ms(),
    };
    enforce(env, site, &charge).await
}

/// How many of `n` due webhook deliveries the site may send now, and when
/// the window ends (when the rest may go).
pub async fn webhooks(env: &Env, site: &Site, n: usize) -> ApiResult<(usize, i64)> {
    let charge = Charge {
        address: None,
        address_limit: 0,
        budget: Budget::Webhooks,
        budget_limit: site.config.limits.webhooks_per_minute,
        events: events(n),
        now: now_ms(),
    };
    match ask(env, site, &charge).await? {
        Verdict::Granted { n, window_end } => Ok((usize::try_from(n).unwrap_or(0), window_end)),
        Verdict::Ok => Ok((n, charge.now)),
        Verdict::Over { window_end, .. } => Ok((0, window_end)),
    }
}

/// The site's limiter's verdict on one charge.
async fn ask(env: &Env, site: &Site, charge: &Charge) -> ApiResult<Verdict> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(JsValue::from_str(&serde_json::to_string(charge)?)));
    let req = Request::new_with_init("https://limiter/charge", &init)?;
    let stub = env.durable_object("LIMITER")?.id_from_name(&site.id)?.get_stub()?;
    let mut resp = stub.fetch_with_request(req).await?;
    match resp.json().await {
        Ok(v) if resp.status_code() == 200 => Ok(v),
        other => {
            worker::console_error!("limiter {}: {} {:?}", site.id, resp.status_code(), other.err());
            Err(ApiError::new(503, "unavailable", "the rate limiter is unavailable; retry"))
        }
    }
}

/// A charge over its limit is a 429 with `Retry-After`.
async fn enforce(env: &Env, site: &Site, charge: &Charge) -> ApiResult<()> {
    match ask(env, site, charge).await? {
        Verdict::Ok | Verdict::Granted { .. } => Ok(()),
        Verdict::Over { what, window_end } => {
            let what = match what {
                Over::Address => "too many requests from this address",
                Over::Site => "too many events for this site",
            };
            let mut e = ApiError::new(429, "rate_limited", format!("{what}; retry after the window ends"));
            e.retry_after = Some(((window_end - now_ms()) / 1000).max(1));
            Err(e)
        }
    }
}

/// The counters of one site, in memory: key → (window, count).
#[derive(Default)]
struct Counters(HashMap<String, (i64, i64)>);

impl Counters {
    fn get(&self, key: &str, window: i64) -> i64 {
        self.0.get(key).filter(|(w, _)| *w == window).map_or(0, |(_, n)| *n)
    }

    fn add(&mut self, key: &str, window: i64, n: i64) {
        let slot = self.0.entry(key.to_owned()).or_insert((window, 0));
        if slot.0 != window {
            *slot = (window, 0);
        }
        slot.1 = slot.1.saturating_add(n);
    }

    /// The whole decision: the address first, counted whatever follows; the
    /// budget only when the address passed, and only if it has room for all
    /// of the request's events.
    fn charge(&mut self, c: &Charge) -> Verdict {
        let window = c.now.div_euclid(WINDOW_MS);
        let window_end = window.saturating_add(1).saturating_mul(WINDOW_MS);
        if self.0.len() >= PRUNE_AT {
            self.0.retain(|_, (w, _)| *w == window);
        }
        if let Some(a) = &c.address {
            let key = ["ip:", a].concat();
            self.add(&key, window, 1);
            if self.get(&key, window) > c.address_limit {
                return Verdict::Over { what: Over::Address, window_end };
            }
        }
        let key = match c.budget {
            Budget::Browser => "site",
            Budget::Server => "server",
            Budget::Webhooks => {
                let n = c.budget_limit.saturating_sub(self.get("webhooks", window)).clamp(0, c.events);
                self.add("webhooks", window, n);
                return Verdict::Granted { n, window_end };
            }
        };
        if c.events > 0 {
            if self.get(key, window).saturating_add(c.events) > c.budget_limit {
                return Verdict::Over { what: Over::Site, window_end };
            }
            self.add(key, window, c.events);
        }
        Verdict::Ok
    }
}

#[durable_object]
pub struct Limiter {
    counters: RefCell<Counters>,
}

impl DurableObject for Limiter {
    fn new(_state: State, _env: Env) -> Self {
        Limiter { counters: RefCell::new(Counters::default()) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let charge: Charge = match req.json().await {
            Ok(c) => c,
            Err(e) => return Response::error(format!("invalid charge: {e}"), 400),
        };
        // No await from here on: the decision and the count are one step.
        let verdict = match self.counters.try_borrow_mut() {
            Ok(mut c) => c.charge(&charge),
            Err(_) => return Response::error("busy", 503),
        };
        Response::from_json(&verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn browser(address: &str, events: i64, now: i64) -> Charge {
        Charge {
            address: Some(address.into()),
            address_limit: 2,
            budget: Budget::Browser,
            budget_limit: 150,
            events,
            now,
        }
    }

    #[test]
    fn an_address_over_its_limit_never_charges_the_site() {
        let mut c = Counters::default();
        assert_eq!(c.charge(&browser("a", 0, 0)), Verdict::Ok);
        assert_eq!(c.charge(&browser("a", 0, 1)), Verdict::Ok);
        for _ in 0..50 {
            assert!(matches!(c.charge(&browser("a", 100, 2)), Verdict::Over { what: Over::Address, .. }));
        }
        assert_eq!(c.get("site", 0), 0, "refused requests charge nothing to the site");
        // Another address still gets the whole budget.
        assert_eq!(c.charge(&browser("b", 100, 3)), Verdict::Ok);
        assert!(matches!(c.charge(&browser("c", 51, 4)), Verdict::Over { what: Over::Site, .. }));
        assert_eq!(c.get("site", 0), 100, "a refused request's events are not charged");
        assert_eq!(c.charge(&browser("c", 50, 5)), Verdict::Ok);
    }

    #[test]
    fn server_events_have_a_budget_of_their_own_and_windows_roll_over() {
        let mut c = Counters::default();
        assert_eq!(c.charge(&browser("b", 150, 0)), Verdict::Ok);
        let server =
            Charge { address: None, address_limit: 0, budget: Budget::Server, budget_limit: 10, events: 10, now: 10 };
        assert_eq!(c.charge(&server), Verdict::Ok);
        assert!(matches!(c.charge(&browser("x", 1, 20)), Verdict::Over { what: Over::Site, window_end: 60_000 }));
        assert_eq!(c.charge(&browser("x", 1, 60_000)), Verdict::Ok, "a new window");
    }

    #[test]
    fn webhooks_are_granted_as_far_as_the_window_has_room() {
        let mut c = Counters::default();
        let ask = |n, now| Charge {
            address: None,
            address_limit: 0,
            budget: Budget::Webhooks,
            budget_limit: 5,
            events: n,
            now,
        };
        assert_eq!(c.charge(&ask(3, 0)), Verdict::Granted { n: 3, window_end: 60_000 });
        assert_eq!(c.charge(&ask(3, 1)), Verdict::Granted { n: 2, window_end: 60_000 });
        assert_eq!(c.charge(&ask(3, 2)), Verdict::Granted { n: 0, window_end: 60_000 });
        assert_eq!(c.charge(&ask(3, 60_001)), Verdict::Granted { n: 3, window_end: 120_000 });
    }

    #[test]
    fn the_charge_and_verdict_round_trip() {
        let c = browser("h", 3, 7);
        let back: Charge = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.events, 3);
        let v = Verdict::Over { what: Over::Site, window_end: 60_000 };
        assert_eq!(serde_json::from_str::<Verdict>(&serde_json::to_string(&v).unwrap()).unwrap(), v);
    }
}
