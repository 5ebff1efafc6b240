//! `intent.*` golden vectors: `{href}` for a clicked link, `{origin, data}`
//! for a widget's message; the outcome is `null` or `{event, properties}`.

use microfunnel_core::intent::{self, Intent, Message};
use serde_json::{Value, json};

fn outcome(i: Option<Intent>) -> Value {
    i.map_or(Value::Null, |i| {
        let (k, v) = i.property();
        json!({ "event": i.event(), "properties": { k: v } })
    })
}

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    match suite {
        "intent.link" => {
            let href: String = super::field(input, "href")?;
            Ok(outcome(intent::link(&href)))
        }
        "intent.message" => {
            let origin: String = super::field(input, "origin")?;
            let data = input.get("data").unwrap_or(&Value::Null);
            let s = |k: &str| data.get(k).and_then(Value::as_str);
            Ok(outcome(intent::message(Message {
                origin: &origin,
                event: s("event"),
                originator: s("originator"),
                kind: s("type"),
            })))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
