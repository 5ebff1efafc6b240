//! A site's book of customers from its valued conversions: the RFM summaries
//! in days, BG/NBD and Gamma-Gamma fitted on them when the data allow (and
//! why not when they do not), each customer's predictions over the horizon
//! and their segment. One function, so that the Worker's daily refit and any
//! other caller judge customers alike.

use super::segment::{Segment, SegmentRules, Standing};
use super::{BgNbd, ClvError, Fitted, GammaGamma, Refused, Rfm, Transaction, Unit, predict, summarise};
use crate::money::MAX_MINOR;
use std::collections::BTreeMap;

/// One customer in the book.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub first_day: i64,
    pub last_day: i64,
    /// Purchase days (several purchases on one day are one).
    pub purchase_days: u32,
    pub value_minor: i64,
    pub rfm: Rfm,
    /// `None` without a fitted purchase model.
    pub p_alive: Option<f64>,
    pub expected_purchases: Option<f64>,
    /// Expected value over the horizon, minor units; `None` without both fits.
    pub predicted_minor: Option<i64>,
    pub segment: Segment,
}

/// The book, with the fits or the reason each could not be made.
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    pub purchases: Result<Fitted<BgNbd>, ClvError>,
    pub spend: Result<Fitted<GammaGamma>, ClvError>,
    pub high_value_threshold: Option<i64>,
    pub customers: Vec<Entry>,
}

/// The book of `transactions` (minor units of one currency with `digits`)
/// observed up to `end_day` inclusive; refuses a transaction the summary
/// refuses (after the end, negative), naming its index.
pub fn book(
    transactions: &[Transaction<'_>],
    end_day: i64,
    digits: u32,
    rules: &SegmentRules,
) -> Result<Book, Refused> {
    let summaries = summarise(transactions, end_day, Unit::Day, digits)?;
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for t in transactions {
        let total = totals.entry(t.customer).or_insert(0);
        *total = total.saturating_add(t.value_minor).min(MAX_MINOR);
    }
    let rfms: Vec<Rfm> = summaries.iter().map(|(_, r)| *r).collect();
    let purchases = BgNbd::fit(&rfms);
    let spend = GammaGamma::fit(&rfms);
    let horizon = f64::from(rules.horizon_days());
    let scale = 10f64.powi(digits as i32);
    let mut customers = Vec::with_capacity(summaries.len());
    for (id, rfm) in summaries {
        // In days, recency and T are whole numbers of days.
        let first_day = end_day - rfm.age() as i64;
        let last_day = first_day + rfm.recency() as i64;
        let (p_alive, expected_purchases, predicted_minor) = match &purchases {
            Err(_) => (None, None, None),
            Ok(fit) => match predict(&fit.model, spend.as_ref().ok().map(|f| &f.model), &rfm, horizon) {
                Ok(p) => (
                    Some(p.p_alive),
                    Some(p.expected_purchases),
                    p.expected_value.map(|v| (v * scale).round().clamp(0.0, MAX_MINOR as f64) as i64),
                ),
                // One customer the model cannot predict (a degenerate fit for
                // one-time buyers): P(alive) stands, the rest is unknown.
                Err(_) => (Some(fit.model.p_alive(&rfm)), None, None),
            },
        };
        let value_minor = totals.get(id.as_str()).copied().unwrap_or(0);
        customers.push(Entry {
            first_day,
            last_day,
            purchase_days: rfm.frequency() + 1,
            value_minor,
            rfm,
            p_alive,
            expected_purchases,
            predicted_minor,
            segment: Segment::Occasional,
            id,
        });
    }
    let worth = |e: &Entry| e.value_minor.saturating_add(e.predicted_minor.unwrap_or(0));
    let values: Vec<i64> = customers.iter().map(worth).collect();
    let high_value_threshold = rules.high_value_threshold(&values);
    for e in &mut customers {
        let standing = Standing {
            days_since_first: end_day - e.first_day,
            days_since_last: end_day - e.last_day,
            p_alive: e.p_alive,
            value_minor: worth(e),
        };
        e.segment = rules.classify(&standing, high_value_threshold);
    }
    Ok(Book { purchases, spend, high_value_threshold, customers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_customers_are_judged_without_a_model() {
        let t = |customer, day, value_minor| Transaction { customer, day, value_minor };
        let rows = [t("a", 0, 10_000), t("a", 200, 5_000), t("b", 390, 2_000), t("c", 10, 1_000)];
        let b = book(&rows, 400, 2, &SegmentRules::default()).unwrap();
        assert!(matches!(b.purchases, Err(ClvError::TooFew { .. })));
        let seg: Vec<(&str, Segment, i64)> =
            b.customers.iter().map(|e| (e.id.as_str(), e.segment, e.value_minor)).collect();
        // a: last bought 200 days ago (at risk); b: 10 days ago, first time (new); c: 390 days (lapsed).
        assert_eq!(seg, [("a", Segment::AtRisk, 15_000), ("b", Segment::New, 2_000), ("c", Segment::Lapsed, 1_000)]);
        assert_eq!(b.high_value_threshold, Some(15_000));
        assert_eq!((b.customers[0].first_day, b.customers[0].last_day, b.customers[0].purchase_days), (0, 200, 2));
    }
}
