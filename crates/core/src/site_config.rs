//! A site's configuration, parsed once into validated types: its scoring
//! rules, CTA variants, consent policy, channel rules, conversion definitions
//! and attribution options. [`SiteConfig::from_json`] is the only way in (an
//! admin's document, or the stored one read back); [`SiteConfig::to_json`]
//! is what is stored, and reads back equal. The browser's share of it is
//! [`SiteConfig::browser_config`], derived here and nowhere else.

use crate::channel::ChannelRules;
use crate::clv::segment::SegmentRules;
use crate::consent::{ConsentStamp, MinimisePolicy, Purpose};
use crate::conversion::Definitions;
use crate::error::ValidationError;
use crate::experiment::HoldoutPercent;
use crate::intent::Intent;
use crate::scoring::{ConversionStages, Rules};
use crate::url::SanitiseRules;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

type Res<T> = Result<T, ValidationError>;

/// The top-level fields of a configuration document.
pub const FIELDS: [&str; 8] =
    ["rules", "cta", "consent", "channels", "conversions", "attribution", "timezone", "customers"];
/// At most this many named CTAs, and this many characters of button text.
pub const MAX_CTAS: usize = 50;
pub const MAX_CTA_TEXT: usize = 200;
const MAX_HREF: usize = 2048;

/// What the consent resolution and minimisation take from the site.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentPolicy {
    /// Count id-less page views without analytics consent.
    pub cookieless_pageviews: bool,
    /// Honour Do Not Track as a refusal of analytics and personalization.
    pub respect_dnt: bool,
    /// Query parameters removed from URLs beyond the default personal ones.
    pub sanitise: SanitiseRules,
    /// Store userIds only as the collector's keyed hash of them (the site's
    /// own ids never written down; stitching and erasure by id still work).
    pub hash_user_ids: bool,
    /// The purposes the site declares it holds consent for on the events
    /// its servers send without a consent stamp (a CRM's, a back office's).
    /// Empty by default: such events are stored and attributed, not scored.
    pub server_purposes: Vec<Purpose>,
}

impl ConsentPolicy {
    /// The stamp an unstamped server event receives.
    pub fn server_stamp(&self) -> ConsentStamp {
        ConsentStamp::site_basis(&self.server_purposes)
    }
}

/// `consent.server_purposes`: a list of purpose names, each once.
fn purposes_field(m: &Map<String, Value>) -> Res<Vec<Purpose>> {
    const RULE: &str = "a list of analytics, personalization, marketing";
    let field = "consent.server_purposes";
    let items = match m.get("server_purposes") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(err(field, RULE)),
    };
    let mut out = Vec::new();
    for item in items {
        let p = match item.as_str() {
            Some("analytics") => Purpose::Analytics,
            Some("personalization") => Purpose::Personalization,
            Some("marketing") => Purpose::Marketing,
            _ => return Err(err(field, RULE)),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        ConsentPolicy {
            cookieless_pageviews: false,
            respect_dnt: true,
            sanitise: SanitiseRules::default(),
            hash_user_ids: false,
            server_purposes: Vec::new(),
        }
    }
}

/// Journey and stitching options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttributionOptions {
    /// A journey with no touch and no conversion for this long closes as a
    /// non-converting path.
    pub journey_timeout_ms: i64,
    /// An identify whose e-mail hash is linked to another visitor joins it.
    pub merge_on_email: bool,
}

impl Default for AttributionOptions {
    fn default() -> Self {
        AttributionOptions { journey_timeout_ms: 720 * 3_600_000, merge_on_email: true }
    }
}

/// One CTA's look in one tier: its text, its link, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    text: Option<String>,
    href: Option<String>,
}

impl Variant {
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
    /// An `https://`/`http://` URL or a same-site path: never `javascript:`
    /// or a protocol-relative `//host`.
    pub fn href(&self) -> Option<&str> {
        self.href.as_deref()
    }
}

/// CTA variants by CTA name (`data-mf-cta`), then tier id; every tier id is
/// one of the rules' tiers. `holdout_percent` (beside the names; 0 = off, at
/// most 50) is the share of visitors held out of the switching, who see the
/// coldest tier's CTAs whatever their score, so that lift can be measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtaVariants {
    variants: BTreeMap<String, BTreeMap<String, Variant>>,
    holdout: HoldoutPercent,
}

