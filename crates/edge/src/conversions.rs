//! Instant attribution: when a visitor's object sees a conversion (a `track`
//! event named in the site's conversion definitions) it closes the open
//! journey and credits it under every heuristic model of the core, in integer
//! minor units. The conversion, its credits and the path aggregate (the input
//! of the Markov and Shapley reports) are written to D1 at once; TTA is the
//! time from the conversion's receipt to its credits being computed.

use crate::errors::ApiResult;
use crate::ingest::Source;
use crate::sites::{ConversionDef, ValueFrom, js_num, now_ms};
use microfunnel_core::Event;
use microfunnel_core::attribution::{Conversion, Model, PositionWeights, Touch, attribute};
use serde_json::{Value, json};
use worker::Env;

pub const PATH_SEPARATOR: &str = " > ";
/// The pseudo-channel of credit no touch could take (empty journey).
pub const UNATTRIBUTED: &str = "(unattributed)";

/// Every heuristic model, as reported.
pub fn models() -> Vec<Model> {
    vec![
        Model::FirstTouch,
        Model::LastTouch,
        Model::LastNonDirect,
        Model::Linear,
        Model::TimeDecay { half_life_h: Model::DEFAULT_HALF_LIFE_H },
        Model::Position(PositionWeights::U),
    ]
}

pub struct Pending {
    message_id: String,
    visitor: String,
    name: String,
    value_minor: i64,
    currency: Option<String>,
    /// Who sent the conversion (its value is the browser's claim or the
    /// site's own record).
    source: Source,
    ts: i64,
    received_at: i64,
    tta_ms: i64,
    path: String,
    /// The journey's first touch (None: a conversion with no touch).
    first_touch_ts: Option<i64>,
    /// (model, channel, share, minor units)
    credits: Vec<(String, String, f64, i64)>,
    errors: Vec<String>,
}

/// The conversion's value in minor units: `value_property` read as major
/// units (two decimals), else the definition's default. A browser's value
/// is a claim: clamped to the definition's `max_value`, or none at all where
/// only servers may state it.
fn value_minor(event: &Event, def: &ConversionDef, source: Source) -> i64 {
    if source == Source::Browser && def.value_from == ValueFrom::Server {
        return 0;
    }
    let value = def
        .value_property
        .as_ref()
        .and_then(|p| event.properties.get(p))
        .and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        })
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e13)
        .map_or(def.default_value_minor, |v| (v * 100.0).round() as i64);
    match source {
        Source::Browser => value.min((def.max_value * 100.0).round() as i64),
        Source::Server => value,
    }
}

pub fn compute(
    visitor: &str,
    event: &Event,
    def: &ConversionDef,
    touches: &[(String, i64)],
    received_at: i64,
    source: Source,
) -> Pending {
    let value = value_minor(event, def, source);
    let journey: Vec<Touch> = touches
        .iter()
        .filter(|(_, ts)| *ts <= event.timestamp.millis())
        .map(|(c, ts)| Touch::new(c.clone(), microfunnel_core::Timestamp::from_millis(*ts)))
        .collect();
    let conversion = Conversion { value_minor: value, at: Some(event.timestamp) };
    let mut credits = Vec::new();
    let mut errors = Vec::new();
    for model in models() {
        match attribute(&model, &journey, &conversion, None) {
            Ok(c) => {
                for credit in c.credits {
                    credits.push((model.name().to_owned(), credit.channel, credit.conversions, credit.value_minor));
                }
                if c.unattributed_minor != 0 || journey.is_empty() {
                    credits.push((
                        model.name().to_owned(),
                        UNATTRIBUTED.to_owned(),
                        c.unattributed_conversions,
                        c.unattributed_minor,
                    ));
                }
            }
            Err(e) => errors.push(format!("{}: {e}", model.name())),
        }
    }
    let path = journey.iter().map(|t| t.channel.as_str()).collect::<Vec<_>>().join(PATH_SEPARATOR);
    Pending {
        message_id: event.message_id.to_string(),
        visitor: visitor.to_owned(),
        name: def.event.clone(),
        value_minor: value,
        currency: def.currency.clone(),
        source,
        ts: event.timestamp.millis(),
        received_at,
        tta_ms: (now_ms() - received_at).max(0),
        first_touch_ts: journey.iter().filter_map(|t| t.at).map(|t| t.millis()).min(),
        path,
        credits,
        errors,
    }
}

