//! `microfunnel clv`: customer value from purchase histories. BG/NBD and
//! Gamma-Gamma are fitted by the core on an RFM summary — given
//! (`--summary`: CSV `ID,frequency,recency,T[,monetary_value]`, or Hardie's
//! names `x,t_x,T,zbar`), or built by the core from transactions
//! (`--transactions`: CSV `customer_id,date,value`, or NDJSON Segment events
//! of one `--conversion`, with `--observation-end` and `--unit`) — and each
//! customer's P(alive), expected purchases and expected value over
//! `--horizon` (in the unit) are printed as CSV or, with `--format json`,
//! with the parameters and the log-likelihood. A bad row is
//! `FILE:LINE: FIELD: PROBLEM`.

use crate::located;
use microfunnel_core::Timestamp;
use microfunnel_core::clv::{self, BgNbd, GammaGamma, Rfm, Transaction, Unit};
use microfunnel_core::conversion::Sender;
use microfunnel_core::money::{self, Currency};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// RFM summary CSV: `ID,frequency,recency,T` and optional `monetary_value`.
    #[arg(long, conflicts_with = "transactions", required_unless_present = "transactions")]
    summary: Option<PathBuf>,
    /// Transactions: CSV `customer_id,date,value` (date `YYYY-MM-DD` or RFC
    /// 3339, value in major units), or NDJSON events (`.ndjson`/`.jsonl`).
    #[arg(long)]
    transactions: Option<PathBuf>,
    /// The last day observed (`YYYY-MM-DD`), for `--transactions`.
    #[arg(long, requires = "transactions")]
    observation_end: Option<String>,
    /// The time unit of recency, T and the horizon, for `--transactions`.
    #[arg(long, default_value = "day")]
    unit: String,
    /// The prediction horizon, in the unit.
    #[arg(long, default_value_t = 30.0)]
    horizon: f64,
    /// For NDJSON events: the conversion whose events are the purchases.
    #[arg(long)]
    conversion: Option<String>,
    /// For NDJSON events: the site's conversion definitions (JSON list), for
    /// the value property and currency of `--conversion`.
    #[arg(long)]
    conversions: Option<PathBuf>,
    /// The currency of CSV values and of events without a definition
    /// (its minor digits bound the decimals accepted).
    #[arg(long)]
    currency: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

/// The CSV lines of `part`'s predictions.
fn csv_lines(
    part: &[(String, Rfm)],
    model: &BgNbd,
    spend: Option<&GammaGamma>,
    horizon: f64,
) -> Result<String, String> {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(part.len() * 96);
    for (id, c) in part {
        let p = clv::predict(model, spend, c, horizon).map_err(|e| format!("{id}: {e}"))?;
        let _ = write!(
            text,
            "{},{},{},{},{},{},",
            csv_field(id),
            c.frequency(),
            c.recency(),
            c.age(),
            p.p_alive,
            p.expected_purchases
        );
        if let Some(v) = p.expected_value {
            let _ = write!(text, "{v}");
        }
        text.push('\n');
    }
    Ok(text)
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    if !(args.horizon.is_finite() && args.horizon >= 0.0) {
        return Err("--horizon: must be a finite number ≥ 0".into());
    }
    let customers = match (&args.summary, &args.transactions) {
        (Some(path), _) => read_summary(path)?,
        (None, Some(path)) => from_transactions(path, &args)?,
        (None, None) => return Err("give --summary or --transactions".into()),
    };
    let rfm: Vec<Rfm> = customers.iter().map(|(_, c)| *c).collect();
    let purchases = BgNbd::fit(&rfm).map_err(|e| e.to_string())?;
    let has_value = rfm.iter().any(|c| c.monetary().is_some());
    let spend = if has_value { Some(GammaGamma::fit(&rfm).map_err(|e| e.to_string())?) } else { None };
    let spend_model = spend.as_ref().map(|s| &s.model);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |e: std::io::Error| format!("writing output: {e}");
    match args.format {
        Format::Csv => {
            writeln!(out, "customer_id,frequency,recency,T,p_alive,expected_purchases,expected_value")
                .map_err(write_err)?;
            // Predictions are independent: one block of lines per core,
            // written in order (the first error is the first in the file).
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
            let size = customers.len().div_ceil(threads).max(1);
            let model = purchases.model;
            let horizon = args.horizon;
            let blocks: Vec<Result<String, String>> = std::thread::scope(|scope| {
                let parts: Vec<_> = customers
                    .chunks(size)
                    .map(|part| scope.spawn(move || csv_lines(part, &model, spend_model, horizon)))
                    .collect();
                parts
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("a prediction thread failed".into())))
                    .collect()
            });
            for block in blocks {
                if let Err(e) = out.write_all(block?.as_bytes()) {
                    return broken_pipe_is_fine(e);
                }
            }
        }
        Format::Json => {
            let mut rows = Vec::with_capacity(customers.len());
            for (id, c) in &customers {
                let p =
                    clv::predict(&purchases.model, spend_model, c, args.horizon).map_err(|e| format!("{id}: {e}"))?;
                rows.push(json!({
                    "customer_id": id, "frequency": c.frequency(), "recency": c.recency(), "T": c.age(),
                    "monetary_value": c.monetary(),
                    "p_alive": p.p_alive, "expected_purchases": p.expected_purchases, "expected_value": p.expected_value,
                }));
            }
            let m = purchases.model;
            let mut params = json!({"r": m.r, "alpha": m.alpha, "a": m.a, "b": m.b});
            let mut log_likelihood = json!({"bg_nbd": purchases.log_likelihood});
            if let Some(s) = &spend {
                params["p"] = json!(s.model.p);
                params["q"] = json!(s.model.q);
                params["v"] = json!(s.model.v);
                log_likelihood["gamma_gamma"] = json!(s.log_likelihood);
            }
            let doc = json!({
                "params": params, "log_likelihood": log_likelihood, "horizon": args.horizon,
                "customers": rows,
            });
            if let Err(e) = writeln!(out, "{}", serde_json::to_string(&doc).map_err(|e| e.to_string())?) {
                return broken_pipe_is_fine(e);
            }
        }
    }
    if let Err(e) = out.flush() {
        return broken_pipe_is_fine(e);
    }
    Ok(ExitCode::SUCCESS)
}

