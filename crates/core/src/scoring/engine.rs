//! The one scoring engine: events → ledger entries → a fold over the ledger.
//! [`Scorer`] (incremental) and [`evaluate`] (batch) both drive [`State`],
//! so they cannot disagree; see the module docs of `scoring` for the rules.

use super::explain::{self, Score};
use super::rules::{Rules, TRAITS, normalise_text};
use super::stages::{ConversionStages, StageChange};
use super::state::{Entry, EntryKind, Points, State, TraitUpdate, TraitValue, decayed};
use crate::event::{Event, EventType, MessageId};
use crate::timestamp::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// The property a tracked click carries the element's `data-mf-element` in.
pub const ELEMENT_PROPERTY: &str = "mf_element";

/// A tier crossing caused by one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierChange {
    pub from: String,
    pub to: String,
    /// The event's time.
    pub at: Timestamp,
    /// The total score right after the event.
    pub score: Points,
}

/// The ledger entry for an event under `rules`, if it has one.
pub(crate) fn entry_of(rules: &Rules, conversions: &ConversionStages, event: &Event) -> Option<Entry> {
    let consented = event.consent.is_some_and(|c| c.allows(crate::consent::Purpose::Personalization));
    let mut enters = None;
    let kind = match event.kind {
        EventType::Track => {
            let name = event.event.as_deref()?;
            enters = conversions.enters(name);
            let element = event.properties.get(ELEMENT_PROPERTY).and_then(Value::as_str);
            let action = rules
                .action_index(name)
                .or_else(|| element.and_then(|el| rules.action_for_element(el)))
                .or_else(|| rules.action_for_event_name(name));
            match action {
                Some(action) => EntryKind::Action { action, consented },
                None if enters.is_some() => EntryKind::Conversion,
                None => return None,
            }
        }
        // An app's screen has no path a page rule could match.
        EventType::Screen => return None,
        EventType::Page => {
            let page = &event.context.page;
            let path = page.path.as_deref().or_else(|| page.url.as_deref().map(path_of_url))?;
            let path = normalise_path(path);
            let action = rules.pages.iter().find(|(g, _)| g.matches(path)).map(|(_, a)| *a)?;
            EntryKind::Action { action, consented }
        }
        // A group's traits are its account's: the visitor's company.
        EventType::Identify | EventType::Group => {
            let mut traits: TraitUpdate = Default::default();
            let mut any = false;
            for (slot, name) in traits.iter_mut().zip(TRAITS) {
                if let Some(v) = event.traits.get(name) {
                    *slot = Some(match v {
                        Value::String(s) => TraitValue::Text(normalise_text(s)),
                        Value::Number(n) => n.as_f64().map_or(TraitValue::Cleared, TraitValue::Number),
                        // null, or a shape no rule can compare: no longer known.
                        _ => TraitValue::Cleared,
                    });
                    any = true;
                }
            }
            if !any {
                return None;
            }
            EntryKind::Traits { consented, traits: Box::new(traits) }
        }
        EventType::Alias => return None,
    };
    Some(Entry { at: event.timestamp, id: event.message_id.clone(), kind, enters })
}

/// The path of an absolute URL: no query, no fragment; `/` when empty.
fn path_of_url(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').and_then(|i| after_scheme.get(i..)).unwrap_or("/");
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).filter(|p| !p.is_empty()).unwrap_or("/")
}

/// `/pricing/` and `/pricing` are one page: a trailing `/` is dropped
/// (except from `/` itself); a query or fragment in `path` is ignored.
fn normalise_path(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = path.get(..end).unwrap_or(path);
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    }
}

/// The incremental scorer the browser keeps per visitor.
///
/// `apply` is O(1) amortised for events in time order (the usual case): one
/// lookup, one fold step, pushes onto lists that only grow by doubling. An
/// event older than the latest one is inserted at its ledger position and the
/// ledger is folded again (O(n)), so the result is always the batch result.
#[derive(Debug, Clone)]
pub struct Scorer {
    rules: Rules,
    conversions: ConversionStages,
    /// Where the fold starts: nothing, or a [`Carry`] of dropped entries.
    base: State,
    ledger: Vec<Entry>,
    state: State,
}

/// What a scorer carries of entries it no longer holds: the fold's state
/// right after them, under the rules and stages it was folded with. A
/// capped ledger (the collector's visitor object) keeps this in place of
/// its oldest events; [`Scorer::resume`] starts from it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Carry {
    rules_version: String,
    stages: ConversionStages,
    state: State,
}

impl Carry {
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| e.to_string())
    }

    pub fn from_json(text: &str) -> Result<Carry, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The time of the last entry it folded in.
    pub fn last_at(&self) -> Option<Timestamp> {
        self.state.last_at
    }
}

