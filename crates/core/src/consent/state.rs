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
        }
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
