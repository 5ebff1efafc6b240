//! Shapley-value attribution over channel sets, and Zhao et al.'s
//! simplified Shapley.
//!
//! A journey is reduced to its set of channels T. Two characteristic
//! functions ("games") are offered:
//! - [`ShapleyGame::Conversions`]: v(S) = conversions (value) of the
//!   journeys whose channel set ⊆ S. This game is a sum of unanimity games,
//!   so its Shapley value is exactly Zhao's simplified formula
//!   φᵢ = Σ_{T∋i} R(T)/|T| — kept as the reference the enumeration is tested
//!   against;
//! - [`ShapleyGame::Rate`]: v(S) = conversions (value) per journey among the
//!   journeys whose channel set ⊆ S (needs `total_null`). Marginal
//!   contributions can be negative here; credits use max(φ, 0), renormalised
//!   to the total.
//!
//! Exact enumeration (O(n·2ⁿ) with a subset-sum transform) up to
//! `max_exact` channels (default 16, at most [`EXACT_LIMIT`]); beyond that,
//! `samples` random permutations (splitmix64 seeded by `seed`, Fisher–Yates),
//! with the standard error of each φ reported. At most 64 channels.

use super::AttributionError;
use super::journey::{ChannelId, Interner, PathTable};
use std::collections::HashMap;

