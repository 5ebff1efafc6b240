//! Rule files: their schema, their validation, and the validated [`Rules`].
//!
//! A rule file is TOML (humans) or JSON (the wire); both are the same tree,
//! so TOML is first converted to a JSON value and one validator checks both.
//! Every problem is reported with the field path (`actions.web.pricing_view.points`)
//! and, for TOML, the line; validation does not stop at the first error, so
//! `microfunnel rules check` lists them all. A `Rules` exists only once the
//! whole file passed: nothing downstream re-checks or guesses.

use super::glob::Glob;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// The fit traits a rule may read. Minimisation: nothing else about a person
/// is used for scoring, so nothing else needs to be collected.
pub(crate) const TRAITS: [&str; 5] = ["role", "industry", "company_size", "region", "budget"];

/// Upper bounds that keep a rule file readable and scoring cheap.
pub(crate) const MAX_ACTIONS: usize = 200;
const MAX_MATCHERS: usize = 32;
pub(crate) const MAX_FIT_RULES: usize = 100;
const MAX_LIST: usize = 100;
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
    /// Parses a JSON rule file.
    pub fn from_json(text: &str) -> Result<Rules, RuleFileError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| RuleFileError::one(Some(e.line()), "", format!("invalid JSON: {e}")))?;
        Rules::from_json_value(&value)
    }

    /// Validates rules already parsed as JSON (e.g. sent by the edge).
    pub fn from_json_value(value: &Value) -> Result<Rules, RuleFileError> {
        validate(value, &|_| None)
    }

    /// Parses a TOML rule file; errors carry the line.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Rules, RuleFileError> {
        let (value, lines) = super::toml_source::to_json(text)?;
        validate(&value, &|field| lines.line_of(field))
    }

    /// The rule set documented in `docs/scoring.md` (`crates/core/rules/default.toml`).
    pub fn default_rules() -> Rules {
        super::defaults::rules()
    }

    /// The `version` every score produced under these rules is stamped with.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The rules as a JSON rule document (what the edge sends the browser);
    /// `Rules::from_json_value(&r.to_json())` gives back `r`.
    pub fn to_json(&self) -> Value {
        super::defaults::to_json(self)
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

// ---------------------------------------------------------------------------
// Validation

struct Check<'l> {
    errors: Vec<RuleError>,
    line_of: &'l dyn Fn(&str) -> Option<usize>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// `[a-z][a-z0-9_]{0,31}`: ids that read well in TOML keys and JSON paths.
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `id` has the form of a stage id (it may still name no stage).
pub fn is_stage_id(id: &str) -> bool {
    is_ident(id)
}

const IDENT_RULE: &str = "must be a lower-case identifier: a-z, then a-z, 0-9 or _ (at most 32)";

impl Check<'_> {
    fn fail(&mut self, field: &str, rule: impl Into<String>) {
        let line = (self.line_of)(field);
        self.errors.push(RuleError { line, field: field.to_owned(), rule: rule.into() });
    }

    /// The object at `path`, after reporting every key it may not have.
    fn object<'v>(&mut self, v: &'v Value, path: &str, allowed: &[&str]) -> Option<&'v Map<String, Value>> {
        let Some(m) = v.as_object() else {
            self.fail(path, "must be a table");
            return None;
        };
        for key in m.keys() {
            if !allowed.contains(&key.as_str()) {
                self.fail(&join(path, key), format!("unknown field (expected one of: {})", allowed.join(", ")));
            }
        }
        Some(m)
    }

    fn int(&mut self, m: &Map<String, Value>, path: &str, key: &str, min: i64, max: i64) -> Option<i64> {
        let field = join(path, key);
        match m.get(key) {
            None => {
                self.fail(&field, "is required");
                None
            }
            Some(v) => self.int_value(v, &field, min, max),
        }
    }

    fn opt_int(&mut self, m: &Map<String, Value>, path: &str, key: &str, min: i64, max: i64) -> Option<Option<i64>> {
        match m.get(key) {
            None => Some(None),
            Some(v) => self.int_value(v, &join(path, key), min, max).map(Some),
        }
    }

    fn int_value(&mut self, v: &Value, field: &str, min: i64, max: i64) -> Option<i64> {
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.fail(field, format!("must be an integer from {min} to {max}"));
                None
            }
        }
    }

    fn number(&mut self, v: &Value, field: &str) -> Option<f64> {
        match v.as_f64() {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                self.fail(field, "must be a number");
                None
            }
        }
    }

    fn string<'v>(&mut self, m: &'v Map<String, Value>, path: &str, key: &str) -> Option<&'v str> {
        let field = join(path, key);
        match m.get(key) {
            Some(Value::String(s)) => Some(s),
            None => {
                self.fail(&field, "is required");
                None
            }
            Some(_) => {
                self.fail(&field, "must be a string");
                None
            }
        }
    }
}

