//! Transport: Segment-spec batches to `POST {api}/v1/batch`, as `text/plain`
//! (a "simple" request: no CORS preflight, and beacons are allowed).
//!
//! Batching by count (10) and time (2 s); `sendBeacon` on page hide within
//! 64 KB and 100 events per request (an event too large for any request is
//! dropped, not queued); a 4xx is final (those events are dropped, the rest
//! keep moving); retries with exponential backoff and jitter honouring
//! `Retry-After`; a queue persisted in localStorage (only with analytics
//! consent — the caller guarantees it), capped in count and bytes, with a
//! TTL, keyed by site; if storage throws, the queue simply lives in memory.
//! Every event carries a random `messageId`, so a retry the edge already
//! accepted is de-duplicated there.

use crate::app::{self, App};
use crate::js;
use microfunnel_core::{Purpose, Timestamp};
use wasm_bindgen::JsValue;

const BATCH_COUNT: usize = 10;
const BATCH_DELAY_MS: f64 = 2000.0;
const MAX_QUEUE: usize = 500;
const MAX_QUEUE_BYTES: usize = 256 * 1024;
/// Below the 64 KB beacon / keepalive limit, with room for the envelope.
const MAX_BODY: usize = 60 * 1024;
const TTL_MS: i64 = 7 * Timestamp::MILLIS_PER_DAY;
const MAX_BACKOFF_MS: f64 = 60_000.0;

#[derive(Default)]
pub struct Outbox {
    /// Events (JSON text) not yet sent.
    queue: Vec<String>,
    /// Events of the request in flight (put back in front on failure).
    inflight: Vec<String>,
    busy: bool,
    timer: bool,
    failures: u32,
    /// Withdrawal notices not yet delivered (memory only; see `withdrawal`).
    withdrawals: Vec<String>,
}

impl Outbox {
    pub fn clear(&mut self) {
        self.queue.clear();
        self.inflight.clear();
    }

    pub fn len(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }
}

/// At most this many events per request: the collector's own limit (a
/// beacon over it would be refused whole, after the queue was emptied).
const MAX_EVENTS: usize = 100;

/// `{api}/v1/<path>?site=<site>`: the site in the URL too, so the collector
/// can answer even an error about the body with the site's CORS headers
/// (site ids are `[a-z0-9_-]`: nothing to escape).
fn endpoint(app: &App, path: &str) -> String {
    let mut u = app.api.trim_end_matches('/').to_owned();
    u.push_str(path);
    u.push_str("?site=");
    u.push_str(&app.site);
    u
}

fn url(app: &App) -> String {
    endpoint(app, "/v1/batch")
}

pub fn push(app: &mut App, event: String) {
    // An event no request could carry would block the queue behind it.
    if !app.consent.allows(Purpose::Analytics) || event.len() + 1 > MAX_BODY {
        return;
    }
    app.out.queue.push(event);
    cap(&mut app.out.queue);
    app::save_soon(app);
    if app.out.queue.len() >= BATCH_COUNT {
        flush(app);
    } else {
        schedule(app, BATCH_DELAY_MS);
    }
}

fn cap(q: &mut Vec<String>) {
    let mut bytes: usize = q.iter().map(String::len).sum();
    while q.len() > MAX_QUEUE || bytes > MAX_QUEUE_BYTES {
        if q.is_empty() {
            break;
        }
        bytes = bytes.saturating_sub(q.remove(0).len());
    }
}

fn schedule(app: &mut App, ms: f64) {
    if app.out.timer {
        return;
    }
    app.out.timer = true;
    js::timeout(ms, |_| {
        app::with(|a| {
            a.out.timer = false;
            flush(a);
        });
    });
}

/// Takes events from the front of `queue` up to the count and byte limits.
fn take(queue: &mut Vec<String>, max_count: usize) -> Vec<String> {
    let mut size = 0;
    let mut n = 0;
    for e in queue.iter() {
        if n >= max_count || (n > 0 && size + e.len() + 1 > MAX_BODY) {
            break;
        }
        size += e.len() + 1;
        n += 1;
    }
    queue.drain(..n).collect()
}

