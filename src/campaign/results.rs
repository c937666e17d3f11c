//! What each campaign in the warehouse caused, against its control arm.
//!
//! - Inputs: `fact_campaign_contact` (each contact's arm, cost and response), `dim_campaign`
//!   (cost per contact, fixed cost, response window; optional), `fact_sales`; for `--by`,
//!   `dim_customer` (the version the contact was booked to), `segments`, `customer_features`
//!   or `customer_value`.
//! - Outcomes per contact, from `fact_sales` by customer and time, whether or not a response
//!   was recorded: whether the customer bought (a sales line, not a return) in the window after
//!   the contact, and the net revenue of their lines in it (returns subtract). The window is
//!   `--window-days`, else the campaign's `response_window_days`, else 14 days. Contacts
//!   whose window has not ended by the as-of date are counted (`window_open`) and left out:
//!   their outcomes are not known yet.
//! - Output: table `campaign_results`, one row per campaign (and per member of `--by`):
//!   treatment contacts and held-out control customers; responses with Wilson's interval;
//!   buyers and revenue in both arms; cost (the treatment contacts' own cost, else the
//!   campaign's cost per contact; control contacts are never sent and cost nothing; the fixed
//!   cost shared among a campaign's members by their treatment contacts) and ROI =
//!   (revenue − cost) / cost; and against the control arm the difference of buyer rates
//!   (Newcombe's interval), their ratio (Katz's), the difference of revenue per customer
//!   (Welch's interval) with both p-values, incremental buyers and revenue (difference × the
//!   treatment contacts) and incremental ROI = (incremental revenue − cost) / cost.
//!   A campaign without control contacts reports its rates, `measurable` false and a note
//!   that its effect cannot be measured; its effect columns are NULL, never a lift.
//! - Parameters ([`CampaignReportParams`]): `campaign` (default: all), `by`, `window_days`,
//!   `confidence` (0.95).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::prelude::SessionContext;

use super::evaluate::{Comparison, Kind, comparison};
use super::stats::{self, Moments};
use crate::error::{Error, Result};
use crate::olap::{self, sqltext::literal};
use crate::warehouse::tables;

/// The response window when neither the options nor the campaign give one.
pub const DEFAULT_WINDOW_DAYS: u32 = 14;

crate::choices! {
    /// What `--by` splits a campaign's contacts by.
    pub enum ReportBy {
        /// The customer's country (the version the contact was booked to).
        Country = "country",
        /// The customer's age band (the extract's).
        AgeBand = "age_band",
        /// How the customer was acquired.
        AcquisitionChannel = "acquisition_channel",
        /// The contact's own channel (e-mail, phone, …).
        Channel = "channel",
        /// The customer's segment from the last `ecrm segment`.
        Segment = "segment",
        /// The customer's RFM segment in the feature mart (`ecrm features`).
        RfmSegment = "rfm_segment",
        /// The customer's value decile (`ecrm clv score`).
        ValueDecile = "value_decile",
    }
}

/// `ecrm campaign report`'s options and a `campaign-report` stage's keys.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignReportParams {
    /// One campaign (its id). Default: every campaign.
    #[arg(long, value_name = "ID")]
    pub campaign: Option<String>,
    /// Split the results: a level (country, age_band, acquisition_channel, channel, segment,
    /// rfm_segment, value_decile) on the warehouse, a column with --input.
    #[arg(long, value_name = "LEVEL|COL")]
    pub by: Option<String>,
    /// Days after a contact in which purchases count. Default: the campaign's response
    /// window, else 14.
    #[arg(long, value_name = "N")]
    pub window_days: Option<u32>,
    /// Confidence level of every interval (two-sided).
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
}

impl Default for CampaignReportParams {
    fn default() -> Self {
        Self {
            campaign: None,
            by: None,
            window_days: None,
            confidence: 0.95,
        }
    }
}

