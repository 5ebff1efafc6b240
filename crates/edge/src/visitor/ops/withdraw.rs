//! A consent receipt from the module — a withdrawal, or a grant after one:
//! the ledger is cut down to it by the core (a grant cuts nothing), the
//! visitor re-scored, and the receipt kept, so later browser events are
//! held to it until the next.

use super::super::object::{Visitor, now_ts};
use super::super::protocol::{WithdrawReply, WithdrawRequest};
use crate::errors::{ApiError, ApiResult};
use microfunnel_core::consent::{self, ConsentStamp, MinimisePolicy};
use microfunnel_core::{Consent, Purpose};

impl Visitor {
    /// Cuts the ledger down to a withdrawal (by the core), drops the open
    /// journey without analytics, re-scores and updates the visitor's row.
    pub(in super::super) async fn withdraw(&self, body: WithdrawRequest) -> ApiResult<WithdrawReply> {
        // Schema ensured and forward checked by `fetch`.
        let store = self.store();
        let now = now_ts()?;
        let rules = self.scoring(&body.rules, &body.conversions)?;
        let stamp = ConsentStamp::parse(&body.consent).map_err(|e| ApiError::bad_request("invalid_withdraw", e))?;
        let consent = Consent::from_stamp(&stamp);
        let policy = serde_json::from_value::<MinimisePolicy>(body.policy.clone()).unwrap_or_default();
        // Everything below until the D1 write runs with no await: no batch
        // for this visitor can interleave.
        store.record_withdrawal(body.at, consent, &body.policy.to_string(), body.device.as_deref())?;
        // The receipt is the sending device's, whatever the withdrawal reaches:
        // another device of the profile has choices of its own.
        if let Some(from) = body.from.as_deref() {
            store.record_receipt(body.at, consent, &body.policy.to_string(), Some(from))?;
        }
        let (mut kept, mut removed) = (0, 0);
        for row in store.ledger_until(body.at)? {
            // A row that no longer reads cannot be cut down: it goes.
            let event = row
                .event()
                .inspect_err(|e| worker::console_error!("visitor ledger row {} unreadable: {e}", row.message_id))
                .ok();
            // A device not linked by a verified identity reaches only what it sent.
            if let (Some(d), Some(e)) = (&body.device, &event)
                && e.anonymous_id.as_ref() != Some(d)
            {
                continue;
            }
            match event.and_then(|e| consent::withdraw(e, &consent, &policy).event) {
                Some(e) => {
                    kept += 1;
                    store.rewrite_ledger(&row.message_id, &e)?;
                }
                None => {
                    removed += 1;
                    store.delete_ledger(&row.message_id)?;
                }
            }
        }
        if !consent.allows(Purpose::Analytics) {
            // No journey goes on without analytics, not even to close as a
            // null path: the whole journey, or the touches of this device's
            // events (gone from the ledger now).
            match body.device {
                None => store.clear_journey()?,
                Some(_) => store.drop_orphan_touches()?,
            }
        }
        // The carry of rows the cap dropped cannot be cut down event by
        // event: without personalization its points go with it.
        if !consent.allows(Purpose::Personalization) {
            store.drop_carry()?;
        }
        // A conversion whose event went is not inherited or adjusted either.
        store.drop_orphan_conversions()?;
        let (score, _) = self.rescore(&body.site, &body.visitor, &rules, now).await?;
        self.schedule().await?;
        Ok(WithdrawReply { visitor: body.visitor, score: score.score.to_json(), tier: score.tier, kept, removed })
    }
}
