//! `microfunnel attribute`: attribution over exported journeys.
//!
//! Input is either ChannelAttribution's path table as CSV (delimiter `;` or
//! `,`, detected from the header; columns `path`, `total_conversions`,
//! optional `total_conversion_value` and `total_null`; steps separated by
//! `>`, spaces trimmed) or NDJSON journeys, one per line:
//! `{"touches":[{"channel":"Email","at":"2026-03-01T09:00:00Z"},…],
//!   "conversions":1,"value":12.5,"nulls":0,"converted_at":"…"}`
//! (timestamps are needed by time decay and `--lookback`), or a visitor's
//! timeline with several conversions:
//! `{"visitor":"v1","steps":[{"touch":"Email","at":"…"},
//!   {"convert":"Contact Submitted","at":"…","value":150},…]}` — each
//! conversion credited where the core credits it at the edge (the open
//! journey, which it closes; with `--inherits 'Client Signed=Contact
//! Submitted'`, the path of the latest upstream conversion within 90 days; a
//! repeated `transaction_id` of the same conversion replaces its value), and
//! what is left open a non-converting journey.
//!
//! Output: CSV with ChannelAttribution's column names
//! (`channel_name,total_conversions,total_conversion_value`; with
//! `--model all`, one `<model>_conversions,<model>_value` pair per model),
//! or `--format json`. A malformed row is reported with its row number
//! (the header is row 1) and the process exits non-zero.

use microfunnel_core::Timestamp;
use microfunnel_core::attribution::{MarkovOptions, MarkovResult, SetCounts, ShapleyGame, ShapleyOptions, fit_markov};
use microfunnel_core::attribution::{Model, PathTable, Touch, table_totals};
use microfunnel_core::conversion::{self, Crediting, Definitions, Recorded, credit_on};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// ChannelAttribution CSV, or NDJSON journeys (`.ndjson`/`.jsonl`, or a
    /// first line starting with `{`); `-` reads standard input.
    input: PathBuf,
    /// first|last|last-non-direct|linear|time-decay|position|j|inverse-j|markov|shapley|zhao|all
    #[arg(long, default_value = "markov")]
    model: String,
    /// Markov chain order.
    #[arg(long, default_value_t = 1)]
    order: usize,
    /// Time-decay half-life: `6h`, `30m`, `2d` or a number of hours.
    #[arg(long, default_value = "6h")]
    half_life: String,
    /// Lookback window for NDJSON journeys (`24h`, `7d`…); none by default.
    #[arg(long)]
    lookback: Option<String>,
    /// csv or json.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Data-driven models refuse to run on fewer journeys than this.
    #[arg(long, default_value_t = 0.0)]
    min_journeys: f64,
    /// Shapley game: conversions (subset sums) or rate.
    #[arg(long, default_value = "conversions")]
    shapley_game: String,
    /// Shapley permutations when there are too many channels to enumerate.
    #[arg(long, default_value_t = 2000)]
    shapley_samples: usize,
    /// Seed of the Shapley permutation sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `DOWNSTREAM=UPSTREAM` (repeatable): in visitor timelines, a DOWNSTREAM
    /// conversion is credited on the path of the visitor's latest UPSTREAM one.
    #[arg(long = "inherits", value_name = "DOWNSTREAM=UPSTREAM")]
    inherits: Vec<String>,
}

const HEURISTICS: [&str; 7] = ["first", "last", "last-non-direct", "linear", "position", "j", "inverse-j"];

fn hours(text: &str, what: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 'h'),
    };
    let x: f64 = num.trim().parse().map_err(|_| format!("--{what}: `{text}` is not a duration like 6h, 30m or 2d"))?;
    let h = match unit {
        's' => x / 3600.0,
        'm' => x / 60.0,
        'h' => x,
        'd' => x * 24.0,
        _ => return Err(format!("--{what}: unknown unit in `{text}` (use s, m, h or d)")),
    };
    if !h.is_finite() || h <= 0.0 {
        return Err(format!("--{what}: must be positive"));
    }
    Ok(h)
}

struct Loaded {
    table: PathTable,
    has_value: bool,
    timed: bool,
}

fn read_input(path: &PathBuf) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("stdin: {e}"))?;
    } else {
        buf = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(buf)
}

