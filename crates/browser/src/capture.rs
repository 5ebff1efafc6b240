//! Automatic capture, installed once on the first grant: page views (SPA
//! aware), tagged clicks, outbound links and downloads, form submissions
//! (ids and names only, never values), contact intent (phone, e-mail and
//! messaging links, booking widgets: the kind only), scroll depth, engaged time, CTA
//! impressions and clicks, and the page-hide flush.

use crate::app::{self, App, Effects, Kind, Spa};
use crate::{conv, cta, js, transport};
use js_sys::Function;
use microfunnel_core::intent;
use serde_json::{Map, Value};
use wasm_bindgen::{JsCast, JsValue};

const DOWNLOADS: [&str; 14] =
    [".pdf", ".zip", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".csv", ".txt", ".rtf", ".odt", ".dmg", ".exe"];

/// Runs `f` on the state, then the effects (tier callbacks) once released.
pub fn run(f: impl FnOnce(&mut App, &mut Effects)) {
    let mut fx = Effects::default();
    app::with(|a| f(a, &mut fx));
    cta::fire(fx);
}

fn props(pairs: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert((*k).to_owned(), v.clone());
    }
    Value::Object(m)
}

/// The key a page view is de-duplicated on: path + query (+ hash in hash mode).
fn page_key(spa: Spa) -> String {
    let loc = js::g("location");
    let mut k = js::get_str(&loc, "pathname").unwrap_or_default();
    k.push_str(&js::get_str(&loc, "search").unwrap_or_default());
    if spa == Spa::Hash {
        k.push_str(&js::get_str(&loc, "hash").unwrap_or_default());
    }
    k
}

/// A page view if the URL changed since the last one (`force`: bfcache restore).
pub fn page(app: &mut App, fx: &mut Effects, force: bool) {
    let k = page_key(app.spa);
    if !force && k == app.last_key {
        return;
    }
    let href = js::get_str(&js::g("location"), "href").unwrap_or_default();
    if !app.last_url.is_empty() {
        app.referrer = std::mem::take(&mut app.last_url);
    }
    app.last_key = k;
    app.last_url = href;
    app.scroll_seen = 0;
    app.cta_seen.clear();
    // Observing again reports what is already visible on the new view.
    for el in cta::all("[data-mf-cta]") {
        js::call(&app.cta_io, "unobserve", &[&el]);
        js::call(&app.cta_io, "observe", &[&el]);
    }
    app::emit(app, Kind::Page, Value::Null, Value::Null, fx);
}

/// `CTA Viewed` {cta, tier, variant}: the first time per page view a
/// `[data-mf-cta]` element is at least half visible. Only with analytics
/// (an impression is measurement, not a scoring input of its own).
fn cta_seen(entries: JsValue) {
    let Ok(entries) = entries.dyn_into::<js_sys::Array>() else { return };
    for entry in entries.iter() {
        let ratio = js::get(&entry, "intersectionRatio").as_f64().unwrap_or(0.0);
        if js::get(&entry, "isIntersecting").as_bool() != Some(true) || ratio < 0.5 {
            continue;
        }
        let el = js::get(&entry, "target");
        let Some(name) = attr(&el, "data-mf-cta") else { continue };
        let text: String = js::get_str(&el, "textContent").unwrap_or_default().trim().chars().take(100).collect();
        run(|a, fx| {
            if !a.consent.allows(microfunnel_core::Purpose::Analytics) || a.cta_seen.contains(&name) {
                return;
            }
            a.cta_seen.push(name.clone());
            let mut p = Map::new();
            p.insert("cta".into(), Value::String(name));
            if let Some(t) = &a.tier {
                p.insert("tier".into(), Value::String(t.clone()));
            }
            if !text.is_empty() {
                p.insert("variant".into(), Value::String(text));
            }
            app::emit(a, Kind::Track("CTA Viewed"), Value::Object(p), Value::Null, fx);
        });
    }
}

/// The observer of CTA impressions (`undefined` where the page has none).
pub fn cta_observer() -> JsValue {
    let opts = js::obj();
    js::set(&opts, "threshold", &JsValue::from_f64(0.5));
    js::construct("IntersectionObserver", &[&js::func(cta_seen), &opts])
}