impl CampaignReportParams {
    /// Checks the confidence level and the window.
    pub fn check(&self) -> Result<()> {
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(Error::param(
                "confidence",
                format!(
                    "{} is not a level between 0.5 and 1 (e.g. 0.95)",
                    self.confidence
                ),
            ));
        }
        if self.window_days == Some(0) {
            return Err(Error::param(
                "window_days",
                "a window of 0 days holds nothing",
            ));
        }
        Ok(())
    }

    /// `by` as a warehouse level.
    pub fn level(&self) -> Result<Option<ReportBy>> {
        self.by
            .as_deref()
            .map(|b| {
                b.parse::<ReportBy>().map_err(|_| {
                    let all: Vec<&str> = ReportBy::ALL.iter().map(|l| l.name()).collect();
                    Error::param(
                        "by",
                        format!("{b:?} is no level; levels: {}", all.join(", ")),
                    )
                })
            })
            .transpose()
    }
}

/// One (campaign, member, arm)'s contacts, reduced in SQL.
#[derive(Debug, Clone, Default)]
struct Arm {
    contacts: u64,
    responded: u64,
    buyers: u64,
    revenue: Moments,
    cost: f64,
}

/// One campaign (and member): its name and fixed cost, its arms, the contacts left out.
#[derive(Debug, Clone, Default)]
struct Group {
    name: Option<String>,
    fixed_cost: f64,
    treatment: Arm,
    control: Arm,
    window_open: u64,
}

/// The member expression of a level and the join it needs, checking the table is there.
fn member_sql(ctx: &SessionContext, by: Option<ReportBy>) -> Result<(String, String)> {
    let need = |table: &str, command: &str| -> Result<()> {
        if ctx.table_exist(table)? {
            return Ok(());
        }
        Err(Error::param(
            "by",
            format!("needs table {table}, which `{command}` writes; run it first"),
        ))
    };
    let customer = "LEFT JOIN dim_customer d ON d.customer_key = c.customer_key";
    Ok(match by {
        None => ("CAST(NULL AS VARCHAR)".into(), String::new()),
        Some(ReportBy::Country) => ("COALESCE(d.country, '(unknown)')".into(), customer.into()),
        Some(ReportBy::AgeBand) => ("COALESCE(d.age_band, '(unknown)')".into(), customer.into()),
        Some(ReportBy::AcquisitionChannel) => (
            "COALESCE(d.acquisition_channel, '(unknown)')".into(),
            customer.into(),
        ),
        Some(ReportBy::Channel) => ("COALESCE(c.channel, '(unknown)')".into(), String::new()),
        Some(ReportBy::Segment) => {
            need(tables::SEGMENTS, "ecrm segment")?;
            (
                "COALESCE(g.segment_name, '(unsegmented)')".into(),
                "LEFT JOIN segments g ON g.customer_id = c.customer_id".into(),
            )
        }
        Some(ReportBy::RfmSegment) => {
            need(tables::CUSTOMER_FEATURES, "ecrm features")?;
            (
                "COALESCE(f.rfm_segment, '(not in the mart)')".into(),
                "LEFT JOIN customer_features f ON f.customer_id = c.customer_id".into(),
            )
        }
        Some(ReportBy::ValueDecile) => {
            need(tables::CUSTOMER_VALUE, "ecrm clv score")?;
            (
                "COALESCE(CAST(v.value_decile AS VARCHAR), '(unscored)')".into(),
                "LEFT JOIN customer_value v ON v.customer_id = c.customer_id".into(),
            )
        }
    })
}

