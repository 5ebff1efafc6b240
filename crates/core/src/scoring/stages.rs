//! Lifecycle stages in the fold: which conversions enter which stage, and
//! the stage changes the fold records (forward only; see `scoring`'s docs).

use super::rules::Rules;
use super::state::{Points, RawCause, RawStageChange};
use crate::timestamp::Timestamp;
use serde::Serialize;

/// The site's conversion events, each resolved to the stage it enters under
/// one rule set: the stage its definition names, else the rules'
/// `any_conversion` stage, else none. Made by [`ConversionStages::new`],
/// which refuses a stage the rules do not have.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversionStages {
    /// Sorted by event name.
    by_event: Vec<(String, Option<u8>)>,
}

impl ConversionStages {
    /// No conversions: stages are entered by score only.
    pub fn none() -> ConversionStages {
        ConversionStages::default()
    }

    /// `conversions` are (event name, stage it names); the error is the
    /// position of a conversion naming a stage `rules` lacks, and why.
    pub fn new<'a>(
        rules: &Rules,
        conversions: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<ConversionStages, (usize, String)> {
        let any = rules.stages.iter().position(|s| s.any_conversion);
        let mut by_event = Vec::new();
        for (i, (event, stage)) in conversions.into_iter().enumerate() {
            let index = match stage {
                None => any,
                Some(id) => Some(rules.stage_index(id).ok_or_else(|| {
                    let known: Vec<&str> = rules.stages.iter().map(|s| s.id.as_str()).collect();
                    let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                    (i, format!("stage `{id}` is not one of the rules' stages ({known})"))
                })?),
            };
            by_event.push((event.to_owned(), index.and_then(|s| u8::try_from(s).ok())));
        }
        super::sort_small(&mut by_event, |a, b| a.0 < b.0);
        by_event.dedup_by(|a, b| a.0 == b.0);
        Ok(ConversionStages { by_event })
    }

    /// The stage a conversion event enters, as its index in the rules'
    /// stages; `None` for an event that is no conversion or enters none.
    pub fn stage_of(&self, event: &str) -> Option<usize> {
        self.enters(event).map(|(_, stage)| usize::from(stage))
    }

    /// For a conversion event that enters a stage: (its position here, the stage).
    pub(crate) fn enters(&self, event: &str) -> Option<(u16, u8)> {
        let i = self.by_event.binary_search_by(|(k, _)| k.as_str().cmp(event)).ok()?;
        let stage = self.by_event.get(i)?.1?;
        Some((u16::try_from(i).ok()?, stage))
    }

    pub(crate) fn name(&self, index: u16) -> &str {
        self.by_event.get(usize::from(index)).map_or("", |(k, _)| k.as_str())
    }
}

/// A move to a later stage, caused by one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageChange {
    /// `None` for the visitor's first stage.
    pub from: Option<String>,
    pub to: String,
    /// The event's time.
    pub at: Timestamp,
    pub by: StageCause,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageCause {
    /// The score reached the stage's `min_score`; the total right after.
    Score { score: Points },
    /// A conversion that names the stage, or any conversion for the
    /// `any_conversion` stage.
    Conversion { event: String },
}

impl StageChange {
    pub(crate) fn from_raw(rules: &Rules, conversions: &ConversionStages, raw: &RawStageChange) -> StageChange {
        let id = |i: u8| rules.stages.get(usize::from(i)).map_or(String::new(), |s| s.id.clone());
        StageChange {
            from: raw.from.map(id),
            to: id(raw.to),
            at: raw.at,
            by: match raw.by {
                RawCause::Score(milli) => StageCause::Score { score: Points::from_milli(milli) },
                RawCause::Conversion(i) => StageCause::Conversion { event: conversions.name(i).to_owned() },
            },
        }
    }

    /// The wire JSON, equal to the serde form (built by hand for the browser).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value};
        let mut by = Map::new();
        match &self.by {
            StageCause::Score { score } => {
                by.insert("kind".into(), Value::from("score"));
                by.insert("score".into(), score.to_json());
            }
            StageCause::Conversion { event } => {
                by.insert("kind".into(), Value::from("conversion"));
                by.insert("event".into(), Value::String(event.clone()));
            }
        }
        let mut m = Map::new();
        m.insert("from".into(), self.from.clone().map_or(Value::Null, Value::String));
        m.insert("to".into(), Value::String(self.to.clone()));
        m.insert("at".into(), Value::String(self.at.to_rfc3339()));
        m.insert("by".into(), Value::Object(by));
        Value::Object(m)
    }
}

/// One stage's line in the stage funnel (`GET /v1/reports/stages`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRow {
    pub stage: String,
    pub label: String,
    /// Visitors who entered it within the period.
    pub entered: u64,
    /// Visitors whose current stage it is (whenever they entered it).
    pub current: u64,
    /// From the stage before it (none for the first).
    pub from_previous: Option<FromPrevious>,
}

