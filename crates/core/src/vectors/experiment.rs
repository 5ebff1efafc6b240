//! `experiment.*` golden vectors.

use microfunnel_core::experiment::{
    Counts, DEFAULT_TAU2, HoldoutPercent, Snapshot, always_valid_p, assign, bucket, calibration, lift,
};
use serde_json::{Value, json};

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    let counts = |v: &Value, name: &str| Counts::parse(name, v.get(name).unwrap_or(&Value::Null)).map_err(|e| json!(e));
    match suite {
        "experiment.assign" => {
            let site: String = field(input, "site_id")?;
            let visitor: String = field(input, "visitor_id")?;
            let percent =
                HoldoutPercent::parse("percent", input.get("percent").unwrap_or(&Value::Null)).map_err(|e| json!(e))?;
            Ok(json!({
                "percent": percent,
                "bucket": bucket(&site, &visitor),
                "arm": assign(&site, &visitor, percent),
            }))
        }
        "experiment.shown" => {
            let site: String = field(input, "site_id")?;
            let anonymous: Option<String> = field(input, "anonymous_id")?;
            let percent =
                HoldoutPercent::parse("percent", input.get("percent").unwrap_or(&Value::Null)).map_err(|e| json!(e))?;
            let tier: String = field(input, "tier")?;
            let coldest: String = field(input, "coldest")?;
            let arm = microfunnel_core::experiment::arm_of(&site, anonymous.as_deref(), percent);
            Ok(json!({"arm": arm, "shown": microfunnel_core::experiment::shown_tier(arm, &tier, &coldest)}))
        }
        "experiment.lift" => Ok(json!(lift(counts(input, "treated")?, counts(input, "holdout")?))),
        "experiment.sequential" => {
            let raw: Vec<Value> = field(input, "snapshots")?;
            let mut snapshots = Vec::with_capacity(raw.len());
            for (i, s) in raw.iter().enumerate() {
                let at = |arm: &str| {
                    Counts::parse(&format!("snapshots[{i}].{arm}"), s.get(arm).unwrap_or(&Value::Null))
                        .map_err(|e| json!(e))
                };
                snapshots.push(Snapshot { treated: at("treated")?, holdout: at("holdout")? });
            }
            let tau2 = match input.get("tau2") {
                None => DEFAULT_TAU2,
                Some(v) => v.as_f64().ok_or_else(|| json!("vector input `tau2`: a number"))?,
            };
            Ok(json!(always_valid_p(&snapshots, tau2).map_err(|e| json!(e))?))
        }
        "experiment.calibration" => {
            let raw: Vec<Value> = field(input, "tiers")?;
            let mut tiers = Vec::with_capacity(raw.len());
            for (i, t) in raw.iter().enumerate() {
                let id = t.get("tier").and_then(Value::as_str).ok_or_else(|| json!("vector input `tier`: a string"))?;
                let c = Counts::parse(&format!("tiers[{i}]"), t).map_err(|e| json!(e))?;
                tiers.push((id, c));
            }
            Ok(json!(calibration(&tiers).map_err(|e| json!(e))?))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
