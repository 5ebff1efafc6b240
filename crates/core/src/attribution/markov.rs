//! The Markov-chain removal-effect model (Anderl et al. 2014), solved
//! exactly from the absorbing chain — no simulation.
//!
//! **States.** `(start)`, the transient states, `(conversion)`, `(null)`.
//! With order k a transient state is a window of k consecutive channels
//! (sliding by one); a path shorter than k is one state made of the whole
//! path. Consecutive repeats of the same state are collapsed (self-loops do
//! not change absorption probabilities anyway). A path with c conversions
//! and u nulls adds c + u to each of its transitions, c to
//! `last → (conversion)` and u to `last → (null)`. This is
//! ChannelAttribution's construction.
//!
//! **Solution.** With Q the transient-to-transient probabilities and r the
//! one-step conversion probabilities, the conversion probability from each
//! state is x = (I − Q)⁻¹ r. P(conv) = x(start). Removing channel c (every
//! state containing c becomes `(null)`) gives P₋c; the removal effect is
//! RE_c = 1 − P₋c / P(conv) — equal to P(the journey visits c | it converts),
//! the quantity ChannelAttribution estimates by simulation. Credit_c =
//! C · RE_c / Σ RE. For value, the reward of a conversion reached from state
//! s is the mean value per conversion of the paths ending in s (as
//! ChannelAttribution draws it), and the same removal applies.
//!
//! **Solver.** Up to [`DENSE_MAX`] transient states: Gaussian elimination
//! with partial pivoting. Beyond (higher orders): Gauss–Seidel on the sparse
//! chain, iterated until no component moves by more than 1e-15 relative
//! (the chain is absorbing, so the iteration converges); fixed sweep order,
//! so deterministic.

use super::AttributionError;
use super::journey::{ChannelId, Interner, PathTable};
use super::path::JourneyPath;
use std::collections::HashMap;

/// Dense solve up to this many transient states.
pub const DENSE_MAX: usize = 400;
const GS_MAX_SWEEPS: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarkovOptions {
    /// Chain order k ≥ 1.
    pub order: usize,
    /// Refuse to fit on fewer journeys (conversions + nulls) than this.
    pub min_journeys: f64,
}

impl Default for MarkovOptions {
    fn default() -> Self {
        Self { order: 1, min_journeys: 0.0 }
    }
}

/// Transition counts: everything the model needs, updatable one path at a
/// time without keeping the paths.
#[derive(Debug, Clone)]
pub struct MarkovCounts {
    order: usize,
    /// Transient states' channel windows; index 0 is `(start)` (empty).
    keys: Vec<Vec<ChannelId>>,
    index: HashMap<Vec<ChannelId>, u32>,
    /// Order 1: channel id → state (u32::MAX if none yet), skipping the hash.
    by_channel: Vec<u32>,
    /// Outgoing transient transitions per state: (to, count).
    out: Vec<Vec<(u32, f64)>>,
    to_conv: Vec<f64>,
    to_null: Vec<f64>,
    /// Σ value of converting paths ending in each state.
    end_value: Vec<f64>,
    journeys: f64,
    conversions: f64,
    value: f64,
    scratch: Vec<u32>,
}

/// The fitted model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MarkovResult {
    pub order: usize,
    /// Channels (sorted by name) with their credit and removal effects.
    pub channels: Vec<MarkovChannel>,
    /// P(conversion) from `(start)` in the full chain.
    pub p_conversion: f64,
    pub total_conversions: f64,
    pub total_value: f64,
    /// Journeys (conversions + nulls) the result rests on.
    pub journeys: f64,
    pub states: usize,
    /// Transition probabilities, sorted by (from, to) name.
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MarkovChannel {
    pub channel: String,
    pub conversions: f64,
    pub value: f64,
    pub removal_effect: f64,
    pub removal_effect_value: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub probability: f64,
}

impl MarkovCounts {
    pub fn new(order: usize) -> Result<Self, AttributionError> {
        if order == 0 {
            return Err(AttributionError::invalid("order", "must be ≥ 1"));
        }
        Ok(Self {
            order,
            keys: vec![Vec::new()],
            index: HashMap::new(),
            by_channel: Vec::new(),
            out: vec![Vec::new()],
            to_conv: vec![0.0],
            to_null: vec![0.0],
            end_value: vec![0.0],
            journeys: 0.0,
            conversions: 0.0,
            value: 0.0,
            scratch: Vec::new(),
        })
    }

