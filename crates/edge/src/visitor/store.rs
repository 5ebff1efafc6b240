//! The object's SQLite storage: the schema, the `meta` keys and every query.
//! All of it is synchronous, which is what lets an operation change the
//! object's state with no await in between.

use super::protocol::{HandedJourneyRow, HandedLedgerRow, WithdrawalRow};
use crate::errors::ApiResult;
use crate::webhooks;
use microfunnel_core::attribution::Touch;
use microfunnel_core::consent::{ConsentStamp, MinimisePolicy};
use microfunnel_core::conversion::Recorded;
use microfunnel_core::{Channel, Consent, Event, Timestamp};
use serde::Deserialize;
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

/// The keys of the `meta` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// Which site and visitor this object is (for its alarm), set once.
    Site,
    Visitor,
    /// Where this visitor was merged into: it then takes no requests of its own.
    MergedInto,
    /// The visitors merged into this one (a JSON array), erased with it.
    MergedFrom,
    /// Set once its rows went to `MergedInto`.
    Retired,
    /// See [`Store::closed_at`].
    JourneyClosedAt,
    /// When the open journey expires (milliseconds).
    JourneyExpiresAt,
    /// The object's schema version (absent: made before withdrawals had a device).
    Schema,
    /// The core's `Carry` of ledger rows dropped by the cap (JSON).
    Carry,
}

impl MetaKey {
    pub fn as_str(self) -> &'static str {
        match self {
            MetaKey::Site => "site",
            MetaKey::Visitor => "visitor",
            MetaKey::MergedInto => "merged_into",
            MetaKey::MergedFrom => "merged_from",
            MetaKey::Retired => "retired",
            MetaKey::JourneyClosedAt => "journey_closed_at",
            MetaKey::JourneyExpiresAt => "journey_expires_at",
            MetaKey::Schema => "schema",
            MetaKey::Carry => "carry",
        }
    }
}

/// A withdrawal as the object keeps it, to cut down events captured before
/// it that arrive after it.
pub struct Withdrawal {
    pub at: i64,
    pub consent: Consent,
    pub policy: MinimisePolicy,
    /// Only this device's events; `None`: every event.
    pub device: Option<String>,
}

impl Withdrawal {
    /// Whether a late-arriving event is one this withdrawal cuts down.
    pub fn reaches(&self, e: &Event) -> bool {
        self.at >= e.timestamp.millis() && self.covers(e)
    }

    /// Whether an event is from what this withdrawal (or receipt) covers:
    /// its device, or the whole profile.
    pub fn covers(&self, e: &Event) -> bool {
        self.device.as_ref().is_none_or(|d| e.anonymous_id.as_ref() == Some(d))
    }
}

#[derive(Deserialize)]
pub struct SessionRow {
    pub session_id: String,
    pub started_at: f64,
    pub ended_at: f64,
    pub events: f64,
    pub channel: Option<String>,
    pub landing: Option<String>,
}

#[derive(Deserialize)]
pub struct TouchRow {
    pub channel: String,
    pub ts: f64,
}

/// A ledger row as its event and the row's id, for a rewrite in place.
#[derive(Deserialize)]
pub struct LedgerRow {
    pub message_id: String,
    pub payload: String,
    pub channel: Option<String>,
}

impl LedgerRow {
    /// The trusted read of an event this object stored (its channel kept
    /// beside it, as derived on arrival).
    pub fn event(&self) -> Result<Event, String> {
        stored_event(&self.payload, self.channel.as_deref())
    }
}

pub fn stored_event(payload: &str, channel: Option<&str>) -> Result<Event, String> {
    let raw: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let mut e = Event::from_stored(&raw).map_err(|e| e.to_string())?;
    e.channel = channel.and_then(|c| Channel::parse(c).ok());
    Ok(e)
}

const LEDGER_INSERT: &str = "INSERT INTO ledger (message_id, ts, received_at, channel, payload) \
                             VALUES (?, ?, ?, ?, ?) ON CONFLICT(message_id) DO NOTHING";