/// The SQL reducing contacts to (campaign, member, arm) moments as of `as_of`. Money stays
/// decimal until the sums are taken, so they are exact and the same however the query is
/// partitioned (a sum of doubles is not: its last bits depend on the order).
fn contacts_sql(
    params: &CampaignReportParams,
    member: &str,
    join: &str,
    campaigns: bool,
    as_of: NaiveDate,
) -> String {
    let window = match params.window_days {
        Some(n) => n.to_string(),
        None if campaigns => format!("COALESCE(k.response_window_days, {DEFAULT_WINDOW_DAYS})"),
        None => DEFAULT_WINDOW_DAYS.to_string(),
    };
    let (campaign_join, name, per_contact, fixed) = if campaigns {
        (
            "LEFT JOIN dim_campaign k ON k.campaign_id = c.campaign_id",
            "k.name",
            "k.cost_per_contact",
            "CAST(COALESCE(k.fixed_cost, 0) AS DOUBLE)",
        )
    } else {
        (
            "",
            "CAST(NULL AS VARCHAR)",
            "CAST(NULL AS DECIMAL(18, 3))",
            "0.0",
        )
    };
    let only = params.campaign.as_deref().map_or(String::new(), |id| {
        format!("AND c.campaign_id = {}", literal(id))
    });
    let cut = format!("TIMESTAMP '{as_of} 00:00:00'");
    format!(
        "WITH c AS (
  SELECT c.campaign_id, {name} AS name, {fixed} AS fixed_cost, {member} AS member, c.arm,
    c.customer_id, c.contact_ts, COALESCE(c.responded, false) AS responded,
    CASE WHEN c.arm = 'control' THEN CAST(0 AS DECIMAL(18, 3))
         ELSE CAST(COALESCE(c.cost, {per_contact}, 0) AS DECIMAL(18, 3)) END AS cost,
    c.contact_ts + arrow_cast(CAST({window} AS BIGINT) * 86400000000, 'Duration(Microsecond)') AS window_end
  FROM fact_campaign_contact c
  {campaign_join}
  {join}
  WHERE c.contact_ts < {cut} {only}
),
o AS (
  SELECT c.campaign_id, c.name, c.fixed_cost, c.member, c.arm, c.customer_id, c.contact_ts,
    c.responded, c.cost, c.window_end,
    COALESCE(SUM(s.revenue), CAST(0 AS DECIMAL(18, 3))) AS revenue,
    COUNT(CASE WHEN NOT s.is_return THEN 1 END) > 0 AS bought
  FROM c
  LEFT JOIN fact_sales s ON s.customer_id = c.customer_id
    AND s.invoice_ts > c.contact_ts AND s.invoice_ts <= c.window_end
  WHERE c.window_end < {cut}
  GROUP BY c.campaign_id, c.name, c.fixed_cost, c.member, c.arm, c.customer_id, c.contact_ts,
    c.responded, c.cost, c.window_end
)
SELECT campaign_id, max(name), max(fixed_cost), member, arm, CAST(count(*) AS BIGINT),
  CAST(count(CASE WHEN responded THEN 1 END) AS BIGINT),
  CAST(count(CASE WHEN bought THEN 1 END) AS BIGINT),
  CAST(sum(revenue) AS DOUBLE), CAST(sum(revenue * revenue) AS DOUBLE),
  CAST(sum(cost) AS DOUBLE), CAST(0 AS BIGINT)
FROM o GROUP BY campaign_id, member, arm
UNION ALL
SELECT campaign_id, max(name), max(fixed_cost), member, arm, CAST(0 AS BIGINT), CAST(0 AS BIGINT),
  CAST(0 AS BIGINT), 0.0, 0.0, 0.0, CAST(count(*) AS BIGINT)
FROM c WHERE window_end >= {cut} GROUP BY campaign_id, member, arm
ORDER BY 1, 4, 5"
    )
}

/// Reads the reduced rows into groups by (campaign, member).
fn gather(batches: &[RecordBatch]) -> Result<BTreeMap<(String, Option<String>), Group>> {
    let mut groups: BTreeMap<(String, Option<String>), Group> = BTreeMap::new();
    for b in batches {
        let text = |i: usize| olap::text_column(b.column(i));
        let (ids, names, members, arms) = (text(0)?, text(1)?, text(3)?, text(4)?);
        let int = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let float = |i: usize| b.column(i).as_primitive::<Float64Type>().clone();
        let (fixed, n, responded, buyers) = (float(2), int(5), int(6), int(7));
        let (sum, squares, cost, open) = (float(8), float(9), float(10), int(11));
        for r in 0..b.num_rows() {
            let member = members.is_valid(r).then(|| members.value(r).to_string());
            let g = groups
                .entry((ids.value(r).to_string(), member))
                .or_default();
            if names.is_valid(r) {
                g.name = Some(names.value(r).to_string());
            }
            g.fixed_cost = fixed.value(r);
            g.window_open += open.value(r) as u64;
            let arm = if arms.value(r) == "control" {
                &mut g.control
            } else {
                &mut g.treatment
            };
            arm.contacts += n.value(r) as u64;
            arm.responded += responded.value(r) as u64;
            arm.buyers += buyers.value(r) as u64;
            arm.revenue.n += n.value(r) as u64;
            arm.revenue.sum += sum.value(r);
            arm.revenue.sum_squares += squares.value(r);
            arm.cost += cost.value(r);
        }
    }
    Ok(groups)
}

