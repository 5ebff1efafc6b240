//! Instant attribution: when a visitor's object sees a conversion (a `track`
//! event named in the site's conversion definitions) the core decides which
//! path it is credited on — the open journey (which it closes), the path of
//! the upstream conversion it inherits, or an earlier conversion's whose
//! value it adjusts — and credits it under every heuristic model, in integer
//! minor units. The conversion, its credits and the path aggregate (the input
//! of the Markov and Shapley reports) are written to D1 at once; TTA is the
//! time from the conversion's receipt to its credits being computed.

use crate::errors::ApiResult;
use crate::ingest::Source;
use crate::sites::{js_num, now_ms};
use microfunnel_core::attribution::{Conversion, JourneyPath, Model, PositionWeights, Touch, attribute};
use microfunnel_core::conversion::{self, Crediting, Definition, Recorded, Sender, credit_on};
use microfunnel_core::{Event, Timestamp};
use serde_json::{Value, json};
use worker::{Env, wasm_bindgen::JsValue};

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

/// A conversion's D1 rows, computed in the object's step and written after.
pub struct Pending {
    message_id: String,
    visitor: String,
    name: String,
    value_minor: i64,
    currency: Option<&'static str>,
    /// Who sent the conversion (its value is the browser's claim or the
    /// site's own record).
    source: Source,
    ts: i64,
    received_at: i64,
    tta_ms: i64,
    path: String,
    /// The path's first touch (None: a conversion with no touch).
    first_touch_ts: Option<i64>,
    /// The conversion whose path this one was credited on.
    inherited_from: Option<String>,
    transaction_id: Option<String>,
    /// `Some(original)`: the same transaction again, replacing `original`'s value.
    adjusts: Option<String>,
    /// (model, channel, share, minor units)
    credits: Vec<(String, String, f64, i64)>,
    errors: Vec<String>,
}

impl Pending {
    /// What the visitor keeps of it, for later conversions that inherit or
    /// adjust it (`None` for an adjustment: it is not a conversion of its own).
    pub fn recorded(&self, touches: Vec<Touch>) -> Option<Recorded> {
        if self.adjusts.is_some() {
            return None;
        }
        Some(Recorded {
            message_id: self.message_id.clone(),
            name: self.name.clone(),
            at: Timestamp::from_millis(self.ts)?,
            value_minor: self.value_minor,
            transaction_id: self.transaction_id.clone(),
            touches,
        })
    }

    /// The earlier conversion this one adjusts, and its new value.
    pub fn adjustment(&self) -> Option<(&str, i64)> {
        self.adjusts.as_deref().map(|o| (o, self.value_minor))
    }
}

/// A conversion of `def` credited as the core decides ([`credit_on`]): on
/// the open journey, on the path of the upstream conversion it inherits, or
/// as an adjustment of an earlier one's value. Answers the rows to write and
/// the touches it was credited on.
pub fn compute(
    visitor: &str,
    event: &Event,
    def: &Definition,
    open: &[Touch],
    past: &[Recorded],
    received_at: i64,
    source: Source,
) -> (Pending, Vec<Touch>, bool) {
    let sender = match source {
        Source::Browser => Sender::Browser,
        Source::Server => Sender::Server,
    };
    let value = def.value_minor(&event.properties, sender);
    let transaction_id = conversion::transaction_id(&event.properties);
    let (journey, inherited_from, adjusts, closes) =
        match credit_on(def, event.timestamp, transaction_id.as_deref(), open, past) {
            Crediting::New { touches, inherited_from, closes_journey } => {
                (touches, inherited_from.map(|r| r.message_id.clone()), None, closes_journey)
            }
            Crediting::Adjusts { original } => {
                (original.touches.clone(), None, Some(original.message_id.clone()), false)
            }
        };
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
    let path = JourneyPath::of(journey.iter().map(|t| t.channel.as_str())).to_string();
    let pending = Pending {
        message_id: event.message_id.to_string(),
        visitor: visitor.to_owned(),
        name: def.event.clone(),
        value_minor: value,
        currency: def.currency.map(|c| c.code()),
        source,
        ts: event.timestamp.millis(),
        received_at,
        tta_ms: (now_ms() - received_at).max(0),
        first_touch_ts: journey.iter().filter_map(|t| t.at).map(|t| t.millis()).min(),
        path,
        inherited_from,
        transaction_id,
        adjusts,
        credits,
        errors,
    };
    (pending, journey, closes)
}

