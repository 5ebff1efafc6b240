//! Page-path globs for page matchers: `*` (any run of characters except `/`),
//! `**` (any run, `/` included), `?` (one character except `/`), everything
//! else literal. Hand-written rather than a crate because the core ships to
//! every visitor's browser; matching runs a bit-parallel NFA over at most
//! [`MAX_TOKENS`] tokens, so it never backtracks and never allocates.

/// The longest pattern, in tokens (one per literal character or wildcard):
/// states are bits of a `u128`, one more than there are tokens.
pub(crate) const MAX_TOKENS: usize = 127;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**`
    GlobStar,
}

/// A compiled path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: String,
    tokens: Vec<Token>,
    /// Literal characters: the more, the more specific (see `Rules` ordering).
    literals: usize,
}

impl Glob {
    /// Compiles a pattern; the error says what rule it broke.
    pub(crate) fn new(pattern: &str) -> Result<Glob, String> {
        if !pattern.starts_with('/') {
            return Err("must start with /".into());
        }
        if pattern.contains("***") {
            return Err("`***` is not a wildcard (use `*` or `**`)".into());
        }
        if pattern.chars().any(|c| c.is_control()) {
            return Err("must not contain control characters".into());
        }
        let glob = Glob::compile(pattern);
        if glob.tokens.len() > MAX_TOKENS {
            let max = crate::text::int(MAX_TOKENS as i64);
            return Err(crate::text::cat(&["must be at most ", &max, " characters and wildcards"]));
        }
        Ok(glob)
    }

    /// Compiles without the checks of [`Glob::new`] (for the built-in rules).
    pub(crate) fn compile(pattern: &str) -> Glob {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    Token::GlobStar
                }
                '*' => Token::Star,
                '?' => Token::One,
                c => Token::Char(c),
            };
            tokens.push(token);
        }
        let literals = tokens.iter().filter(|t| matches!(t, Token::Char(_))).count();
        Glob { pattern: pattern.to_owned(), tokens, literals }
    }

    pub(crate) fn pattern(&self) -> &str {
        &self.pattern
    }

    pub(crate) fn literals(&self) -> usize {
        self.literals
    }

    /// Whether the whole of `path` matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        // Bit i set = the first i tokens have matched the text read so far.
        let len = self.tokens.len();
        if len > MAX_TOKENS {
            return false; // only `compile` can build one, and never does
        }
        let mut states = self.closure(1);
        for c in path.chars() {
            let mut next = 0u128;
            let mut rest = states;
            while rest != 0 {
                let i = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                match self.tokens.get(i) {
                    Some(Token::Char(l)) if *l == c => next |= 1u128 << (i + 1),
                    Some(Token::One) if c != '/' => next |= 1u128 << (i + 1),
                    Some(Token::Star) if c != '/' => next |= 1u128 << i,
                    Some(Token::GlobStar) => next |= 1u128 << i,
                    _ => {}
                }
            }
            states = self.closure(next);
            if states == 0 {
                return false;
            }
        }
        states & (1u128 << len) != 0
    }

    /// Adds the states reachable by letting stars match nothing.
    fn closure(&self, mut states: u128) -> u128 {
        for (i, t) in self.tokens.iter().enumerate() {
            if matches!(t, Token::Star | Token::GlobStar) && states & (1u128 << i) != 0 {
                states |= 1u128 << (i + 1);
            }
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
        assert!(m("/pricing", "/pricing"));
        assert!(!m("/pricing", "/pricing/x"));
        assert!(m("/blog/*", "/blog/post"));
        assert!(m("/blog/*", "/blog/"));
        assert!(!m("/blog/*", "/blog/2026/post"));
        assert!(m("/blog/**", "/blog/2026/post"));
        assert!(!m("/blog/**", "/blog"));
        assert!(m("/a/*/c", "/a/b/c"));
        assert!(!m("/a/*/c", "/a/b/x/c"));
        assert!(m("/a/**/c", "/a/b/x/c"));
        assert!(m("/p?ge", "/page"));
        assert!(!m("/p?ge", "/p/ge"));
        assert!(m("/*-pricing", "/team-pricing"));
        assert!(m("/**a**a**a**b", "/aaaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("/**a**a**a**b", "/aaaaaaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(Glob::new("pricing").is_err());
        assert!(Glob::new("/a/***").is_err());
        assert!(Glob::new(&format!("/{}", "a".repeat(200))).is_err());
        assert!(Glob::new(&format!("/{}", "a".repeat(126))).is_ok());
    }
}
