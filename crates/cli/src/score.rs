//! `microfunnel score --events FILE.ndjson [--rules FILE.toml] [--at RFC3339]`:
//! scores one visitor's Segment-spec events with the core's batch evaluation
//! and prints the score with its explanation as JSON.

use microfunnel_core::event::{Event, Limits};
use microfunnel_core::scoring::{Rules, evaluate};
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
    /// Evaluation time, RFC 3339. Default: now.
    #[arg(long)]
    at: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let rules = match &args.rules {
        Some(path) => crate::rules::load(path)?,
        None => Rules::default_rules(),
    };
    let at = match &args.at {
        Some(text) => Timestamp::parse(text).map_err(|e| format!("--at: {e}"))?,
        None => now()?,
    };
    let text = std::fs::read_to_string(&args.events).map_err(|e| format!("reading {}: {e}", args.events.display()))?;
    let events = read_events(&text, &args.events.display().to_string(), at)?;
    let score = evaluate(&rules, &events, at);
    let out = serde_json::to_string_pretty(&score).map_err(|e| e.to_string())?;
    crate::emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The events of an NDJSON export (blank lines skipped); an error names the
/// file, the line and what is wrong.
pub fn read_events(text: &str, file: &str, at: Timestamp) -> Result<Vec<Event>, String> {
    // An export is history: any age is fine, and `--at` may predate it.
    let limits = Limits { max_age_ms: i64::MAX, max_future_ms: i64::MAX, ..Limits::DEFAULT };
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let place = format!("{file}:{}", i + 1);
        let raw: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{place}: not JSON: {e}"))?;
        events.push(Event::parse(&raw, &limits, at).map_err(|e| format!("{place}: {e}"))?);
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
