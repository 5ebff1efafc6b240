//! The validated [`Rules`] and the types they are made of; `document` reads
//! and writes them.
//!
//! A `Rules` exists only once a whole file passed: nothing downstream
//! re-checks or guesses.

use super::glob::Glob;
use serde::Serialize;
use std::fmt;

/// The fit traits a rule may read. Minimisation: nothing else about a person
/// is used for scoring, so nothing else needs to be collected.
pub(crate) const TRAITS: [&str; 5] = ["role", "industry", "company_size", "region", "budget"];

/// Upper bounds that keep a rule file readable and scoring cheap.
pub(crate) const MAX_ACTIONS: usize = 200;
pub(crate) const MAX_FIT_RULES: usize = 100;
pub(crate) const MAX_TIERS: usize = 10;
pub(crate) const MAX_STAGES: usize = 10;
pub(crate) const MAX_POINTS: i64 = 1000;

/// Session inactivity timeout when the file does not set one.
pub(crate) const DEFAULT_SESSION_MINUTES: i64 = 30;

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleError {
    /// 1-based line in the TOML source; `None` for JSON values (the field path
    /// locates the problem) and for problems about the file as a whole.
    pub line: Option<usize>,
    /// JSON-style path of the offending field; empty for syntax errors.
    pub field: String,
    /// What was required of it.
    pub rule: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.field.is_empty() { write!(f, "{}", self.rule) } else { write!(f, "{}: {}", self.field, self.rule) }
    }
}

/// A rejected rule file: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RuleFileError {
    pub errors: Vec<RuleError>,
}

impl RuleFileError {
    pub(crate) fn one(line: Option<usize>, field: &str, rule: impl Into<String>) -> Self {
        RuleFileError { errors: vec![RuleError { line, field: field.to_owned(), rule: rule.into() }] }
    }
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleFileError {}

/// How often an action may count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    /// Once for the whole life of the visitor.
    OncePerVisitor,
    /// Once per session (see the module docs for sessions).
    OncePerSession,
    /// At most this many times per UTC day.
    PerDay(u32),
    Unlimited,
}

