//! Conversions: which `track` events a site counts as one ([`Definitions`]),
//! what each is worth in minor units of its currency
//! ([`Definition::value_minor`]), and which path it is credited on
//! ([`credit_on`]): the open journey, the path of the upstream conversion it
//! inherits (a "Client Signed" from the CRM days after the web form's
//! "Contact Submitted" is credited where the form was), or — for a repeated
//! `transaction_id` — none at all, being an adjustment of an earlier one's value.

use crate::attribution::Touch;
use crate::error::ValidationError;
use crate::money::{self, Currency, MAX_MINOR};
use crate::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// At most this many definitions per site.
pub const MAX_DEFINITIONS: usize = 20;
/// How far back an inheriting conversion looks for its upstream one unless
/// its definition says otherwise.
pub const DEFAULT_INHERIT_WINDOW_DAYS: u32 = 90;
/// A browser-sent value is clamped to this unless the definition says (major units).
pub const DEFAULT_MAX_VALUE_MAJOR: i64 = 100_000;
/// The property that identifies a transaction: a conversion repeating an
/// earlier one's of the same definition replaces its value.
pub const TRANSACTION_ID: &str = "transaction_id";

/// Who may state a conversion's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueFrom {
    #[default]
    Any,
    Server,
}

/// Who sent the conversion: a browser's value is a claim, an authenticated
/// server's is the site's own record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Browser,
    Server,
}

/// One validated conversion definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub event: String,
    /// The property holding the value in major units (`value: "49.90"`).
    pub value_property: Option<String>,
    /// Used when the event carries no readable value.
    pub default_value_minor: i64,
    pub currency: Option<Currency>,
    /// The most a browser-sent value may claim.
    pub max_value_minor: i64,
    pub value_from: ValueFrom,
    /// The upstream conversion whose path this one is credited on.
    pub inherits: Option<String>,
    pub inherit_window_days: u32,
    /// The lifecycle stage this conversion enters (a stage id of the site's
    /// rules, checked by [`Definitions::stages`]); `None`: the rules'
    /// `any_conversion` stage.
    pub stage: Option<String>,
}

/// A site's definitions: unique event names, each `inherits` naming another
/// definition, no cycle of inheritance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Definitions(Vec<Definition>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    event: Value,
    #[serde(default)]
    value_property: Option<Value>,
    #[serde(default)]
    default_value_minor: Option<Value>,
    #[serde(default)]
    currency: Option<Value>,
    #[serde(default)]
    max_value: Option<Value>,
    #[serde(default)]
    value_from: Option<Value>,
    #[serde(default)]
    inherits: Option<Value>,
    #[serde(default)]
    inherit_window_days: Option<Value>,
    #[serde(default)]
    stage: Option<Value>,
}

fn text_field(v: &Value, field: &str, max: usize) -> Result<String, ValidationError> {
    match v {
        Value::String(s) if !s.trim().is_empty() && s.len() <= max => Ok(s.clone()),
        _ => Err(ValidationError::new(field, format!("a string of 1 to {max} bytes"))),
    }
}

