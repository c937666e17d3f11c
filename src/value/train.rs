//! Training: the parameters (one type for the CLI and a pipeline stage), then the purchase
//! model and, with amounts, the spend model fitted to customers' summaries.

use super::bgnbd::{self, BgNbd};
use super::data::Customers;
use super::fit::Fitted;
use super::gamma_gamma::{self, GammaGamma, Spends};
use super::model::{
    MODEL_FORMAT, MODEL_VERSION, Method, ModelFile, Purchases, Source, SpendFit, SpendModel,
    TimeUnit,
};
use super::pareto::{self, ParetoNbd};
use super::patterns::Patterns;
use crate::error::{Error, Result};

/// `ecrm clv train`'s options and a `clv-train` stage's keys.
#[derive(Debug, Clone, PartialEq, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClvTrainParams {
    /// The purchase model.
    #[arg(long, value_enum, default_value_t)]
    pub method: Method,
    /// The spend model (gamma-gamma needs amounts: the warehouse's revenue, a log's
    /// --amount or a summary's --monetary).
    #[arg(long, value_enum, default_value_t)]
    pub spend: SpendModel,
    /// The unit of time of t_x and T (a summary table's columns are in it).
    #[arg(long, value_enum, default_value_t)]
    pub time_unit: TimeUnit,
}

/// Fits the purchase model and (unless `--spend none`) the spend model to `customers`.
/// Errors when there is nothing to fit or a fit does not converge (with its diagnostics).
pub fn train(
    customers: &Customers,
    params: &ClvTrainParams,
    mut source: Source,
) -> Result<ModelFile> {
    let repeat_buyers = customers.rfm.iter().filter(|r| r.x > 0).count() as u64;
    if customers.rfm.len() < 2 || repeat_buyers == 0 {
        return Err(Error::Mining {
            algorithm: "clv",
            message: format!(
                "{} customer(s), {repeat_buyers} with a repeat purchase; a purchase model needs \
                 at least 2 customers and a repeat purchase (a later --calibration-end?)",
                customers.rfm.len()
            ),
        });
    }
    if params.spend == SpendModel::GammaGamma && customers.monetary.iter().all(Option::is_none) {
        return Err(Error::param(
            "spend",
            "gamma-gamma needs amounts, and these data have none: give the amount column \
             (--amount, or --monetary for a summary), or train with --spend none",
        ));
    }
    let patterns = Patterns::new(customers.rfm.iter().copied());
    let (purchases, fitted) = match params.method {
        Method::BgNbd => fit_bgnbd(&patterns)?,
        Method::ParetoNbd => {
            let (m, f) = ParetoNbd::fit(&patterns)?;
            (
                Purchases::ParetoNbd(m),
                f.converged_or_error("Pareto/NBD", &pareto::NAMES)?,
            )
        }
    };
    let spend = match params.spend {
        SpendModel::None => None,
        SpendModel::GammaGamma => Some(fit_spend(customers)?),
    };
    source.customers = customers.rfm.len() as u64;
    source.repeat_buyers = repeat_buyers;
    source.repeat_purchases = customers.rfm.iter().map(|r| r.x).sum();
    source.acquired_later = customers.acquired_later;
    source.data_sha256 = customers.sha256();
    Ok(ModelFile {
        format: MODEL_FORMAT.into(),
        version: MODEL_VERSION,
        ecrm_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now().to_rfc3339(),
        purchases,
        log_likelihood: fitted.log_likelihood,
        fit: fitted,
        spend,
        time_unit: params.time_unit,
        source,
    })
}

/// The BG/NBD fit; a likelihood that rises towards one dropout chance for everybody (a and
/// b growing without bound at a fixed ratio) is named as such, since it is a property of the
/// data, not a failure of the optimiser.
fn fit_bgnbd(patterns: &Patterns) -> Result<(Purchases, Fitted)> {
    let (m, f) = BgNbd::fit(patterns)?;
    if !f.converged && m.a > 1e4 && m.b > 1e4 {
        return Err(Error::Mining {
            algorithm: "BG/NBD",
            message: format!(
                "the chance of dropping out after a purchase does not vary across these \
                 customers: a and b grow without bound with a / (a + b) = {:.4}, so the \
                 likelihood has no maximum inside the model ({} iterations; no penalty is \
                 added). The Pareto/NBD (--method pareto-nbd) lets customers drop out at any \
                 time and may describe them",
                m.a / (m.a + m.b),
                f.iterations
            ),
        });
    }
    Ok((
        Purchases::BgNbd(m),
        f.converged_or_error("BG/NBD", &bgnbd::NAMES)?,
    ))
}

/// The Gamma-Gamma fit on repeat buyers with a positive mean spend.
fn fit_spend(customers: &Customers) -> Result<SpendFit> {
    let (pairs, left_out) = customers.spends();
    let spends = Spends::new(pairs);
    let (params, fitted) = GammaGamma::fit(&spends)?;
    let fitted = fitted.converged_or_error("Gamma-Gamma", &gamma_gamma::NAMES)?;
    Ok(SpendFit {
        params,
        log_likelihood: fitted.log_likelihood,
        fit: fitted,
        customers: spends.customers(),
        left_out,
    })
}
