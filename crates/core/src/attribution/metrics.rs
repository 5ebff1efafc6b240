//! Attribution metrics: TTA bookkeeping, AVR, AQS, ICV and channel KPIs.

use super::markov::MarkovResult;
use serde::{Deserialize, Serialize};

/// Time To Attribution: from a conversion's arrival to its credit being
/// queryable. The caller passes both instants (the core has no clock).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TtaStats {
    pub count: u64,
    pub total_ms: i64,
    pub max_ms: i64,
    /// Attributed within one second / within 60 s ("excellent").
    pub within_1s: u64,
    pub within_60s: u64,
}

impl TtaStats {
    /// Records one conversion; a negative delay (clock skew) counts as 0.
    pub fn record(&mut self, arrived_ms: i64, attributed_ms: i64) {
        let d = attributed_ms.saturating_sub(arrived_ms).max(0);
        self.count += 1;
        self.total_ms = self.total_ms.saturating_add(d);
        self.max_ms = self.max_ms.max(d);
        self.within_1s += u64::from(d <= 1_000);
        self.within_60s += u64::from(d <= 60_000);
    }

    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_ms as f64 / self.count as f64)
    }
}

/// Nearest-rank percentile (`p` in 0–100) of ascending values; `None` when
/// there are none. Used for TTA and latency p50/p99 wherever they are reported.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// What the Attribution Quality Score is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AqsInputs {
    pub conversions: u64,
    /// Conversions linked to a known visitor journey.
    pub identified_conversions: u64,
    pub touches: u64,
    /// Touches whose channel is known (not `Unassigned`).
    pub classified_touches: u64,
    /// Touches with a timestamp, not after their conversion, within lookback.
    pub consistent_touches: u64,
    /// Journeys (conversions + non-converting) a data-driven result rests on.
    pub journeys: f64,
    /// The minimum journeys the data-driven model requires (> 0).
    pub min_journeys: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Aqs {
    /// 0–100.
    pub score: f64,
    pub identity_match: f64,
    pub coverage: f64,
    pub temporal_consistency: f64,
    pub statistical_support: f64,
}

/// AQS = 100 · (0.3·I + 0.3·C + 0.2·T + 0.2·S) where
/// I = identified / conversions, C = classified / touches,
/// T = consistent / touches, S = min(1, journeys / min_journeys);
/// a ratio with a zero denominator counts as 0 (nothing to vouch for).
pub fn aqs(x: &AqsInputs) -> Aqs {
    let ratio = |a: f64, b: f64| if b > 0.0 { (a / b).clamp(0.0, 1.0) } else { 0.0 };
    let i = ratio(x.identified_conversions as f64, x.conversions as f64);
    let c = ratio(x.classified_touches as f64, x.touches as f64);
    let t = ratio(x.consistent_touches as f64, x.touches as f64);
    let s = ratio(x.journeys, x.min_journeys);
    Aqs {
        score: 100.0 * (0.3 * i + 0.3 * c + 0.2 * t + 0.2 * s),
        identity_match: i,
        coverage: c,
        temporal_consistency: t,
        statistical_support: s,
    }
}

/// Incremental Conversion Value per channel, from the removal effect: the
/// conversions and value that would be lost without the channel
/// (total × RE, not renormalised — they overlap, so they may sum past the
/// total).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Icv {
    pub channel: String,
    pub conversions: f64,
    pub value: f64,
}

pub fn icv(m: &MarkovResult) -> Vec<Icv> {
    m.channels
        .iter()
        .map(|c| Icv {
            channel: c.channel.clone(),
            conversions: m.total_conversions * c.removal_effect,
            value: m.total_value * c.removal_effect_value,
        })
        .collect()
}

/// One channel's inputs for its KPIs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiInput {
    pub channel: String,
    pub conversions: f64,
    pub value: f64,
    #[serde(default)]
    pub sessions: Option<f64>,
    #[serde(default)]
    pub spend: Option<f64>,
}

/// Channel KPIs; `None` where a denominator is missing or zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpi {
    pub channel: String,
    pub conversions: f64,
    pub value: f64,
    pub conversion_rate: Option<f64>,
    pub average_order_value: Option<f64>,
    pub cpa: Option<f64>,
    pub roas: Option<f64>,
}

pub fn kpi(x: &KpiInput) -> Kpi {
    let div = |a: f64, b: Option<f64>| b.filter(|b| *b > 0.0).map(|b| a / b);
    Kpi {
        channel: x.channel.clone(),
        conversions: x.conversions,
        value: x.value,
        conversion_rate: div(x.conversions, x.sessions),
        average_order_value: div(x.value, Some(x.conversions)),
        cpa: x.spend.and_then(|s| div(s, Some(x.conversions))),
        roas: div(x.value, x.spend),
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
