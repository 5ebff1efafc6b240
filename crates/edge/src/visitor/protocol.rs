//! The internal protocol between the Worker ([`super::client`]) and the
//! visitor's object ([`super::object`]): one type per message, used by both
//! sides, and the route (method and path) of each request defined once, in
//! [`Call`]. Both sides ship in the same Worker, so the wire form only has to
//! agree with itself.

use microfunnel_core::conversion::{Definitions, Recorded};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::Method;

/// Every request the object serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Apply,
    Score,
    Withdraw,
    Handover,
    Import,
    Retire,
    Export,
    Erase,
    Sweep,
}

impl Route {
    const ALL: [Route; 9] = [
        Route::Apply,
        Route::Score,
        Route::Withdraw,
        Route::Handover,
        Route::Import,
        Route::Retire,
        Route::Export,
        Route::Erase,
        Route::Sweep,
    ];

    pub fn method(self) -> Method {
        match self {
            Route::Export => Method::Get,
            Route::Erase => Method::Delete,
            _ => Method::Post,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Route::Apply => "/apply",
            Route::Score => "/score",
            Route::Withdraw => "/withdraw",
            Route::Handover => "/handover",
            Route::Import => "/import",
            Route::Retire => "/retire",
            Route::Export => "/export",
            Route::Erase => "/",
            Route::Sweep => "/sweep",
        }
    }

    pub fn of(method: &Method, path: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.path() == path && r.method() == *method)
    }

    /// Requests a merged visitor does not take: it answers [`Reply::Moved`]
    /// and the Worker follows. The others (hand-over, retire, export, erase)
    /// are about the forward itself.
    pub fn forwards(self) -> bool {
        matches!(self, Route::Apply | Route::Score | Route::Withdraw | Route::Import)
    }

    /// The error code of a body that does not decode.
    pub fn invalid(self) -> &'static str {
        match self {
            Route::Apply => "invalid_apply",
            Route::Score => "invalid_score",
            Route::Withdraw => "invalid_withdraw",
            Route::Handover => "invalid_handover",
            Route::Import => "invalid_import",
            Route::Retire | Route::Export | Route::Erase | Route::Sweep => "invalid_request",
        }
    }
}

/// A request: its route, whether it has a body, and the type of its reply.
pub trait Call: Serialize + DeserializeOwned {
    const ROUTE: Route;
    /// `false` for requests that carry nothing (a GET cannot have a body).
    const HAS_BODY: bool = true;
    type Reply: Serialize + DeserializeOwned;
}

/// What the object answers to every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "body", rename_all = "snake_case")]
pub enum Reply<T> {
    Done(T),
    /// This visitor was merged into `to`: ask there (see `client::follow`).
    Moved {
        to: String,
    },
}

/// One event for the visitor's ledger, as ingest stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedEvent {
    /// The minimised event's JSON.
    pub payload: String,
    pub channel: Option<String>,
    /// When the collector received it; the object's clock when absent.
    #[serde(default)]
    pub received_at: Option<i64>,
    /// `server` when an authenticated server sent it; anything else is
    /// the public endpoint's (a conversion value it states is a claim).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub site: String,
    pub visitor: String,
    pub rules: Value,
    pub conversions: Definitions,
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// Milliseconds of inactivity after which an open journey closes as a
    /// non-converting path.
    #[serde(default)]
    pub journey_timeout_ms: Option<i64>,
    pub events: Vec<AppliedEvent>,
    /// The site's `limits.ledger_events` (default: `ops::apply::LEDGER_CAP`).
    #[serde(default)]
    pub ledger_cap: Option<i64>,
}

/// `visitor` is the one that took the events, after any forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyReply {
    pub visitor: String,
    pub score: Value,
    pub tier: String,
    pub new: usize,
    pub tier_changes: Vec<Value>,
    pub conversions: Vec<Value>,
}

