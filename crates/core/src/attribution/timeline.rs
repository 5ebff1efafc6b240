//! A visitor's timeline as attribution sees it: which events are touches,
//! when a session starts, and which late touches belong to a path already
//! closed. The edge's visitor object keeps the state (sessions, the open
//! journey, when it last closed) and asks these functions at every event;
//! [`Timeline`] keeps the same state in memory for the vectors and the CLI.
//!
//! - A **session** is a run of events with gaps shorter than the session
//!   timeout — the rule file's `session_timeout_minutes`, the same one
//!   scoring's once-per-session actions count by. An event within the
//!   timeout of the end of the latest session that started at or before it
//!   extends that session; any other starts one.
//! - A **touch** is a page view, or an event declaring its channel
//!   (`context.channel`: an offline touch — a call, a fair). A page view is a
//!   new touch of the open journey when its channel differs from the last
//!   touch's or it starts a session (a new visit on the same channel counts
//!   again); otherwise it is the same visit. A declared channel is always a
//!   touch.
//! - A journey **closes** with the conversion that is credited on it (see
//!   `conversion::credit_on`) or when it expires unconverted (a null path).
//!   A touch at or before the instant the last journey closed — an offline
//!   event that arrives late, another device's touch brought in by a merge —
//!   belongs to a path already counted: it never opens the next one.

use crate::timestamp::Timestamp;
use serde::Serialize;

/// What kind of event, for the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Page,
    /// Any event whose `context.channel` declares where it happened.
    Declared,
    /// Everything else: it extends or starts a session, never touches.
    Other,
}

/// Whether an event starts a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStep {
    Extends,
    Starts,
}

/// What an event is to the open journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchStep {
    /// Neither a page view nor a declared channel (or no channel known).
    NotATouch,
    /// At or before the last close: part of a path already counted.
    ClosedPath,
    /// The same channel in the same session as the last touch.
    SameVisit,
    /// A new touch of the open journey.
    Touch,
}

/// `at` against the end of the latest session that started at or before it.
pub fn session_step(at: Timestamp, previous_end: Option<Timestamp>, session_timeout_ms: i64) -> SessionStep {
    match previous_end {
        Some(end) if at.millis().saturating_sub(end.millis()) < session_timeout_ms => SessionStep::Extends,
        _ => SessionStep::Starts,
    }
}

/// An event of `kind` on `channel` at `at`, given the open journey's last
/// touch's channel, whether the event starts a session ([`session_step`])
/// and when the last journey closed.
pub fn touch_step(
    kind: Kind,
    channel: Option<&str>,
    at: Timestamp,
    last_touch: Option<&str>,
    session: SessionStep,
    closed_at: Option<Timestamp>,
) -> TouchStep {
    let Some(channel) = channel else { return TouchStep::NotATouch };
    if kind == Kind::Other {
        return TouchStep::NotATouch;
    }
    if closed_at.is_some_and(|c| at <= c) {
        return TouchStep::ClosedPath;
    }
    let same = kind == Kind::Page && session == SessionStep::Extends && last_touch == Some(channel);
    if same { TouchStep::SameVisit } else { TouchStep::Touch }
}

/// The timeline of one visitor in memory, events fed in time order.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    session_timeout_ms: i64,
    /// (start, end) per session, in start order.
    sessions: Vec<(Timestamp, Timestamp)>,
    /// The open journey: (channel, at).
    touches: Vec<(String, Timestamp)>,
    closed_at: Option<Timestamp>,
}

/// What one event did: the session it belongs to (its index) and what it is
/// to the journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub session: usize,
    pub session_step: SessionStep,
    pub touch: TouchStep,
}

impl Timeline {
    pub fn new(session_timeout_ms: i64) -> Timeline {
        Timeline { session_timeout_ms, ..Timeline::default() }
    }

    /// One event.
    pub fn step(&mut self, kind: Kind, channel: Option<&str>, at: Timestamp) -> Step {
        let before = self.sessions.iter().rposition(|(start, _)| *start <= at);
        let step = session_step(at, before.and_then(|i| self.sessions.get(i)).map(|s| s.1), self.session_timeout_ms);
        let session = match (step, before) {
            (SessionStep::Extends, Some(i)) => {
                if let Some(s) = self.sessions.get_mut(i) {
                    s.1 = s.1.max(at);
                }
                i
            }
            _ => {
                let i = before.map_or(0, |i| i + 1);
                self.sessions.insert(i, (at, at));
                i
            }
        };
        let last = self.touches.last().map(|(c, _)| c.as_str());
        let touch = touch_step(kind, channel, at, last, step, self.closed_at);
        if let (TouchStep::Touch, Some(c)) = (touch, channel) {
            self.touches.push((c.to_owned(), at));
        }
        Step { session, session_step: step, touch }
    }

    /// The open journey closes at `at` (converted, or expired as a null).
    pub fn close(&mut self, at: Timestamp) {
        self.touches.clear();
        self.closed_at = Some(self.closed_at.map_or(at, |c| c.max(at)));
    }

    /// The open journey's touches.
    pub fn touches(&self) -> &[(String, Timestamp)] {
        &self.touches
    }

    /// (start, end) of every session, in start order.
    pub fn sessions(&self) -> &[(Timestamp, Timestamp)] {
        &self.sessions
    }
}
