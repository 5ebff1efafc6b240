//! The fold's state, shared by the engine that drives it, the explanation
//! that reads its record and the stage changes it makes: the ledger entry,
//! the accumulator and its raw record (indices, not strings).

use super::rules::{Decay, Frequency, Predicate, Rules};
use crate::event::MessageId;
use crate::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A number of points, held in thousandths so exponential decay stays exact
/// and deterministic. Serialised as an integer when whole, else as a decimal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Points(i64);

impl Points {
    pub fn from_milli(milli: i64) -> Points {
        Points(milli)
    }
    pub fn milli(self) -> i64 {
        self.0
    }
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    /// As its serde form: an integer when whole, else a decimal.
    pub fn to_json(self) -> Value {
        if self.0 % 1000 == 0 { Value::from(self.0 / 1000) } else { Value::from(self.as_f64()) }
    }
}

impl Serialize for Points {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 { s.serialize_i64(self.0 / 1000) } else { s.serialize_f64(self.as_f64()) }
    }
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::Capped => "capped",
            IgnoreReason::Duplicate => "duplicate",
            IgnoreReason::NoConsent => "no_consent",
        }
    }
}

/// Why an entry did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// Its frequency policy was used up.
    Capped,
    /// A `messageId` already in the ledger.
    Duplicate,
    /// Captured without `personalization` consent.
    NoConsent,
}

/// A trait value from an `identify`, as fit rules compare it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum TraitValue {
    /// Sent as `null`: the trait is no longer known.
    Cleared,
    /// Trimmed and lower-cased.
    Text(String),
    Number(f64),
}

/// Per trait of [`TRAITS`]: `None` when the identify did not mention it.
pub(crate) type TraitUpdate = [Option<TraitValue>; 5];

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EntryKind {
    Action {
        action: u32,
        consented: bool,
    },
    Traits {
        consented: bool,
        traits: Box<TraitUpdate>,
    },
    /// A conversion that matches no action: it only moves the stage.
    Conversion,
}

/// One line of the ledger: an event that matched an action, or an identify
/// carrying fit traits. Events that match nothing never become entries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) at: Timestamp,
    pub(crate) id: MessageId,
    pub(crate) kind: EntryKind,
    /// A conversion entering a stage: (its position in the
    /// [`ConversionStages`], the stage).
    pub(crate) enters: Option<(u16, u8)>,
}

impl Entry {
    /// Ledger order: time, then message id, so the order (and the score)
    /// does not depend on the order events arrived in.
    pub(crate) fn key(&self) -> (Timestamp, &MessageId) {
        (self.at, &self.id)
    }
}

