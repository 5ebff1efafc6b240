//! `POST /v1/spend` (admin): what each channel cost per day, so the KPI report
//! can give CPA and ROAS. Amounts are integer minor units. A day uploaded
//! again replaces the earlier figure (an upload is a correction, never a
//! double count), and one upload is written in one D1 batch: all rows or none.

use crate::access::{self, Permission};
use crate::audit;
use crate::body;
use crate::errors::{ApiError, ApiResult, reply};
use crate::sites::{Site, js_num, now_ms};
use microfunnel_core::Timestamp;
use serde_json::{Value, json};
use worker::{Request, Response, Result, RouteContext};

/// Rows per upload: a year of a dozen channels fits twice.
pub const MAX_ROWS: usize = 10_000;
/// Channel names as the reports print them (`Paid Search`, a custom group…).
const MAX_CHANNEL: usize = 64;
/// 10^13 minor units: a hundred billion in a two-decimal currency per day.
const MAX_AMOUNT: i64 = 10_000_000_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct SpendRow {
    pub channel: String,
    /// UTC midnight of the day, in milliseconds.
    pub day_ms: i64,
    pub amount_minor: i64,
    pub currency: Option<String>,
}

fn field(index: usize, name: &str, rule: &str) -> ApiError {
    ApiError::bad_request("invalid_spend", format!("rows[{index}].{name}: {rule}"))
}

fn currency(v: &Value, at: &str) -> ApiResult<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(c) if microfunnel_core::money::Currency::parse(c).is_ok() => Ok(Some(c.clone())),
        _ => Err(ApiError::bad_request("invalid_spend", format!("{at}: an ISO 4217 code like EUR"))),
    }
}

/// Validates an upload `{site, currency?, rows: [{channel, date, amount_minor, currency?}]}`.
/// Every rejection names the row and the field; a duplicate (channel, day)
/// inside one upload is refused rather than silently summed or dropped.
pub fn parse(body: &Value) -> ApiResult<(String, Vec<SpendRow>)> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request("invalid_spend", "the body must be a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "site" | "currency" | "rows")) {
        return Err(ApiError::bad_request("invalid_spend", format!("{k}: unknown field")));
    }
    let Some(site) = obj.get("site").and_then(Value::as_str) else {
        return Err(ApiError::bad_request("missing_site", "site: a site id is required"));
    };
    let default_currency = currency(obj.get("currency").unwrap_or(&Value::Null), "currency")?;
    let Some(rows) = obj.get("rows").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(
            "invalid_spend",
            "rows: an array of {channel, date, amount_minor} is required",
        ));
    };
    if rows.is_empty() || rows.len() > MAX_ROWS {
        return Err(ApiError::bad_request("invalid_spend", format!("rows: 1 to {MAX_ROWS} rows")));
    }
    let mut out: Vec<SpendRow> = Vec::with_capacity(rows.len());
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(r) = row.as_object() else {
            return Err(ApiError::bad_request("invalid_spend", format!("rows[{i}]: must be an object")));
        };
        if let Some(k) = r.keys().find(|k| !matches!(k.as_str(), "channel" | "date" | "amount_minor" | "currency")) {
            return Err(field(i, k, "unknown field"));
        }
        let channel = match r.get("channel").and_then(Value::as_str).map(str::trim) {
            Some(c) if !c.is_empty() && c.chars().count() <= MAX_CHANNEL && !c.chars().any(char::is_control) => c,
            _ => return Err(field(i, "channel", "a channel name of 1 to 64 characters, as the reports show it")),
        };
        let date = r.get("date").and_then(Value::as_str).unwrap_or_default();
        let day_ms = match (date.len(), Timestamp::parse(&format!("{date}T00:00:00Z"))) {
            (10, Ok(t)) => t.millis(),
            _ => return Err(field(i, "date", "a calendar date YYYY-MM-DD (UTC)")),
        };
        let amount_minor = match r.get("amount_minor").and_then(Value::as_i64) {
            Some(a) if (0..=MAX_AMOUNT).contains(&a) => a,
            _ => return Err(field(i, "amount_minor", "an integer of minor units, 0 to 10^13")),
        };
        let currency = match r.get("currency") {
            Some(c) => currency(c, &format!("rows[{i}].currency"))?,
            None => default_currency.clone(),
        };
        if !seen.insert((channel.to_owned(), day_ms)) {
            return Err(field(i, "date", "this channel's day appears twice in the upload"));
        }
        out.push(SpendRow { channel: channel.to_owned(), day_ms, amount_minor, currency });
    }
    Ok((site.to_owned(), out))
}

