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
//! or `--format json`. A malformed line is reported as
//! `FILE:LINE: FIELD: PROBLEM` — the CSV column or JSON field path at fault,
//! the line counted from 1 (a CSV header is line 1; `stdin` for `-`) — and
//! the process exits non-zero.

use crate::located;
use microfunnel_core::Timestamp;
use microfunnel_core::attribution::{
    AttributionError, MarkovOptions, MarkovResult, Model, PathTable, PositionWeights, SetCounts, ShapleyGame,
    ShapleyOptions, Touch, fit_markov, table_totals,
};
use microfunnel_core::conversion::{self, Crediting, Definitions, Recorded, credit_on};
use serde_json::{Map, Value, json};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// ChannelAttribution CSV, or NDJSON journeys (`.ndjson`/`.jsonl`, or a
    /// first line starting with `{`); `-` reads standard input.
    input: PathBuf,
    /// The attribution model, or `all` of them side by side.
    #[arg(long, value_enum, default_value_t = ModelArg::Markov)]
    model: ModelArg,
    /// Markov chain order.
    #[arg(long, default_value_t = 1)]
    order: usize,
    /// Time-decay half-life: `6h`, `30m`, `2d` or a number of hours.
    #[arg(long, default_value = "6h")]
    half_life: String,
    /// Lookback window for NDJSON journeys (`24h`, `7d`…); none by default.
    #[arg(long)]
    lookback: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Data-driven models refuse to run on fewer journeys than this.
    #[arg(long, default_value_t = 0.0)]
    min_journeys: f64,
    /// What a set of channels is worth in the Shapley game.
    #[arg(long, value_enum, default_value_t = GameArg::Conversions)]
    shapley_game: GameArg,
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

/// `--model`: a name, or `all`. The aliases are the core's other names for
/// the same heuristic.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ModelArg {
    /// All credit to the first touch.
    #[value(alias = "first-touch")]
    First,
    /// All credit to the last touch.
    #[value(alias = "last-touch")]
    Last,
    /// All credit to the last touch that is not direct.
    LastNonDirect,
    /// Equal credit to every touch.
    Linear,
    /// Credit halving every `--half-life` before the conversion (NDJSON with timestamps).
    TimeDecay,
    /// U-shaped: 40% first, 40% last, 20% spread between.
    #[value(alias = "u")]
    Position,
    /// J-shaped: 20% first, 60% last, 20% between.
    J,
    /// Inverse J: 60% first, 20% last, 20% between.
    InverseJ,
    /// Markov chain removal effects (`--order`).
    Markov,
    /// Shapley values (`--shapley-game`).
    Shapley,
    /// Zhao et al.'s simplified Shapley values.
    Zhao,
    /// Every model above, one column pair each (time decay only on timed journeys).
    All,
}

impl ModelArg {
    /// The name as written on the command line and in the output.
    fn name(self) -> &'static str {
        match self {
            ModelArg::First => "first",
            ModelArg::Last => "last",
            ModelArg::LastNonDirect => "last-non-direct",
            ModelArg::Linear => "linear",
            ModelArg::TimeDecay => "time-decay",
            ModelArg::Position => "position",
            ModelArg::J => "j",
            ModelArg::InverseJ => "inverse-j",
            ModelArg::Markov => "markov",
            ModelArg::Shapley => "shapley",
            ModelArg::Zhao => "zhao",
            ModelArg::All => "all",
        }
    }

    /// The models `--model` runs, in output order.
    fn runs(self, timed: bool) -> Vec<ModelArg> {
        use ModelArg::*;
        match self {
            All => {
                let mut v = vec![First, Last, LastNonDirect, Linear, Position, J, InverseJ];
                if timed {
                    v.push(TimeDecay);
                }
                v.extend([Markov, Shapley, Zhao]);
                v
            }
            one => vec![one],
        }
    }

    /// The core's heuristic for this name (time decay, which needs the
    /// half-life checked, and the data-driven models are not heuristics).
    fn heuristic(self) -> Option<Model> {
        Some(match self {
            ModelArg::First => Model::FirstTouch,
            ModelArg::Last => Model::LastTouch,
            ModelArg::LastNonDirect => Model::LastNonDirect,
            ModelArg::Linear => Model::Linear,
            ModelArg::Position => Model::Position(PositionWeights::U),
            ModelArg::J => Model::Position(PositionWeights::J),
            ModelArg::InverseJ => Model::Position(PositionWeights::INVERSE_J),
            _ => return None,
        })
    }
}