impl Definition {
    fn from_raw(raw: RawDefinition, at: &str) -> Result<Definition, ValidationError> {
        let f = |name: &str| format!("{at}.{name}");
        let event = text_field(&raw.event, &f("event"), 256)?;
        let value_property = match raw.value_property {
            None | Some(Value::Null) => None,
            Some(v) => Some(text_field(&v, &f("value_property"), 64)?),
        };
        let currency = match raw.currency {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => {
                Some(Currency::parse(&c).map_err(|e| ValidationError::new(f("currency"), e.rule))?)
            }
            Some(_) => return Err(ValidationError::new(f("currency"), "an ISO 4217 code like EUR")),
        };
        let digits = money::digits_of(currency);
        let default_value_minor = match raw.default_value_minor {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .filter(|n| (0..=MAX_MINOR).contains(n))
                .ok_or_else(|| ValidationError::new(f("default_value_minor"), "a whole number of minor units ≥ 0"))?,
        };
        let max_value_minor = match raw.max_value {
            None | Some(Value::Null) => DEFAULT_MAX_VALUE_MAJOR.saturating_mul(10i64.pow(digits)),
            Some(v) => money::parse_major_json(&f("max_value"), &v, digits)?,
        };
        if max_value_minor == 0 {
            return Err(ValidationError::new(f("max_value"), "more than 0"));
        }
        let value_from = match raw.value_from {
            None | Some(Value::Null) => ValueFrom::Any,
            Some(v) => serde_json::from_value(v).map_err(|_| ValidationError::new(f("value_from"), "any or server"))?,
        };
        let inherits = match raw.inherits {
            None | Some(Value::Null) => None,
            Some(v) => Some(text_field(&v, &f("inherits"), 256)?),
        };
        let inherit_window_days =
            match raw.inherit_window_days {
                None | Some(Value::Null) => DEFAULT_INHERIT_WINDOW_DAYS,
                Some(_) if inherits.is_none() => {
                    return Err(ValidationError::new(f("inherit_window_days"), "only with inherits"));
                }
                Some(v) => v.as_u64().filter(|n| (1..=3650).contains(n)).map(|n| n as u32).ok_or_else(|| {
                    ValidationError::new(f("inherit_window_days"), "a whole number of days, 1 to 3650")
                })?,
            };
        let stage = match raw.stage {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if crate::scoring::is_stage_id(&id) => Some(id),
            Some(_) => {
                return Err(ValidationError::new(
                    f("stage"),
                    "a stage id of the site's rules (a-z, then a-z, 0-9 or _; at most 32)",
                ));
            }
        };
        Ok(Definition {
            stage,
            event,
            value_property,
            default_value_minor,
            currency,
            max_value_minor,
            value_from,
            inherits,
            inherit_window_days,
        })
    }

    /// The definition as configuration writes it (read back by [`Definitions::from_json`]).
    pub fn to_json(&self) -> Value {
        let digits = money::digits_of(self.currency);
        let mut o = Map::new();
        o.insert("event".into(), json!(self.event));
        if let Some(p) = &self.value_property {
            o.insert("value_property".into(), json!(p));
        }
        o.insert("default_value_minor".into(), json!(self.default_value_minor));
        if let Some(c) = self.currency {
            o.insert("currency".into(), json!(c.code()));
        }
        o.insert("max_value".into(), json!(money::format_major(self.max_value_minor, digits)));
        o.insert("value_from".into(), json!(self.value_from));
        if let Some(i) = &self.inherits {
            o.insert("inherits".into(), json!(i));
            o.insert("inherit_window_days".into(), json!(self.inherit_window_days));
        }
        if let Some(stage) = &self.stage {
            o.insert("stage".into(), json!(stage));
        }
        Value::Object(o)
    }

    /// Whether an event of this definition states a readable value: its
    /// `value_property`, when present, must be a decimal this currency can
    /// hold exactly (`properties.value: at most 2 decimals for this
    /// currency`). The collector refuses an event that fails it rather than
    /// count it at a value nobody sent.
    pub fn check_value(&self, properties: &Map<String, Value>) -> Result<(), ValidationError> {
        let Some(p) = &self.value_property else { return Ok(()) };
        match properties.get(p) {
            None | Some(Value::Null) => Ok(()),
            Some(v) => {
                money::parse_major_json(&format!("properties.{p}"), v, money::digits_of(self.currency)).map(|_| ())
            }
        }
    }

    /// The conversion's value in minor units: `value_property` read as major
    /// units of the definition's currency ([`money::parse_major_json`]), else
    /// — missing or not a decimal it can hold exactly — the default. A
    /// browser's value is a claim: clamped to `max_value`, or none at all
    /// where only servers may state it.
    pub fn value_minor(&self, properties: &Map<String, Value>, sender: Sender) -> i64 {
        if sender == Sender::Browser && self.value_from == ValueFrom::Server {
            return 0;
        }
        let digits = money::digits_of(self.currency);
        let value = self
            .value_property
            .as_ref()
            .and_then(|p| properties.get(p))
            .and_then(|v| money::parse_major_json("value", v, digits).ok())
            .unwrap_or(self.default_value_minor);
        match sender {
            Sender::Browser => value.min(self.max_value_minor),
            Sender::Server => value,
        }
    }
}