fn broken_pipe_is_fine(e: std::io::Error) -> Result<ExitCode, String> {
    if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(ExitCode::SUCCESS) } else { Err(format!("writing output: {e}")) }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

fn reader(path: &PathBuf) -> Result<(String, csv::Reader<std::fs::File>), String> {
    let file = path.display().to_string();
    let r =
        csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| format!("reading {file}: {e}"))?;
    Ok((file, r))
}

/// The index of the first header among `names`, or an error naming them.
fn column(headers: &csv::StringRecord, file: &str, names: &[&str], required: bool) -> Result<Option<usize>, String> {
    let found = headers.iter().position(|h| names.contains(&h));
    if found.is_none() && required {
        return Err(located::at(file, 1, names[0], format!("missing column (expected one of {})", names.join(", "))));
    }
    Ok(found)
}

fn read_summary(path: &PathBuf) -> Result<Vec<(String, Rfm)>, String> {
    let (file, mut r) = reader(path)?;
    let headers = r.headers().map_err(|e| located::at(&file, 1, located::DOCUMENT, e))?.clone();
    let id = column(&headers, &file, &["ID", "customer_id", "id"], true)?.unwrap_or(0);
    let frequency = column(&headers, &file, &["frequency", "x"], true)?.unwrap_or(0);
    let recency = column(&headers, &file, &["recency", "t_x"], true)?.unwrap_or(0);
    let age = column(&headers, &file, &["T"], true)?.unwrap_or(0);
    let monetary = column(&headers, &file, &["monetary_value", "zbar"], false)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, record) in r.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| located::at(&file, line, located::DOCUMENT, e))?;
        let cell = |c: usize| record.get(c).unwrap_or("");
        let number = |c: usize, name: &str| -> Result<f64, String> {
            cell(c).parse::<f64>().map_err(|_| located::at(&file, line, name, format!("not a number: `{}`", cell(c))))
        };
        let customer = cell(id).to_owned();
        if customer.is_empty() {
            return Err(located::at(&file, line, headers.get(id).unwrap_or("ID"), "must not be empty"));
        }
        let x = cell(frequency).parse::<u32>().map_err(|_| {
            located::at(&file, line, "frequency", format!("not a count of purchases: `{}`", cell(frequency)))
        })?;
        let m = monetary.map(|c| number(c, "monetary_value")).transpose()?;
        let rfm = Rfm::new(x, number(recency, "recency")?, number(age, "T")?, m)
            .map_err(|e| located::at(&file, line, &e.field, &e.rule))?;
        if !seen.insert(customer.clone()) {
            return Err(located::at(
                &file,
                line,
                headers.get(id).unwrap_or("ID"),
                format!("duplicate customer `{customer}`"),
            ));
        }
        out.push((customer, rfm));
    }
    Ok(out)
}

/// A purchase as read, with the line it came from.
struct Read {
    customer: String,
    day: i64,
    value_minor: i64,
    line: usize,
}

