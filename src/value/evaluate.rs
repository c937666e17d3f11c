//! How well a purchase model describes the calibration data and forecasts the hold-out, as
//! Fader, Hardie & Lee (2005) check theirs:
//!
//! - the histogram of repeat purchases per customer in calibration (0 … 6 and 7+), actual
//!   against expected (Σ over customers of P(X(T) = x));
//! - on the hold-out, per customer the conditional expectation against the actual count:
//!   their totals, Pearson correlation and mean absolute error, and how many customers
//!   without a repeat purchase in calibration buy in the hold-out;
//! - week by week from the first acquisition, cumulative repeat purchases actual against
//!   expected (Σ over customers of E[X(time since their first purchase)]).

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::Serialize;

use super::data::{Customers, day_date};
use super::model::ModelFile;

/// Bins of the histogram: 0 … 6 and the rest.
const BINS: usize = 7;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    /// `0` … `6`, `7+`.
    pub repeat_purchases: String,
    pub actual: u64,
    pub expected: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holdout {
    /// Length in the model's time unit.
    pub length: f64,
    pub actual: u64,
    pub expected: f64,
    /// Pearson correlation of expected and actual per customer (NULL when either is constant).
    pub correlation: Option<f64>,
    pub mean_absolute_error: f64,
    /// Customers with no repeat purchase in calibration, how many of them buy in the
    /// hold-out, and how many purchases they make there.
    pub no_repeat_in_calibration: u64,
    pub of_them_buying_in_holdout: u64,
    pub their_holdout_purchases: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    pub week: u64,
    /// The week's last day.
    pub end: NaiveDate,
    pub actual_cumulative: u64,
    pub expected_cumulative: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub customers: u64,
    pub calibration_repeat_purchases: u64,
    pub histogram: Vec<Bin>,
    /// NULL for a model trained without a hold-out (a summary table: without hold-out columns).
    pub holdout: Option<Holdout>,
    /// Empty for a summary table.
    pub tracking: Vec<Week>,
}

/// Evaluates `model` on `customers` (summarised with the model's calibration end and as-of
/// date); `stop` is the as-of date (exclusive end of tracking) for day-stamped data.
pub fn evaluate(model: &ModelFile, customers: &Customers, stop: Option<NaiveDate>) -> Evaluation {
    let m = &model.purchases;
    let mut by_age: std::collections::BTreeMap<u64, (f64, u64)> = Default::default();
    let mut actual = [0u64; BINS + 1];
    for r in &customers.rfm {
        by_age.entry(r.age.to_bits()).or_insert((r.age, 0)).1 += 1;
        actual[(r.x as usize).min(BINS)] += 1;
    }
    let mut expected = [0.0; BINS + 1];
    for (age, n) in by_age.values() {
        let p = m.pmf(*age, BINS);
        for (x, px) in p.iter().enumerate() {
            expected[x] += *n as f64 * px;
        }
        expected[BINS] += *n as f64 * (1.0 - p.iter().sum::<f64>());
    }
    let histogram = (0..=BINS)
        .map(|x| Bin {
            repeat_purchases: if x == BINS {
                format!("{BINS}+")
            } else {
                x.to_string()
            },
            actual: actual[x],
            expected: expected[x],
        })
        .collect();
    Evaluation {
        customers: customers.rfm.len() as u64,
        calibration_repeat_purchases: customers.rfm.iter().map(|r| r.x).sum(),
        histogram,
        holdout: holdout(model, customers),
        tracking: stop.map_or_else(Vec::new, |s| tracking(model, customers, s)),
    }
}

fn holdout(model: &ModelFile, c: &Customers) -> Option<Holdout> {
    if c.holdout_length <= 0.0 || c.holdout.len() != c.rfm.len() {
        return None;
    }
    let t = c.holdout_length;
    let expected: Vec<f64> = c
        .rfm
        .par_iter()
        .map(|r| model.purchases.conditional_expected(t, r.x, r.tx, r.age))
        .collect();
    let actual: Vec<f64> = c.holdout.iter().map(|&h| h as f64).collect();
    let n = actual.len() as f64;
    let mae = expected
        .iter()
        .zip(&actual)
        .map(|(e, a)| (e - a).abs())
        .sum::<f64>()
        / n;
    let zero: Vec<usize> = (0..c.rfm.len()).filter(|&i| c.rfm[i].x == 0).collect();
    Some(Holdout {
        length: t,
        actual: c.holdout.iter().sum(),
        expected: expected.iter().sum(),
        correlation: pearson(&expected, &actual),
        mean_absolute_error: mae,
        no_repeat_in_calibration: zero.len() as u64,
        of_them_buying_in_holdout: zero.iter().filter(|&&i| c.holdout[i] > 0).count() as u64,
        their_holdout_purchases: zero.iter().map(|&i| c.holdout[i]).sum(),
    })
}

/// Pearson's r, or None when either side has no variance.
fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Cumulative repeat purchases week by week from the first acquisition to the day before
/// `stop`.
fn tracking(model: &ModelFile, c: &Customers, stop: NaiveDate) -> Vec<Week> {
    let Some(&start) = c.first_days.keys().next() else {
        return Vec::new();
    };
    let last = super::data::day_number(stop) - 1;
    let unit = model.time_unit.days();
    let ends: Vec<i32> = (1..)
        .map(|w| start + 7 * w - 1)
        .take_while(|&e| e <= last + 6)
        .map(|e| e.min(last))
        .collect();
    let expected: Vec<f64> = ends
        .par_iter()
        .map(|&e| {
            c.first_days
                .range(..=e)
                .map(|(&f, &n)| n as f64 * model.purchases.expected((e - f) as f64 / unit))
                .sum()
        })
        .collect();
    let mut repeats = c.repeat_days.iter().peekable();
    let mut so_far = 0;
    ends.iter()
        .zip(expected)
        .enumerate()
        .map(|(w, (&e, expected_cumulative))| {
            while let Some((_, n)) = repeats.next_if(|(d, _)| **d <= e) {
                so_far += n;
            }
            Week {
                week: w as u64 + 1,
                end: day_date(e),
                actual_cumulative: so_far,
                expected_cumulative,
            }
        })
        .collect()
}
