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

/// A CSV upload (`Content-Type: text/csv`, `?site=&currency=`) as the JSON
/// form: a header naming `channel`, `date` and `amount` — in major units, read
/// exactly by the core in the row's currency (the `currency` column, else
/// the query's, else the site's) — or `amount_minor`; `;` or `,` between
/// fields; every refusal names its line and column.
fn from_csv(text: &str, site: &str, currency: Option<String>) -> ApiResult<Value> {
    let bad =
        |line: usize, col: &str, m: &str| ApiError::bad_request("invalid_spend", format!("line {line}: {col}: {m}"));
    let mut lines =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r'))).filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(ApiError::bad_request(
            "invalid_spend",
            "the CSV is empty: a header line channel,date,amount is required",
        ));
    };
    let sep = if header.contains(';') { ';' } else { ',' };
    let cols: Vec<String> = header.split(sep).map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    let at = |name: &str| cols.iter().position(|c| c == name);
    let (Some(channel), Some(date)) = (at("channel"), at("date")) else {
        return Err(bad(1, "header", "needs the columns channel, date and amount (or amount_minor)"));
    };
    let (amount, minor) = match (at("amount"), at("amount_minor")) {
        (Some(a), _) => (a, false),
        (None, Some(a)) => (a, true),
        (None, None) => return Err(bad(1, "header", "needs an amount (major units) or amount_minor column")),
    };
    let row_currency = at("currency");
    let mut rows = Vec::new();
    for (n, line) in lines {
        let cells: Vec<&str> = line.split(sep).map(|c| c.trim().trim_matches('"')).collect();
        let cell = |i: usize| cells.get(i).copied().unwrap_or("");
        let cur = row_currency.map(cell).filter(|c| !c.is_empty()).map(str::to_owned).or_else(|| currency.clone());
        let code = match &cur {
            None => None,
            Some(c) => Some(microfunnel_core::money::Currency::parse(c).map_err(|e| bad(n, "currency", &e.rule))?),
        };
        let amount_minor = if minor {
            cell(amount).parse::<i64>().map_err(|_| bad(n, "amount_minor", "an integer of minor units"))?
        } else {
            let digits = microfunnel_core::money::digits_of(code);
            microfunnel_core::money::parse_major("amount", cell(amount), digits)
                .map_err(|e| bad(n, "amount", &e.rule))?
        };
        let mut row = json!({"channel": cell(channel), "date": cell(date), "amount_minor": amount_minor});
        if let (Some(c), Some(o)) = (cur, row.as_object_mut()) {
            o.insert("currency".into(), json!(c));
        }
        rows.push(row);
    }
    Ok(json!({"site": site, "rows": rows}))
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
    let csv = req
        .headers()
        .get("Content-Type")
        .ok()
        .flatten()
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/csv"));
    if !csv {
        body::check_json_media_type(&req)?;
    }
    let text = body::read_limited(&mut req, SPEND_MAX_BODY).await?;
    let doc = if csv {
        let params: Vec<(String, String)> =
            req.url()?.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let site = get("site")
            .ok_or_else(|| ApiError::bad_request("missing_site", "site: the query parameter is required"))?;
        access::permit(&actor, site, Permission::Spend)?;
        let loaded = Site::load(&ctx.env, site).await?;
        let fallback = loaded.config.site.conversions().currency().map(|c| c.code().to_owned());
        from_csv(&text, site, get("currency").map(str::to_owned).or(fallback))?
    } else {
        body::parse_json(&text)?
    };
    let (site_id, rows) = parse(&doc)?;
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
