//! The wasm side of the golden vectors: every file under `tests/vectors/`,
//! run by the core compiled to wasm32 inside headless Chromium
//! (`cargo xtask test` runs this with wasm-bindgen-test-runner and
//! /usr/bin/chromedriver).
// Test harnesses: failing loudly is their job.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg(all(target_arch = "wasm32", feature = "vectors"))]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn check(file: &str, text: &str) {
    let report = microfunnel_core::vectors::run_file(text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut msg = String::new();
    for f in &report.failures {
        msg.push_str(&format!(
            "\n{file} :: {}\n  input:    {}\n  expected: {}\n  actual:   {}",
            f.name, f.input, f.expected, f.actual
        ));
    }
    assert!(report.failures.is_empty(), "{} case(s) failed in wasm:{msg}", report.failures.len());
    assert!(report.passed > 0, "{file}: no case ran");
    wasm_bindgen_test::console_log!("vectors (wasm): {} cases in {file}", report.passed);
}

include!(concat!(env!("OUT_DIR"), "/vector_tests.rs"));

// A build with no vector file embedded must not pass by running nothing.
const _: () = assert!(FILE_COUNT > 0, "no vector files were embedded");

/// A real-browser sanity check that this really runs in Chromium.
#[wasm_bindgen_test::wasm_bindgen_test]
fn runs_in_a_browser_window() {
    let ua = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"userAgent".into()))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    assert!(ua.contains("Chrome"), "not in Chromium: {ua:?}");
}
