//! Experiments: CTA holdout tests and the lift they measure.
//!
//! What this module owns: which arm a visitor is in ([`assign`]: a holdout
//! sees the site's default CTA, the treated arm the tier-switched one), how
//! much the treatment lifted the conversion rate ([`lift`], with 95%
//! intervals), an always-valid p-value that may be looked at every day
//! ([`always_valid_p`]), and whether conversion rates rise with the scoring
//! tiers ([`calibration`]).
//!
//! Like the rest of the core it is pure: no clock, no randomness, no I/O.
//! Assignment is a hash of ids the caller passes; counts are the caller's
//! (the edge's D1 rows, the CLI's files), validated here once as [`Counts`].

mod assignment;
mod calibration;
mod counts;
mod lift;
mod sequential;

pub use assignment::{Arm, HoldoutPercent, arm_of, assign, bucket, shown_tier};
pub use calibration::{Calibration, TierRate, calibration};
pub use counts::Counts;
pub use lift::{ArmRate, Estimate, Lift, Z_95, lift};
pub use sequential::{DEFAULT_TAU2, Look, Sequential, Snapshot, always_valid_p};