const JOURNEY_INSERT: &str =
    "INSERT INTO journey (message_id, ts, channel) VALUES (?, ?, ?) ON CONFLICT(message_id) DO NOTHING";
/// Touches one open journey keeps: the latest, so attribution, `paths` and
/// `conversions.path` stay bounded however many events one visitor id gets.
pub const JOURNEY_CAP: i64 = 50;
const JOURNEY_TRIM: &str = "DELETE FROM journey WHERE message_id IN \
                            (SELECT message_id FROM journey ORDER BY ts DESC, message_id DESC LIMIT -1 OFFSET ?)";
const WITHDRAWAL_INSERT: &str = "INSERT INTO withdrawals (at, consent, policy, device) VALUES (?, ?, ?, ?)";
const RECEIPT_INSERT: &str = "INSERT INTO receipts (at, consent, policy, device) VALUES (?, ?, ?, ?)";
/// Ledger rows per hand-over page: a merge never sends one whole ledger.
pub const HANDOVER_PAGE: i64 = 500;
/// Receipts kept per device (and for the whole profile): the latest.
pub const RECEIPTS_PER_DEVICE: i64 = 5;
const SESSION_COLUMNS: &str = "session_id, started_at, ended_at, events, channel, landing";

pub struct Store {
    sql: SqlStorage,
}

impl Store {
    pub fn new(sql: SqlStorage) -> Store {
        Store { sql }
    }

    pub fn sql(&self) -> &SqlStorage {
        &self.sql
    }