/// What moved a visitor into a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RawCause {
    /// The total (milli-points) right after the entry that reached it.
    Score(i64),
    /// The conversion, by its position in [`ConversionStages`].
    Conversion(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RawStageChange {
    pub(crate) at: Timestamp,
    pub(crate) from: Option<u8>,
    pub(crate) to: u8,
    pub(crate) by: RawCause,
}

/// Remaining engagement (milli-points) after `gap_ms` of inactivity.
///
/// Linear: `points` per *full* period. Exponential: `e × 2^(−gap/half_life)`,
/// evaluated as whole halvings times the factors `2^(−2^−k)` for the first
/// 32 binary digits of the remaining fraction — only IEEE multiplications,
/// which round identically in wasm and natively (unlike `exp2`/`powf`) —
/// then rounded down to a milli-point. Never below 0, never above `e`.
pub(crate) fn decayed(decay: &Decay, e: i64, gap_ms: i64) -> i64 {
    if e <= 0 || gap_ms <= 0 {
        return e.max(0);
    }
    match *decay {
        Decay::None => e,
        Decay::Linear { points_milli, period_ms } => {
            let periods = gap_ms / period_ms.max(1);
            e.saturating_sub(periods.saturating_mul(points_milli)).max(0)
        }
        Decay::Exponential { half_life_ms } => {
            let h = half_life_ms.max(1);
            let halvings = gap_ms / h;
            if halvings >= 64 {
                return 0;
            }
            let mut v = e as f64;
            for _ in 0..halvings {
                v *= 0.5;
            }
            let mut r = gap_ms % h;
            for factor in HALF_LIFE_FRACTIONS {
                r *= 2;
                if r >= h {
                    r -= h;
                    v *= factor;
                }
            }
            (v.floor() as i64).clamp(0, e)
        }
    }
}

/// `2^(−2^−k)` for k = 1..=32, correctly rounded.
const HALF_LIFE_FRACTIONS: [f64; 32] = [
    std::f64::consts::FRAC_1_SQRT_2,
    0.8408964152537145,
    0.9170040432046712,
    0.9576032806985737,
    0.9785720620877001,
    0.9892280131939755,
    0.9945994234836332,
    0.9972960560854701,
    0.9986471128909702,
    0.9993233275026507,
    0.9996616064962437,
    0.9998307889319291,
    0.9999153908866135,
    0.9999576945484311,
    0.9999788470504919,
    0.9999894234693144,
    0.9999947117206743,
    0.9999973558568414,
    0.9999986779275467,
    0.9999993389635549,
    0.9999996694817228,
    0.9999998347408477,
    0.9999999173704205,
    0.9999999586852094,
    0.9999999793426044,
    0.9999999896713022,
    0.999999994835651,
    0.9999999974178255,
    0.9999999987089128,
    0.9999999993544564,
    0.9999999996772282,
    0.9999999998386141,
];

/// A fixed-key hash for message ids: the core reads no randomness (which
/// `RandomState` would). Ids are not always random (UUIDv7 and sequential ids
/// differ only in a few bytes), so every byte is folded in and the result is
/// finished with the splitmix64 mixer, which spreads any input bit to all
/// output bits; the hash table needs both its low and its high bits to vary.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31);
        }
    }
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct FreqState {
    pub(crate) counted: bool,
    /// Session of the last counted occurrence.
    pub(crate) session: u64,
    /// UTC day of the last counted occurrence, and how many counted that day.
    pub(crate) day: i64,
    pub(crate) day_count: u32,
}

/// What the fold did, in order: the explanation's raw material (indices, not
/// strings, so recording it allocates nothing but the list's own growth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum RawDriver {
    Counted { at: Timestamp, action: u32, engagement: i64 },
    Ignored { at: Timestamp, action: Option<u32>, reason: IgnoreReason },
    Decay { from: Timestamp, to: Timestamp, amount: i64, engagement: i64 },
    Fit { at: Timestamp, rule: u32, granted: bool, fit: i64 },
}

/// The fold's accumulator. Serialisable for a [`super::Carry`] (without
/// `seen`: the ids of entries no longer held cannot come back, the
/// collector keeps every event once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    /// Milli-points, ≥ 0.
    pub(crate) engagement: i64,
    /// Milli-points: the sum of the fit rules that hold.
    pub(crate) fit: i64,
    /// Time of the last action entry that counted or was capped.
    pub(crate) last_activity: Option<Timestamp>,
    /// Time of the last entry of any kind (evaluation never predates it).
    pub(crate) last_at: Option<Timestamp>,
    /// Increments when an action entry comes `session_timeout` or more after
    /// the previous activity; 0 before the first.
    pub(crate) session: u64,
    pub(crate) freq: Vec<FreqState>,
    traits: [Option<TraitValue>; 5],
    fit_held: Vec<bool>,
    #[serde(skip)]
    seen: HashSet<MessageId, BuildHasherDefault<IdHasher>>,
    pub(crate) drivers: Vec<RawDriver>,
    /// Tier index right after the last entry.
    pub(crate) tier: usize,
    /// Stage index, once the visitor entered one; only ever grows.
    pub(crate) stage: Option<u8>,
    pub(crate) stage_changes: Vec<RawStageChange>,
}

