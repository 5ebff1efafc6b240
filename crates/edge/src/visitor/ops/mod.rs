//! What the object does for each request. Its changes to the object's state
//! come before its first await (see the invariants in `visitor`), so two
//! requests for the same visitor cannot interleave there; the awaits that
//! follow write idempotent D1 rows and set the alarm.

mod apply;
pub use apply::LEDGER_CAP;
mod merge;
mod withdraw;

use super::object::{Scoring, Visitor, now_ts};
use super::projection;
use super::protocol::{EraseReply, ExportReply, SweepReply};
use super::store::MetaKey;
use crate::errors::ApiResult;
use microfunnel_core::Timestamp;
use microfunnel_core::conversion::Definitions;
use microfunnel_core::scoring::Score;
use serde_json::Value;

impl Visitor {
    pub(super) fn score(&self, rules: &Value, conversions: &Definitions) -> ApiResult<Value> {
        // Schema ensured and forward checked by `fetch`.
        let rules = self.scoring(rules, conversions)?;
        let now = now_ts()?;
        let score = self.with_scorer(&rules, |s| s.score(now))?;
        Ok(serde_json::to_value(score)?)
    }

    pub(super) fn export(&self) -> ApiResult<ExportReply> {
        let store = self.store();
        store.ensure_schema()?;
        Ok(ExportReply {
            ledger: store.export_ledger()?,
            journey: store.export_journey()?,
            withdrawals: store.export_withdrawals()?,
            converted: store.converted()?,
            merged_into: store.forward()?,
            carried: store.meta(MetaKey::Carry)?.and_then(|t| serde_json::from_str(&t).ok()),
        })
    }

    /// Retention: ledger, journey and session rows before `before` go; an
    /// object left with nothing (no rows, no pending webhook) deletes itself.
    /// The score is rebuilt over what is left at the next request.
    pub(super) async fn sweep(&self, before: i64) -> ApiResult<SweepReply> {
        let store = self.store();
        store.ensure_schema()?;
        let removed = store.delete_before(before)?;
        // A carry made only of what is now past retention goes with it.
        let carried = store.carry()?;
        if carried.as_ref().is_some_and(|c| c.last_at().is_none_or(|t| t.millis() < before)) {
            store.drop_carry()?;
        }
        if removed > 0 || carried.is_some() {
            self.drop_scorer();
        }
        if store.is_empty()? {
            self.state.storage().delete_alarm().await?;
            self.state.storage().delete_all().await?;
            return Ok(SweepReply { removed, dropped: true, oldest: None });
        }
        Ok(SweepReply { removed, dropped: false, oldest: store.oldest_event()? })
    }

    pub(super) async fn erase(&self) -> ApiResult<EraseReply> {
        let store = self.store();
        let erased_events = store.ensure_schema().and_then(|()| store.ledger_count()).unwrap_or(0);
        let merged_from = store.merged_from().unwrap_or_default();
        self.state.storage().delete_alarm().await?;
        self.state.storage().delete_all().await?;
        self.drop_scorer();
        Ok(EraseReply { erased_events, merged_from })
    }

    /// After the ledger changed other than by new events (a withdrawal, a
    /// merge): the scorer is rebuilt over the whole ledger and the visitor's
    /// row gets the new score, tier, drivers and event count.
    async fn rescore(&self, site: &str, visitor: &str, rules: &Scoring, now: Timestamp) -> ApiResult<(Score, i64)> {
        self.drop_scorer();
        let (score, snapshot) = self.with_scorer(rules, |s| (s.score(now), s.snapshot()))?;
        let events = self.store().ledger_count()?;
        projection::save_rescore(&self.env, site, visitor, &score, &snapshot, events).await?;
        Ok((score, events))
    }
}