    pub fn ensure_schema(&self) -> ApiResult<()> {
        let sql = &self.sql;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS ledger (message_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, \
             received_at INTEGER NOT NULL, channel TEXT, payload TEXT NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS journey (message_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, channel TEXT NOT NULL)",
            None,
        )?;
        sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", None)?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS withdrawals (at INTEGER NOT NULL, consent TEXT NOT NULL, policy TEXT NOT NULL, \
             device TEXT)",
            None,
        )?;
        // The visitor's consent choices as the module reported them (grants
        // and withdrawals, each the whole consent as of `at`).
        sql.exec(
            "CREATE TABLE IF NOT EXISTS receipts (at INTEGER NOT NULL, consent TEXT NOT NULL, policy TEXT NOT NULL, \
             device TEXT)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, \
             ended_at INTEGER NOT NULL, events INTEGER NOT NULL, channel TEXT, landing TEXT)",
            None,
        )?;
        // The conversions credited here: what later ones inherit or adjust.
        sql.exec(
            "CREATE TABLE IF NOT EXISTS converted (message_id TEXT PRIMARY KEY, name TEXT NOT NULL, ts INTEGER NOT NULL, \
             value_minor INTEGER NOT NULL, transaction_id TEXT, touches TEXT NOT NULL)",
            None,
        )?;
        webhooks::ensure_schema(sql)?;
        // Objects made before withdrawals were scoped to a device.
        if self.meta(MetaKey::Schema)?.is_none() {
            let _ = sql.exec("ALTER TABLE withdrawals ADD COLUMN device TEXT", None);
            self.set_meta(MetaKey::Schema, "2")?;
        }
        Ok(())
    }

    // ---- meta ----

    pub fn meta(&self, key: MetaKey) -> ApiResult<Option<String>> {
        #[derive(Deserialize)]
        struct M {
            value: String,
        }
        let rows: Vec<M> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = ?", vec![SqlStorageValue::from(key.as_str())])?
            .to_array()?;
        Ok(rows.into_iter().next().map(|m| m.value))
    }

    pub fn set_meta(&self, key: MetaKey, value: &str) -> ApiResult<()> {
        self.sql.exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![SqlStorageValue::from(key.as_str()), SqlStorageValue::from(value)],
        )?;
        Ok(())
    }

    /// Which site and visitor this object is (for its alarm), set once.
    pub fn remember(&self, site: &str, visitor: &str) -> ApiResult<()> {
        for (k, v) in [(MetaKey::Site, site), (MetaKey::Visitor, visitor)] {
            self.sql.exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
                vec![SqlStorageValue::from(k.as_str()), SqlStorageValue::from(v)],
            )?;
        }
        Ok(())
    }

    /// Where this visitor was merged into, if it was.
    pub fn forward(&self) -> ApiResult<Option<String>> {
        self.meta(MetaKey::MergedInto)
    }

    pub fn merged_from(&self) -> ApiResult<Vec<String>> {
        Ok(self.meta(MetaKey::MergedFrom)?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
    }

    /// The timestamp of the latest touch of the last journey that closed (by
    /// its conversion, or expired). A touch at or before it belongs to a path
    /// already counted, so it never opens the next one — a late offline
    /// event, or another device's touch brought in by a merge.
    pub fn closed_at(&self) -> ApiResult<Option<i64>> {
        Ok(self.meta(MetaKey::JourneyClosedAt)?.and_then(|v| v.parse().ok()))
    }

    pub fn close_journey_at(&self, ts: i64) -> ApiResult<()> {
        if self.closed_at()?.is_none_or(|c| c < ts) {
            self.set_meta(MetaKey::JourneyClosedAt, &ts.to_string())?;
        }
        Ok(())
    }

    pub fn set_journey_expiry(&self, at: i64) -> ApiResult<()> {
        self.set_meta(MetaKey::JourneyExpiresAt, &at.to_string())
    }

    /// When the open journey expires, if there is one.
    pub fn journey_expiry(&self) -> ApiResult<Option<i64>> {
        if self.count("journey")? == 0 {
            return Ok(None);
        }
        Ok(self.meta(MetaKey::JourneyExpiresAt)?.and_then(|v| v.parse().ok()))
    }

    // ---- ledger ----

    pub fn ledger_count(&self) -> ApiResult<i64> {
        self.count("ledger")
    }

    /// Rows and payload bytes of the ledger.
    pub fn ledger_size(&self) -> ApiResult<(i64, i64)> {
        #[derive(Deserialize)]
        struct Size {
            n: f64,
            bytes: Option<f64>,
        }
        let rows: Vec<Size> =
            self.sql.exec("SELECT COUNT(*) AS n, SUM(LENGTH(payload)) AS bytes FROM ledger", None)?.to_array()?;
        Ok(rows.first().map_or((0, 0), |r| (r.n as i64, r.bytes.unwrap_or(0.0) as i64)))
    }

    /// The oldest ledger rows, in scoring order, with their payload sizes.
    pub fn oldest_ledger(&self, limit: i64) -> ApiResult<Vec<(LedgerRow, i64)>> {
        #[derive(Deserialize)]
        struct Sized {
            message_id: String,
            payload: String,
            channel: Option<String>,
        }
        let rows: Vec<Sized> = self
            .sql
            .exec(
                "SELECT message_id, payload, channel FROM ledger ORDER BY ts, message_id LIMIT ?",
                vec![SqlStorageValue::from(limit)],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let len = i64::try_from(r.payload.len()).unwrap_or(i64::MAX);
                (LedgerRow { message_id: r.message_id, payload: r.payload, channel: r.channel }, len)
            })
            .collect())
    }

    /// The carry of dropped rows, if one reads.
    pub fn carry(&self) -> ApiResult<Option<microfunnel_core::scoring::Carry>> {
        Ok(self.meta(MetaKey::Carry)?.and_then(|t| {
            microfunnel_core::scoring::Carry::from_json(&t)
                .inspect_err(|e| worker::console_error!("visitor carry unreadable, left out: {e}"))
                .ok()
        }))
    }

    pub fn drop_carry(&self) -> ApiResult<()> {
        self.sql.exec("DELETE FROM meta WHERE key = ?", vec![SqlStorageValue::from(MetaKey::Carry.as_str())])?;
        Ok(())
    }

    fn count(&self, table: &str) -> ApiResult<i64> {
        #[derive(Deserialize)]
        struct N {
            n: f64,
        }
        let rows: Vec<N> = self.sql.exec(&format!("SELECT COUNT(*) AS n FROM {table}"), None)?.to_array()?;
        Ok(rows.first().map_or(0, |r| r.n as i64))
    }

    /// The ledger's events in scoring order. A row that no longer reads is
    /// logged and left out; how many were is the second value.
    pub fn ledger(&self) -> ApiResult<(Vec<Event>, usize)> {
        let rows: Vec<LedgerRow> = self
            .sql
            .exec("SELECT message_id, payload, channel FROM ledger ORDER BY ts, message_id", None)?
            .to_array()?;
        let mut events = Vec::with_capacity(rows.len());
        let mut skipped = 0;
        for r in rows {
            match r.event() {
                Ok(e) => events.push(e),
                Err(e) => {
                    skipped += 1;
                    worker::console_error!("visitor ledger row {} unreadable: {e}", r.message_id);
                }
            }
        }
        Ok((events, skipped))
    }

    /// The rows captured at or before `at`.
    pub fn ledger_until(&self, at: i64) -> ApiResult<Vec<LedgerRow>> {
        Ok(self
            .sql
            .exec("SELECT message_id, payload, channel FROM ledger WHERE ts <= ?", vec![SqlStorageValue::from(at)])?
            .to_array()?)
    }

    /// Adds one event; `false` when its `messageId` was there already.
    pub fn insert_ledger(
        &self,
        e: &Event,
        received_at: i64,
        channel: Option<String>,
        payload: &str,
    ) -> ApiResult<bool> {
        let cursor = self.sql.exec(
            LEDGER_INSERT,
            vec![
                SqlStorageValue::from(e.message_id.to_string()),
                SqlStorageValue::from(e.timestamp.millis()),
                SqlStorageValue::from(received_at),
                SqlStorageValue::from(channel),
                SqlStorageValue::from(payload),
            ],
        )?;
        // Drain the cursor so the write counts are final.
        let _ = cursor.to_array::<Value>();
        Ok(cursor.rows_written() > 0)
    }

    pub fn rewrite_ledger(&self, message_id: &str, e: &Event) -> ApiResult<()> {
        self.sql.exec(
            "UPDATE ledger SET payload = ?, channel = ? WHERE message_id = ?",
            vec![
                SqlStorageValue::from(serde_json::to_string(e)?),
                SqlStorageValue::from(e.channel.as_ref().map(|c| c.name().to_owned())),
                SqlStorageValue::from(message_id),
            ],
        )?;
        Ok(())
    }

    pub fn delete_ledger(&self, message_id: &str) -> ApiResult<()> {
        self.sql.exec("DELETE FROM ledger WHERE message_id = ?", vec![SqlStorageValue::from(message_id)])?;
        Ok(())
    }

    // ---- journey ----

    /// The open journey's touches, in order.
    pub fn touches(&self) -> ApiResult<Vec<TouchRow>> {
        Ok(self.sql.exec("SELECT channel, ts FROM journey ORDER BY ts, message_id", None)?.to_array()?)
    }

    pub fn last_touch(&self) -> ApiResult<Option<TouchRow>> {
        let rows: Vec<TouchRow> = self
            .sql
            .exec("SELECT channel, ts FROM journey ORDER BY ts DESC, message_id DESC LIMIT 1", None)?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    pub fn insert_touch(&self, message_id: &str, ts: i64, channel: &str) -> ApiResult<()> {
        self.sql.exec(
            JOURNEY_INSERT,
            vec![SqlStorageValue::from(message_id), SqlStorageValue::from(ts), SqlStorageValue::from(channel)],
        )?;
        self.sql.exec(JOURNEY_TRIM, vec![SqlStorageValue::from(JOURNEY_CAP)])?;
        Ok(())
    }

    /// Retention: every ledger, journey and session row about an instant
    /// before `before`, and every consent receipt but each device's latest. Answers how many ledger rows went.
    pub fn delete_before(&self, before: i64) -> ApiResult<i64> {
        let removed = self.sql.exec("DELETE FROM ledger WHERE ts < ?", vec![SqlStorageValue::from(before)])?;
        let _ = removed.to_array::<Value>();
        let n = i64::try_from(removed.rows_written()).unwrap_or(0);
        self.sql.exec("DELETE FROM journey WHERE ts < ?", vec![SqlStorageValue::from(before)])?;
        self.sql.exec("DELETE FROM sessions WHERE ended_at < ?", vec![SqlStorageValue::from(before)])?;
        self.sql.exec("DELETE FROM converted WHERE ts < ?", vec![SqlStorageValue::from(before)])?;
        // Past receipts go; each device's latest is the choice still in force.
        self.sql.exec(
            "DELETE FROM receipts WHERE at < ?1 AND rowid NOT IN (SELECT r.rowid FROM receipts r \
             WHERE r.at = (SELECT MAX(r2.at) FROM receipts r2 WHERE r2.device IS r.device))",
            vec![SqlStorageValue::from(before)],
        )?;
        Ok(n)
    }

    /// Nothing left worth keeping: no ledger, journey, credited conversion
    /// or pending webhook.
    pub fn is_empty(&self) -> ApiResult<bool> {
        #[derive(Deserialize)]
        struct N {
            n: f64,
        }
        let rows: Vec<N> = self
            .sql
            .exec(
                "SELECT (SELECT COUNT(*) FROM ledger) + (SELECT COUNT(*) FROM journey) + (SELECT COUNT(*) FROM outbox) \
                 + (SELECT COUNT(*) FROM converted) AS n",
                None,
            )?
            .to_array()?;
        Ok(rows.first().is_none_or(|r| r.n == 0.0))
    }

    /// The earliest event the ledger still holds.
    pub fn oldest_event(&self) -> ApiResult<Option<i64>> {
        #[derive(Deserialize)]
        struct T {
            ts: Option<f64>,
        }
        let rows: Vec<T> = self.sql.exec("SELECT MIN(ts) AS ts FROM ledger", None)?.to_array()?;
        Ok(rows.first().and_then(|t| t.ts).map(|t| t as i64))
    }

    /// Journey touches whose event left the ledger.
    pub fn drop_orphan_touches(&self) -> ApiResult<()> {
        self.sql.exec("DELETE FROM journey WHERE message_id NOT IN (SELECT message_id FROM ledger)", None)?;
        Ok(())
    }

    pub fn clear_journey(&self) -> ApiResult<()> {
        self.sql.exec("DELETE FROM journey", None)?;
        Ok(())
    }

    /// Drops the touches at or before `ts` (a path already closed).
    pub fn drop_touches_until(&self, ts: i64) -> ApiResult<()> {
        self.sql.exec("DELETE FROM journey WHERE ts <= ?", vec![SqlStorageValue::from(ts)])?;
        Ok(())
    }

    // ---- conversions credited here ----

    /// Every conversion credited here; a row that no longer reads is logged
    /// and left out (it can then be neither inherited nor adjusted).
    pub fn converted(&self) -> ApiResult<Vec<Recorded>> {
        #[derive(Deserialize)]
        struct Row {
            message_id: String,
            name: String,
            ts: f64,
            value_minor: f64,
            transaction_id: Option<String>,
            touches: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT message_id, name, ts, value_minor, transaction_id, touches FROM converted", None)?
            .to_array()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let touches = serde_json::from_str::<Vec<Touch>>(&r.touches);
            match (Timestamp::from_millis(r.ts as i64), touches) {
                (Some(at), Ok(touches)) => out.push(Recorded {
                    message_id: r.message_id,
                    name: r.name,
                    at,
                    value_minor: r.value_minor as i64,
                    transaction_id: r.transaction_id,
                    touches,
                }),
                _ => worker::console_error!("visitor conversion row {} unreadable", r.message_id),
            }
        }
        Ok(out)
    }

    /// Keeps a credited conversion (a repeat of its message id changes nothing).
    pub fn record_conversion(&self, r: &Recorded) -> ApiResult<()> {
        self.sql.exec(
            "INSERT INTO converted (message_id, name, ts, value_minor, transaction_id, touches) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT(message_id) DO NOTHING",
            vec![
                SqlStorageValue::from(r.message_id.as_str()),
                SqlStorageValue::from(r.name.as_str()),
                SqlStorageValue::from(r.at.millis()),
                SqlStorageValue::from(r.value_minor),
                SqlStorageValue::from(r.transaction_id.clone()),
                SqlStorageValue::from(serde_json::to_string(&r.touches)?),
            ],
        )?;
        Ok(())
    }

    /// An adjustment's new value for the conversion it adjusts.
    pub fn adjust_conversion(&self, message_id: &str, value_minor: i64) -> ApiResult<()> {
        self.sql.exec(
            "UPDATE converted SET value_minor = ? WHERE message_id = ?",
            vec![SqlStorageValue::from(value_minor), SqlStorageValue::from(message_id)],
        )?;
        Ok(())
    }

    /// Credited conversions whose event left the ledger (a withdrawal).
    pub fn drop_orphan_conversions(&self) -> ApiResult<()> {
        self.sql.exec("DELETE FROM converted WHERE message_id NOT IN (SELECT message_id FROM ledger)", None)?;
        Ok(())
    }

    // ---- sessions ----

    /// The latest session that started at or before `ts`.
    pub fn session_before(&self, ts: i64) -> ApiResult<Option<SessionRow>> {
        let rows: Vec<SessionRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE started_at <= ? ORDER BY started_at DESC LIMIT 1"
                ),
                vec![SqlStorageValue::from(ts)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    pub fn extend_session(&self, session_id: &str, ts: i64) -> ApiResult<()> {
        self.sql.exec(
            "UPDATE sessions SET ended_at = MAX(ended_at, ?), events = events + 1 WHERE session_id = ?",
            vec![SqlStorageValue::from(ts), SqlStorageValue::from(session_id)],
        )?;
        Ok(())
    }

    pub fn start_session(
        &self,
        session_id: &str,
        ts: i64,
        channel: Option<String>,
        landing: Option<String>,
    ) -> ApiResult<()> {
        self.sql.exec(
            "INSERT INTO sessions (session_id, started_at, ended_at, events, channel, landing) VALUES (?, ?, ?, 1, ?, ?) \
             ON CONFLICT(session_id) DO NOTHING",
            vec![
                SqlStorageValue::from(session_id),
                SqlStorageValue::from(ts),
                SqlStorageValue::from(ts),
                SqlStorageValue::from(channel),
                SqlStorageValue::from(landing),
            ],
        )?;
        Ok(())
    }

    pub fn sessions(&self, ids: &[String]) -> ApiResult<Vec<SessionRow>> {
        let mut out = Vec::new();
        for id in ids {
            let rows: Vec<SessionRow> = self
                .sql
                .exec(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?"),
                    vec![SqlStorageValue::from(id.as_str())],
                )?
                .to_array()?;
            out.extend(rows);
        }
        Ok(out)
    }

    // ---- withdrawals ----

    /// Records a withdrawal, one row per device (and one for the whole
    /// profile): a new one folds the earlier in — the later instant, what
    /// both allow. Late events between the two are cut a little more than
    /// they had to be, never less, and the table stays bounded.
    pub fn record_withdrawal(&self, at: i64, consent: Consent, policy: &str, device: Option<&str>) -> ApiResult<()> {
        let (mut at, mut consent) = (at, consent);
        for w in self.withdrawals()?.into_iter().filter(|w| w.device.as_deref() == device) {
            at = at.max(w.at);
            consent = consent.and(w.consent);
        }
        self.sql.exec("DELETE FROM withdrawals WHERE device IS ?", vec![SqlStorageValue::from(device)])?;
        self.insert_choice(WITHDRAWAL_INSERT, at, consent, policy, device)
    }

    /// One row of `withdrawals` or `receipts` (the same columns).
    fn insert_choice(
        &self,
        insert: &str,
        at: i64,
        consent: Consent,
        policy: &str,
        device: Option<&str>,
    ) -> ApiResult<()> {
        self.sql.exec(
            insert,
            vec![
                SqlStorageValue::from(at),
                SqlStorageValue::from(consent.stamp().to_json().to_string()),
                SqlStorageValue::from(policy),
                SqlStorageValue::from(device),
            ],
        )?;
        Ok(())
    }

    /// Records a consent receipt: the device's (or, `None`, the verified
    /// profile's) whole consent as of `at`; the latest few are kept.
    pub fn record_receipt(&self, at: i64, consent: Consent, policy: &str, device: Option<&str>) -> ApiResult<()> {
        self.insert_choice(RECEIPT_INSERT, at, consent, policy, device)?;
        self.sql.exec(
            "DELETE FROM receipts WHERE device IS ?1 AND rowid NOT IN \
             (SELECT rowid FROM receipts WHERE device IS ?1 ORDER BY at DESC, rowid DESC LIMIT ?2)",
            vec![SqlStorageValue::from(device), SqlStorageValue::from(RECEIPTS_PER_DEVICE)],
        )?;
        Ok(())
    }

    /// The receipts that still read, as withdrawals (what they allow).
    pub fn receipts(&self) -> ApiResult<Vec<Withdrawal>> {
        let rows: Vec<WithdrawalRow> =
            self.sql.exec("SELECT at, consent, policy, device FROM receipts", None)?.to_array()?;
        Ok(Self::read_withdrawals(rows))
    }

    /// The withdrawals that still read (a stamp that does not is left out,
    /// a policy that does not is the default).
    pub fn withdrawals(&self) -> ApiResult<Vec<Withdrawal>> {
        let rows: Vec<WithdrawalRow> =
            self.sql.exec("SELECT at, consent, policy, device FROM withdrawals", None)?.to_array()?;
        Ok(Self::read_withdrawals(rows))
    }

    fn read_withdrawals(rows: Vec<WithdrawalRow>) -> Vec<Withdrawal> {
        let mut out = Vec::new();
        for r in rows {
            let stamp = serde_json::from_str::<Value>(&r.consent).ok().and_then(|v| ConsentStamp::parse(&v).ok());
            let policy = serde_json::from_str::<MinimisePolicy>(&r.policy).unwrap_or_default();
            if let Some(stamp) = stamp {
                out.push(Withdrawal {
                    at: r.at as i64,
                    consent: Consent::from_stamp(&stamp),
                    policy,
                    device: r.device,
                });
            }
        }
        out
    }

    // ---- outbox ----

    /// When the next webhook delivery is due.
    pub fn next_delivery(&self) -> ApiResult<Option<i64>> {
        #[derive(Deserialize)]
        struct Next {
            next_at: Option<f64>,
        }
        let rows: Vec<Next> = self.sql.exec("SELECT MIN(next_at) AS next_at FROM outbox", None)?.to_array()?;
        Ok(rows.first().and_then(|n| n.next_at).map(|t| t as i64))
    }

    // ---- merge and export: rows as they are stored ----

    /// One page of the ledger for a hand-over, in a fixed order (the object
    /// takes no new rows once it forwards), and whether more follow.
    pub fn handed_ledger(&self, page: u32) -> ApiResult<(Vec<HandedLedgerRow>, bool)> {
        let mut rows: Vec<HandedLedgerRow> = self
            .sql
            .exec(
                "SELECT message_id, ts, received_at, channel, payload FROM ledger ORDER BY ts, message_id \
                 LIMIT ? OFFSET ?",
                vec![SqlStorageValue::from(HANDOVER_PAGE + 1), SqlStorageValue::from(i64::from(page) * HANDOVER_PAGE)],
            )?
            .to_array()?;
        let more = rows.len() as i64 > HANDOVER_PAGE;
        rows.truncate(HANDOVER_PAGE as usize);
        Ok((rows, more))
    }

    pub fn handed_journey(&self) -> ApiResult<Vec<HandedJourneyRow>> {
        Ok(self.sql.exec("SELECT message_id, ts, channel FROM journey", None)?.to_array()?)
    }

    /// The folded withdrawals, then the receipts (`receipt: true`).
    pub fn withdrawal_rows(&self) -> ApiResult<Vec<WithdrawalRow>> {
        let mut rows: Vec<WithdrawalRow> =
            self.sql.exec("SELECT at, consent, policy, device FROM withdrawals", None)?.to_array()?;
        let receipts: Vec<WithdrawalRow> =
            self.sql.exec("SELECT at, consent, policy, device FROM receipts", None)?.to_array()?;
        rows.extend(receipts.into_iter().map(|r| WithdrawalRow { receipt: true, ..r }));
        Ok(rows)
    }

    /// Another object's rows joining this one; `ON CONFLICT` makes a
    /// repeated merge a no-op for the ledger and the journey.
    pub fn import(
        &self,
        ledger: &[HandedLedgerRow],
        journey: &[HandedJourneyRow],
        withdrawals: &[WithdrawalRow],
        converted: &[Recorded],
    ) -> ApiResult<()> {
        for r in converted {
            self.record_conversion(r)?;
        }
        for r in ledger {
            self.sql.exec(
                LEDGER_INSERT,
                vec![
                    SqlStorageValue::from(r.message_id.as_str()),
                    SqlStorageValue::from(r.ts as i64),
                    SqlStorageValue::from(r.received_at as i64),
                    SqlStorageValue::from(r.channel.clone()),
                    SqlStorageValue::from(r.payload.as_str()),
                ],
            )?;
        }
        for j in journey {
            self.insert_touch(&j.message_id, j.ts as i64, &j.channel)?;
        }
        for w in withdrawals {
            let stamp = serde_json::from_str::<Value>(&w.consent).ok().and_then(|v| ConsentStamp::parse(&v).ok());
            match stamp {
                Some(s) if w.receipt => {
                    self.record_receipt(w.at as i64, Consent::from_stamp(&s), &w.policy, w.device.as_deref())?
                }
                Some(s) => {
                    self.record_withdrawal(w.at as i64, Consent::from_stamp(&s), &w.policy, w.device.as_deref())?
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Drops the visitor's rows (after a hand-over); meta and the outbox stay.
    pub fn clear_rows(&self) -> ApiResult<()> {
        for table in ["ledger", "journey", "withdrawals", "receipts", "sessions", "converted"] {
            self.sql.exec(&format!("DELETE FROM {table}"), None)?;
        }
        Ok(())
    }

    /// Ledger rows with their payload as JSON (left as text if it is not).
    pub fn export_ledger(&self) -> ApiResult<Vec<Value>> {
        let rows: Vec<Value> = self
            .sql
            .exec("SELECT message_id, ts, received_at, channel, payload FROM ledger ORDER BY ts", None)?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|mut row| {
                if let Some(p) = row.get("payload").and_then(Value::as_str).and_then(|p| serde_json::from_str(p).ok())
                    && let Some(obj) = row.as_object_mut()
                {
                    obj.insert("payload".into(), p);
                }
                row
            })
            .collect())
    }

    pub fn export_journey(&self) -> ApiResult<Vec<Value>> {
        Ok(self.sql.exec("SELECT message_id, ts, channel FROM journey ORDER BY ts", None)?.to_array()?)
    }

    /// Withdrawals (folded) and consent receipts, each named by its kind.
    pub fn export_withdrawals(&self) -> ApiResult<Vec<Value>> {
        Ok(self
            .sql
            .exec(
                "SELECT 'withdrawal' AS kind, at, consent, device FROM withdrawals \
                 UNION ALL SELECT 'receipt' AS kind, at, consent, device FROM receipts ORDER BY at",
                None,
            )?
            .to_array()?)
    }
}
