//! Cohort retention: how many of a cohort of customers stay, period after period, and how
//! many will.
//!
//! - [`sbg`]: the shifted-beta-geometric model of one survivor curve (Fader & Hardie 2007):
//!   input the counts still active at the start and after each period, output α, β by
//!   maximum likelihood, the log-likelihood and the projected survival and retention.
//!
//! Layer: mining (uses `error` and the maximum-likelihood fit of [`crate::value::fit`]).

pub mod sbg;
