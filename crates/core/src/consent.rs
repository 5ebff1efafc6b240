//! Consent: four purposes, one state resolved from every signal the browser
//! can read, and minimisation of events to what that state allows.
//!
//! # Precedence (per purpose, first rule that decides wins)
//! 1. **GPC** (`navigator.globalPrivacyControl`) denies *marketing*, whatever
//!    any other source says — it is a legal objection to sale/sharing.
//! 2. **Explicit choice** through our API (the site's own banner or ours).
//!    A purpose the choice leaves out is decided by the rules below.
//! 3. **DNT**, when the site opted to honour it, denies every purpose the
//!    visitor has not explicitly granted.
//! 4. **TCF v2.2** (a CMP present and `gdprApplies`): analytics needs purposes
//!    1, 8 and 9; personalization 1, 5 and 6; marketing 1, 2, 3, 4 and 7.
//!    Only consents count, not legitimate interest.
//! 5. **Consent Mode v2** (last value per key wins, `update` over `default`):
//!    analytics = `analytics_storage`; personalization =
//!    `personalization_storage`; marketing = `ad_storage`, `ad_user_data` and
//!    `ad_personalization` all granted (it decides marketing as soon as one of
//!    the three is present).
//! 6. Otherwise **denied**: consent is opt-in.
//!
//! `necessary` is always allowed and never identifies anyone.

use crate::channel::Channel;
use crate::channel::is_bought_medium;
use crate::event::{Campaign, ClickIds, Event, EventType};
use crate::identity::{EMAIL_HASH_TRAIT, email_sha256};
use crate::pii::{is_email_address, redact_emails};
use crate::text::cat;
use crate::url::{SanitiseRules, sanitise};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The version of these rules, stamped on every event.
pub const POLICY_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Necessary,
    Analytics,
    Personalization,
    Marketing,
}

/// A resolved consent state. Built only by [`resolve`] or from a validated
/// [`ConsentStamp`], never straight from untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    analytics: bool,
    personalization: bool,
    marketing: bool,
    policy: u32,
}

impl Consent {
    /// Nothing but what is necessary: the state before any signal.
    pub const DENIED: Consent =
        Consent { analytics: false, personalization: false, marketing: false, policy: POLICY_VERSION };

    pub fn allows(&self, purpose: Purpose) -> bool {
        match purpose {
            Purpose::Necessary => true,
            Purpose::Analytics => self.analytics,
            Purpose::Personalization => self.personalization,
            Purpose::Marketing => self.marketing,
        }
    }

    pub fn policy(&self) -> u32 {
        self.policy
    }

    pub fn stamp(&self) -> ConsentStamp {
        ConsentStamp {
            analytics: self.analytics,
            personalization: self.personalization,
            marketing: self.marketing,
            policy: self.policy,
        }
    }

    /// What both allow, purpose by purpose. A withdrawal reaches back this
    /// way: an event captured before it keeps only what its own stamp and
    /// the withdrawal both allow (never more than it was captured under).
    pub fn and(self, other: Consent) -> Consent {
        Consent {
            analytics: self.analytics && other.analytics,
            personalization: self.personalization && other.personalization,
            marketing: self.marketing && other.marketing,
            policy: self.policy.max(other.policy),
        }
    }

    pub fn from_stamp(stamp: &ConsentStamp) -> Consent {
        Consent {
            analytics: stamp.analytics,
            personalization: stamp.personalization,
            marketing: stamp.marketing,
            policy: stamp.policy,
        }
    }
}

/// The consent an event was captured under, as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConsentStamp {
    pub analytics: bool,
    pub personalization: bool,
    pub marketing: bool,
    pub policy: u32,
}

impl ConsentStamp {
    /// The stamp as wire JSON (what `serde_json::to_value` gives).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, b) in
            [("analytics", self.analytics), ("personalization", self.personalization), ("marketing", self.marketing)]
        {
            m.insert(k.into(), Value::Bool(b));
        }
        m.insert("policy".into(), Value::from(self.policy));
        Value::Object(m)
    }

    /// Strict parse of an untrusted stamp: exactly these four fields.
    pub fn parse(v: &Value) -> Result<ConsentStamp, String> {
        let Some(m) = v.as_object() else {
            return Err("must be an object".into());
        };
        if let Some(k) =
            m.keys().find(|k| !["analytics", "personalization", "marketing", "policy"].contains(&k.as_str()))
        {
            return Err(cat(&["unknown field `", k, "`"]));
        }
        let flag = |k: &str| match m.get(k) {
            Some(Value::Bool(b)) => Ok(*b),
            None => Err(cat(&["`", k, "` is required"])),
            Some(_) => Err(cat(&["`", k, "` must be a boolean"])),
        };
        let policy = match m.get("policy").and_then(Value::as_u64) {
            Some(p) if (1..=u64::from(POLICY_VERSION)).contains(&p) => p as u32,
            Some(_) => {
                let v = crate::text::int(i64::from(POLICY_VERSION));
                return Err(cat(&["`policy` must be a known policy version (1 to ", &v, ")"]));
            }
            None => return Err("`policy` is required and must be an integer".into()),
        };
        Ok(ConsentStamp {
            analytics: flag("analytics")?,
            personalization: flag("personalization")?,
            marketing: flag("marketing")?,
            policy,
        })
    }
}

