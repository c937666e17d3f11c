//! Intervals and tests for a randomised campaign test, from each arm's count, sum and sum of
//! squares (so the warehouse's SQL can reduce millions of contacts to a few numbers first).
//!
//! - Rates (a binary outcome: responded, bought): Wilson's score interval per arm; the
//!   difference of two rates with Newcombe's hybrid score interval (his method 10, built from
//!   the two Wilson intervals: good coverage near 0 and 1, where the Wald interval fails); the
//!   ratio with the Katz log interval; the p-value of the pooled two-proportion z-test.
//! - Means (an amount: revenue per customer, or a rate read as a mean of 0/1): the difference
//!   with Welch's t interval (unequal variances, Welch–Satterthwaite degrees of freedom) and its
//!   two-sided p-value; the ratio with a delta-method interval on the log scale.
//!
//! Every interval is two-sided at `confidence` (0.95 by default everywhere in ecrm). A figure
//! that cannot be computed (an empty arm, no variance, a zero rate under a ratio) is `None`,
//! never a made-up number.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// An estimate with its interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// One arm's outcome: how many, their sum and sum of squares.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_squares: f64,
}

impl Moments {
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    /// The sample variance (n − 1 in the denominator).
    pub fn variance(&self) -> Option<f64> {
        let m = self.mean()?;
        (self.n > 1)
            .then(|| ((self.sum_squares - self.n as f64 * m * m) / (self.n - 1) as f64).max(0.0))
    }
}

/// The standard normal quantile of a two-sided `confidence` (1.959964 for 0.95).
pub fn z(confidence: f64) -> f64 {
    let normal = Normal::standard();
    normal.inverse_cdf(0.5 + confidence / 2.0)
}

/// Wilson's score interval for `successes` of `n` (None when n = 0).
pub fn wilson(successes: u64, n: u64, confidence: f64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let (n, z) = (n as f64, z(confidence));
    let p = successes as f64 / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    Some(Interval {
        estimate: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// Newcombe's hybrid score interval for the difference of two rates, treated − control.
pub fn newcombe(treated: (u64, u64), control: (u64, u64), confidence: f64) -> Option<Interval> {
    let a = wilson(treated.0, treated.1, confidence)?;
    let b = wilson(control.0, control.1, confidence)?;
    let d = a.estimate - b.estimate;
    Some(Interval {
        estimate: d,
        low: d - ((a.estimate - a.low).powi(2) + (b.high - b.estimate).powi(2)).sqrt(),
        high: d + ((a.high - a.estimate).powi(2) + (b.estimate - b.low).powi(2)).sqrt(),
    })
}

/// The ratio of two rates, treated / control, with the Katz log interval (None when either
/// rate is 0).
pub fn rate_ratio(treated: (u64, u64), control: (u64, u64), confidence: f64) -> Option<Interval> {
    let ((a, n1), (c, n0)) = (treated, control);
    if a == 0 || c == 0 || n1 == 0 || n0 == 0 {
        return None;
    }
    let (a, n1, c, n0) = (a as f64, n1 as f64, c as f64, n0 as f64);
    let ratio = (a / n1) / (c / n0);
    let se = (1.0 / a - 1.0 / n1 + 1.0 / c - 1.0 / n0).sqrt();
    let z = z(confidence);
    Some(Interval {
        estimate: ratio,
        low: ratio * (-z * se).exp(),
        high: ratio * (z * se).exp(),
    })
}

/// The two-sided p-value of the pooled two-proportion z-test (None when the pooled rate is 0
/// or 1: no variance to test against).
pub fn two_proportion_p(treated: (u64, u64), control: (u64, u64)) -> Option<f64> {
    let ((a, n1), (c, n0)) = (treated, control);
    if n1 == 0 || n0 == 0 {
        return None;
    }
    let pooled = (a + c) as f64 / (n1 + n0) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n0 as f64)).sqrt();
    if se == 0.0 {
        return None;
    }
    let z = (a as f64 / n1 as f64 - c as f64 / n0 as f64) / se;
    Some(2.0 * Normal::standard().sf(z.abs()))
}

/// Welch's test of two means: the difference treated − control, its interval and p-value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Welch {
    pub difference: Interval,
    pub degrees_of_freedom: f64,
    pub p_value: f64,
}

/// Welch's t interval and test (None when an arm has fewer than two rows or neither varies).
pub fn welch(treated: &Moments, control: &Moments, confidence: f64) -> Option<Welch> {
    let (v1, v0) = (
        treated.variance()? / treated.n as f64,
        control.variance()? / control.n as f64,
    );
    let se2 = v1 + v0;
    if se2 <= 0.0 {
        return None;
    }
    let df = se2 * se2 / (v1 * v1 / (treated.n - 1) as f64 + v0 * v0 / (control.n - 1) as f64);
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    let d = treated.mean()? - control.mean()?;
    let half = t.inverse_cdf(0.5 + confidence / 2.0) * se2.sqrt();
    Some(Welch {
        difference: Interval {
            estimate: d,
            low: d - half,
            high: d + half,
        },
        degrees_of_freedom: df,
        p_value: 2.0 * t.sf((d / se2.sqrt()).abs()),
    })
}

