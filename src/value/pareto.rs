//! The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987), in the form of Fader &
//! Hardie's "A note on deriving the Pareto/NBD model and related expressions" (2005):
//! while alive a customer buys at rate λ ~ Gamma(r, α); their lifetime is exponential with
//! rate μ ~ Gamma(s, β).
//!
//! - Likelihood per customer: ln L = A₁ + ln(e^{B} + s / (r + s + x) A₀) with
//!   A₁ = ln Γ(r + x) − ln Γ(r) + r ln α + s ln β, B = −(r + x) ln(α + T) − s ln(β + T), and
//!   A₀ = F(t_x) / (m + t_x)^{r+s+x} − F(T) / (m + T)^{r+s+x}, where m = max(α, β) and F(y) is
//!   ₂F₁(r + s + x, s + 1; r + s + x + 1; (α − β)/(α + y)) when α ≥ β, else
//!   ₂F₁(r + s + x, r + x; r + s + x + 1; (β − α)/(β + y)). A₀ is a difference of two nearly
//!   equal terms; it is taken in logs (ln(eᵘ − eᵛ)) as one fraction over (m + t_x)(m + T).
//! - The second ₂F₁ has a numerator that grows with x; Euler's transformation turns it into
//!   (1 − z)^{1−r−x} ₂F₁(1, s + 1; r + s + x + 1; z), whose terms do not.
//! - P(alive) = 1 / (1 + s / (r + s + x) (α + T)^{r+x} (β + T)^s A₀).
//! - E[Y(t) | x, t_x, T] = P(alive) (r + x)(β + T) / ((α + T)(s − 1)) (1 − ((β + T)/(β + T + t))^{s−1})
//!   (the limit ln((β + T + t)/(β + T)) at s = 1); E[X(t)] is the same at x = t_x = T = 0.

use serde::{Deserialize, Serialize};

use super::fit::{Fitted, maximize};
use super::patterns::Patterns;
use super::special::{hyp2f1, ln_gamma, log_add_exp, log_sub_exp};
use crate::error::Result;

/// Pareto/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParetoNbd {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
}

pub const NAMES: [&str; 4] = ["r", "alpha", "s", "beta"];

impl ParetoNbd {
    fn from_slice(p: &[f64]) -> ParetoNbd {
        ParetoNbd {
            r: p[0],
            alpha: p[1],
            s: p[2],
            beta: p[3],
        }
    }

    /// ln A₀ (see the module doc); −∞ when t_x = T; NaN when a series does not settle.
    fn ln_a0(&self, x: u64, tx: f64, age: f64) -> f64 {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let rsx = r + s + x as f64;
        let (m, second) = if alpha >= beta {
            (alpha, s + 1.0)
        } else {
            (beta, r + x as f64)
        };
        let gap = (alpha - beta).abs();
        let ln_f = |y: f64| {
            let z = gap / (m + y);
            // Euler's transformation when the second numerator is the large one.
            if second > rsx + 1.0 - second {
                hyp2f1(1.0, rsx + 1.0 - second, rsx + 1.0, z)
                    .map_or(f64::NAN, |f| f.ln() + (1.0 - second) * (-z).ln_1p())
            } else {
                hyp2f1(rsx, second, rsx + 1.0, z).map_or(f64::NAN, f64::ln)
            }
        };
        let (q1, q2) = (m + tx, m + age);
        log_sub_exp(ln_f(tx) + rsx * q2.ln(), ln_f(age) + rsx * q1.ln()) - rsx * (q1 * q2).ln()
    }

    /// The mean log-likelihood per customer of `data`.
    pub fn mean_log_likelihood(&self, data: &Patterns) -> f64 {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let by_x: Vec<f64> = data
            .xs
            .iter()
            .map(|&x| ln_gamma(r + x as f64) - ln_gamma(r) + r * alpha.ln() + s * beta.ln())
            .collect();
        data.mean(|p| {
            let x = p.x as f64;
            let b = -(r + x) * (alpha + p.age).ln() - s * (beta + p.age).ln();
            let a0 = s.ln() - (r + s + x).ln() + self.ln_a0(p.x, p.tx, p.age);
            by_x[p.group] + log_add_exp(b, a0)
        })
    }

    /// The maximum-likelihood fit to `data`, from r = s = 1, α = β = mean T / (mean x + 1).
    pub fn fit(data: &Patterns) -> Result<(ParetoNbd, Fitted)> {
        let (x, age) = data.means();
        let scale = (age / (x + 1.0)).max(1e-3);
        let start = [1.0, scale, 1.0, scale];
        let fitted = maximize("Pareto/NBD", &start, data.customers, |p| {
            ParetoNbd::from_slice(p).mean_log_likelihood(data)
        })?;
        Ok((ParetoNbd::from_slice(&fitted.params), fitted))
    }

