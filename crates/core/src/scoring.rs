//! stub
#[cfg(feature = "vectors")]
pub(crate) fn vector_case(suite: &str, _input: &serde_json::Value) -> Result<serde_json::Value, serde_json::Value> {
    Err(serde_json::json!(format!("unknown suite `{suite}`")))
}
