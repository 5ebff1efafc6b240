//! The rule document: reading it (JSON, or TOML converted to the same tree)
//! into validated [`Rules`], and writing [`Rules`] back as JSON.
//!
//! Every problem is reported with the field path (`actions.web.pricing_view.points`)
//! and, for TOML, the line; validation does not stop at the first error, so
//! `microfunnel rules check` lists them all.

use super::glob::Glob;
use super::rules::{
    Action, ActionTables, DEFAULT_SESSION_MINUTES, Decay, FitRule, Frequency, MAX_ACTIONS, MAX_FIT_RULES, MAX_POINTS,
    MAX_STAGES, MAX_TIERS, Matcher, Predicate, RuleError, RuleFileError, Rules, Stage, TRAITS, Tier, VelocityRules,
    assemble, is_ident, normalise_text,
};
use crate::Timestamp;
use serde_json::{Map, Value, json};

const MAX_MATCHERS: usize = 32;
const MAX_LIST: usize = 100;

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

    /// The rules as a JSON rule document (what the edge sends the browser);
    /// `Rules::from_json_value(&r.to_json())` gives back `r`.
    pub fn to_json(&self) -> Value {
        to_json(self)
    }
}

struct Check<'l> {
    errors: Vec<RuleError>,
    line_of: &'l dyn Fn(&str) -> Option<usize>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
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

/// The JSON rule document of `rules` (labels kept, defaults written out).
fn to_json(rules: &Rules) -> Value {
    let mut channels: Map<String, Value> = Map::new();
    for (index, a) in rules.actions.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let mut matchers = Vec::new();
        for (name, i) in &rules.by_event {
            if *i == index {
                matchers.push(json!({ "event": name }));
            }
        }
        for (g, i) in &rules.pages {
            if *i == index {
                matchers.push(json!({ "page": g.pattern() }));
            }
        }
        for (el, i) in &rules.by_element {
            if *i == index {
                matchers.push(json!({ "element": el }));
            }
        }
        let frequency = match a.frequency {
            Frequency::OncePerVisitor => json!("once_per_visitor"),
            Frequency::OncePerSession => json!("once_per_session"),
            Frequency::Unlimited => json!("unlimited"),
            Frequency::PerDay(n) => json!({ "per_day": n }),
        };
        let mut body = Map::new();
        body.insert("points".into(), json!(a.points));
        body.insert("frequency".into(), frequency);
        if !matchers.is_empty() {
            body.insert("match".into(), Value::Array(matchers));
        }
        if let Some(label) = &a.label {
            body.insert("label".into(), json!(label));
        }
        let (channel, name) = a.id.split_once('.').unwrap_or((a.id.as_str(), ""));
        if let Value::Object(c) = channels.entry(channel).or_insert_with(|| json!({})) {
            c.insert(name.to_owned(), Value::Object(body));
        }
    }
    let mut fit = Map::new();
    for r in &rules.fit {
        let mut body = Map::new();
        body.insert("trait".into(), json!(TRAITS.get(r.trait_index).copied().unwrap_or("")));
        match &r.predicate {
            Predicate::In(list) => {
                body.insert("in".into(), json!(list));
            }
            Predicate::NotIn(list) => {
                body.insert("not_in".into(), json!(list));
            }
            Predicate::Range { min, max } => {
                if let Some(min) = min {
                    body.insert("min".into(), json!(min));
                }
                if let Some(max) = max {
                    body.insert("max".into(), json!(max));
                }
            }
        }
        body.insert("points".into(), json!(r.points));
        if let Some(label) = &r.label {
            body.insert("label".into(), json!(label));
        }
        fit.insert(r.id.clone(), Value::Object(body));
    }
    let decay = match rules.decay {
        Decay::None => json!({ "kind": "none" }),
        Decay::Linear { points_milli, period_ms } => json!({
            "kind": "linear",
            "points": points_milli / 1000,
            "period_days": period_ms / Timestamp::MILLIS_PER_DAY,
        }),
        Decay::Exponential { half_life_ms } => json!({
            "kind": "exponential",
            "half_life_days": half_life_ms / Timestamp::MILLIS_PER_DAY,
        }),
    };
    let tiers: Map<String, Value> = rules.tiers.iter().map(|t| (t.id.clone(), json!(t.min))).collect();
    let v = rules.velocity;
    let stages: Vec<Value> = rules
        .stages
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("id".into(), json!(s.id));
            m.insert("label".into(), json!(s.label));
            if let Some(min) = s.min_score {
                m.insert("min_score".into(), json!(min));
            }
            if s.any_conversion {
                m.insert("any_conversion".into(), json!(true));
            }
            Value::Object(m)
        })
        .collect();
    let mut doc = json!({
        "version": rules.version,
        "session_timeout_minutes": rules.session_timeout_ms / 60_000,
        "decay": decay,
        "velocity": {
            "factor": v.factor_milli as f64 / 1000.0,
            "baseline_days": v.baseline_days,
            "min_points": v.min_points,
        },
        "tiers": tiers,
        "actions": channels,
        "fit": fit,
    });
    if !stages.is_empty()
        && let Value::Object(m) = &mut doc
    {
        m.insert("stages".into(), Value::Array(stages));
    }
    doc
}