fn from_transactions(path: &PathBuf, args: &Args) -> Result<Vec<(String, Rfm)>, String> {
    let end = args.observation_end.as_deref().ok_or("--transactions needs --observation-end YYYY-MM-DD")?;
    let end_day = parse_day(end).map_err(|e| format!("--observation-end: {e}"))?;
    let unit = Unit::parse(&args.unit).map_err(|e| format!("--unit: {}", e.rule))?;
    let currency =
        args.currency.as_deref().map(Currency::parse).transpose().map_err(|e| format!("--currency: {}", e.rule))?;
    let file = path.display().to_string();
    let ndjson = matches!(path.extension().and_then(|e| e.to_str()), Some("ndjson" | "jsonl"));
    let (rows, digits) = if ndjson {
        read_events(path, &file, args, currency)?
    } else {
        (read_csv(path, currency)?, money::digits_of(currency))
    };
    let transactions: Vec<Transaction<'_>> =
        rows.iter().map(|r| Transaction { customer: &r.customer, day: r.day, value_minor: r.value_minor }).collect();
    clv::summarise(&transactions, end_day, unit, digits).map_err(|refused| {
        let field = match (ndjson, refused.error.field.as_str()) {
            (true, "date") => "timestamp",
            (true, "value") => "properties.value",
            (_, f) => f,
        };
        located::at(&file, rows[refused.index].line, field, &refused.error.rule)
    })
}

fn read_csv(path: &PathBuf, currency: Option<Currency>) -> Result<Vec<Read>, String> {
    let (file, mut r) = reader(path)?;
    let headers = r.headers().map_err(|e| located::at(&file, 1, located::DOCUMENT, e))?.clone();
    let id = column(&headers, &file, &["customer_id", "id", "ID"], true)?.unwrap_or(0);
    let date = column(&headers, &file, &["date"], true)?.unwrap_or(0);
    let value = column(&headers, &file, &["value"], false)?;
    let digits = money::digits_of(currency);
    let mut out = Vec::new();
    for (i, record) in r.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| located::at(&file, line, located::DOCUMENT, e))?;
        let cell = |c: usize| record.get(c).unwrap_or("");
        let day = parse_day(cell(date)).map_err(|e| located::at(&file, line, "date", e))?;
        let value_minor = match value {
            Some(c) => {
                money::parse_major("value", cell(c), digits).map_err(|e| located::at(&file, line, "value", &e.rule))?
            }
            None => 0,
        };
        out.push(Read { customer: cell(id).to_owned(), day, value_minor, line });
    }
    Ok(out)
}

fn read_events(
    path: &PathBuf,
    file: &str,
    args: &Args,
    currency: Option<Currency>,
) -> Result<(Vec<Read>, u32), String> {
    let name = args.conversion.as_deref().ok_or("NDJSON transactions need --conversion NAME")?;
    let definition = match &args.conversions {
        Some(p) => crate::rules::load_conversions(p)?.definitions().find(name).cloned(),
        None => None,
    };
    let digits = money::digits_of(definition.as_ref().and_then(|d| d.currency).or(currency));
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {file}: {e}"))?;
    let at = Timestamp::from_millis(i64::MAX / 4).unwrap_or_else(|| Timestamp::from_millis(0).expect("the epoch"));
    let mut out = Vec::new();
    for (i, event) in crate::score::read_events(&text, file, at)?.into_iter().enumerate() {
        if event.event.as_deref() != Some(name) {
            continue;
        }
        let line = line_of(&text, i);
        let Some(customer) = event.user_id.clone().or_else(|| event.anonymous_id.clone()) else {
            return Err(located::at(file, line, "userId", "a purchase needs a userId or an anonymousId"));
        };
        let value_minor = match &definition {
            Some(d) => d.value_minor(&event.properties, Sender::Server),
            None => match event.properties.get("value").or_else(|| event.properties.get("revenue")) {
                None | Some(Value::Null) => 0,
                Some(v) => money::parse_major_json("properties.value", v, digits)
                    .map_err(|e| located::at(file, line, &e.field, &e.rule))?,
            },
        };
        out.push(Read { customer, day: event.timestamp.day(), value_minor, line });
    }
    if out.is_empty() {
        return Err(format!("{file}: no `{name}` events"));
    }
    Ok((out, digits))
}

/// The line of the `index`-th non-blank line (as `score::read_events` counts events).
fn line_of(text: &str, index: usize) -> usize {
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).nth(index).map_or(0, |(n, _)| n + 1)
}

/// A UTC day number from `YYYY-MM-DD` or an RFC 3339 timestamp.
fn parse_day(text: &str) -> Result<i64, String> {
    if let Ok(t) = Timestamp::parse(text) {
        return Ok(t.day());
    }
    let bad = || format!("not a date (YYYY-MM-DD or RFC 3339): `{text}`");
    let mut parts = text.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let n = |s: &str| s.parse::<i64>().map_err(|_| bad());
    Timestamp::from_utc_parts(n(y)?, n(m)?, n(d)?, 0, 0).map(Timestamp::day).ok_or_else(bad)
}