    /// Counts every row of a table.
    pub fn from_table(table: &PathTable, order: usize) -> Result<Self, AttributionError> {
        let mut m = Self::new(order)?;
        for row in &table.rows {
            m.add_path(&row.steps, row.conversions, row.value, row.nulls);
        }
        Ok(m)
    }

    fn state(&mut self, window: &[ChannelId]) -> u32 {
        if let [c] = window {
            if let Some(&s) = self.by_channel.get(*c as usize)
                && s != u32::MAX
            {
                return s;
            }
        } else if let Some(&s) = self.index.get(window) {
            return s;
        }
        let s = self.keys.len() as u32;
        self.keys.push(window.to_vec());
        if let [c] = window {
            let c = *c as usize;
            if self.by_channel.len() <= c {
                self.by_channel.resize(c + 1, u32::MAX);
            }
            if let Some(x) = self.by_channel.get_mut(c) {
                *x = s;
            }
        } else {
            self.index.insert(window.to_vec(), s);
        }
        self.out.push(Vec::new());
        self.to_conv.push(0.0);
        self.to_null.push(0.0);
        self.end_value.push(0.0);
        s
    }

    fn bump(&mut self, from: u32, to: u32, w: f64) {
        if let Some(list) = self.out.get_mut(from as usize) {
            match list.iter_mut().find(|(t, _)| *t == to) {
                Some((_, c)) => *c += w,
                None => list.push((to, w)),
            }
        }
    }

    /// Adds one path (O(path length)); an empty path is ignored.
    pub fn add_path(&mut self, steps: &[ChannelId], conversions: f64, value: f64, nulls: f64) {
        if steps.is_empty() {
            return;
        }
        let k = self.order.min(steps.len());
        let mut seq = std::mem::take(&mut self.scratch);
        seq.clear();
        for window in steps.windows(k) {
            let s = self.state(window);
            if seq.last() != Some(&s) {
                seq.push(s);
            }
        }
        self.journeys += conversions + nulls;
        self.conversions += conversions;
        self.value += value;
        let w = conversions + nulls;
        if w > 0.0 {
            let mut prev = 0;
            for &s in &seq {
                self.bump(prev, s, w);
                prev = s;
            }
            let p = prev as usize;
            if let (Some(c), Some(u), Some(v)) =
                (self.to_conv.get_mut(p), self.to_null.get_mut(p), self.end_value.get_mut(p))
            {
                *c += conversions;
                *u += nulls;
                if conversions > 0.0 {
                    *v += value;
                }
            }
        }
        self.scratch = seq;
    }

    pub fn journeys(&self) -> f64 {
        self.journeys
    }

