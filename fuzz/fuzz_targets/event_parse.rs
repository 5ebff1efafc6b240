//! `Event::parse` on any JSON, then what every side does next with an event
//! that passed: its channel, its minimisation, its wire form read back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microfunnel_core::consent::{Consent, MinimisePolicy, minimise_with};
use microfunnel_core::{Event, Limits, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let now = Timestamp::from_millis(1_795_000_000_000).expect("a fixed instant");
    let Ok(mut event) = Event::parse(&raw, &Limits::DEFAULT, now) else { return };
    event.derive_channel(&Default::default());
    let consent = event.consent.as_ref().map_or(Consent::DENIED, Consent::from_stamp);
    if let Some(e) = minimise_with(event.clone(), &consent, &MinimisePolicy::default()).event {
        Event::parse(&e.to_json(), &Limits::DEFAULT, now).expect("a minimised event is still valid");
    }
    Event::parse(&event.to_json(), &Limits::DEFAULT, now).expect("an event's wire form reads back");
});