/// `--format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// ChannelAttribution's columns.
    Csv,
    /// The result with the models' details (Markov transitions, Shapley errors).
    Json,
}

/// `--shapley-game`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GameArg {
    /// The conversions of the journeys within the set (subset sums).
    Conversions,
    /// Conversions per journey among the journeys within the set.
    Rate,
}

impl GameArg {
    fn core(self) -> ShapleyGame {
        match self {
            GameArg::Conversions => ShapleyGame::Conversions,
            GameArg::Rate => ShapleyGame::Rate,
        }
    }
}

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

/// A problem on one line of the input: the field at fault and what is wrong.
struct Bad {
    field: String,
    problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> Bad {
    Bad { field: field.into(), problem: problem.into() }
}

impl Bad {
    /// `FILE:LINE: FIELD: PROBLEM`.
    fn at(&self, file: &str, line: usize) -> String {
        located::at(file, line, &self.field, &self.problem)
    }
}

/// The field and rule of an error the core found in a path it was given;
/// `rename` maps the core's column names to the input's.
fn core_bad(e: &AttributionError, rename: impl Fn(&str) -> &str) -> Bad {
    match e {
        AttributionError::Invalid { field, rule } => bad(rename(field), rule.as_str()),
        AttributionError::EmptyPath => bad(rename("path"), "must name at least one channel"),
        other => bad(rename("path"), other.to_string()),
    }
}

fn parse_num(field: Option<&[u8]>, name: &str) -> Result<f64, Bad> {
    let raw = field.unwrap_or(b"");
    let text = std::str::from_utf8(raw).map_err(|_| bad(name, "not UTF-8"))?.trim();
    if text.is_empty() {
        return Ok(0.0);
    }
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(bad(name, format!("must be a number ≥ 0, got `{text}`"))),
    }
}

fn load_csv(bytes: &[u8], file: &str) -> Result<Loaded, String> {
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or(b"");
    let semis = first_line.iter().filter(|b| **b == b';').count();
    let commas = first_line.iter().filter(|b| **b == b',').count();
    let delim = if semis > commas { b';' } else { b',' };
    let mut rdr = csv::ReaderBuilder::new().delimiter(delim).flexible(false).from_reader(bytes);
    let headers = rdr.byte_headers().map_err(|e| located::at(file, 1, "header", e))?.clone();
    let header_name = |h: &[u8]| -> String {
        String::from_utf8_lossy(h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h).trim_ascii()).into_owned()
    };
    let col = |name: &str| headers.iter().position(|h| header_name(h) == name);
    let missing = |name: &str| located::at(file, 1, name, "the header has no such column");
    let path_col = col("path").ok_or_else(|| missing("path"))?;
    let conv_col = col("total_conversions").ok_or_else(|| missing("total_conversions"))?;
    let value_col = col("total_conversion_value");
    let null_col = col("total_null");
    let mut table = PathTable::new();
    let mut rec = csv::ByteRecord::new();
    let mut row = 1_usize;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(row + 1, |p| p.line() as usize);
                let b = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } if len < expected_len => {
                        let name = headers.get(*len as usize).map(header_name).unwrap_or_default();
                        bad(name, format!("missing: the line has {len} of the header's {expected_len} fields"))
                    }
                    csv::ErrorKind::UnequalLengths { expected_len, .. } => bad(
                        format!("column {}", expected_len + 1),
                        format!("not in the header, which has {expected_len} fields"),
                    ),
                    _ => bad("line", e.to_string()),
                };
                return Err(b.at(file, line));
            }
        }
        row = rec.position().map_or(row + 1, |p| p.line() as usize);
        let parsed = (|| {
            let path = std::str::from_utf8(rec.get(path_col).unwrap_or(b"")).map_err(|_| bad("path", "not UTF-8"))?;
            let conv = parse_num(rec.get(conv_col), "total_conversions")?;
            let value = match value_col {
                Some(c) => parse_num(rec.get(c), "total_conversion_value")?,
                None => 0.0,
            };
            let nulls = match null_col {
                Some(c) => parse_num(rec.get(c), "total_null")?,
                None => 0.0,
            };
            table.push_path(path, '>', conv, value, nulls).map_err(|e| core_bad(&e, |f| f))
        })();
        parsed.map_err(|b| b.at(file, row))?;
    }
    if table.rows.is_empty() {
        return Err(format!("{file}: no data rows"));
    }
    Ok(Loaded { table, has_value: value_col.is_some(), timed: false })
}