    /// Solves the chain; channel names come from `channels`.
    pub fn solve(&self, channels: &Interner, opts: &MarkovOptions) -> Result<MarkovResult, AttributionError> {
        if self.journeys < opts.min_journeys {
            return Err(AttributionError::TooFewJourneys { have: self.journeys, need: opts.min_journeys });
        }
        if self.conversions <= 0.0 {
            return Err(AttributionError::NoConversions);
        }
        let n = self.keys.len();
        let totals: Vec<f64> = (0..n)
            .map(|s| {
                self.out.get(s).map_or(0.0, |l| l.iter().map(|(_, c)| c).sum::<f64>())
                    + self.to_conv.get(s).copied().unwrap_or(0.0)
                    + self.to_null.get(s).copied().unwrap_or(0.0)
            })
            .collect();
        let chain = Chain {
            q: (0..n)
                .map(|s| {
                    let t = totals.get(s).copied().unwrap_or(0.0);
                    self.out.get(s).map_or_else(Vec::new, |l| {
                        l.iter().filter(|_| t > 0.0).map(|&(to, c)| (to as usize, c / t)).collect()
                    })
                })
                .collect(),
            r: (0..n)
                .map(|s| {
                    let t = totals.get(s).copied().unwrap_or(0.0);
                    if t > 0.0 {
                        [
                            self.to_conv.get(s).copied().unwrap_or(0.0) / t,
                            self.end_value.get(s).copied().unwrap_or(0.0) / t,
                        ]
                    } else {
                        [0.0, 0.0]
                    }
                })
                .collect(),
        };
        let all = vec![true; n];
        let full = chain.solve(&all)?;
        let p = full.first().copied().unwrap_or([0.0, 0.0]);
        if p[0] <= 0.0 {
            return Err(AttributionError::NoConversions);
        }
        // Channels present in the chain.
        let mut present = vec![false; channels.len()];
        for key in &self.keys {
            for &c in key {
                if let Some(x) = present.get_mut(c as usize) {
                    *x = true;
                }
            }
        }
        let mut re = vec![[0.0_f64; 2]; channels.len()];
        for (c, slot) in re.iter_mut().enumerate() {
            if !present.get(c).copied().unwrap_or(false) {
                continue;
            }
            let keep: Vec<bool> =
                self.keys.iter().enumerate().map(|(s, k)| s == 0 || !k.contains(&(c as ChannelId))).collect();
            let x = chain.solve(&keep)?;
            let pc = x.first().copied().unwrap_or([0.0, 0.0]);
            for j in 0..2 {
                slot[j] = if p[j] > 0.0 { (1.0 - pc[j] / p[j]).max(0.0) } else { 0.0 };
            }
        }
        let sum_re = [re.iter().map(|r| r[0]).sum::<f64>(), re.iter().map(|r| r[1]).sum::<f64>()];
        let mut out_channels = Vec::new();
        for c in channels.sorted_ids() {
            if !present.get(c as usize).copied().unwrap_or(false) {
                continue;
            }
            let r = re.get(c as usize).copied().unwrap_or([0.0, 0.0]);
            out_channels.push(MarkovChannel {
                channel: channels.name(c).to_owned(),
                conversions: if sum_re[0] > 0.0 { self.conversions * r[0] / sum_re[0] } else { 0.0 },
                value: if sum_re[1] > 0.0 { self.value * r[1] / sum_re[1] } else { 0.0 },
                removal_effect: r[0],
                removal_effect_value: r[1],
            });
        }
        Ok(MarkovResult {
            order: self.order,
            channels: out_channels,
            p_conversion: p[0],
            total_conversions: self.conversions,
            total_value: self.value,
            journeys: self.journeys,
            states: n - 1,
            transitions: self.transitions(channels, &totals),
        })
    }

    fn state_name(&self, channels: &Interner, s: usize) -> String {
        if s == 0 {
            return "(start)".into();
        }
        self.keys.get(s).map(|k| JourneyPath::of(k.iter().map(|c| channels.name(*c))).to_string()).unwrap_or_default()
    }

    fn transitions(&self, channels: &Interner, totals: &[f64]) -> Vec<Transition> {
        let mut v = Vec::new();
        for (s, list) in self.out.iter().enumerate() {
            let t = totals.get(s).copied().unwrap_or(0.0);
            if t <= 0.0 {
                continue;
            }
            let from = self.state_name(channels, s);
            for &(to, c) in list {
                v.push(Transition {
                    from: from.clone(),
                    to: self.state_name(channels, to as usize),
                    probability: c / t,
                });
            }
            for (name, c) in [("(conversion)", self.to_conv.get(s)), ("(null)", self.to_null.get(s))] {
                if let Some(&c) = c
                    && c > 0.0
                {
                    v.push(Transition { from: from.clone(), to: name.into(), probability: c / t });
                }
            }
        }
        v.sort_by(|a, b| a.from.cmp(&b.from).then_with(|| a.to.cmp(&b.to)));
        v
    }
}

/// Fits the model on a path table.
pub fn fit(table: &PathTable, opts: &MarkovOptions) -> Result<MarkovResult, AttributionError> {
    MarkovCounts::from_table(table, opts.order)?.solve(&table.channels, opts)
}

/// The absorbing chain: sparse Q rows and two reward vectors (conversion
/// probability, expected value) per transient state.
struct Chain {
    q: Vec<Vec<(usize, f64)>>,
    r: Vec<[f64; 2]>,
}

impl Chain {
    /// x = Q x + r restricted to the kept states (removed ones are null).
    fn solve(&self, keep: &[bool]) -> Result<Vec<[f64; 2]>, AttributionError> {
        let kept: Vec<usize> = (0..self.q.len()).filter(|&s| keep.get(s).copied().unwrap_or(false)).collect();
        if kept.len() <= DENSE_MAX { Ok(self.solve_dense(&kept)) } else { self.solve_sparse(keep) }
    }

