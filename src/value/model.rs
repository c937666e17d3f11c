//! The value model file (versioned JSON) and the purchase models behind one type.
//!
//! ```json
//! { "format": "ecrm-clv-model", "version": 1, "method": "bgnbd",
//!   "params": {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259},
//!   "log_likelihood": -9582.43, "fit": {"iterations": …, "gradient_norm": …, "converged": true},
//!   "spend": {"p": 6.25, "q": 3.74, "v": 15.44, "log_likelihood": …, "fit": {…}},
//!   "time_unit": "week", "source": {"data_sha256": …, …} }
//! ```

use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::bgnbd::BgNbd;
use super::fit::Fitted;
use super::gamma_gamma::GammaGamma;
use super::pareto::ParetoNbd;
use super::special::ln_gamma;
use crate::error::{Error, Result};

pub const MODEL_FORMAT: &str = "ecrm-clv-model";
pub const MODEL_VERSION: u32 = 1;

crate::choices! {
    /// Purchase models.
    pub enum Method {
        /// BG/NBD: customers may drop out right after a purchase (Fader, Hardie & Lee 2005).
        BgNbd = "bgnbd",
        /// Pareto/NBD: customers may drop out at any time (Schmittlein et al. 1987).
        ParetoNbd = "pareto-nbd",
    }
    default = BgNbd;
}

crate::choices! {
    /// Spend models.
    pub enum SpendModel {
        /// Gamma-Gamma on repeat buyers' mean spend (needs amounts).
        GammaGamma = "gamma-gamma",
        /// No spend model: purchases and P(alive) only, no money values.
        None = "none",
    }
    default = GammaGamma;
}

crate::choices! {
    /// The unit of x's times t_x and T (and of a summary table's columns).
    pub enum TimeUnit {
        Week = "week",
        Day = "day",
    }
    default = Week;
}

impl TimeUnit {
    /// Days per unit.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Week => 7.0,
            TimeUnit::Day => 1.0,
        }
    }
}

/// A fitted purchase model: the method and its parameters (`"method"` and `"params"` in the
/// file).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum Purchases {
    #[serde(rename = "bgnbd")]
    BgNbd(BgNbd),
    #[serde(rename = "pareto-nbd")]
    ParetoNbd(ParetoNbd),
}

impl Purchases {
    pub fn method(&self) -> Method {
        match self {
            Purchases::BgNbd(_) => Method::BgNbd,
            Purchases::ParetoNbd(_) => Method::ParetoNbd,
        }
    }

    /// (name, value) of each parameter.
    pub fn params(&self) -> Vec<(&'static str, f64)> {
        let values = match self {
            Purchases::BgNbd(m) => [m.r, m.alpha, m.a, m.b],
            Purchases::ParetoNbd(m) => [m.r, m.alpha, m.s, m.beta],
        };
        let names = match self {
            Purchases::BgNbd(_) => super::bgnbd::NAMES,
            Purchases::ParetoNbd(_) => super::pareto::NAMES,
        };
        names.into_iter().zip(values).collect()
    }

    pub fn p_alive(&self, x: u64, tx: f64, age: f64) -> f64 {
        match self {
            Purchases::BgNbd(m) => m.p_alive(x, tx, age),
            Purchases::ParetoNbd(m) => m.p_alive(x, tx, age),
        }
    }

    pub fn conditional_expected(&self, t: f64, x: u64, tx: f64, age: f64) -> f64 {
        match self {
            Purchases::BgNbd(m) => m.conditional_expected(t, x, tx, age),
            Purchases::ParetoNbd(m) => m.conditional_expected(t, x, tx, age),
        }
    }

    pub fn expected(&self, t: f64) -> f64 {
        self.conditional_expected(t, 0, 0.0, 0.0)
    }

    /// P(X(t) = x) for x = 0 … n − 1: how many repeat purchases a customer makes in their
    /// first t time units.
    pub fn pmf(&self, t: f64, n: usize) -> Vec<f64> {
        match self {
            Purchases::BgNbd(m) => bgnbd_pmf(m, t, n),
            Purchases::ParetoNbd(m) => pareto_pmf(m, t, n),
        }
    }
}

/// ln of the NBD probability of j purchases in time t: Γ(r+j)/(Γ(r) j!) (α/(α+t))^r (t/(α+t))^j.
fn ln_nbd(r: f64, alpha: f64, j: usize, t: f64) -> f64 {
    let jf = j as f64;
    let tail = if j == 0 {
        0.0
    } else {
        jf * (t / (alpha + t)).ln()
    };
    ln_gamma(r + jf) - ln_gamma(r) - ln_gamma(jf + 1.0) + r * (alpha / (alpha + t)).ln() + tail
}

/// BG/NBD's P(X(t) = x) (Fader, Hardie & Lee 2005, eq. 8).
fn bgnbd_pmf(m: &BgNbd, t: f64, n: usize) -> Vec<f64> {
    let ln_beta = |p: f64, q: f64| ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q);
    let base = ln_beta(m.a, m.b);
    let mut below = 0.0;
    (0..n)
        .map(|x| {
            let xf = x as f64;
            let nbd = ln_nbd(m.r, m.alpha, x, t).exp();
            let mut p = (ln_beta(m.a, m.b + xf) - base).exp() * nbd;
            if x > 0 {
                p += (ln_beta(m.a + 1.0, m.b + xf - 1.0) - base).exp() * (1.0 - below);
            }
            below += nbd;
            p
        })
        .collect()
}