/// An explicit choice through our API. `None` leaves the purpose to the other
/// sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitChoice {
    #[serde(default)]
    pub analytics: Option<bool>,
    #[serde(default)]
    pub personalization: Option<bool>,
    #[serde(default)]
    pub marketing: Option<bool>,
}

impl ExplicitChoice {
    pub const DENY_ALL: ExplicitChoice =
        ExplicitChoice { analytics: Some(false), personalization: Some(false), marketing: Some(false) };
    pub const GRANT_ALL: ExplicitChoice =
        ExplicitChoice { analytics: Some(true), personalization: Some(true), marketing: Some(true) };

    /// `'deny-all'`, `'grant-all'` or `{analytics: bool, …}` (each purpose
    /// a boolean or null); `None` for anything else. No serde and no message
    /// formatting: this is the browser's path.
    pub fn parse(v: &Value) -> Option<ExplicitChoice> {
        match v {
            Value::String(s) if s == "deny-all" => Some(Self::DENY_ALL),
            Value::String(s) if s == "grant-all" => Some(Self::GRANT_ALL),
            Value::Object(m) => {
                let mut c = ExplicitChoice::default();
                for (k, v) in m {
                    let slot = match k.as_str() {
                        "analytics" => &mut c.analytics,
                        "personalization" => &mut c.personalization,
                        "marketing" => &mut c.marketing,
                        _ => return None,
                    };
                    *slot = match v {
                        Value::Null => None,
                        Value::Bool(b) => Some(*b),
                        _ => return None,
                    };
                }
                Some(c)
            }
            _ => None,
        }
    }

    /// A later call on top of this one: purposes it names replace ours.
    pub fn then(self, newer: ExplicitChoice) -> ExplicitChoice {
        ExplicitChoice {
            analytics: newer.analytics.or(self.analytics),
            personalization: newer.personalization.or(self.personalization),
            marketing: newer.marketing.or(self.marketing),
        }
    }
}

/// Consent Mode v2 state, as folded from `gtag('consent', …)` calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentMode {
    #[serde(default)]
    pub analytics_storage: Option<GcmValue>,
    #[serde(default)]
    pub ad_storage: Option<GcmValue>,
    #[serde(default)]
    pub ad_user_data: Option<GcmValue>,
    #[serde(default)]
    pub ad_personalization: Option<GcmValue>,
    #[serde(default)]
    pub personalization_storage: Option<GcmValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GcmValue {
    Granted,
    Denied,
}

impl GcmValue {
    /// `"granted"` or `"denied"`.
    pub fn parse(v: &Value) -> Option<GcmValue> {
        match v.as_str()? {
            "granted" => Some(GcmValue::Granted),
            "denied" => Some(GcmValue::Denied),
            _ => None,
        }
    }
}

impl ConsentMode {
    /// The state as an object of its keys (what its `Deserialize` accepts,
    /// without serde): `None` on an unknown key or a value other than
    /// `granted`/`denied`/null.
    pub fn from_json(v: &Value) -> Option<ConsentMode> {
        let mut c = ConsentMode::default();
        for (k, v) in v.as_object()? {
            let slot = match k.as_str() {
                "analytics_storage" => &mut c.analytics_storage,
                "ad_storage" => &mut c.ad_storage,
                "ad_user_data" => &mut c.ad_user_data,
                "ad_personalization" => &mut c.ad_personalization,
                "personalization_storage" => &mut c.personalization_storage,
                _ => return None,
            };
            *slot = if v.is_null() { None } else { Some(GcmValue::parse(v)?) };
        }
        Some(c)
    }
}

/// What a CMP reported through `__tcfapi`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcfSignal {
    #[serde(rename = "gdprApplies")]
    pub gdpr_applies: bool,
    /// `purpose.consents` of the TCData: purpose number → consent.
    #[serde(rename = "purposeConsents", default)]
    pub purpose_consents: BTreeMap<String, bool>,
}

