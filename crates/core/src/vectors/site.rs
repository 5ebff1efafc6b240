//! `site.*` golden vectors: a site configuration parsed once.

use microfunnel_core::site_config::SiteConfig;
use serde_json::{Value, json};

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    match suite {
        "site.config" => {
            let doc = input.get("config").cloned().unwrap_or(Value::Null);
            let c = SiteConfig::from_json(&doc).map_err(|e| json!({"field": e.field, "rule": e.rule}))?;
            // What is stored reads back equal, on every runtime.
            if SiteConfig::from_json(&c.to_json()).as_ref() != Ok(&c) {
                return Err(json!("the stored form does not read back equal"));
            }
            let stored = c.to_json();
            let browser = c.browser_config("s");
            Ok(json!({
                "custom_rules": c.has_custom_rules(),
                "rules_version": c.rules().version(),
                "cta": stored["cta"],
                "consent": stored["consent"],
                "channels": stored["channels"],
                "conversions": c.conversions().iter().map(|d| d.event.as_str()).collect::<Vec<_>>(),
                "attribution": stored["attribution"],
                "timezone": c.timezone(),
                "customers": stored["customers"],
                "browser_keys": browser.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()),
                "browser_consent": browser["consent"],
                "script_tag": c.script_tag("https://c.example", "s"),
            }))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
