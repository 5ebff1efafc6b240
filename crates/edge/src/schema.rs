//! Facts about the D1 schema (`migrations/*.sql`) that code relies on.

/// The D1 tables whose rows belong to one visitor, keyed by
/// `(site_id, visitor_id)`: a merge moves them to the visitor that holds both
/// devices. The `visitors` table is keyed the same way but holds the
/// visitor's own row, which each user of this list treats on its own.
pub const VISITOR_KEYED: &[&str] =
    &["events", "sessions", "identities", "conversions", "credits", "webhook_deliveries"];
