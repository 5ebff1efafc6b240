//! Sites: `POST /v1/sites` (admin) creates one with its origins, rules,
//! conversion definitions, keys and webhook URLs; [`Site::load`] reads one for
//! every other endpoint. The site's configuration is parsed once, by the
//! core, into validated types ([`Config`]): on write, and again when it is
//! read back, where a document that no longer parses fails closed.

use crate::access::{self, Actor, Permission};
use crate::audit;
use crate::auth;
use crate::body;
use crate::errors::{ApiError, ApiResult, reply};
use crate::secrets::{self, Purpose, SiteSecrets, Versions};
use microfunnel_core::site_config::{self, SiteConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use worker::{Env, Request, Response, Result, RouteContext, wasm_bindgen::JsValue};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Batches per minute from one (hashed) IP.
    pub ip_per_minute: i64,
    /// Valid browser events per minute for the whole site.
    pub site_per_minute: i64,
    /// Valid authenticated server events per minute (a budget of their own).
    pub server_per_minute: i64,
    /// Webhook deliveries per minute, all URLs together.
    pub webhooks_per_minute: i64,
    /// Events one visitor's object keeps; the oldest beyond are folded into
    /// its score and dropped from it (they stay in D1).
    pub ledger_events: i64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            ip_per_minute: 120,
            site_per_minute: 12_000,
            server_per_minute: 12_000,
            webhooks_per_minute: 600,
            ledger_events: crate::visitor::LEDGER_CAP,
        }
    }
}

impl RateLimits {
    fn parse(v: Option<&Value>) -> std::result::Result<RateLimits, String> {
        let limits: RateLimits = match v {
            None | Some(Value::Null) => RateLimits::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("limits: {e}"))?,
        };
        if !(1..=1_000_000).contains(&limits.ip_per_minute)
            || !(1..=10_000_000).contains(&limits.site_per_minute)
            || !(1..=10_000_000).contains(&limits.server_per_minute)
            || !(1..=100_000).contains(&limits.webhooks_per_minute)
            || !(100..=50_000).contains(&limits.ledger_events)
        {
            return Err("limits: out of range".into());
        }
        Ok(limits)
    }
}

/// The site configuration fields of a document: the core's, and the
/// collector's own `limits`.
pub fn is_config_field(key: &str) -> bool {
    key == "limits" || site_config::FIELDS.contains(&key)
}

/// A site's configuration: the core's validated [`SiteConfig`] and the
/// collector's rate limits, stored together as one JSON document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub site: SiteConfig,
    pub limits: RateLimits,
}

impl Config {
    /// Parses and validates a configuration document (its `limits` here, the
    /// rest by the core); every error names its field.
    pub fn from_json(doc: &Value) -> std::result::Result<Config, String> {
        let mut m = match doc {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            _ => return Err("config: must be an object".into()),
        };
        let limits = RateLimits::parse(m.remove("limits").as_ref())?;
        let site = SiteConfig::from_json(&Value::Object(m)).map_err(|e| e.to_string())?;
        Ok(Config { site, limits })
    }

    /// This configuration with the given top-level fields replaced,
    /// validated as a whole.
    fn patched(&self, changes: &Map<String, Value>) -> std::result::Result<Config, String> {
        let mut changes = changes.clone();
        let limits = match changes.remove("limits") {
            Some(l) => RateLimits::parse(Some(&l))?,
            None => self.limits.clone(),
        };
        let site = self.site.patched(&changes).map_err(|e| e.to_string())?;
        Ok(Config { site, limits })
    }

    /// The stored document; [`Config::from_json`] reads it back equal.
    pub fn to_json(&self) -> Value {
        let mut doc = self.site.to_json();
        if let Value::Object(m) = &mut doc {
            m.insert("limits".into(), json!(self.limits));
        }
        doc
    }
}

/// `site_origins` (origin → site, what CORS asks of errors raised before the
/// site is known) from a site's stored row.
const ORIGINS_FROM_ROW: &str = "INSERT OR IGNORE INTO site_origins (origin, site_id) \
     SELECT json_each.value, sites.id FROM sites, json_each(sites.origins) WHERE sites.id = ?1";

