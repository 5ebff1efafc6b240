//! `channel.*` golden vectors.

use microfunnel_core::channel::{Channel, ChannelInput, ChannelRules, classify};
use serde_json::Value;

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    use serde_json::json;
    match suite {
        "channel.classify" => {
            let touch: ChannelInput = field(input, "touch")?;
            let rules: Option<ChannelRules> = field(input, "rules")?;
            Ok(json!(classify(&touch, &rules.unwrap_or_default())))
        }
        "channel.parse" => {
            let name: String = field(input, "name")?;
            Channel::parse(&name).map(|c| json!(c)).map_err(|e| json!(e))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
