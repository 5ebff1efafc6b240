//! The module's state and its commands: consent, events, scoring, CTAs.
//!
//! One `App` per page, in a thread-local. JavaScript callbacks (tier
//! listeners, the site's code) are invoked only after the state is released,
//! so a callback may call `mf(...)` again.

use crate::{conv, js, transport};
use microfunnel_core::consent::{self, Consent, MinimisePolicy, Purpose};
use microfunnel_core::event::{MessageId, clip};
use microfunnel_core::experiment::{self, Arm, HoldoutPercent};
use microfunnel_core::scoring::{Rules, Scorer};
use microfunnel_core::url::SanitiseRules;
use microfunnel_core::{Event, Limits, Timestamp};
use serde_json::{Map, Value};
use std::cell::RefCell;
use wasm_bindgen::JsValue;

/// Scored events kept for personalization across pages (count cap).
const LEDGER_CAP: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Spa {
    History,
    Hash,
    Off,
}

pub struct App {
    pub site: String,
    pub api: String,
    pub spa: Spa,
    pub consent: Consent,
    /// Listeners and the landing page view happen once, on first activation.
    pub active: bool,
    pub anon: Option<String>,
    pub user: Option<String>,
    /// UTM and click ids of the landing URL, for the session.
    pub campaign: Map<String, Value>,
    pub click_ids: Map<String, Value>,
    /// What the last page view was for (SPA de-duplication) and its referrer.
    pub last_key: String,
    pub last_url: String,
    pub referrer: String,
    pub scroll_seen: u8,
    pub engaged_ms: f64,
    pub visible_since: Option<f64>,
    pub scorer: Scorer,
    pub ledger: Vec<String>,
    pub tier: Option<String>,
    pub cta: Value,
    /// The site's CTA holdout share (`holdout_percent` of its config).
    pub holdout: HoldoutPercent,
    /// The site's minimisation choices (its extra URL parameters to remove),
    /// from its config: applied before an event leaves the device.
    pub policy: MinimisePolicy,
    pub config_version: Option<String>,
    pub tier_cbs: Vec<js_sys::Function>,
    pub out: transport::Outbox,
    /// CTAs already reported as viewed on this page view.
    pub cta_seen: Vec<String>,
    /// The `IntersectionObserver` watching `[data-mf-cta]` (once active).
    pub cta_io: JsValue,
    /// A device write (queue, ledger) is scheduled: see `save_soon`.
    pub save_due: bool,
}

thread_local! {
    static APP: RefCell<Option<App>> = const { RefCell::new(None) };
}

/// Runs `f` on the state if the module is initialised.
pub fn with<R>(f: impl FnOnce(&mut App) -> R) -> Option<R> {
    APP.with(|a| a.try_borrow_mut().ok().and_then(|mut a| a.as_mut().map(f)))
}

pub fn key(app: &App, what: &str) -> String {
    let mut k = String::from("mf_");
    k.push_str(&app.site);
    k.push('_');
    k.push_str(what);
    k
}

/// `mf('_init', cfg)`: cfg = {site, api, spa}.
pub fn init(cfg: &JsValue) {
    let site = js::get_str(cfg, "site").unwrap_or_default();
    let api = js::get_str(cfg, "api").unwrap_or_default();
    let spa = match js::get_str(cfg, "spa").as_deref() {
        Some("hash") => Spa::Hash,
        Some("off") => Spa::Off,
        _ => Spa::History,
    };
    let app = App {
        site,
        api,
        spa,
        consent: Consent::DENIED,
        active: false,
        anon: None,
        user: None,
        campaign: Map::new(),
        click_ids: Map::new(),
        last_key: String::new(),
        last_url: String::new(),
        referrer: js::get_str(&js::g("document"), "referrer").unwrap_or_default(),
        scroll_seen: 0,
        engaged_ms: 0.0,
        visible_since: Some(js::now()),
        scorer: Scorer::new(Rules::default_rules()),
        ledger: Vec::new(),
        tier: None,
        cta: Value::Null,
        holdout: HoldoutPercent::OFF,
        policy: MinimisePolicy::default(),
        config_version: None,
        tier_cbs: Vec::new(),
        out: transport::Outbox::default(),
        cta_seen: Vec::new(),
        cta_io: JsValue::UNDEFINED,
        save_due: false,
    };
    APP.with(|a| {
        if let Ok(mut a) = a.try_borrow_mut() {
            *a = Some(app);
        }
    });
}

/// The loader's raw signals, read and resolved by the core.
pub fn signals(raw: &JsValue) -> Consent {
    consent::resolve(&consent::from_loader(&conv::to_value(raw)))
}

