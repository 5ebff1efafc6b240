//! Progressive attribution: credit updated the moment a touch or a
//! conversion arrives, without re-reading history.
//!
//! Per visitor the open journey (touches since their last conversion) is
//! kept. A touch appends to it (O(1)); [`Progressive::provisional`] shows
//! what the journey would earn if it converted now (O(path length)); a
//! conversion attributes it with the heuristic model, adds the credits to
//! the per-channel totals and records the path in the Markov transition
//! counts and the Shapley set counts (O(path length)), then closes the
//! journey. [`Progressive::abandon`] closes it as a non-converting (null)
//! path. Markov and Shapley results are solved from those counts alone.
//! The recorded path is the visitor's journey in time order (all touches
//! since the last conversion, up to the conversion time).

use super::journey::{ChannelId, Conversion, Credit, Credits, Interner, Touch};
use super::markov::{MarkovCounts, MarkovOptions, MarkovResult};
use super::shapley::{SetCounts, ShapleyOptions, ShapleyResult};
use super::{AttributionError, Model, attribute};
use crate::timestamp::Timestamp;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Progressive {
    model: Model,
    lookback_h: Option<f64>,
    channels: Interner,
    open: HashMap<String, Vec<(ChannelId, Option<Timestamp>)>>,
    conversions: Vec<f64>,
    value_minor: Vec<i64>,
    unattributed_conversions: f64,
    unattributed_minor: i64,
    markov: MarkovCounts,
    sets: SetCounts,
}

/// Running per-channel totals (sorted by channel name).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Totals {
    pub credits: Vec<Credit>,
    pub unattributed_conversions: f64,
    pub unattributed_minor: i64,
}

impl Progressive {
    pub fn new(model: Model, lookback_h: Option<f64>, markov_order: usize) -> Result<Self, AttributionError> {
        Ok(Self {
            model,
            lookback_h,
            channels: Interner::new(),
            open: HashMap::new(),
            conversions: Vec::new(),
            value_minor: Vec::new(),
            unattributed_conversions: 0.0,
            unattributed_minor: 0,
            markov: MarkovCounts::new(markov_order)?,
            sets: SetCounts::new(),
        })
    }

    /// A touch arrives for `visitor`.
    pub fn touch(&mut self, visitor: &str, channel: &str, at: Option<Timestamp>) {
        let id = self.channels.intern(channel);
        if self.conversions.len() < self.channels.len() {
            self.conversions.resize(self.channels.len(), 0.0);
            self.value_minor.resize(self.channels.len(), 0);
        }
        self.open.entry(visitor.to_owned()).or_default().push((id, at));
    }

    fn journey(&self, visitor: &str) -> Vec<Touch> {
        self.open
            .get(visitor)
            .map_or_else(Vec::new, |v| v.iter().map(|&(c, at)| Touch::new(self.channels.name(c), at)).collect())
    }

    /// What the open journey would earn if it converted now with `conversion`.
    pub fn provisional(&self, visitor: &str, conversion: &Conversion) -> Result<Credits, AttributionError> {
        attribute(&self.model, &self.journey(visitor), conversion, self.lookback_h)
    }

    /// A conversion arrives: attribute, add to the totals, record the path,
    /// close the journey. On error nothing changes.
    pub fn convert(&mut self, visitor: &str, conversion: &Conversion) -> Result<Credits, AttributionError> {
        let credits = self.provisional(visitor, conversion)?;
        for c in &credits.credits {
            if let Some(id) = self.channels.get(&c.channel) {
                if let Some(x) = self.conversions.get_mut(id as usize) {
                    *x += c.conversions;
                }
                if let Some(x) = self.value_minor.get_mut(id as usize) {
                    *x = x.saturating_add(c.value_minor);
                }
            }
        }
        self.unattributed_conversions += credits.unattributed_conversions;
        self.unattributed_minor = self.unattributed_minor.saturating_add(credits.unattributed_minor);
        let steps = self.close(visitor, conversion.at);
        let value = conversion.value_minor as f64;
        self.markov.add_path(&steps, 1.0, value, 0.0);
        self.sets.add(&steps, 1.0, value, 0.0);
        Ok(credits)
    }

    /// The visitor leaves without converting: a null path.
    pub fn abandon(&mut self, visitor: &str) {
        let steps = self.close(visitor, None);
        self.markov.add_path(&steps, 0.0, 0.0, 1.0);
        self.sets.add(&steps, 0.0, 0.0, 1.0);
    }

    fn close(&mut self, visitor: &str, until: Option<Timestamp>) -> Vec<ChannelId> {
        let mut touches = self.open.remove(visitor).unwrap_or_default();
        touches.sort_by_key(|(_, at)| *at);
        touches
            .into_iter()
            .filter(|(_, at)| match (until, at) {
                (Some(u), Some(t)) => *t <= u,
                _ => true,
            })
            .map(|(c, _)| c)
            .collect()
    }

    pub fn totals(&self) -> Totals {
        let credits = self
            .channels
            .sorted_ids()
            .into_iter()
            .filter_map(|c| {
                let conv = self.conversions.get(c as usize).copied().unwrap_or(0.0);
                let v = self.value_minor.get(c as usize).copied().unwrap_or(0);
                (conv != 0.0 || v != 0).then(|| Credit {
                    channel: self.channels.name(c).to_owned(),
                    conversions: conv,
                    value_minor: v,
                })
            })
            .collect();
        Totals {
            credits,
            unattributed_conversions: self.unattributed_conversions,
            unattributed_minor: self.unattributed_minor,
        }
    }

    pub fn markov(&self, opts: &MarkovOptions) -> Result<MarkovResult, AttributionError> {
        self.markov.solve(&self.channels, opts)
    }

    pub fn shapley(&self, opts: &ShapleyOptions) -> Result<ShapleyResult, AttributionError> {
        self.sets.shapley(&self.channels, opts)
    }

    pub fn zhao(&self, min_journeys: f64) -> Result<ShapleyResult, AttributionError> {
        self.sets.zhao(&self.channels, min_journeys)
    }
}
