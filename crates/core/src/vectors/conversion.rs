//! `conversion.*` golden vectors.

use microfunnel_core::conversion::*;
use microfunnel_core::timestamp::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    use microfunnel_core::attribution::{Conversion, Model, Touch, attribute};
    let defs =
        |input: &Value| Definitions::from_json(input.get("conversions").unwrap_or(&Value::Null)).map_err(|e| json!(e));
    match suite {
        "conversion.definitions" => Ok(defs(input)?.to_json()),
        "conversion.stages" => {
            // Definitions checked against a rule set's stages (default rules
            // unless `rules`): what each conversion enters.
            let d = defs(input)?;
            let rules = match input.get("rules") {
                None => microfunnel_core::scoring::Rules::default_rules(),
                Some(v) => microfunnel_core::scoring::Rules::from_json_value(v).map_err(|e| json!(e))?,
            };
            let stages = d.stages(&rules).map_err(|e| json!(e))?;
            let enters = |event: &str| {
                let stage = stages.stage_of(event)?;
                rules.stages().get(stage).map(|s| s.id().to_owned())
            };
            Ok(Value::Array(d.iter().map(|def| json!({"event": def.event, "enters": enters(&def.event)})).collect()))
        }
        "conversion.value" => {
            let d = defs(input)?;
            let name: String = field(input, "event")?;
            let props: Map<String, Value> = field(input, "properties")?;
            let sender = match field::<String>(input, "sender")?.as_str() {
                "browser" => Sender::Browser,
                "server" => Sender::Server,
                s => return Err(json!(format!("unknown sender `{s}`"))),
            };
            let def = d.find(&name).ok_or_else(|| json!("no such definition"))?;
            def.check_value(&props).map_err(|e| json!(e))?;
            Ok(json!({"value_minor": def.value_minor(&props, sender), "transaction_id": transaction_id(&props)}))
        }
        "conversion.lifecycle" => {
            // A visitor's touches and conversions in order; each conversion
            // is credited as the edge credits it (last touch unless `model`).
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Step {
                #[serde(default)]
                touch: Option<String>,
                #[serde(default)]
                convert: Option<String>,
                at: Timestamp,
                #[serde(default)]
                message_id: Option<String>,
                #[serde(default)]
                properties: Map<String, Value>,
                #[serde(default)]
                sender: Option<String>,
            }
            let d = defs(input)?;
            let model = Model::parse(&field::<Option<String>>(input, "model")?.unwrap_or("last".into()), 168.0)
                .map_err(|e| json!(e.to_string()))?;
            let steps: Vec<Step> = field(input, "steps")?;
            let mut open: Vec<Touch> = Vec::new();
            let mut past: Vec<Recorded> = Vec::new();
            let mut out = Vec::new();
            for (i, s) in steps.into_iter().enumerate() {
                if let Some(ch) = s.touch {
                    open.push(Touch::new(ch, Some(s.at)));
                    continue;
                }
                let Some(name) = s.convert else { return Err(json!(format!("steps[{i}]: touch or convert"))) };
                let Some(def) = d.find(&name) else {
                    out.push(json!({"step": i, "kind": "not_a_conversion"}));
                    continue;
                };
                let sender = if s.sender.as_deref() == Some("browser") { Sender::Browser } else { Sender::Server };
                let value = def.value_minor(&s.properties, sender);
                let tx = transaction_id(&s.properties);
                let id = s.message_id.unwrap_or_else(|| format!("m{i}"));
                let (touches, kind, from, closes, adjusted) = match credit_on(def, s.at, tx.as_deref(), &open, &past) {
                    Crediting::Adjusts { original } => {
                        (original.touches.clone(), "adjusts", Some(original.message_id.clone()), false, true)
                    }
                    Crediting::New { touches, inherited_from, closes_journey } => {
                        (touches, "new", inherited_from.map(|r| r.message_id.clone()), closes_journey, false)
                    }
                };
                let credits = attribute(&model, &touches, &Conversion { value_minor: value, at: Some(s.at) }, None)
                    .map_err(|e| json!(format!("steps[{i}]: {e}")))?;
                let path: Vec<&str> = touches.iter().map(|t| t.channel.as_str()).collect();
                out.push(json!({
                    "step": i, "kind": kind, "of": from, "path": path, "value_minor": value,
                    "credits": credits.credits, "unattributed_minor": credits.unattributed_minor,
                }));
                if adjusted {
                    if let Some(r) = past.iter_mut().find(|r| Some(&r.message_id) == from.as_ref()) {
                        r.value_minor = value;
                    }
                } else {
                    past.push(Recorded {
                        message_id: id,
                        name,
                        at: s.at,
                        value_minor: value,
                        transaction_id: tx,
                        touches,
                    });
                }
                if closes {
                    open.clear();
                }
            }
            Ok(json!(out))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
