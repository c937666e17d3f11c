//! Maximum likelihood for the value models (and the sBG survivor curve): Nelder–Mead
//! (argmin) on the logarithms of positive parameters, restarted from its best point until a
//! restart no longer improves it, then checked by the gradient.
//!
//! Why this way: the likelihoods are smooth but their parameters differ by orders of
//! magnitude and must stay positive. In log space they need no bounds, and a simplex needs
//! no derivatives of ₂F₁. A restart guards against a collapsed simplex (the usual cause of
//! lifetimes' "did not converge"). The objective is the mean log-likelihood per customer, so
//! one tolerance suits a thousand customers and a million.
//!
//! Diagnostics ([`Fitted`]): iterations, the gradient's norm with respect to the log
//! parameters (central differences) of the mean log-likelihood, and `converged`: the simplex
//! settled, the gradient is below [`GRADIENT_TOLERANCE`], the likelihood curves down along
//! every parameter (at least [`CURVATURE`]), and no parameter ran off to e^±[`EDGE`]. A
//! likelihood that keeps rising towards a limit (e.g. nobody ever drops out, so the dropout
//! parameter runs to infinity) flattens out there and fails the curvature test.

use argmin::core::{CostFunction, Executor, State, TerminationReason, TerminationStatus};
use argmin::solver::neldermead::NelderMead;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest gradient norm (of the mean log-likelihood, per log parameter) of a converged fit.
pub const GRADIENT_TOLERANCE: f64 = 1e-5;
/// The least downward curvature of the mean log-likelihood along each log parameter at a
/// maximum; real fits curve by 1e-3 and more, a runaway by e^−(distance run).
pub const CURVATURE: f64 = 1e-7;
/// |ln θ| beyond which a parameter has run off (θ outside 2e-9 … 5e8): the objective is a
/// wall there, so a likelihood that rises towards a limit stops the simplex in tens of steps
/// instead of crawling on at the cost of a full likelihood per step.
pub const EDGE: f64 = 20.0;
const SIMPLEX_SPREAD: f64 = 1e-13;
const MAX_ITERS: u64 = 5_000;
const MAX_RESTARTS: usize = 10;

/// A fit's outcome and diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    /// The parameters (not their logarithms), in the model's order.
    #[serde(skip)]
    pub params: Vec<f64>,
    /// The total log-likelihood (mean × customers).
    pub log_likelihood: f64,
    pub iterations: u64,
    pub restarts: usize,
    pub gradient_norm: f64,
    pub converged: bool,
}

struct Negative<F>(F);

impl<F: Fn(&[f64]) -> f64> CostFunction for Negative<F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        if p.iter().any(|v| v.abs() > EDGE) {
            return Ok(f64::MAX);
        }
        let theta: Vec<f64> = p.iter().map(|v| v.exp()).collect();
        let value = -(self.0)(&theta);
        // A step far out (a parameter overflowing) is a bad point, not an error.
        Ok(if value.is_finite() { value } else { f64::MAX })
    }
}

/// Maximises `mean_ll` (the mean log-likelihood per customer, over positive parameters)
/// from `start`; `customers` scales it back to the total. `model` names the fit in errors.
pub fn maximize(
    model: &'static str,
    start: &[f64],
    customers: f64,
    mean_ll: impl Fn(&[f64]) -> f64,
) -> Result<Fitted> {
    let internal = |e: argmin::core::Error| Error::Internal(format!("{model} fit: {e}"));
    let mut best: Vec<f64> = start.iter().map(|v| v.ln()).collect();
    let mut best_cost = f64::INFINITY;
    let mut iterations = 0;
    let mut settled = false;
    let mut restarts = 0;
    while restarts < MAX_RESTARTS {
        let solver = NelderMead::new(simplex(&best, 0.5))
            .with_sd_tolerance(SIMPLEX_SPREAD)
            .map_err(internal)?;
        let result = Executor::new(Negative(&mean_ll), solver)
            .configure(|s| s.max_iters(MAX_ITERS))
            .run()
            .map_err(internal)?;
        let state = result.state();
        iterations += state.get_iter();
        settled = state.get_termination_status()
            == &TerminationStatus::Terminated(TerminationReason::SolverConverged);
        let (p, c) = match state.get_best_param() {
            Some(p) => (p.clone(), state.get_best_cost()),
            None => return Err(Error::Internal(format!("{model} fit: no parameters"))),
        };
        let improvement = best_cost - c;
        if c <= best_cost {
            best = p;
            best_cost = c;
        }
        if improvement.is_finite() && improvement <= SIMPLEX_SPREAD {
            break;
        }
        restarts += 1;
    }
    let cost = Negative(&mean_ll);
    let gradient_norm = gradient(&cost, &best);
    let params: Vec<f64> = best.iter().map(|v| v.exp()).collect();
    Ok(Fitted {
        log_likelihood: mean_ll(&params) * customers,
        converged: settled
            && gradient_norm <= GRADIENT_TOLERANCE
            && curves_down(&cost, &best)
            && best.iter().all(|v| v.abs() < EDGE - 1.0),
        params,
        iterations,
        restarts,
        gradient_norm,
    })
}