fn invalid_config(message: String) -> ApiError {
    ApiError::bad_request("invalid_config", message)
}

/// The core checks a time zone's form; whether it exists is the runtime's
/// `Intl` to say, asked on every write.
fn check_zone(config: &Config) -> ApiResult<()> {
    let tz = config.site.timezone();
    if crate::zone::Zone::new(tz).is_none() {
        return Err(invalid_config(format!("timezone: `{tz}` is not a time zone this collector knows")));
    }
    Ok(())
}

/// A site as stored.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub origins: Vec<String>,
    pub secret_hash: String,
    /// What the signing and webhook secrets are derived from (`secrets`).
    pub secrets: SiteSecrets,
    /// What the site's backend signs its users' identities with (see
    /// `ingest`): empty = no browser identify is ever taken as proven.
    pub identity_secret: String,
    pub config: Config,
    pub webhooks: Vec<String>,
    pub retention_days: i64,
    pub updated_at: i64,
    /// `LOOPBACK_ORIGINS = "allow"` (the test environment only): any
    /// `http://127.0.0.1:*` / `http://localhost:*` origin is allowed too, so
    /// a local page on whatever port the harness picked can send.
    pub loopback_ok: bool,
}

impl Site {
    /// The site as an admin reads it back: everything but its secrets, and
    /// the script tag to install, loading from `collector` (this Worker's
    /// origin as the admin reached it).
    pub fn public_json(&self, collector: &str) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "origins": self.origins,
            "retention_days": self.retention_days,
            "webhooks": self.webhooks,
            "updated_at": self.updated_at,
            "config": self.config.to_json(),
            // The rule document in force (the defaults when `rules` is null).
            "effective_rules": self.config.site.rules().to_json(),
            "script_tag": self.config.site.script_tag(collector, &self.id),
            "suggested_conversions": self.config.site.suggested_conversions(),
        })
    }
}

#[derive(Deserialize)]
struct SiteRow {
    id: String,
    name: String,
    origins: String,
    secret_hash: String,
    signing_secret: String,
    signing_version: i64,
    signing_previous_until: i64,
    webhook_version: i64,
    webhook_previous_until: i64,
    identity_secret: String,
    config: String,
    webhooks: String,
    retention_days: i64,
    updated_at: i64,
}

impl Site {
    pub async fn load(env: &Env, id: &str) -> ApiResult<Site> {
        if !valid_site_id(id) {
            return Err(ApiError::new(404, "unknown_site", "no such site"));
        }
        let db = env.d1("DB")?;
        let row: Option<SiteRow> = db
            .prepare(
                "SELECT id, name, origins, secret_hash, signing_secret, signing_version, signing_previous_until, \
                 webhook_version, webhook_previous_until, identity_secret, config, webhooks, retention_days, \
                 updated_at FROM sites WHERE id = ?1",
            )
            .bind(&[id.into()])?
            .first(None)
            .await?;
        let Some(row) = row else {
            return Err(ApiError::new(404, "unknown_site", format!("no site `{id}`")));
        };
        // What was validated on write must read back; if it does not (a
        // manual edit, a rollback), the site fails closed: defaults would
        // silently turn options such as `merge_on_email` back on.
        let unreadable = |what: &str, e: serde_json::Error| {
            worker::console_error!("site {id}: stored {what} unreadable: {e}");
            ApiError::new(500, "config_unreadable", format!("the stored {what} of this site cannot be read"))
        };
        let doc: Value = serde_json::from_str(&row.config).map_err(|e| unreadable("config", e))?;
        let config = Config::from_json(&doc).map_err(|e| {
            worker::console_error!("site {id}: stored config invalid: {e}");
            ApiError::new(500, "config_unreadable", "the stored config of this site is not valid")
        })?;
        Ok(Site {
            id: row.id,
            name: row.name,
            origins: serde_json::from_str(&row.origins).map_err(|e| unreadable("origins", e))?,
            secret_hash: row.secret_hash,
            secrets: SiteSecrets {
                legacy: row.signing_secret,
                signing: Versions { version: row.signing_version, previous_until: row.signing_previous_until },
                webhook: Versions { version: row.webhook_version, previous_until: row.webhook_previous_until },
            },
            identity_secret: row.identity_secret,
            config,
            webhooks: serde_json::from_str(&row.webhooks).map_err(|e| unreadable("webhooks", e))?,
            retention_days: row.retention_days,
            updated_at: row.updated_at,
            loopback_ok: loopback_allowed(env),
        })
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) || (self.loopback_ok && is_loopback(origin))
    }
}