impl Scorer {
    /// A scorer whose stages are entered by score only.
    pub fn new(rules: Rules) -> Scorer {
        Scorer::with_conversions(rules, ConversionStages::none())
    }

    /// A scorer that also moves visitors into the stages `conversions` enter.
    pub fn with_conversions(rules: Rules, conversions: ConversionStages) -> Scorer {
        let state = State::new(&rules);
        Scorer { rules, conversions, base: state.clone(), ledger: Vec::new(), state }
    }

    /// A scorer that starts where `carry` left off — when it was folded under
    /// these rules and stages; under others it cannot be read again (action
    /// and rule indices differ), and the scorer starts from nothing.
    pub fn resume(rules: Rules, conversions: ConversionStages, carry: Option<Carry>) -> Scorer {
        let mut s = Scorer::with_conversions(rules, conversions);
        if let Some(c) = carry
            && c.rules_version == s.rules.version()
            && c.stages == s.conversions
            && c.state.freq.len() == s.rules.actions.len()
        {
            s.base = c.state.clone();
            s.state = c.state;
        }
        s
    }

    /// The state after everything applied: what to keep once these entries
    /// leave the ledger.
    pub fn carry(&self) -> Carry {
        Carry {
            rules_version: self.rules.version().to_owned(),
            stages: self.conversions.clone(),
            state: self.state.clone(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn conversions(&self) -> &ConversionStages {
        &self.conversions
    }

    /// Takes one validated event into account; returns the tier change it
    /// caused (decay since the previous activity included), if any.
    pub fn apply(&mut self, event: &Event) -> Option<TierChange> {
        self.apply_staged(event).0
    }

    /// [`Scorer::apply`], with the stages the event moved the visitor into
    /// (a stage is entered once: an event arriving late that makes a stage
    /// be entered earlier does not enter it again).
    pub fn apply_staged(&mut self, event: &Event) -> (Option<TierChange>, Vec<StageChange>) {
        let Some(entry) = entry_of(&self.rules, &self.conversions, event) else {
            return (None, Vec::new());
        };
        let entered_before: Vec<u8> = self.state.stage_changes.iter().map(|c| c.to).collect();
        let before = self.state.tier;
        let key = entry.key();
        if self.ledger.last().is_none_or(|last| last.key() <= key) {
            self.state.push(&self.rules, &entry);
            self.ledger.push(entry);
        } else {
            let at = self.ledger.partition_point(|e| e.key() <= key);
            self.ledger.insert(at, entry);
            let mut state = self.base.clone();
            for e in &self.ledger {
                state.push(&self.rules, e);
            }
            self.state = state;
        }
        let after = self.state.tier;
        let tier = (after != before).then(|| TierChange {
            from: self.rules.tier_id(before).to_owned(),
            to: self.rules.tier_id(after).to_owned(),
            at: event.timestamp,
            score: Points::from_milli(self.state.engagement.saturating_add(self.state.fit)),
        });
        let stages = self
            .state
            .stage_changes
            .iter()
            .filter(|c| !entered_before.contains(&c.to))
            .map(|c| StageChange::from_raw(&self.rules, &self.conversions, c))
            .collect();
        (tier, stages)
    }

    /// The full score with its explanation, as of `at`.
    pub fn score(&self, at: Timestamp) -> Score {
        explain::report(&self.rules, &self.conversions, &self.state, at)
    }

    /// The current stage's id, if the visitor entered one.
    pub fn stage(&self) -> Option<&str> {
        self.state.stage.and_then(|s| self.rules.stages.get(usize::from(s))).map(|s| s.id.as_str())
    }

    /// Just the total as of `at` (cheap: no explanation is built).
    pub fn total(&self, at: Timestamp) -> Points {
        Points::from_milli(explain::engagement_at(&self.rules, &self.state, at).saturating_add(self.state.fit))
    }

    /// Just the tier id as of `at` (cheap).
    pub fn tier(&self, at: Timestamp) -> &str {
        self.rules.tier_id(self.rules.tier_of(self.total(at).milli()))
    }
}

/// What a score needs to be brought forward in time with nothing new: the
/// engagement as of the last activity, the fit, and the two instants the
/// fold keeps. Stored next to a lead (the edge's `visitors` row) so a report
/// can show today's score — decayed — without replaying the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Milli-points, as of `last_activity` (no decay applied after it).
    pub engagement_milli: i64,
    pub fit_milli: i64,
    pub last_activity_ms: Option<i64>,
    pub last_at_ms: Option<i64>,
}

impl Snapshot {
    /// The total at `at`: exactly `Scorer::total(at)` of the scorer it was
    /// taken from, as long as no entry came since.
    pub fn total(&self, rules: &Rules, at: Timestamp) -> Points {
        let at_ms = self.last_at_ms.map_or(at.millis(), |last| at.millis().max(last));
        let engagement = match self.last_activity_ms {
            Some(last) => decayed(&rules.decay, self.engagement_milli, at_ms.saturating_sub(last)),
            None => self.engagement_milli.max(0),
        };
        Points::from_milli(engagement.saturating_add(self.fit_milli))
    }

    /// The tier id at `at` under `rules`.
    pub fn tier<'r>(&self, rules: &'r Rules, at: Timestamp) -> &'r str {
        rules.tier_id(rules.tier_of(self.total(rules, at).milli()))
    }
}

