//! Cross-device merge, on each side: the old object hands its rows over and
//! from then on forwards ([`Visitor::handover`]), the new one takes them
//! ([`Visitor::import`]), and the old one drops them ([`Visitor::retire`]).
//! Each step repeats harmlessly, so a retried merge completes.

use super::super::object::{Visitor, now_ts};
use super::super::protocol::{HandoverReply, ImportReply, ImportRequest, RetireReply};
use super::super::store::MetaKey;
use crate::errors::{ApiError, ApiResult};

impl Visitor {
    /// Everything `into`'s object needs to take this visitor over (raw rows),
    /// and from now on a forward to it, set with no await in between: a
    /// request arriving after the rows were read is forwarded, never left
    /// behind. Until `/retire` the forward may be re-pointed (`into` was
    /// itself merged away); after it, the answer is only where it went.
    /// The ledger comes in pages (`page` 0 with every other row).
    pub(in super::super) fn handover(&self, into: &str, page: u32) -> ApiResult<HandoverReply> {
        let store = self.store();
        store.ensure_schema()?;
        if store.meta(MetaKey::Retired)?.is_some() {
            return Ok(HandoverReply::Retired { merged_into: store.forward()? });
        }
        let (ledger, more) = store.handed_ledger(page)?;
        let first = page == 0;
        let reply = HandoverReply::Rows {
            ledger,
            journey: if first { store.handed_journey()? } else { Vec::new() },
            withdrawals: if first { store.withdrawal_rows()? } else { Vec::new() },
            closed_at: store.closed_at()?,
            converted: if first { store.converted()? } else { Vec::new() },
            carry: if first { store.meta(MetaKey::Carry)? } else { None },
            more,
        };
        store.set_meta(MetaKey::MergedInto, into)?;
        Ok(reply)
    }

    /// After `into` took the rows over: they go, the forward stays. Pending
    /// webhook deliveries stay too, and their alarm.
    pub(in super::super) async fn retire(&self) -> ApiResult<RetireReply> {
        let store = self.store();
        store.ensure_schema()?;
        if store.forward()?.is_none() {
            return Err(ApiError::new(409, "not_handed_over", "retire comes after a hand-over"));
        }
        store.clear_rows()?;
        store.drop_carry()?;
        store.set_meta(MetaKey::Retired, "1")?;
        self.drop_scorer();
        self.schedule().await?;
        Ok(RetireReply {})
    }

    /// Takes over another visitor's rows (same person, another device): its
    /// ledger joins this one (de-duplicated), its open touches join the open
    /// journey, and the score is rebuilt over both. Conversions already
    /// attributed stay as they were; they come along, so a later conversion on
    /// this profile inherits or adjusts them.
    pub(in super::super) async fn import(&self, body: ImportRequest) -> ApiResult<ImportReply> {
        // Schema ensured and forward checked by `fetch`.
        let store = self.store();
        let now = now_ts()?;
        let rules = self.scoring(&body.rules, &body.conversions)?;
        store.remember(&body.site, &body.visitor)?;
        store.import(&body.ledger, &body.journey, &body.withdrawals, &body.converted)?;
        // Two carries cannot be folded into one: the other's is taken only
        // when this object has none (each is a score of capped history).
        if let Some(c) = &body.carry
            && store.meta(MetaKey::Carry)?.is_none()
        {
            store.set_meta(MetaKey::Carry, c)?;
        }
        let mut from = store.merged_from()?;
        if !from.contains(&body.from) {
            from.push(body.from.clone());
            store.set_meta(MetaKey::MergedFrom, &serde_json::to_string(&from)?)?;
        }
        // Touches of a path either device already closed count for neither.
        if let Some(c) = body.closed_at {
            store.close_journey_at(c)?;
        }
        if let Some(c) = store.closed_at()? {
            store.drop_touches_until(c)?;
        }
        if !body.journey.is_empty() {
            store.set_journey_expiry(now.millis().saturating_add(body.journey_timeout_ms))?;
        }
        if !body.last {
            // More pages follow: the rows are in, the score waits for them all.
            self.drop_scorer();
            let events = store.ledger_count()?;
            return Ok(ImportReply {
                visitor: body.visitor,
                score: serde_json::Value::Null,
                tier: String::new(),
                events,
            });
        }
        let (score, events) = self.rescore(&body.site, &body.visitor, &rules, now).await?;
        self.schedule().await?;
        Ok(ImportReply { visitor: body.visitor, score: score.score.to_json(), tier: score.tier, events })
    }
}