/// How inactivity erodes engagement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decay {
    None,
    /// `points_milli` lost per full `period_ms` of inactivity.
    Linear {
        points_milli: i64,
        period_ms: i64,
    },
    /// Engagement halves every `half_life_ms` of inactivity.
    Exponential {
        half_life_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Action {
    pub(crate) id: String,
    pub(crate) label: Option<String>,
    pub(crate) points: i64,
    pub(crate) frequency: Frequency,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Predicate {
    /// The trait, trimmed and lower-cased, is one of these (stored lower-cased).
    In(Vec<String>),
    /// The trait is known and is none of these.
    NotIn(Vec<String>),
    /// The trait is a number (or numeric text) within these inclusive bounds.
    Range { min: Option<f64>, max: Option<f64> },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FitRule {
    pub(crate) id: String,
    /// Index into [`TRAITS`].
    pub(crate) trait_index: usize,
    pub(crate) predicate: Predicate,
    pub(crate) points: i64,
    pub(crate) label: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tier {
    pub(crate) id: String,
    pub(crate) min: i64,
}

/// A lifecycle stage (`lead`, `qualified`, `client`): where a visitor is in
/// the firm's relationship with them. Stages are ordered; a visitor only
/// moves forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub(crate) id: String,
    pub(crate) label: String,
    /// Entered by the entry whose score reaches it.
    pub(crate) min_score: Option<i64>,
    /// Entered by any conversion whose definition names no stage.
    pub(crate) any_conversion: bool,
}

impl Stage {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn label(&self) -> &str {
        &self.label
    }
    pub fn min_score(&self) -> Option<i64> {
        self.min_score
    }
    pub fn any_conversion(&self) -> bool {
        self.any_conversion
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VelocityRules {
    /// `factor × 1000`, so the comparison stays in integers.
    pub(crate) factor_milli: i64,
    pub(crate) baseline_days: i64,
    pub(crate) min_points: i64,
}

impl VelocityRules {
    pub(crate) const DEFAULT: VelocityRules = VelocityRules { factor_milli: 2000, baseline_days: 28, min_points: 15 };
}

/// A validated rule set. Only [`Rules::from_json`], [`Rules::from_json_value`],
/// [`Rules::from_toml`] and [`Rules::default_rules`] make one.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub(crate) version: String,
    pub(crate) session_timeout_ms: i64,
    /// Sorted by id (binary search for the exact-id rule).
    pub(crate) actions: Vec<Action>,
    /// `track` event name → action index, sorted by name.
    pub(crate) by_event: Vec<(String, u32)>,
    /// `properties.mf_element` → action index, sorted by element.
    pub(crate) by_element: Vec<(String, u32)>,
    /// Page globs, most literal characters first, then by action id.
    pub(crate) pages: Vec<(Glob, u32)>,
    /// Sorted by id.
    pub(crate) fit: Vec<FitRule>,
    pub(crate) decay: Decay,
    /// Ascending `min`; the first is 0.
    pub(crate) tiers: Vec<Tier>,
    pub(crate) velocity: VelocityRules,
    /// In the order a visitor moves through them; may be empty.
    pub(crate) stages: Vec<Stage>,
}

impl Rules {
    /// The `version` every score produced under these rules is stamped with.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Tier ids, lowest first.
    pub fn tier_ids(&self) -> impl Iterator<Item = &str> {
        self.tiers.iter().map(|t| t.id.as_str())
    }

    /// The session timeout (`session_timeout_minutes`): what scoring's
    /// once-per-session actions and the attribution timeline's sessions and
    /// touches both count by.
    pub fn session_timeout_ms(&self) -> i64 {
        self.session_timeout_ms
    }

    /// The lifecycle stages, in order (empty when the file defines none).
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The position of stage `id` in [`Rules::stages`].
    pub fn stage_index(&self, id: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.id == id)
    }

    /// Action ids, sorted.
    pub fn action_ids(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| a.id.as_str())
    }

    pub(crate) fn action_index(&self, id: &str) -> Option<u32> {
        self.actions.binary_search_by(|a| a.id.as_str().cmp(id)).ok().and_then(|i| u32::try_from(i).ok())
    }

    pub(crate) fn action(&self, index: u32) -> Option<&Action> {
        self.actions.get(index as usize)
    }

    /// The tier index for a total in milli-points: the highest tier whose
    /// `min` it reaches, or the first tier below every `min`.
    pub(crate) fn tier_of(&self, total_milli: i64) -> usize {
        self.tiers.iter().rposition(|t| total_milli >= t.min.saturating_mul(1000)).unwrap_or(0)
    }

    pub(crate) fn tier_id(&self, index: usize) -> &str {
        self.tiers.get(index).map_or("", |t| t.id.as_str())
    }
}

fn lookup(sorted: &[(String, u32)], key: &str) -> Option<u32> {
    sorted.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().and_then(|i| sorted.get(i)).map(|(_, a)| *a)
}

impl Rules {
    pub(crate) fn action_for_event_name(&self, name: &str) -> Option<u32> {
        lookup(&self.by_event, name)
    }
    pub(crate) fn action_for_element(&self, element: &str) -> Option<u32> {
        lookup(&self.by_element, element)
    }
}

pub(crate) type ActionTables = (Vec<Action>, Vec<(String, u32)>, Vec<(String, u32)>, Vec<(Glob, u32)>);

/// One way in to an action.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Event(String),
    Element(String),
    Page(Glob),
}

/// Sorts actions by id and builds the lookup tables. Callers have already
/// made sure no event name, element or pattern maps to two actions.
pub(crate) fn assemble(mut parsed: Vec<(Action, Vec<Matcher>)>) -> ActionTables {
    super::sort_small(&mut parsed, |a, b| a.0.id < b.0.id);
    let mut by_event = Vec::new();
    let mut by_element = Vec::new();
    let mut pages: Vec<(Glob, u32)> = Vec::new();
    let mut actions = Vec::with_capacity(parsed.len());
    for (index, (action, matchers)) in parsed.into_iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        for m in matchers {
            match m {
                Matcher::Event(name) => by_event.push((name, index)),
                Matcher::Element(el) => by_element.push((el, index)),
                Matcher::Page(g) => pages.push((g, index)),
            }
        }
        actions.push(action);
    }
    super::sort_small(&mut by_event, |a, b| a < b);
    super::sort_small(&mut by_element, |a, b| a < b);
    // Most literal characters first (`/pricing` before `/**`), then action id.
    super::sort_small(&mut pages, |a, b| (b.0.literals(), a.1, a.0.pattern()) < (a.0.literals(), b.1, b.0.pattern()));
    (actions, by_event, by_element, pages)
}

/// How trait text is compared: surrounding blanks dropped, lower-cased
/// (`text::lowercase`: the scripts of the EU's languages, without the
/// Unicode tables).
pub(crate) fn normalise_text(s: &str) -> String {
    crate::text::lowercase(s.trim())
}

/// `[a-z][a-z0-9_]{0,31}`: ids that read well in TOML keys and JSON paths.
pub(crate) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `id` has the form of a stage id (it may still name no stage).
pub fn is_stage_id(id: &str) -> bool {
    is_ident(id)
}
