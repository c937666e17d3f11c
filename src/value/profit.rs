//! Customer profitability: what each customer brought in and cost, and the whale curve.
//!
//! - Input: `fact_sales` lines with a customer before the as-of date (default: the day after
//!   the last line), `dim_product` (unit costs), `fact_campaign_contact` (contacts before the
//!   as-of date).
//! - Output: table `customer_profit`, one row per customer with a line or a contact:
//!   `revenue` (net: returns deducted, services included), `goods_revenue`, `returns`
//!   (returned revenue, positive), `service_revenue`, `cost_of_goods` (per goods line its own
//!   cost, else the product's `unit_cost` × quantity, returns giving cost back; NULL when a
//!   goods line has neither, never taken as 0), `lines_without_cost`, `contacts`,
//!   `contact_cost`, `gross_profit` (revenue − cost of goods − contact cost; NULL with the
//!   cost of goods), `profit_rank` (1 = most profitable), `cumulative_profit_share` (the
//!   whale curve: the share of the total profit made by the customers ranked so far) and
//!   `profit_decile` (1 = the most profitable tenth); customers with an unknown profit rank
//!   after the others and have no share or decile.
//! - Parameters ([`ProfitParams`]): contact costs per channel (`email=0.05`); channels not
//!   named cost nothing, and the summary says how many contacts that was.
//!
//! Money stays decimal in SQL, so the table's totals reconcile to `fact_sales` exactly.

use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::features;
use crate::olap::{self, EngineOptions, sqltext};
use crate::warehouse::{Warehouse, tables};

/// `ecrm profit`'s options and a `profit` stage's keys.
#[derive(Debug, Clone, PartialEq, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfitParams {
    /// A campaign contact's cost on a channel, e.g. email=0.05 (repeat per channel).
    #[arg(long = "contact-cost", value_name = "CHANNEL=AMOUNT")]
    pub contact_cost: Vec<String>,
}

impl ProfitParams {
    /// The (channel, amount) pairs, checked: a channel once, an amount of at most 6 decimals
    /// ≥ 0 (kept as text, so it stays exact in SQL).
    pub fn check(&self) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in &self.contact_cost {
            let bad = |why: &str| Error::param("contact_cost", format!("{pair:?}: {why}"));
            let (channel, amount) = pair
                .split_once('=')
                .ok_or_else(|| bad("expected CHANNEL=AMOUNT, e.g. email=0.05"))?;
            let (channel, amount) = (channel.trim(), amount.trim());
            let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
            let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
            if channel.is_empty()
                || whole.is_empty()
                || whole.len() > 12
                || fraction.len() > 6
                || !digits(whole)
                || !digits(fraction)
            {
                return Err(bad(
                    "expected a channel and an amount ≥ 0 with at most 6 decimals",
                ));
            }
            if out.iter().any(|(c, _)| c.eq_ignore_ascii_case(channel)) {
                return Err(bad("this channel is given twice"));
            }
            out.push((channel.to_string(), amount.to_string()));
        }
        Ok(out)
    }
}