/// Pareto/NBD's P(X(t) = x): alive throughout with probability (β/(β+t))^s, else dead at τ
/// with density sβ^s/(β+τ)^(s+1), buying as an NBD until then; the integral over τ by
/// Simpson's rule on 2,000 intervals (the integrand is smooth on [0, t]).
fn pareto_pmf(m: &ParetoNbd, t: f64, n: usize) -> Vec<f64> {
    const STEPS: usize = 2000;
    let h = t / STEPS as f64;
    let death = |tau: f64| m.s * m.beta.powf(m.s) / (m.beta + tau).powf(m.s + 1.0);
    (0..n)
        .map(|x| {
            let at = |tau: f64| {
                let nbd = if tau == 0.0 {
                    if x == 0 { 1.0 } else { 0.0 }
                } else {
                    ln_nbd(m.r, m.alpha, x, tau).exp()
                };
                death(tau) * nbd
            };
            let inner: f64 = (1..STEPS)
                .map(|i| (if i % 2 == 1 { 4.0 } else { 2.0 }) * at(i as f64 * h))
                .sum();
            let integral = h / 3.0 * (at(0.0) + inner + at(t));
            (m.beta / (m.beta + t)).powf(m.s) * ln_nbd(m.r, m.alpha, x, t).exp() + integral
        })
        .collect()
}

/// The fitted spend model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendFit {
    #[serde(flatten)]
    pub params: GammaGamma,
    pub log_likelihood: f64,
    pub fit: Fitted,
    /// Repeat buyers with a positive mean spend (the fit's data).
    pub customers: u64,
    /// Repeat buyers left out for a missing, zero or negative mean spend.
    pub left_out: u64,
}

/// Where a model's data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// `warehouse`, `summary` or `transactions`.
    pub kind: String,
    /// The warehouse folder or the file.
    pub input: String,
    /// A file's columns by role (`id`, `frequency`, `date`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<(String, String)>,
    /// chrono format of a transaction log's text dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_format: Option<String>,
    /// Warehouse and transaction logs: the last day of calibration and the as-of date
    /// (exclusive end of the hold-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_end: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    pub customers: u64,
    pub repeat_buyers: u64,
    pub repeat_purchases: u64,
    /// Customers first seen after the calibration end, left out.
    #[serde(default)]
    pub acquired_later: u64,
    /// SHA-256 of the summaries fitted (see [`super::data::Customers::sha256`]).
    pub data_sha256: String,
}

/// The model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub version: u32,
    pub ecrm_version: String,
    pub created_at: String,
    #[serde(flatten)]
    pub purchases: Purchases,
    pub log_likelihood: f64,
    pub fit: Fitted,
    pub spend: Option<SpendFit>,
    pub time_unit: TimeUnit,
    pub source: Source,
}

impl ModelFile {
    /// Reads and checks a model file: format, version, and parameters that are positive
    /// numbers, so a hand-edited file is an error naming the field, never a NaN score.
    pub fn read(path: &Path) -> Result<ModelFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let m: ModelFile = serde_json::from_str(&text)
            .map_err(|e| Error::input(path, format!("not an ecrm value model file: {e}")))?;
        if m.format != MODEL_FORMAT || m.version != MODEL_VERSION {
            return Err(Error::input(
                path,
                format!(
                    "model format {} version {}; this ecrm reads {MODEL_FORMAT} version {MODEL_VERSION}",
                    m.format, m.version
                ),
            ));
        }
        let mut params = m.purchases.params();
        if let Some(s) = &m.spend {
            params.extend([
                ("spend.p", s.params.p),
                ("spend.q", s.params.q),
                ("spend.v", s.params.v),
            ]);
        }
        if let Some((name, v)) = params.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(Error::input(
                path,
                format!("not a valid value model: {name} is {v}; expected a positive number"),
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BG: BgNbd = BgNbd {
        r: 0.242594,
        alpha: 4.413595,
        a: 0.792919,
        b: 2.425892,
    };

    /// The probabilities of 0, 1, … purchases sum to 1 and have the model's mean E[X(t)].
    #[test]
    fn pmfs_are_distributions_with_the_models_mean() {
        let pareto = ParetoNbd {
            r: 0.5533,
            alpha: 10.5776,
            s: 0.6061,
            beta: 11.665,
        };
        for m in [Purchases::BgNbd(BG), Purchases::ParetoNbd(pareto)] {
            let p = m.pmf(38.86, 400);
            let total: f64 = p.iter().sum();
            assert!((total - 1.0).abs() < 1e-6, "{m:?}: {total}");
            let mean: f64 = p.iter().enumerate().map(|(x, p)| x as f64 * p).sum();
            assert!((mean - m.expected(38.86)).abs() < 1e-4, "{m:?}: {mean}");
        }
    }

    #[test]
    fn the_file_names_method_and_params_as_documented() {
        let json = serde_json::to_value(Purchases::BgNbd(BG)).unwrap();
        assert_eq!(json["method"], "bgnbd");
        assert_eq!(json["params"]["alpha"], 4.413595);
    }
}
