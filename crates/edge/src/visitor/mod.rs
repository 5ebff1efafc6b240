//! The visitor's Durable Object (SQLite storage), one per `site:visitor`:
//! the visitor's ledger (every event, de-duplicated by `messageId`), the open
//! journey (touches since the last conversion), sessions, an outbox of
//! webhooks and the score, computed by the core's `Scorer` over the whole
//! ledger — across sessions, channels and offline events.
//!
//! Invariants:
//! - one object per `site:visitor`, and requests for it run one at a time;
//! - a request changes the ledger, journey, sessions and score with no await
//!   in between — in the synchronous `ops::apply::step`, and through the
//!   synchronous `store` before the first await of the other operations — so
//!   concurrent requests cannot interleave there and its score, journey and
//!   conversions stay consistent;
//! - what follows (D1 rows in `projection`, conversions, the webhook outbox,
//!   the journey's expiry, the alarm) is idempotent, so a retried request
//!   repeats it harmlessly;
//! - a visitor merged into another (same person, another device) keeps only
//!   a forward: requests that still reach it answer `protocol::Reply::Moved`
//!   and the Worker follows (`client::follow`).
//!
//! Map: `protocol` (the messages, both sides), `client` (the Worker side),
//! `object` (the Durable Object: decode, run, encode; alarm), `ops` (what
//! each request does), `store` (the object's SQLite), `projection` (the D1
//! rows derived from it).

mod client;
mod object;
mod ops;
mod projection;
pub(crate) mod protocol;
mod store;

pub use client::{apply, erase, export, merge, score, sweep, withdraw};
pub use object::Visitor;
pub use ops::LEDGER_CAP;