struct TouchIn {
    channel: String,
    at: Option<Timestamp>,
}

struct JourneyIn {
    touches: Vec<TouchIn>,
    conversions: f64,
    value: Option<f64>,
    nulls: f64,
    converted_at: Option<Timestamp>,
}

/// The two journey readers, for fuzzing: `Ok(number of journeys)` or the
/// error `run` would print (the file named `input`).
pub fn read_journeys(bytes: &[u8], ndjson: bool) -> Result<usize, String> {
    let inherits = ["Client Signed=Contact Submitted".to_owned()];
    let loaded = if ndjson { load_ndjson(bytes, "input", Some(720.0), &inherits)? } else { load_csv(bytes, "input")? };
    Ok(loaded.table.rows.len())
}

/// One step of a visitor timeline: a touch, or a conversion.
struct StepIn {
    touch: Option<String>,
    convert: Option<String>,
    at: Timestamp,
    value: Option<f64>,
    transaction_id: Option<Value>,
}

struct VisitorIn {
    steps: Vec<StepIn>,
}

// Reading a line's JSON into the types above, every problem at its field path.

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn object<'v>(v: &'v Value, field: &str, allowed: &[&str]) -> Result<&'v Map<String, Value>, Bad> {
    let m = v.as_object().ok_or_else(|| bad(field, "must be a JSON object"))?;
    known_keys(m, field, allowed).map(|()| m)
}

/// Refuses the first key of `m` (at `path`) that is not `allowed`.
fn known_keys(m: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), Bad> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(join(path, k), format!("unknown field (expected one of: {})", allowed.join(", ")))),
        None => Ok(()),
    }
}

/// A field that must be there (`null` is not a value).
fn required<'v>(m: &'v Map<String, Value>, path: &str, key: &str) -> Result<&'v Value, Bad> {
    m.get(key).ok_or_else(|| bad(join(path, key), "is required"))
}

/// A field that may be missing or `null`.
fn optional<'v>(m: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    m.get(key).filter(|v| !v.is_null())
}

fn string(v: &Value, field: String) -> Result<String, Bad> {
    v.as_str().map(str::to_owned).ok_or_else(|| bad(field, "must be a string"))
}

fn number(v: &Value, field: String) -> Result<f64, Bad> {
    v.as_f64().ok_or_else(|| bad(field, "must be a number"))
}

fn timestamp(v: &Value, field: String) -> Result<Timestamp, Bad> {
    let text = v.as_str().ok_or_else(|| bad(field.clone(), "must be a string"))?;
    Timestamp::parse(text).map_err(|rule| bad(field, rule))
}

fn list<'v>(v: &'v Value, field: &str) -> Result<&'v Vec<Value>, Bad> {
    v.as_array().ok_or_else(|| bad(field, "must be a list"))
}

fn journey_in(m: &Map<String, Value>) -> Result<JourneyIn, Bad> {
    let mut touches = Vec::new();
    for (i, t) in list(required(m, "", "touches")?, "touches")?.iter().enumerate() {
        let path = format!("touches[{i}]");
        let t = object(t, &path, &["channel", "at"])?;
        let channel = string(required(t, &path, "channel")?, join(&path, "channel"))?;
        let at = optional(t, "at").map(|v| timestamp(v, join(&path, "at"))).transpose()?;
        touches.push(TouchIn { channel, at });
    }
    let amount = |key: &str| m.get(key).map_or(Ok(0.0), |v| number(v, key.to_owned()));
    Ok(JourneyIn {
        touches,
        conversions: amount("conversions")?,
        value: optional(m, "value").map(|v| number(v, "value".to_owned())).transpose()?,
        nulls: amount("nulls")?,
        converted_at: optional(m, "converted_at").map(|v| timestamp(v, "converted_at".to_owned())).transpose()?,
    })
}

fn visitor_in(m: &Map<String, Value>) -> Result<VisitorIn, Bad> {
    // Named in the file for the reader; not needed here.
    string(required(m, "", "visitor")?, "visitor".to_owned())?;
    let mut steps = Vec::new();
    for (i, s) in list(required(m, "", "steps")?, "steps")?.iter().enumerate() {
        let path = format!("steps[{i}]");
        let s = object(s, &path, &["touch", "convert", "at", "value", "transaction_id"])?;
        steps.push(StepIn {
            touch: optional(s, "touch").map(|v| string(v, join(&path, "touch"))).transpose()?,
            convert: optional(s, "convert").map(|v| string(v, join(&path, "convert"))).transpose()?,
            at: required(s, &path, "at").and_then(|v| timestamp(v, join(&path, "at")))?,
            value: optional(s, "value").map(|v| number(v, join(&path, "value"))).transpose()?,
            transaction_id: optional(s, "transaction_id").cloned(),
        });
    }
    Ok(VisitorIn { steps })
}