fn parse_num(field: Option<&[u8]>, name: &str, row: u64) -> Result<f64, String> {
    let raw = field.unwrap_or(b"");
    let text = std::str::from_utf8(raw).map_err(|_| format!("row {row}: `{name}` is not UTF-8"))?.trim();
    if text.is_empty() {
        return Ok(0.0);
    }
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("row {row}: `{name}` must be a number ≥ 0, got `{text}`")),
    }
}

fn load_csv(bytes: &[u8]) -> Result<Loaded, String> {
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or(b"");
    let semis = first_line.iter().filter(|b| **b == b';').count();
    let commas = first_line.iter().filter(|b| **b == b',').count();
    let delim = if semis > commas { b';' } else { b',' };
    let mut rdr = csv::ReaderBuilder::new().delimiter(delim).flexible(false).from_reader(bytes);
    let headers = rdr.byte_headers().map_err(|e| format!("row 1: {e}"))?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h).trim_ascii() == name.as_bytes())
    };
    let path_col = col("path").ok_or("row 1: the header has no `path` column")?;
    let conv_col = col("total_conversions").ok_or("row 1: the header has no `total_conversions` column")?;
    let value_col = col("total_conversion_value");
    let null_col = col("total_null");
    let mut table = PathTable::new();
    let mut rec = csv::ByteRecord::new();
    let mut row = 1_u64;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(format!("row {}: {e}", row + 1)),
        }
        row = rec.position().map_or(row + 1, |p| p.line());
        let path = std::str::from_utf8(rec.get(path_col).unwrap_or(b""))
            .map_err(|_| format!("row {row}: `path` is not UTF-8"))?;
        let conv = parse_num(rec.get(conv_col), "total_conversions", row)?;
        let value = match value_col {
            Some(c) => parse_num(rec.get(c), "total_conversion_value", row)?,
            None => 0.0,
        };
        let nulls = match null_col {
            Some(c) => parse_num(rec.get(c), "total_null", row)?,
            None => 0.0,
        };
        table.push_path(path, '>', conv, value, nulls).map_err(|e| format!("row {row}: {e}"))?;
    }
    if table.rows.is_empty() {
        return Err("no data rows".into());
    }
    Ok(Loaded { table, has_value: value_col.is_some(), timed: false })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TouchIn {
    channel: String,
    #[serde(default)]
    at: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JourneyIn {
    touches: Vec<TouchIn>,
    #[serde(default)]
    conversions: f64,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    nulls: f64,
    #[serde(default)]
    converted_at: Option<Timestamp>,
}

/// The two journey readers, for fuzzing: `Ok(number of journeys)` or the
/// error `run` would print.
pub fn read_journeys(bytes: &[u8], ndjson: bool) -> Result<usize, String> {
    let inherits = ["Client Signed=Contact Submitted".to_owned()];
    let loaded = if ndjson { load_ndjson(bytes, Some(720.0), &inherits)? } else { load_csv(bytes)? };
    Ok(loaded.table.rows.len())
}

/// One step of a visitor timeline: a touch, or a conversion.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepIn {
    #[serde(default)]
    touch: Option<String>,
    #[serde(default)]
    convert: Option<String>,
    at: Timestamp,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    transaction_id: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitorIn {
    #[allow(dead_code)] // named in the file for the reader, not needed here
    visitor: String,
    steps: Vec<StepIn>,
}

/// The conversion definitions a set of timelines needs: every converting
/// event, with `--inherits` pairs, validated by the core (unknown upstream,
/// cycles).
fn timeline_definitions(inherits: &[String], names: &[String]) -> Result<Definitions, String> {
    let mut pairs = Vec::new();
    for spec in inherits {
        let (down, up) = spec
            .split_once('=')
            .map(|(d, u)| (d.trim(), u.trim()))
            .filter(|(d, u)| !d.is_empty() && !u.is_empty())
            .ok_or_else(|| format!("--inherits: `{spec}` is not DOWNSTREAM=UPSTREAM"))?;
        pairs.push((down.to_owned(), up.to_owned()));
    }
    let mut events: Vec<String> = names.to_vec();
    for (d, u) in &pairs {
        for e in [d, u] {
            if !events.contains(e) {
                events.push(e.clone());
            }
        }
    }
    let defs: Vec<Value> = events
        .iter()
        .map(|e| match pairs.iter().find(|(d, _)| d == e) {
            Some((_, up)) => json!({"event": e, "inherits": up}),
            None => json!({"event": e}),
        })
        .collect();
    Definitions::from_json(&Value::Array(defs)).map_err(|e| {
        // The core names the definition by index: say which pair it was.
        let at = e.field.split(['[', ']']).nth(1).and_then(|i| i.parse::<usize>().ok());
        let name = at.and_then(|i| events.get(i)).map_or("", String::as_str);
        format!("--inherits: `{name}`: {}", e.rule)
    })
}

/// A visitor timeline as journeys: each conversion with the touches the core
/// credits it on (adjustments replacing the earlier value), then the open
/// journey as a non-converting one.
fn timeline_journeys(v: VisitorIn, defs: &Definitions, row: usize) -> Result<Vec<JourneyIn>, String> {
    let mut open: Vec<Touch> = Vec::new();
    let mut past: Vec<Recorded> = Vec::new();
    let mut out: Vec<(String, JourneyIn)> = Vec::new();
    for (i, s) in v.steps.into_iter().enumerate() {
        match (s.touch, s.convert) {
            (Some(ch), None) => open.push(Touch::new(ch, Some(s.at))),
            (None, Some(name)) => {
                let def = defs.find(&name).ok_or_else(|| format!("row {row}: steps[{i}]: unknown conversion"))?;
                let tx = s.transaction_id.as_ref().and_then(|t| {
                    let props = serde_json::Map::from_iter([("transaction_id".to_owned(), t.clone())]);
                    conversion::transaction_id(&props)
                });
                let value = s.value.unwrap_or(0.0);
                if !(value.is_finite() && value >= 0.0) {
                    return Err(format!("row {row}: steps[{i}].value: a number ≥ 0"));
                }
                let id = format!("{i}");
                match credit_on(def, s.at, tx.as_deref(), &open, &past) {
                    Crediting::Adjusts { original } => {
                        let key = original.message_id.clone();
                        if let Some((_, j)) = out.iter_mut().find(|(k, _)| *k == key) {
                            j.value = Some(value);
                        }
                    }
                    Crediting::New { touches, closes_journey, .. } => {
                        let journey = JourneyIn {
                            touches: touches.iter().map(|t| TouchIn { channel: t.channel.clone(), at: t.at }).collect(),
                            conversions: 1.0,
                            value: Some(value),
                            nulls: 0.0,
                            converted_at: Some(s.at),
                        };
                        past.push(Recorded {
                            message_id: id.clone(),
                            name,
                            at: s.at,
                            value_minor: 0,
                            transaction_id: tx,
                            touches,
                        });
                        out.push((id, journey));
                        if closes_journey {
                            open.clear();
                        }
                    }
                }
            }
            _ => return Err(format!("row {row}: steps[{i}]: needs `touch` or `convert`, not both")),
        }
    }
    let mut journeys: Vec<JourneyIn> = out.into_iter().map(|(_, j)| j).collect();
    if !open.is_empty() {
        journeys.push(JourneyIn {
            touches: open.into_iter().map(|t| TouchIn { channel: t.channel, at: t.at }).collect(),
            conversions: 0.0,
            value: None,
            nulls: 1.0,
            converted_at: None,
        });
    }
    Ok(journeys)
}

fn load_ndjson(bytes: &[u8], lookback_h: Option<f64>, inherits: &[String]) -> Result<Loaded, String> {
    // Lines are journeys or visitor timelines; timelines need the conversion
    // definitions first, so every line is read before any is credited.
    let mut lines: Vec<(usize, Value)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, line) in BufReader::new(bytes).lines().enumerate() {
        let row = i + 1;
        let line = line.map_err(|e| format!("row {row}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("row {row}: {e}"))?;
        for step in v.get("steps").and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = step.get("convert").and_then(Value::as_str)
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_owned());
            }
        }
        lines.push((row, v));
    }
    let defs = timeline_definitions(inherits, &names)?;
    let mut journeys: Vec<(usize, JourneyIn)> = Vec::new();
    for (row, v) in lines {
        if v.get("steps").is_some() {
            let visitor: VisitorIn = serde_json::from_value(v).map_err(|e| format!("row {row}: {e}"))?;
            journeys.extend(timeline_journeys(visitor, &defs, row)?.into_iter().map(|j| (row, j)));
        } else {
            journeys.push((row, serde_json::from_value(v).map_err(|e| format!("row {row}: {e}"))?));
        }
    }
    let mut table = PathTable::new();
    let (mut has_value, mut all_timed) = (false, true);
    for (row, j) in journeys {
        has_value |= j.value.is_some();
        let mut touches = j.touches;
        let timed = touches.iter().all(|t| t.at.is_some());
        if !timed && touches.iter().any(|t| t.at.is_some()) {
            return Err(format!("row {row}: either every touch has `at` or none does"));
        }
        all_timed &= timed;
        let mut ages = None;
        if timed {
            touches.sort_by_key(|t| t.at);
            let conv_at = j.converted_at.or_else(|| touches.last().and_then(|t| t.at));
            if let Some(c) = conv_at {
                touches.retain(|t| t.at.is_some_and(|a| a <= c));
                if let Some(l) = lookback_h {
                    let l_ms = (l * Timestamp::MILLIS_PER_HOUR as f64).round() as i64;
                    touches.retain(|t| t.at.is_some_and(|a| c.since(a) <= l_ms));
                }
                ages = Some(
                    touches
                        .iter()
                        .map(|t| t.at.map_or(0.0, |a| c.since(a) as f64 / Timestamp::MILLIS_PER_HOUR as f64))
                        .collect(),
                );
            }
        } else if lookback_h.is_some() {
            return Err(format!("row {row}: --lookback needs timestamps on every touch"));
        }
        if touches.is_empty() {
            continue; // nothing left to credit (empty, or outside the lookback)
        }
        let names: Vec<&str> = touches.iter().map(|t| t.channel.as_str()).collect();
        table
            .push_names(&names, j.conversions, j.value.unwrap_or(0.0), j.nulls, ages)
            .map_err(|e| format!("row {row}: {e}"))?;
    }
    if table.rows.is_empty() {
        return Err("no journeys with touches".into());
    }
    Ok(Loaded { table, has_value, timed: all_timed })
}

