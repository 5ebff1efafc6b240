//! The golden-vector runner. One vector file is
//! `{"suite": "...", "cases": [{"name", "input", "expected"}]}`; a case passes
//! when evaluating `input` under `suite` yields `expected`. The same function
//! runs natively (`cargo test`), in wasm in Chromium (wasm-bindgen-test) and in
//! workerd (the Worker's test-only route), which is how we show the core
//! behaves identically on every side.
//!
//! An evaluation yields `{"ok": <value>}` or `{"error": <value>}`; numbers are
//! compared with a relative tolerance of 1e-9 because `powf`/`exp2` may differ
//! in the last bit between the native libm and the wasm one.

use serde::Serialize;

mod attribution;
mod channel;
mod clv;
mod consent;
mod conversion;
mod event;
mod experiment;
mod identity;
mod intent;
mod money;
mod pii;
mod scoring;
mod site;
mod url;
use serde_json::{Value, json};

/// A case whose actual outcome differed from the expected one.
#[derive(Debug, Clone, Serialize)]
pub struct CaseFailure {
    pub name: String,
    pub input: Value,
    pub expected: Value,
    pub actual: Value,
}

/// The outcome of one vector file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub suite: String,
    pub passed: usize,
    pub failures: Vec<CaseFailure>,
}

/// Parses and runs one vector file. An unreadable file (bad JSON, missing
/// `suite` or `cases`, a case without `name`/`input`/`expected`) is an error,
/// so a broken file can never pass by running nothing.
pub fn run_file(text: &str) -> Result<FileReport, String> {
    let file: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let suite = file.get("suite").and_then(Value::as_str).ok_or("missing string field `suite`")?.to_owned();
    let cases = file.get("cases").and_then(Value::as_array).ok_or("missing array field `cases`")?;
    if cases.is_empty() {
        return Err("`cases` is empty".into());
    }
    let mut report = FileReport { suite: suite.clone(), passed: 0, failures: Vec::new() };
    for (i, case) in cases.iter().enumerate() {
        let name = case
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("cases[{i}]: missing string field `name`"))?;
        let input = case.get("input").ok_or_else(|| format!("cases[{i}] ({name}): missing `input`"))?;
        let expected = case.get("expected").ok_or_else(|| format!("cases[{i}] ({name}): missing `expected`"))?;
        let actual = evaluate(&suite, input);
        if same(expected, &actual) {
            report.passed += 1;
        } else {
            report.failures.push(CaseFailure {
                name: name.to_owned(),
                input: input.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(report)
}

/// Evaluates one input under a suite, as `{"ok": ..}` or `{"error": ..}`.
pub fn evaluate(suite: &str, input: &Value) -> Value {
    let outcome = match suite.split_once('.').map(|(area, _)| area) {
        Some("consent") => consent::case(suite, input),
        Some("event") => event::case(suite, input),
        Some("channel") => channel::case(suite, input),
        Some("clv") => clv::case(suite, input),
        Some("url") => url::case(suite, input),
        Some("identity") => identity::case(suite, input),
        Some("intent") => intent::case(suite, input),
        Some("pii") => pii::case(suite, input),
        Some("scoring") => scoring::case(suite, input),
        Some("attribution") => attribution::case(suite, input),
        Some("money") => money::case(suite, input),
        Some("conversion") => conversion::case(suite, input),
        Some("site") => site::case(suite, input),
        Some("experiment") => experiment::case(suite, input),
        _ => Err(json!(format!("unknown suite `{suite}`"))),
    };
    match outcome {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e }),
    }
}

/// JSON equality with a relative tolerance on numbers.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Shorthand for suites: a field of the input, deserialised, or an error
/// naming the field.
pub(crate) fn field<T: serde::de::DeserializeOwned>(input: &Value, name: &str) -> Result<T, Value> {
    let v = input.get(name).cloned().unwrap_or(Value::Null);
    serde_json::from_value(v).map_err(|e| json!(format!("vector input `{name}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_is_relative() {
        assert!(same(&json!(1.0), &json!(1.0 + 1e-12)));
        assert!(!same(&json!(1.0), &json!(1.0001)));
        assert!(same(&json!({"a": [1, 2.0]}), &json!({"a": [1, 2]})));
        assert!(!same(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn broken_files_are_errors() {
        assert!(run_file("{").is_err());
        assert!(run_file(r#"{"suite":"x"}"#).is_err());
        assert!(run_file(r#"{"suite":"x","cases":[]}"#).is_err());
        assert!(run_file(r#"{"suite":"x","cases":[{"name":"a","input":1}]}"#).is_err());
    }

    #[test]
    fn unknown_suite_fails_its_cases() {
        let r = run_file(r#"{"suite":"nope.x","cases":[{"name":"a","input":1,"expected":{"ok":1}}]}"#).unwrap();
        assert_eq!(r.passed, 0);
        assert_eq!(r.failures.len(), 1);
    }
}
