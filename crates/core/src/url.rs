//! URL minimisation on plain strings: personal query parameters are removed
//! before a URL is stored or sent. The core takes URLs as text (the browser
//! has its own URL parser; pulling one into the wasm would cost its IDNA
//! tables), so this module only splits at `?`, `&`, `=` and `#`.

use serde::{Deserialize, Serialize};

/// Parameter names (normalised: lower case, letters and digits only) that are
/// removed wherever they appear.
pub const PERSONAL_PARAMS: &[&str] = &[
    "email",
    "mail",
    "emailaddress",
    "phone",
    "tel",
    "telephone",
    "mobile",
    "mobilephone",
    "name",
    "firstname",
    "fname",
    "lastname",
    "lname",
    "fullname",
    "surname",
    "username",
    "user",
    "login",
    "address",
    "street",
    "postcode",
    "zip",
    "zipcode",
    "postalcode",
    "birthdate",
    "dob",
    "birthday",
    "token",
    "accesstoken",
    "idtoken",
    "refreshtoken",
    "auth",
    "authorization",
    "password",
    "pass",
    "passwd",
    "pwd",
    "secret",
    "apikey",
    "key",
    "ssn",
    "nir",
    "iban",
    "card",
    "cardnumber",
    "creditcard",
    "cc",
    "cvv",
    "session",
    "sessionid",
    "sid",
    "code",
    "otp",
];

/// Suffixes that mark a parameter as personal whatever precedes them
/// (`contact_email`, `reset_token`, `user_phone`).
const PERSONAL_SUFFIXES: &[&str] = &["email", "mail", "phone", "token", "password", "secret", "ssn"];

/// Site-specific additions and exceptions to [`PERSONAL_PARAMS`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanitiseRules {
    /// More parameter names to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Names to keep even though the default list would remove them
    /// (e.g. a site whose `name` parameter is a product name).
    #[serde(default)]
    pub keep: Vec<String>,
}

/// True for an absolute `http://` or `https://` URL with a non-empty host.
pub fn is_http_url(url: &str) -> bool {
    host_of(url).is_some_and(|h| !h.is_empty())
}

/// The lower-cased host of an absolute http(s) URL, without port or userinfo.
pub fn host_of(url: &str) -> Option<String> {
    let lower_scheme = url.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower_scheme.starts_with("https://") {
        url.get(8..)?
    } else if lower_scheme.starts_with("http://") {
        url.get(7..)?
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Removes personal query parameters (by name, and any whose value looks like
/// an e-mail address) from the query and from a query-like fragment
/// (`#/route?email=…`, `#access_token=…`). Everything else is kept verbatim and
/// in order.
pub fn sanitise(url: &str, rules: &SanitiseRules) -> String {
    let (before_hash, fragment) = match url.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (url, None),
    };
    let mut out = strip_query(before_hash, rules);
    if let Some(f) = fragment {
        out.push('#');
        if let Some((route, q)) = f.split_once('?') {
            out.push_str(route);
            let kept = filter_pairs(q, rules);
            if !kept.is_empty() {
                out.push('?');
                out.push_str(&kept);
            }
        } else if f.contains('=') {
            out.push_str(&filter_pairs(f, rules));
        } else {
            out.push_str(f);
        }
        if out.ends_with('#') {
            out.pop();
        }
    }
    out
}

fn strip_query(url: &str, rules: &SanitiseRules) -> String {
    match url.split_once('?') {
        None => url.to_owned(),
        Some((base, q)) => {
            let kept = filter_pairs(q, rules);
            if kept.is_empty() { base.to_owned() } else { crate::text::cat(&[base, "?", &kept]) }
        }
    }
}

fn filter_pairs(query: &str, rules: &SanitiseRules) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            !is_personal(&decode(k), &decode(v), rules)
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn normalise(key: &str) -> String {
    key.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

fn is_personal(key: &str, value: &str, rules: &SanitiseRules) -> bool {
    let k = normalise(key);
    if rules.keep.iter().any(|x| normalise(x) == k) {
        return false;
    }
    PERSONAL_PARAMS.contains(&k.as_str())
        || PERSONAL_SUFFIXES.iter().any(|s| k.ends_with(s))
        || rules.remove.iter().any(|x| normalise(x) == k)
        || looks_like_email(value)
}

/// `local@domain.tld` anywhere in the value.
pub fn looks_like_email(value: &str) -> bool {
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    })
}

/// Percent-decoding (and `+` as space) for matching only; invalid escapes are
/// kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_personal_and_keeps_the_rest() {
        let r = SanitiseRules::default();
        assert_eq!(
            sanitise("https://a.fr/p?utm_source=x&email=a%40b.fr&q=1#top", &r),
            "https://a.fr/p?utm_source=x&q=1#top"
        );
        assert_eq!(sanitise("https://a.fr/?contact_email=x", &r), "https://a.fr/");
        assert_eq!(sanitise("https://a.fr/#access_token=abc&state=1", &r), "https://a.fr/#state=1");
    }

    #[test]
    fn decode_handles_truncated_escapes() {
        assert_eq!(decode("a%4"), "a%4");
        assert_eq!(decode("%41%zz+"), "A%zz ");
        assert_eq!(decode("%"), "%");
    }
}
