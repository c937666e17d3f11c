//! The Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee, "RFM and CLV: using
//! iso-value curves for customer base analysis", JMR 42(4), 2005; Colombo & Jiang 1999): a
//! customer's purchases are Gamma(p, ν) around their own mean, ν ~ Gamma(q, v) across
//! customers, independent of how often they buy.
//!
//! - Input: repeat buyers' (x, z̄): repeat purchases and their mean spend (> 0).
//! - Likelihood per customer: ln Γ(px + q) − ln Γ(px) − ln Γ(q) + q ln v + (px − 1) ln z̄
//!   + px ln x − (px + q) ln(x z̄ + v).
//! - E[M | x, z̄] = p (v + x z̄) / (px + q − 1): a weighted mean of the population mean
//!   p v / (q − 1) and the customer's own z̄; at x = 0 the population mean (q > 1).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::fit::{Fitted, maximize};
use super::special::ln_gamma;
use crate::error::{Error, Result};

/// Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
}

pub const NAMES: [&str; 3] = ["p", "q", "v"];

/// Repeat buyers' (x, z̄), folded into weighted distinct rows sorted by x, with ln z̄ kept:
/// the terms in x alone are computed once per distinct x.
#[derive(Debug, Clone)]
pub struct Spends {
    /// (index of x in `xs`, z̄, ln z̄, weight).
    rows: Vec<(usize, f64, f64, f64)>,
    xs: Vec<u64>,
    customers: f64,
}

impl Spends {
    /// From (x, z̄) pairs with x > 0 and z̄ > 0 (the caller leaves out the others and says so).
    pub fn new(pairs: impl IntoIterator<Item = (u64, f64)>) -> Spends {
        let mut all: Vec<(u64, f64)> = pairs.into_iter().collect();
        let customers = all.len() as f64;
        all.sort_unstable_by_key(|a| (a.0, a.1.to_bits()));
        let mut rows: Vec<(usize, f64, f64, f64)> = Vec::new();
        let mut xs: Vec<u64> = Vec::new();
        for (x, z) in all {
            match rows.last_mut() {
                Some(r) if xs[r.0] == x && r.1 == z => r.3 += 1.0,
                _ => {
                    if xs.last() != Some(&x) {
                        xs.push(x);
                    }
                    rows.push((xs.len() - 1, z, z.ln(), 1.0));
                }
            }
        }
        Spends {
            rows,
            xs,
            customers,
        }
    }

    pub fn customers(&self) -> u64 {
        self.customers as u64
    }
}

impl GammaGamma {
    fn from_slice(p: &[f64]) -> GammaGamma {
        GammaGamma {
            p: p[0],
            q: p[1],
            v: p[2],
        }
    }

    /// The mean log-likelihood per customer of `data`.
    pub fn mean_log_likelihood(&self, data: &Spends) -> f64 {
        let GammaGamma { p, q, v } = *self;
        let constant = -ln_gamma(q) + q * v.ln();
        let by_x: Vec<f64> = data
            .xs
            .iter()
            .map(|&x| {
                let px = p * x as f64;
                ln_gamma(px + q) - ln_gamma(px) + constant + px * (x as f64).ln()
            })
            .collect();
        let partial: Vec<f64> = data
            .rows
            .par_chunks(8192)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|&(g, z, ln_z, w)| {
                        let x = data.xs[g] as f64;
                        let px = p * x;
                        w * (by_x[g] + (px - 1.0) * ln_z - (px + q) * (x * z + v).ln())
                    })
                    .sum::<f64>()
            })
            .collect();
        partial.iter().sum::<f64>() / data.customers
    }

    /// The maximum-likelihood fit, from p = q = v = 1.
    pub fn fit(data: &Spends) -> Result<(GammaGamma, Fitted)> {
        if data.customers < 2.0 {
            return Err(Error::Mining {
                algorithm: "Gamma-Gamma",
                message: format!(
                    "{} repeat buyer(s) with a positive mean spend; the spend model needs at \
                     least 2 (or train with --spend none)",
                    data.customers
                ),
            });
        }
        let fitted = maximize("Gamma-Gamma", &[1.0, 1.0, 1.0], data.customers, |p| {
            GammaGamma::from_slice(p).mean_log_likelihood(data)
        })?;
        Ok((GammaGamma::from_slice(&fitted.params), fitted))
    }

    /// Expected spend per purchase of a customer with x repeat purchases of mean z̄; NaN at
    /// x = 0 when q ≤ 1 (the population mean is then infinite).
    pub fn expected_spend(&self, x: u64, mean_spend: f64) -> f64 {
        let GammaGamma { p, q, v } = *self;
        let px = p * x as f64;
        if x == 0 {
            return if q > 1.0 { p * v / (q - 1.0) } else { f64::NAN };
        }
        p * (v + x as f64 * mean_spend) / (px + q - 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log form against the density integrated numerically over ν: z̄ given ν is
    /// Gamma(px, νx), ν ~ Gamma(q, v).
    #[test]
    fn the_log_form_is_the_mixture_density() {
        let m = GammaGamma {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        for (x, z) in [(1u64, 20.0), (4, 35.5)] {
            let xf = x as f64;
            let px = m.p * xf;
            let gamma_pdf = |y: f64, shape: f64, rate: f64| {
                (shape * rate.ln() + (shape - 1.0) * y.ln() - rate * y - ln_gamma(shape)).exp()
            };
            let steps = 400_000;
            let h = 5.0 / steps as f64;
            let density: f64 = (0..steps)
                .map(|i| {
                    let nu = (i as f64 + 0.5) * h;
                    gamma_pdf(z, px, nu * xf) * gamma_pdf(nu, m.q, m.v) * h
                })
                .sum();
            let ours = m.mean_log_likelihood(&Spends::new([(x, z)]));
            assert!(
                (ours - density.ln()).abs() < 1e-6,
                "x {x}: {ours} {}",
                density.ln()
            );
        }
    }

    #[test]
    fn expected_spend_shrinks_towards_the_population_mean() {
        let m = GammaGamma {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        let population = m.expected_spend(0, 0.0);
        assert!((population - 6.25 * 15.44 / 2.74).abs() < 1e-12);
        let one = m.expected_spend(1, 100.0);
        let ten = m.expected_spend(10, 100.0);
        assert!(population < one && one < ten && ten < 100.0);
    }
}