fn validate(doc: &Value, line_of: &dyn Fn(&str) -> Option<usize>) -> Result<Rules, RuleFileError> {
    let mut c = Check { errors: Vec::new(), line_of };
    let rules = check_document(&mut c, doc);
    match rules {
        Some(rules) if c.errors.is_empty() => Ok(rules),
        _ => {
            let mut errors = c.errors;
            if errors.is_empty() {
                errors.push(RuleError { line: None, field: String::new(), rule: "invalid rule file".into() });
            }
            // File order: by line when known, then by field.
            errors.sort_by(|a, b| (a.line, &a.field).cmp(&(b.line, &b.field)));
            Err(RuleFileError { errors })
        }
    }
}

fn check_document(c: &mut Check<'_>, doc: &Value) -> Option<Rules> {
    let top = c.object(
        doc,
        "",
        &["version", "session_timeout_minutes", "decay", "velocity", "tiers", "stages", "actions", "fit"],
    )?;
    let version = c.string(top, "", "version").and_then(|v| {
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-' | ':'));
        if !ok {
            c.fail("version", "must be 1 to 64 characters among A-Z a-z 0-9 . _ - :");
        }
        ok.then(|| v.to_owned())
    });
    let session = c.opt_int(top, "", "session_timeout_minutes", 1, 1440);
    let decay = match top.get("decay") {
        None => {
            c.fail("decay", "is required (use kind = \"none\" for no decay)");
            None
        }
        Some(v) => check_decay(c, v),
    };
    let velocity = match top.get("velocity") {
        None => Some(VelocityRules::DEFAULT),
        Some(v) => check_velocity(c, v),
    };
    let tiers = match top.get("tiers") {
        None => {
            c.fail("tiers", "is required");
            None
        }
        Some(v) => check_tiers(c, v),
    };
    let actions = match top.get("actions") {
        None => {
            c.fail("actions", "is required");
            None
        }
        Some(v) => check_actions(c, v),
    };
    let fit = match top.get("fit") {
        None => Some(Vec::new()),
        Some(v) => check_fit(c, v),
    };
    let stages = match top.get("stages") {
        None => Some(Vec::new()),
        Some(v) => check_stages(c, v),
    };
    let (actions, by_event, by_element, pages) = actions?;
    Some(Rules {
        version: version?,
        session_timeout_ms: session?.unwrap_or(DEFAULT_SESSION_MINUTES) * 60_000,
        actions,
        by_event,
        by_element,
        pages,
        fit: fit?,
        decay: decay?,
        tiers: tiers?,
        velocity: velocity?,
        stages: stages?,
    })
}