/// `LOOPBACK_ORIGINS = "allow"`: the test and dev environments only.
pub fn loopback_allowed(env: &Env) -> bool {
    env.var("LOOPBACK_ORIGINS").is_ok_and(|v| v.to_string() == "allow")
}

pub fn is_loopback(origin: &str) -> bool {
    ["http://127.0.0.1:", "http://localhost:"].iter().any(|p| {
        origin.strip_prefix(p).is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    })
}

pub fn valid_site_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// `scheme://host[:port]`, nothing else (an Origin header's shape).
fn valid_origin(o: &str) -> bool {
    let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && o.len() <= 255
            && r.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    })
}

/// The site's own fields of a creation body; the rest is its configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSite {
    id: String,
    #[serde(default)]
    name: Option<String>,
    origins: Vec<String>,
    #[serde(default)]
    retention_days: Option<i64>,
    #[serde(default)]
    webhooks: Vec<String>,
}

/// Splits a body into the site's own fields and its configuration fields;
/// a key that is neither is refused.
fn split_body(value: Value) -> ApiResult<(Value, Map<String, Value>)> {
    let Value::Object(mut m) = value else {
        return Err(ApiError::bad_request("invalid_site", "the body must be a JSON object"));
    };
    let config_keys: Vec<String> = m.keys().filter(|k| is_config_field(k)).cloned().collect();
    let config: Map<String, Value> = config_keys.into_iter().filter_map(|k| m.remove_entry(&k)).collect();
    Ok((Value::Object(m), config))
}

/// What both creation and update check outside the config: origins, webhook
/// URLs and the retention period.
fn check_site_fields(origins: &[String], webhooks: &[String], retention_days: i64, loopback_ok: bool) -> ApiResult<()> {
    if origins.is_empty() || origins.len() > 20 || !origins.iter().all(|o| valid_origin(o)) {
        return Err(ApiError::bad_request("invalid_site", "origins: 1 to 20 origins like https://example.com"));
    }
    if webhooks.len() > 5 {
        return Err(ApiError::bad_request("invalid_site", "webhooks: at most 5 URLs"));
    }
    if let Some((i, _)) = webhooks.iter().enumerate().find(|(_, u)| !crate::webhooks::allowed_url(u, loopback_ok)) {
        return Err(ApiError::bad_request(
            "invalid_site",
            format!("webhooks[{i}]: an https URL to a public host name (no IP address, no local or internal name)"),
        ));
    }
    if !(1..=3650).contains(&retention_days) {
        return Err(ApiError::bad_request("invalid_site", "retention_days: 1 to 3650"));
    }
    Ok(())
}

/// `POST /v1/sites` (admin): creates a site; answers its keys once.
pub async fn create(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    reply(create_inner(req, ctx.env).await)
}

