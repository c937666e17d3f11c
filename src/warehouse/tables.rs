//! The name of every table ecrm writes, in one place: what builds it and what it holds.
//!
//! SQL text names tables as SQL does; Rust code that asks for a table, lists what a stage
//! reads or writes, or publishes a table, names it by these constants.

/// Customers, SCD type 2 on country and opt-ins; key 0 is the unknown member (ingest).
pub const DIM_CUSTOMER: &str = "dim_customer";
/// Products, one canonical description per code (ingest).
pub const DIM_PRODUCT: &str = "dim_product";
/// Days (ingest).
pub const DIM_DATE: &str = "dim_date";
/// Order lines, partitioned by month (ingest).
pub const FACT_SALES: &str = "fact_sales";
/// Campaigns: channel, dates, costs, offer, response window (ingest).
pub const DIM_CAMPAIGN: &str = "dim_campaign";
/// Campaign contacts, with their arm (treatment or control) and cost (ingest).
pub const FACT_CAMPAIGN_CONTACT: &str = "fact_campaign_contact";
/// Consent events: a customer granting or withdrawing consent on a channel (ingest).
pub const FACT_CONSENT: &str = "fact_consent";
/// Web events: page views, product views, carts, purchases, logins, partitioned by month
/// (ingest).
pub const FACT_WEB_EVENT: &str = "fact_web_event";
/// Rows a rule rejected, with their raw text and reason code (ingest).
pub const REJECTS: &str = "rejects";
/// One row per source file per load (ingest).
pub const LOADS: &str = "loads";

/// Everything an ingest writes.
pub const INGEST: [&str; 10] = [
    DIM_CUSTOMER,
    DIM_PRODUCT,
    DIM_CAMPAIGN,
    DIM_DATE,
    FACT_SALES,
    FACT_CAMPAIGN_CONTACT,
    FACT_CONSENT,
    FACT_WEB_EVENT,
    REJECTS,
    LOADS,
];

/// The point-in-time customer feature mart (`ecrm features`).
pub const CUSTOMER_FEATURES: &str = "customer_features";
/// One row per customer of the last segmentation (`ecrm segment`).
pub const SEGMENTS: &str = "segments";
/// One row per segment of the last segmentation (`ecrm segment`).
pub const SEGMENT_PROFILES: &str = "segment_profiles";
/// Churn probability, risk band and reasons per active customer (`ecrm churn score`).
pub const CHURN_SCORES: &str = "churn_scores";
/// Each customer's top cross-sell products (`ecrm basket recommend`).
pub const RECOMMENDATIONS: &str = "recommendations";
/// The rules behind the recommendations (`ecrm basket recommend`).
pub const BASKET_RULES: &str = "basket_rules";
/// P(alive), expected purchases and spend, CLV and value decile per customer
/// (`ecrm clv score`).
pub const CUSTOMER_VALUE: &str = "customer_value";
/// Revenue, cost of goods, contact costs, gross profit and the whale curve per customer
/// (`ecrm profit`).
pub const CUSTOMER_PROFIT: &str = "customer_profit";
/// Customers by first purchase period and what each cohort did in each period since
/// (`ecrm cohorts`).
pub const COHORT_RETENTION: &str = "cohort_retention";
/// What each campaign caused against its control arm (`ecrm campaign report`).
pub const CAMPAIGN_RESULTS: &str = "campaign_results";
/// Predicted uplift, p_treated, p_control and group per customer (`ecrm campaign uplift
/// score`).
pub const UPLIFT_SCORES: &str = "uplift_scores";
/// One row per erasure: when, how many customers, rows changed per table; no ids (`ecrm
/// erase`).
pub const ERASURE_LOG: &str = "erasure_log";
/// One row per web session: visitor, stitched customer, times, events, pages, entry and
/// exit page, channel, device, conversion and revenue (`ecrm web sessions`).
pub const WEB_SESSIONS: &str = "web_sessions";
/// One row per web visitor: the customer it is linked to and when, first and last seen
/// (`ecrm web sessions`).
pub const DIM_VISITOR: &str = "dim_visitor";
/// Frequent sequential patterns (a pipeline's `sequence` stage).
pub const SEQUENCE_PATTERNS: &str = "sequence_patterns";
/// Sequential patterns of web sessions' steps (a `sequence` stage with `source = "web"`).
pub const WEB_SEQUENCE_PATTERNS: &str = "web_sequence_patterns";

/// What the customer feature mart, and so every order-line model, reads.
pub const MART_INPUTS: [&str; 3] = [FACT_SALES, DIM_PRODUCT, DIM_CUSTOMER];
/// What the mart reads when the warehouse has it (its web columns), and need not.
pub const MART_INPUTS_IF_BUILT: [&str; 1] = [FACT_WEB_EVENT];
