//! What personal data looks like where it was not asked for, and how it is
//! reduced before anything is stored: an e-mail address written into a path,
//! a title, a property or a trait is redacted wherever it appears; a
//! User-Agent is cut to its browser family and major version once the bot
//! filter has read it.

/// What an e-mail address in free text becomes.
pub const EMAIL_MARK: &str = "[email]";

/// `s` with every e-mail-looking token (`local@domain.tld`, `@` also as
/// `%40`) replaced by [`EMAIL_MARK`]; `None` when there is none, so callers
/// allocate only when something changes.
pub fn redact_emails(s: &str) -> Option<String> {
    if !s.contains('@') && !s.contains("%40") {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(start) = rest.find(is_token_char) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let len = tail.find(|c: char| !is_token_char(c)).unwrap_or(tail.len());
        let token = &tail[..len];
        // A sentence's full stop is not part of the address.
        let kept = token.trim_end_matches(['.', '-']);
        if is_address(kept) {
            out.push_str(EMAIL_MARK);
            out.push_str(&token[kept.len()..]);
            changed = true;
        } else {
            out.push_str(token);
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Whether the whole value (trimmed) is one address: such a value is
/// dropped or keyed, not marked.
pub fn is_email_address(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.chars().all(is_token_char) && is_address(s)
}

/// Characters an address (or its percent-encoded form) is made of; anything
/// else — blanks, `/ ? & = # : ; ,` quotes, brackets — ends a token.
/// Non-ASCII counts as a letter (internationalised addresses) except blanks
/// and punctuation blocks: range checks, so the browser links no Unicode
/// tables (`char::is_alphanumeric` costs ~5 KB gzip there).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@' | '~') || is_foreign_letter(c)
}

fn is_foreign_letter(c: char) -> bool {
    !c.is_ascii()
        && !matches!(c, '\u{80}'..='\u{BF}' | '\u{D7}' | '\u{F7}' | '\u{2000}'..='\u{2BFF}' | '\u{3000}'..='\u{303F}' | '\u{FE30}'..='\u{FE6F}' | '\u{FF00}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}' | '\u{FF3B}'..='\u{FF40}' | '\u{FF5B}'..='\u{FF65}' | '\u{FEFF}')
}

/// `local@domain.tld`: both parts non-empty, a dotted domain whose labels are
/// non-empty and whose last label is at least two letters.
fn is_address(token: &str) -> bool {
    // `%40` is `@` (the only escape an address needs in a URL path).
    let decoded;
    let token = if token.contains('%') {
        decoded = token.split("%40").collect::<Vec<_>>().join("@");
        decoded.as_str()
    } else {
        token
    };
    let Some((local, domain)) = token.rsplit_once('@') else { return false };
    let local = local.rsplit('@').next().unwrap_or(local);
    if local.is_empty() || domain.is_empty() {
        return false;
    }
    let tld = domain.rsplit('.').next().unwrap_or("");
    domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty())
        && tld.chars().count() >= 2
        && tld.chars().all(|c| c.is_ascii_alphabetic() || is_foreign_letter(c))
}

/// A User-Agent reduced to what reports need once bots are filtered: the
/// browser family and its major version (`Chrome 131`, `Firefox 133`,
/// `Safari 18`, `Edge 131`), `Other` for the rest. The full string, with
/// its OS build and device model, is a fingerprinting aid and is not kept.
pub fn browser_family(ua: &str) -> String {
    // Order matters: Edge and Opera also say Chrome; Chrome also says Safari.
    const FAMILIES: [(&str, &str); 8] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
    ];
    for (marker, family) in FAMILIES {
        if let Some(at) = ua.find(marker) {
            if marker == "Version/" && !ua.contains("Safari/") {
                continue;
            }
            let major: String = ua[at + marker.len()..].chars().take_while(char::is_ascii_digit).take(4).collect();
            return if major.is_empty() { family.to_owned() } else { crate::text::cat(&[family, " ", &major]) };
        }
    }
    "Other".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_addresses_wherever_they_sit() {
        assert_eq!(redact_emails("/unsubscribe/jane@x.fr").as_deref(), Some("/unsubscribe/[email]"));
        assert_eq!(redact_emails("/u/jane%40x.fr?a=1").as_deref(), Some("/u/[email]?a=1"));
        assert_eq!(redact_emails("Write to Jane.Doe+law@cabinet.fr.").as_deref(), Some("Write to [email]."));
        assert_eq!(redact_emails("a@b.fr, c@d.com").as_deref(), Some("[email], [email]"));
        assert_eq!(redact_emails("«\u{a0}élodie@exemple.fr\u{a0}»").as_deref(), Some("«\u{a0}[email]\u{a0}»"));
        assert_eq!(redact_emails("メール：taro@example.jp。").as_deref(), Some("メール：[email]。"));
    }

    #[test]
    fn leaves_what_is_not_an_address() {
        for s in ["@handle", "user@localhost", "price @ 10.50", "a@b.1", "no at sign", "x@.fr", "@x.fr", "", "%40"] {
            assert_eq!(redact_emails(s), None, "{s:?}");
        }
    }

    #[test]
    fn browser_family_keeps_family_and_major_only() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.85 Safari/537.36";
        assert_eq!(browser_family(chrome), "Chrome 131");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70";
        assert_eq!(browser_family(edge), "Edge 131");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
        assert_eq!(browser_family(safari), "Safari 18");
        assert_eq!(browser_family("Mozilla/5.0 (X11; rv:133.0) Gecko/20100101 Firefox/133.0"), "Firefox 133");
        assert_eq!(browser_family("something else"), "Other");
        assert_eq!(browser_family(""), "Other");
    }
}
