//! A site's two HMAC secrets, one per direction: `signing` authenticates the
//! server events it sends us (`X-MF-Signature`), `webhook` signs what we send
//! it (`X-MF-Webhook-Signature`), so a webhook receiver cannot forge events.
//!
//! Neither is stored: each is derived from the Worker secret `SECRETS_KEY`,
//! the site, the purpose and a version, `HMAC(SECRETS_KEY, "site-secret|" site
//! "|" purpose "|" version)`, so a copy of the database reveals none. A
//! rotation bumps the version and keeps the previous one valid for a grace
//! period. Version 0 is the plain-text secret of a site made before secrets
//! were derived (one secret for both directions); its first rotation moves
//! that direction to a derived secret, and the daily purge clears the plain
//! text once no direction uses it.

use crate::auth::{hex, hmac_sha256};
use crate::errors::{ApiError, ApiResult};
use worker::Env;

/// The grace period of a rotation unless the owner sets one.
pub const DEFAULT_GRACE_S: i64 = 24 * 3600;
pub const MAX_GRACE_S: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Signing,
    Webhook,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Signing => "signing",
            Purpose::Webhook => "webhook",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Purpose::Signing => "mfss_",
            Purpose::Webhook => "mfws_",
        }
    }

    /// The `sites` columns holding this purpose's version and grace end.
    pub fn columns(self) -> (&'static str, &'static str) {
        match self {
            Purpose::Signing => ("signing_version", "signing_previous_until"),
            Purpose::Webhook => ("webhook_version", "webhook_previous_until"),
        }
    }
}

/// Where one purpose's secret stands for a site.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versions {
    pub version: i64,
    /// Epoch ms until which `version - 1` is still accepted (or still sent).
    pub previous_until: i64,
}

/// What a site's secrets are made from (read with the site).
#[derive(Debug, Clone, Default)]
pub struct SiteSecrets {
    /// The plain-text secret of version 0 (empty once cleared).
    pub legacy: String,
    pub signing: Versions,
    pub webhook: Versions,
}

impl SiteSecrets {
    fn versions(&self, p: Purpose) -> &Versions {
        match p {
            Purpose::Signing => &self.signing,
            Purpose::Webhook => &self.webhook,
        }
    }
}

fn master(env: &Env) -> ApiResult<String> {
    env.var("SECRETS_KEY")
        .ok()
        .map(|v| v.to_string())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::new(503, "secrets_key_missing", "no SECRETS_KEY is configured on this Worker"))
}

/// The secret of `version` (0 = the stored plain text).
fn derive(master: &str, legacy: &str, site: &str, p: Purpose, version: i64) -> Option<String> {
    if version == 0 {
        return (!legacy.is_empty()).then(|| legacy.to_owned());
    }
    let label = format!("site-secret|{site}|{}|{version}", p.as_str());
    Some(format!("{}{}", p.prefix(), hex(&hmac_sha256(master.as_bytes(), label.as_bytes()))))
}

/// Every secret of `p` valid at `now`: the current one first, then the
/// previous one during its grace period.
pub fn valid(env: &Env, site: &str, s: &SiteSecrets, p: Purpose, now: i64) -> ApiResult<Vec<String>> {
    let key = if s.versions(p).version == 0 { String::new() } else { master(env)? };
    Ok(valid_with(&key, site, s, p, now))
}

fn valid_with(master: &str, site: &str, s: &SiteSecrets, p: Purpose, now: i64) -> Vec<String> {
    let v = s.versions(p);
    let mut out: Vec<String> = derive(master, &s.legacy, site, p, v.version).into_iter().collect();
    if v.version > 0 && now < v.previous_until {
        out.extend(derive(master, &s.legacy, site, p, v.version - 1));
    }
    out
}

/// The secret a new site, or a rotation to `version`, answers once.
/// The key a site's userIds are hashed under when it stores them only as
/// such (`consent.hash_user_ids`): derived from `SECRETS_KEY` and the site,
/// never stored; `None` when the site keeps its ids as sent.
pub fn user_id_key(env: &Env, site: &crate::sites::Site) -> ApiResult<Option<Vec<u8>>> {
    if !site.config.site.consent().hash_user_ids {
        return Ok(None);
    }
    let master = master(env)?;
    Ok(Some(crate::auth::hmac_sha256(master.as_bytes(), format!("user-id:{}", site.id).as_bytes())))
}

/// A userId as a site with `consent.hash_user_ids` stores it.
pub fn hashed_user_id(key: &[u8], id: &str) -> String {
    format!("uh_{}", crate::auth::hex(&crate::auth::hmac_sha256(key, id.as_bytes())))
}

pub fn issue(env: &Env, site: &str, p: Purpose, version: i64) -> ApiResult<String> {
    let key = master(env)?;
    derive(&key, "", site, p, version.max(1)).ok_or_else(|| ApiError::new(500, "internal", "internal error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(signing: i64, signing_until: i64) -> SiteSecrets {
        SiteSecrets {
            legacy: "mfss_legacy".into(),
            signing: Versions { version: signing, previous_until: signing_until },
            webhook: Versions { version: 1, previous_until: 0 },
        }
    }

    #[test]
    fn secrets_differ_by_site_purpose_version_and_master() {
        let a = derive("k", "", "a", Purpose::Signing, 1).unwrap();
        assert!(a.starts_with("mfss_") && a.len() == 5 + 64);
        assert_ne!(a, derive("k", "", "b", Purpose::Signing, 1).unwrap());
        assert_ne!(a, derive("k", "", "a", Purpose::Signing, 2).unwrap());
        assert_ne!(a, derive("k2", "", "a", Purpose::Signing, 1).unwrap());
        let w = derive("k", "", "a", Purpose::Webhook, 1).unwrap();
        assert!(w.starts_with("mfws_"));
        assert_ne!(a[5..], w[5..]);
    }

    #[test]
    fn the_previous_secret_is_valid_only_during_the_grace_period() {
        let s = site(3, 1_000);
        let v3 = derive("k", "", "a", Purpose::Signing, 3).unwrap();
        let v2 = derive("k", "", "a", Purpose::Signing, 2).unwrap();
        assert_eq!(valid_with("k", "a", &s, Purpose::Signing, 999), vec![v3.clone(), v2]);
        assert_eq!(valid_with("k", "a", &s, Purpose::Signing, 1_000), vec![v3]);
        // Rotating away from the plain-text secret keeps it for the grace.
        let s = site(1, 1_000);
        let v1 = derive("k", "", "a", Purpose::Signing, 1).unwrap();
        assert_eq!(valid_with("k", "a", &s, Purpose::Signing, 10), vec![v1.clone(), "mfss_legacy".to_owned()]);
        assert_eq!(valid_with("k", "a", &s, Purpose::Signing, 1_000), vec![v1]);
        // A site made before derivation still uses its plain text, without any key.
        assert_eq!(valid_with("", "a", &site(0, 0), Purpose::Signing, 10), vec!["mfss_legacy".to_owned()]);
    }
}
