//! Rule files as an admin or the CLI gives them: TOML and JSON text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microfunnel_core::scoring::Rules;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Rules::from_toml(text);
    let _ = Rules::from_json(text);
});
