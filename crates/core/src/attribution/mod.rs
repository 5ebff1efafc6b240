//! Attribution: heuristic and data-driven models over journeys.
//!
//! What this module owns: turning journeys (ordered touches, each naming a
//! channel) and conversions into per-channel credit, identically on every
//! runtime. It never reads a clock, a file or a random source: timestamps,
//! seeds and data are passed in.
//!
//! Two shapes of input:
//! - **one conversion** ([`attribute`]): a visitor's touches and the
//!   conversion's value in integer minor units; credits are integers that sum
//!   exactly to the value ([`split_minor`] documents the remainder rule);
//! - **a path table** ([`PathTable`]): ChannelAttribution's aggregate shape
//!   (`path`, `total_conversions`, `total_conversion_value`, `total_null`),
//!   attributed in `f64` by the heuristic models ([`table_totals`]),
//!   the exact Markov removal-effect model ([`fit_markov`]) and Shapley
//!   ([`SetCounts::shapley`]).
//!
//! Channels are arbitrary strings interned to `u32` ids ([`Interner`]); every
//! output lists channels sorted by name (byte order).

mod heuristic;
mod journey;
mod markov;
mod metrics;
mod money;
mod path;
mod shapley;
mod timeline;

pub use heuristic::{Model, PositionWeights, attribute, table_totals};
pub use journey::{ChannelId, Conversion, Credit, Credits, Interner, PathRow, PathTable, Touch};
pub use markov::{MarkovChannel, MarkovCounts, MarkovOptions, MarkovResult, Transition, fit as fit_markov};
pub use metrics::{Aqs, AqsInputs, Icv, Kpi, KpiInput, TtaStats, aqs, icv, kpi, percentile};
pub use money::split as split_minor;
pub use path::JourneyPath;
pub use shapley::{SetCounts, ShapleyChannel, ShapleyGame, ShapleyOptions, ShapleyResult};
pub use timeline::{Kind, SessionStep, Step, Timeline, TouchStep, session_step, touch_step};

use std::fmt;

/// Why an attribution could not be computed. Carries what went wrong and
/// where (touch index, path row), never panics.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributionError {
    /// A touch lacks a timestamp that the model or the lookback window needs.
    MissingTimestamp { touch: usize },
    /// A numeric parameter or field is out of range.
    Invalid { field: String, rule: String },
    /// A path with no channel in it.
    EmptyPath,
    /// A data-driven model was asked to rest on fewer journeys than required.
    TooFewJourneys { have: f64, need: f64 },
    /// The data has no conversion at all, so no share can be computed.
    NoConversions,
    /// Too many channels for the requested computation.
    TooManyChannels { have: usize, max: usize },
    /// An iterative solver did not reach its convergence threshold.
    NotConverged { iterations: usize },
}

impl AttributionError {
    pub(crate) fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), rule: rule.into() }
    }
}

impl fmt::Display for AttributionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingTimestamp { touch } => write!(f, "touches[{touch}].at: a timestamp is required"),
            Self::Invalid { field, rule } => write!(f, "{field}: {rule}"),
            Self::EmptyPath => f.write_str("path: must name at least one channel"),
            Self::TooFewJourneys { have, need } => {
                write!(f, "too few journeys for a data-driven model: {have} < {need}")
            }
            Self::NoConversions => f.write_str("no conversions: nothing to attribute"),
            Self::TooManyChannels { have, max } => write!(f, "too many channels: {have} > {max}"),
            Self::NotConverged { iterations } => write!(f, "solver did not converge in {iterations} iterations"),
        }
    }
}

impl std::error::Error for AttributionError {}

/// "Direct" carries no information for last-non-direct attribution. Matches
/// the GA4 group name and GA's `(direct)` source, ignoring ASCII case.
pub fn is_direct_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("direct") || name.eq_ignore_ascii_case("(direct)")
}
