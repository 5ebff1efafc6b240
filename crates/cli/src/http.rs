//! Talking to a collector: `ureq` (rustls), no redirects followed, a 30 s
//! timeout. The token comes from the environment (`MICROFUNNEL_TOKEN`, or
//! `MICROFUNNEL_ADMIN_TOKEN` for the operator) or a file — never from the
//! command line, where `ps` and `/proc` show it. Plain `http://` only to a
//! loopback host (a local `wrangler dev`): anywhere else the token would
//! cross the network in clear.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the collector is and who speaks to it (shared by every admin command).
#[derive(clap::Args, Clone, Debug)]
pub struct Remote {
    /// The collector's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    pub url: String,
    /// A file holding the token (default: $MICROFUNNEL_TOKEN, then $MICROFUNNEL_ADMIN_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// A method the admin API uses.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Client {
    pub fn new(remote: &Remote) -> Result<Client, String> {
        let base = checked_base(&remote.url)?;
        let token = match &remote.token_file {
            Some(path) => read_token(path)?,
            None => ["MICROFUNNEL_TOKEN", "MICROFUNNEL_ADMIN_TOKEN"]
                .iter()
                .find_map(|k| std::env::var(k).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
                .ok_or(
                    "a token is required: set MICROFUNNEL_TOKEN (or MICROFUNNEL_ADMIN_TOKEN), or pass --token-file",
                )?,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            // Never through a proxy from the environment: it would receive
            // the token (in clear for a loopback http:// URL).
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Client { base, token, agent })
    }

    /// Sends one request; answers the status and the body's text.
    pub fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let sent = match (method, body) {
            (Method::Post, Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            (Method::Post, None) => self.agent.post(&url).header("Authorization", &auth).send_empty(),
            (Method::Get, _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (Method::Delete, _) => self.agent.delete(&url).header("Authorization", &auth).call(),
        };
        let mut resp = sent.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(|e| format!("{url}: reading the answer: {e}"))?;
        Ok((status, text))
    }

    /// Sends, and answers the body pretty-printed when the status is `ok`;
    /// any other status is an error carrying the collector's own answer.
    pub fn expect(&self, method: Method, path: &str, body: Option<&Value>, ok: u16) -> Result<String, String> {
        let (status, text) = self.send(method, path, body)?;
        let shown = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(text);
        if status == ok { Ok(shown) } else { Err(format!("the collector answered {status}: {shown}")) }
    }
}

fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = text.trim();
    if t.is_empty() { Err(format!("{}: the file is empty", path.display())) } else { Ok(t.to_owned()) }
}

/// The base URL without its trailing slash, refused when it would send the
/// token in clear over a network.
fn checked_base(url: &str) -> Result<String, String> {
    let base = url.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!("{url}: plain http:// only to a loopback host (127.0.0.1, localhost); use https://"));
        }
        rest
    } else if let Some(rest) = base.strip_prefix("https://") {
        rest
    } else {
        return Err(format!("{url}: the URL must start with https:// (or http:// to a loopback host)"));
    };
    if rest.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(base.to_owned())
}

/// A path segment, percent-encoded (site ids and token ids are plain, but a
/// typo must not turn into another path).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert_eq!(checked_base("http://127.0.0.1:8787/").unwrap(), "http://127.0.0.1:8787");
        assert!(checked_base("http://localhost").is_ok());
        assert!(checked_base("http://[::1]:8787").is_ok());
        assert!(checked_base("https://collector.example.com").is_ok());
        for bad in [
            "http://collector.example.com",
            "http://10.0.0.5:8787",
            "http://127.0.0.1.evil.example",
            "ftp://x",
            "https://",
        ] {
            assert!(checked_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_cannot_change_the_path() {
        assert_eq!(segment("site-1"), "site-1");
        assert_eq!(segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }
}