async fn create_inner(mut req: Request, env: Env) -> ApiResult<Response> {
    access::require_super_admin(&req, &env).await?;
    let text = body::read_limited(&mut req, body::MAX_BODY).await?;
    let value: Value = body::parse_json(&text)?;
    let (fields, config) = split_body(value)?;
    let input: CreateSite =
        serde_json::from_value(fields).map_err(|e| ApiError::bad_request("invalid_site", e.to_string()))?;
    if !valid_site_id(&input.id) {
        return Err(ApiError::bad_request(
            "invalid_site",
            "id: 1 to 64 characters of a-z, 0-9, - and _, starting with a letter or digit",
        ));
    }
    let retention = input.retention_days.unwrap_or(395);
    check_site_fields(&input.origins, &input.webhooks, retention, loopback_allowed(&env))?;
    let config = Config::from_json(&Value::Object(config)).map_err(invalid_config)?;
    check_zone(&config)?;
    let server_key = format!("mfsk_{}", auth::random_hex(2)?);
    // Derived, not stored (`secrets`): version 1 of each direction.
    let signing_secret = secrets::issue(&env, &input.id, Purpose::Signing, 1)?;
    let webhook_secret = secrets::issue(&env, &input.id, Purpose::Webhook, 1)?;
    let identity_secret = format!("mfis_{}", auth::random_hex(2)?);
    let now = now_ms();
    let name = input.name.unwrap_or_else(|| input.id.clone());
    let db = env.d1("DB")?;
    let result = db
        .prepare(
            "INSERT INTO sites (id, name, origins, created_at, secret_hash, signing_secret, config, webhooks, \
             retention_days, updated_at, identity_secret, signing_version, webhook_version) \
             VALUES (?1, ?2, ?3, ?4, ?5, '', ?6, ?7, ?8, ?4, ?9, 1, 1) ON CONFLICT(id) DO NOTHING",
        )
        .bind(&[
            input.id.as_str().into(),
            name.as_str().into(),
            serde_json::to_string(&input.origins)?.into(),
            js_num(now),
            auth::sha256_hex(server_key.as_bytes()).into(),
            serde_json::to_string(&config.to_json())?.into(),
            serde_json::to_string(&input.webhooks)?.into(),
            js_num(retention),
            identity_secret.as_str().into(),
        ])?
        .run()
        .await?;
    let changes = result.meta()?.and_then(|m| m.changes).unwrap_or(0);
    if changes == 0 {
        return Err(ApiError::new(409, "site_exists", format!("site `{}` already exists", input.id)));
    }
    db.prepare(ORIGINS_FROM_ROW).bind(&[input.id.as_str().into()])?.run().await?;
    let request_id = access::request_id(&req);
    audit::record(&env, &request_id, &input.id, &Actor::SuperAdmin, "site.created", json!({})).await?;
    let body = json!({
        "id": input.id,
        "name": name,
        "origins": input.origins,
        "retention_days": retention,
        "webhooks": input.webhooks,
        "server_key": server_key,
        "signing_secret": signing_secret,
        "webhook_secret": webhook_secret,
        "identity_secret": identity_secret,
    });
    Ok(Response::from_json(&body)?.with_status(201))
}

/// A partial update of the site's own fields; configuration fields present
/// replace the stored ones (`rules: null` goes back to the default rules).
/// The id and the keys never change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSite {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    origins: Option<Vec<String>>,
    #[serde(default)]
    retention_days: Option<i64>,
    #[serde(default)]
    webhooks: Option<Vec<String>>,
}

/// `PATCH /v1/sites/{site}` (admin): changes origins, rules, CTAs, consent
/// policy, conversions, webhooks, limits or retention, validated exactly as
/// at creation. Optimistic: an update that raced another answers 409 and
/// changes nothing. Answers the site as `GET` does.
pub async fn update(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    reply(update_inner(req, &ctx.env, &id).await)
}

