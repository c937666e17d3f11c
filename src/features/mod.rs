//! The point-in-time customer feature mart, and the one bridge from Arrow to ndarray.
//!
//! - Input tables: `fact_sales`, `dim_product`, `dim_customer` (its current rows), and
//!   `fact_web_event` when the warehouse has one (the web behaviour columns below).
//! - Output table: `customer_features`, one row per customer, built with DataFusion SQL
//!   ([`mart_sql`]; the web columns by [`web`]) and replaced as a whole by [`build`].
//! - Parameter: the as-of date. Only order lines stamped strictly before its midnight are
//!   read, so a mart built "as of" a past date sees exactly what was known then (churn
//!   labels depend on it). Default: the day after the last order line, i.e. all the data.
//!
//! Population: every customer with at least one purchase invoice (an invoice that is not a
//! return) before the as-of date. Guest lines (no customer id; the warehouse's unknown member)
//! and customers whose only lines are returns are left out, with counts in the log.
//!
//! Columns ("purchase" lines are those of non-return invoices; "goods" excludes service lines
//! such as postage and fees; days are calendar days between dates):
//!
//! | column | definition |
//! |---|---|
//! | `customer_id` | the natural customer id |
//! | `as_of` | the as-of date |
//! | `recency_days` | as-of date − date of the last purchase invoice |
//! | `frequency` | distinct purchase invoices |
//! | `monetary` | net revenue: the sum of `revenue` over all lines, returns (negative) and services included |
//! | `tenure_days` | as-of date − date of the first purchase invoice |
//! | `avg_order_value` | purchase revenue (returns not deducted) / `frequency` |
//! | `distinct_products` | distinct goods products bought |
//! | `distinct_categories` | distinct categories of the goods bought (0 when products have none) |
//! | `return_rate` | returned revenue / purchase revenue (NULL when purchase revenue is 0); may exceed 1 when goods bought before the data starts are returned |
//! | `mean_days_between_orders`, `std_days_between_orders` | mean and population standard deviation of the gaps, in fractional days, between consecutive purchase invoices (NULL with one invoice) |
//! | `overdue_ratio` | `recency_days` / `mean_days_between_orders`: how many of the customer's usual gaps have passed since the last purchase (NULL with one invoice or a mean gap of 0); near 1 for a regular customer, far above it for one who has stopped |
//! | `top_category`, `top_category_share` | the category with most goods revenue (ties: the first by name) and its share of the customer's goods revenue (NULL without categories) |
//! | `r_score`, `f_score`, `m_score`, `rfm_segment` | RFM quintile scores and named segment ([`rfm`]) |
//! | `age_band` | age at the as-of date from `birth_date`: `<25`, `25-34`, `35-44`, `45-54`, `55-64`, `65+`; without a birth date the extract's own `age_band` (NULL when neither is known) |
//! | `country`, `acquisition_channel`, `email_opt_in`, `phone_opt_in` | from the customer's current `dim_customer` row (NULL when the source has none) |
//!
//! Web behaviour, when the warehouse has web events (`fact_web_event`; the columns are
//! absent otherwise). The customer's sessions are those [`crate::web`] cuts (with the idle
//! gap of `ecrm web sessions`, 30 minutes) and attributes to them (their own login, the
//! orders they carry, or a stitched visitor) from the events before the as-of date alone, so
//! a session that began before it ends there:
//!
//! | column | definition |
//! |---|---|
//! | `web_sessions_30d`, `web_sessions_90d` | sessions that started in the 30 (90) days before the as-of date (0 without any) |
//! | `web_page_views_30d`, `web_page_views_90d` | page and product views in those sessions |
//! | `days_since_last_visit` | as-of date − date the last session started (NULL: never seen on the web) |
//! | `pages_per_session` | page views / sessions, over all sessions (NULL without sessions) |
//! | `cart_abandonment_rate` | sessions that added to the cart without buying / sessions that added to the cart (NULL without any) |
//! | `visit_to_purchase_rate` | converted sessions / sessions (NULL without sessions) |
//! | `last_channel` | the channel of the last session (NULL when not known) |
//!
//! Demographics are the customer's current attributes, not those valid at the as-of date:
//! `dim_customer` versions are stamped with load times, not business dates.

pub mod bridge;
pub mod rfm;
pub mod web;

