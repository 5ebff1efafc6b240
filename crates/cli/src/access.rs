//! `microfunnel token create|list|revoke` and `microfunnel share create`: a
//! site's credentials on a running collector (`/v1/sites/{site}/tokens`,
//! `/v1/sites/{site}/shares`), as its owner or the operator. A new token or
//! link is printed once; the collector keeps only its digest.

use crate::http::{Client, Method, Remote, segment};
use serde_json::{Map, Value, json};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

/// A token's role on its site.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Role {
    /// Everything on the site.
    Owner,
    /// Read-only reports, paths, KPIs and leads.
    Analyst,
    /// Subjects: export, explain, erase.
    Privacy,
    /// Server events (`POST /v1/events`).
    Ingest,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Analyst => "analyst",
            Role::Privacy => "privacy",
            Role::Ingest => "ingest",
        }
    }
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Create a token (printed once).
    Create {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        site: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Who or what it is for, e.g. "Agency reporting".
        #[arg(long)]
        name: String,
        /// When it stops working (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List the site's tokens (no secrets).
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        site: String,
    },
    /// Revoke a token at once.
    Revoke {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        site: String,
        /// The token's id (mftk_…), as `token list` shows it.
        id: String,
    },
}

#[derive(clap::Args)]
pub struct ShareArgs {
    #[command(subcommand)]
    command: ShareCommand,
}

#[derive(clap::Subcommand)]
enum ShareCommand {
    /// Create a read-only link to the site's aggregates (printed once).
    Create {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        site: String,
        #[arg(long)]
        name: Option<String>,
        /// When it stops working (RFC 3339).
        #[arg(long)]
        expires: Option<String>,
    },
}

fn create_body(role: Option<Role>, name: Option<&str>, expires: Option<&str>) -> Value {
    let mut b = Map::new();
    if let Some(r) = role {
        b.insert("role".into(), json!(r.as_str()));
    }
    if let Some(n) = name {
        b.insert("name".into(), json!(n));
    }
    if let Some(e) = expires {
        b.insert("expires_at".into(), json!(e));
    }
    Value::Object(b)
}

pub fn run_token(args: TokenArgs) -> Result<ExitCode, String> {
    match args.command {
        TokenCommand::Create { remote, site, role, name, expires } => {
            let body = create_body(Some(role), Some(&name), expires.as_deref());
            let path = format!("/v1/sites/{}/tokens", segment(&site));
            crate::emit(&Client::new(&remote)?.expect(Method::Post, &path, Some(&body), 201)?)?;
            eprintln!("token created: keep it now, it is not shown again");
        }
        TokenCommand::List { remote, site } => {
            let path = format!("/v1/sites/{}/tokens", segment(&site));
            crate::emit(&Client::new(&remote)?.expect(Method::Get, &path, None, 200)?)?;
        }
        TokenCommand::Revoke { remote, site, id } => {
            let path = format!("/v1/sites/{}/tokens/{}", segment(&site), segment(&id));
            crate::emit(&Client::new(&remote)?.expect(Method::Delete, &path, None, 200)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_share(args: ShareArgs) -> Result<ExitCode, String> {
    match args.command {
        ShareCommand::Create { remote, site, name, expires } => {
            let body = create_body(None, name.as_deref(), expires.as_deref());
            let path = format!("/v1/sites/{}/shares", segment(&site));
            crate::emit(&Client::new(&remote)?.expect(Method::Post, &path, Some(&body), 201)?)?;
            eprintln!("share link created: keep the url now, it is not shown again");
        }
    }
    Ok(ExitCode::SUCCESS)
}