impl Definitions {
    /// Parses and checks a list of definitions; an error names the field
    /// (`conversions[1].inherits`) and the rule.
    pub fn from_json(value: &Value) -> Result<Definitions, ValidationError> {
        let list = match value {
            Value::Null => return Ok(Definitions::default()),
            Value::Array(a) => a,
            _ => return Err(ValidationError::new("conversions", "a list of conversion definitions")),
        };
        if list.len() > MAX_DEFINITIONS {
            return Err(ValidationError::new("conversions", format!("at most {MAX_DEFINITIONS}")));
        }
        let mut defs = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let at = format!("conversions[{i}]");
            let raw: RawDefinition =
                serde_json::from_value(v.clone()).map_err(|e| ValidationError::new(&at, e.to_string()))?;
            let def = Definition::from_raw(raw, &at)?;
            if defs.iter().any(|d: &Definition| d.event == def.event) {
                return Err(ValidationError::new(format!("{at}.event"), "defined twice"));
            }
            defs.push(def);
        }
        for (i, d) in defs.iter().enumerate() {
            let Some(up) = &d.inherits else { continue };
            let field = format!("conversions[{i}].inherits");
            if !defs.iter().any(|o| &o.event == up) {
                return Err(ValidationError::new(field, "names no conversion definition"));
            }
            // Follow the chain: it must end before it comes back.
            let mut seen = vec![d.event.as_str()];
            let mut next = Some(up.as_str());
            while let Some(n) = next {
                if seen.contains(&n) {
                    return Err(ValidationError::new(field, "a cycle of inheritance"));
                }
                seen.push(n);
                next = defs.iter().find(|o| o.event == n).and_then(|o| o.inherits.as_deref());
            }
        }
        Ok(Definitions(defs))
    }

    pub fn to_json(&self) -> Value {
        Value::Array(self.0.iter().map(Definition::to_json).collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Definition> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The definition of a `track` event with this name.
    pub fn find(&self, event: &str) -> Option<&Definition> {
        self.0.iter().find(|d| d.event == event)
    }

    /// The stages these conversions enter under `rules`; an error names the
    /// definition whose `stage` the rules do not have
    /// (`conversions[2].stage: stage `clinet` is not one of the rules'
    /// stages (lead, qualified, client)`).
    pub fn stages(&self, rules: &crate::scoring::Rules) -> Result<crate::scoring::ConversionStages, ValidationError> {
        crate::scoring::ConversionStages::new(rules, self.0.iter().map(|d| (d.event.as_str(), d.stage.as_deref())))
            .map_err(|(i, rule)| ValidationError::new(format!("conversions[{i}].stage"), rule))
    }

    /// The site's reporting currency: the first definition that names one.
    pub fn currency(&self) -> Option<Currency> {
        self.0.iter().find_map(|d| d.currency)
    }
}

impl Serialize for Definitions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Definitions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Definitions::from_json(&v).map_err(serde::de::Error::custom)
    }
}

/// The `transaction_id` of a conversion event: a string of 1 to 128 bytes or
/// a whole number (an order number), written as text.
pub fn transaction_id(properties: &Map<String, Value>) -> Option<String> {
    match properties.get(TRANSACTION_ID)? {
        Value::String(s) if !s.trim().is_empty() && s.len() <= 128 => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// A conversion already credited, as a visitor keeps it: the path it was
/// credited on is what a later conversion inheriting it is credited on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    pub message_id: String,
    pub name: String,
    pub at: Timestamp,
    pub value_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    pub touches: Vec<Touch>,
}

/// Where a new conversion's credit goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Crediting<'a> {
    /// A conversion of its own, credited on `touches`. It closes the open
    /// journey unless it inherited an earlier conversion's path, which
    /// leaves the open journey to whatever comes next.
    New { touches: Vec<Touch>, inherited_from: Option<&'a Recorded>, closes_journey: bool },
    /// The same transaction again (refund, upsell): it replaces the earlier
    /// conversion's value and is not a second conversion.
    Adjusts { original: &'a Recorded },
}

/// Decides where a conversion of `def` at `at` is credited, given the open
/// journey's touches and the visitor's earlier conversions (`past`, any
/// order): an earlier one of the same definition and `transaction_id` is
/// adjusted; an inheriting definition takes the path of the latest upstream
/// conversion at or before `at` within its window; otherwise the open
/// journey's touches up to `at`.
pub fn credit_on<'a>(
    def: &Definition,
    at: Timestamp,
    transaction_id: Option<&str>,
    open: &[Touch],
    past: &'a [Recorded],
) -> Crediting<'a> {
    if let Some(tx) = transaction_id
        && let Some(original) = latest(past, |r| r.name == def.event && r.transaction_id.as_deref() == Some(tx))
    {
        return Crediting::Adjusts { original };
    }
    if let Some(up) = &def.inherits {
        let window = i64::from(def.inherit_window_days).saturating_mul(Timestamp::MILLIS_PER_DAY);
        let from = at.millis().saturating_sub(window);
        if let Some(upstream) = latest(past, |r| &r.name == up && r.at <= at && r.at.millis() >= from) {
            return Crediting::New {
                touches: upstream.touches.clone(),
                inherited_from: Some(upstream),
                closes_journey: false,
            };
        }
    }
    let touches = open.iter().filter(|t| t.at.is_none_or(|t| t <= at)).cloned().collect();
    Crediting::New { touches, inherited_from: None, closes_journey: true }
}