    fn solve_dense(&self, kept: &[usize]) -> Vec<[f64; 2]> {
        let m = kept.len();
        let mut pos = vec![usize::MAX; self.q.len()];
        for (i, &s) in kept.iter().enumerate() {
            if let Some(p) = pos.get_mut(s) {
                *p = i;
            }
        }
        // Augmented matrix [I − Q | r r'], row-major, width m + 2.
        let w = m + 2;
        let mut a = vec![0.0_f64; m * w];
        for (i, (&s, row)) in kept.iter().zip(a.chunks_mut(w)).enumerate() {
            if let Some(x) = row.get_mut(i) {
                *x = 1.0;
            }
            for &(to, p) in self.q.get(s).map_or(&[][..], Vec::as_slice) {
                let j = pos.get(to).copied().unwrap_or(usize::MAX);
                if let Some(x) = row.get_mut(j) {
                    *x -= p;
                }
            }
            let r = self.r.get(s).copied().unwrap_or([0.0, 0.0]);
            if let Some(x) = row.get_mut(m) {
                *x = r[0];
            }
            if let Some(x) = row.get_mut(m + 1) {
                *x = r[1];
            }
        }
        gauss(&mut a, m, w);
        (0..self.q.len())
            .map(|s| {
                let i = pos.get(s).copied().unwrap_or(usize::MAX);
                if i == usize::MAX {
                    [0.0, 0.0]
                } else {
                    [a.get(i * w + m).copied().unwrap_or(0.0), a.get(i * w + m + 1).copied().unwrap_or(0.0)]
                }
            })
            .collect()
    }

    fn solve_sparse(&self, keep: &[bool]) -> Result<Vec<[f64; 2]>, AttributionError> {
        let n = self.q.len();
        let mut x = vec![[0.0_f64; 2]; n];
        for _ in 0..GS_MAX_SWEEPS {
            let mut delta = 0.0_f64;
            let mut scale = 0.0_f64;
            // Reverse order: paths mostly move to later-created states.
            for s in (0..n).rev() {
                if !keep.get(s).copied().unwrap_or(false) {
                    continue;
                }
                let mut acc = self.r.get(s).copied().unwrap_or([0.0, 0.0]);
                let mut self_p = 0.0;
                for &(to, p) in self.q.get(s).map_or(&[][..], Vec::as_slice) {
                    if to == s {
                        self_p += p;
                    } else if keep.get(to).copied().unwrap_or(false) {
                        let xt = x.get(to).copied().unwrap_or([0.0, 0.0]);
                        acc[0] += p * xt[0];
                        acc[1] += p * xt[1];
                    }
                }
                let d = 1.0 - self_p;
                if d > 0.0 {
                    acc[0] /= d;
                    acc[1] /= d;
                }
                if let Some(xs) = x.get_mut(s) {
                    delta = delta.max((acc[0] - xs[0]).abs()).max((acc[1] - xs[1]).abs());
                    scale = scale.max(acc[0].abs()).max(acc[1].abs());
                    *xs = acc;
                }
            }
            if delta <= 1e-15 * scale || delta == 0.0 {
                return Ok(x);
            }
        }
        Err(AttributionError::NotConverged { iterations: GS_MAX_SWEEPS })
    }
}

/// Gaussian elimination with partial pivoting on an m × w augmented matrix
/// (w − m right-hand sides), in place; leaves the solutions in the last
/// columns. I − Q of an absorbing chain is non-singular; a zero pivot (a
/// state that cannot be reached and has no exit) leaves that row at zero.
fn gauss(a: &mut [f64], m: usize, w: usize) {
    for col in 0..m {
        // Pivot: largest magnitude, ties → lowest row (deterministic).
        let mut best = col;
        let mut best_v = 0.0_f64;
        for row in col..m {
            let v = a.get(row * w + col).copied().unwrap_or(0.0).abs();
            if v > best_v {
                best_v = v;
                best = row;
            }
        }
        if best_v == 0.0 {
            continue;
        }
        if best != col {
            for j in 0..w {
                a.swap(best * w + j, col * w + j);
            }
        }
        let pivot = a.get(col * w + col).copied().unwrap_or(1.0);
        for j in col..w {
            if let Some(x) = a.get_mut(col * w + j) {
                *x /= pivot;
            }
        }
        for row in 0..m {
            if row == col {
                continue;
            }
            let f = a.get(row * w + col).copied().unwrap_or(0.0);
            if f == 0.0 {
                continue;
            }
            for j in col..w {
                let v = a.get(col * w + j).copied().unwrap_or(0.0);
                if let Some(x) = a.get_mut(row * w + j) {
                    *x -= f * v;
                }
            }
        }
    }
}