impl Call for ApplyRequest {
    const ROUTE: Route = Route::Apply;
    type Reply = ApplyReply;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRequest {
    #[serde(default)]
    pub rules: Value,
    /// The site's conversions: the stages they enter are part of the score.
    pub conversions: Definitions,
}

impl Call for ScoreRequest {
    const ROUTE: Route = Route::Score;
    /// The score with its explanation (`scoring::Score`'s serde form).
    type Reply = Value;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithdrawRequest {
    pub site: String,
    pub visitor: String,
    pub rules: Value,
    pub conversions: Definitions,
    /// The site's `MinimisePolicy`, kept with the withdrawal as sent.
    pub policy: Value,
    /// The new `ConsentStamp`.
    pub consent: Value,
    pub at: i64,
    /// Only this anonymousId's events (a device not linked by a verified
    /// identity); `None`: the whole profile.
    #[serde(default)]
    pub device: Option<String>,
    /// The device that sent it, whose receipt it is (whatever it reaches).
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithdrawReply {
    pub visitor: String,
    pub score: Value,
    pub tier: String,
    pub kept: i64,
    pub removed: i64,
}

impl Call for WithdrawRequest {
    const ROUTE: Route = Route::Withdraw;
    type Reply = WithdrawReply;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoverRequest {
    pub into: String,
    /// Which page of the ledger (0 first; the other rows come with it).
    #[serde(default)]
    pub page: u32,
}

/// A ledger row as the object stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedLedgerRow {
    pub message_id: String,
    pub ts: f64,
    pub received_at: f64,
    pub channel: Option<String>,
    pub payload: String,
}

/// A touch of the open journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedJourneyRow {
    pub message_id: String,
    pub ts: f64,
    pub channel: String,
}

/// A withdrawal as the object stores it (`consent` and `policy` as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithdrawalRow {
    pub at: f64,
    pub consent: String,
    pub policy: String,
    /// The device it was limited to, if any.
    #[serde(default)]
    pub device: Option<String>,
    /// A consent receipt (the visitor's choice as of `at`, a grant or a
    /// withdrawal) rather than the folded withdrawal.
    #[serde(default)]
    pub receipt: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HandoverReply {
    /// Handed over and retired already: its rows are where it forwards to.
    Retired { merged_into: Option<String> },
    /// Everything the other object needs to take this visitor over.
    Rows {
        ledger: Vec<HandedLedgerRow>,
        journey: Vec<HandedJourneyRow>,
        withdrawals: Vec<WithdrawalRow>,
        /// When this object's last journey closed (see `Store::closed_at`).
        closed_at: Option<i64>,
        /// The conversions credited here, for later ones that inherit or
        /// adjust them on the other device's profile.
        #[serde(default)]
        converted: Vec<Recorded>,
        /// The carry of rows its ledger cap dropped (the core's JSON).
        #[serde(default)]
        carry: Option<String>,
        /// More ledger pages follow this one.
        #[serde(default)]
        more: bool,
    },
}

impl Call for HandoverRequest {
    const ROUTE: Route = Route::Handover;
    type Reply = HandoverReply;
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRequest {
    pub site: String,
    pub visitor: String,
    pub rules: Value,
    pub conversions: Definitions,
    pub journey_timeout_ms: i64,
    pub ledger: Vec<HandedLedgerRow>,
    pub journey: Vec<HandedJourneyRow>,
    pub withdrawals: Vec<WithdrawalRow>,
    #[serde(default)]
    pub converted: Vec<Recorded>,
    /// The handing object's carry of capped rows, taken when this one has none.
    #[serde(default)]
    pub carry: Option<String>,
    /// The last page of the hand-over: the score is rebuilt after it only.
    #[serde(default = "yes")]
    pub last: bool,
    /// When the handing object's last journey closed.
    #[serde(default)]
    pub closed_at: Option<i64>,
    /// The handing visitor: kept (`merged_from`) so erasing this visitor
    /// erases its forward too.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReply {
    pub visitor: String,
    pub score: Value,
    pub tier: String,
    pub events: i64,
}

impl Call for ImportRequest {
    const ROUTE: Route = Route::Import;
    type Reply = ImportReply;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetireRequest {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetireReply {}

impl Call for RetireRequest {
    const ROUTE: Route = Route::Retire;
    const HAS_BODY: bool = false;
    type Reply = RetireReply;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRequest {}

/// The object's state for a subject access request (payloads as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportReply {
    pub ledger: Vec<Value>,
    pub journey: Vec<Value>,
    pub withdrawals: Vec<Value>,
    /// The conversions credited, each with the path it was credited on.
    #[serde(default)]
    pub converted: Vec<Recorded>,
    pub merged_into: Option<String>,
    /// The score state carried for ledger rows the cap dropped.
    #[serde(default)]
    pub carried: Option<Value>,
}

impl Call for ExportRequest {
    const ROUTE: Route = Route::Export;
    const HAS_BODY: bool = false;
    type Reply = ExportReply;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EraseRequest {}

/// `merged_from`: the visitors merged into this one, whose forwards are
/// erased next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EraseReply {
    pub erased_events: i64,
    pub merged_from: Vec<String>,
}

impl Call for EraseRequest {
    const ROUTE: Route = Route::Erase;
    const HAS_BODY: bool = false;
    type Reply = EraseReply;
}

/// Retention: every row about an instant before `before` (milliseconds) goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRequest {
    pub before: i64,
}

/// `dropped`: nothing was left, and the object deleted itself; otherwise
/// `oldest` is its earliest remaining event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReply {
    pub removed: i64,
    pub dropped: bool,
    pub oldest: Option<i64>,
}

impl Call for SweepRequest {
    const ROUTE: Route = Route::Sweep;
    type Reply = SweepReply;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A regression from `cargo xtask fuzz` (visitor_message): an 87-digit
    /// number read into a `Value`, written and read again, must be the same
    /// number — the default float parser was one ulp off.
    #[test]
    fn long_numbers_survive_the_round_trip() {
        // As a sequence: the rules (the long number), then no conversions.
        let body = format!("[{}, []]", "8".repeat(87));
        let first: ScoreRequest = serde_json::from_str(&body).unwrap();
        let again: ScoreRequest = serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        assert_eq!(first, again);
    }

