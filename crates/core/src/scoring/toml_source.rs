//! TOML rule files → the JSON tree the validator reads, plus where each field
//! sits in the source so errors can name the line.

use super::rules::RuleFileError;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Field path (`actions.web.home_view.points`, `…match[0].page`) → 1-based line.
pub(crate) struct Lines {
    lines: BTreeMap<String, usize>,
}

impl Lines {
    /// The line of `field`, or of its nearest enclosing field that has one
    /// (a missing key is reported on its table's line).
    pub(crate) fn line_of(&self, field: &str) -> Option<usize> {
        let mut path = field;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path = path.get(..cut)?;
        }
    }
}

struct Source {
    /// Byte offsets of every '\n'.
    newlines: Vec<usize>,
    lines: BTreeMap<String, usize>,
}

impl Source {
    fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&n| n < offset) + 1
    }
}

pub(crate) fn to_json(text: &str) -> Result<(Value, Lines), RuleFileError> {
    let mut src = Source { newlines: text.match_indices('\n').map(|(i, _)| i).collect(), lines: BTreeMap::new() };
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| src.line(s.start));
        RuleFileError::one(line, "", format!("invalid TOML: {}", e.message().trim()))
    })?;
    let value = table(&mut src, doc.get_ref(), "")?;
    Ok((value, Lines { lines: src.lines }))
}

fn table(src: &mut Source, t: &DeTable<'_>, path: &str) -> Result<Value, RuleFileError> {
    let mut out = Map::new();
    for (key, value) in t.iter() {
        let key_span_start = key.span().start;
        let key: &str = key.get_ref();
        let field = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
        // The key's line: a missing or unknown field is reported where it is written.
        let line = src.line(key_span_start);
        src.lines.entry(field.clone()).or_insert(line);
        out.insert(key.to_owned(), convert(src, value, &field)?);
    }
    Ok(Value::Object(out))
}

fn convert(src: &mut Source, v: &Spanned<DeValue<'_>>, field: &str) -> Result<Value, RuleFileError> {
    let line = src.line(v.span().start);
    let bad = |rule: &str| RuleFileError::one(Some(line), field, rule);
    Ok(match v.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let n = i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| bad("integer out of range"))?;
            Value::Number(n.into())
        }
        DeValue::Float(f) => {
            let x: f64 = f.as_str().parse().map_err(|_| bad("must be a finite number"))?;
            Value::Number(Number::from_f64(x).ok_or_else(|| bad("must be a finite number"))?)
        }
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(_) => return Err(bad("dates are not used in rule files")),
        DeValue::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let f = format!("{field}[{i}]");
                let line = src.line(item.span().start);
                src.lines.entry(f.clone()).or_insert(line);
                out.push(convert(src, item, &f)?);
            }
            Value::Array(out)
        }
        DeValue::Table(t) => table(src, t, field)?,
    })
}
