//! Every consent signal decoder: the explicit choice,
//! Consent Mode, the TCF string, a stamp, and all of them resolved together.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microfunnel_core::consent::{ConsentMode, ConsentSignals, ConsentStamp, ExplicitChoice, TcfSignal, resolve};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = ExplicitChoice::parse(&v);
    let _ = ConsentMode::from_json(&v);
    let _ = TcfSignal::from_json(&v);
    if let Ok(stamp) = ConsentStamp::parse(&v) {
        let again = serde_json::to_value(&stamp).expect("a stamp encodes");
        assert_eq!(ConsentStamp::parse(&again).as_ref(), Ok(&stamp), "a stamp reads back");
    }
    if let Ok(signals) = serde_json::from_value::<ConsentSignals>(v) {
        let _ = resolve(&signals);
    }
});
