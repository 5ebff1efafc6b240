//! A site's configuration as the collector stores and reads it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| microfunnel_edge::fuzzing::site_config(data));