/// One campaign's (and member's) results.
#[derive(Debug, Clone)]
struct Row {
    campaign_id: String,
    member: Option<String>,
    name: Option<String>,
    group: Group,
    response: Option<stats::Interval>,
    buyers: Comparison,
    revenue: Comparison,
    cost: f64,
}

impl Row {
    fn measurable(&self) -> bool {
        self.group.control.contacts > 0 && self.group.treatment.contacts > 0
    }

    /// (revenue − cost) / cost (None without a cost).
    fn roi(&self, revenue: Option<f64>) -> Option<f64> {
        (self.cost > 0.0)
            .then_some(())
            .and(revenue)
            .map(|r| (r - self.cost) / self.cost)
    }

    fn note(&self) -> Option<String> {
        let g = &self.group;
        if g.treatment.contacts == 0 {
            return Some("no treatment contacts with a complete window".into());
        }
        if g.control.contacts == 0 {
            return Some("no control arm: the effect cannot be measured".into());
        }
        (g.window_open > 0).then(|| {
            format!(
                "{} contacts left out: their window ends after the as-of date",
                g.window_open
            )
        })
    }
}

/// The results of every (campaign, member) group.
fn rows(groups: BTreeMap<(String, Option<String>), Group>, confidence: f64) -> Vec<Row> {
    let mut treated_per_campaign: BTreeMap<String, u64> = BTreeMap::new();
    for ((id, _), g) in &groups {
        *treated_per_campaign.entry(id.clone()).or_default() += g.treatment.contacts;
    }
    groups
        .into_iter()
        .map(|((campaign_id, member), group)| {
            let (t, c) = (&group.treatment, &group.control);
            let binary = |a: &Arm| Moments {
                n: a.contacts,
                sum: a.buyers as f64,
                sum_squares: a.buyers as f64,
            };
            let compare = |outcome: &str, kind, treated, control| {
                comparison(
                    member.clone(),
                    "treatment",
                    outcome,
                    kind,
                    treated,
                    control,
                    confidence,
                )
            };
            let mut buyers = compare("buyers", Kind::Rate, binary(t), binary(c));
            let mut revenue = compare("revenue", Kind::Amount, t.revenue, c.revenue);
            if c.contacts == 0 {
                // Without a control arm nothing is compared: no lift, ever.
                for x in [&mut buyers, &mut revenue] {
                    x.difference = None;
                    x.difference_interval = None;
                    x.welch = None;
                    x.ratio = None;
                    x.p_value = None;
                    x.incremental = None;
                }
            }
            let share = match treated_per_campaign[&campaign_id] {
                0 => 0.0,
                all => t.contacts as f64 / all as f64,
            };
            Row {
                name: group.name.clone(),
                response: stats::wilson(t.responded, t.contacts, confidence),
                cost: t.cost + group.fixed_cost * share,
                campaign_id,
                member,
                group,
                buyers,
                revenue,
            }
        })
        .collect()
}

/// Computes the results as of `as_of` in `ctx` (the warehouse's tables registered).
pub async fn compute(
    ctx: &SessionContext,
    params: &CampaignReportParams,
    as_of: NaiveDate,
) -> Result<RecordBatch> {
    params.check()?;
    let by = params.level()?;
    if !ctx.table_exist(tables::FACT_CAMPAIGN_CONTACT)? {
        return Err(Error::NotFound {
            what: "table",
            name: tables::FACT_CAMPAIGN_CONTACT.into(),
            hint: " (load campaign contacts first: a campaign_contact source in the contract)"
                .into(),
        });
    }
    let (member, join) = member_sql(ctx, by)?;
    let campaigns = ctx.table_exist(tables::DIM_CAMPAIGN)?;
    let sql = contacts_sql(params, &member, &join, campaigns, as_of);
    let (_, batches) = olap::sql(ctx, &sql).await?;
    let groups = gather(&batches)?;
    if let Some(id) = &params.campaign
        && groups.is_empty()
    {
        return Err(Error::param(
            "campaign",
            format!("no contacts of campaign {id:?} before {as_of}"),
        ));
    }
    to_batch(&rows(groups, params.confidence), by)
}