/// A simplex around `centre`: the centre and one step along each axis.
fn simplex(centre: &[f64], step: f64) -> Vec<Vec<f64>> {
    let mut points = vec![centre.to_vec()];
    for i in 0..centre.len() {
        let mut p = centre.to_vec();
        p[i] += step;
        points.push(p);
    }
    points
}

/// The Euclidean norm of the cost's gradient at `p` by central differences.
fn gradient<C: CostFunction<Param = Vec<f64>, Output = f64>>(cost: &C, p: &[f64]) -> f64 {
    const H: f64 = 1e-6;
    let at = |q: &Vec<f64>| cost.cost(q).unwrap_or(f64::MAX);
    (0..p.len())
        .map(|i| {
            let (mut up, mut down) = (p.to_vec(), p.to_vec());
            up[i] += H;
            down[i] -= H;
            ((at(&up) - at(&down)) / (2.0 * H)).powi(2)
        })
        .sum::<f64>()
        .sqrt()
}

/// Whether the likelihood curves down along every axis at `p` (the cost curves up).
fn curves_down<C: CostFunction<Param = Vec<f64>, Output = f64>>(cost: &C, p: &[f64]) -> bool {
    const H: f64 = 1e-3;
    let at = |q: &Vec<f64>| cost.cost(q).unwrap_or(f64::MAX);
    let centre = at(&p.to_vec());
    (0..p.len()).all(|i| {
        let (mut up, mut down) = (p.to_vec(), p.to_vec());
        up[i] += H;
        down[i] -= H;
        (at(&up) - 2.0 * centre + at(&down)) / (H * H) >= CURVATURE
    })
}

impl Fitted {
    /// This fit, or an error with its diagnostics when it did not converge: numbers from a
    /// fit that did not converge are never returned silently.
    pub fn converged_or_error(self, model: &'static str, names: &[&str]) -> Result<Fitted> {
        if self.converged {
            return Ok(self);
        }
        let params: Vec<String> = names
            .iter()
            .zip(&self.params)
            .map(|(n, v)| format!("{n} = {v:.6e}"))
            .collect();
        let edge: Vec<String> = names
            .iter()
            .zip(&self.params)
            .filter(|(_, v)| v.ln().abs() >= EDGE - 1.0)
            .map(|(n, v)| format!("{n} → {}", if *v < 1.0 { "0" } else { "∞" }))
            .collect();
        let why = if edge.is_empty() {
            "the likelihood is flat or still rising there".to_string()
        } else {
            format!(
                "the likelihood keeps rising as {}, so it has no maximum inside the model",
                edge.join(" and ")
            )
        };
        Err(Error::Mining {
            algorithm: model,
            message: format!(
                "the fit did not converge: {} iterations, {} restarts, gradient norm {:.3e} \
                 (at most {GRADIENT_TOLERANCE:e}), last parameters {}; {why}: the model may \
                 not describe these data (too few repeat buyers, nobody dropping out, or time \
                 in the wrong unit); no penalty is added",
                self.iterations,
                self.restarts,
                self.gradient_norm,
                params.join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_maximum_of_a_smooth_function() {
        // A log-likelihood-like bowl with its top at (2, 0.05).
        let f = |p: &[f64]| {
            -((p[0].ln() - 2f64.ln()).powi(2) + 3.0 * (p[1].ln() - 0.05f64.ln()).powi(2))
        };
        let fit = maximize("test", &[1.0, 1.0], 10.0, f).unwrap();
        assert!(fit.converged, "{fit:?}");
        assert!((fit.params[0] - 2.0).abs() < 1e-5, "{fit:?}");
        assert!((fit.params[1] - 0.05).abs() < 1e-7, "{fit:?}");
        assert!(fit.log_likelihood.abs() < 1e-9);
    }

    #[test]
    fn a_fit_that_runs_off_is_not_converged() {
        // Increasing without bound in the first parameter.
        let f = |p: &[f64]| -1.0 / p[0] - (p[1] - 1.0).powi(2);
        let fit = maximize("test", &[1.0, 1.0], 1.0, f).unwrap();
        assert!(!fit.converged, "{fit:?}");
        let message = fit
            .converged_or_error("test", &["a", "b"])
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("test: the fit did not converge:"),
            "{message}"
        );
    }
}