pub async fn post(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(post_inner(req, ctx).await)
}

async fn post_inner(mut req: Request, ctx: RouteContext<()>) -> ApiResult<Response> {
    let actor = access::authenticate(&req, &ctx.env).await?;
    body::check_json_media_type(&req)?;
    let text = body::read_limited(&mut req, SPEND_MAX_BODY).await?;
    let (site_id, rows) = parse(&body::parse_json(&text)?)?;
    access::permit(&actor, &site_id, Permission::Spend)?;
    let site = Site::load(&ctx.env, &site_id).await?;
    let db = ctx.env.d1("DB")?;
    let now = now_ms();
    let mut statements = Vec::with_capacity(rows.len());
    for r in &rows {
        statements.push(
            db.prepare(
                "INSERT INTO spend (site_id, channel, day_ms, amount_minor, currency, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(site_id, channel, day_ms) DO UPDATE SET \
                 amount_minor = excluded.amount_minor, currency = excluded.currency, updated_at = excluded.updated_at",
            )
            .bind(&[
                site.id.as_str().into(),
                r.channel.as_str().into(),
                js_num(r.day_ms),
                js_num(r.amount_minor),
                r.currency.as_deref().map_or(worker::wasm_bindgen::JsValue::NULL, Into::into),
                js_num(now),
            ])?,
        );
    }
    // D1 runs a batch as one transaction.
    db.batch(statements).await?;
    let total: i64 = rows.iter().map(|r| r.amount_minor).sum();
    let request_id = access::request_id(&req);
    audit::record(&ctx.env, &request_id, &site.id, &actor, "spend.uploaded", json!({"rows": rows.len()})).await?;
    Ok(Response::from_json(&json!({"site": site.id, "rows": rows.len(), "amount_minor": total}))?)
}

/// Spend uploads may be larger than event batches: 10,000 rows of ~80 bytes.
const SPEND_MAX_BODY: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: Value) -> String {
        match parse(&v) {
            Err(e) => format!("{} {}", e.code, e.message),
            Ok(r) => panic!("accepted: {r:?}"),
        }
    }

    #[test]
    fn a_valid_upload_is_read_with_the_default_currency() {
        let (site, rows) = parse(&json!({"site": "demo", "currency": "EUR", "rows": [
            {"channel": "Paid Search", "date": "2026-11-20", "amount_minor": 12000},
            {"channel": "Email", "date": "2026-11-20", "amount_minor": 0, "currency": "USD"},
        ]}))
        .unwrap();
        assert_eq!(site, "demo");
        assert_eq!(rows[0].day_ms, 1_795_132_800_000);
        assert_eq!(rows[0].currency.as_deref(), Some("EUR"));
        assert_eq!(rows[1].currency.as_deref(), Some("USD"));
    }

    #[test]
    fn every_rejection_names_the_row_and_field() {
        let row = |r: Value| json!({"site": "demo", "rows": [r]});
        assert!(err(json!([])).contains("JSON object"));
        assert!(err(json!({"rows": []})).starts_with("missing_site"));
        assert!(err(json!({"site": "demo", "rows": []})).contains("rows: 1 to"));
        assert!(err(row(json!({"channel": "", "date": "2026-11-20", "amount_minor": 1}))).contains("rows[0].channel"));
        assert!(
            err(row(json!({"channel": "Email", "date": "2026-02-30", "amount_minor": 1}))).contains("rows[0].date")
        );
        assert!(err(row(json!({"channel": "Email", "date": "2026-1-3", "amount_minor": 1}))).contains("rows[0].date"));
        assert!(
            err(row(json!({"channel": "Email", "date": "2026-11-20", "amount_minor": 1.5}))).contains("amount_minor")
        );
        assert!(
            err(row(json!({"channel": "Email", "date": "2026-11-20", "amount_minor": -1}))).contains("amount_minor")
        );
        assert!(
            err(row(json!({"channel": "Email", "date": "2026-11-20", "amount_minor": 1, "currency": "eur"})))
                .contains("rows[0].currency")
        );
        assert!(
            err(row(json!({"channel": "Email", "date": "2026-11-20", "amount_minor": 1, "cost": 2})))
                .contains("rows[0].cost")
        );
        let twice = json!({"site": "demo", "rows": [
            {"channel": "Email", "date": "2026-11-20", "amount_minor": 1},
            {"channel": "Email", "date": "2026-11-20", "amount_minor": 2},
        ]});
        assert!(err(twice).contains("rows[1].date: this channel's day appears twice"));
    }
}
