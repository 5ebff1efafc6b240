//! The CLI's readers: ChannelAttribution CSV and NDJSON journeys, NDJSON events.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microfunnel_cli::{attribute, score};
use microfunnel_core::Timestamp;

fuzz_target!(|data: &[u8]| {
    let _ = attribute::read_journeys(data, false);
    let _ = attribute::read_journeys(data, true);
    if let Ok(text) = std::str::from_utf8(data) {
        let at = Timestamp::from_millis(1_795_000_000_000).expect("a fixed instant");
        let _ = score::read_events(text, "fuzz.ndjson", at);
    }
});