/// The key of `cta` that is the holdout's share, not a CTA name.
pub const HOLDOUT_KEY: &str = "holdout_percent";

impl CtaVariants {
    pub fn get(&self, cta: &str, tier: &str) -> Option<&Variant> {
        self.variants.get(cta).and_then(|t| t.get(tier))
    }

    pub fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }

    pub fn holdout(&self) -> HoldoutPercent {
        self.holdout
    }

    fn parse(v: &Value, rules: &Rules) -> Res<CtaVariants> {
        let m = match v {
            Value::Null => return Ok(CtaVariants::default()),
            Value::Object(m) => m,
            _ => return Err(err("cta", "must be an object of CTA names, each an object of tier ids")),
        };
        let holdout = match m.get(HOLDOUT_KEY) {
            None | Some(Value::Null) => HoldoutPercent::OFF,
            Some(v) => HoldoutPercent::parse("cta.holdout_percent", v)?,
        };
        if m.keys().filter(|k| *k != HOLDOUT_KEY).count() > MAX_CTAS {
            return Err(err("cta", format!("at most {MAX_CTAS} CTAs")));
        }
        let tiers: Vec<&str> = rules.tier_ids().collect();
        let mut out = BTreeMap::new();
        for (name, by_tier) in m.iter().filter(|(k, _)| *k != HOLDOUT_KEY) {
            let path = format!("cta.{name}");
            if !is_cta_name(name) {
                return Err(err(&path, "a CTA name is 1 to 64 characters of a-z, A-Z, 0-9, - and _"));
            }
            let Value::Object(by_tier) = by_tier else {
                return Err(err(&path, format!("must be an object keyed by tier id ({})", tiers.join(", "))));
            };
            let mut variants = BTreeMap::new();
            for (tier, variant) in by_tier {
                let path = format!("{path}.{tier}");
                if !tiers.contains(&tier.as_str()) {
                    return Err(err(&path, format!("unknown tier (the rules' tiers: {})", tiers.join(", "))));
                }
                variants.insert(tier.clone(), Variant::parse(variant, &path)?);
            }
            out.insert(name.clone(), variants);
        }
        Ok(CtaVariants { variants: out, holdout })
    }

    /// The stored form: the names' variants, and the holdout when it is on.
    fn to_json(&self) -> Value {
        let mut m = self.variants_json();
        if self.holdout != HoldoutPercent::OFF {
            m.insert(HOLDOUT_KEY.into(), json!(self.holdout.get()));
        }
        if m.is_empty() { Value::Null } else { Value::Object(m) }
    }

    /// The variants alone, by name then tier (what the browser swaps in).
    fn variants_json(&self) -> Map<String, Value> {
        self.variants
            .iter()
            .map(|(name, tiers)| {
                let t: Map<String, Value> = tiers.iter().map(|(tier, v)| (tier.clone(), v.to_json())).collect();
                (name.clone(), Value::Object(t))
            })
            .collect()
    }
}

impl Variant {
    fn parse(v: &Value, path: &str) -> Res<Variant> {
        let Value::Object(m) = v else {
            return Err(err(path, "must be an object with `text` and/or `href`"));
        };
        if let Some(k) = m.keys().find(|k| *k != "text" && *k != "href") {
            return Err(err(&format!("{path}.{k}"), "unknown field (expected text or href)"));
        }
        let text = match m.get("text") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_CTA_TEXT => Some(s.clone()),
            Some(_) => return Err(err(&format!("{path}.text"), format!("1 to {MAX_CTA_TEXT} characters"))),
        };
        let href = match m.get("href") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= MAX_HREF && is_safe_href(s) => Some(s.clone()),
            Some(_) => {
                return Err(err(
                    &format!("{path}.href"),
                    "an https:// or http:// URL or a path starting with / (not //)",
                ));
            }
        };
        if text.is_none() && href.is_none() {
            return Err(err(path, "needs `text`, `href` or both"));
        }
        Ok(Variant { text, href })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(t) = &self.text {
            m.insert("text".into(), json!(t));
        }
        if let Some(h) = &self.href {
            m.insert("href".into(), json!(h));
        }
        Value::Object(m)
    }
}

