//! The one integration-test binary (each extra binary would re-link DataFusion and polars).

mod bad_input;
mod basket;
mod campaign;
mod churn;
#[cfg(feature = "distributed")]
mod cluster;
mod contracts;
mod crash;
mod extracts;
mod online_retail;
mod pipeline;
mod query_cli;
mod regressions;
mod report;
mod sample;
mod scd;
mod segments;
mod sql_golden;
mod support;
mod value;
mod web;