/// `[[stages]]`: ids unique, at most one entered by any conversion, and the
/// score thresholds rising in list order (a visitor only moves forward, so a
/// later stage cannot be easier to reach by score than an earlier one).
fn check_stages(c: &mut Check<'_>, v: &Value) -> Option<Vec<Stage>> {
    let Some(items) = v.as_array() else {
        c.fail("stages", "must be an array of stages ([[stages]] with id, label, optional min_score)");
        return None;
    };
    if items.is_empty() || items.len() > MAX_STAGES {
        c.fail("stages", format!("must have 1 to {MAX_STAGES} stages"));
        return None;
    }
    let mut stages: Vec<Stage> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("stages[{i}]");
        let Some(m) = c.object(item, &path, &["id", "label", "min_score", "any_conversion"]) else {
            ok = false;
            continue;
        };
        let id = c.string(m, &path, "id").and_then(|id| {
            if !is_ident(id) {
                c.fail(&join(&path, "id"), format!("stage id {IDENT_RULE}"));
                None
            } else if stages.iter().any(|s| s.id == id) {
                c.fail(&join(&path, "id"), format!("stage `{id}` is listed twice"));
                None
            } else {
                Some(id.to_owned())
            }
        });
        let label = c.string(m, &path, "label").and_then(|l| {
            let fine = !l.trim().is_empty() && l.len() <= 200 && !l.chars().any(char::is_control);
            if !fine {
                c.fail(
                    &join(&path, "label"),
                    "must be a non-empty string of at most 200 bytes, without control characters",
                );
            }
            fine.then(|| l.to_owned())
        });
        let min_score = c.opt_int(m, &path, "min_score", 0, 100_000);
        let any_conversion = match m.get("any_conversion") {
            None => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                c.fail(&join(&path, "any_conversion"), "must be true or false");
                None
            }
        };
        let (Some(id), Some(label), Some(min_score), Some(any_conversion)) = (id, label, min_score, any_conversion)
        else {
            ok = false;
            continue;
        };
        if any_conversion && let Some(other) = stages.iter().find(|s| s.any_conversion) {
            c.fail(
                &join(&path, "any_conversion"),
                format!("only one stage may be entered by any conversion, and `{}` already is", other.id),
            );
            ok = false;
        }
        if let Some(min) = min_score
            && let Some(before) = stages.iter().rfind(|s| s.min_score.is_some_and(|m| m >= min))
        {
            c.fail(
                &join(&path, "min_score"),
                format!(
                    "stages out of order: {min} is not above the min_score of `{}` ({}), listed before it; list stages in the order a visitor moves through them",
                    before.id,
                    before.min_score.unwrap_or_default()
                ),
            );
            ok = false;
        }
        stages.push(Stage { id, label, min_score, any_conversion });
    }
    ok.then_some(stages)
}

fn check_decay(c: &mut Check<'_>, v: &Value) -> Option<Decay> {
    let kind = v.get("kind").and_then(Value::as_str);
    let allowed: &[&str] = match kind {
        Some("linear") => &["kind", "points", "period_days"],
        Some("exponential") => &["kind", "half_life_days"],
        _ => &["kind"],
    };
    let m = c.object(v, "decay", allowed)?;
    match c.string(m, "decay", "kind")? {
        "none" => Some(Decay::None),
        "linear" => {
            let points = c.int(m, "decay", "points", 1, MAX_POINTS);
            let days = c.int(m, "decay", "period_days", 1, 365);
            Some(Decay::Linear { points_milli: points? * 1000, period_ms: days? * crate::Timestamp::MILLIS_PER_DAY })
        }
        "exponential" => {
            let days = c.int(m, "decay", "half_life_days", 1, 3650)?;
            Some(Decay::Exponential { half_life_ms: days * crate::Timestamp::MILLIS_PER_DAY })
        }
        _ => {
            c.fail("decay.kind", "must be one of linear, exponential, none");
            None
        }
    }
}

fn check_velocity(c: &mut Check<'_>, v: &Value) -> Option<VelocityRules> {
    let m = c.object(v, "velocity", &["factor", "baseline_days", "min_points"])?;
    let d = VelocityRules::DEFAULT;
    let factor = match m.get("factor") {
        None => Some(d.factor_milli),
        Some(f) => c.number(f, "velocity.factor").and_then(|f| {
            if (1.0..=100.0).contains(&f) {
                // Exact: IEEE multiplication and rounding are the same everywhere.
                Some((f * 1000.0).round() as i64)
            } else {
                c.fail("velocity.factor", "must be a number from 1 to 100");
                None
            }
        }),
    };
    let baseline = c.opt_int(m, "velocity", "baseline_days", 1, 365);
    let min_points = c.opt_int(m, "velocity", "min_points", 0, 100_000);
    Some(VelocityRules {
        factor_milli: factor?,
        baseline_days: baseline?.unwrap_or(d.baseline_days),
        min_points: min_points?.unwrap_or(d.min_points),
    })
}

