//! The shifted-beta-geometric (sBG) model of contract duration (Fader & Hardie, "How to
//! project customer retention", Journal of Interactive Marketing 21(1), 2007): at the end of
//! each period a customer cancels with their own probability θ, and θ varies across
//! customers as Beta(α, β). So retention rises with tenure, as the fickle leave first.
//!
//! - Input: a survivor curve, the customers still active at the start and after each of T
//!   periods: n0 ≥ n1 ≥ … ≥ nT, n0 > 0, T ≥ 2 ([`SurvivorCurve::new`]).
//! - Output ([`fit`]): α, β, the log-likelihood, the optimiser's iterations and whether it
//!   converged; [`SbgFit::survival`] and [`SbgFit::retention`] project any period.
//! - Likelihood: Σₜ (nₜ₋₁ − nₜ) ln P(T = t) + n_T ln S(T), with the paper's recursions
//!   S(t) = S(t − 1) (β + t − 1) / (α + β + t − 1) and P(T = t) = S(t − 1) α / (α + β + t − 1),
//!   which need no Beta function and keep S exact as a product.
//! - Fit: [`crate::value::fit::maximize`] (Nelder–Mead on ln α, ln β, so both stay positive
//!   without bounds) from α = β = 1 (uniform θ).
//!
//! Checked against the paper's two cohorts (tests): "high end" α 0.668, β 3.806, LL −1611.2;
//! "regular" α 0.704, β 1.182, LL −1680.3.

use crate::error::{Error, Result};
use crate::value::fit::maximize;

/// A checked survivor curve: the only input [`fit`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurvivorCurve(Vec<u64>);

impl SurvivorCurve {
    /// Checks the counts: at least three (two periods), the first above 0, none above the one
    /// before (a cohort only shrinks).
    pub fn new(counts: Vec<u64>) -> Result<SurvivorCurve> {
        let key = "survivors";
        if counts.len() < 3 {
            return Err(Error::param(
                key,
                format!(
                    "{} count(s): give the cohort's size and the survivors of at least two periods, e.g. 1000,631,468",
                    counts.len()
                ),
            ));
        }
        if counts[0] == 0 {
            return Err(Error::param(
                key,
                "the cohort's size (the first count) is 0",
            ));
        }
        if let Some(i) = (1..counts.len()).find(|&i| counts[i] > counts[i - 1]) {
            return Err(Error::param(
                key,
                format!(
                    "period {i} has {} survivors, more than the {} before it: a cohort only shrinks",
                    counts[i],
                    counts[i - 1]
                ),
            ));
        }
        Ok(SurvivorCurve(counts))
    }

    /// The counts, from the cohort's size on.
    pub fn counts(&self) -> &[u64] {
        &self.0
    }
}

/// A fitted sBG model.
#[derive(Debug, Clone, PartialEq)]
pub struct SbgFit {
    pub alpha: f64,
    pub beta: f64,
    pub log_likelihood: f64,
    pub iterations: u64,
    /// Whether the simplex converged (else it stopped at the iteration limit).
    pub converged: bool,
}

impl SbgFit {
    /// S(t): the share of the cohort still active after `t` periods.
    pub fn survival(&self, t: u64) -> f64 {
        survival(self.alpha, self.beta, t)
    }

    /// r(t) = S(t) / S(t − 1): the share of those active after t − 1 periods who stay
    /// through period t (t ≥ 1).
    pub fn retention(&self, t: u64) -> f64 {
        (self.beta + t as f64 - 1.0) / (self.alpha + self.beta + t as f64 - 1.0)
    }
}

fn survival(alpha: f64, beta: f64, t: u64) -> f64 {
    (1..=t).fold(1.0, |s, i| {
        s * (beta + i as f64 - 1.0) / (alpha + beta + i as f64 - 1.0)
    })
}

