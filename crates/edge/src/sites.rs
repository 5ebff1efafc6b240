//! Sites: `POST /v1/sites` (admin) creates one with its origins, rules,
//! conversion definitions, keys and webhook URLs; [`Site::load`] reads one for
//! every other endpoint. The site's configuration is validated by the core
//! when it is written, so reading it back cannot fail on a rule.

use crate::access::{self, Actor, Permission};
use crate::audit;
use crate::auth;
use crate::body;
use crate::errors::{ApiError, ApiResult, reply};
use crate::secrets::{self, Purpose, SiteSecrets, Versions};
use microfunnel_core::ChannelRules;
use microfunnel_core::consent::MinimisePolicy;
use microfunnel_core::conversion::Definitions;
use microfunnel_core::scoring::Rules;
use microfunnel_core::url::SanitiseRules;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use worker::{Env, Request, Response, Result, RouteContext, wasm_bindgen::JsValue};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    pub cookieless_pageviews: bool,
    pub respect_dnt: bool,
    pub sanitise: Value,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig { cookieless_pageviews: false, respect_dnt: true, sanitise: json!({}) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { ip_per_minute: 120, site_per_minute: 12_000, server_per_minute: 12_000, webhooks_per_minute: 600 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributionConfig {
    /// A journey with no touch and no conversion for this long is closed as
    /// a non-converting path (`nulls` of the Markov and Shapley inputs).
    pub journey_timeout_hours: f64,
    /// An `identify` whose e-mail (as its SHA-256) is already linked to
    /// another visitor joins that visitor: the same person on another device,
    /// for sites whose visitors leave an e-mail but never log in. Off for a
    /// site where people share addresses (a family's, an office's).
    pub merge_on_email: bool,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        AttributionConfig { journey_timeout_hours: 720.0, merge_on_email: true }
    }
}

/// What an admin configures; stored as JSON in `sites.config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// A scoring rule document (`None`: the core's default rules).
    pub rules: Option<Value>,
    /// CTA variants per tier, passed through to the browser.
    pub cta: Value,
    pub consent: ConsentConfig,
    /// `ChannelRules` (overrides, internal hosts).
    pub channels: Value,
    /// Validated by the core as they are read (`conversion::Definitions`).
    pub conversions: Definitions,
    pub limits: RateLimits,
    pub attribution: AttributionConfig,
}

impl SiteConfig {
    pub fn rules(&self) -> Rules {
        self.rules.as_ref().and_then(|r| Rules::from_json_value(r).ok()).unwrap_or_else(Rules::default_rules)
    }

    pub fn minimise_policy(&self) -> MinimisePolicy {
        MinimisePolicy {
            cookieless_pageviews: self.consent.cookieless_pageviews,
            sanitise: serde_json::from_value::<SanitiseRules>(self.consent.sanitise.clone()).unwrap_or_default(),
        }
    }

    pub fn channel_rules(&self) -> ChannelRules {
        if self.channels.is_null() {
            return ChannelRules::default();
        }
        serde_json::from_value(self.channels.clone()).unwrap_or_default()
    }

    /// Checks everything the core will later rely on.
    pub(crate) fn validate(&self) -> ApiResult<()> {
        let bad = |m: String| Err(ApiError::bad_request("invalid_config", m));
        if let Some(r) = &self.rules
            && let Err(e) = Rules::from_json_value(r)
        {
            return bad(format!("rules: {e}"));
        }
        // A conversion's stage must be one of the rules' (which a PATCH of
        // either may break).
        if let Err(e) = self.conversions.stages(&self.rules()) {
            return bad(e.to_string());
        }
        if let Err(e) = serde_json::from_value::<SanitiseRules>(self.consent.sanitise.clone()) {
            return bad(format!("consent.sanitise: {e}"));
        }
        if !self.channels.is_null()
            && let Err(e) = serde_json::from_value::<ChannelRules>(self.channels.clone())
        {
            return bad(format!("channels: {e}"));
        }
        if !(1..=1_000_000).contains(&self.limits.ip_per_minute)
            || !(1..=10_000_000).contains(&self.limits.site_per_minute)
            || !(1..=10_000_000).contains(&self.limits.server_per_minute)
            || !(1..=100_000).contains(&self.limits.webhooks_per_minute)
        {
            return bad("limits: out of range".into());
        }
        let t = self.attribution.journey_timeout_hours;
        if !(t.is_finite() && t > 0.0 && t <= 8760.0) {
            return bad("attribution.journey_timeout_hours: more than 0, at most 8760".into());
        }
        Ok(())
    }
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
    pub config: SiteConfig,
    pub webhooks: Vec<String>,
    pub retention_days: i64,
    pub updated_at: i64,
    /// `LOOPBACK_ORIGINS = "allow"` (the test environment only): any
    /// `http://127.0.0.1:*` / `http://localhost:*` origin is allowed too, so
    /// a local page on whatever port the harness picked can send.
    pub loopback_ok: bool,
}

