//! The OpenAPI document names exactly the routes `src/lib.rs` serves
//! (test-only routes aside), each with its answers, an error answer of the
//! one error shape, and a schema for every body.

use serde_json::Value;
use std::collections::BTreeSet;

fn routes() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/lib.rs");
    let mut out = BTreeSet::new();
    for method in ["get", "post", "put", "patch", "delete", "options"] {
        for pattern in [format!(".{method}_async(\""), format!(".{method}(\"")] {
            for (i, _) in src.match_indices(&pattern) {
                let rest = src.get(i + pattern.len()..).unwrap_or("");
                let path = rest.split('"').next().unwrap_or("");
                if path.starts_with("/__test/") {
                    continue; // feature `test-routes` only, never deployed
                }
                // `:site` in the router is `{site}` in OpenAPI.
                let path: Vec<String> = path
                    .split('/')
                    .map(|seg| seg.strip_prefix(':').map_or(seg.to_owned(), |p| format!("{{{p}}}")))
                    .collect();
                out.insert((method.to_owned(), path.join("/")));
            }
        }
    }
    out
}

#[test]
fn the_document_and_the_router_name_the_same_routes() {
    let doc: Value = serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            documented.insert((method.clone(), path.clone()));
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}: no answer described");
            if method != "options" && path != "/" {
                let error = &op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(error, "#/components/schemas/Error", "{method} {path}: the error answer");
            }
            if let Some(body) = op.get("requestBody") {
                for (media, content) in body["content"].as_object().expect("content") {
                    assert!(content.get("schema").is_some(), "{method} {path}: no schema for {media}");
                }
            }
            for r in responses.values() {
                for content in r.get("content").and_then(Value::as_object).into_iter().flatten().map(|(_, c)| c) {
                    assert!(content.get("schema").is_some(), "{method} {path}: an answer without a schema");
                }
            }
        }
    }
    let served = routes();
    assert!(served.len() > 30, "the routes were read: {served:?}");
    let missing: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "served but not documented: {missing:?}; documented but not served: {stale:?}"
    );
}

#[test]
fn every_schema_reference_resolves() {
    let text = include_str!("../openapi.json");
    let doc: Value = serde_json::from_str(text).expect("JSON");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for (i, _) in text.match_indices("\"#/components/schemas/") {
        let name = text.get(i + 22..).and_then(|r| r.split('"').next()).unwrap_or("");
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
}