/// Where a conversion name was first read: its line and step.
struct NameAt {
    name: String,
    line: usize,
    step: usize,
}

/// The conversion definitions a set of timelines needs: every converting
/// event, with `--inherits` pairs, validated by the core (unknown upstream,
/// cycles). A name the core refuses is reported at its line in the file.
fn timeline_definitions(inherits: &[String], names: &[NameAt], file: &str) -> Result<Definitions, String> {
    let mut pairs = Vec::new();
    for spec in inherits {
        let (down, up) = spec
            .split_once('=')
            .map(|(d, u)| (d.trim(), u.trim()))
            .filter(|(d, u)| !d.is_empty() && !u.is_empty())
            .ok_or_else(|| format!("--inherits: `{spec}` is not DOWNSTREAM=UPSTREAM"))?;
        pairs.push((down.to_owned(), up.to_owned()));
    }
    let mut events: Vec<String> = names.iter().map(|n| n.name.clone()).collect();
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
        // The core names the definition by index: say which name it was.
        let at = e.field.split(['[', ']']).nth(1).and_then(|i| i.parse::<usize>().ok());
        match at.and_then(|i| names.get(i)) {
            Some(n) if e.field.ends_with(".event") => {
                located::at(file, n.line, &format!("steps[{}].convert", n.step), &e.rule)
            }
            _ => {
                let name = at.and_then(|i| events.get(i)).map_or("", String::as_str);
                format!("--inherits: `{name}`: {}", e.rule)
            }
        }
    })
}

