//! Campaigns: what a campaign caused, measured against its control arm.
//!
//! Rooms: `stats` (intervals and tests from each arm's moments), `test` (a randomised test's
//! arms and outcomes, from any table, reduced in SQL and compared arm by arm with the control).

pub mod evaluate;
pub mod stats;