/// `{site, batch, sentAt}`: the edge's envelope.
fn body(site: &str, events: &[String]) -> String {
    let mut b = String::from("{\"site\":");
    b.push_str(&js::stringify(&js::s(site)).unwrap_or_else(|| "\"\"".into()));
    b.push_str(",\"batch\":[");
    b.push_str(&events.join(","));
    b.push_str("],\"sentAt\":\"");
    b.push_str(&js::iso(js::now()));
    b.push_str("\"}");
    b
}

pub fn flush(app: &mut App) {
    if app.out.busy || app.out.queue.is_empty() || !app.consent.allows(Purpose::Analytics) {
        return;
    }
    let batch = take(&mut app.out.queue, 50);
    let init = js::obj();
    js::set(&init, "method", &js::s("POST"));
    js::set(&init, "body", &js::s(&body(&app.site, &batch)));
    js::set(&init, "keepalive", &JsValue::TRUE);
    js::set(&init, "credentials", &js::s("omit"));
    let headers = js::obj();
    js::set(&headers, "content-type", &js::s("text/plain"));
    js::set(&init, "headers", &headers);
    app.out.inflight = batch;
    app.out.busy = true;
    let p = js::call(&js::global(), "fetch", &[&js::s(&url(app)), &init]);
    if p.is_undefined() {
        app.out.busy = false;
        let back = std::mem::take(&mut app.out.inflight);
        app.out.queue.splice(0..0, back);
        return;
    }
    let ok = js::func(|resp| {
        let status = js::get(&resp, "status").as_f64().unwrap_or(0.0);
        let retry = js::call(&js::get(&resp, "headers"), "get", &[&js::s("retry-after")]).as_string();
        app::with(|a| done(a, status, retry));
    });
    let err = js::func(|_| {
        app::with(|a| done(a, 0.0, None));
    });
    js::call(&p, "then", &[&ok, &err]);
}

fn done(app: &mut App, status: f64, retry_after: Option<String>) {
    app.out.busy = false;
    let retryable = status == 0.0 || status == 429.0 || status >= 500.0;
    if retryable && app.consent.allows(Purpose::Analytics) {
        let back = std::mem::take(&mut app.out.inflight);
        app.out.queue.splice(0..0, back);
        app.out.failures = app.out.failures.saturating_add(1);
        let exp = 1000.0 * f64::from(1u32 << app.out.failures.min(6));
        let jitter = 0.5 + js_sys::Math::random();
        let wait = retry_after
            // `Retry-After: <seconds>` (RFC 9110 §10.2.3: an integer).
            .and_then(|s| s.trim().parse::<u32>().ok())
            .map_or((exp * jitter).min(MAX_BACKOFF_MS), |s| (f64::from(s) * 1000.0).min(3_600_000.0));
        app::save_soon(app);
        schedule(app, wait);
    } else {
        // Accepted, or rejected for good (4xx): either way it is done.
        app.out.inflight.clear();
        app.out.failures = 0;
        app::save_soon(app);
        flush(app);
    }
}

/// The page is going away: hand what is queued to `sendBeacon` (fetch
/// keepalive as fallback). Offline, it stays in the persisted queue for the
/// next page instead.
pub fn beacon(app: &mut App) {
    if !app.out.withdrawals.is_empty() {
        let url = js::s(&consent_url(app));
        let nav = js::g("navigator");
        app.out.withdrawals.retain(|b| js::call(&nav, "sendBeacon", &[&url, &js::s(b)]).as_bool() != Some(true));
    }
    if !app.consent.allows(Purpose::Analytics) || app.out.queue.is_empty() {
        return;
    }
    if js::get(&js::g("navigator"), "onLine").as_bool() == Some(false) {
        persist_now(app);
        return;
    }
    let url = js::s(&url(app));
    while !app.out.queue.is_empty() {
        let batch = take(&mut app.out.queue, MAX_EVENTS);
        let b = js::s(&body(&app.site, &batch));
        let sent = js::call(&js::g("navigator"), "sendBeacon", &[&url, &b]).as_bool() == Some(true);
        if !sent {
            app.out.queue.splice(0..0, batch);
            break;
        }
    }
    persist_now(app);
}