pub async fn store(env: &Env, site: &str, p: Pending) -> ApiResult<Value> {
    if p.adjusts.is_some() {
        return store_adjustment(env, site, p).await;
    }
    let db = env.d1("DB")?;
    let attempt = crate::auth::random_hex(1)?;
    let mut statements = vec![
        db.prepare(
            "INSERT INTO conversions (site_id, message_id, visitor_id, name, value_minor, currency, ts, received_at, \
             tta_ms, path, first_touch_ts, source, attempt, inherited_from, transaction_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
             ON CONFLICT(site_id, message_id) DO NOTHING",
        )
        .bind(&[
            site.into(),
            p.message_id.as_str().into(),
            p.visitor.as_str().into(),
            p.name.as_str().into(),
            js_num(p.value_minor),
            p.currency.map_or(JsValue::NULL, Into::into),
            js_num(p.ts),
            js_num(p.received_at),
            js_num(p.tta_ms),
            p.path.as_str().into(),
            p.first_touch_ts.map_or(JsValue::NULL, js_num),
            p.source.name().into(),
            attempt.as_str().into(),
            p.inherited_from.as_deref().map_or(JsValue::NULL, Into::into),
            p.transaction_id.as_deref().map_or(JsValue::NULL, Into::into),
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
                JsValue::from_f64(*share),
            ])?,
        );
    }
    db.batch(statements).await?;
    Ok(answer(&p))
}

/// The webhook's and the visitor reply's view of a conversion.
fn answer(p: &Pending) -> Value {
    let mut by_model = serde_json::Map::new();
    for (model, channel, _, minor) in &p.credits {
        let entry = by_model.entry(model.clone()).or_insert_with(|| json!({}));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(channel.clone(), json!(minor));
        }
    }
    json!({
        "message_id": p.adjusts.as_deref().unwrap_or(&p.message_id),
        "name": p.name,
        "value_minor": p.value_minor,
        "currency": p.currency,
        "tta_ms": p.tta_ms,
        "path": p.path,
        "inherited_from": p.inherited_from,
        "transaction_id": p.transaction_id,
        "adjusted_by": p.adjusts.as_ref().map(|_| &p.message_id),
        "credits": by_model,
        "errors": p.errors,
    })
}

/// The same transaction again: the earlier conversion's value, its credits
/// and its path's value become the new figure, in one batch. The path's
/// change is read from the stored value before it is replaced, so a replay
/// changes nothing more.
async fn store_adjustment(env: &Env, site: &str, p: Pending) -> ApiResult<Value> {
    let Some(original) = p.adjusts.as_deref() else { return Ok(answer(&p)) };
    let db = env.d1("DB")?;
    let mut statements = vec![
        db.prepare(
            "UPDATE paths SET value_minor = value_minor + (?3 - (SELECT value_minor FROM conversions \
             WHERE site_id = ?1 AND message_id = ?2)) WHERE site_id = ?1 AND path = (SELECT path FROM conversions \
             WHERE site_id = ?1 AND message_id = ?2 AND attempt IS NOT NULL AND path <> '')",
        )
        .bind(&[site.into(), original.into(), js_num(p.value_minor)])?,
        db.prepare("UPDATE conversions SET value_minor = ?3, adjusted_at = ?4 WHERE site_id = ?1 AND message_id = ?2")
            .bind(&[site.into(), original.into(), js_num(p.value_minor), js_num(p.received_at)])?,
    ];
    for (model, channel, share, minor) in &p.credits {
        statements.push(
            db.prepare(
                "INSERT INTO credits (site_id, message_id, visitor_id, model, channel, share, credit_minor) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?7, ?6 WHERE EXISTS (SELECT 1 FROM conversions WHERE site_id = ?1 \
                 AND message_id = ?2) ON CONFLICT(site_id, message_id, model, channel) DO UPDATE SET credit_minor = excluded.credit_minor, share = excluded.share",
            )
            .bind(&[
                site.into(),
                original.into(),
                p.visitor.as_str().into(),
                model.as_str().into(),
                channel.as_str().into(),
                js_num(*minor),
                JsValue::from_f64(*share),
            ])?,
        );
    }
    db.batch(statements).await?;
    Ok(answer(&p))
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