/// The statement building the table (see the module doc).
fn profit_sql(as_of: NaiveDate, costs: &[(String, String)], has_contacts: bool) -> String {
    let cut = format!("TIMESTAMP '{as_of} 00:00:00'");
    let cost_case = if costs.is_empty() {
        "CAST(0 AS DECIMAL(18, 6))".to_string()
    } else {
        let whens: Vec<String> = costs
            .iter()
            .map(|(c, a)| {
                format!(
                    "WHEN lower(channel) = lower({}) THEN CAST({} AS DECIMAL(18, 6))",
                    sqltext::literal(c),
                    sqltext::literal(a)
                )
            })
            .collect();
        format!(
            "CASE {} ELSE CAST(0 AS DECIMAL(18, 6)) END",
            whens.join(" ")
        )
    };
    // A warehouse that never loaded contacts has no contact table: nobody was contacted.
    let contacts = if has_contacts {
        format!(
            "SELECT customer_id, CAST(count(*) AS BIGINT) AS contacts, sum({cost_case}) AS contact_cost
  FROM fact_campaign_contact WHERE customer_id IS NOT NULL AND contact_ts < {cut}
  GROUP BY customer_id"
        )
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS customer_id, CAST(0 AS BIGINT) AS contacts,
  CAST(0 AS DECIMAL(18, 6)) AS contact_cost WHERE false"
            .to_string()
    };
    format!(
        "WITH lines AS (
  SELECT f.customer_id, f.revenue, f.is_return, f.is_service,
         coalesce(f.cost, p.unit_cost * f.quantity) AS line_cost
  FROM fact_sales f LEFT JOIN dim_product p ON p.product_key = f.product_key
  WHERE f.customer_id IS NOT NULL AND f.invoice_ts < {cut}
),
sales AS (
  SELECT customer_id, sum(revenue) AS revenue,
    sum(CASE WHEN NOT is_service THEN revenue END) AS goods_revenue,
    -sum(CASE WHEN is_return THEN revenue END) AS returns,
    sum(CASE WHEN is_service THEN revenue END) AS service_revenue,
    sum(CASE WHEN NOT is_service THEN line_cost END) AS known_cost,
    CAST(count(CASE WHEN NOT is_service AND line_cost IS NULL THEN 1 END) AS BIGINT) AS lines_without_cost
  FROM lines GROUP BY customer_id
),
contacts AS ({contacts}),
joined AS (
  SELECT coalesce(s.customer_id, c.customer_id) AS customer_id,
    coalesce(s.revenue, 0) AS revenue, coalesce(s.goods_revenue, 0) AS goods_revenue,
    coalesce(s.returns, 0) AS returns, coalesce(s.service_revenue, 0) AS service_revenue,
    CASE WHEN coalesce(s.lines_without_cost, 0) = 0 THEN coalesce(s.known_cost, 0) END AS cost_of_goods,
    coalesce(s.lines_without_cost, 0) AS lines_without_cost,
    coalesce(c.contacts, 0) AS contacts, coalesce(c.contact_cost, 0) AS contact_cost
  FROM sales s FULL JOIN contacts c ON c.customer_id = s.customer_id
),
profits AS (
  SELECT *, revenue - cost_of_goods - contact_cost AS gross_profit FROM joined
),
ranked AS (
  SELECT *, row_number() OVER (ORDER BY gross_profit DESC NULLS LAST, customer_id) AS profit_rank
  FROM profits
)
SELECT customer_id, revenue, goods_revenue, returns, service_revenue, cost_of_goods,
  lines_without_cost, contacts, contact_cost, gross_profit, CAST(profit_rank AS BIGINT) AS profit_rank,
  CASE WHEN gross_profit IS NOT NULL THEN
    CAST(sum(gross_profit) OVER (ORDER BY profit_rank ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS DOUBLE)
    / CAST(sum(gross_profit) OVER () AS DOUBLE) END AS cumulative_profit_share,
  CASE WHEN gross_profit IS NOT NULL THEN
    CAST((profit_rank - 1) * 10 / count(gross_profit) OVER () + 1 AS BIGINT) END AS profit_decile
FROM ranked ORDER BY profit_rank"
    )
}

/// What `ecrm profit` reports besides the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub as_of: NaiveDate,
    pub customers: usize,
    /// Customers whose cost of goods is unknown, and their goods lines without a cost.
    pub unknown_cost: usize,
    pub lines_without_cost: i64,
    /// Contacts on a channel without a `--contact-cost`, which cost nothing here.
    pub uncosted_contacts: i64,
    /// The whale curve's peak: the highest cumulative share of profit, and the share of the
    /// customers with a known profit who make it.
    pub peak_share: Option<f64>,
    pub peak_at: Option<f64>,
}

