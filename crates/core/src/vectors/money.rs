//! `money.*` golden vectors.

use microfunnel_core::money::{Currency, digits_of, format_major, parse_major_json};
use serde_json::Value;

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use serde_json::json;
    match suite {
        "money.parse" => {
            let currency = match input.get("currency").and_then(Value::as_str) {
                Some(c) => Some(Currency::parse(c).map_err(|e| json!(e))?),
                None => None,
            };
            let digits = digits_of(currency);
            let amount = input.get("amount").cloned().unwrap_or(Value::Null);
            let minor = parse_major_json("amount", &amount, digits).map_err(|e| json!(e))?;
            Ok(json!({"minor": minor, "digits": digits, "major": format_major(minor, digits)}))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