    /// P(alive) of a customer with summary (x, t_x, T).
    pub fn p_alive(&self, x: u64, tx: f64, age: f64) -> f64 {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let xf = x as f64;
        let ln_odds = s.ln() - (r + s + xf).ln()
            + (r + xf) * (alpha + age).ln()
            + s * (beta + age).ln()
            + self.ln_a0(x, tx, age);
        1.0 / (1.0 + ln_odds.exp())
    }

    /// Expected purchases in the next `t` time units of a customer with summary (x, t_x, T).
    pub fn conditional_expected(&self, t: f64, x: u64, tx: f64, age: f64) -> f64 {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let ln_ratio = ((beta + age) / (beta + age + t)).ln();
        // (1 − ratio^(s−1)) / (s − 1), and its limit −ln ratio at s = 1.
        let share = if (s - 1.0).abs() < 1e-10 {
            -ln_ratio
        } else {
            -((s - 1.0) * ln_ratio).exp_m1() / (s - 1.0)
        };
        self.p_alive(x, tx, age) * (r + x as f64) * (beta + age) / (alpha + age) * share
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

    const CDNOW: ParetoNbd = ParetoNbd {
        r: 0.5533,
        alpha: 10.5776,
        s: 0.6061,
        beta: 11.6650,
    };

    /// The log form against the likelihood computed by numerical integration over the
    /// unobserved lifetime τ: L = ∫ P(x, t_x | λ, alive to τ) over λ ~ Gamma(r, α),
    /// μ ~ Gamma(s, β), which for fixed (λ, μ) is
    /// λˣ e^{−(λ+μ)T} + λˣ μ ∫_{t_x}^{T} e^{−(λ+μ)τ} dτ, times Γ terms; integrated over λ
    /// in closed form, leaving one integral over τ of Gamma-mixture terms.
    #[test]
    fn the_log_form_is_the_integrated_likelihood() {
        let m = CDNOW;
        for (x, tx, age) in [(0u64, 0.0, 38.86), (2, 30.43, 38.86), (7, 12.0, 30.0)] {
            let xf = x as f64;
            // ∫λ λˣ e^{−λτ} Gamma(λ; r, α) dλ = Γ(r+x)/Γ(r) α^r / (α+τ)^(r+x).
            let lam = |tau: f64| {
                (ln_gamma(m.r + xf) - ln_gamma(m.r) + m.r * m.alpha.ln()
                    - (m.r + xf) * (m.alpha + tau).ln())
                .exp()
            };
            // E_μ[e^{−μτ}] = (β/(β+τ))^s; E_μ[μ e^{−μτ}] = s β^s / (β+τ)^(s+1).
            let survive = |tau: f64| (m.beta / (m.beta + tau)).powf(m.s);
            let die = |tau: f64| m.s * m.beta.powf(m.s) / (m.beta + tau).powf(m.s + 1.0);
            let steps = 200_000;
            let h = (age - tx) / steps as f64;
            let integral: f64 = (0..steps)
                .map(|i| {
                    let tau = tx + (i as f64 + 0.5) * h;
                    lam(tau) * die(tau) * h
                })
                .sum();
            let l = lam(age) * survive(age) + integral;
            let ours = m.mean_log_likelihood(&Patterns::new([Rfm { x, tx, age }]));
            assert!((ours - l.ln()).abs() < 1e-8, "x {x}: {ours} {}", l.ln());
        }
    }

    /// Both branches of A₀ (α ≥ β and α < β) and the transformed series agree with the
    /// integral; so does a large x, where the untransformed series grows huge.
    #[test]
    fn both_branches_give_probabilities() {
        let swapped = ParetoNbd {
            alpha: 12.0,
            beta: 3.0,
            ..CDNOW
        };
        for m in [CDNOW, swapped] {
            let p = m.p_alive(2, 30.43, 38.86);
            assert!(p > 0.0 && p < 1.0, "{p}");
            assert!(m.p_alive(2, 38.0, 38.86) > m.p_alive(2, 5.0, 38.86));
            assert!((m.p_alive(0, 0.0, 0.0) - 1.0).abs() < 1e-12);
        }
        let e = CDNOW.conditional_expected(365.0, 3000, 700.0, 730.0);
        assert!(e.is_finite() && e > 0.0, "{e}");
    }
}
