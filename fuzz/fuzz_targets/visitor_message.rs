//! The visitor object's protocol messages, requests and replies.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| microfunnel_edge::fuzzing::visitor_message(data));