/// How the visitors who entered the previous stage within the period went on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FromPrevious {
    pub stage: String,
    /// Who entered the previous stage within the period…
    pub visitors: u64,
    /// …and of them, who have entered this one since (at any time).
    pub moved: u64,
    /// `moved / visitors`; `None` when nobody entered the previous stage.
    pub rate: Option<f64>,
    /// The median time between the two entries of those who moved (the
    /// lower middle value for an even count), in ms.
    pub median_ms: Option<i64>,
}

/// The stage funnel over visitors' stage histories (each a list of
/// `(stage id, entered at ms)`; ids the rules no longer have are skipped)
/// for entries in `[from, to)`, in the rules' stage order. A visitor who
/// skipped a stage (a form straight to a signed client) counts in the stages
/// they entered only.
pub fn funnel<'a>(
    rules: &Rules,
    histories: impl IntoIterator<Item = &'a [(String, i64)]>,
    from: i64,
    to: i64,
) -> Vec<StageRow> {
    let n = rules.stages.len();
    let mut entered = vec![0u64; n];
    let mut current = vec![0u64; n];
    let mut gaps: Vec<Vec<i64>> = vec![Vec::new(); n];
    for history in histories {
        // Entry time per stage index (a stage is entered once).
        let mut at: Vec<Option<i64>> = vec![None; n];
        let mut latest: Option<usize> = None;
        for (id, t) in history {
            if let Some(i) = rules.stage_index(id)
                && let Some(slot) = at.get_mut(i)
            {
                *slot = Some(*t);
                latest = Some(latest.map_or(i, |l| l.max(i)));
            }
        }
        if let Some(c) = latest.and_then(|l| current.get_mut(l)) {
            *c += 1;
        }
        for i in 0..n {
            let Some(Some(t)) = at.get(i).copied() else { continue };
            if !(from..to).contains(&t) {
                continue;
            }
            if let Some(e) = entered.get_mut(i) {
                *e += 1;
            }
            if let (Some(Some(next)), Some(g)) = (at.get(i + 1).copied(), gaps.get_mut(i + 1)) {
                g.push(next.saturating_sub(t));
            }
        }
    }
    rules
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let from_previous = i.checked_sub(1).and_then(|p| rules.stages.get(p)).map(|prev| {
                let visitors = entered.get(i - 1).copied().unwrap_or(0);
                let mut g = gaps.get(i).cloned().unwrap_or_default();
                g.sort_unstable();
                let moved = g.len() as u64;
                FromPrevious {
                    stage: prev.id.clone(),
                    visitors,
                    moved,
                    rate: (visitors > 0).then(|| moved as f64 / visitors as f64),
                    median_ms: g.get(g.len().saturating_sub(1) / 2).copied(),
                }
            });
            StageRow {
                stage: s.id.clone(),
                label: s.label.clone(),
                entered: entered.get(i).copied().unwrap_or(0),
                current: current.get(i).copied().unwrap_or(0),
                from_previous,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(s, t)| ((*s).to_owned(), *t)).collect()
    }

    #[test]
    fn funnel_counts_entries_rates_and_median_gaps() {
        let rules = Rules::default_rules();
        let day = 86_400_000;
        let histories = [
            h(&[("lead", 0), ("qualified", day), ("client", 3 * day)]),
            h(&[("lead", 10), ("qualified", 10 + 2 * day)]),
            h(&[("lead", 20)]),
            h(&[("lead", 30), ("client", 30 + 5 * day)]), // skipped qualified
            h(&[("lead", -5)]),                           // before the period
            h(&[("unknown", 40)]),
        ];
        let rows = funnel(&rules, histories.iter().map(Vec::as_slice), 0, 10 * day);
        let lead = &rows[0];
        assert_eq!(
            (lead.stage.as_str(), lead.entered, lead.current, lead.from_previous.is_none()),
            ("lead", 4, 2, true)
        );
        let q = &rows[1];
        assert_eq!((q.entered, q.current), (2, 1));
        let p = q.from_previous.as_ref().unwrap();
        assert_eq!((p.stage.as_str(), p.visitors, p.moved, p.rate, p.median_ms), ("lead", 4, 2, Some(0.5), Some(day)));
        let c = &rows[2];
        assert_eq!((c.entered, c.current), (2, 2));
        let p = c.from_previous.as_ref().unwrap();
        // Only the one who went through qualified counts as moving from it.
        assert_eq!((p.visitors, p.moved, p.rate, p.median_ms), (2, 1, Some(0.5), Some(2 * day)));
        let empty = funnel(&rules, std::iter::empty(), 0, 1);
        assert_eq!(empty[1].from_previous.as_ref().map(|p| (p.rate, p.median_ms)), Some((None, None)));
    }
}
