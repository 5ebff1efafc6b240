//! Who may do what on which site. A caller is the super-admin
//! (`ADMIN_TOKEN`), a site token with one role (`mft_…`), or a share link
//! (`mfs_…`, aggregates only); every admin endpoint names the site it acts
//! on and the [`Permission`] it needs, and [`authorize`] answers 401 for a
//! credential that is unknown, expired or revoked and 403 for one that is
//! valid but not for this site or this act.
//!
//! Token secrets are stored only as their SHA-256 and looked up by it: the
//! digest of a ≥ 244-bit random secret leaks nothing through timing.

use crate::auth::{bearer, constant_time_eq, sha256_hex};
use crate::errors::{ApiError, ApiResult};
use crate::sites::{js_num, now_ms};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use worker::{Env, Request};

pub const TOKEN_PREFIX: &str = "mft_";
pub const SHARE_PREFIX: &str = "mfs_";
/// The shortest super-admin token a deployed Worker runs with.
const MIN_ADMIN_TOKEN: usize = 32;

/// A site token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything on the site.
    Owner,
    /// Read-only reports, paths, KPIs and leads.
    Analyst,
    /// Subjects: export, explain, erase.
    Privacy,
    /// Server events for the site.
    Ingest,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "analyst" => Some(Role::Analyst),
            "privacy" => Some(Role::Privacy),
            "ingest" => Some(Role::Ingest),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Analyst => "analyst",
            Role::Privacy => "privacy",
            Role::Ingest => "ingest",
        }
    }

    fn allows(self, p: Permission) -> bool {
        match self {
            Role::Owner => true,
            Role::Analyst => matches!(p, Permission::Aggregates | Permission::Leads),
            Role::Privacy => p == Permission::Subjects,
            Role::Ingest => p == Permission::Ingest,
        }
    }
}

/// One family of endpoints of a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read and change the site's settings; rotate its secrets.
    Config,
    /// Create, list and revoke the site's tokens.
    Tokens,
    Shares,
    Audit,
    /// Upload ad spend.
    Spend,
    /// Attribution, KPIs and paths: aggregates, no person in them.
    Aggregates,
    /// Leads: visitors by score and tier.
    Leads,
    /// A data subject's export, explanation and erasure.
    Subjects,
    /// `POST /v1/events`.
    Ingest,
}

/// Who is acting, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    SuperAdmin,
    /// `expires_at`: epoch ms, or `None` for a token without expiry.
    Token {
        id: String,
        name: String,
        role: Role,
        site: String,
        expires_at: Option<i64>,
    },
    Share {
        id: String,
        name: String,
        site: String,
    },
}

impl Actor {
    pub fn id(&self) -> &str {
        match self {
            Actor::SuperAdmin => "admin",
            Actor::Token { id, .. } | Actor::Share { id, .. } => id,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Actor::SuperAdmin => "super-admin",
            Actor::Token { name, .. } | Actor::Share { name, .. } => name,
        }
    }

    /// Whether this caller may do `p` on `site`.
    pub fn may(&self, site: &str, p: Permission) -> bool {
        match self {
            Actor::SuperAdmin => true,
            Actor::Token { role, site: own, .. } => own == site && role.allows(p),
            Actor::Share { site: own, .. } => own == site && p == Permission::Aggregates,
        }
    }
}

/// The caller, authenticated, allowed `p` on `site` — or why not.
pub async fn authorize(req: &Request, env: &Env, site: &str, p: Permission) -> ApiResult<Actor> {
    let actor = authenticate(req, env).await?;
    permit(&actor, site, p)?;
    Ok(actor)
}

/// 403 unless `actor` may do `p` on `site` (for endpoints that learn the
/// site from the body, after authenticating).
pub fn permit(actor: &Actor, site: &str, p: Permission) -> ApiResult<()> {
    if actor.may(site, p) {
        Ok(())
    } else {
        Err(ApiError::new(403, "forbidden", "this credential may not do this on this site"))
    }
}

/// Only the super-admin (creating a site).
pub async fn require_super_admin(req: &Request, env: &Env) -> ApiResult<()> {
    match authenticate(req, env).await? {
        Actor::SuperAdmin => Ok(()),
        _ => Err(ApiError::new(403, "forbidden", "only the operator's admin token may do this")),
    }
}

#[derive(Deserialize)]
struct CredentialRow {
    id: String,
    site_id: String,
    name: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    expires_at: Option<f64>,
    #[serde(default)]
    revoked_at: Option<f64>,
    #[serde(default)]
    last_used_at: Option<f64>,
}

/// Who the bearer token says the caller is.
pub async fn authenticate(req: &Request, env: &Env) -> ApiResult<Actor> {
    let Some(given) = bearer(req) else {
        return Err(ApiError::new(401, "unauthorized", "a bearer token is required"));
    };
    authenticate_credential(req, env, &given).await
}

