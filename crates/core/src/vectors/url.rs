//! `url.*` golden vectors.

use microfunnel_core::url::{SanitiseRules, host_of, sanitise};
use serde_json::Value;

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    use serde_json::json;
    match suite {
        "url.sanitise" => {
            let url: String = field(input, "url")?;
            let rules: Option<SanitiseRules> = field(input, "rules")?;
            Ok(json!(sanitise(&url, &rules.unwrap_or_default())))
        }
        "url.host" => {
            let url: String = field(input, "url")?;
            Ok(json!(host_of(&url)))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