/// The log-likelihood of `curve` under sBG(α, β).
pub fn log_likelihood(alpha: f64, beta: f64, curve: &SurvivorCurve) -> f64 {
    let n = curve.counts();
    let mut s = 1.0;
    let mut ll = 0.0;
    for t in 1..n.len() {
        let denominator = alpha + beta + t as f64 - 1.0;
        let p = s * alpha / denominator;
        let lost = (n[t - 1] - n[t]) as f64;
        if lost > 0.0 {
            ll += lost * p.ln();
        }
        s *= (beta + t as f64 - 1.0) / denominator;
    }
    ll + n[n.len() - 1] as f64 * s.ln()
}

/// Fits α and β to `curve` by maximum likelihood (see the module doc).
pub fn fit(curve: &SurvivorCurve) -> Result<SbgFit> {
    let cohort = curve.counts()[0] as f64;
    let fitted = maximize("sBG", &[1.0, 1.0], cohort, |p| {
        log_likelihood(p[0], p[1], curve) / cohort
    })?;
    let (alpha, beta) = (fitted.params[0], fitted.params[1]);
    Ok(SbgFit {
        alpha,
        beta,
        log_likelihood: log_likelihood(alpha, beta, curve),
        iterations: fitted.iterations,
        converged: fitted.converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fitted(counts: &[u64]) -> SbgFit {
        fit(&SurvivorCurve::new(counts.to_vec()).unwrap()).unwrap()
    }

    /// Fader & Hardie (2007), the two cohorts of their Figure 1, fitted on years 1–7.
    #[test]
    fn the_papers_cohorts_give_the_published_estimates() {
        let high_end = fitted(&[1000, 869, 743, 653, 593, 551, 517, 491]);
        assert!(high_end.converged, "{high_end:?}");
        assert!((high_end.alpha - 0.668).abs() < 5e-4, "{high_end:?}");
        assert!((high_end.beta - 3.806).abs() < 5e-4, "{high_end:?}");
        assert!(
            (high_end.log_likelihood + 1611.2).abs() < 0.05,
            "{high_end:?}"
        );

        let regular = fitted(&[1000, 631, 468, 382, 326, 289, 262, 241]);
        assert!(regular.converged, "{regular:?}");
        assert!((regular.alpha - 0.704).abs() < 5e-4, "{regular:?}");
        assert!((regular.beta - 1.182).abs() < 5e-4, "{regular:?}");
        assert!(
            (regular.log_likelihood + 1680.3).abs() < 0.05,
            "{regular:?}"
        );
    }

    #[test]
    fn survival_is_the_product_of_retention_rates() {
        let f = fitted(&[1000, 631, 468, 382, 326, 289, 262, 241]);
        let product: f64 = (1..=10).map(|t| f.retention(t)).product();
        assert!((f.survival(10) - product).abs() < 1e-12);
        // Retention rises with tenure: the fickle leave first.
        assert!((1..10).all(|t| f.retention(t + 1) > f.retention(t)));
    }

    #[test]
    fn the_fit_is_a_maximum() {
        let curve = SurvivorCurve::new(vec![1000, 869, 743, 653, 593, 551, 517, 491]).unwrap();
        let f = fit(&curve).unwrap();
        for (da, db) in [(1e-3, 0.0), (-1e-3, 0.0), (0.0, 1e-3), (0.0, -1e-3)] {
            assert!(log_likelihood(f.alpha + da, f.beta + db, &curve) < f.log_likelihood);
        }
    }

    #[test]
    fn curves_that_are_no_cohort_are_refused_by_name() {
        let message = |c: Vec<u64>| match SurvivorCurve::new(c) {
            Err(Error::Param { key, message }) => format!("{key}: {message}"),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            message(vec![1000, 900]),
            "survivors: 2 count(s): give the cohort's size and the survivors of at least two periods, e.g. 1000,631,468"
        );
        assert_eq!(
            message(vec![0, 0, 0]),
            "survivors: the cohort's size (the first count) is 0"
        );
        assert_eq!(
            message(vec![1000, 900, 950]),
            "survivors: period 2 has 950 survivors, more than the 900 before it: a cohort only shrinks"
        );
    }
}