/// A visitor timeline as journeys: each conversion with the touches the core
/// credits it on (adjustments replacing the earlier value), then the open
/// journey as a non-converting one.
fn timeline_journeys(v: VisitorIn, defs: &Definitions) -> Result<Vec<JourneyIn>, Bad> {
    let mut open: Vec<Touch> = Vec::new();
    let mut past: Vec<Recorded> = Vec::new();
    let mut out: Vec<(String, JourneyIn)> = Vec::new();
    for (i, s) in v.steps.into_iter().enumerate() {
        match (s.touch, s.convert) {
            (Some(ch), None) => open.push(Touch::new(ch, Some(s.at))),
            (None, Some(name)) => {
                let def = defs.find(&name).ok_or_else(|| bad(format!("steps[{i}].convert"), "unknown conversion"))?;
                let tx = s.transaction_id.as_ref().and_then(|t| {
                    let props = serde_json::Map::from_iter([("transaction_id".to_owned(), t.clone())]);
                    conversion::transaction_id(&props)
                });
                let value = s.value.unwrap_or(0.0);
                if !(value.is_finite() && value >= 0.0) {
                    return Err(bad(format!("steps[{i}].value"), "must be a number ≥ 0"));
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
            _ => return Err(bad(format!("steps[{i}]"), "needs exactly one of `touch` and `convert`")),
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

/// The core's column names for a path, as an NDJSON journey's fields.
fn journey_field(core: &str) -> &str {
    match core {
        "total_conversions" => "conversions",
        "total_conversion_value" => "value",
        "total_null" => "nulls",
        _ => "touches",
    }
}

fn load_ndjson(bytes: &[u8], file: &str, lookback_h: Option<f64>, inherits: &[String]) -> Result<Loaded, String> {
    // Lines are journeys or visitor timelines; timelines need the conversion
    // definitions first, so every line is read before any is credited.
    let mut lines: Vec<(usize, Map<String, Value>)> = Vec::new();
    let mut names: Vec<NameAt> = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let row = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| bad("journey", located::utf8(raw, &e).1).at(file, row))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| bad("journey", located::json_syntax(&e).1).at(file, row))?;
        let Value::Object(m) = v else {
            return Err(bad("journey", "must be a JSON object (a journey or a visitor timeline)").at(file, row));
        };
        let steps = m.get("steps").and_then(Value::as_array);
        for (step, s) in steps.into_iter().flatten().enumerate() {
            if let Some(n) = s.get("convert").and_then(Value::as_str)
                && !names.iter().any(|x| x.name == n)
            {
                names.push(NameAt { name: n.to_owned(), line: row, step });
            }
        }
        lines.push((row, m));
    }
    let defs = timeline_definitions(inherits, &names, file)?;
    let mut journeys: Vec<(usize, JourneyIn)> = Vec::new();
    for (row, m) in lines {
        if m.contains_key("steps") {
            let visitor = known_keys(&m, "", &["visitor", "steps"])
                .and_then(|()| visitor_in(&m))
                .and_then(|v| timeline_journeys(v, &defs))
                .map_err(|b| b.at(file, row))?;
            journeys.extend(visitor.into_iter().map(|j| (row, j)));
        } else {
            let allowed = ["touches", "conversions", "value", "nulls", "converted_at"];
            let j = known_keys(&m, "", &allowed).and_then(|()| journey_in(&m)).map_err(|b| b.at(file, row))?;
            journeys.push((row, j));
        }
    }
    let mut table = PathTable::new();
    let (mut has_value, mut all_timed) = (false, true);
    for (row, j) in journeys {
        has_value |= j.value.is_some();
        let mut touches = j.touches;
        let untimed = touches.iter().position(|t| t.at.is_none());
        if let Some(k) = untimed
            && touches.iter().any(|t| t.at.is_some())
        {
            let b = bad(format!("touches[{k}].at"), "missing: either every touch has `at` or none does");
            return Err(b.at(file, row));
        }
        let timed = untimed.is_none();
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
            return Err(bad("touches[0].at", "--lookback needs a timestamp on every touch").at(file, row));
        }
        if touches.is_empty() {
            continue; // nothing left to credit (empty, or outside the lookback)
        }
        let names: Vec<&str> = touches.iter().map(|t| t.channel.as_str()).collect();
        table
            .push_names(&names, j.conversions, j.value.unwrap_or(0.0), j.nulls, ages)
            .map_err(|e| core_bad(&e, journey_field).at(file, row))?;
    }
    if table.rows.is_empty() {
        return Err(format!("{file}: no journeys with touches"));
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
    let bytes = read_input(&args.input)?;
    let file = if args.input.as_os_str() == "-" { "stdin".to_owned() } else { args.input.display().to_string() };
    let ext = args.input.extension().and_then(|e| e.to_str()).unwrap_or("");
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let loaded = if ext == "ndjson" || ext == "jsonl" || first == Some(b'{') {
        load_ndjson(&bytes, &file, lookback, &args.inherits)?
    } else {
        if lookback.is_some() {
            return Err("--lookback needs NDJSON journeys with timestamps".into());
        }
        if !args.inherits.is_empty() {
            return Err("--inherits needs NDJSON visitor timelines".into());
        }
        load_csv(&bytes, &file)?
    };

    let mut columns = Vec::new();
    let mut markov_result: Option<MarkovResult> = None;
    let mut extra = serde_json::Map::new();
    for model in args.model.runs(loaded.timed) {
        let name = model.name();
        match model {
            ModelArg::Markov => {
                let opts = MarkovOptions { order: args.order, min_journeys: args.min_journeys };
                let r = fit_markov(&loaded.table, &opts).map_err(|e| format!("markov: {e}"))?;
                columns.push(from_named(
                    name,
                    &loaded,
                    r.channels.iter().map(|c| (c.channel.clone(), c.conversions, c.value)),
                ));
                markov_result = Some(r);
            }
            ModelArg::Shapley | ModelArg::Zhao => {
                let sets = SetCounts::from_table(&loaded.table);
                let opts = ShapleyOptions {
                    game: args.shapley_game.core(),
                    samples: args.shapley_samples,
                    seed: args.seed,
                    min_journeys: args.min_journeys,
                    ..ShapleyOptions::default()
                };
                let r = if model == ModelArg::Zhao {
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
            ModelArg::TimeDecay => {
                if !loaded.timed {
                    return Err("time-decay needs NDJSON journeys with a timestamp on every touch".into());
                }
                let m = Model::time_decay(half).map_err(|e| e.to_string())?;
                columns.push(heuristic(name, &m, &loaded)?);
            }
            other => {
                let m = other.heuristic().ok_or_else(|| format!("--model {name}: not a single model"))?;
                columns.push(heuristic(name, &m, &loaded)?);
            }
        }
    }

    let ids = loaded.table.channels.sorted_ids();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let single = args.model != ModelArg::All;
    if args.format == Format::Csv {
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
            doc.insert("model".into(), json!(args.model.name()));
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
