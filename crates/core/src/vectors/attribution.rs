//! Golden-vector suites for attribution (`attribution.*`).

use super::field;
use microfunnel_core::attribution::{
    AqsInputs, Conversion, JourneyPath, Kind, KpiInput, MarkovOptions, Model, PathTable, PositionWeights, SetCounts,
    ShapleyGame, ShapleyOptions, Timeline, Touch, TtaStats, aqs, attribute, fit_markov, icv, kpi, split_minor,
    table_totals,
};
use microfunnel_core::timestamp::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

fn err(e: impl std::fmt::Display) -> Value {
    json!(e.to_string())
}

fn model(input: &Value) -> Result<Model, Value> {
    let name: String = field(input, "model")?;
    let half: Option<f64> = field(input, "half_life_hours")?;
    let weights: Option<[f64; 3]> = field(input, "weights")?;
    if let Some([f, m, l]) = weights {
        return PositionWeights::custom(f, m, l).map(Model::Position).map_err(err);
    }
    Model::parse(&name, half.unwrap_or(Model::DEFAULT_HALF_LIFE_H)).map_err(err)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathIn {
    path: String,
    #[serde(default)]
    conversions: f64,
    #[serde(default)]
    value: f64,
    #[serde(default)]
    nulls: f64,
    #[serde(default)]
    ages_h: Option<Vec<f64>>,
}

fn table(input: &Value) -> Result<PathTable, Value> {
    let rows: Vec<PathIn> = field(input, "paths")?;
    let mut t = PathTable::new();
    for (i, r) in rows.into_iter().enumerate() {
        let path = JourneyPath::parse(&r.path);
        let names: Vec<&str> = path.steps().collect();
        t.push_names(&names, r.conversions, r.value, r.nulls, r.ages_h)
            .map_err(|e| json!(format!("paths[{i}]: {e}")))?;
    }
    Ok(t)
}

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    match suite {
        "attribution.split" => {
            let total: i64 = field(input, "value_minor")?;
            let weights: Vec<f64> = field(input, "weights")?;
            split_minor(total, &weights).map(|v| json!(v)).map_err(err)
        }
        "attribution.conversion" => {
            let m = model(input)?;
            let touches: Vec<Touch> = field(input, "touches")?;
            let conversion: Conversion = field(input, "conversion")?;
            let lookback: Option<f64> = field(input, "lookback_hours")?;
            let c = attribute(&m, &touches, &conversion, lookback).map_err(err)?;
            Ok(json!({
                "credits": c.credits,
                "unattributed_conversions": c.unattributed_conversions,
                "unattributed_minor": c.unattributed_minor,
                "touches_used": c.touches_used,
            }))
        }
        "attribution.table" => {
            let m = model(input)?;
            let t = table(input)?;
            let (conv, val) = table_totals(&m, &t).map_err(err)?;
            let rows: Vec<Value> = t
                .channels
                .sorted_ids()
                .into_iter()
                .map(|c| {
                    json!({
                        "channel": t.channels.name(c),
                        "conversions": conv.get(c as usize).copied().unwrap_or(0.0),
                        "value": val.get(c as usize).copied().unwrap_or(0.0),
                    })
                })
                .collect();
            Ok(json!(rows))
        }
        "attribution.markov" => {
            let t = table(input)?;
            let order: Option<usize> = field(input, "order")?;
            let min: Option<f64> = field(input, "min_journeys")?;
            let opts = MarkovOptions { order: order.unwrap_or(1), min_journeys: min.unwrap_or(0.0) };
            let r = fit_markov(&t, &opts).map_err(err)?;
            Ok(json!({ "p_conversion": r.p_conversion, "channels": r.channels }))
        }
        "attribution.shapley" => {
            let t = table(input)?;
            let method: String = field(input, "method")?;
            let game: Option<String> = field(input, "game")?;
            let max_exact: Option<usize> = field(input, "max_exact")?;
            let samples: Option<usize> = field(input, "samples")?;
            let seed: Option<u64> = field(input, "seed")?;
            let sets = SetCounts::from_table(&t);
            let defaults = ShapleyOptions::default();
            let opts = ShapleyOptions {
                game: match game.as_deref() {
                    None | Some("conversions") => ShapleyGame::Conversions,
                    Some("rate") => ShapleyGame::Rate,
                    Some(g) => return Err(json!(format!("unknown game `{g}`"))),
                },
                max_exact: max_exact.unwrap_or(defaults.max_exact),
                samples: samples.unwrap_or(defaults.samples),
                seed: seed.unwrap_or(0),
                min_journeys: 0.0,
            };
            let r = match method.as_str() {
                "zhao" => sets.zhao(&t.channels, 0.0),
                "shapley" => sets.shapley(&t.channels, &opts),
                m => return Err(json!(format!("unknown method `{m}`"))),
            }
            .map_err(err)?;
            let channels: Vec<Value> = r
                .channels
                .iter()
                .map(|c| {
                    json!({"channel": c.channel, "conversions": c.conversions, "value": c.value,
                           "phi": c.phi, "phi_value": c.phi_value})
                })
                .collect();
            Ok(json!({ "exact": r.exact, "channels": channels }))
        }
        "attribution.timeline" => {
            // A visitor's events in time order: {at, kind: page|declared|other,
            // channel?, closes?}; `closes` closes the journey after the event
            // (a conversion credited on it, or its expiry).
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Moment {
                at: Timestamp,
                kind: String,
                #[serde(default)]
                channel: Option<String>,
                #[serde(default)]
                closes: bool,
            }
            let minutes: Option<i64> = field(input, "session_timeout_minutes")?;
            let timeout =
                minutes.map_or(microfunnel_core::scoring::Rules::default_rules().session_timeout_ms(), |m| m * 60_000);
            let events: Vec<Moment> = field(input, "events")?;
            let mut t = Timeline::new(timeout);
            let mut steps = Vec::new();
            for (i, e) in events.iter().enumerate() {
                let kind = match e.kind.as_str() {
                    "page" => Kind::Page,
                    "declared" => Kind::Declared,
                    "other" => Kind::Other,
                    k => return Err(json!(format!("events[{i}].kind: `{k}` is not page, declared or other"))),
                };
                steps.push(json!(t.step(kind, e.channel.as_deref(), e.at)));
                if e.closes {
                    t.close(e.at);
                }
            }
            let journey: Vec<Value> = t.touches().iter().map(|(c, at)| json!({"channel": c, "at": at})).collect();
            let sessions: Vec<Value> = t.sessions().iter().map(|(a, b)| json!([a, b])).collect();
            Ok(json!({ "steps": steps, "journey": journey, "sessions": sessions }))
        }
        "attribution.metrics" => {
            if let Some(x) = input.get("aqs") {
                let a: AqsInputs = serde_json::from_value(x.clone()).map_err(err)?;
                Ok(json!(aqs(&a)))
            } else if let Some(x) = input.get("kpi") {
                let k: KpiInput = serde_json::from_value(x.clone()).map_err(err)?;
                Ok(json!(kpi(&k)))
            } else if let Some(x) = input.get("tta") {
                let pairs: Vec<(i64, i64)> = serde_json::from_value(x.clone()).map_err(err)?;
                let mut s = TtaStats::default();
                for (a, b) in pairs {
                    s.record(a, b);
                }
                Ok(json!({"stats": s, "mean_ms": s.mean_ms()}))
            } else if let Some(x) = input.get("icv") {
                let t = table(x)?;
                let r = fit_markov(&t, &MarkovOptions::default()).map_err(err)?;
                Ok(json!(icv(&r)))
            } else {
                Err(json!("metrics vector needs `aqs`, `kpi`, `tta` or `icv`"))
            }
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
