//! Customer value: who will buy again, how much, and who is slipping away.
//! BG/NBD for repeat purchases and Gamma-Gamma for spend, fitted by maximum
//! likelihood with a deterministic optimiser, on RFM summaries built from a
//! site's conversions. Predictions per customer: P(alive), expected purchases
//! and expected value over a horizon; segments by a site's rules
//! ([`segment`]), the book that judges a site's customers ([`book`]) and the
//! value curves of cohorts ([`cohort`]).

mod bgnbd;
pub mod book;
pub mod cohort;
mod gamma_gamma;
mod optimise;
pub mod segment;
mod special;
mod summary;

pub use bgnbd::{BgNbd, Fitted};
pub use gamma_gamma::GammaGamma;
pub use summary::{MAX_FREQUENCY, Refused, Rfm, Transaction, Unit, summarise};

/// The minimum data each model fits on.
pub mod minimum {
    pub use super::bgnbd::{MIN_CUSTOMERS as BG_NBD_CUSTOMERS, MIN_REPEAT_CUSTOMERS as BG_NBD_REPEAT_CUSTOMERS};
    pub use super::gamma_gamma::MIN_CUSTOMERS as GAMMA_GAMMA_CUSTOMERS;
}

use std::fmt;

/// Why a model could not be fitted or a prediction made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClvError {
    /// Too little data to fit on: `need` of `what`, `have` given.
    TooFew {
        model: &'static str,
        need: usize,
        what: &'static str,
        have: usize,
    },
    /// The likelihood keeps rising as `parameter` runs to 0 or infinity: the
    /// data cannot pin it (no one ever lapses, or everyone buys alike).
    Unbounded {
        model: &'static str,
        parameter: &'static str,
    },
    NoConvergence {
        model: &'static str,
        iterations: u32,
    },
    /// A model or input for which the quantity does not exist.
    Degenerate(String),
}

impl fmt::Display for ClvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClvError::TooFew { model, need, what, have } => {
                write!(f, "{model} needs at least {need} {what} to fit on; got {have}")
            }
            ClvError::Unbounded { model, parameter } => {
                write!(
                    f,
                    "{model}: parameter `{parameter}` runs off to 0 or infinity; these customers are too alike to determine it"
                )
            }
            ClvError::NoConvergence { model, iterations } => {
                write!(f, "{model}: the fit did not converge in {iterations} iterations")
            }
            ClvError::Degenerate(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ClvError {}

/// One customer's predictions over a horizon.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub p_alive: f64,
    pub expected_purchases: f64,
    /// Expected purchases × expected mean spend; `None` without a spend model
    /// or a monetary value.
    pub expected_value: Option<f64>,
}

/// The predictions for `customer` over `horizon` (in the fit's time unit).
pub fn predict(
    purchases: &BgNbd,
    spend: Option<&GammaGamma>,
    customer: &Rfm,
    horizon: f64,
) -> Result<Prediction, ClvError> {
    let expected_purchases = purchases.expected_purchases(customer, horizon)?;
    let expected_value = match (spend, customer.monetary()) {
        (Some(spend), Some(m)) => Some(expected_purchases * spend.expected_mean_value(customer.frequency(), m)?),
        _ => None,
    };
    Ok(Prediction { p_alive: purchases.p_alive(customer), expected_purchases, expected_value })
}