/// One model's per-channel (conversions, value), indexed by channel id.
struct Column {
    name: String,
    conv: Vec<f64>,
    value: Vec<f64>,
}

fn heuristic(name: &str, model: &Model, l: &Loaded) -> Result<Column, String> {
    let (conv, value) = table_totals(model, &l.table).map_err(|e| format!("{name}: {e}"))?;
    Ok(Column { name: name.to_owned(), conv, value })
}

fn from_named(name: &str, l: &Loaded, items: impl Iterator<Item = (String, f64, f64)>) -> Column {
    let n = l.table.channels.len();
    let (mut conv, mut value) = (vec![0.0; n], vec![0.0; n]);
    for (ch, c, v) in items {
        if let Some(id) = l.table.channels.get(&ch)
            && let (Some(x), Some(y)) = (conv.get_mut(id as usize), value.get_mut(id as usize))
        {
            *x = c;
            *y = v;
        }
    }
    Column { name: name.to_owned(), conv, value }
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let half = hours(&args.half_life, "half-life")?;
    let lookback = args.lookback.as_deref().map(|t| hours(t, "lookback")).transpose()?;
    if args.format != "csv" && args.format != "json" {
        return Err(format!("--format: `{}` is not csv or json", args.format));
    }
    let bytes = read_input(&args.input)?;
    let ext = args.input.extension().and_then(|e| e.to_str()).unwrap_or("");
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let loaded = if ext == "ndjson" || ext == "jsonl" || first == Some(b'{') {
        load_ndjson(&bytes, lookback, &args.inherits)?
    } else {
        if lookback.is_some() {
            return Err("--lookback needs NDJSON journeys with timestamps".into());
        }
        if !args.inherits.is_empty() {
            return Err("--inherits needs NDJSON visitor timelines".into());
        }
        load_csv(&bytes)?
    };

    let names: Vec<&str> = if args.model == "all" {
        let mut v: Vec<&str> = HEURISTICS.to_vec();
        if loaded.timed {
            v.push("time-decay");
        }
        v.extend(["markov", "shapley", "zhao"]);
        v
    } else {
        vec![args.model.as_str()]
    };
    let mut columns = Vec::new();
    let mut markov_result: Option<MarkovResult> = None;
    let mut extra = serde_json::Map::new();
    for name in &names {
        match *name {
            "markov" => {
                let opts = MarkovOptions { order: args.order, min_journeys: args.min_journeys };
                let r = fit_markov(&loaded.table, &opts).map_err(|e| format!("markov: {e}"))?;
                columns.push(from_named(
                    "markov",
                    &loaded,
                    r.channels.iter().map(|c| (c.channel.clone(), c.conversions, c.value)),
                ));
                markov_result = Some(r);
            }
            "shapley" | "zhao" => {
                let sets = SetCounts::from_table(&loaded.table);
                let game = match args.shapley_game.as_str() {
                    "conversions" => ShapleyGame::Conversions,
                    "rate" => ShapleyGame::Rate,
                    g => return Err(format!("--shapley-game: `{g}` is not conversions or rate")),
                };
                let opts = ShapleyOptions {
                    game,
                    samples: args.shapley_samples,
                    seed: args.seed,
                    min_journeys: args.min_journeys,
                    ..ShapleyOptions::default()
                };
                let r = if *name == "zhao" {
                    sets.zhao(&loaded.table.channels, args.min_journeys)
                } else {
                    sets.shapley(&loaded.table.channels, &opts)
                }
                .map_err(|e| format!("{name}: {e}"))?;
                if !r.exact {
                    extra.insert(
                        format!("{name}_std_errors"),
                        json!(r.channels.iter().map(|c| json!({"channel_name": c.channel, "std_error": c.std_error, "std_error_value": c.std_error_value})).collect::<Vec<_>>()),
                    );
                }
                columns.push(from_named(
                    name,
                    &loaded,
                    r.channels.iter().map(|c| (c.channel.clone(), c.conversions, c.value)),
                ));
            }
            "time-decay" => {
                if !loaded.timed {
                    return Err("time-decay needs NDJSON journeys with a timestamp on every touch".into());
                }
                let m = Model::time_decay(half).map_err(|e| e.to_string())?;
                columns.push(heuristic(name, &m, &loaded)?);
            }
            other => {
                let m = Model::parse(other, half).map_err(|_| format!("--model: unknown model `{other}`"))?;
                columns.push(heuristic(name, &m, &loaded)?);
            }
        }
    }

    let ids = loaded.table.channels.sorted_ids();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let single = args.model != "all";
    if args.format == "csv" {
        let mut w = csv::Writer::from_writer(&mut out);
        let mut header = vec!["channel_name".to_owned()];
        for c in &columns {
            if single {
                header.push("total_conversions".into());
                if loaded.has_value {
                    header.push("total_conversion_value".into());
                }
            } else {
                let key = c.name.replace('-', "_");
                header.push(format!("{key}_conversions"));
                header.push(format!("{key}_value"));
            }
        }
        w.write_record(&header).map_err(|e| e.to_string())?;
        for &id in &ids {
            let mut rec = vec![loaded.table.channels.name(id).to_owned()];
            for c in &columns {
                rec.push(c.conv.get(id as usize).copied().unwrap_or(0.0).to_string());
                if !single || loaded.has_value {
                    rec.push(c.value.get(id as usize).copied().unwrap_or(0.0).to_string());
                }
            }
            w.write_record(&rec).map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
    } else {
        let table = |c: &Column| -> Value {
            json!(
                ids.iter()
                    .map(|&id| json!({
                        "channel_name": loaded.table.channels.name(id),
                        "total_conversions": c.conv.get(id as usize).copied().unwrap_or(0.0),
                        "total_conversion_value": c.value.get(id as usize).copied().unwrap_or(0.0),
                    }))
                    .collect::<Vec<_>>()
            )
        };
        let mut doc = serde_json::Map::new();
        if single {
            doc.insert("model".into(), json!(args.model));
            if let Some(c) = columns.first() {
                doc.insert("result".into(), table(c));
            }
        } else {
            let mut models = serde_json::Map::new();
            for c in &columns {
                models.insert(c.name.clone(), table(c));
            }
            doc.insert("models".into(), Value::Object(models));
        }
        if let Some(m) = &markov_result {
            doc.insert(
                "markov".into(),
                json!({
                    "order": m.order,
                    "p_conversion": m.p_conversion,
                    "journeys": m.journeys,
                    "states": m.states,
                    "removal_effects": m.channels.iter().map(|c| json!({
                        "channel_name": c.channel,
                        "removal_effects_conversion": c.removal_effect,
                        "removal_effects_conversion_value": c.removal_effect_value,
                    })).collect::<Vec<_>>(),
                    "transition_matrix": m.transitions.iter().map(|t| json!({
                        "channel_from": t.from, "channel_to": t.to, "transition_probability": t.probability,
                    })).collect::<Vec<_>>(),
                }),
            );
        }
        doc.extend(extra);
        serde_json::to_writer_pretty(&mut out, &Value::Object(doc)).map_err(|e| e.to_string())?;
        writeln!(out).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