/// The latest (by time, then message id) of those matching.
fn latest(past: &[Recorded], pick: impl Fn(&Recorded) -> bool) -> Option<&Recorded> {
    past.iter().filter(|r| pick(r)).max_by(|a, b| (a.at, &a.message_id).cmp(&(b.at, &b.message_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(v: Value) -> Result<Definitions, ValidationError> {
        Definitions::from_json(&v)
    }

    #[test]
    fn bad_definitions_name_field_and_rule() {
        let e = defs(json!([{"event": "Client Signed", "inherits": "Nope"}])).unwrap_err();
        assert_eq!((e.field.as_str(), e.rule.as_str()), ("conversions[0].inherits", "names no conversion definition"));
        let e = defs(json!([{"event": "A", "inherits": "B"}, {"event": "B", "inherits": "A"}])).unwrap_err();
        assert_eq!(e.rule, "a cycle of inheritance");
        let e = defs(json!([{"event": "A", "inherits": "A"}])).unwrap_err();
        assert_eq!(e.rule, "a cycle of inheritance");
        let e = defs(json!([{"event": "A", "currency": "ABC"}])).unwrap_err();
        assert_eq!(e.field, "conversions[0].currency");
        let e = defs(json!([{"event": "A", "max_value": "12,5"}])).unwrap_err();
        assert_eq!(e.field, "conversions[0].max_value");
        let e = defs(json!([{"event": "A"}, {"event": "A"}])).unwrap_err();
        assert_eq!((e.field.as_str(), e.rule.as_str()), ("conversions[1].event", "defined twice"));
        let e = defs(json!([{"event": "A", "inherit_window_days": 3}])).unwrap_err();
        assert_eq!(e.rule, "only with inherits");
        let e = defs(json!([{"event": "A", "colour": "red"}])).unwrap_err();
        assert_eq!(e.field, "conversions[0]");
    }

    #[test]
    fn definitions_read_back_what_they_write() {
        let d = defs(json!([
            {"event": "Contact Submitted", "currency": "JPY", "max_value": 20000},
            {"event": "Client Signed", "value_property": "value", "currency": "KWD", "value_from": "server",
             "inherits": "Contact Submitted", "inherit_window_days": 30}
        ]))
        .unwrap();
        assert_eq!(defs(d.to_json()).unwrap(), d);
        assert_eq!(d.find("Contact Submitted").unwrap().max_value_minor, 20000);
    }

    #[test]
    fn values_take_the_currency_digits() {
        let d = defs(json!([{"event": "Order", "value_property": "v", "currency": "JPY", "max_value": 1000}])).unwrap();
        let def = d.find("Order").unwrap();
        let props = |v: Value| json!({"v": v}).as_object().cloned().unwrap();
        assert_eq!(def.value_minor(&props(json!(5000)), Sender::Server), 5000);
        assert_eq!(def.value_minor(&props(json!("5000")), Sender::Browser), 1000);
        assert_eq!(def.value_minor(&props(json!("49.5")), Sender::Server), 0, "JPY has no minor unit: the default");
    }
}
