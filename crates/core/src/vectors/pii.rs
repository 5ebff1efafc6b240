//! `pii.*` golden vectors.

use microfunnel_core::pii::{browser_family, redact_emails};
use serde_json::Value;

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    use serde_json::json;
    match suite {
        "pii.redact" => {
            let text: String = field(input, "text")?;
            Ok(json!(redact_emails(&text).unwrap_or(text)))
        }
        "pii.browser_family" => {
            let ua: String = field(input, "userAgent")?;
            Ok(json!(browser_family(&ua)))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
