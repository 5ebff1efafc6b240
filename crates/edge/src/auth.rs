//! Credential primitives (who may do what is `access`): per-site server keys (stored as
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

/// The per-day key of the IP hash: HMAC(IP_HASH_KEY, day). The raw IP is
/// never stored; the hash changes every UTC day. Without the secret the
/// Worker refuses (503): a public fallback key would make the hashes
/// reversible by hashing every IPv4 address.
pub fn ip_hash(env: &Env, ip: &str, day: i64) -> ApiResult<String> {
    let Some(secret) = env.var("IP_HASH_KEY").ok().map(|v| v.to_string()).filter(|k| !k.is_empty()) else {
        return Err(ApiError::new(503, "ip_hash_key_missing", "no IP_HASH_KEY is configured on this Worker"));
    };
    let day_key = hmac_sha256(secret.as_bytes(), format!("ip-salt:{day}").as_bytes());
    let full = hmac_sha256(&day_key, client_group(ip).as_bytes());
    Ok(hex(full.get(..16).unwrap_or(&full)))
}

/// The unit a per-address limit counts: an IPv4 address, or an IPv6 /64
/// (one subscriber's prefix: rotating addresses inside it is free).
pub fn client_group(ip: &str) -> String {
    match ip.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.trim().to_owned(),
    }
}

/// Whether `signature` is the site's identity signature of `value` (a
/// userId, or an e-mail's SHA-256): lowercase hex of HMAC-SHA256 under the
/// site's identity secret. A site without a secret proves nothing.
pub fn identity_proven(secret: &str, value: &str, signature: &str) -> bool {
    !secret.is_empty()
        && constant_time_eq(hex(&hmac_sha256(secret.as_bytes(), value.as_bytes())).as_bytes(), signature.as_bytes())
}

/// `n` random bytes as hex, from `crypto.getRandomValues` (through
/// `crypto.randomUUID`, which workerd provides).
pub fn random_hex(uuids: usize) -> ApiResult<String> {
    let mut out = String::new();
    for _ in 0..uuids {
        out.extend(random_uuid()?.chars().filter(|c| *c != '-'));
    }
    if out.len() < 32 * uuids {
        return Err(internal("randomUUID returned nothing"));
    }
    Ok(out)
}

/// A version-4 UUID from `crypto.randomUUID` (lower-case, hyphenated).
pub fn random_uuid() -> ApiResult<String> {
    use worker::js_sys::{Function, Reflect, global};
    use worker::wasm_bindgen::JsCast;
    let crypto = Reflect::get(&global(), &"crypto".into()).map_err(|_| internal("no crypto"))?;
    let f = Reflect::get(&crypto, &"randomUUID".into()).map_err(|_| internal("no randomUUID"))?;
    let f: Function = f.dyn_into().map_err(|_| internal("randomUUID is not a function"))?;
    let v = f.call0(&crypto).map_err(|_| internal("randomUUID failed"))?;
    v.as_string().ok_or_else(|| internal("randomUUID returned nothing"))
}

fn internal(what: &str) -> ApiError {
    worker::console_error!("random: {what}");
    ApiError::new(500, "internal", "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_grouped_by_its_64_bit_prefix() {
        assert_eq!(client_group("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(client_group("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(client_group("2001:db8:1:3::1"), client_group("2001:db8:1:2::1"));
        assert_eq!(client_group("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(client_group(" 203.0.113.9 "), "203.0.113.9");
    }

    #[test]
    fn an_identity_is_proven_only_by_the_secrets_own_signature() {
        let sig = hex(&hmac_sha256(b"mfis_k", b"user-1"));
        assert!(identity_proven("mfis_k", "user-1", &sig));
        assert!(!identity_proven("mfis_k", "user-2", &sig));
        assert!(!identity_proven("mfis_other", "user-1", &sig));
        assert!(!identity_proven("", "user-1", &hex(&hmac_sha256(b"", b"user-1"))));
    }
}
