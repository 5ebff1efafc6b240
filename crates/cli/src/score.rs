//! `microfunnel score --events FILE.ndjson [--rules FILE.toml] [--conversions
//! FILE.json] [--at RFC3339] [--assume-consent PURPOSES]`: scores one
//! visitor's Segment-spec events with the core's batch evaluation and prints
//! the score with its explanation as JSON, its lifecycle stage and stage
//! history included (with the site's conversion definitions, conversions
//! enter their stages; without, stages are entered by score only). An event without a consent stamp counts for nothing (the core scores
//! only what personalization consent covers); the CLI says how many there
//! were, and `--assume-consent` stamps them for exports whose consent is
//! recorded elsewhere (a CRM's), saying so in the output. A stamp the event
//! carries is never overridden.

use crate::located;
use microfunnel_core::consent::ConsentStamp;
use microfunnel_core::event::{Event, Limits};
use microfunnel_core::scoring::{ConversionStages, Rules, evaluate_with};
use microfunnel_core::timestamp::Timestamp;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// One visitor's events, Segment spec, one JSON object per line.
    #[arg(long)]
    events: PathBuf,
    /// Rule file (TOML; JSON if it ends in .json). Default: the built-in rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// The site's conversion definitions (a JSON list, as in the site's
    /// `conversions`): the stages they enter.
    #[arg(long)]
    conversions: Option<PathBuf>,
    /// Evaluation time, RFC 3339. Default: now.
    #[arg(long)]
    at: Option<String>,
    /// Stamp events that carry no consent with these purposes (comma-separated),
    /// for exports whose consent is recorded elsewhere.
    #[arg(long, value_enum, value_delimiter = ',')]
    assume_consent: Vec<Purpose>,
}

/// A consent purpose an export may be assumed to have.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Analytics,
    Personalization,
    Marketing,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Analytics => "analytics",
            Purpose::Personalization => "personalization",
            Purpose::Marketing => "marketing",
        }
    }

    fn core(self) -> microfunnel_core::consent::Purpose {
        use microfunnel_core::consent::Purpose as P;
        match self {
            Purpose::Analytics => P::Analytics,
            Purpose::Personalization => P::Personalization,
            Purpose::Marketing => P::Marketing,
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let rules = match &args.rules {
        Some(path) => crate::rules::load(path)?,
        None => Rules::default_rules(),
    };
    let conversions = match &args.conversions {
        Some(path) => crate::rules::load_conversions(path)?.stages(&rules)?,
        None => ConversionStages::none(),
    };
    let at = match &args.at {
        Some(text) => Timestamp::parse(text).map_err(|e| format!("--at: {e}"))?,
        None => now()?,
    };
    let file = args.events.display().to_string();
    let bytes = std::fs::read(&args.events).map_err(|e| format!("reading {file}: {e}"))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let (line, problem) = located::utf8(&bytes, &e);
        located::at(&file, line, "event", problem)
    })?;
    let mut events = read_events(text, &file, at)?;
    let unstamped = events.iter().filter(|e| e.consent.is_none()).count();
    let assumed = !args.assume_consent.is_empty();
    if assumed {
        let purposes: Vec<_> = args.assume_consent.iter().map(|p| p.core()).collect();
        let stamp = ConsentStamp::granting(&purposes);
        for e in events.iter_mut().filter(|e| e.consent.is_none()) {
            e.consent = Some(stamp);
        }
    }
    let score = evaluate_with(&rules, &conversions, &events, at);
    let mut out = serde_json::to_value(&score).map_err(|e| e.to_string())?;
    if assumed && let Some(o) = out.as_object_mut() {
        let purposes: Vec<&str> = args.assume_consent.iter().map(|p| p.as_str()).collect();
        o.insert("assumed_consent".into(), serde_json::json!({"purposes": purposes, "events": unstamped}));
    }
    crate::emit(&serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?)?;
    if unstamped > 0 && !assumed {
        eprintln!(
            "warning: {unstamped} of {} events carry no consent stamp and were ignored for lack of consent; \
             if their consent is recorded elsewhere (your CRM), pass --assume-consent analytics,personalization,marketing \
             (or the purposes it covers)",
            events.len()
        );
    } else if assumed && unstamped > 0 {
        eprintln!("note: {unstamped} events without a consent stamp were scored under --assume-consent");
    }
    if args.conversions.is_none() && !rules.stages().is_empty() {
        eprintln!(
            "note: stages are entered by score only; pass --conversions FILE.json for the stages conversions enter"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The events of an NDJSON export (blank lines skipped); an error is
/// `FILE:LINE: field: rule`, the field as the core names it (`messageId`,
/// `context.page.path`), `event` for a line that is not a JSON event.
pub fn read_events(text: &str, file: &str, at: Timestamp) -> Result<Vec<Event>, String> {
    // An export is history: any age is fine, and `--at` may predate it.
    let limits = Limits { max_age_ms: i64::MAX, max_future_ms: i64::MAX, ..Limits::DEFAULT };
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let raw: serde_json::Value =
            serde_json::from_str(line).map_err(|e| located::at(file, i + 1, "event", located::json_syntax(&e).1))?;
        events.push(Event::parse(&raw, &limits, at).map_err(|e| located::at(file, i + 1, &e.field, &e.rule))?);
    }
    Ok(events)
}

fn now() -> Result<Timestamp, String> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("system clock: {e}"))?
        .as_millis();
    i64::try_from(ms).ok().and_then(Timestamp::from_millis).ok_or_else(|| "system clock out of range".to_string())
}