impl TcfSignal {
    /// `{gdprApplies: bool, purposeConsents?: {number: bool}}` (what its
    /// `Deserialize` accepts, without serde); `None` otherwise.
    pub fn from_json(v: &Value) -> Option<TcfSignal> {
        let m = v.as_object()?;
        let mut t = TcfSignal { gdpr_applies: m.get("gdprApplies")?.as_bool()?, ..TcfSignal::default() };
        for (k, v) in m {
            match k.as_str() {
                "gdprApplies" => {}
                "purposeConsents" => {
                    for (p, b) in v.as_object()? {
                        t.purpose_consents.insert(p.clone(), b.as_bool()?);
                    }
                }
                _ => return None,
            }
        }
        Some(t)
    }
}

/// Every consent signal the browser read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentSignals {
    pub explicit: Option<ExplicitChoice>,
    pub consent_mode: Option<ConsentMode>,
    pub tcf: Option<TcfSignal>,
    pub gpc: bool,
    pub dnt: bool,
    /// The site's choice to honour Do Not Track.
    pub respect_dnt: bool,
}

/// Resolves every signal into one state (see the module docs for precedence).
pub fn resolve(s: &ConsentSignals) -> Consent {
    let explicit = s.explicit.unwrap_or_default();
    let dnt = s.dnt && s.respect_dnt;
    let tcf = s.tcf.as_ref().filter(|t| t.gdpr_applies);
    let tcf_all = |ps: &[u8]| {
        tcf.map(|t| ps.iter().all(|p| t.purpose_consents.get(crate::text::int(i64::from(*p)).as_str()) == Some(&true)))
    };
    let gcm = s.consent_mode.unwrap_or_default();
    let granted = |v: Option<GcmValue>| v.map(|v| v == GcmValue::Granted);
    let gcm_marketing = if gcm.ad_storage.is_some() || gcm.ad_user_data.is_some() || gcm.ad_personalization.is_some() {
        Some(
            granted(gcm.ad_storage) == Some(true)
                && granted(gcm.ad_user_data) == Some(true)
                && granted(gcm.ad_personalization) == Some(true),
        )
    } else {
        None
    };
    let decide = |explicit: Option<bool>, tcf: Option<bool>, gcm: Option<bool>| -> bool {
        match explicit {
            Some(b) => b,
            None if dnt => false,
            None => tcf.or(gcm).unwrap_or(false),
        }
    };
    Consent {
        analytics: decide(explicit.analytics, tcf_all(&[1, 8, 9]), granted(gcm.analytics_storage)),
        personalization: decide(explicit.personalization, tcf_all(&[1, 5, 6]), granted(gcm.personalization_storage)),
        marketing: !s.gpc && decide(explicit.marketing, tcf_all(&[1, 2, 3, 4, 7]), gcm_marketing),
        policy: POLICY_VERSION,
    }
}

/// Site choices that shape minimisation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinimisePolicy {
    /// Count id-less page views without analytics consent (off by default).
    pub cookieless_pageviews: bool,
    pub sanitise: SanitiseRules,
}

/// An event cut down to its consent, and what was cut.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Minimised {
    /// `None` when nothing of the event may be kept.
    pub event: Option<Event>,
    /// What was removed, as field paths (`anonymousId`, `context.click_ids`, …).
    pub stripped: Vec<&'static str>,
}

/// A stored event after a later withdrawal (`withdrawal`, the visitor's
/// consent once they withdrew): minimised again to what both its own stamp
/// and the withdrawal allow. `None` when nothing of it may be kept, e.g.
/// after analytics is withdrawn; without personalization it stays, stamped
/// so the scorer ignores it (`no_consent`).
pub fn withdraw(event: Event, withdrawal: &Consent, policy: &MinimisePolicy) -> Minimised {
    let captured = event.consent.as_ref().map_or(Consent::DENIED, Consent::from_stamp);
    minimise_with(event, &captured.and(*withdrawal), policy)
}

/// [`minimise_with`] under the default site policy.
pub fn minimise(event: Event, consent: &Consent) -> Option<Event> {
    minimise_with(event, consent, &MinimisePolicy::default()).event
}

