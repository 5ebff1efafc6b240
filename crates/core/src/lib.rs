//! `microfunnel-core`: the pure domain logic shared by the browser module, the
//! edge Worker and the CLI — events, consent, channels, URL minimisation, lead
//! scoring, conversions, money, attribution and holdout experiments.
//!
//! What it must never do: perform I/O (network, files, storage, clocks,
//! randomness), or depend on a platform crate (`wasm-bindgen`, `web-sys`,
//! `js-sys`, `worker`). Time and ids are passed in by the caller, so every
//! function here is deterministic and runs identically natively, in wasm in a
//! browser, and in workerd. `tests/boundaries.rs` enforces the dependency
//! rule (from `cargo metadata`) and that no two modules import each other,
//! directly or through others.

pub mod attribution;
pub mod channel;
pub mod clv;
pub mod consent;
pub mod conversion;
pub mod error;
pub mod event;
pub mod experiment;
pub mod identity;
pub mod intent;
pub mod money;
pub mod pii;
pub mod scoring;
pub mod site_config;
mod text;
pub mod timestamp;
pub mod url;

#[cfg(feature = "vectors")]
pub mod vectors;
// The vector suites name the crate as its users do (`microfunnel_core::…`);
// `tests/vectors.rs` compiles the same files outside the crate, so a suite
// that reaches past the public API does not build.
#[cfg(feature = "vectors")]
extern crate self as microfunnel_core;

pub use channel::{Channel, ChannelInput, ChannelRules, ClickId};
pub use consent::{Consent, ConsentSignals, Purpose};
pub use error::ValidationError;
pub use event::{Event, EventType, Limits};
pub use timestamp::Timestamp;
