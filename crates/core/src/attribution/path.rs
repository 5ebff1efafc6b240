//! A journey's channels as one string (`Paid Search > Email > Direct`): the
//! form paths are stored, reported and exchanged in (ChannelAttribution's).
//! One separator, written and split here only.

use std::fmt;

/// Steps joined by [`JourneyPath::SEPARATOR`]. Steps are trimmed and empty
/// ones skipped, so splitting gives back what was joined.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JourneyPath(String);

impl JourneyPath {
    pub const SEPARATOR: &'static str = " > ";

    /// The path of these steps, in order.
    pub fn of<'a>(steps: impl IntoIterator<Item = &'a str>) -> JourneyPath {
        let mut s = String::new();
        for step in steps.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
            if !s.is_empty() {
                s.push_str(Self::SEPARATOR);
            }
            s.push_str(step);
        }
        JourneyPath(s)
    }

    /// A stored or received path. Lenient on spacing (`A>B` is `A > B`), as
    /// ChannelAttribution is.
    pub fn parse(text: &str) -> JourneyPath {
        JourneyPath::of(text.split('>'))
    }

    pub fn steps(&self) -> impl Iterator<Item = &str> {
        self.0.split(Self::SEPARATOR).filter(|s| !s.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JourneyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for JourneyPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_splits_with_one_separator() {
        let p = JourneyPath::of(["Paid Search", " Email ", "", "Direct"]);
        assert_eq!(p.as_str(), "Paid Search > Email > Direct");
        assert_eq!(p.steps().collect::<Vec<_>>(), ["Paid Search", "Email", "Direct"]);
        assert_eq!(JourneyPath::parse("Paid Search>Email >  Direct"), p);
        assert!(JourneyPath::parse("").is_empty());
        assert_eq!(JourneyPath::parse("").steps().count(), 0);
    }
}
