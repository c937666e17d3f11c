//! Campaigns: what a campaign caused, measured against its control arm.
//!
//! Rooms: `stats` (intervals and tests from each arm's moments), `evaluate` (a randomised
//! test's arms and outcomes, from any table, reduced in SQL and compared arm by arm with the
//! control), `results` (the warehouse's campaigns: outcomes attributed from the order lines
//! in each contact's window, costs, ROI, and the effect against the control arm).

pub mod consent;
pub mod evaluate;
pub mod qini;
pub mod results;
pub mod stats;
pub mod uplift;
pub mod uplift_data;