use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions};
use crate::warehouse::{Warehouse, WriterLock, tables};

/// The feature mart as computed, with the population counts the log reports.
#[derive(Debug)]
pub struct Mart {
    pub as_of: NaiveDate,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Customers in the mart.
    pub customers: u64,
    /// Customers left out because all their lines before the as-of date are returns.
    pub returns_only: u64,
    /// Order lines without a customer (guests) before the as-of date, left out.
    pub guest_lines: u64,
}

/// Whether the mart of `ctx` has web columns: when the warehouse has web events.
pub fn has_web(ctx: &SessionContext) -> Result<bool> {
    Ok(ctx.table_exist(tables::FACT_WEB_EVENT)?)
}

/// The SQL that builds the mart as of `as_of` (see the module doc for each column), without
/// the web columns ([`with_web`] adds them). With `only` (a query giving
/// `customer_id`s), only those customers' rows: the same rows as in the whole mart, since
/// the RFM scores still rank the whole population, but the per-customer work (gaps,
/// categories, products, demographics) is done for them alone.
pub fn mart_sql(as_of: NaiveDate, only: Option<&str>) -> String {
    let cut = format!("TIMESTAMP '{as_of} 00:00:00'");
    let pick = |column: &str| {
        only.map_or(String::new(), |q| {
            // (DISTINCT: DataFusion's semi-join walks every equal key of its build side.)
            format!(" AND {column} IN (SELECT DISTINCT customer_id FROM ({q}))")
        })
    };
    let days_since = |ts: &str| {
        format!(
            "CAST((date_part('epoch', DATE '{as_of}') - date_part('epoch', date_trunc('day', {ts}))) / 86400 AS BIGINT)"
        )
    };
    let age = format!(
        "(date_part('epoch', DATE '{as_of}') - date_part('epoch', c.birth_date)) / (365.2425 * 86400)"
    );
    format!(
        "WITH lines AS (
  SELECT f.customer_id, f.invoice_no, f.invoice_ts, f.product_id, f.revenue, f.is_return,
         f.is_service, p.category
  FROM fact_sales f LEFT JOIN dim_product p ON p.product_key = f.product_key
  WHERE f.customer_id IS NOT NULL AND f.invoice_ts < {cut}
),
invoices AS (
  SELECT customer_id, invoice_no, min(invoice_ts) AS ts
  FROM lines WHERE NOT is_return GROUP BY customer_id, invoice_no
),
gaps AS (
  SELECT customer_id,
         (date_part('epoch', ts) - date_part('epoch', lag(ts) OVER (PARTITION BY customer_id ORDER BY ts, invoice_no))) / 86400.0 AS gap
  FROM invoices WHERE TRUE{pick_id}
),
gap_stats AS (
  SELECT customer_id, avg(gap) AS mean_gap, stddev_pop(gap) AS std_gap FROM gaps GROUP BY customer_id
),
cat AS (
  SELECT customer_id, category, CAST(sum(revenue) AS DOUBLE) AS rev
  FROM lines WHERE NOT is_return AND NOT is_service AND category IS NOT NULL{pick_id}
  GROUP BY customer_id, category
),
top_cat AS (
  SELECT customer_id, category,
         CASE WHEN sum(rev) OVER (PARTITION BY customer_id) > 0
              THEN rev / sum(rev) OVER (PARTITION BY customer_id) END AS share,
         row_number() OVER (PARTITION BY customer_id ORDER BY rev DESC, category) AS rn
  FROM cat
),
-- Distinct counts come from de-duplicated CTEs, not count(DISTINCT ..): DataFusion keeps a
-- hash set of values per group for each distinct aggregate, which took 4.6 GB for three of
-- them over 1M order lines (40k customers); these joins take about 100 MB.
frequency AS (
  SELECT customer_id, count(*) AS frequency FROM invoices GROUP BY customer_id
),
products AS (
  SELECT customer_id, count(product_id) AS distinct_products
  FROM (SELECT DISTINCT customer_id, product_id FROM lines WHERE NOT is_return AND NOT is_service{pick_id})
  GROUP BY customer_id
),
categories AS (
  SELECT customer_id, count(*) AS distinct_categories FROM cat GROUP BY customer_id
),
sums AS (
  SELECT customer_id,
    max(CASE WHEN NOT is_return THEN invoice_ts END) AS last_ts,
    min(CASE WHEN NOT is_return THEN invoice_ts END) AS first_ts,
    sum(revenue) AS monetary,
    sum(CASE WHEN NOT is_return THEN revenue END) AS gross,
    -sum(CASE WHEN is_return THEN revenue END) AS returned
  FROM lines GROUP BY customer_id
),
agg AS (
  SELECT s.*, coalesce(q.frequency, 0) AS frequency,
    coalesce(p.distinct_products, 0) AS distinct_products,
    coalesce(c.distinct_categories, 0) AS distinct_categories
  FROM sums s
  LEFT JOIN frequency q ON q.customer_id = s.customer_id
  LEFT JOIN products p ON p.customer_id = s.customer_id
  LEFT JOIN categories c ON c.customer_id = s.customer_id
),
base AS (
  SELECT a.customer_id, DATE '{as_of}' AS as_of,
    {recency} AS recency_days,
    a.frequency, a.monetary,
    {tenure} AS tenure_days,
    CAST(a.gross AS DOUBLE) / a.frequency AS avg_order_value,
    a.distinct_products, a.distinct_categories,
    CASE WHEN a.gross > 0 THEN CAST(coalesce(a.returned, 0) AS DOUBLE) / CAST(a.gross AS DOUBLE) END AS return_rate,
    g.mean_gap AS mean_days_between_orders, g.std_gap AS std_days_between_orders,
    CASE WHEN g.mean_gap > 0 THEN CAST({recency} AS DOUBLE) / g.mean_gap END AS overdue_ratio,
    t.category AS top_category, t.share AS top_category_share
  FROM agg a
  LEFT JOIN gap_stats g ON g.customer_id = a.customer_id
  LEFT JOIN top_cat t ON t.customer_id = a.customer_id AND t.rn = 1
  WHERE a.frequency > 0
),
scored AS (
  SELECT base.*, {scores} FROM base
)
SELECT s.*, {segment} AS rfm_segment,
  CASE WHEN c.birth_date IS NULL THEN c.age_band
       WHEN {age} < 25 THEN '<25' WHEN {age} < 35 THEN '25-34' WHEN {age} < 45 THEN '35-44'
       WHEN {age} < 55 THEN '45-54' WHEN {age} < 65 THEN '55-64' ELSE '65+' END AS age_band,
  c.country, c.acquisition_channel, c.email_opt_in, c.phone_opt_in
FROM scored s
LEFT JOIN (SELECT * FROM dim_customer WHERE is_current AND customer_id IS NOT NULL) c
  ON c.customer_id = s.customer_id
WHERE TRUE{pick_s}
ORDER BY s.customer_id",
        recency = days_since("a.last_ts"),
        tenure = days_since("a.first_ts"),
        scores = rfm::score_sql(),
        segment = rfm::segment_case_sql(),
        pick_id = pick("customer_id"),
        pick_s = pick("s.customer_id"),
    )
}