pub fn install(spa: Spa) {
    let win = js::global();
    let doc = js::g("document");
    if spa != Spa::Off {
        let hist = js::g("history");
        for m in ["pushState", "replaceState"] {
            let orig = js::get(&hist, m);
            let Ok(orig) = orig.dyn_into::<Function>() else { continue };
            let h = hist.clone();
            let wrapped = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue, JsValue, JsValue) -> JsValue>::new(
                move |a: JsValue, b: JsValue, c: JsValue| {
                    let r = js::apply(&orig, &h, &[&a, &b, &c]);
                    run(|app, fx| page(app, fx, false));
                    r
                },
            )
            .into_js_value();
            js::set(&hist, m, &wrapped);
        }
        js::listen(&win, "popstate", false, |_| run(|a, fx| page(a, fx, false)));
        if spa == Spa::Hash {
            js::listen(&win, "hashchange", false, |_| run(|a, fx| page(a, fx, false)));
        }
    }
    js::listen(&win, "pageshow", false, |e| {
        if js::get(&e, "persisted").as_bool() == Some(true) {
            run(|a, fx| page(a, fx, true));
        }
    });
    js::listen(&doc, "click", true, click);
    js::listen(&doc, "submit", true, |e| {
        let form = js::get(&e, "target");
        let mut p = Vec::new();
        for (k, attr) in [("form_id", "id"), ("form_name", "name")] {
            if let Some(v) = js::call(&form, "getAttribute", &[&js::s(attr)]).as_string().filter(|v| !v.is_empty()) {
                p.push((k, Value::String(v)));
            }
        }
        run(|a, fx| app::emit(a, Kind::Track("Form Submitted"), props(&p), Value::Null, fx));
    });
    js::listen(&win, "scroll", false, |_| run(scroll));
    js::listen(&doc, "visibilitychange", false, |_| {
        let hidden = js::get_str(&js::g("document"), "visibilityState").as_deref() == Some("hidden");
        run(|a, fx| {
            if hidden {
                engagement(a, fx);
                app::save_now(a);
                transport::beacon(a);
            } else {
                a.visible_since = Some(js::now());
            }
        });
    });
    js::listen(&win, "pagehide", false, |_| {
        run(|a, fx| {
            engagement(a, fx);
            app::save_now(a);
            transport::beacon(a);
        })
    });
    js::listen(&win, "online", false, |_| run(|a, _| transport::online(a)));
    js::listen(&win, "message", false, booking);
}

/// A booking widget's message (Calendly, Cal.com embeds): `Booking
/// Scheduled {provider}`, nothing of the invitee or the slot.
fn booking(e: JsValue) {
    let origin = js::get_str(&e, "origin").unwrap_or_default();
    let data = js::get(&e, "data");
    if !data.is_object() {
        return;
    }
    let (event, originator, kind) =
        (js::get_str(&data, "event"), js::get_str(&data, "originator"), js::get_str(&data, "type"));
    let m = intent::Message {
        origin: &origin,
        event: event.as_deref(),
        originator: originator.as_deref(),
        kind: kind.as_deref(),
    };
    if let Some(i) = intent::message(m) {
        let (k, v) = i.property();
        run(|a, fx| app::emit(a, Kind::Track(i.event()), props(&[(k, Value::String(v.into()))]), Value::Null, fx));
    }
}

/// Engaged time (visible time since the last report), sent when hidden.
fn engagement(app: &mut App, fx: &mut Effects) {
    if let Some(since) = app.visible_since.take() {
        app.engaged_ms += js::now() - since;
    }
    let ms = app.engaged_ms.round();
    if ms >= 1000.0 {
        app.engaged_ms = 0.0;
        app::emit(app, Kind::Track("Engaged Time"), props(&[("engaged_ms", Value::from(ms as i64))]), Value::Null, fx);
    }
}