impl Scorer {
    /// The state a later [`Snapshot::total`] needs.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            engagement_milli: self.state.engagement,
            fit_milli: self.state.fit,
            last_activity_ms: self.state.last_activity.map(Timestamp::millis),
            last_at_ms: self.state.last_at.map(Timestamp::millis),
        }
    }
}

/// Batch evaluation (edge, CLI): the same fold over the events sorted into
/// ledger order. Identical to feeding them to a [`Scorer`] in any order.
pub fn evaluate(rules: &Rules, events: &[Event], at: Timestamp) -> Score {
    evaluate_with(rules, &ConversionStages::none(), events, at)
}

/// [`evaluate`] with the stages the site's conversions enter.
pub fn evaluate_with(rules: &Rules, conversions: &ConversionStages, events: &[Event], at: Timestamp) -> Score {
    let mut ledger: Vec<Entry> = events.iter().filter_map(|e| entry_of(rules, conversions, e)).collect();
    ledger.sort_by(|a, b| a.key().cmp(&b.key())); // stable: equal keys keep input order
    let mut state = State::new(rules);
    for e in &ledger {
        state.push(rules, e);
    }
    explain::report(rules, conversions, &state, at)
}

/// What a journey of actions would score: each `(action id, time)` counted
/// as one consented event that matched that action, under the rules' caps,
/// decay and tiers — the "what would this score" of a rule file being
/// edited. An unknown action id is an error naming its position.
pub fn evaluate_actions(rules: &Rules, actions: &[(&str, Timestamp)], at: Timestamp) -> Result<Score, String> {
    let mut ledger = Vec::with_capacity(actions.len());
    for (i, (id, t)) in actions.iter().enumerate() {
        let Some(action) = rules.action_index(id) else {
            return Err(crate::text::cat(&["journey[", &crate::text::int(i as i64), "]: no action `", id, "`"]));
        };
        let mut bytes = [0u8; 16];
        if let Some(tail) = bytes.get_mut(8..) {
            tail.copy_from_slice(&(i as u64).to_be_bytes());
        }
        let id = MessageId::from_random_bytes(bytes);
        ledger.push(Entry { at: *t, id, kind: EntryKind::Action { action, consented: true }, enters: None });
    }
    ledger.sort_by(|a, b| a.key().cmp(&b.key()));
    let mut state = State::new(rules);
    for e in &ledger {
        state.push(rules, e);
    }
    Ok(explain::report(rules, &ConversionStages::default(), &state, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journey_of_actions_scores_as_its_events_would() {
        let rules = Rules::default_rules();
        let t = |m: i64| Timestamp::from_millis(1_772_445_600_000 + m * 60_000).unwrap();
        let s = evaluate_actions(
            &rules,
            &[("web.pricing_view", t(0)), ("web.pricing_view", t(1)), ("web.buy_click", t(2))],
            t(3),
        )
        .unwrap();
        // The pricing page counts once per session: 15 + 25.
        assert_eq!(s.score.milli(), 40_000);
        assert_eq!(s.tier, "warm");
        assert_eq!(
            evaluate_actions(&rules, &[("web.nope", t(0))], t(1)).unwrap_err(),
            "journey[0]: no action `web.nope`"
        );
    }

    #[test]
    fn url_paths() {
        assert_eq!(path_of_url("https://x.test"), "/");
        assert_eq!(path_of_url("https://x.test/pricing?a=1#b"), "/pricing");
        assert_eq!(normalise_path("/pricing/"), "/pricing");
        assert_eq!(normalise_path("/"), "/");
        assert_eq!(normalise_path("/a?b"), "/a");
    }

    mod order_independence {
        use super::super::*;
        use proptest::prelude::*;

        const NAMES: [&str; 6] =
            ["web.pricing_view", "email.open", "email.unsubscribe", "offline.meeting_request", "web.home_view", "nope"];

        fn event(name: usize, minutes: i64, id: u8, consent: bool) -> Event {
            let mut raw = serde_json::json!({
                "type": "track",
                "event": NAMES[name % NAMES.len()],
                "messageId": format!("00000000-0000-4000-8000-0000000000{id:02x}"),
                "anonymousId": "v",
                "timestamp": Timestamp::from_millis(1_772_445_600_000 + minutes * 60_000).unwrap().to_string(),
            });
            if consent {
                raw["consent"] =
                    serde_json::json!({"analytics": true, "personalization": true, "marketing": true, "policy": 1});
            }
            let limits = crate::Limits { max_age_ms: i64::MAX, max_future_ms: i64::MAX, ..crate::Limits::DEFAULT };
            Event::parse(&raw, &limits, Timestamp::from_millis(0).unwrap()).unwrap()
        }

        proptest! {
            /// Any arrival order gives the batch result (ids may repeat: duplicates).
            #[test]
            fn scorer_in_any_order_equals_batch(
                spec in proptest::collection::vec((0usize..6, 0i64..30_000, 0u8..40, proptest::bool::weighted(0.9)), 0..40),
                seed in any::<u64>(),
            ) {
                // Same (time, id) twice with different content is the one case where arrival
                // order legitimately decides; keep keys unique per id.
                let mut seen = std::collections::BTreeSet::new();
                let events: Vec<Event> = spec
                    .iter()
                    .filter(|(_, m, id, _)| seen.insert((*m, *id)))
                    .map(|(n, m, id, c)| event(*n, *m, *id, *c))
                    .collect();
                let rules = Rules::default_rules();
                let at = Timestamp::from_millis(1_772_445_600_000 + 40_000 * 60_000).unwrap();
                let batch = evaluate(&rules, &events, at);
                let mut order: Vec<usize> = (0..events.len()).collect();
                let mut x = seed | 1;
                for i in (1..order.len()).rev() {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    order.swap(i, (x % (i as u64 + 1)) as usize);
                }
                let mut scorer = Scorer::new(rules.clone());
                for i in order {
                    scorer.apply(&events[i]);
                }
                prop_assert_eq!(scorer.score(at), batch);
            }

            /// A ledger cut at any point, its head kept only as a carry (through
            /// its JSON), scores the same as the whole ledger: total, tier,
            /// stage and drivers. Under other rules the carry is not read.
            #[test]
            fn a_carry_of_the_dropped_head_scores_as_the_whole_ledger(
                spec in proptest::collection::vec((0usize..6, 0i64..30_000, 0u8..40, proptest::bool::weighted(0.9)), 0..40),
                cut in 0usize..40,
            ) {
                let mut seen = std::collections::BTreeSet::new();
                let mut events: Vec<Event> = spec
                    .iter()
                    .filter(|(_, _, id, _)| seen.insert(*id))
                    .map(|(n, m, id, c)| event(*n, *m, *id, *c))
                    .collect();
                events.sort_by(|a, b| (a.timestamp, &a.message_id).cmp(&(b.timestamp, &b.message_id)));
                let rules = Rules::default_rules();
                let at = Timestamp::from_millis(1_772_445_600_000 + 40_000 * 60_000).unwrap();
                let mut whole = Scorer::new(rules.clone());
                for e in &events {
                    whole.apply(e);
                }
                let cut = cut.min(events.len());
                let mut head = Scorer::new(rules.clone());
                for e in &events[..cut] {
                    head.apply(e);
                }
                let carry = Carry::from_json(&head.carry().to_json().unwrap()).unwrap();
                let mut resumed = Scorer::resume(rules.clone(), ConversionStages::none(), Some(carry.clone()));
                for e in &events[cut..] {
                    resumed.apply(e);
                }
                prop_assert_eq!(resumed.score(at), whole.score(at));
                let mut other = rules.clone();
                other.version = format!("{}-changed", other.version);
                let fresh = Scorer::resume(other, ConversionStages::none(), Some(carry));
                prop_assert_eq!(fresh.total(at).milli(), 0);
            }

            /// A snapshot brought forward equals the scorer's own total and
            /// tier at any later time, under linear and exponential decay.
            #[test]
            fn snapshot_equals_the_scorer_later(
                spec in proptest::collection::vec((0usize..6, 0i64..30_000, 0u8..40), 0..30),
                later_minutes in proptest::collection::vec(0i64..200_000, 1..6),
                exponential in any::<bool>(),
            ) {
                let mut rules = Rules::default_rules();
                if exponential {
                    rules.decay = crate::scoring::Decay::Exponential { half_life_ms: 5 * 86_400_000 };
                }
                let mut scorer = Scorer::new(rules.clone());
                for (n, m, id) in &spec {
                    scorer.apply(&event(*n, *m, *id, true));
                }
                let snap = scorer.snapshot();
                for m in later_minutes {
                    let at = Timestamp::from_millis(1_772_445_600_000 + m * 60_000).unwrap();
                    prop_assert_eq!(snap.total(&rules, at), scorer.total(at));
                    prop_assert_eq!(snap.tier(&rules, at), scorer.tier(at));
                }
            }
        }
    }
}