/// Largest channel count enumerated exactly (2²⁰ coalitions).
pub const EXACT_LIMIT: usize = 20;
/// Largest channel count at all (channel sets are 64-bit masks).
pub const MAX_CHANNELS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapleyGame {
    Conversions,
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShapleyOptions {
    pub game: ShapleyGame,
    pub max_exact: usize,
    pub samples: usize,
    pub seed: u64,
    pub min_journeys: f64,
}

impl Default for ShapleyOptions {
    fn default() -> Self {
        Self { game: ShapleyGame::Conversions, max_exact: 16, samples: 2000, seed: 0, min_journeys: 0.0 }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShapleyChannel {
    pub channel: String,
    pub conversions: f64,
    pub value: f64,
    /// Raw Shapley values of the conversion and value games.
    pub phi: f64,
    pub phi_value: f64,
    /// Standard errors (0 when exact).
    pub std_error: f64,
    pub std_error_value: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShapleyResult {
    pub method: &'static str,
    pub exact: bool,
    pub samples: usize,
    pub journeys: f64,
    pub channels: Vec<ShapleyChannel>,
}

/// Journeys grouped by channel set: `[conversions, nulls, value]` per set.
/// Updatable one journey at a time.
#[derive(Debug, Clone, Default)]
pub struct SetCounts {
    sets: HashMap<u64, [f64; 3]>,
    overflow: bool,
}

impl SetCounts {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_table(table: &PathTable) -> Self {
        let mut s = Self::new();
        for row in &table.rows {
            s.add(&row.steps, row.conversions, row.value, row.nulls);
        }
        s
    }

    /// Adds a journey (O(path length)). Channel ids ≥ 64 mark the counts as
    /// unusable (reported as [`AttributionError::TooManyChannels`]).
    pub fn add(&mut self, steps: &[ChannelId], conversions: f64, value: f64, nulls: f64) {
        let mut mask = 0_u64;
        for &c in steps {
            if c as usize >= MAX_CHANNELS {
                self.overflow = true;
                return;
            }
            mask |= 1 << c;
        }
        if mask == 0 {
            return;
        }
        let e = self.sets.entry(mask).or_insert([0.0; 3]);
        e[0] += conversions;
        e[1] += nulls;
        e[2] += value;
    }

    fn check(&self, channels: &Interner, min_journeys: f64) -> Result<f64, AttributionError> {
        if self.overflow || channels.len() > MAX_CHANNELS {
            return Err(AttributionError::TooManyChannels { have: channels.len(), max: MAX_CHANNELS });
        }
        let journeys: f64 = self.sets.values().map(|v| v[0] + v[1]).sum();
        if journeys < min_journeys {
            return Err(AttributionError::TooFewJourneys { have: journeys, need: min_journeys });
        }
        if self.sets.values().map(|v| v[0]).sum::<f64>() <= 0.0 {
            return Err(AttributionError::NoConversions);
        }
        Ok(journeys)
    }

    /// Present channels in name order, and the sets re-keyed over their ranks.
    fn compact(&self, channels: &Interner) -> (Vec<ChannelId>, Vec<(u64, [f64; 3])>) {
        let all: u64 = self.sets.keys().fold(0, |a, k| a | k);
        let present: Vec<ChannelId> =
            channels.sorted_ids().into_iter().filter(|&c| (c as usize) < 64 && all >> c & 1 == 1).collect();
        let mut sets: Vec<(u64, [f64; 3])> = self
            .sets
            .iter()
            .map(|(&k, &v)| {
                let mut m = 0_u64;
                for (bit, &c) in present.iter().enumerate() {
                    if k >> c & 1 == 1 {
                        m |= 1 << bit;
                    }
                }
                (m, v)
            })
            .collect();
        sets.sort_by_key(|(k, _)| *k);
        (present, sets)
    }

    /// Zhao et al. 2018: φᵢ = Σ_{T∋i} R(T)/|T|.
    pub fn zhao(&self, channels: &Interner, min_journeys: f64) -> Result<ShapleyResult, AttributionError> {
        let journeys = self.check(channels, min_journeys)?;
        let (present, sets) = self.compact(channels);
        let mut phi = vec![[0.0_f64; 2]; present.len()];
        for (m, v) in &sets {
            let size = f64::from(m.count_ones());
            for (bit, p) in phi.iter_mut().enumerate() {
                if m >> bit & 1 == 1 {
                    p[0] += v[0] / size;
                    p[1] += v[2] / size;
                }
            }
        }
        Ok(finish("zhao", true, 0, journeys, &present, channels, &phi, &vec![[0.0; 2]; present.len()], &sets))
    }

    /// The Shapley value of the chosen game (see the module doc).
    pub fn shapley(&self, channels: &Interner, opts: &ShapleyOptions) -> Result<ShapleyResult, AttributionError> {
        let journeys = self.check(channels, opts.min_journeys)?;
        let (present, sets) = self.compact(channels);
        let n = present.len();
        if n <= opts.max_exact.min(EXACT_LIMIT) {
            let phi = exact(n, &sets, opts.game);
            Ok(finish("shapley", true, 0, journeys, &present, channels, &phi, &vec![[0.0; 2]; n], &sets))
        } else {
            if opts.samples < 2 {
                return Err(AttributionError::invalid("samples", "must be ≥ 2 beyond the exact limit"));
            }
            let (phi, se) = sampled(n, &sets, opts);
            Ok(finish("shapley", false, opts.samples, journeys, &present, channels, &phi, &se, &sets))
        }
    }
}

fn game_value(game: ShapleyGame, conv: f64, nulls: f64, value: f64) -> [f64; 2] {
    match game {
        ShapleyGame::Conversions => [conv, value],
        ShapleyGame::Rate => {
            let j = conv + nulls;
            if j > 0.0 { [conv / j, value / j] } else { [0.0, 0.0] }
        }
    }
}

fn exact(n: usize, sets: &[(u64, [f64; 3])], game: ShapleyGame) -> Vec<[f64; 2]> {
    let size = 1_usize << n;
    // Subset sums (zeta transform) of conversions, nulls, value.
    let mut sub = vec![[0.0_f64; 3]; size];
    for (m, v) in sets {
        if let Some(s) = sub.get_mut(*m as usize) {
            for j in 0..3 {
                s[j] += v[j];
            }
        }
    }
    for bit in 0..n {
        for s in 0..size {
            if s >> bit & 1 == 1 {
                let lower = sub.get(s ^ (1 << bit)).copied().unwrap_or([0.0; 3]);
                if let Some(x) = sub.get_mut(s) {
                    for j in 0..3 {
                        x[j] += lower[j];
                    }
                }
            }
        }
    }
    let v: Vec<[f64; 2]> = sub.iter().map(|s| game_value(game, s[0], s[1], s[2])).collect();
    // w[k] = k!(n−k−1)!/n!
    let mut w = vec![0.0_f64; n.max(1)];
    if let Some(x) = w.first_mut() {
        *x = 1.0 / n.max(1) as f64;
    }
    for k in 1..n {
        let prev = w.get(k - 1).copied().unwrap_or(0.0);
        if let Some(x) = w.get_mut(k) {
            *x = prev * k as f64 / (n - k) as f64;
        }
    }
    let mut phi = vec![[0.0_f64; 2]; n];
    for s in 0..size {
        let k = (s as u64).count_ones() as usize;
        let vs = v.get(s).copied().unwrap_or([0.0; 2]);
        for (i, p) in phi.iter_mut().enumerate() {
            if s >> i & 1 == 0 {
                let wk = w.get(k).copied().unwrap_or(0.0);
                let vi = v.get(s | 1 << i).copied().unwrap_or([0.0; 2]);
                p[0] += wk * (vi[0] - vs[0]);
                p[1] += wk * (vi[1] - vs[1]);
            }
        }
    }
    phi
}

/// splitmix64: a tiny, well-mixed, deterministic PRNG.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n ≥ 1), by rejection (unbiased).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
}

fn sampled(n: usize, sets: &[(u64, [f64; 3])], opts: &ShapleyOptions) -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
    let mut rng = SplitMix64::new(opts.seed);
    let mut sum = vec![[0.0_f64; 2]; n];
    let mut sq = vec![[0.0_f64; 2]; n];
    let mut perm: Vec<usize> = (0..n).collect();
    let mut pos = vec![0_usize; n];
    let mut step = vec![[0.0_f64; 3]; n];
    for _ in 0..opts.samples {
        for i in (1..n).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            perm.swap(i, j);
        }
        for (p, &c) in perm.iter().enumerate() {
            if let Some(x) = pos.get_mut(c) {
                *x = p;
            }
        }
        step.iter_mut().for_each(|s| *s = [0.0; 3]);
        for (m, v) in sets {
            let mut done = 0;
            let mut bits = *m;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                done = done.max(pos.get(b).copied().unwrap_or(0));
            }
            if let Some(s) = step.get_mut(done) {
                for j in 0..3 {
                    s[j] += v[j];
                }
            }
        }
        let mut cum = [0.0_f64; 3];
        let mut before = game_value(opts.game, 0.0, 0.0, 0.0);
        for (p, &c) in perm.iter().enumerate() {
            let s = step.get(p).copied().unwrap_or([0.0; 3]);
            for j in 0..3 {
                cum[j] += s[j];
            }
            let after = game_value(opts.game, cum[0], cum[1], cum[2]);
            if let (Some(a), Some(q)) = (sum.get_mut(c), sq.get_mut(c)) {
                for j in 0..2 {
                    let d = after[j] - before[j];
                    a[j] += d;
                    q[j] += d * d;
                }
            }
            before = after;
        }
    }
    let m = opts.samples as f64;
    let mut phi = vec![[0.0_f64; 2]; n];
    let mut se = vec![[0.0_f64; 2]; n];
    for i in 0..n {
        let (s, q) = (sum.get(i).copied().unwrap_or([0.0; 2]), sq.get(i).copied().unwrap_or([0.0; 2]));
        for j in 0..2 {
            let mean = s[j] / m;
            let var = ((q[j] - m * mean * mean) / (m - 1.0)).max(0.0);
            if let (Some(p), Some(e)) = (phi.get_mut(i), se.get_mut(i)) {
                p[j] = mean;
                e[j] = (var / m).sqrt();
            }
        }
    }
    (phi, se)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    method: &'static str,
    exact: bool,
    samples: usize,
    journeys: f64,
    present: &[ChannelId],
    channels: &Interner,
    phi: &[[f64; 2]],
    se: &[[f64; 2]],
    sets: &[(u64, [f64; 3])],
) -> ShapleyResult {
    let total_conv: f64 = sets.iter().map(|(_, v)| v[0]).sum();
    let total_val: f64 = sets.iter().map(|(_, v)| v[2]).sum();
    let pos_sum = [phi.iter().map(|p| p[0].max(0.0)).sum::<f64>(), phi.iter().map(|p| p[1].max(0.0)).sum::<f64>()];
    let share = |x: f64, j: usize, total: f64| if pos_sum[j] > 0.0 { total * x.max(0.0) / pos_sum[j] } else { 0.0 };
    let out = present
        .iter()
        .zip(phi.iter().zip(se))
        .map(|(&c, (p, e))| ShapleyChannel {
            channel: channels.name(c).to_owned(),
            conversions: share(p[0], 0, total_conv),
            value: share(p[1], 1, total_val),
            phi: p[0],
            phi_value: p[1],
            std_error: e[0],
            std_error_value: e[1],
        })
        .collect();
    ShapleyResult { method, exact, samples, journeys, channels: out }
}