fn is_cta_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a CTA's link may be: a web URL with a host, or a same-site path.
pub fn is_safe_href(h: &str) -> bool {
    let lower = h.get(..8).unwrap_or(h).to_ascii_lowercase();
    let web = (lower.starts_with("https://") || lower.starts_with("http://")) && crate::url::is_http_url(h);
    let path = h.starts_with('/') && !h.starts_with("//") && !h.starts_with("/\\");
    (web || path) && !h.chars().any(char::is_control)
}

/// A site's validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteConfig {
    /// `None`: the core's default rules.
    custom_rules: Option<Rules>,
    rules: Rules,
    cta: CtaVariants,
    consent: ConsentPolicy,
    channels: ChannelRules,
    conversions: Definitions,
    stages: ConversionStages,
    attribution: AttributionOptions,
    /// The IANA time zone the site's days and hours are counted in.
    timezone: String,
    /// Customer segment thresholds and the value prediction's horizon.
    customers: SegmentRules,
}

impl Default for SiteConfig {
    fn default() -> Self {
        let rules = Rules::default_rules();
        let conversions = Definitions::default();
        let stages = conversions.stages(&rules).unwrap_or_default();
        SiteConfig {
            custom_rules: None,
            rules,
            cta: CtaVariants::default(),
            consent: ConsentPolicy::default(),
            channels: ChannelRules::default(),
            conversions,
            stages,
            attribution: AttributionOptions::default(),
            timezone: "UTC".into(),
            customers: SegmentRules::default(),
        }
    }
}

/// The form of an IANA time zone name (`Europe/Paris`,
/// `America/Argentina/Buenos_Aires`, `UTC`). Whether the name exists is the
/// runtime's to say (the collector asks `Intl`): the core has no tz table.
pub fn is_timezone_name(s: &str) -> bool {
    let part =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'+');
    (1..=64).contains(&s.len())
        && s.split('/').count() <= 3
        && s.split('/').all(part)
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
}

fn err(field: &str, rule: impl Into<String>) -> ValidationError {
    ValidationError::new(field, rule)
}

fn bool_field(m: &Map<String, Value>, path: &str, key: &str, default: bool) -> Res<bool> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(&format!("{path}.{key}"), "must be true or false")),
    }
}

fn object<'a>(v: &'a Value, path: &str, allowed: &[&str]) -> Res<Option<&'a Map<String, Value>>> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
                let field = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                return Err(err(&field, format!("unknown field (expected one of: {})", allowed.join(", "))));
            }
            Ok(Some(m))
        }
        _ => Err(err(if path.is_empty() { "config" } else { path }, "must be an object")),
    }
}

