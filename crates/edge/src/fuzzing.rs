//! Entry points for `cargo xtask fuzz` (feature `fuzzing`; never in a
//! Worker build): the decoders of untrusted input this crate owns, fed raw
//! bytes. Each must answer an error, never panic; what decodes must encode
//! and decode again to the same value.

// A fuzz target reports a broken invariant by panicking: that is its job.
#![allow(clippy::expect_used, clippy::panic)]

use crate::sites::Config;
use crate::visitor::protocol::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A site configuration as `PATCH /v1/sites/{site}` and `Site::load` read it,
/// then everything derived from it.
pub fn site_config(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(config) = Config::from_json(&doc) {
        let _ = (config.site.browser_config("s"), config.site.minimise_policy());
        let text = serde_json::to_string(&config.to_json()).expect("a config that decoded encodes");
        let stored: serde_json::Value = serde_json::from_str(&text).expect("the stored form is JSON");
        assert_eq!(Config::from_json(&stored), Ok(config), "a stored config reads back equal");
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_vec(&v).expect("a message that decoded encodes");
        let again: T = serde_json::from_slice(&text).expect("an encoded message decodes");
        assert_eq!(v, again, "a message survives its round trip");
    }
}

/// The visitor object's messages, both ways; the first byte picks one.
pub fn visitor_message(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else { return };
    match pick % 17 {
        0 => {
            if let Ok(v) = serde_json::from_slice::<ApplyRequest>(body) {
                let text = serde_json::to_vec(&v).expect("an apply request encodes");
                serde_json::from_slice::<ApplyRequest>(&text).expect("an encoded apply request decodes");
            }
        }
        1 => round_trip::<Reply<ApplyReply>>(body),
        2 => round_trip::<ScoreRequest>(body),
        3 => round_trip::<WithdrawRequest>(body),
        4 => round_trip::<Reply<WithdrawReply>>(body),
        5 => round_trip::<HandoverRequest>(body),
        6 => round_trip::<Reply<HandoverReply>>(body),
        7 => round_trip::<ImportRequest>(body),
        8 => round_trip::<Reply<ImportReply>>(body),
        9 => round_trip::<RetireRequest>(body),
        10 => round_trip::<Reply<RetireReply>>(body),
        11 => round_trip::<ExportRequest>(body),
        12 => round_trip::<Reply<ExportReply>>(body),
        13 => round_trip::<EraseRequest>(body),
        14 => round_trip::<Reply<EraseReply>>(body),
        15 => round_trip::<SweepRequest>(body),
        _ => round_trip::<Reply<SweepReply>>(body),
    }
}
