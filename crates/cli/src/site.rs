//! `microfunnel site create …`: creates a site on a collector through its
//! admin endpoint (`POST /v1/sites`, `Authorization: Bearer <admin token>`)
//! and prints what it answers — including the site's server key and signing
//! secret, shown this once.
//!
//! Rules are checked by the core before anything is sent; the request goes
//! through [`crate::http`] (the operator's token from the environment).

use crate::http::{Client, Method, Remote};
use crate::located;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create a site with its origins, rules, conversions and webhooks.
    Create(Create),
}

#[derive(clap::Args)]
struct Create {
    #[command(flatten)]
    remote: Remote,
    /// The site id, as in `data-site` (a-z, 0-9, - and _).
    #[arg(long)]
    id: String,
    #[arg(long)]
    name: Option<String>,
    /// An allowed origin, e.g. https://www.example.com (repeatable).
    #[arg(long = "origin", required = true)]
    origins: Vec<String>,
    /// A scoring rule file (TOML, or JSON if it ends in .json).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// A conversion: `EVENT` or `EVENT=VALUE_PROPERTY` (repeatable).
    #[arg(long = "conversion")]
    conversions: Vec<String>,
    /// A webhook URL (repeatable).
    #[arg(long = "webhook")]
    webhooks: Vec<String>,
    /// Days raw events are kept.
    #[arg(long)]
    retention_days: Option<u32>,
    /// A JSON file with more settings: `cta`, `consent`, `channels`, `limits`.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    match args.command {
        Command::Create(c) => create(c),
    }
}

fn create(c: Create) -> Result<ExitCode, String> {
    let body = build_body(&c)?;
    let client = Client::new(&c.remote)?;
    crate::emit(&client.expect(Method::Post, "/v1/sites", Some(&body), 201)?)?;
    eprintln!("site created: keep server_key, signing_secret and webhook_secret now, they are not shown again");
    Ok(ExitCode::SUCCESS)
}

fn build_body(c: &Create) -> Result<Value, String> {
    let mut body = Map::new();
    if let Some(path) = &c.config {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {file}: {e}"))?;
        let value = serde_json::from_str::<Value>(&text).map_err(|e| {
            let (line, problem) = located::json_syntax(&e);
            located::at(&file, line, located::DOCUMENT, problem)
        })?;
        match value {
            Value::Object(m) => body.extend(m),
            _ => {
                let line = located::JsonLines::new(&text).line_of("");
                return Err(located::at(&file, line, located::DOCUMENT, "must be a JSON object"));
            }
        }
    }
    body.insert("id".into(), json!(c.id));
    if let Some(n) = &c.name {
        body.insert("name".into(), json!(n));
    }
    body.insert("origins".into(), json!(c.origins));
    if let Some(path) = &c.rules {
        body.insert("rules".into(), crate::rules::load(path)?.to_json());
    }
    if !c.conversions.is_empty() {
        let defs: Vec<Value> = c
            .conversions
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((event, prop)) => json!({"event": event.trim(), "value_property": prop.trim()}),
                None => json!({"event": spec.trim()}),
            })
            .collect();
        body.insert("conversions".into(), Value::Array(defs));
    }
    if !c.webhooks.is_empty() {
        body.insert("webhooks".into(), json!(c.webhooks));
    }
    if let Some(d) = c.retention_days {
        body.insert("retention_days".into(), json!(d));
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_origins_conversions_and_webhooks() {
        let c = Create {
            remote: Remote { url: "http://127.0.0.1:8787".into(), token_file: None },
            id: "acme".into(),
            name: Some("Acme".into()),
            origins: vec!["https://acme.example".into()],
            rules: None,
            conversions: vec!["Order Completed=revenue".into(), "Lead".into()],
            webhooks: vec!["https://hooks.example/mf".into()],
            retention_days: Some(90),
            config: None,
        };
        let body = build_body(&c).unwrap();
        assert_eq!(body["id"], "acme");
        assert_eq!(body["origins"], json!(["https://acme.example"]));
        assert_eq!(body["conversions"][0], json!({"event": "Order Completed", "value_property": "revenue"}));
        assert_eq!(body["conversions"][1], json!({"event": "Lead"}));
        assert_eq!(body["retention_days"], 90);
    }
}
