//! Journeys, touches, path tables and channel interning.

use super::AttributionError;
use crate::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A channel interned in an [`Interner`].
pub type ChannelId = u32;

/// Channel names ↔ dense ids, in order of first appearance.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    names: Vec<String>,
    index: HashMap<String, ChannelId>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, adding it if new.
    pub fn intern(&mut self, name: &str) -> ChannelId {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as ChannelId;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), id);
        id
    }

    pub fn get(&self, name: &str) -> Option<ChannelId> {
        self.index.get(name).copied()
    }

    pub fn name(&self, id: ChannelId) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every id, sorted by channel name (byte order): the output order.
    pub fn sorted_ids(&self) -> Vec<ChannelId> {
        let mut ids: Vec<ChannelId> = (0..self.names.len() as ChannelId).collect();
        ids.sort_by(|a, b| self.name(*a).cmp(self.name(*b)));
        ids
    }
}

/// One touchpoint: a channel (a GA4 group name from `crate::channel::Channel`
/// when it comes from events, any string otherwise) and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Touch {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

impl Touch {
    pub fn new(channel: impl Into<String>, at: Option<Timestamp>) -> Self {
        Self { channel: channel.into(), at }
    }
}

/// A conversion: its value in integer minor units (cents) and, optionally,
/// when it happened (default: the last touch's time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversion {
    #[serde(default)]
    pub value_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

/// One channel's share of one conversion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Credit {
    pub channel: String,
    /// Fraction of the conversion (all credits' fractions sum to 1).
    pub conversions: f64,
    /// Minor units; all credits sum exactly to the conversion value.
    pub value_minor: i64,
}

/// The credits of one conversion, sorted by channel name. When no touch is
/// left (empty journey, or every touch outside the lookback window) the
/// whole conversion is `unattributed`, so `Σ value_minor + unattributed_minor`
/// always equals the conversion value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Credits {
    pub model: String,
    pub credits: Vec<Credit>,
    pub unattributed_conversions: f64,
    pub unattributed_minor: i64,
    /// How many touches the credit rests on (after the lookback cut-off).
    pub touches_used: usize,
}

/// One row of a path table (ChannelAttribution's shape).
#[derive(Debug, Clone, PartialEq)]
pub struct PathRow {
    pub steps: Vec<ChannelId>,
    pub conversions: f64,
    pub value: f64,
    pub nulls: f64,
    /// Hours from each step to the conversion (time decay only).
    pub ages_h: Option<Vec<f64>>,
}

/// Aggregated journeys: one row per path with its conversions, value and
/// non-converting journeys.
#[derive(Debug, Clone, Default)]
pub struct PathTable {
    pub channels: Interner,
    pub rows: Vec<PathRow>,
}

fn check_amount(field: &str, x: f64) -> Result<(), AttributionError> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(AttributionError::invalid(field, "must be a finite number ≥ 0"))
    }
}

impl PathTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a ChannelAttribution path (`"A > B > C"`): steps split on `sep`,
    /// surrounding whitespace trimmed, empty steps skipped (as
    /// ChannelAttribution does); a path with no step at all is an error.
    pub fn push_path(
        &mut self,
        path: &str,
        sep: char,
        conversions: f64,
        value: f64,
        nulls: f64,
    ) -> Result<(), AttributionError> {
        let mut steps = Vec::new();
        for step in path.split(sep) {
            let step = step.trim();
            if !step.is_empty() {
                steps.push(self.channels.intern(step));
            }
        }
        self.push_ids(steps, conversions, value, nulls, None)
    }

    /// Adds a path of channel names, with optional per-step ages in hours.
    pub fn push_names<S: AsRef<str>>(
        &mut self,
        names: &[S],
        conversions: f64,
        value: f64,
        nulls: f64,
        ages_h: Option<Vec<f64>>,
    ) -> Result<(), AttributionError> {
        let steps = names.iter().map(|n| self.channels.intern(n.as_ref())).collect();
        self.push_ids(steps, conversions, value, nulls, ages_h)
    }

    fn push_ids(
        &mut self,
        steps: Vec<ChannelId>,
        conversions: f64,
        value: f64,
        nulls: f64,
        ages_h: Option<Vec<f64>>,
    ) -> Result<(), AttributionError> {
        if steps.is_empty() {
            return Err(AttributionError::EmptyPath);
        }
        check_amount("total_conversions", conversions)?;
        check_amount("total_conversion_value", value)?;
        check_amount("total_null", nulls)?;
        if let Some(a) = &ages_h {
            if a.len() != steps.len() {
                return Err(AttributionError::invalid("ages_h", "must have one age per step"));
            }
            for x in a {
                check_amount("ages_h", *x)?;
            }
        }
        self.rows.push(PathRow { steps, conversions, value, nulls, ages_h });
        Ok(())
    }

    pub fn total_conversions(&self) -> f64 {
        self.rows.iter().map(|r| r.conversions).sum()
    }

    pub fn total_value(&self) -> f64 {
        self.rows.iter().map(|r| r.value).sum()
    }

    /// Journeys the table rests on: conversions plus non-converting paths.
    pub fn journeys(&self) -> f64 {
        self.rows.iter().map(|r| r.conversions + r.nulls).sum()
    }
}
