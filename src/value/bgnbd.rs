//! The BG/NBD model (Fader, Hardie & Lee, "Counting your customers the easy way",
//! Marketing Science 24(2), 2005): while alive, a customer buys at rate λ ~ Gamma(r, α);
//! after each purchase they drop out with probability p ~ Beta(a, b).
//!
//! - Likelihood per customer (the paper's eq. 6, in the form of Hardie's note on large x):
//!   ln L = A₁ + A₂ + ln(e^{A₃} + δ e^{A₄}) (δ = 1 when x > 0, else 0) with
//!   A₁ = ln Γ(r + x) − ln Γ(r) + r ln α,
//!   A₂ = ln Γ(a + b) + ln Γ(b + x) − ln Γ(b) − ln Γ(a + b + x),
//!   A₃ = −(r + x) ln(α + T), A₄ = ln a − ln(b + x − 1) − (r + x) ln(α + t_x):
//!   no Beta function of x and no power that overflows.
//! - Conditional expectation of purchases in (T, T + t] (eq. 10): its ₂F₁(r + x, b + x;
//!   a + b + x − 1; z) is taken through Euler's transformation to
//!   (1 − z)^{a−1−r−x} ₂F₁(a + b − 1 − r, a − 1; a + b + x − 1; z), whose numerator
//!   parameters do not grow with x; with z = t / (α + T + t), the power folds into the
//!   leading ((α + T)/(α + T + t))^{r+x} to leave (1 − z)^{a−1}.
//! - Unconditional E[X(t)] (eq. 7) is the same expression at x = t_x = T = 0.
//! - P(alive | x, t_x, T) = 1 / (1 + δ a / (b + x − 1) ((α + T)/(α + t_x))^{r+x}).

use serde::{Deserialize, Serialize};

use super::fit::{Fitted, maximize};
use super::patterns::Patterns;
use super::special::{hyp2f1, ln_gamma, log_add_exp};
use crate::error::Result;

/// BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

pub const NAMES: [&str; 4] = ["r", "alpha", "a", "b"];

impl BgNbd {
    fn from_slice(p: &[f64]) -> BgNbd {
        BgNbd {
            r: p[0],
            alpha: p[1],
            a: p[2],
            b: p[3],
        }
    }

