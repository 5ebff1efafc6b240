//! `event.*` golden vectors.

use microfunnel_core::event::{Event, Limits};
use microfunnel_core::timestamp::Timestamp;
use serde_json::Value;

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    match suite {
        "event.validate" => {
            let now: Timestamp = field(input, "now")?;
            let raw = input.get("event").cloned().unwrap_or(Value::Null);
            let limits = Limits::DEFAULT;
            match Event::parse(&raw, &limits, now) {
                Ok(mut e) => {
                    if input.get("derive_channel").and_then(Value::as_bool) == Some(true) {
                        e.derive_channel(&microfunnel_core::channel::ChannelRules::default());
                    }
                    let v = serde_json::to_value(&e).map_err(|e| Value::String(e.to_string()))?;
                    if v != e.to_json() {
                        return Err(Value::String("Event::to_json differs from its serde form".into()));
                    }
                    Ok(v)
                }
                Err(e) => Err(serde_json::to_value(&e).map_err(|e| Value::String(e.to_string()))?),
            }
        }
        _ => Err(Value::String(format!("unknown suite `{suite}`"))),
    }
}
