//! Purposes, the resolved consent state and the stamp an event carries.

use crate::text::cat;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub(super) analytics: bool,
    pub(super) personalization: bool,
    pub(super) marketing: bool,
    pub(super) policy: u32,
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
            site_basis: false,
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
    analytics: bool,
    personalization: bool,
    marketing: bool,
    policy: u32,
    /// `"basis": "site"` on the wire: not a choice the visitor made but the
    /// lawful basis the site declared for what its servers send unstamped.
    #[serde(rename = "basis", skip_serializing_if = "std::ops::Not::not", serialize_with = "site_basis")]
    site_basis: bool,
}

fn site_basis<S: serde::Serializer>(_: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("site")
}

impl ConsentStamp {
    /// A stamp under the current policy granting exactly `purposes` — for a
    /// consent recorded elsewhere (a CRM's), never read from the wire.
    pub fn granting(purposes: &[Purpose]) -> ConsentStamp {
        let has = |p| purposes.contains(&p);
        ConsentStamp {
            analytics: has(Purpose::Analytics),
            personalization: has(Purpose::Personalization),
            marketing: has(Purpose::Marketing),
            policy: POLICY_VERSION,
            site_basis: false,
        }
    }

    /// The stamp of a server event that came without one: what the site
    /// declares it may do with such events (`consent.server_purposes`).
    /// Analytics always — the event is stored and attributed — and no
    /// more unless declared: without personalization it is not scored.
    pub fn site_basis(declared: &[Purpose]) -> ConsentStamp {
        let has = |p| declared.contains(&p);
        ConsentStamp {
            analytics: true,
            personalization: has(Purpose::Personalization),
            marketing: has(Purpose::Marketing),
            policy: POLICY_VERSION,
            site_basis: true,
        }
    }

    pub(crate) fn on_site_basis(self, site_basis: bool) -> ConsentStamp {
        ConsentStamp { site_basis, ..self }
    }

    /// Whether the stamp is the site's declared basis, not the visitor's choice.
    pub fn is_site_basis(&self) -> bool {
        self.site_basis
    }

    pub fn allows(&self, purpose: Purpose) -> bool {
        Consent::from_stamp(self).allows(purpose)
    }

    pub fn policy(&self) -> u32 {
        self.policy
    }

    /// The stamp as wire JSON (what `serde_json::to_value` gives).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, b) in
            [("analytics", self.analytics), ("personalization", self.personalization), ("marketing", self.marketing)]
        {
            m.insert(k.into(), Value::Bool(b));
        }
        m.insert("policy".into(), Value::from(self.policy));
        if self.site_basis {
            m.insert("basis".into(), Value::String("site".into()));
        }
        Value::Object(m)
    }

    /// Strict parse of an untrusted stamp: exactly these four fields, and
    /// `basis` (only `"site"`) on what the collector stamped itself.
    pub fn parse(v: &Value) -> Result<ConsentStamp, String> {
        let Some(m) = v.as_object() else {
            return Err("must be an object".into());
        };
        if let Some(k) =
            m.keys().find(|k| !["analytics", "personalization", "marketing", "policy", "basis"].contains(&k.as_str()))
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
        let site_basis = match m.get("basis") {
            None => false,
            Some(Value::String(b)) if b == "site" => true,
            Some(_) => return Err("`basis` must be \"site\" when present".into()),
        };
        Ok(ConsentStamp {
            analytics: flag("analytics")?,
            personalization: flag("personalization")?,
            marketing: flag("marketing")?,
            policy,
            site_basis,
        })
    }
}
