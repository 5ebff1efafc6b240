//! A customer's purchase history in the models' RFM form, validated once:
//! `frequency` = repeat purchases (purchase periods after the first),
//! `recency` = age at the last purchase, `T` = age at the end of observation,
//! both measured from the first purchase in one time unit, and the mean value
//! of the repeat purchases. Built from transactions here, so that the CLI and
//! the Worker count periods alike.

use crate::error::ValidationError;
use std::collections::BTreeMap;

/// The most repeat purchases one customer may have (the models tabulate
/// per-frequency terms up to the largest).
pub const MAX_FREQUENCY: u32 = 1_000_000;

/// One customer's summary. Invariants: finite `0 ≤ recency ≤ T`; no recency
/// without a repeat purchase; a monetary value, when present, finite and ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rfm {
    frequency: u32,
    recency: f64,
    age: f64,
    monetary: Option<f64>,
}

impl Rfm {
    /// Checks one summary row; the error names the column
    /// (`frequency`, `recency`, `T`, `monetary_value`).
    pub fn new(frequency: u32, recency: f64, age: f64, monetary: Option<f64>) -> Result<Rfm, ValidationError> {
        if frequency > MAX_FREQUENCY {
            return Err(ValidationError::new("frequency", format!("at most {MAX_FREQUENCY}")));
        }
        if !(age.is_finite() && age >= 0.0) {
            return Err(ValidationError::new("T", "must be a finite number ≥ 0"));
        }
        if !(recency.is_finite() && recency >= 0.0) {
            return Err(ValidationError::new("recency", "must be a finite number ≥ 0"));
        }
        if recency > age {
            return Err(ValidationError::new("recency", "must not exceed T"));
        }
        if frequency == 0 && recency != 0.0 {
            return Err(ValidationError::new("recency", "must be 0 for a customer with no repeat purchase"));
        }
        if let Some(m) = monetary
            && !(m.is_finite() && m >= 0.0)
        {
            return Err(ValidationError::new("monetary_value", "must be a finite number ≥ 0"));
        }
        Ok(Rfm { frequency, recency, age, monetary })
    }

    pub fn frequency(&self) -> u32 {
        self.frequency
    }
    pub fn recency(&self) -> f64 {
        self.recency
    }
    /// `T`: time since the first purchase at the end of observation.
    pub fn age(&self) -> f64 {
        self.age
    }
    /// The mean value of the repeat purchases, in major units.
    pub fn monetary(&self) -> Option<f64> {
        self.monetary
    }
}

/// The time unit of recency, `T` and the prediction horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Day,
    /// Seven days, fractional: the CDNOW summaries count weeks as days / 7.
    Week,
}

impl Unit {
    pub fn parse(text: &str) -> Result<Unit, ValidationError> {
        match text {
            "day" => Ok(Unit::Day),
            "week" => Ok(Unit::Week),
            _ => Err(ValidationError::new("unit", "must be `day` or `week`")),
        }
    }

    fn days(self) -> f64 {
        match self {
            Unit::Day => 1.0,
            Unit::Week => 7.0,
        }
    }
}

/// One purchase: who, on which UTC day (days since the epoch), for how much
/// (minor units of one currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transaction<'a> {
    pub customer: &'a str,
    pub day: i64,
    pub value_minor: i64,
}

/// A transaction the summary refused: its index in the input and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub index: usize,
    pub error: ValidationError,
}

/// Per customer (sorted by id), the RFM summary of their transactions up to
/// `end_day` inclusive. Purchases on one day are one purchase period (their
/// values summed); the first period opens the history and is not a repeat, so
/// the monetary value is the mean over the repeat periods (none: 0), in major
/// units of a currency with `digits` minor digits.
pub fn summarise(
    transactions: &[Transaction<'_>],
    end_day: i64,
    unit: Unit,
    digits: u32,
) -> Result<Vec<(String, Rfm)>, Refused> {
    // Per customer: the index of their first transaction (to name in an
    // error) and their total per day.
    let mut days: BTreeMap<&str, (usize, BTreeMap<i64, i64>)> = BTreeMap::new();
    for (index, t) in transactions.iter().enumerate() {
        let refuse = |field: &str, rule: String| Refused { index, error: ValidationError::new(field, rule) };
        if t.day > end_day {
            return Err(refuse("date", "after the observation end".into()));
        }
        if t.value_minor < 0 {
            return Err(refuse("value", "must not be negative".into()));
        }
        if t.customer.is_empty() {
            return Err(refuse("customer_id", "must not be empty".into()));
        }
        let total = days.entry(t.customer).or_insert((index, BTreeMap::new())).1.entry(t.day).or_insert(0);
        *total = total.checked_add(t.value_minor).ok_or_else(|| refuse("value", "the day's total overflows".into()))?;
    }
    let scale = 10f64.powi(digits as i32);
    let mut out = Vec::with_capacity(days.len());
    for (customer, (index, periods)) in days {
        let (&first, _) = periods.first_key_value().expect("a customer has a purchase");
        let (&last, _) = periods.last_key_value().expect("a customer has a purchase");
        let repeats = periods.len() - 1;
        let repeat_total: i64 = periods.iter().skip(1).map(|(_, v)| v).sum();
        let frequency = u32::try_from(repeats).unwrap_or(u32::MAX);
        let monetary = if repeats == 0 { 0.0 } else { repeat_total as f64 / repeats as f64 / scale };
        let recency = (last - first) as f64 / unit.days();
        let age = (end_day - first) as f64 / unit.days();
        // Every field was checked above; too many purchase days is the only way left to fail.
        let rfm = Rfm::new(frequency, recency, age, Some(monetary)).map_err(|error| Refused { index, error })?;
        out.push((customer.to_owned(), rfm));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked() {
        assert!(Rfm::new(2, 30.43, 38.86, None).is_ok());
        assert_eq!(Rfm::new(0, 1.0, 5.0, None).unwrap_err().field, "recency");
        assert_eq!(Rfm::new(1, 6.0, 5.0, None).unwrap_err().field, "recency");
        assert_eq!(Rfm::new(1, 1.0, f64::NAN, None).unwrap_err().field, "T");
        assert_eq!(Rfm::new(1, 1.0, 5.0, Some(-1.0)).unwrap_err().field, "monetary_value");
    }

    #[test]
    fn transactions_become_periods() {
        let t = |customer, day, value_minor| Transaction { customer, day, value_minor };
        let rows = [t("b", 0, 500), t("a", 7, 1000), t("a", 0, 2000), t("a", 7, 500), t("a", 21, 4500)];
        let s = summarise(&rows, 35, Unit::Week, 2).unwrap();
        assert_eq!(s[0].0, "a");
        // Days 0, 7 (two purchases, one period), 21: two repeats worth 15.00 and 45.00.
        assert_eq!(s[0].1, Rfm::new(2, 3.0, 5.0, Some(30.0)).unwrap());
        assert_eq!(s[1].1, Rfm::new(0, 0.0, 5.0, Some(0.0)).unwrap());
        let late = summarise(&[t("a", 36, 1)], 35, Unit::Day, 2).unwrap_err();
        assert_eq!((late.index, late.error.field.as_str()), (0, "date"));
        let negative = summarise(&[t("a", 1, 1), t("a", 2, -1)], 35, Unit::Day, 2).unwrap_err();
        assert_eq!((negative.index, negative.error.field.as_str()), (1, "value"));
    }
}