/// A new consent state: withdrawals clear at once, grants restore.
/// Returns whether capture has just become active for the first time.
pub fn set_consent(app: &mut App, c: Consent) -> bool {
    let before = app.consent;
    app.consent = c;
    let analytics = c.allows(Purpose::Analytics);
    let personal = c.allows(Purpose::Personalization);
    let purposes = [Purpose::Analytics, Purpose::Personalization, Purpose::Marketing];
    let withdrawn = purposes.iter().any(|&p| before.allows(p) && !c.allows(p));
    let granted = purposes.iter().any(|&p| !before.allows(p) && c.allows(p));
    // Only an id that was sent (analytics granted) has anything at the edge.
    // A grant is reported too: after a withdrawal, the collector holds this
    // device's events to it until it hears of a new choice.
    if (withdrawn || granted)
        && let Some(anon) = app.anon.clone()
    {
        transport::withdrawal(app, &anon, &conv::to_js(&c.stamp().to_json()));
    }
    if before.allows(Purpose::Analytics) && !analytics {
        // Withdrawal: stop, forget the id, drop the queue, clear our storage.
        app.anon = None;
        app.user = None;
        app.out.clear();
        for k in ["id", "q"] {
            js::store_del("localStorage", &key(app, k));
        }
        js::store_del("sessionStorage", &key(app, "s"));
    }
    if before.allows(Purpose::Marketing) && !c.allows(Purpose::Marketing) {
        // Click ids (and a paid campaign) are no longer ours to keep.
        js::store_del("sessionStorage", &key(app, "s"));
        save_campaign(app);
    }
    if withdrawn || !purposes.iter().any(|&p| c.allows(p)) {
        // The built-in banner remembers a grant only while it stands.
        js::store_del("localStorage", &key(app, "choice"));
    }
    if before.allows(Purpose::Personalization) && !personal {
        js::store_del("localStorage", &key(app, "l"));
        js::store_del("localStorage", &key(app, "cfg"));
        app.ledger.clear();
        app.scorer = Scorer::new(app.scorer.rules().clone());
    }
    if analytics && app.anon.is_none() {
        let k = key(app, "id");
        let id = js::store_get("localStorage", &k)
            .filter(|s| MessageId::parse(s).is_ok_and(|id| id.is_uuid()))
            .unwrap_or_else(|| MessageId::from_random_bytes(js::random16()).to_text());
        js::store_set("localStorage", &k, &id);
        app.anon = Some(id);
        transport::restore(app);
    }
    if personal && !before.allows(Purpose::Personalization) {
        restore_ledger(app);
    }
    let first = !app.active && (analytics || personal);
    app.active |= first;
    first
}

/// The page's clock (`None` only if it is outside years 1970–9999).
fn now_ts() -> Option<Timestamp> {
    Timestamp::from_millis(js::now() as i64)
}

fn obj_of(m: Map<String, Value>) -> Value {
    Value::Object(m)
}

/// Reads the landing URL's campaign and click ids (once per session: kept in
/// sessionStorage with analytics consent, in memory otherwise).
pub fn read_campaign(app: &mut App) {
    let stored =
        if app.consent.allows(Purpose::Analytics) { js::store_get("sessionStorage", &key(app, "s")) } else { None };
    if let Some(text) = stored {
        let v = conv::to_value(&js::parse(&text));
        if let Some(c) = v.get("c").and_then(Value::as_object) {
            app.campaign = c.clone();
        }
        if let Some(c) = v.get("k").and_then(Value::as_object) {
            app.click_ids = c.clone();
        }
    }
    let href = js::get_str(&js::g("location"), "href").unwrap_or_default();
    let url = js::construct("URL", &[&js::s(&href)]);
    let params = js::get(&url, "searchParams");
    let mut found = false;
    for k in ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"] {
        if let Some(v) = js::call(&params, "get", &[&js::s(k)]).as_string() {
            if !found {
                app.campaign.clear();
                app.click_ids.clear();
                found = true;
            }
            app.campaign.insert(k.to_owned(), Value::String(clip(&v, Limits::DEFAULT.max_string).into()));
        }
    }
    for k in microfunnel_core::channel::ClickId::ALL.map(|c| c.name()) {
        // A click id over the limit is not one the ad platform issued: dropped, not cut.
        if let Some(v) =
            js::call(&params, "get", &[&js::s(k)]).as_string().filter(|v| v.len() <= Limits::DEFAULT.max_id)
        {
            app.click_ids.insert(k.to_owned(), Value::String(v));
        }
    }
    save_campaign(app);
}