async fn update_inner(mut req: Request, env: &Env, id: &str) -> ApiResult<Response> {
    let actor = access::authorize(&req, env, id, Permission::Config).await?;
    body::check_json_media_type(&req)?;
    let text = body::read_limited(&mut req, body::MAX_BODY).await?;
    let value = body::parse_json(&text)?;
    let fields: Vec<String> = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let (own, changes) = split_body(value)?;
    let input: UpdateSite =
        serde_json::from_value(own).map_err(|e| ApiError::bad_request("invalid_site", e.to_string()))?;
    let mut site = Site::load(env, id).await?;
    if let Some(n) = input.name {
        if n.trim().is_empty() || n.len() > 200 {
            return Err(ApiError::bad_request("invalid_site", "name: 1 to 200 bytes"));
        }
        site.name = n;
    }
    site.origins = input.origins.unwrap_or(site.origins);
    site.webhooks = input.webhooks.unwrap_or(site.webhooks);
    site.retention_days = input.retention_days.unwrap_or(site.retention_days);
    check_site_fields(&site.origins, &site.webhooks, site.retention_days, site.loopback_ok)?;
    site.config = site.config.patched(&changes).map_err(invalid_config)?;
    check_zone(&site.config)?;
    let now = now_ms().max(site.updated_at + 1);
    let db = env.d1("DB")?;
    let results = db
        .batch(vec![
            db.prepare(
            "UPDATE sites SET name = ?2, origins = ?3, config = ?4, webhooks = ?5, retention_days = ?6, updated_at = ?7 \
             WHERE id = ?1 AND updated_at = ?8",
        )
        .bind(&[
            site.id.as_str().into(),
            site.name.as_str().into(),
            serde_json::to_string(&site.origins)?.into(),
            serde_json::to_string(&site.config.to_json())?.into(),
            serde_json::to_string(&site.webhooks)?.into(),
            js_num(site.retention_days),
            js_num(now),
            js_num(site.updated_at),
        ])?,
            // The origin index follows the stored row, whichever update won.
            db.prepare("DELETE FROM site_origins WHERE site_id = ?1").bind(&[site.id.as_str().into()])?,
            db.prepare(ORIGINS_FROM_ROW).bind(&[site.id.as_str().into()])?,
        ])
        .await?;
    let changed = results.first().and_then(|r| r.meta().ok().flatten()).and_then(|m| m.changes).unwrap_or(0);
    if changed == 0 {
        return Err(ApiError::new(409, "concurrent_update", "the site changed meanwhile: read it again and retry"));
    }
    crate::config::forget(&site.id).await;
    site.updated_at = now;
    let request_id = access::request_id(&req);
    audit::record(env, &request_id, &site.id, &actor, "config.changed", json!({"fields": fields})).await?;
    Ok(Response::from_json(&site.public_json(&collector_origin(&req)?))?)
}

/// `GET /v1/sites/{site}` (admin).
pub async fn get(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    reply(get_inner(&req, &ctx.env, &id).await)
}

async fn get_inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    access::authorize(req, env, id, Permission::Config).await?;
    Ok(Response::from_json(&Site::load(env, id).await?.public_json(&collector_origin(req)?))?)
}

/// This Worker's origin as the request reached it.
fn collector_origin(req: &Request) -> ApiResult<String> {
    Ok(req.url()?.origin().ascii_serialization())
}

pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// D1 binds numbers as JS numbers (f64): exact below 2^53.
pub fn js_num(n: i64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// `POST /v1/sites/{site}/secrets/rotate {"kind", "grace_seconds"?}`
/// (owner): a new secret, answered once. `signing` and `webhook` keep the
/// previous secret valid (accepted, resp. sent as a second signature) for the
/// grace period, 24 h unless given (0 to 7 days); `identity` takes effect at
/// once: signatures made with the old one stop proving identities, unproven
/// identifies still tag their own device.
pub async fn rotate_secret(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    reply(rotate_inner(req, &ctx.env, &id).await)
}

enum Rotation {
    Identity,
    Derived(Purpose, i64),
}

fn parse_rotation(v: &Value) -> ApiResult<Rotation> {
    let bad = |m: &str| ApiError::bad_request("invalid_rotation", m.to_owned());
    let Value::Object(o) = v else {
        return Err(bad("the body must be a JSON object {kind, grace_seconds?}"));
    };
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "kind" | "grace_seconds")) {
        return Err(ApiError::bad_request("invalid_rotation", format!("{k}: unknown field")));
    }
    let grace = match o.get("grace_seconds") {
        None => secrets::DEFAULT_GRACE_S,
        Some(g) => g
            .as_i64()
            .filter(|g| (0..=secrets::MAX_GRACE_S).contains(g))
            .ok_or_else(|| bad("grace_seconds: a whole number from 0 to 604800 (7 days)"))?,
    };
    match o.get("kind").and_then(Value::as_str) {
        Some("identity") if o.contains_key("grace_seconds") => {
            Err(bad("grace_seconds: an identity secret is replaced at once"))
        }
        Some("identity") => Ok(Rotation::Identity),
        Some("signing") => Ok(Rotation::Derived(Purpose::Signing, grace)),
        Some("webhook") => Ok(Rotation::Derived(Purpose::Webhook, grace)),
        Some(_) => Err(bad("kind: one of signing, webhook, identity")),
        None => Err(bad("kind: is required (signing, webhook or identity)")),
    }
}