fn check_tiers(c: &mut Check<'_>, v: &Value) -> Option<Vec<Tier>> {
    let Some(m) = v.as_object() else {
        c.fail("tiers", "must be a table of tier id = minimum score");
        return None;
    };
    let mut tiers = Vec::new();
    let mut ok = true;
    for (id, min) in m {
        let field = join("tiers", id);
        if !is_ident(id) {
            c.fail(&field, format!("tier id {IDENT_RULE}"));
            ok = false;
            continue;
        }
        match c.int_value(min, &field, 0, 100_000) {
            Some(min) => tiers.push(Tier { id: id.clone(), min }),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    if tiers.is_empty() || tiers.len() > MAX_TIERS {
        c.fail("tiers", format!("must have 1 to {MAX_TIERS} tiers"));
        return None;
    }
    tiers.sort_by(|a, b| (a.min, &a.id).cmp(&(b.min, &b.id)));
    for pair in tiers.windows(2) {
        if let [a, b] = pair
            && a.min == b.min
        {
            c.fail(&join("tiers", &b.id), format!("has the same minimum ({}) as tier `{}`", b.min, a.id));
            ok = false;
        }
    }
    if tiers.first().is_some_and(|t| t.min != 0) {
        c.fail("tiers", "the lowest tier must start at 0");
        ok = false;
    }
    ok.then_some(tiers)
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

fn check_actions(c: &mut Check<'_>, v: &Value) -> Option<ActionTables> {
    let Some(channels) = v.as_object() else {
        c.fail("actions", "must be a table of channels, each a table of actions ([actions.web.pricing_view])");
        return None;
    };
    let mut parsed: Vec<(Action, Vec<(Matcher, String)>)> = Vec::new();
    let mut ok = true;
    for (channel, actions) in channels {
        let cpath = join("actions", channel);
        if !is_ident(channel) {
            c.fail(&cpath, format!("channel {IDENT_RULE}"));
            ok = false;
            continue;
        }
        let Some(actions) = actions.as_object() else {
            c.fail(&cpath, "must be a table of actions");
            ok = false;
            continue;
        };
        for (name, body) in actions {
            let path = join(&cpath, name);
            if !is_ident(name) {
                c.fail(&path, format!("action {IDENT_RULE}"));
                ok = false;
                continue;
            }
            match check_action(c, &format!("{channel}.{name}"), &path, body) {
                Some(a) => parsed.push(a),
                None => ok = false,
            }
        }
    }
    if parsed.is_empty() && ok {
        c.fail("actions", "must define at least one action");
        return None;
    }
    if parsed.len() > MAX_ACTIONS {
        c.fail("actions", format!("must define at most {MAX_ACTIONS} actions"));
        return None;
    }
    // One event name / element / pattern maps to one action: a second mapping
    // would make the score depend on an arbitrary choice.
    let mut seen: Vec<(&str, String, &str, &str)> = Vec::new(); // (kind, key, action, field)
    for (action, matchers) in &parsed {
        for (m, field) in matchers {
            let (kind, key) = match m {
                Matcher::Event(name) => {
                    if parsed.iter().any(|(a, _)| a.id == *name) {
                        c.fail(
                            field,
                            format!("`{name}` is an action id, and an event named after an action always matches that action"),
                        );
                        ok = false;
                    }
                    ("event name", name.clone())
                }
                Matcher::Element(el) => ("element", el.clone()),
                Matcher::Page(g) => ("page pattern", g.pattern().to_owned()),
            };
            if let Some((_, _, other, _)) = seen.iter().find(|(k, key2, _, _)| *k == kind && *key2 == key) {
                c.fail(field, format!("{kind} `{key}` is already mapped to action `{other}`"));
                ok = false;
            } else {
                seen.push((kind, key, action.id.as_str(), field.as_str()));
            }
        }
    }
    if !ok {
        return None;
    }
    Some(assemble(parsed.into_iter().map(|(a, ms)| (a, ms.into_iter().map(|(m, _)| m).collect())).collect()))
}

fn check_action(c: &mut Check<'_>, id: &str, path: &str, body: &Value) -> Option<(Action, Vec<(Matcher, String)>)> {
    let m = c.object(body, path, &["points", "frequency", "match", "label"])?;
    let points = c.int(m, path, "points", -MAX_POINTS, MAX_POINTS);
    let frequency = match m.get("frequency") {
        None => {
            c.fail(
                &join(path, "frequency"),
                "is required (once_per_visitor, once_per_session, unlimited or { per_day = N })",
            );
            None
        }
        Some(f) => check_frequency(c, &join(path, "frequency"), f),
    };
    let label = check_label(c, m, path);
    let mut matchers = Vec::new();
    let mut ok = true;
    if let Some(list) = m.get("match") {
        let mpath = join(path, "match");
        match list.as_array() {
            None => {
                c.fail(&mpath, "must be an array of matchers ({ event = … }, { page = … }, { element = … })");
                ok = false;
            }
            Some(items) if items.len() > MAX_MATCHERS => {
                c.fail(&mpath, format!("must have at most {MAX_MATCHERS} matchers"));
                ok = false;
            }
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{mpath}[{i}]");
                    match check_matcher(c, &ipath, item) {
                        Some(matcher) => matchers.push(matcher),
                        None => ok = false,
                    }
                }
            }
        }
    }
    let action = Action { id: id.to_owned(), label: label?, points: points?, frequency: frequency? };
    ok.then_some((action, matchers))
}

fn check_label(c: &mut Check<'_>, m: &Map<String, Value>, path: &str) -> Option<Option<String>> {
    match m.get("label") {
        None => Some(None),
        Some(Value::String(s)) if s.len() <= 200 && !s.chars().any(char::is_control) => Some(Some(s.clone())),
        Some(_) => {
            c.fail(&join(path, "label"), "must be a string of at most 200 bytes, without control characters");
            None
        }
    }
}

fn check_frequency(c: &mut Check<'_>, field: &str, v: &Value) -> Option<Frequency> {
    const RULE: &str = "must be once_per_visitor, once_per_session, unlimited or { per_day = N }";
    match v {
        Value::String(s) => match s.as_str() {
            "once_per_visitor" => Some(Frequency::OncePerVisitor),
            "once_per_session" => Some(Frequency::OncePerSession),
            "unlimited" => Some(Frequency::Unlimited),
            _ => {
                c.fail(field, RULE);
                None
            }
        },
        Value::Object(_) => {
            let m = c.object(v, field, &["per_day"])?;
            let n = c.int(m, field, "per_day", 1, 1000)?;
            u32::try_from(n).ok().map(Frequency::PerDay)
        }
        _ => {
            c.fail(field, RULE);
            None
        }
    }
}

fn check_matcher(c: &mut Check<'_>, path: &str, v: &Value) -> Option<(Matcher, String)> {
    let m = c.object(v, path, &["event", "page", "element"])?;
    if m.len() != 1 {
        c.fail(path, "must have exactly one of event, page, element");
        return None;
    }
    let (key, value) = m.iter().next()?;
    let field = join(path, key);
    let Some(text) = value.as_str() else {
        c.fail(&field, "must be a string");
        return None;
    };
    let matcher = match key.as_str() {
        "event" => {
            if text.trim().is_empty() || text.len() > 256 || text.chars().any(char::is_control) {
                c.fail(&field, "must be a non-empty event name of at most 256 bytes, without control characters");
                return None;
            }
            Matcher::Event(text.to_owned())
        }
        "element" => {
            let ok = !text.is_empty()
                && text.len() <= 64
                && text.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_'));
            if !ok {
                c.fail(&field, "must be 1 to 64 characters among A-Z a-z 0-9 - _");
                return None;
            }
            Matcher::Element(text.to_owned())
        }
        _ => match Glob::new(text) {
            Ok(g) => Matcher::Page(g),
            Err(rule) => {
                c.fail(&field, rule);
                return None;
            }
        },
    };
    Some((matcher, field))
}

fn check_fit(c: &mut Check<'_>, v: &Value) -> Option<Vec<FitRule>> {
    let Some(m) = v.as_object() else {
        c.fail("fit", "must be a table of fit rules ([fit.decision_maker])");
        return None;
    };
    if m.len() > MAX_FIT_RULES {
        c.fail("fit", format!("must have at most {MAX_FIT_RULES} rules"));
        return None;
    }
    let mut rules = Vec::new();
    let mut ok = true;
    for (id, body) in m {
        let path = join("fit", id);
        if !is_ident(id) {
            c.fail(&path, format!("fit rule id {IDENT_RULE}"));
            ok = false;
            continue;
        }
        match check_fit_rule(c, id, &path, body) {
            Some(r) => rules.push(r),
            None => ok = false,
        }
    }
    ok.then_some(rules)
}

fn check_fit_rule(c: &mut Check<'_>, id: &str, path: &str, body: &Value) -> Option<FitRule> {
    let m = c.object(body, path, &["trait", "in", "not_in", "min", "max", "points", "label"])?;
    let points = c.int(m, path, "points", -MAX_POINTS, MAX_POINTS);
    let trait_index = c.string(m, path, "trait").and_then(|t| {
        let i = TRAITS.iter().position(|k| *k == t);
        if i.is_none() {
            c.fail(&join(path, "trait"), format!("must be one of {}", TRAITS.join(", ")));
        }
        i
    });
    let is_range = m.contains_key("min") || m.contains_key("max");
    let kinds = usize::from(m.contains_key("in")) + usize::from(m.contains_key("not_in")) + usize::from(is_range);
    if kinds != 1 {
        c.fail(path, "must have exactly one predicate: in = [..], not_in = [..], or min/max");
        return None;
    }
    let mut list = |key: &str| -> Option<Vec<String>> {
        let field = join(path, key);
        let items = m.get(key).and_then(Value::as_array);
        let Some(items) = items.filter(|a| !a.is_empty() && a.len() <= MAX_LIST) else {
            c.fail(&field, format!("must be an array of 1 to {MAX_LIST} strings"));
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) if !s.trim().is_empty() && s.len() <= 256 => out.push(normalise_text(s)),
                _ => {
                    c.fail(&format!("{field}[{i}]"), "must be a non-empty string of at most 256 bytes");
                    return None;
                }
            }
        }
        Some(out)
    };
    let predicate = if m.contains_key("in") {
        Predicate::In(list("in")?)
    } else if m.contains_key("not_in") {
        Predicate::NotIn(list("not_in")?)
    } else {
        let min = match m.get("min") {
            None => None,
            Some(v) => Some(c.number(v, &join(path, "min"))?),
        };
        let max = match m.get("max") {
            None => None,
            Some(v) => Some(c.number(v, &join(path, "max"))?),
        };
        if let (Some(a), Some(b)) = (min, max)
            && a > b
        {
            c.fail(&join(path, "max"), "must not be less than min");
            return None;
        }
        Predicate::Range { min, max }
    };
    let label = check_label(c, m, path);
    Some(FitRule { id: id.to_owned(), trait_index: trait_index?, predicate, points: points?, label: label? })
}

/// How trait text is compared: surrounding blanks dropped, lower-cased
/// (`text::lowercase`: the scripts of the EU's languages, without the
/// Unicode tables).
pub(crate) fn normalise_text(s: &str) -> String {
    crate::text::lowercase(s.trim())
}
