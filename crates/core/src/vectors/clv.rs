//! `clv.*` golden vectors: the customer-value likelihoods, predictions, fits
//! and summaries. Customers are `[frequency, recency, T]` or
//! `[frequency, recency, T, monetary_value]`.

use microfunnel_core::clv::{self, BgNbd, GammaGamma, Rfm, Transaction, Unit};
use serde::Deserialize;
use serde_json::{Value, json};

fn customers(input: &Value) -> Result<Vec<Rfm>, Value> {
    let rows: Vec<Vec<f64>> = super::field(input, "customers")?;
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let (&x, &recency, &age) = match r.as_slice() {
                [x, r, t] | [x, r, t, _] => (x, r, t),
                _ => return Err(json!(format!("customers[{i}]: want 3 or 4 numbers"))),
            };
            Rfm::new(x as u32, recency, age, r.get(3).copied())
                .map_err(|e| json!({"index": i, "field": e.field, "rule": e.rule}))
        })
        .collect()
}

#[derive(Deserialize)]
struct BgParams {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
}

#[derive(Deserialize)]
struct GgParams {
    p: f64,
    q: f64,
    v: f64,
}

/// Fitted parameters to four significant digits: the optimum is pinned by its
/// log-likelihood (flat to first order there), the parameters only coarsely.
fn four(x: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

pub(super) fn case(suite: &str, input: &Value) -> Result<Value, Value> {
    use super::field;
    let bg = |input: &Value| -> Result<BgNbd, Value> {
        let p: BgParams = field(input, "bg_nbd")?;
        Ok(BgNbd { r: p.r, alpha: p.alpha, a: p.a, b: p.b })
    };
    let gg = |input: &Value| -> Result<Option<GammaGamma>, Value> {
        let p: Option<GgParams> = field(input, "gamma_gamma")?;
        Ok(p.map(|p| GammaGamma { p: p.p, q: p.q, v: p.v }))
    };
    match suite {
        "clv.log_likelihood" => {
            let c = customers(input)?;
            let mut out = json!({"bg_nbd": bg(input)?.log_likelihood(&c)});
            if let Some(g) = gg(input)? {
                out["gamma_gamma"] = json!(g.log_likelihood(&c));
            }
            Ok(out)
        }
        "clv.predict" => {
            let c = customers(input)?;
            let (b, g) = (bg(input)?, gg(input)?);
            let horizon: f64 = field(input, "horizon")?;
            let rows: Result<Vec<Value>, Value> = c
                .iter()
                .map(|c| {
                    let p = clv::predict(&b, g.as_ref(), c, horizon).map_err(|e| json!(e.to_string()))?;
                    Ok(json!(p))
                })
                .collect();
            Ok(Value::Array(rows?))
        }
        "clv.fit" => {
            let c = customers(input)?;
            let b = BgNbd::fit(&c).map_err(|e| json!(e.to_string()))?;
            let m = b.model;
            let mut out = json!({"bg_nbd": {
                "r": four(m.r), "alpha": four(m.alpha), "a": four(m.a), "b": four(m.b),
                "log_likelihood": b.log_likelihood,
            }});
            if c.iter().any(|c| c.monetary().is_some()) {
                let g = GammaGamma::fit(&c).map_err(|e| json!(e.to_string()))?;
                let m = g.model;
                out["gamma_gamma"] =
                    json!({"p": four(m.p), "q": four(m.q), "v": four(m.v), "log_likelihood": g.log_likelihood});
            }
            Ok(out)
        }
        "clv.summary" => {
            #[derive(Deserialize)]
            struct T {
                customer: String,
                day: i64,
                value_minor: i64,
            }
            let rows: Vec<T> = field(input, "transactions")?;
            let unit = Unit::parse(&field::<String>(input, "unit")?).map_err(|e| json!(e))?;
            let end_day: i64 = field(input, "end_day")?;
            let digits: u32 = field(input, "digits")?;
            let tx: Vec<Transaction<'_>> = rows
                .iter()
                .map(|t| Transaction { customer: &t.customer, day: t.day, value_minor: t.value_minor })
                .collect();
            let s = clv::summarise(&tx, end_day, unit, digits)
                .map_err(|r| json!({"index": r.index, "field": r.error.field, "rule": r.error.rule}))?;
            Ok(Value::Array(
                s.iter()
                    .map(|(id, c)| {
                        json!({"customer": id, "frequency": c.frequency(), "recency": c.recency(), "T": c.age(),
                               "monetary_value": c.monetary()})
                    })
                    .collect(),
            ))
        }
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    }
}
