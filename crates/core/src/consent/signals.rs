//! The browser's consent signals and their resolution into one state.

use super::state::{Consent, POLICY_VERSION};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

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
