//! `identity.*` golden vectors.

use microfunnel_core::identity::pseudonymise;
use serde_json::{Map, Value};

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    match suite {
        "identity.pseudonymise" => {
            let mut traits: Map<String, Value> = field(input, "traits")?;
            pseudonymise(&mut traits);
            Ok(Value::Object(traits))
        }
        _ => Err(Value::String(["unknown suite `", suite, "`"].concat())),
    }
}