impl SiteConfig {
    /// Parses and validates a whole configuration document; a field left out
    /// (or `null`) takes its default. Every error names its field.
    pub fn from_json(doc: &Value) -> Res<SiteConfig> {
        let top = object(doc, "", &FIELDS)?.cloned().unwrap_or_default();
        let field = |k: &str| top.get(k).cloned().unwrap_or(Value::Null);
        let custom_rules = match field("rules") {
            Value::Null => None,
            r => Some(Rules::from_json_value(&r).map_err(|e| err("rules", e.to_string()))?),
        };
        let rules = custom_rules.clone().unwrap_or_else(Rules::default_rules);
        let cta = CtaVariants::parse(&field("cta"), &rules)?;
        let consent_fields = ["cookieless_pageviews", "respect_dnt", "sanitise", "hash_user_ids", "server_purposes"];
        let consent = match object(&field("consent"), "consent", &consent_fields)? {
            None => ConsentPolicy::default(),
            Some(m) => ConsentPolicy {
                cookieless_pageviews: bool_field(m, "consent", "cookieless_pageviews", false)?,
                respect_dnt: bool_field(m, "consent", "respect_dnt", true)?,
                hash_user_ids: bool_field(m, "consent", "hash_user_ids", false)?,
                server_purposes: purposes_field(m)?,
                sanitise: match m.get("sanitise") {
                    None | Some(Value::Null) => SanitiseRules::default(),
                    Some(s) => serde_json::from_value(s.clone()).map_err(|e| err("consent.sanitise", e.to_string()))?,
                },
            },
        };
        let channels = match field("channels") {
            Value::Null => ChannelRules::default(),
            c => serde_json::from_value(c).map_err(|e| err("channels", e.to_string()))?,
        };
        let conversions = match field("conversions") {
            Value::Null => Definitions::default(),
            c => Definitions::from_json(&c)?,
        };
        // A conversion's stage must be one of the rules' (a change of either
        // may break it).
        let stages = conversions.stages(&rules)?;
        let attribution =
            match object(&field("attribution"), "attribution", &["journey_timeout_hours", "merge_on_email"])? {
                None => AttributionOptions::default(),
                Some(m) => AttributionOptions {
                    journey_timeout_ms: match m.get("journey_timeout_hours") {
                        None | Some(Value::Null) => AttributionOptions::default().journey_timeout_ms,
                        // Held in whole milliseconds, at least one.
                        Some(v) => match v
                            .as_f64()
                            .filter(|h| h.is_finite() && *h <= 8760.0)
                            .map(|h| (h * 3_600_000.0).round())
                        {
                            Some(ms) if ms >= 1.0 => ms as i64,
                            _ => return Err(err("attribution.journey_timeout_hours", "more than 0, at most 8760")),
                        },
                    },
                    merge_on_email: bool_field(m, "attribution", "merge_on_email", true)?,
                },
            };
        let timezone = match field("timezone") {
            Value::Null => "UTC".to_owned(),
            Value::String(t) if is_timezone_name(&t) => t,
            _ => return Err(err("timezone", "an IANA time zone name such as Europe/Paris")),
        };
        let customers = SegmentRules::from_json(&field("customers"))?;
        Ok(SiteConfig {
            custom_rules,
            rules,
            cta,
            consent,
            channels,
            conversions,
            stages,
            attribution,
            timezone,
            customers,
        })
    }

    /// This configuration with the top-level fields of `changes` replaced
    /// (`rules: null` goes back to the default rules), validated as a whole.
    pub fn patched(&self, changes: &Map<String, Value>) -> Res<SiteConfig> {
        let Value::Object(mut doc) = self.to_json() else {
            return Err(err("config", "must be an object"));
        };
        for (k, v) in changes {
            doc.insert(k.clone(), v.clone());
        }
        SiteConfig::from_json(&Value::Object(doc))
    }

    /// The stored document: [`SiteConfig::from_json`] reads it back equal.
    pub fn to_json(&self) -> Value {
        let c = &self.consent;
        json!({
            "rules": self.custom_rules.as_ref().map(Rules::to_json),
            "cta": self.cta.to_json(),
            "consent": {
                "cookieless_pageviews": c.cookieless_pageviews,
                "respect_dnt": c.respect_dnt,
                "sanitise": c.sanitise,
                "hash_user_ids": c.hash_user_ids,
                "server_purposes": c.server_purposes,
            },
            "channels": channels_json(&self.channels),
            "conversions": self.conversions.to_json(),
            "attribution": {
                "journey_timeout_hours": self.attribution.journey_timeout_ms as f64 / 3_600_000.0,
                "merge_on_email": self.attribution.merge_on_email,
            },
            "timezone": self.timezone,
            "customers": self.customers.to_json(),
        })
    }

    /// What the browser module runs on, and nothing more: the rules in their
    /// compact form, the CTA variants and the URL parameters to remove. No
    /// rule labels, channel overrides (internal host names) or conversion
    /// definitions: the browser config is public. Whether Do Not Track is
    /// honoured cannot travel here (this config is fetched only once
    /// consent is given): it is the script tag's ([`SiteConfig::script_tag`]).
    pub fn browser_config(&self, site: &str) -> Value {
        json!({
            "site": site,
            "rules_version": self.rules.version(),
            "rules_compact": self.rules.to_compact(),
            "cta": if self.cta.is_empty() { Value::Null } else { Value::Object(self.cta.variants_json()) },
            "holdout_percent": self.cta.holdout().get(),
            "consent": {
                "policy_version": crate::consent::POLICY_VERSION,
                "sanitise": self.consent.sanitise,
            },
        })
    }

