//! `consent.*` golden vectors.

use microfunnel_core::consent::{
    Consent, ConsentSignals, ConsentStamp, ExplicitChoice, MinimisePolicy, from_loader, minimise_with, resolve,
    withdraw,
};
use microfunnel_core::event::Event;
use serde_json::Value;

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    use serde_json::json;
    let stamp_json = |c: &Consent| json!(c.stamp());
    match suite {
        "consent.loader" => {
            // What the loader gathered from the page, as the module gets it.
            let raw = input.get("raw").cloned().unwrap_or(Value::Null);
            Ok(stamp_json(&resolve(&from_loader(&raw))))
        }
        "consent.resolve" => {
            let signals: ConsentSignals = field(input, "signals")?;
            Ok(stamp_json(&resolve(&signals)))
        }
        "consent.explicit" => {
            // A sequence of API calls folded in order.
            let calls: Vec<Value> = field(input, "calls")?;
            let mut choice = ExplicitChoice::default();
            for (i, c) in calls.iter().enumerate() {
                // The browser's own reader, which refuses without a message.
                let next = ExplicitChoice::parse(c).ok_or_else(|| {
                    json!(format!(
                        "calls[{i}]: not a consent choice ('deny-all', 'grant-all' or an object of booleans)"
                    ))
                })?;
                choice = choice.then(next);
            }
            let signals = ConsentSignals { explicit: Some(choice), ..Default::default() };
            Ok(stamp_json(&resolve(&signals)))
        }
        "consent.stamp" => {
            ConsentStamp::parse(input.get("stamp").unwrap_or(&Value::Null)).map(|s| json!(s)).map_err(|e| json!(e))
        }
        "consent.minimise" => {
            let now: microfunnel_core::Timestamp = field(input, "now")?;
            let signals: ConsentSignals = field(input, "signals")?;
            let policy: Option<MinimisePolicy> = field(input, "policy")?;
            let raw = input.get("event").cloned().unwrap_or(Value::Null);
            let mut event = Event::parse(&raw, &microfunnel_core::Limits::DEFAULT, now).map_err(|e| json!(e))?;
            event.derive_channel(&Default::default());
            let out = minimise_with(event, &resolve(&signals), &policy.unwrap_or_default());
            Ok(json!(out))
        }
        "consent.withdraw" => {
            let now: microfunnel_core::Timestamp = field(input, "now")?;
            let withdrawal = ConsentStamp::parse(input.get("withdrawal").unwrap_or(&Value::Null))
                .map_err(|e| json!(format!("withdrawal: {e}")))?;
            let raw = input.get("event").cloned().unwrap_or(Value::Null);
            let mut event = Event::parse(&raw, &microfunnel_core::Limits::DEFAULT, now).map_err(|e| json!(e))?;
            event.derive_channel(&Default::default());
            Ok(json!(withdraw(event, &Consent::from_stamp(&withdrawal), &MinimisePolicy::default())))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