impl Site {
    /// The site as an admin reads it back: everything but its secrets.
    pub fn public_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "origins": self.origins,
            "retention_days": self.retention_days,
            "webhooks": self.webhooks,
            "updated_at": self.updated_at,
            "config": self.config,
            // The rule document in force (the defaults when `rules` is null).
            "effective_rules": self.config.rules().to_json(),
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
        let config: SiteConfig = serde_json::from_str(&row.config).map_err(|e| unreadable("config", e))?;
        config.validate().map_err(|e| {
            worker::console_error!("site {id}: stored config invalid: {}", e.message);
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
    // `SiteConfig`'s fields, at the top level of the body.
    #[serde(default)]
    rules: Option<Value>,
    #[serde(default)]
    cta: Option<Value>,
    #[serde(default)]
    consent: Option<ConsentConfig>,
    #[serde(default)]
    channels: Option<Value>,
    #[serde(default)]
    conversions: Option<Definitions>,
    #[serde(default)]
    limits: Option<RateLimits>,
    #[serde(default)]
    attribution: Option<AttributionConfig>,
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
    let input: CreateSite =
        serde_json::from_value(value).map_err(|e| ApiError::bad_request("invalid_site", e.to_string()))?;
    if !valid_site_id(&input.id) {
        return Err(ApiError::bad_request(
            "invalid_site",
            "id: 1 to 64 characters of a-z, 0-9, - and _, starting with a letter or digit",
        ));
    }
    let retention = input.retention_days.unwrap_or(395);
    check_site_fields(&input.origins, &input.webhooks, retention, loopback_allowed(&env))?;
    let config = SiteConfig {
        rules: input.rules,
        cta: input.cta.unwrap_or(Value::Null),
        consent: input.consent.unwrap_or_default(),
        channels: input.channels.unwrap_or(Value::Null),
        conversions: input.conversions.unwrap_or_default(),
        limits: input.limits.unwrap_or_default(),
        attribution: input.attribution.unwrap_or_default(),
    };
    config.validate()?;
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
            serde_json::to_string(&config)?.into(),
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

/// A partial update: every field present replaces the stored one (`rules:
/// null` goes back to the default rules); the id and the keys never change.
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
    #[serde(default, deserialize_with = "present")]
    rules: Option<Option<Value>>,
    #[serde(default)]
    cta: Option<Value>,
    #[serde(default)]
    consent: Option<ConsentConfig>,
    #[serde(default)]
    channels: Option<Value>,
    #[serde(default)]
    conversions: Option<Definitions>,
    #[serde(default)]
    limits: Option<RateLimits>,
    #[serde(default)]
    attribution: Option<AttributionConfig>,
}

/// Tells a field sent as `null` (Some(None)) from one left out (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<Value>>, D::Error> {
    Option::<Value>::deserialize(d).map(|v| Some(v.filter(|v| !v.is_null())))
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
    let input: UpdateSite =
        serde_json::from_value(value).map_err(|e| ApiError::bad_request("invalid_site", e.to_string()))?;
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
    let c = &mut site.config;
    if let Some(r) = input.rules {
        c.rules = r;
    }
    c.cta = input.cta.unwrap_or(std::mem::take(&mut c.cta));
    c.consent = input.consent.unwrap_or(std::mem::take(&mut c.consent));
    c.channels = input.channels.unwrap_or(std::mem::take(&mut c.channels));
    c.conversions = input.conversions.unwrap_or(std::mem::take(&mut c.conversions));
    c.limits = input.limits.unwrap_or(std::mem::take(&mut c.limits));
    c.attribution = input.attribution.unwrap_or(std::mem::take(&mut c.attribution));
    c.validate()?;
    let now = now_ms().max(site.updated_at + 1);
    let result = env
        .d1("DB")?
        .prepare(
            "UPDATE sites SET name = ?2, origins = ?3, config = ?4, webhooks = ?5, retention_days = ?6, updated_at = ?7 \
             WHERE id = ?1 AND updated_at = ?8",
        )
        .bind(&[
            site.id.as_str().into(),
            site.name.as_str().into(),
            serde_json::to_string(&site.origins)?.into(),
            serde_json::to_string(&site.config)?.into(),
            serde_json::to_string(&site.webhooks)?.into(),
            js_num(site.retention_days),
            js_num(now),
            js_num(site.updated_at),
        ])?
        .run()
        .await?;
    if result.meta()?.and_then(|m| m.changes).unwrap_or(0) == 0 {
        return Err(ApiError::new(409, "concurrent_update", "the site changed meanwhile: read it again and retry"));
    }
    site.updated_at = now;
    let request_id = access::request_id(&req);
    audit::record(env, &request_id, &site.id, &actor, "config.changed", json!({"fields": fields})).await?;
    Ok(Response::from_json(&site.public_json())?)
}

/// `GET /v1/sites/{site}` (admin).
pub async fn get(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let id = ctx.param("site").cloned().unwrap_or_default();
    reply(get_inner(&req, &ctx.env, &id).await)
}

async fn get_inner(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    access::authorize(req, env, id, Permission::Config).await?;
    Ok(Response::from_json(&Site::load(env, id).await?.public_json())?)
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
