//! Events cut down to what a consent state allows.

use super::state::{Consent, Purpose};
use crate::channel::Channel;
use crate::channel::ClickId;
use crate::channel::is_bought_medium;
use crate::event::{Campaign, ClickIds, Event, EventType};
use crate::identity::{EMAIL_HASH_TRAIT, email_sha256};
use crate::pii::{is_email_address, redact_emails};
use crate::url::{SanitiseRules, sanitise};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Site choices that shape minimisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
        rules.remove.extend(ClickId::ALL.iter().map(|c| c.name().to_owned()));
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
            ("context.cta_arm", event.context.cta_arm.take().is_some()),
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
    // Whose basis it was stays recorded: a withdrawal narrows the
    // purposes, it does not turn the site's declaration into a choice.
    let site_basis = event.consent.is_some_and(|c| c.is_site_basis());
    event.consent = Some(consent.stamp().on_site_basis(site_basis));
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
