//! `microfunnel-browser`: the WebAssembly module the script tag loads —
//! consent-aware capture, live local scoring, CTA switching and transport.
//!
//! What it must never do: decide a score, a channel or what consent allows by
//! itself (it calls `microfunnel-core`); send or store anything before the
//! matching consent; panic (no `unwrap`/`expect`/fallible indexing: a panic
//! kills the module for the rest of the page's life).

use wasm_bindgen::prelude::*;

/// Runs one golden-vector file through the core, returning the report as
/// JSON. Test builds only (`--features vectors`).
#[cfg(feature = "vectors")]
#[wasm_bindgen(js_name = runVectorFile)]
pub fn run_vector_file(text: &str) -> Result<String, JsValue> {
    let report = microfunnel_core::vectors::run_file(text).map_err(|e| JsValue::from_str(&e))?;
    serde_json_string(&report)
}

#[cfg(feature = "vectors")]
fn serde_json_string(report: &microfunnel_core::vectors::FileReport) -> Result<String, JsValue> {
    let failures: Vec<String> = report.failures.iter().map(|f| f.name.clone()).collect();
    Ok(format!("{{\"suite\":{:?},\"passed\":{},\"failed\":{:?}}}", report.suite, report.passed, failures))
}

/// The core's consent policy version, so the loader can stamp events.
#[wasm_bindgen(js_name = policyVersion)]
pub fn policy_version() -> u32 {
    microfunnel_core::consent::POLICY_VERSION
}