async fn rotate_inner(mut req: Request, env: &Env, id: &str) -> ApiResult<Response> {
    let actor = access::authorize(&req, env, id, Permission::Config).await?;
    body::check_json_media_type(&req)?;
    let text = body::read_limited(&mut req, 1024).await?;
    let rotation = parse_rotation(&body::parse_json(&text)?)?;
    let site = Site::load(env, id).await?;
    let now = now_ms().max(site.updated_at + 1);
    let db = env.d1("DB")?;
    let (kind, answer) = match rotation {
        Rotation::Identity => {
            let secret = format!("mfis_{}", auth::random_hex(2)?);
            let result = db
                .prepare("UPDATE sites SET identity_secret = ?2, updated_at = ?3 WHERE id = ?1 AND updated_at = ?4")
                .bind(&[site.id.as_str().into(), secret.as_str().into(), js_num(now), js_num(site.updated_at)])?
                .run()
                .await?;
            if result.meta()?.and_then(|m| m.changes).unwrap_or(0) == 0 {
                return Err(ApiError::new(409, "concurrent_update", "the site changed meanwhile: retry"));
            }
            ("identity", json!({"site": site.id, "kind": "identity", "secret": secret}))
        }
        Rotation::Derived(purpose, grace_s) => {
            let (version_col, until_col) = purpose.columns();
            let current = match purpose {
                Purpose::Signing => &site.secrets.signing,
                Purpose::Webhook => &site.secrets.webhook,
            };
            let from = current.version;
            // Only one previous secret is kept: a second rotation inside the
            // grace period would cut off whoever still signs with the first.
            // Ending it now is a deliberate choice (`grace_seconds: 0`).
            if current.previous_until > now && grace_s > 0 {
                return Err(ApiError::new(
                    409,
                    "rotation_in_grace",
                    "the previous rotation is still in its grace period: wait for it to end, \
                     or rotate with grace_seconds 0 to revoke the previous secret now",
                ));
            }
            let next = from + 1;
            let secret = secrets::issue(env, &site.id, purpose, next)?;
            let until = now + grace_s * 1000;
            // Conditional on the version read: two racing rotations cannot
            // both answer a secret.
            let result = db
                .prepare(format!(
                    "UPDATE sites SET {version_col} = ?2, {until_col} = ?3, updated_at = ?4 \
                     WHERE id = ?1 AND {version_col} = ?5"
                ))
                .bind(&[site.id.as_str().into(), js_num(next), js_num(until), js_num(now), js_num(from)])?
                .run()
                .await?;
            if result.meta()?.and_then(|m| m.changes).unwrap_or(0) == 0 {
                return Err(ApiError::new(409, "concurrent_update", "the secret was rotated meanwhile: retry"));
            }
            let until_text = microfunnel_core::Timestamp::from_millis(until).map(|t| t.to_rfc3339());
            let answer = json!({"site": site.id, "kind": purpose.as_str(), "secret": secret,
                                "previous_valid_until": until_text});
            (purpose.as_str(), answer)
        }
    };
    let request_id = access::request_id(&req);
    audit::record(env, &request_id, &site.id, &actor, "secret.rotated", json!({"kind": kind})).await?;
    Ok(Response::from_json(&answer)?)
}