pub async fn store(env: &Env, site: &str, p: Pending) -> ApiResult<Value> {
    let db = env.d1("DB")?;
    let attempt = crate::auth::random_hex(1)?;
    let mut statements = vec![
        db.prepare(
            "INSERT INTO conversions (site_id, message_id, visitor_id, name, value_minor, currency, ts, received_at, \
             tta_ms, path, first_touch_ts, source, attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT(site_id, message_id) DO NOTHING",
        )
        .bind(&[
            site.into(),
            p.message_id.as_str().into(),
            p.visitor.as_str().into(),
            p.name.as_str().into(),
            js_num(p.value_minor),
            p.currency.as_deref().map_or(worker::wasm_bindgen::JsValue::NULL, Into::into),
            js_num(p.ts),
            js_num(p.received_at),
            js_num(p.tta_ms),
            p.path.as_str().into(),
            p.first_touch_ts.map_or(worker::wasm_bindgen::JsValue::NULL, js_num),
            p.source.name().into(),
            attempt.as_str().into(),
        ])?,
    ];
    if !p.path.is_empty() {
        // Only if this very attempt inserted the conversion (its random
        // attempt id is on the row): a conversion seen again adds nothing to
        // the Markov/Shapley input.
        statements.push(
            db.prepare(
                "INSERT INTO paths (site_id, path, conversions, value_minor, nulls) \
                 SELECT ?1, ?2, 1, ?3, 0 WHERE EXISTS (SELECT 1 FROM conversions WHERE site_id = ?1 \
                 AND message_id = ?4 AND attempt = ?5) \
                 ON CONFLICT(site_id, path) DO UPDATE SET conversions = conversions + 1, \
                 value_minor = value_minor + excluded.value_minor",
            )
            .bind(&[
                site.into(),
                p.path.as_str().into(),
                js_num(p.value_minor),
                p.message_id.as_str().into(),
                attempt.as_str().into(),
            ])?,
        );
    }
    for (model, channel, share, minor) in &p.credits {
        statements.push(
            db.prepare(
                "INSERT INTO credits (site_id, message_id, visitor_id, model, channel, share, credit_minor) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?6) ON CONFLICT DO NOTHING",
            )
            .bind(&[
                site.into(),
                p.message_id.as_str().into(),
                p.visitor.as_str().into(),
                model.as_str().into(),
                channel.as_str().into(),
                js_num(*minor),
                worker::wasm_bindgen::JsValue::from_f64(*share),
            ])?,
        );
    }
    db.batch(statements).await?;
    let mut by_model = serde_json::Map::new();
    for (model, channel, _, minor) in &p.credits {
        let entry = by_model.entry(model.clone()).or_insert_with(|| json!({}));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(channel.clone(), json!(minor));
        }
    }
    Ok(json!({
        "message_id": p.message_id,
        "name": p.name,
        "value_minor": p.value_minor,
        "tta_ms": p.tta_ms,
        "path": p.path,
        "credits": by_model,
        "errors": p.errors,
    }))
}

/// A journey closed without a conversion: one more null on its path.
pub async fn store_null(env: &Env, site: &str, path: &str) -> ApiResult<()> {
    if path.is_empty() {
        return Ok(());
    }
    env.d1("DB")?
        .prepare(
            "INSERT INTO paths (site_id, path, conversions, value_minor, nulls) VALUES (?1, ?2, 0, 0, 1) \
             ON CONFLICT(site_id, path) DO UPDATE SET nulls = nulls + 1",
        )
        .bind(&[site.into(), path.into()])?
        .run()
        .await?;
    Ok(())
}