/// Removes what `consent` does not allow and stamps the consent on the event:
/// - always: personal query parameters in URLs;
/// - without analytics: the whole event, or, for a page view on a site that
///   opted into cookieless counting, everything that identifies (ids, user
///   agent, locale, click ids, referrer's query);
/// - without marketing: click ids (fields and URL parameters), and the
///   campaign of a paid touch, fields and `utm_*` parameters (its channel
///   becomes Unassigned).
pub fn minimise_with(mut event: Event, consent: &Consent, policy: &MinimisePolicy) -> Minimised {
    let mut stripped = Vec::new();
    let cookieless_count = policy.cookieless_pageviews && event.kind == EventType::Page;
    if !consent.allows(Purpose::Analytics) && !cookieless_count {
        return Minimised { event: None, stripped: vec!["event"] };
    }
    let marketing = consent.allows(Purpose::Marketing);
    let paid_touch = event.channel.as_ref().is_some_and(Channel::is_paid)
        || event.context.campaign.utm_medium.as_deref().is_some_and(is_bought_medium);
    // URLs carry the same detail as the fields: without marketing, click ids
    // (and a paid touch's campaign) go from the query string too.
    let mut rules = policy.sanitise.clone();
    if !marketing {
        rules.remove.extend(ClickIds::NAMES.iter().map(|n| (*n).to_owned()));
        rules.remove.extend(["dclid", "_gl", "gad_source", "srsltid"].map(String::from));
        if paid_touch {
            rules.remove.extend(UTM_PARAMS.map(String::from));
        }
    }
    let page = &mut event.context.page;
    for (name, url) in [("context.page.url", &mut page.url), ("context.page.referrer", &mut page.referrer)] {
        if let Some(u) = url
            && let Some(clean) = clean_text(u, true, &rules)
        {
            *u = clean;
            stripped.push(name);
        }
    }
    for (name, text) in [("context.page.path", &mut page.path), ("context.page.title", &mut page.title)] {
        if let Some(clean) = text.as_deref().and_then(redact_emails) {
            *text = Some(clean);
            stripped.push(name);
        }
    }
    // An address written anywhere an integration may put one: every string,
    // at any depth, of properties and traits (after the `email` trait, in
    // any letter case, became its hash).
    crate::identity::pseudonymise(&mut event.traits);
    if scrub_map(&mut event.properties, &rules) {
        stripped.push("properties");
    }
    if scrub_map(&mut event.traits, &rules) {
        stripped.push("traits");
    }
    // A userId that is an address (common with Segment) is kept as the
    // address's key, the same one an `email` trait makes.
    if let Some(hash) = event.user_id.as_deref().filter(|u| is_email_address(u)).and_then(email_sha256) {
        if event.kind == EventType::Identify && !event.traits.contains_key(EMAIL_HASH_TRAIT) {
            event.traits.insert(EMAIL_HASH_TRAIT.into(), Value::String(hash.clone()));
        }
        event.user_id = Some(hash);
        stripped.push("userId");
    }

    if !consent.allows(Purpose::Analytics) {
        // Cookieless page view: keep the count, drop everything that identifies.
        for (name, present) in [
            ("anonymousId", event.anonymous_id.take().is_some()),
            ("userId", event.user_id.take().is_some()),
            ("context.userAgent", event.context.user_agent.take().is_some()),
            ("context.locale", event.context.locale.take().is_some()),
        ] {
            if present {
                stripped.push(name);
            }
        }
    }
    if !marketing {
        if !event.context.click_ids.is_empty() {
            event.context.click_ids = ClickIds::default();
            stripped.push("context.click_ids");
        }
        if paid_touch {
            if !event.context.campaign.is_empty() {
                event.context.campaign = Campaign::default();
                stripped.push("context.campaign");
            }
            if event.channel.is_some() {
                event.channel = Some(Channel::Unassigned);
            }
        }
    }
    stripped.dedup();
    event.consent = Some(consent.stamp());
    Minimised { event: Some(event), stripped }
}

/// `text` sanitised (when it is a URL) and with its addresses marked; `None`
/// when neither changed it, so unchanged text costs no allocation.
fn clean_text(text: &str, is_url: bool, rules: &SanitiseRules) -> Option<String> {
    let sanitised = is_url.then(|| sanitise(text, rules)).filter(|c| c != text);
    redact_emails(sanitised.as_deref().unwrap_or(text)).or(sanitised)
}

/// Cleans every string of `map` at any depth: URLs sanitised, addresses in
/// text marked, a value that is only an address removed. Whether anything changed.
fn scrub_map(map: &mut Map<String, Value>, rules: &SanitiseRules) -> bool {
    let mut changed = false;
    map.retain(|_, v| scrub(v, rules, &mut changed));
    changed
}

/// Cleans `value` in place; `false` when it should go.
fn scrub(value: &mut Value, rules: &SanitiseRules, changed: &mut bool) -> bool {
    match value {
        Value::String(s) => {
            if is_email_address(s) {
                *changed = true;
                return false;
            }
            if let Some(clean) = clean_text(s, crate::url::is_http_url(s), rules) {
                *s = clean;
                *changed = true;
            }
            true
        }
        Value::Array(items) => {
            items.retain_mut(|v| scrub(v, rules, changed));
            true
        }
        Value::Object(m) => {
            m.retain(|_, v| scrub(v, rules, changed));
            true
        }
        _ => true,
    }
}

const UTM_PARAMS: [&str; 5] = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];
