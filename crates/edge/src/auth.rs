//! Credentials: the admin bearer token, per-site server keys (stored as
//! SHA-256, compared in constant time), HMAC-SHA256 signatures, the daily IP
//! salt, and random secrets from the runtime's CSPRNG.

use crate::errors::{ApiError, ApiResult};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use worker::{Env, Request};

type HmacSha256 = hmac::Hmac<Sha256>;

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length; kept total anyway.
        Err(_) => Sha256::digest([key, data].concat()).to_vec(),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Equality whose time depends only on the lengths, not on where the inputs
/// differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get("Authorization").ok().flatten()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Admin endpoints: `Authorization: Bearer $ADMIN_TOKEN`. With no token
/// configured they are closed (503), never open.
pub fn require_admin(req: &Request, env: &Env) -> ApiResult<()> {
    let Some(expected) = env.var("ADMIN_TOKEN").ok().map(|v| v.to_string()).filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(503, "admin_disabled", "no ADMIN_TOKEN is configured on this Worker"));
    };
    let Some(given) = bearer(req) else {
        return Err(ApiError::new(401, "unauthorized", "an admin bearer token is required"));
    };
    // Compare digests so the comparison's length is fixed too.
    if constant_time_eq(&Sha256::digest(given.as_bytes()), &Sha256::digest(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(403, "forbidden", "the admin token is not valid"))
    }
}

/// The per-day key of the IP hash: HMAC(IP_HASH_KEY, day). The raw IP is
/// never stored; the hash changes every UTC day.
pub fn ip_hash(env: &Env, ip: &str, day: i64) -> String {
    let secret = env.var("IP_HASH_KEY").map(|v| v.to_string()).unwrap_or_else(|_| "microfunnel-ip-key".to_owned());
    let day_key = hmac_sha256(secret.as_bytes(), format!("ip-salt:{day}").as_bytes());
    let full = hmac_sha256(&day_key, ip.as_bytes());
    hex(full.get(..16).unwrap_or(&full))
}

/// `n` random bytes as hex, from `crypto.getRandomValues` (through
/// `crypto.randomUUID`, which workerd provides).
pub fn random_hex(uuids: usize) -> ApiResult<String> {
    use worker::js_sys::{Function, Reflect, global};
    use worker::wasm_bindgen::JsCast;
    let crypto = Reflect::get(&global(), &"crypto".into()).map_err(|_| internal("no crypto"))?;
    let f = Reflect::get(&crypto, &"randomUUID".into()).map_err(|_| internal("no randomUUID"))?;
    let f: Function = f.dyn_into().map_err(|_| internal("randomUUID is not a function"))?;
    let mut out = String::new();
    for _ in 0..uuids {
        let v = f.call0(&crypto).map_err(|_| internal("randomUUID failed"))?;
        out.extend(v.as_string().unwrap_or_default().chars().filter(|c| *c != '-'));
    }
    if out.len() < 32 * uuids {
        return Err(internal("randomUUID returned nothing"));
    }
    Ok(out)
}

fn internal(what: &str) -> ApiError {
    worker::console_error!("random: {what}");
    ApiError::new(500, "internal", "internal error")
}