/// The ratio of two means, treated / control, with a delta-method interval on the log scale
/// (None when a mean is not positive or a variance is unknown).
pub fn mean_ratio(treated: &Moments, control: &Moments, confidence: f64) -> Option<Interval> {
    let (m1, m0) = (treated.mean()?, control.mean()?);
    if m1 <= 0.0 || m0 <= 0.0 {
        return None;
    }
    let se = (treated.variance()? / (treated.n as f64 * m1 * m1)
        + control.variance()? / (control.n as f64 * m0 * m0))
        .sqrt();
    let (ratio, z) = (m1 / m0, z(confidence));
    Some(Interval {
        estimate: ratio,
        low: ratio * (-z * se).exp(),
        high: ratio * (z * se).exp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(got: f64, want: f64, tol: f64) {
        assert!((got - want).abs() <= tol, "{got} vs {want}");
    }

    fn interval(got: Interval, low: f64, high: f64) {
        near(got.low, low, 5e-5);
        near(got.high, high, 5e-5);
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
    /// method 3 (score, no continuity correction).
    #[test]
    fn wilson_gives_newcombes_published_intervals() {
        near(z(0.95), 1.959964, 1e-6);
        interval(wilson(81, 263, 0.95).unwrap(), 0.2553, 0.3662);
        interval(wilson(15, 148, 0.95).unwrap(), 0.0624, 0.1605);
        interval(wilson(0, 20, 0.95).unwrap(), 0.0, 0.1611);
        interval(wilson(1, 29, 0.95).unwrap(), 0.0061, 0.1718);
        assert_eq!(wilson(0, 0, 0.95), None);
    }

    /// Newcombe (1998), "Interval estimation for the difference between independent
    /// proportions", Table II, method 10.
    #[test]
    fn newcombe_gives_the_papers_method_10_intervals() {
        interval(newcombe((56, 70), (48, 80), 0.95).unwrap(), 0.0524, 0.3339);
        interval(newcombe((9, 10), (3, 10), 0.95).unwrap(), 0.1705, 0.8090);
        interval(newcombe((5, 56), (0, 29), 0.95).unwrap(), -0.0381, 0.1926);
    }

    /// Against the textbook formulas worked by hand: 30/100 against 20/100.
    #[test]
    fn ratio_and_z_test_match_the_formulas() {
        let r = rate_ratio((30, 100), (20, 100), 0.95).unwrap();
        // ln 1.5 ± 1.959964 × √(1/30 − 1/100 + 1/20 − 1/100) = 0.405465 ± 0.493247
        near(r.estimate, 1.5, 1e-12);
        near(r.low, (0.405465f64 - 0.493247).exp(), 1e-5);
        near(r.high, (0.405465f64 + 0.493247).exp(), 1e-5);
        // pooled 0.25: z = 0.1 / √(0.25 × 0.75 × 0.02) = 1.632993, p = 0.102470
        near(
            two_proportion_p((30, 100), (20, 100)).unwrap(),
            0.102470,
            1e-6,
        );
        assert_eq!(rate_ratio((0, 100), (20, 100), 0.95), None);
        assert_eq!(two_proportion_p((0, 10), (0, 10)), None);
    }

    /// Welch on two small samples: treated 1,2,3,4 (mean 2.5, s² 1.6667), control 2,4,6
    /// (mean 4, s² 4): se² = 0.416667 + 1.333333 = 1.75, df = 1.75² / (0.416667²/3 +
    /// 1.333333²/2) = 3.234719 by hand; the interval and p-value are scipy 1.x's
    /// `ttest_ind([1,2,3,4], [2,4,6], equal_var=False)`: p 0.333824, [−5.542328, 2.542328].
    #[test]
    fn welch_matches_the_textbook_computation_and_scipy() {
        let m = |xs: &[f64]| Moments {
            n: xs.len() as u64,
            sum: xs.iter().sum(),
            sum_squares: xs.iter().map(|x| x * x).sum(),
        };
        let w = welch(&m(&[1.0, 2.0, 3.0, 4.0]), &m(&[2.0, 4.0, 6.0]), 0.95).unwrap();
        near(w.degrees_of_freedom, 3.234719, 1e-5);
        near(w.difference.estimate, -1.5, 1e-12);
        near(w.difference.low, -5.542328, 1e-5);
        near(w.difference.high, 2.542328, 1e-5);
        near(w.p_value, 0.333824, 1e-6);
        assert_eq!(welch(&m(&[1.0]), &m(&[2.0, 3.0]), 0.95), None);
        assert_eq!(welch(&m(&[1.0, 1.0]), &m(&[2.0, 2.0]), 0.95), None);
    }
}