/// Stores the session's campaign with analytics consent; click ids and a
/// paid campaign only with marketing consent too (what minimisation would
/// strip from the events is not kept on the device either).
pub fn save_campaign(app: &App) {
    let marketing = app.consent.allows(Purpose::Marketing);
    let paid =
        app.campaign.get("utm_medium").and_then(Value::as_str).is_some_and(microfunnel_core::channel::is_bought_medium);
    let mut m = Map::new();
    if marketing || !paid {
        m.insert("c".into(), obj_of(app.campaign.clone()));
    }
    if marketing {
        m.insert("k".into(), obj_of(app.click_ids.clone()));
    }
    let empty = m.values().all(|v| v.as_object().is_none_or(Map::is_empty));
    if app.consent.allows(Purpose::Analytics)
        && !empty
        && let Some(text) = js::stringify(&conv::to_js(&Value::Object(m)))
    {
        js::store_set("sessionStorage", &key(app, "s"), &text);
    }
}

/// What `emit` hands back for the caller to run once the state is released.
#[derive(Default)]
pub struct Effects {
    pub tier: Option<(String, Value)>,
}

#[derive(Clone, Copy)]
pub enum Kind<'a> {
    Page,
    Track(&'a str),
    /// With the site's identity signature, if the page passed one.
    Identify(Option<&'a str>),
}

/// Builds one event from the page, validates it with the core, scores it
/// (personalization) and queues its minimised form (analytics).
pub fn emit(app: &mut App, kind: Kind<'_>, props: Value, traits: Value, fx: &mut Effects) {
    if !app.active {
        return;
    }
    let t = js::now();
    let loc = js::g("location");
    let doc = js::g("document");
    let nav = js::g("navigator");
    let mut page = Map::new();
    // Each field clipped to the collector's limit: one over it would have
    // the whole event refused.
    let lim = &Limits::DEFAULT;
    let url = js::get_str(&loc, "href").unwrap_or_default();
    let url = clip(&url, lim.max_url).to_owned();
    page.insert("url".into(), Value::String(url.clone()));
    let path = js::get_str(&loc, "pathname").unwrap_or_default();
    page.insert("path".into(), Value::String(clip(&path, lim.max_url).into()));
    if !app.referrer.is_empty() {
        page.insert("referrer".into(), Value::String(clip(&app.referrer, lim.max_url).into()));
    }
    if let Some(title) = js::get_str(&doc, "title").filter(|s| !s.is_empty()) {
        page.insert("title".into(), Value::String(clip(&title, lim.max_string).into()));
    }
    let mut ctx = Map::new();
    ctx.insert("page".into(), Value::Object(page));
    if !app.campaign.is_empty() {
        ctx.insert("campaign".into(), Value::Object(app.campaign.clone()));
    }
    if !app.click_ids.is_empty() {
        ctx.insert("click_ids".into(), Value::Object(app.click_ids.clone()));
    }
    if let Some(l) = js::get_str(&nav, "language") {
        ctx.insert("locale".into(), Value::String(l));
    }
    if let Some(ua) = js::get_str(&nav, "userAgent") {
        ctx.insert("userAgent".into(), Value::String(clip(&ua, lim.max_user_agent).into()));
    }
    if let Some(a) = arm(app) {
        ctx.insert("cta_arm".into(), Value::String(a.as_str().into()));
    }
    let mut e = Map::new();
    let (ty, name) = match kind {
        Kind::Page => ("page", None),
        Kind::Track(n) => ("track", Some(n)),
        Kind::Identify(_) => ("identify", None),
    };
    e.insert("type".into(), Value::String(ty.into()));
    if let Some(n) = name {
        e.insert("event".into(), Value::String(n.into()));
    }
    if props.as_object().is_some_and(|m| !m.is_empty()) {
        e.insert("properties".into(), props);
    }
    if traits.as_object().is_some_and(|m| !m.is_empty()) {
        e.insert("traits".into(), traits);
    }
    e.insert("context".into(), Value::Object(ctx));
    e.insert("messageId".into(), Value::String(MessageId::from_random_bytes(js::random16()).to_text()));
    // Without analytics there is no id: the event is only scored locally.
    let anon = app.anon.clone().or_else(|| Some(MessageId::from_random_bytes(js::random16()).to_text()));
    e.insert("anonymousId".into(), anon.map_or(Value::Null, Value::String));
    if let Some(u) = &app.user {
        e.insert("userId".into(), Value::String(u.clone()));
    }
    if let Kind::Identify(Some(sig)) = kind {
        e.insert("identitySignature".into(), Value::String(sig.to_owned()));
    }
    e.insert("timestamp".into(), Value::String(js::iso(t)));
    let Some(now) = now_ts() else { return };
    let Ok(mut event) = Event::parse(&Value::Object(e), &Limits::DEFAULT, now) else {
        return;
    };
    event.consent = Some(app.consent.stamp());
    if app.consent.allows(Purpose::Personalization) {
        score(app, &event, true, fx);
    }
    let out = consent::minimise_with(event, &app.consent, &app.policy);
    if let Some(ev) = out.event
        && let Some(text) = js::stringify(&conv::to_js(&ev.to_json()))
    {
        transport::push(app, text);
    }
}

/// Feeds the scorer; keeps the event for later pages (personalization).
fn score(app: &mut App, event: &Event, keep: bool, fx: &mut Effects) {
    let changed = app.scorer.apply(event);
    if keep && let Some(text) = js::stringify(&conv::to_js(&event.to_json())) {
        app.ledger.push(text);
        if app.ledger.len() > LEDGER_CAP {
            app.ledger.remove(0);
        }
        save_soon(app);
    }
    if let Some(ch) = changed {
        let mut d = Map::new();
        d.insert("from".into(), Value::String(ch.from));
        d.insert("tier".into(), Value::String(ch.to.clone()));
        d.insert("score".into(), ch.score.to_json());
        fx.tier = Some((ch.to, Value::Object(d)));
    }
}

/// Device writes are coalesced: a burst of events (a loop of `track`, an
/// SPA navigation) costs one queue write and one ledger write after the
/// current task instead of one per event, each of the whole list. A page
/// being hidden writes at once (`save_now`). Each write re-checks its
/// consent, so one scheduled before a withdrawal writes nothing.
pub fn save_soon(app: &mut App) {
    if !app.save_due {
        app.save_due = true;
        js::timeout(0.0, |_| {
            with(save_now);
        });
    }
}

pub fn save_now(app: &mut App) {
    if app.save_due {
        app.save_due = false;
        transport::persist_now(app);
        save_ledger(app);
    }
}

fn save_ledger(app: &App) {
    if app.consent.allows(Purpose::Personalization) {
        let mut text = String::from("[");
        text.push_str(&app.ledger.join(","));
        text.push(']');
        js::store_set("localStorage", &key(app, "l"), &text);
    }
}

fn restore_ledger(app: &mut App) {
    let Some(text) = js::store_get("localStorage", &key(app, "l")) else { return };
    let v = conv::to_value(&js::parse(&text));
    let Some(now) = now_ts() else { return };
    for item in v.as_array().into_iter().flatten() {
        // Stored events go through the same validation (age limits included).
        if let Ok(mut ev) = Event::parse(item, &Limits::DEFAULT, now) {
            ev.consent = Some(app.consent.stamp());
            if let Some(t) = js::stringify(&conv::to_js(item)) {
                app.ledger.push(t);
            }
            app.scorer.apply(&ev);
        }
    }
}

/// The current tier (as of now), when scoring is allowed.
/// This visitor's arm in the site's CTA holdout test (none without a
/// visitor id, i.e. without analytics consent, or with the test off).
pub fn arm(app: &App) -> Option<Arm> {
    experiment::arm_of(&app.site, app.anon.as_deref(), app.holdout)
}

pub fn current_tier(app: &App) -> Option<String> {
    let now = now_ts()?;
    app.consent.allows(Purpose::Personalization).then(|| app.scorer.tier(now).to_owned())
}

/// `mf('score')`: the explanation, or `null` without personalization.
pub fn explain(app: &App) -> JsValue {
    if !app.consent.allows(Purpose::Personalization) {
        return JsValue::NULL;
    }
    let Some(now) = now_ts() else { return JsValue::NULL };
    conv::to_js(&app.scorer.score(now).to_json())
}

/// The site config from the collector (the core's `SiteConfig::browser_config`):
/// {rules_version?, rules_compact?, cta?, consent?: {sanitise: {remove, keep}}}
/// (`rules_compact`: the site's validated rules in the core's compact form;
/// the full `rules` document is for other readers).
pub fn apply_config(app: &mut App, cfg: &Value) {
    if let Some(r) = cfg.get("rules_compact")
        && let Ok(rules) = Rules::from_compact(r)
    {
        let mut scorer = Scorer::new(rules);
        let Some(now) = now_ts() else { return };
        for text in &app.ledger {
            let v = conv::to_value(&js::parse(text));
            if let Ok(mut ev) = Event::parse(&v, &Limits::DEFAULT, now) {
                ev.consent = Some(app.consent.stamp());
                scorer.apply(&ev);
            }
        }
        app.scorer = scorer;
    }
    if let Some(c) = cfg.get("cta").filter(|c| c.is_object()) {
        app.cta = c.clone();
    }
    // A share it cannot read is no test: every visitor sees the CTAs by tier.
    app.holdout = cfg
        .get("holdout_percent")
        .and_then(|v| HoldoutPercent::parse("holdout_percent", v).ok())
        .unwrap_or(HoldoutPercent::OFF);
    let names = |k: &str| -> Vec<String> {
        let list = cfg.get("consent").and_then(|c| c.get("sanitise")).and_then(|s| s.get(k)).and_then(Value::as_array);
        list.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    app.policy.sanitise = SanitiseRules { remove: names("remove"), keep: names("keep") };
    app.config_version = cfg.get("rules_version").and_then(Value::as_str).map(str::to_owned);
}
