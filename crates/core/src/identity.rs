//! Identity keys derived the same way on every side. An e-mail address is
//! personal data that stitching and erasure only need as a key: it travels
//! and is stored as the SHA-256 of its normalised form (`email_sha256`),
//! computed in the browser before anything leaves the device, and again at
//! the edge for server events and older clients — by this one function.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The trait an e-mail address is replaced by.
pub const EMAIL_HASH_TRAIT: &str = "email_sha256";

/// The SHA-256 (lower-case hex) of the trimmed, lower-cased address, or
/// `None` for what is not an address (`local@domain`, both parts non-empty,
/// no blanks inside): a blank or placeholder value must never become a key
/// that would join unrelated visitors. Lower-casing is `text::lowercase`
/// (std's mapping for Latin, Greek and Cyrillic), so the browser needs no
/// Unicode tables and both sides agree to the bit.
pub fn email_sha256(email: &str) -> Option<String> {
    let email = email.trim();
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || email.chars().any(char::is_whitespace) {
        return None;
    }
    let digest = Sha256::digest(crate::text::lowercase(email).as_bytes());
    let mut hex = String::with_capacity(64);
    crate::text::push_hex(&mut hex, &digest);
    Some(hex)
}

/// Whether `h` is a key `email_sha256` could have made (64 lower-case hex).
pub fn is_email_hash(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Replaces an `email` trait — in any letter case: `Email`, `EMAIL` — by
/// its `email_sha256` (dropped when it is not an address), and drops a sent
/// `email_sha256` that is not a valid key.
pub fn pseudonymise(traits: &mut Map<String, Value>) {
    // `email` itself first, then the other spellings in key order.
    let mut hash = traits.remove("email").as_ref().and_then(Value::as_str).and_then(email_sha256);
    while let Some(key) = traits.keys().find(|k| k.eq_ignore_ascii_case("email")).cloned() {
        let h = traits.remove(&key).as_ref().and_then(Value::as_str).and_then(email_sha256);
        hash = hash.or(h);
    }
    if let Some(h) = hash {
        // An address wins over a sent key.
        traits.insert(EMAIL_HASH_TRAIT.into(), Value::String(h));
    }
    if traits.get(EMAIL_HASH_TRAIT).is_some_and(|v| !v.as_str().is_some_and(is_email_hash)) {
        traits.remove(EMAIL_HASH_TRAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_the_normalised_address() {
        // `printf '%s' jane.doe@example.com | sha256sum`
        let want = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d";
        assert_eq!(email_sha256("  Jane.Doe@Example.COM ").as_deref(), Some(want));
        assert!(is_email_hash(want));
        assert!(!is_email_hash(&want.to_uppercase()));
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in ["", "   ", "none", "@example.com", "jane@", "jane doe@example.com", "n/a"] {
            assert_eq!(email_sha256(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pseudonymise_replaces_and_validates() {
        let mut t = Map::new();
        t.insert("email".into(), Value::String("A@B.fr".into()));
        t.insert("plan".into(), Value::String("pro".into()));
        pseudonymise(&mut t);
        assert!(t.get("email").is_none());
        assert_eq!(t.get(EMAIL_HASH_TRAIT).and_then(Value::as_str), email_sha256("a@b.fr").as_deref());
        let mut t = Map::new();
        t.insert("email".into(), Value::String("   ".into()));
        t.insert(EMAIL_HASH_TRAIT.into(), Value::String("ABC".into()));
        pseudonymise(&mut t);
        assert!(t.is_empty());
    }
}