impl State {
    pub(crate) fn new(rules: &Rules) -> State {
        State {
            engagement: 0,
            fit: 0,
            last_activity: None,
            last_at: None,
            session: 0,
            freq: vec![FreqState::default(); rules.actions.len()],
            traits: Default::default(),
            fit_held: vec![false; rules.fit.len()],
            seen: HashSet::default(),
            drivers: Vec::new(),
            tier: rules.tier_of(0),
            stage: None,
            stage_changes: Vec::new(),
        }
    }

    /// Folds one entry in (entries must come in ledger order).
    pub(crate) fn push(&mut self, rules: &Rules, entry: &Entry) {
        let at = entry.at;
        if entry.kind == EntryKind::Conversion {
            // Not a score entry: no driver, no clock, only the stage.
            if self.seen.insert(entry.id.clone())
                && let Some((conversion, stage)) = entry.enters
            {
                self.enter(at, stage, RawCause::Conversion(conversion));
            }
            return;
        }
        self.last_at = Some(self.last_at.map_or(at, |t| t.max(at)));
        let action = match entry.kind {
            EntryKind::Action { action, .. } => Some(action),
            EntryKind::Traits { .. } | EntryKind::Conversion => None,
        };
        if !self.seen.insert(entry.id.clone()) {
            self.ignore(at, action, IgnoreReason::Duplicate);
            return;
        }
        match &entry.kind {
            EntryKind::Action { consented: false, .. } | EntryKind::Traits { consented: false, .. } => {
                self.ignore(at, action, IgnoreReason::NoConsent);
            }
            EntryKind::Action { action, .. } => self.push_action(rules, at, *action),
            EntryKind::Traits { traits, .. } => self.push_traits(rules, at, traits),
            EntryKind::Conversion => {}
        }
        let total = self.engagement.saturating_add(self.fit);
        self.tier = rules.tier_of(total);
        // A conversion is a fact about the relationship, not profiling: it
        // moves the stage whatever the personalization consent (its points,
        // above, still need it). Then the score's stage, if it reached one.
        if let Some((conversion, stage)) = entry.enters {
            self.enter(at, stage, RawCause::Conversion(conversion));
        }
        let by_score = rules.stages.iter().rposition(|s| s.min_score.is_some_and(|m| total >= m.saturating_mul(1000)));
        if let Some(stage) = by_score.and_then(|s| u8::try_from(s).ok()) {
            self.enter(at, stage, RawCause::Score(total));
        }
    }

    /// Moves to `stage` if it is later than the current one (forward only).
    fn enter(&mut self, at: Timestamp, stage: u8, by: RawCause) {
        if self.stage.is_none_or(|s| stage > s) {
            self.stage_changes.push(RawStageChange { at, from: self.stage, to: stage, by });
            self.stage = Some(stage);
        }
    }

    fn ignore(&mut self, at: Timestamp, action: Option<u32>, reason: IgnoreReason) {
        self.drivers.push(RawDriver::Ignored { at, action, reason });
    }

    fn push_action(&mut self, rules: &Rules, at: Timestamp, index: u32) {
        let Some(action) = rules.action(index) else {
            return;
        };
        // Decay accrued since the previous activity, then the session.
        if let Some(last) = self.last_activity {
            let gap = at.since(last);
            let after = decayed(&rules.decay, self.engagement, gap);
            if after < self.engagement {
                self.drivers.push(RawDriver::Decay {
                    from: last,
                    to: at,
                    amount: self.engagement - after,
                    engagement: after,
                });
                self.engagement = after;
            }
            if gap >= rules.session_timeout_ms {
                self.session += 1;
            }
        } else {
            self.session = 1;
        }
        self.last_activity = Some(at);
        let day = at.day();
        let slot = self.freq.get_mut(index as usize);
        let Some(f) = slot else {
            return;
        };
        if !allows(action.frequency, f, self.session, day) {
            self.drivers.push(RawDriver::Ignored { at, action: Some(index), reason: IgnoreReason::Capped });
            return;
        }
        if f.day != day || !f.counted {
            f.day = day;
            f.day_count = 0;
        }
        f.counted = true;
        f.session = self.session;
        f.day_count = f.day_count.saturating_add(1);
        self.engagement = self.engagement.saturating_add(action.points.saturating_mul(1000)).max(0);
        self.drivers.push(RawDriver::Counted { at, action: index, engagement: self.engagement });
    }