/// The default as-of date: the day after the last order line, so the mart sees all the data.
pub async fn default_as_of(ctx: &SessionContext) -> Result<NaiveDate> {
    let day = olap::day_after_last(ctx, tables::FACT_SALES, "invoice_ts").await?;
    day.ok_or_else(|| Error::NotFound {
        what: "order lines",
        name: "fact_sales".into(),
        hint: ": the table is empty; load order lines with `ecrm ingest` first".into(),
    })
}

/// What a job that rebuilds a table from the order lines starts with: the writer lock (named
/// `operation` for whoever waits), the warehouse (which must have order lines), a session
/// over it, and the as-of date (default: [`default_as_of`]).
pub async fn open_as_of(
    wh_root: &Path,
    operation: &str,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<(WriterLock, Warehouse, SessionContext, NaiveDate)> {
    let lock = WriterLock::acquire(wh_root, operation)?;
    let wh = Warehouse::open(wh_root)?;
    wh.table(tables::FACT_SALES)?;
    let ctx = olap::session(&wh, engine).await?;
    let as_of = match as_of {
        Some(d) => d,
        None => default_as_of(&ctx).await?,
    };
    Ok((lock, wh, ctx, as_of))
}

/// Computes the mart as of `as_of` (default: [`default_as_of`]) in `ctx`, which must have the
/// warehouse tables registered.
pub async fn compute(ctx: &SessionContext, as_of: Option<NaiveDate>) -> Result<Mart> {
    let as_of = match as_of {
        Some(d) => d,
        None => default_as_of(ctx).await?,
    };
    let (schema, batches) = with_web(ctx, as_of, &mart_sql(as_of, None), 0, &mut None).await?;
    let customers: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let cut = format!("TIMESTAMP '{as_of} 00:00:00'");
    let (_, counts) = olap::sql(
        ctx,
        &format!(
            "SELECT
               (SELECT count(*) FROM (SELECT customer_id FROM fact_sales
                  WHERE customer_id IS NOT NULL AND invoice_ts < {cut}
                  GROUP BY customer_id HAVING bool_and(is_return))) AS returns_only,
               (SELECT count(*) FROM fact_sales WHERE customer_id IS NULL AND invoice_ts < {cut}) AS guest_lines"
        ),
    )
    .await?;
    let count = |i: usize| {
        counts
            .first()
            .map(|b| {
                datafusion::arrow::array::cast::as_primitive_array::<
                    datafusion::arrow::datatypes::Int64Type,
                >(b.column(i))
                .value(0) as u64
            })
            .unwrap_or(0)
    };
    if customers == 0 {
        return Err(Error::NotFound {
            what: "customers with purchases before",
            name: as_of.to_string(),
            hint: ": choose a later --as-of date".into(),
        });
    }
    Ok(Mart {
        as_of,
        schema,
        batches,
        customers,
        returns_only: count(0),
        guest_lines: count(1),
    })
}

/// The mart rows as of `as_of` of the customers the query `only` gives (column
/// `customer_id`), the same as their rows in the whole mart, with the web columns from
/// `events` as [`with_web`] takes them. (Uplift training needs the rows of each campaign's
/// contacts as of the campaign's first day: a small part of the mart, on many days.)
pub async fn rows_of(
    ctx: &SessionContext,
    as_of: NaiveDate,
    only: &str,
    events: &mut Option<crate::web::stream::Stream>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    with_web(ctx, as_of, &mart_sql(as_of, Some(only)), 0, events).await
}

/// The rows of `sql` (mart rows as of `as_of`, with `customer_id`) with the web columns
/// inserted before their last `after` columns when the warehouse has web events. These come
/// from `events`: read as of `as_of` when None, else cut back to it while the query runs,
/// and left there for the next call, so that marts on several days, latest first, read the
/// events once.
pub async fn with_web(
    ctx: &SessionContext,
    as_of: NaiveDate,
    sql: &str,
    after: usize,
    events: &mut Option<crate::web::stream::Stream>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    if !has_web(ctx)? {
        return olap::sql(ctx, sql).await;
    }
    let (rows, stream) = match events.take() {
        // One after the other: both at once would hold the query's and the read's memory.
        None => {
            let rows = olap::sql(ctx, sql).await;
            (rows, web::load(ctx, as_of).await)
        }
        Some(mut stream) => {
            let (rows, cut) = tokio::join!(olap::sql(ctx, sql), stream.truncate(ctx, as_of));
            (rows, cut.map(|()| stream))
        }
    };
    let ((schema, batches), stream) = (rows?, stream?);
    let at = schema.fields().len() - after;
    let out = web::insert_from(&stream, as_of, &schema, batches, at);
    *events = Some(stream);
    out
}

/// Builds `customer_features` as of `as_of` and publishes it in one commit.
pub async fn build(
    wh_root: &Path,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<Mart> {
    let lock = WriterLock::acquire(wh_root, "features")?;
    let wh = Warehouse::open(wh_root)?;
    wh.table(tables::FACT_SALES)?;
    let ctx = olap::session(&wh, engine).await?;
    let mart = compute(&ctx, as_of).await?;
    let mut tx = wh.begin(&lock);
    let file = tx.write_arrow(tables::CUSTOMER_FEATURES, &mart.schema, &mart.batches)?;
    tx.replace(tables::CUSTOMER_FEATURES, vec![file]);
    Warehouse::commit(tx, &format!("features as of {}", mart.as_of))?;
    tracing::info!(
        as_of = %mart.as_of,
        customers = mart.customers,
        returns_only_customers_left_out = mart.returns_only,
        guest_lines_left_out = mart.guest_lines,
        "built {}",
        tables::CUSTOMER_FEATURES
    );
    Ok(mart)
}