/// Builds `customer_profit` as of `as_of` in `ctx`; returns its rows and the summary.
pub async fn compute(
    ctx: &SessionContext,
    params: &ProfitParams,
    as_of: NaiveDate,
) -> Result<(RecordBatch, Summary)> {
    let costs = params.check()?;
    let has_contacts = ctx.table_exist(tables::FACT_CAMPAIGN_CONTACT)?;
    let uncosted_contacts = if has_contacts {
        uncosted(ctx, as_of, &costs).await?
    } else {
        0
    };
    let (schema, batches) = olap::sql(ctx, &profit_sql(as_of, &costs, has_contacts)).await?;
    let batch = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
    let at = |name: &str| batch.column(schema.index_of(name).expect("a column"));
    let share = at("cumulative_profit_share").as_primitive::<Float64Type>();
    let missing = at("lines_without_cost").as_primitive::<Int64Type>();
    let known = share.len() - share.null_count();
    let peak = (0..share.len())
        .filter(|&i| share.is_valid(i))
        .max_by(|&a, &b| share.value(a).total_cmp(&share.value(b)));
    let summary = Summary {
        as_of,
        customers: batch.num_rows(),
        unknown_cost: (0..missing.len()).filter(|&i| missing.value(i) > 0).count(),
        uncosted_contacts,
        lines_without_cost: (0..missing.len()).map(|i| missing.value(i)).sum(),
        peak_share: peak.map(|i| share.value(i)),
        peak_at: peak.map(|i| (i + 1) as f64 / known as f64),
    };
    debug_assert!(matches!(
        at("revenue").data_type(),
        DataType::Decimal128(..)
    ));
    Ok((batch, summary))
}

/// Contacts before `as_of` on a channel `costs` does not name.
async fn uncosted(
    ctx: &SessionContext,
    as_of: NaiveDate,
    costs: &[(String, String)],
) -> Result<i64> {
    let named: Vec<String> = costs
        .iter()
        .map(|(c, _)| format!("lower({})", sqltext::literal(c)))
        .collect();
    let costed = if named.is_empty() {
        "false".to_string()
    } else {
        format!("coalesce(lower(channel) IN ({}), false)", named.join(", "))
    };
    let (_, b) = olap::sql(
        ctx,
        &format!(
            "SELECT CAST(count(*) AS BIGINT) FROM fact_campaign_contact
             WHERE customer_id IS NOT NULL AND contact_ts < TIMESTAMP '{as_of} 00:00:00'
               AND NOT {costed}"
        ),
    )
    .await?;
    Ok(b.first()
        .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0)))
}

/// Builds `customer_profit` (see [`compute`]) and replaces the table with it; returns the
/// whale curve by decile and the summary.
pub async fn build(
    wh_root: &Path,
    params: &ProfitParams,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<(RecordBatch, Summary)> {
    params.check()?;
    let (lock, wh, ctx, as_of) = features::open_as_of(wh_root, "profit", as_of, engine).await?;
    let (batch, summary) = compute(&ctx, params, as_of).await?;
    let mut tx = wh.begin(&lock);
    tx.replace_with(tables::CUSTOMER_PROFIT, &batch)?;
    let wh = Warehouse::commit(tx, &format!("customer profit as of {as_of}"))?;
    let ctx = olap::session(&wh, engine).await?;
    let (schema, deciles) = olap::sql(&ctx, DECILES).await?;
    let deciles = datafusion::arrow::compute::concat_batches(&schema, &deciles)?;
    Ok((deciles, summary))
}

/// The whale curve by decile (and the customers of unknown profit as a last row).
const DECILES: &str = "SELECT profit_decile, CAST(count(*) AS BIGINT) AS customers,
  sum(revenue) AS revenue, sum(cost_of_goods) AS cost_of_goods, sum(contact_cost) AS contact_cost,
  sum(gross_profit) AS gross_profit, max(cumulative_profit_share) AS cumulative_profit_share
FROM customer_profit GROUP BY profit_decile ORDER BY profit_decile NULLS LAST";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_costs_are_checked_by_name() {
        let p = |v: &[&str]| ProfitParams {
            contact_cost: v.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            p(&["email=0.05", "phone = 1.2"]).check().unwrap(),
            vec![
                ("email".into(), "0.05".into()),
                ("phone".into(), "1.2".into())
            ]
        );
        for bad in [
            &["email"][..],
            &["email=-1"],
            &["=1"],
            &["email=1e3"],
            &["email=1", "EMAIL=2"],
        ] {
            assert_eq!(
                crate::error::param_key(p(bad).check()),
                "contact_cost",
                "{bad:?}"
            );
        }
    }
}