fn scroll(app: &mut App, fx: &mut Effects) {
    let win = js::global();
    let de = js::get(&js::g("document"), "documentElement");
    let y = js::get(&win, "scrollY").as_f64().unwrap_or(0.0);
    let h = js::get(&win, "innerHeight").as_f64().unwrap_or(0.0);
    let total = js::get(&de, "scrollHeight").as_f64().unwrap_or(0.0);
    if total <= 0.0 {
        return;
    }
    let pct = ((y + h) / total * 100.0).min(100.0);
    for (i, step) in [25u8, 50, 75, 100].into_iter().enumerate() {
        let bit = 1u8 << i;
        if pct + 0.5 >= f64::from(step) && app.scroll_seen & bit == 0 {
            app.scroll_seen |= bit;
            app::emit(app, Kind::Track("Scroll Depth"), props(&[("percent", Value::from(step))]), Value::Null, fx);
        }
    }
}

fn attr(el: &JsValue, name: &str) -> Option<String> {
    js::call(el, "getAttribute", &[&js::s(name)]).as_string()
}

/// Clicks: `[data-mf-event]` (with `data-mf-prop-*`), CTAs, outbound links
/// and downloads. Never `preventDefault`: navigation is not delayed, and
/// `target=_blank` keeps working; the queue goes out by beacon on page hide.
fn click(e: JsValue) {
    let target = js::get(&e, "target");
    let el = js::call(&target, "closest", &[&js::s("[data-mf-event],[data-mf-cta],a[href]")]);
    if el.is_null() || el.is_undefined() {
        return;
    }
    let mut p = Map::new();
    if let Some(elem) = attr(&el, "data-mf-element") {
        p.insert(microfunnel_core::scoring::ELEMENT_PROPERTY.to_owned(), Value::String(elem));
    }
    let attrs = js::get(&el, "attributes");
    let n = js::get(&attrs, "length").as_f64().unwrap_or(0.0) as u32;
    for i in 0..n.min(60) {
        let a = js::call(&attrs, "item", &[&JsValue::from(i)]);
        let (Some(name), Some(value)) = (js::get_str(&a, "name"), js::get_str(&a, "value")) else { continue };
        if let Some(k) = name.strip_prefix("data-mf-prop-").filter(|k| !k.is_empty()) {
            p.insert(k.replace('-', "_"), Value::String(value));
        }
    }
    let event = attr(&el, "data-mf-event");
    let cta_name = attr(&el, "data-mf-cta");
    let href = js::get_str(&el, "href");
    // A contact link is sent as its kind alone: not as an outbound link,
    // whose URL would carry the number or the address.
    let contact = href.as_deref().and_then(intent::link);
    let href = href.filter(|h| contact.is_none() && h.starts_with("http"));
    run(|a, fx| {
        let mut urgent = false;
        if let Some(name) = cta_name {
            let mut q = p.clone();
            q.insert("cta".into(), Value::String(name));
            if let Some(t) = &a.tier {
                q.insert("tier".into(), Value::String(t.clone()));
            }
            app::emit(a, Kind::Track("CTA Clicked"), Value::Object(q), Value::Null, fx);
        }
        if let Some(name) = event {
            app::emit(a, Kind::Track(&name), Value::Object(p.clone()), Value::Null, fx);
        }
        if let Some(i) = contact {
            let (k, v) = i.property();
            app::emit(a, Kind::Track(i.event()), props(&[(k, Value::String(v.into()))]), Value::Null, fx);
            urgent = true;
        }
        if let Some(h) = href {
            let host = js::get_str(&js::g("location"), "host").unwrap_or_default();
            let url = js::construct("URL", &[&js::s(&h)]);
            let link_host = js::get_str(&url, "host").unwrap_or_default();
            let path = js::get_str(&url, "pathname").unwrap_or_default().to_ascii_lowercase();
            let mut q = Map::new();
            q.insert("url".into(), Value::String(h.clone()));
            if DOWNLOADS.iter().any(|x| path.ends_with(x)) {
                app::emit(a, Kind::Track("File Download"), Value::Object(q), Value::Null, fx);
                urgent = true;
            } else if !link_host.is_empty() && link_host != host {
                app::emit(a, Kind::Track("Outbound Link Clicked"), Value::Object(q), Value::Null, fx);
                urgent = true;
            }
        }
        if urgent {
            transport::beacon(a);
        }
    });
}

/// `mf('track', name, props)` and friends come in as page values.
pub fn user_props(v: &JsValue) -> Value {
    let v = conv::to_value(v);
    if v.is_object() { v } else { Value::Null }
}