    /// The mean log-likelihood per customer of `data`.
    pub fn mean_log_likelihood(&self, data: &Patterns) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let by_x: Vec<f64> = data
            .xs
            .iter()
            .map(|&x| {
                let x = x as f64;
                ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ln_gamma(a + b) + ln_gamma(b + x)
                    - ln_gamma(b)
                    - ln_gamma(a + b + x)
            })
            .collect();
        // ln a − ln(b + x − 1) per x; ln(α + t) per distinct time.
        let dropout: Vec<f64> = data
            .xs
            .iter()
            .map(|&x| a.ln() - (b + x as f64 - 1.0).ln())
            .collect();
        let ln_at = data.per_time(|t| (alpha + t).ln());
        data.mean(|p| {
            let x = p.x as f64;
            let a3 = -(r + x) * ln_at[p.age_ix];
            let rest = if p.x > 0 {
                log_add_exp(a3, dropout[p.group] - (r + x) * ln_at[p.tx_ix])
            } else {
                a3
            };
            by_x[p.group] + rest
        })
    }

    /// The maximum-likelihood fit to `data`, from r = 1, α = mean T / (mean x + 1), a = b = 1.
    pub fn fit(data: &Patterns) -> Result<(BgNbd, Fitted)> {
        let (x, age) = data.means();
        let start = [1.0, (age / (x + 1.0)).max(1e-3), 1.0, 1.0];
        let fitted = maximize("BG/NBD", &start, data.customers, |p| {
            BgNbd::from_slice(p).mean_log_likelihood(data)
        })?;
        Ok((BgNbd::from_slice(&fitted.params), fitted))
    }

    /// P(alive) of a customer with summary (x, t_x, T).
    pub fn p_alive(&self, x: u64, tx: f64, age: f64) -> f64 {
        if x == 0 {
            return 1.0;
        }
        let xf = x as f64;
        let odds = (self.a.ln() - (self.b + xf - 1.0).ln()
            + (self.r + xf) * ((self.alpha + age).ln() - (self.alpha + tx).ln()))
        .exp();
        1.0 / (1.0 + odds)
    }

    /// Expected purchases in the next `t` time units of a customer with summary (x, t_x, T);
    /// NaN when the series does not settle.
    pub fn conditional_expected(&self, t: f64, x: u64, tx: f64, age: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let xf = x as f64;
        let z = t / (alpha + age + t);
        let Some(f) = hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + xf - 1.0, z) else {
            return f64::NAN;
        };
        let bracket = -((a - 1.0) * (-z).ln_1p() + f.ln()).exp_m1();
        (a + b + xf - 1.0) / (a - 1.0) * bracket * self.p_alive(x, tx, age)
    }

    /// E[X(t)]: expected purchases in `t` time units of a customer just acquired.
    pub fn expected(&self, t: f64) -> f64 {
        self.conditional_expected(t, 0, 0.0, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::patterns::Rfm;

    /// Fader, Hardie & Lee's estimates for the CDNOW sample (the data themselves are tested
    /// in the integration tests).
    const CDNOW: BgNbd = BgNbd {
        r: 0.242594,
        alpha: 4.413595,
        a: 0.792919,
        b: 2.425892,
    };

    /// The likelihood's log form against the paper's eq. 6 computed directly with Beta
    /// functions, for small x where that is exact enough.
    #[test]
    fn the_log_form_is_the_papers_likelihood() {
        let m = CDNOW;
        let beta = |p: f64, q: f64| (ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)).exp();
        for (x, tx, age) in [(0u64, 0.0, 38.86), (2, 30.43, 38.86), (5, 10.0, 20.0)] {
            let xf = x as f64;
            let g = (ln_gamma(m.r + xf) - ln_gamma(m.r)).exp() * m.alpha.powf(m.r);
            let mut l = beta(m.a, m.b + xf) / beta(m.a, m.b) * g / (m.alpha + age).powf(m.r + xf);
            if x > 0 {
                l += beta(m.a + 1.0, m.b + xf - 1.0) / beta(m.a, m.b) * g
                    / (m.alpha + tx).powf(m.r + xf);
            }
            let ours = m.mean_log_likelihood(&Patterns::new([Rfm { x, tx, age }]));
            assert!((ours - l.ln()).abs() < 1e-12, "x {x}: {ours} {}", l.ln());
        }
    }

    /// The paper's figures: customer 1 expects 1.226 purchases in weeks 40–78, and
    /// E[X(78)] = 1.8576 (published in Fader & Hardie's "Computing E[X(t)]" note... the
    /// issue quotes both).
    #[test]
    fn expectations_match_the_published_figures() {
        let e = CDNOW.conditional_expected(39.0, 2, 30.43, 38.86);
        assert!((e - 1.226).abs() < 5e-4, "{e}");
        let u = CDNOW.expected(78.0);
        assert!((u - 1.8576).abs() < 5e-4, "{u}");
        // A customer who has not bought for long is less likely alive than a recent one.
        assert!(CDNOW.p_alive(2, 5.0, 38.86) < CDNOW.p_alive(2, 38.0, 38.86));
        assert_eq!(CDNOW.p_alive(0, 0.0, 38.86), 1.0);
    }

    /// The transformed ₂F₁ against the untransformed one where both are well conditioned.
    #[test]
    fn eulers_transformation_keeps_the_value() {
        let m = CDNOW;
        let (t, x, tx, age) = (39.0, 3u64, 20.0, 38.0);
        let xf = x as f64;
        let z = t / (m.alpha + age + t);
        let direct = hyp2f1(m.r + xf, m.b + xf, m.a + m.b + xf - 1.0, z).unwrap();
        let bracket = 1.0 - ((m.alpha + age) / (m.alpha + age + t)).powf(m.r + xf) * direct;
        let expected = (m.a + m.b + xf - 1.0) / (m.a - 1.0) * bracket * m.p_alive(x, tx, age);
        let ours = m.conditional_expected(t, x, tx, age);
        assert!((ours - expected).abs() < 1e-10, "{ours} {expected}");
    }

    /// A large purchase count stays finite (where the untransformed forms overflow).
    #[test]
    fn large_counts_stay_finite() {
        let data = Patterns::new([Rfm {
            x: 5000,
            tx: 700.0,
            age: 730.0,
        }]);
        assert!(CDNOW.mean_log_likelihood(&data).is_finite());
        let e = CDNOW.conditional_expected(365.0, 5000, 700.0, 730.0);
        assert!(e.is_finite() && e > 0.0, "{e}");
    }
}