    /// Through JSON text and back, bare and in both replies: the text read
    /// back writes the same text again.
    fn round_trip<T: Serialize + DeserializeOwned + Clone>(value: T) {
        fn again<U: Serialize + DeserializeOwned>(text: &str) -> String {
            serde_json::to_string(&serde_json::from_str::<U>(text).unwrap()).unwrap()
        }
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(again::<T>(&text), text);
        for reply in [Reply::Done(value), Reply::Moved { to: "v2".into() }] {
            let text = serde_json::to_string(&reply).unwrap();
            assert_eq!(again::<Reply<T>>(&text), text);
        }
    }

    fn ledger_row() -> HandedLedgerRow {
        HandedLedgerRow {
            message_id: "m1".into(),
            ts: 1.0,
            received_at: 2.0,
            channel: Some("Direct".into()),
            payload: "{}".into(),
        }
    }

    fn recorded() -> Recorded {
        serde_json::from_value(json!({
            "message_id": "m1", "name": "Contact Submitted", "at": "2026-03-02T09:05:00.000Z", "value_minor": 15000,
            "transaction_id": "INV-1", "touches": [{"channel": "Email", "at": "2026-03-02T09:00:00.000Z"}]
        }))
        .unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(ApplyRequest {
            site: "s".into(),
            visitor: "v".into(),
            rules: json!({"version": "1"}),
            conversions: Definitions::from_json(&json!([
                {"event": "Contact Submitted", "currency": "JPY"},
                {"event": "Client Signed", "value_property": "value", "inherits": "Contact Submitted"}
            ]))
            .unwrap(),
            webhooks: vec!["https://example.com/hook".into()],
            journey_timeout_ms: Some(1_000),
            ledger_cap: Some(100),
            events: vec![
                AppliedEvent {
                    payload: "{}".into(),
                    channel: Some("Direct".into()),
                    received_at: Some(3),
                    source: Some("server".into()),
                },
                AppliedEvent { payload: "{}".into(), channel: None, received_at: None, source: None },
            ],
        });
        round_trip(ApplyReply {
            visitor: "v".into(),
            score: json!(1.5),
            tier: "cold".into(),
            new: 2,
            tier_changes: vec![json!({"from": "cold", "to": "warm"})],
            conversions: Vec::new(),
        });
        let staged = Definitions::from_json(&json!([{"event": "Client Signed", "stage": "client"}])).unwrap();
        round_trip(ScoreRequest { rules: json!({}), conversions: staged.clone() });
        round_trip(json!({"score": 3}));
        round_trip(WithdrawRequest {
            site: "s".into(),
            visitor: "v".into(),
            rules: json!({}),
            conversions: staged.clone(),
            policy: json!({"cookieless_pageviews": true}),
            consent: json!({"analytics": false}),
            at: 5,
            device: Some("d".into()),
            from: Some("d".into()),
        });
        round_trip(WithdrawReply { visitor: "v".into(), score: json!(0), tier: "cold".into(), kept: 1, removed: 2 });
        round_trip(HandoverRequest { into: "v2".into(), page: 3 });
        round_trip(HandoverReply::Retired { merged_into: Some("v2".into()) });
        round_trip(HandoverReply::Retired { merged_into: None });
        round_trip(HandoverReply::Rows {
            ledger: vec![ledger_row()],
            journey: vec![HandedJourneyRow { message_id: "m1".into(), ts: 1.0, channel: "Direct".into() }],
            withdrawals: vec![WithdrawalRow {
                at: 4.0,
                consent: "{}".into(),
                policy: "{}".into(),
                device: Some("d".into()),
                receipt: true,
            }],
            closed_at: Some(7),
            converted: vec![recorded()],
            carry: Some("{}".into()),
            more: true,
        });
        round_trip(ImportRequest {
            site: "s".into(),
            visitor: "v2".into(),
            rules: json!({}),
            conversions: staged,
            journey_timeout_ms: 10,
            ledger: vec![ledger_row()],
            journey: Vec::new(),
            withdrawals: Vec::new(),
            converted: vec![recorded()],
            carry: None,
            last: false,
            closed_at: None,
            from: "v".into(),
        });
        round_trip(ImportReply { visitor: "v2".into(), score: json!(2), tier: "warm".into(), events: 3 });
        round_trip(RetireRequest {});
        round_trip(RetireReply {});
        round_trip(ExportRequest {});
        round_trip(ExportReply {
            ledger: vec![json!({"message_id": "m1", "payload": {}})],
            journey: Vec::new(),
            withdrawals: Vec::new(),
            converted: vec![recorded()],
            merged_into: None,
            carried: Some(json!({"rules_version": "v1"})),
        });
        round_trip(EraseRequest {});
        round_trip(EraseReply { erased_events: 4, merged_from: vec!["v0".into()] });
    }

    #[test]
    fn a_forward_is_never_read_as_a_reply() {
        // A reply whose body happens to look like a forward stays a reply.
        let done = serde_json::to_string(&Reply::Done(json!({"to": "x", "moved_to": "y"}))).unwrap();
        assert!(matches!(serde_json::from_str::<Reply<Value>>(&done).unwrap(), Reply::Done(_)));
        let moved = serde_json::to_string(&Reply::<Value>::Moved { to: "x".into() }).unwrap();
        assert_eq!(serde_json::from_str::<Reply<Value>>(&moved).unwrap(), Reply::Moved { to: "x".into() });
    }

    #[test]
    fn routes_are_found_by_method_and_path() {
        for route in Route::ALL {
            assert_eq!(Route::of(&route.method(), route.path()), Some(route));
        }
        assert_eq!(Route::of(&Method::Get, "/apply"), None);
        assert_eq!(Route::of(&Method::Post, "/nowhere"), None);
    }
}
