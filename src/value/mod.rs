//! Customer value: how many purchases each customer will make, what they will spend, and what
//! that is worth today ("buy till you die" models).
//!
//! - [`patterns`]: the input of the purchase models, each customer's repeat purchases x, the
//!   time of the last one t_x and their age T, folded into weighted distinct rows.
//! - [`bgnbd`], [`pareto`]: the BG/NBD and Pareto/NBD purchase models: likelihoods in their
//!   numerically stable forms, P(alive), conditional and unconditional expectations.
//! - [`gamma_gamma`]: the Gamma-Gamma model of spend per purchase.
//! - [`fit`]: maximum likelihood (Nelder–Mead on log parameters, restarted, gradient-checked),
//!   shared with [`crate::cohorts::sbg`].
//! - [`special`]: ln Γ, log-sum-exp, ₂F₁.
//! - [`data`]: customers' summaries from the warehouse, a transaction log or a summary table.
//! - [`profit`]: customer profitability and the whale curve → table `customer_profit`.
//! - [`train`], [`score`], [`evaluate`]: the jobs' logic; [`model`]: the model file;
//!   [`jobs`]: the jobs on their data (what the CLI and the pipeline call).
//!
//! Layer: mining (uses `features`, `olap`, `warehouse`, `error`).

pub mod bgnbd;
pub mod data;
pub mod evaluate;
pub mod fit;
pub mod gamma_gamma;
pub mod jobs;
pub mod model;
pub mod pareto;
pub mod patterns;
pub mod profit;
pub mod score;
pub mod special;
pub mod train;
