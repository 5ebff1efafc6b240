//! Lead scoring: rule files, the incremental [`Scorer`] (browser) and batch
//! [`evaluate`] (edge, CLI) over one engine, and the explanation every score
//! carries. This module owns what a score *is*; nothing outside the core may
//! compute one.
//!
//! # Evaluation semantics (identical on every side; pinned by `tests/vectors/scoring/`)
//!
//! **Entries.** An event becomes a ledger entry when it matches an action, or
//! when it is an `identify` carrying fit traits (`role`, `industry`,
//! `company_size`, `region`, `budget`). Matching, first rule that applies:
//! 1. a `track` event whose name is exactly an action id (`web.pricing_view`);
//! 2. a `track` event whose `properties.mf_element` (the clicked element's
//!    `data-mf-element`) is an `element` matcher;
//! 3. a `track` event whose name is an `event` matcher;
//! 4. a `page` event whose path (`context.page.path`, else the path of
//!    `context.page.url`; query, fragment and a trailing `/` dropped) matches a
//!    `page` glob — the glob with the most literal characters wins, then the
//!    smaller action id.
//!
//! Events that match nothing (and `alias`) are not entries: they change
//! nothing, not even the decay clock, so adding an unrelated event type never
//! changes a score.
//!
//! **Ledger order** is (timestamp, messageId); equal keys keep arrival order.
//! It does not depend on the order events arrive in, so the browser and the
//! edge agree even when they receive events differently.
//!
//! **The fold**, entry by entry (engagement is kept in milli-points):
//! 1. a `messageId` already seen → ignored, `duplicate`;
//! 2. an entry captured without **personalization** consent (no stamp, or a
//!    stamp with `personalization: false`) → ignored, `no_consent` (scoring is
//!    profiling used to personalise the page and prioritise sales contact:
//!    analytics consent alone does not cover it);
//! 3. an action entry: subtract the decay accrued since the previous
//!    *activity* (an action entry that counted or was capped), never below 0;
//!    a gap of `session_timeout_minutes` (default 30) or more starts a new
//!    session; then the frequency policy decides — `once_per_visitor`,
//!    `once_per_session`, `{ per_day = N }` (UTC days) or `unlimited`; an
//!    action over its cap is ignored, `capped` (it still counts as activity);
//!    otherwise its points (negative included) are added and engagement is
//!    clamped at 0;
//! 4. a traits entry: traits merge into the known ones (`null` clears one);
//!    every fit rule is re-checked; a rule that starts to hold grants its
//!    points, a rule that stops holding (a later contradicting trait) removes
//!    them. Fit does not decay.
//!
//! At evaluation time `at` (never earlier than the last entry), the decay
//! accrued since the last activity is applied the same way.
//! `score = engagement + fit`; the tier is the highest whose minimum the score
//! reaches (the lowest tier if below all).
//!
//! **Decay.** Linear: `points` per *full* `period_days` of each inactivity
//! gap. Exponential: `e × 2^(−gap/half_life)` computed with IEEE
//! multiplications only and rounded down to a milli-point, so wasm and native
//! agree to the bit (see `engine::decayed`).
//!
//! **Stages.** The rules may list lifecycle stages (`[[stages]]`: id, label,
//! optional `min_score`, optional `any_conversion`), in the order a visitor
//! moves through them; a visitor only moves forward. Given the site's
//! conversions ([`ConversionStages`]), a `track` event that is a conversion
//! enters the stage its definition names, or the `any_conversion` stage when
//! it names none — whatever its personalization consent (a conversion is a
//! fact of the relationship; its action points still need the consent). A
//! conversion that matches no action is an entry for the stage only: it
//! changes nothing of the score, not even the evaluation time. After each
//! entry the latest stage whose `min_score` the total reaches is entered too
//! (the conversion's stage first, so a form that also lifts the score goes
//! `lead` → `qualified`). Each move is a [`StageChange`].
//!
//! **Velocity.** Positive points of counted actions in the last hour and the
//! last 24 h; `accelerating` when the last 24 h reach `velocity.min_points`
//! and exceed `velocity.factor` × the daily average of the `baseline_days`
//! before them.

mod compact;
mod defaults;
mod document;
mod engine;
mod explain;
mod glob;
mod rules;
mod stages;
mod state;
#[cfg(feature = "toml")]
mod toml_source;

pub use engine::{Carry, ELEMENT_PROPERTY, Scorer, Snapshot, TierChange, evaluate, evaluate_actions, evaluate_with};
pub use explain::{Driver, Fall, Hint, Lift, Score, TopDriver, Velocity};
pub use rules::{Decay, Frequency, RuleError, RuleFileError, Rules, Stage, is_stage_id};
pub use stages::{ConversionStages, FromPrevious, StageCause, StageChange, StageRow, funnel as stage_funnel};
pub use state::{IgnoreReason, Points};

/// A stable insertion sort for the short lists of a rule set (≤ 200 items):
/// far less code than the standard sorts, each of which is instantiated
/// again per element type and comparator in the browser's wasm.
pub(crate) fn sort_small<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 {
            let (head, tail) = v.split_at_mut(j);
            match (head.last_mut(), tail.first_mut()) {
                (Some(a), Some(b)) if less(b, a) => std::mem::swap(a, b),
                _ => break,
            }
            j -= 1;
        }
    }
}