/// Who `given` (a token, a share key or the admin token, however it was
/// sent: a bearer, Segment's Basic auth or write key) authenticates.
pub async fn authenticate_credential(req: &Request, env: &Env, given: &str) -> ApiResult<Actor> {
    let table = if given.starts_with(TOKEN_PREFIX) {
        "site_tokens"
    } else if given.starts_with(SHARE_PREFIX) {
        "shares"
    } else {
        return super_admin(req, env, given);
    };
    let db = env.d1("DB")?;
    let extra = if table == "site_tokens" { "role, last_used_at" } else { "NULL AS role, NULL AS last_used_at" };
    let row: Option<CredentialRow> = db
        .prepare(format!("SELECT id, site_id, name, {extra}, expires_at, revoked_at FROM {table} WHERE digest = ?1"))
        .bind(&[sha256_hex(given.as_bytes()).into()])?
        .first(None)
        .await?;
    let Some(row) = row else {
        return Err(ApiError::new(401, "invalid_token", "the token is not valid"));
    };
    let now = now_ms();
    if row.revoked_at.is_some() {
        return Err(ApiError::new(401, "token_revoked", "the token has been revoked"));
    }
    if row.expires_at.is_some_and(|t| (t as i64) <= now) {
        return Err(ApiError::new(401, "token_expired", "the token has expired"));
    }
    if table == "shares" {
        return Ok(Actor::Share { id: row.id, name: row.name, site: row.site_id });
    }
    let Some(role) = row.role.as_deref().and_then(Role::parse) else {
        // The table's CHECK keeps this out; a row that breaks it grants nothing.
        worker::console_error!("token {}: unreadable role", row.id);
        return Err(ApiError::new(401, "invalid_token", "the token is not valid"));
    };
    // At most one write a minute per token, and none on a request that
    // finds `last_used_at` fresh.
    if row.last_used_at.is_none_or(|t| (t as i64) < now - 60_000) {
        db.prepare(
            "UPDATE site_tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60000)",
        )
        .bind(&[row.id.as_str().into(), js_num(now)])?
        .run()
        .await?;
    }
    let expires_at = row.expires_at.map(|t| t as i64);
    Ok(Actor::Token { id: row.id, name: row.name, role, site: row.site_id, expires_at })
}

fn super_admin(req: &Request, env: &Env, given: &str) -> ApiResult<Actor> {
    let Some(expected) = env.var("ADMIN_TOKEN").ok().map(|v| v.to_string()).filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(503, "admin_disabled", "no ADMIN_TOKEN is configured on this Worker"));
    };
    let local = req.url().ok().is_some_and(|u| is_loopback_host(u.host_str().unwrap_or("")));
    if !admin_token_usable(&expected, local) {
        return Err(ApiError::new(
            503,
            "admin_token_weak",
            format!("ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN} characters: set a long random one"),
        ));
    }
    // Compare digests so the comparison's length is fixed too.
    if constant_time_eq(&Sha256::digest(given.as_bytes()), &Sha256::digest(expected.as_bytes())) {
        Ok(Actor::SuperAdmin)
    } else {
        Err(ApiError::new(401, "invalid_token", "the token is not valid"))
    }
}

/// A short super-admin token is tolerated only where the Worker is reached
/// on a loopback host: `wrangler dev` and its `dev-admin-token`. A deployed
/// Worker is reached by its own host name.
fn admin_token_usable(token: &str, local: bool) -> bool {
    local || token.chars().count() >= MIN_ADMIN_TOKEN
}

pub fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1")
}

/// The request's id for the audit log: Cloudflare's ray id, or a fresh one.
pub fn request_id(req: &Request) -> String {
    req.headers()
        .get("cf-ray")
        .ok()
        .flatten()
        .filter(|r| !r.is_empty() && r.len() <= 64)
        .or_else(|| crate::auth::random_hex(1).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role, site: &str) -> Actor {
        Actor::Token { id: "mftk_1".into(), name: "t".into(), role, site: site.into(), expires_at: None }
    }

    #[test]
    fn each_role_reaches_only_its_families_and_only_on_its_site() {
        use Permission::*;
        let all = [Config, Tokens, Shares, Audit, Spend, Aggregates, Leads, Subjects, Ingest];
        let allowed = |a: &Actor| all.iter().copied().filter(|p| a.may("a", *p)).collect::<Vec<_>>();
        assert_eq!(allowed(&token(Role::Owner, "a")), all.to_vec());
        assert_eq!(allowed(&token(Role::Analyst, "a")), vec![Aggregates, Leads]);
        assert_eq!(allowed(&token(Role::Privacy, "a")), vec![Subjects]);
        assert_eq!(allowed(&token(Role::Ingest, "a")), vec![Ingest]);
        let share = Actor::Share { id: "mfsh_1".into(), name: "s".into(), site: "a".into() };
        assert_eq!(allowed(&share), vec![Aggregates]);
        assert_eq!(allowed(&Actor::SuperAdmin), all.to_vec());
        for role in [Role::Owner, Role::Analyst, Role::Privacy, Role::Ingest] {
            assert!(all.iter().all(|p| !token(role, "b").may("a", *p)), "{role:?}");
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn a_short_admin_token_runs_only_on_loopback() {
        assert!(admin_token_usable("dev-admin-token", true));
        assert!(!admin_token_usable("dev-admin-token", false));
        assert!(admin_token_usable(&"x".repeat(32), false));
        assert!(is_loopback_host("127.0.0.1") && is_loopback_host("localhost"));
        assert!(!is_loopback_host("collector.example.com"));
    }
}