    fn push_traits(&mut self, rules: &Rules, at: Timestamp, update: &TraitUpdate) {
        for (known, new) in self.traits.iter_mut().zip(update.iter()) {
            match new {
                None => {}
                Some(TraitValue::Cleared) => *known = None,
                Some(v) => *known = Some(v.clone()),
            }
        }
        for (i, rule) in rules.fit.iter().enumerate() {
            let holds = holds(&rule.predicate, self.traits.get(rule.trait_index).and_then(Option::as_ref));
            let Some(held) = self.fit_held.get_mut(i) else {
                continue;
            };
            if holds != *held {
                *held = holds;
                let delta = rule.points.saturating_mul(1000);
                self.fit = if holds { self.fit.saturating_add(delta) } else { self.fit.saturating_sub(delta) };
                self.drivers.push(RawDriver::Fit {
                    at,
                    rule: u32::try_from(i).unwrap_or(u32::MAX),
                    granted: holds,
                    fit: self.fit,
                });
            }
        }
    }
}

/// Whether an action with this frequency may count now.
pub(crate) fn allows(frequency: Frequency, f: &FreqState, session: u64, day: i64) -> bool {
    match frequency {
        Frequency::Unlimited => true,
        Frequency::OncePerVisitor => !f.counted,
        Frequency::OncePerSession => !(f.counted && f.session == session),
        Frequency::PerDay(n) => !(f.counted && f.day == day && f.day_count >= n),
    }
}

fn holds(predicate: &Predicate, value: Option<&TraitValue>) -> bool {
    match (predicate, value) {
        (Predicate::In(list), Some(TraitValue::Text(t))) => list.contains(t),
        (Predicate::NotIn(list), Some(TraitValue::Text(t))) => !list.contains(t),
        (Predicate::Range { min, max }, Some(v)) => {
            let x = match v {
                TraitValue::Number(x) => Some(*x),
                TraitValue::Text(t) => crate::text::parse_decimal(t),
                TraitValue::Cleared => None,
            };
            x.is_some_and(|x| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_decay_is_exact_on_whole_half_lives() {
        let d = Decay::Exponential { half_life_ms: 1000 };
        assert_eq!(decayed(&d, 100_000, 1000), 50_000);
        assert_eq!(decayed(&d, 100_000, 3000), 12_500);
        assert_eq!(decayed(&d, 100_000, 500), 70_710);
        assert_eq!(decayed(&d, 100_000, 0), 100_000);
        assert_eq!(decayed(&d, 100_000, 64_000), 0);
    }

    #[test]
    fn sequential_ids_spread_over_hash_buckets() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<IdHasher>::default();
        let low: std::collections::BTreeSet<u64> = (0..4096u32)
            .map(|i| MessageId::parse(&format!("00000000-0000-4000-8000-{i:012x}")).unwrap())
            .map(|id| b.hash_one(id) & 0xfff)
            .collect();
        assert!(low.len() > 2000, "only {} distinct low-bit buckets", low.len());
    }

    #[test]
    fn linear_decay_counts_full_periods() {
        let d = Decay::Linear { points_milli: 2000, period_ms: 7 };
        assert_eq!(decayed(&d, 10_000, 6), 10_000);
        assert_eq!(decayed(&d, 10_000, 7), 8_000);
        assert_eq!(decayed(&d, 10_000, 100), 0);
    }
}
