//! The compact rule form the browser receives in its config.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microfunnel_core::scoring::Rules;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = Rules::from_compact(&v);
});
