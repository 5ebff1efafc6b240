//! `microfunnel site create …`: creates a site on a collector through its
//! admin endpoint (`POST /v1/sites`, `Authorization: Bearer <admin token>`)
//! and prints what it answers — including the site's server key and signing
//! secret, shown this once.
//!
//! Rules are checked by the core before anything is sent. Plain `http://`
//! URLs (a local `wrangler dev`) are spoken to directly; `https://` goes
//! through the system's `curl`, so the CLI carries no TLS stack.

use microfunnel_core::scoring::Rules;
use serde_json::{Map, Value, json};
use std::io::{Read, Write};
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
    /// The collector's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    url: String,
    /// The admin token (default: $MICROFUNNEL_ADMIN_TOKEN).
    #[arg(long)]
    token: Option<String>,
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
    let token = c
        .token
        .clone()
        .or_else(|| std::env::var("MICROFUNNEL_ADMIN_TOKEN").ok())
        .filter(|t| !t.is_empty())
        .ok_or("an admin token is required: --token or MICROFUNNEL_ADMIN_TOKEN")?;
    let body = build_body(&c)?;
    let url = format!("{}/v1/sites", c.url.trim_end_matches('/'));
    let (status, text) = post_json(&url, &token, &body.to_string())?;
    let shown =
        serde_json::from_str::<Value>(&text).ok().and_then(|v| serde_json::to_string_pretty(&v).ok()).unwrap_or(text);
    if status == 201 {
        crate::emit(&shown)?;
        eprintln!("site created: keep server_key and signing_secret now, they are not shown again");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!("the collector answered {status}: {shown}"))
    }
}

fn build_body(c: &Create) -> Result<Value, String> {
    let mut body = Map::new();
    if let Some(path) = &c.config {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        match serde_json::from_str::<Value>(&text).map_err(|e| format!("{}: {e}", path.display()))? {
            Value::Object(m) => body.extend(m),
            _ => return Err(format!("{}: must be a JSON object", path.display())),
        }
    }
    body.insert("id".into(), json!(c.id));
    if let Some(n) = &c.name {
        body.insert("name".into(), json!(n));
    }
    body.insert("origins".into(), json!(c.origins));
    if let Some(path) = &c.rules {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let rules = if path.extension().is_some_and(|e| e == "json") {
            Rules::from_json(&text)
        } else {
            Rules::from_toml(&text)
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        body.insert("rules".into(), rules.to_json());
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

/// POSTs JSON; answers the status and the body.
fn post_json(url: &str, token: &str, body: &str) -> Result<(u16, String), String> {
    if let Some(rest) = url.strip_prefix("http://") {
        let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
        let addr = if host.contains(':') { host.to_owned() } else { format!("{host}:80") };
        let mut s = std::net::TcpStream::connect(&addr).map_err(|e| format!("cannot reach {addr}: {e}"))?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if raw.is_empty() => return Err(format!("reading the answer: {e}")),
                Err(_) => break,
            }
            if response_complete(&raw) {
                break;
            }
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no HTTP status")?;
        return Ok((status, rest.to_owned()));
    }
    if !url.starts_with("https://") {
        return Err(format!("{url}: the URL must start with http:// or https://"));
    }
    let mut child = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST", "-H", "Content-Type: application/json", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .args(["--data-binary", "@-", "-w", "\n%{http_code}", url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("https needs curl on PATH: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').ok_or("curl gave no status")?;
    Ok((code.trim().parse().map_err(|_| format!("curl: {text}"))?, body.to_owned()))
}

fn response_complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else { return false };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
        })
        .is_some_and(|len| rest.len() >= len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_origins_conversions_and_webhooks() {
        let c = Create {
            url: "http://127.0.0.1:8787".into(),
            token: Some("t".into()),
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