    /// The tag a site installs: the loader from `collector` (an origin), the
    /// site id, and `data-respect-dnt` when the site honours Do Not Track —
    /// the one consent setting the loader must know before anything loads.
    pub fn script_tag(&self, collector: &str, site: &str) -> String {
        let dnt = if self.consent.respect_dnt { " data-respect-dnt" } else { "" };
        format!("<script async src=\"{collector}/mf.js\" data-site=\"{site}\"{dnt}></script>")
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }
    pub fn has_custom_rules(&self) -> bool {
        self.custom_rules.is_some()
    }
    pub fn cta(&self) -> &CtaVariants {
        &self.cta
    }
    pub fn consent(&self) -> &ConsentPolicy {
        &self.consent
    }
    pub fn minimise_policy(&self) -> MinimisePolicy {
        MinimisePolicy {
            cookieless_pageviews: self.consent.cookieless_pageviews,
            sanitise: self.consent.sanitise.clone(),
        }
    }
    pub fn channels(&self) -> &ChannelRules {
        &self.channels
    }
    /// The contact intents the browser captures (`intent`) that the site
    /// does not count yet, as conversion definitions it can add as they are:
    /// no value, the rules' lead stage.
    pub fn suggested_conversions(&self) -> Value {
        let missing = Intent::EVENTS.iter().filter(|e| self.conversions.find(e).is_none());
        Value::Array(missing.map(|e| json!({ "event": e })).collect())
    }

    pub fn conversions(&self) -> &Definitions {
        &self.conversions
    }
    /// The conversions resolved to their stages under [`SiteConfig::rules`].
    pub fn stages(&self) -> &ConversionStages {
        &self.stages
    }
    pub fn attribution(&self) -> AttributionOptions {
        self.attribution
    }
    pub fn timezone(&self) -> &str {
        &self.timezone
    }
    pub fn customers(&self) -> &SegmentRules {
        &self.customers
    }
}

fn channels_json(c: &ChannelRules) -> Value {
    let overrides: Vec<Value> = c
        .overrides
        .iter()
        .map(|o| {
            let mut m = Map::new();
            for (k, v) in [
                ("source", &o.source),
                ("medium", &o.medium),
                ("campaign_contains", &o.campaign_contains),
                ("referrer_host", &o.referrer_host),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), json!(v));
                }
            }
            m.insert("channel".into(), json!(o.channel));
            Value::Object(m)
        })
        .collect();
    json!({"overrides": overrides, "internal_hosts": c.internal_hosts})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_reads_back_equal_through_its_stored_form() {
        let doc = json!({
            "cta": {"primary": {"cold": {"text": "Read the guide"}, "hot": {"text": "Book", "href": "/book"}}},
            "consent": {"respect_dnt": false, "sanitise": {"remove": ["ref"]}},
            "channels": {"overrides": [{"source": "newsletter", "channel": "Email"}], "internal_hosts": ["shop.example"]},
            "conversions": [{"event": "Contact Submitted", "currency": "EUR"}],
            "attribution": {"journey_timeout_hours": 48, "merge_on_email": false},
        });
        let c = SiteConfig::from_json(&doc).unwrap();
        assert_eq!(SiteConfig::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(c.cta().get("primary", "hot").and_then(Variant::href), Some("/book"));
        assert_eq!(c.attribution().journey_timeout_ms, 48 * 3_600_000);
        assert!(!c.has_custom_rules());
        assert_eq!(SiteConfig::from_json(&Value::Null).unwrap(), SiteConfig::default());
    }

    #[test]
    fn a_patch_is_validated_as_a_whole() {
        let c = SiteConfig::from_json(&json!({"cta": {"primary": {"warm": {"text": "Call"}}}})).unwrap();
        // Rules without a `warm` tier break the stored CTA: refused, naming it.
        let mut rules = Rules::default_rules().to_json();
        rules["tiers"] = json!({"low": 0, "high": 50});
        let mut changes = Map::new();
        changes.insert("rules".into(), rules);
        let e = c.patched(&changes).unwrap_err();
        assert_eq!(e.field, "cta.primary.warm");
    }
}
