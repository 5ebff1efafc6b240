//! Cohorts: customers grouped by what acquired them (their first channel, or
//! the month of their first purchase), and the value each cohort brings in
//! each calendar month since its customers' first purchase — the curves that
//! show whether a channel's clients come back.

use super::Transaction;
use crate::money::MAX_MINOR;
use crate::timestamp::civil_date;
use std::collections::{BTreeMap, BTreeSet};

/// The most months since acquisition a curve runs to.
pub const MAX_MONTHS: u32 = 120;

/// One month of one cohort's curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Month {
    /// Calendar months since the customer's first purchase (0 = that month).
    pub month: u32,
    /// Customers of the cohort observed this long (acquired early enough).
    pub customers: u64,
    /// Of them, those who bought in this month.
    pub buyers: u64,
    pub value_minor: i64,
    /// Value to date per observed customer, through this month.
    pub cumulative_per_customer_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cohort {
    pub cohort: String,
    pub customers: u64,
    pub value_minor: i64,
    pub months: Vec<Month>,
}

/// `YYYY-MM` of a UTC day number.
pub fn month_label(day: i64) -> String {
    let (y, m, _) = civil_date(day);
    format!("{y:04}-{m:02}")
}

fn month_index(day: i64) -> i64 {
    let (y, m, _) = civil_date(day);
    y * 12 + m - 1
}

/// The cohorts of `transactions` (each customer's cohort given by `cohort_of`
/// their id; a customer without one is left out), observed up to `end_day`.
/// A customer acquired in month k of the observation counts in the months
/// since acquisition that have been observed for them, so late cohorts do
/// not drag the early months' averages down.
pub fn cohorts<'a>(
    transactions: &[Transaction<'a>],
    end_day: i64,
    cohort_of: impl Fn(&'a str) -> Option<String>,
) -> Vec<Cohort> {
    let mut first: BTreeMap<&str, i64> = BTreeMap::new();
    for t in transactions.iter().filter(|t| t.day <= end_day) {
        first.entry(t.customer).and_modify(|d| *d = (*d).min(t.day)).or_insert(t.day);
    }
    let end = month_index(end_day);
    // Per cohort: its customers; how many have been observed for exactly k
    // months since acquisition; value and buyers per month since acquisition.
    type Group = (u64, BTreeMap<u32, u64>, BTreeMap<u32, i64>, BTreeMap<u32, u64>);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut label: BTreeMap<&str, String> = BTreeMap::new();
    for (&customer, &day) in &first {
        let Some(c) = cohort_of(customer) else { continue };
        let span = (end - month_index(day)).clamp(0, i64::from(MAX_MONTHS - 1)) as u32;
        let g = groups.entry(c.clone()).or_default();
        g.0 += 1;
        *g.1.entry(span).or_insert(0) += 1;
        label.insert(customer, c);
    }
    let mut bought: BTreeSet<(&str, u32)> = BTreeSet::new();
    for t in transactions.iter().filter(|t| t.day <= end_day) {
        let Some(c) = label.get(t.customer) else { continue };
        let m = month_index(t.day) - month_index(first[t.customer]);
        let Ok(m) = u32::try_from(m) else { continue };
        if m >= MAX_MONTHS {
            continue;
        }
        let g = groups.get_mut(c).expect("labelled customers have a group");
        let v = g.2.entry(m).or_insert(0);
        *v = v.saturating_add(t.value_minor).min(MAX_MINOR);
        if bought.insert((t.customer, m)) {
            *g.3.entry(m).or_insert(0) += 1;
        }
    }
    groups
        .into_iter()
        .map(|(cohort, (customers, spans, value, buyers))| {
            let longest = spans.keys().next_back().copied().unwrap_or(0);
            let mut months = Vec::with_capacity(longest as usize + 1);
            let mut cumulative = 0f64;
            for m in 0..=longest {
                // Customers observed at least m months.
                let observed: u64 = spans.range(m..).map(|(_, n)| n).sum();
                let v = value.get(&m).copied().unwrap_or(0);
                // Only customers observed m months can have bought in month m:
                // the mean over them, summed over the months.
                cumulative += v as f64 / observed.max(1) as f64;
                months.push(Month {
                    month: m,
                    customers: observed,
                    buyers: buyers.get(&m).copied().unwrap_or(0),
                    value_minor: v,
                    cumulative_per_customer_minor: cumulative.round() as i64,
                });
            }
            let total = value.values().fold(0i64, |a, v| a.saturating_add(*v)).min(MAX_MINOR);
            Cohort { cohort, customers, value_minor: total, months }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_count_only_the_months_observed() {
        let t = |customer, day, value_minor| Transaction { customer, day, value_minor };
        // 2026-01-10 = day 20463; 2026-02-15 = 20499; 2026-03-05 = 20517.
        let rows = [t("a", 20463, 1000), t("a", 20499, 500), t("a", 20500, 500), t("b", 20499, 3000)];
        let c = cohorts(&rows, 20517, |id| Some(if id == "a" { "paid" } else { "search" }.to_owned()));
        assert_eq!(c[0].cohort, "paid");
        assert_eq!(c[0].customers, 1);
        let m: Vec<(u32, u64, u64, i64, i64)> = c[0]
            .months
            .iter()
            .map(|m| (m.month, m.customers, m.buyers, m.value_minor, m.cumulative_per_customer_minor))
            .collect();
        assert_eq!(m, [(0, 1, 1, 1000, 1000), (1, 1, 1, 1000, 2000), (2, 1, 0, 0, 2000)]);
        assert_eq!(c[1].months.len(), 2);
        assert_eq!((c[1].value_minor, month_label(20499)), (3000, "2026-02".to_owned()));
    }
}