/// The one message sent after a withdrawal: `POST {api}/v1/consent`, so the
/// collector cuts down what it holds for this visitor (the edge's
/// `withdrawals`); sent too when a device with an id grants more, so the
/// collector has the new choice on record. Honouring a withdrawal is
/// necessary processing; it carries the id and the new consent, nothing else. Until
/// the collector has answered it stays in memory (never on the device) and
/// is sent again when the browser is back online, or by beacon when the
/// page is hidden.
pub fn withdrawal(app: &mut App, anon: &str, consent: &JsValue) {
    let o = js::obj();
    js::set(&o, "site", &js::s(&app.site));
    js::set(&o, "anonymousId", &js::s(anon));
    js::set(&o, "consent", consent);
    js::set(&o, "timestamp", &js::s(&js::iso(js::now())));
    if let Some(body) = js::stringify(&o) {
        app.out.withdrawals.push(body);
        send_withdrawals(app);
    }
}

fn consent_url(app: &App) -> String {
    endpoint(app, "/v1/consent")
}

fn send_withdrawals(app: &mut App) {
    let url = js::s(&consent_url(app));
    for body in std::mem::take(&mut app.out.withdrawals) {
        let init = js::obj();
        js::set(&init, "method", &js::s("POST"));
        js::set(&init, "body", &js::s(&body));
        js::set(&init, "keepalive", &JsValue::TRUE);
        js::set(&init, "credentials", &js::s("omit"));
        let p = js::call(&js::global(), "fetch", &[&url, &init]);
        let again = body.clone();
        // Answered (a 4xx is final: retrying would not change it), or not:
        // a network error, 429 or 5xx keeps it for the next chance.
        let ok = js::func(move |resp| {
            let status = js::get(&resp, "status").as_f64().unwrap_or(0.0);
            if status == 429.0 || status >= 500.0 {
                let b = again.clone();
                app::with(|a| a.out.withdrawals.push(b));
            }
        });
        let err = js::func(move |_| {
            let b = body.clone();
            app::with(|a| a.out.withdrawals.push(b));
        });
        js::call(&p, "then", &[&ok, &err]);
    }
}

/// Writes the queue to the device now (analytics only); see `app::save_soon`.
pub fn persist_now(app: &App) {
    if !app.consent.allows(Purpose::Analytics) {
        return;
    }
    let k = app::key(app, "q");
    if app.out.len() == 0 {
        js::store_del("localStorage", &k);
        return;
    }
    let mut text = String::from("[");
    let all: Vec<&str> = app.out.inflight.iter().chain(app.out.queue.iter()).map(String::as_str).collect();
    text.push_str(&all.join(","));
    text.push(']');
    js::store_set("localStorage", &k, &text);
}

/// Loads the persisted queue (analytics just granted), dropping expired events.
pub fn restore(app: &mut App) {
    let Some(text) = js::store_get("localStorage", &app::key(app, "q")) else { return };
    let arr = js::parse(&text);
    let now = js::now() as i64;
    let mut restored = Vec::new();
    let Ok(arr) = wasm_bindgen::JsCast::dyn_into::<js_sys::Array>(arr) else { return };
    for item in arr.iter() {
        let fresh = js::get_str(&item, "timestamp")
            .and_then(|t| Timestamp::parse(&t).ok())
            .is_some_and(|t| now - t.millis() <= TTL_MS);
        if fresh && let Some(t) = js::stringify(&item) {
            restored.push(t);
        }
    }
    app.out.queue.splice(0..0, restored);
    cap(&mut app.out.queue);
    if !app.out.queue.is_empty() {
        schedule(app, 0.0);
    }
}

/// Back online: try now rather than waiting out the backoff.
pub fn online(app: &mut App) {
    app.out.failures = 0;
    send_withdrawals(app);
    flush(app);
}