/// The results as table `campaign_results` (see the module doc for the columns).
fn to_batch(rows: &[Row], by: Option<ReportBy>) -> Result<RecordBatch> {
    let mut fields = vec![Field::new("campaign_id", DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.campaign_id.as_str()),
    ))];
    if let Some(b) = by {
        fields.push(Field::new(b.name(), DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.member.as_deref()),
        )));
    }
    fields.push(Field::new("name", DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| r.name.as_deref()),
    )));
    type Count = fn(&Row) -> u64;
    let counts: [(&str, Count); 6] = [
        ("contacted", |r| r.group.treatment.contacts),
        ("held_out", |r| r.group.control.contacts),
        ("window_open", |r| r.group.window_open),
        ("responded", |r| r.group.treatment.responded),
        ("buyers", |r| r.group.treatment.buyers),
        ("control_buyers", |r| r.group.control.buyers),
    ];
    for (name, get) in counts {
        fields.push(Field::new(name, DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| get(r) as i64),
        )));
    }
    type Get = fn(&Row) -> Option<f64>;
    let numbers: [(&str, Get); 27] = [
        ("response_rate", |r| r.response.map(|i| i.estimate)),
        ("response_rate_low", |r| r.response.map(|i| i.low)),
        ("response_rate_high", |r| r.response.map(|i| i.high)),
        ("buyer_rate", |r| r.buyers.treated.mean()),
        ("buyer_rate_low", |r| r.buyers.treated_rate.map(|i| i.low)),
        ("buyer_rate_high", |r| r.buyers.treated_rate.map(|i| i.high)),
        ("control_buyer_rate", |r| r.buyers.control.mean()),
        ("revenue", |r| Some(r.revenue.treated.sum)),
        ("revenue_per_customer", |r| r.revenue.treated.mean()),
        ("control_revenue_per_customer", |r| r.revenue.control.mean()),
        ("cost", |r| Some(r.cost)),
        ("roi", |r| r.roi(Some(r.revenue.treated.sum))),
        ("buyer_rate_difference", |r| r.buyers.difference),
        ("buyer_rate_difference_low", |r| {
            r.buyers.difference_interval.map(|i| i.low)
        }),
        ("buyer_rate_difference_high", |r| {
            r.buyers.difference_interval.map(|i| i.high)
        }),
        ("buyer_rate_ratio", |r| r.buyers.ratio.map(|i| i.estimate)),
        ("buyer_rate_ratio_low", |r| r.buyers.ratio.map(|i| i.low)),
        ("buyer_rate_ratio_high", |r| r.buyers.ratio.map(|i| i.high)),
        ("buyer_p_value", |r| r.buyers.p_value),
        ("revenue_difference", |r| r.revenue.difference),
        ("revenue_difference_low", |r| {
            r.revenue.difference_interval.map(|i| i.low)
        }),
        ("revenue_difference_high", |r| {
            r.revenue.difference_interval.map(|i| i.high)
        }),
        ("revenue_p_value", |r| r.revenue.p_value),
        ("incremental_buyers", |r| r.buyers.incremental),
        ("incremental_revenue", |r| r.revenue.incremental),
        ("incremental_roi", |r| r.roi(r.revenue.incremental)),
        ("cost_per_incremental_buyer", |r| {
            r.buyers
                .incremental
                .filter(|b| *b > 0.0)
                .map(|b| r.cost / b)
        }),
    ];
    for (name, get) in numbers {
        fields.push(Field::new(name, DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from_iter(rows.iter().map(get))));
    }
    fields.push(Field::new("measurable", DataType::Boolean, false));
    columns.push(Arc::new(BooleanArray::from_iter(
        rows.iter().map(|r| Some(r.measurable())),
    )));
    fields.push(Field::new("note", DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from_iter(rows.iter().map(Row::note))));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Computes the results as of `as_of` (default: the day after the last order line) and
/// replaces table `campaign_results` with them.
pub async fn build(
    wh_root: &std::path::Path,
    params: &CampaignReportParams,
    as_of: Option<NaiveDate>,
    engine: &olap::EngineOptions,
) -> Result<(RecordBatch, NaiveDate)> {
    params.check()?;
    let (lock, wh, ctx, as_of) =
        crate::features::open_as_of(wh_root, "campaign report", as_of, engine).await?;
    let batch = compute(&ctx, params, as_of).await?;
    let mut tx = wh.begin(&lock);
    tx.replace_with(tables::CAMPAIGN_RESULTS, &batch)?;
    crate::warehouse::Warehouse::commit(tx, &format!("campaign results as of {as_of}"))?;
    Ok((batch, as_of))
}
