//! Consent over time: whether a customer may be contacted on a channel at a given moment.
//!
//! - Events: every row of `fact_consent` (granted or withdrawn, at its timestamp), and the
//!   customer file's opt-in flags (`dim_customer`'s `email_opt_in`, `phone_opt_in`): the
//!   first version's flags hold from the beginning, and a later version's flag is an event at
//!   its load when it differs from the version before (a file that only restates a flag does
//!   not undo a withdrawal made in between).
//! - A customer's consent on a channel at time t is the latest event at or before t (an
//!   explicit event wins a tie with a file's flag); with none, there is no consent. So a
//!   withdrawal is honoured from its timestamp on, also when a past as-of date is run again.
//! - [`consent_sql`] writes the consent of every customer at t (or now) as SQL, with columns
//!   `customer_id` and one boolean per channel (`email`, `phone`, `sms`, `post`; NULL: no event,
//!   no consent); exports apply it ([`crate::export`]).
//! - `ecrm consent` ([`summary`]): per month, the customers with consent on each channel at
//!   the month's end, grants and withdrawals in the month; and the treatment contacts made
//!   without consent on their channel at the time (which must be none for contacts ecrm
//!   exported). It always runs on the local engine, whatever the caller's: its month series
//!   (UNNEST of generate_series) is a plan Ballista's executors reject.

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::olap::{self, EngineOptions};
use crate::warehouse::{Warehouse, tables};

/// The channels consent is kept for.
pub const CHANNELS: [&str; 4] = ["email", "phone", "sms", "post"];

/// Every consent event as SQL (customer_id, channel, ts, granted, explicit), from the
/// tables `ctx` has. Text is cast to one string type, so the union's parts agree whatever
/// type each table's column was read as.
fn events_sql(has_events: bool) -> String {
    let file = "WITH versions AS (
    SELECT customer_id, customer_key, valid_from, email_opt_in, phone_opt_in,
      ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY valid_from NULLS FIRST, customer_key) AS v,
      LAG(email_opt_in) OVER (PARTITION BY customer_id ORDER BY valid_from NULLS FIRST, customer_key) AS prev_email,
      LAG(phone_opt_in) OVER (PARTITION BY customer_id ORDER BY valid_from NULLS FIRST, customer_key) AS prev_phone
    FROM dim_customer WHERE customer_key > 0 AND customer_id IS NOT NULL
  )";
    let first = "CASE WHEN v = 1 THEN TIMESTAMP '1900-01-01 00:00:00' ELSE valid_from END";
    let mut parts = vec![
        format!(
            "SELECT arrow_cast(customer_id, 'Utf8') AS customer_id, arrow_cast('email', 'Utf8') AS channel, {first} AS ts, email_opt_in AS granted, 0 AS explicit
    FROM versions WHERE email_opt_in IS NOT NULL AND (v = 1 OR email_opt_in IS DISTINCT FROM prev_email)"
        ),
        format!(
            "SELECT arrow_cast(customer_id, 'Utf8'), arrow_cast('phone', 'Utf8'), {first}, phone_opt_in, 0
    FROM versions WHERE phone_opt_in IS NOT NULL AND (v = 1 OR phone_opt_in IS DISTINCT FROM prev_phone)"
        ),
    ];
    if has_events {
        parts.push(format!(
            "SELECT arrow_cast(customer_id, 'Utf8'), arrow_cast(channel, 'Utf8'), event_ts, status = 'granted', 1 FROM {}",
            tables::FACT_CONSENT
        ));
    }
    format!("{file}\n  {}", parts.join("\n  UNION ALL\n  "))
}

/// Every customer's consent per channel at `at` (a timestamp literal's text, e.g.
/// `2024-06-01 00:00:00`; None: now, every event counted).
pub fn consent_sql(has_events: bool, at: Option<&str>) -> String {
    let cut = at.map_or(String::new(), |t| format!("WHERE ts <= TIMESTAMP '{t}'"));
    let per_channel: Vec<String> = CHANNELS
        .iter()
        .map(|c| format!("bool_or(CASE WHEN channel = '{c}' THEN granted END) AS {c}"))
        .collect();
    format!(
        "SELECT customer_id, {} FROM (
  SELECT customer_id, channel, granted,
    ROW_NUMBER() OVER (PARTITION BY customer_id, channel ORDER BY ts DESC, explicit DESC) AS r
  FROM ({}) AS events {cut}
) AS latest WHERE r = 1 GROUP BY customer_id",
        per_channel.join(", "),
        events_sql(has_events)
    )
}

/// `ecrm consent`'s tables: consent by month, and the contacts made without consent.
pub struct Summary {
    /// month_start, channel, customers with consent at the month's end (`with_consent`),
    /// grants and withdrawals in the month.
    pub by_month: RecordBatch,
    /// campaign_id, customer_id, contact_ts, channel, consent at the time (NULL: none).
    pub contacted_without_consent: RecordBatch,
}

/// Consent by month up to `as_of` (exclusive; default: the warehouse's as-of date), and the
/// treatment contacts before it whose channel had no consent at their time. Runs on the
/// local engine (see the module doc) with `engine`'s other bounds.
pub async fn summary(
    wh: &Warehouse,
    engine: &EngineOptions,
    as_of: Option<NaiveDate>,
) -> Result<Summary> {
    let ctx = olap::session(wh, &engine.local()).await?;
    let as_of = match as_of {
        Some(d) => d,
        None => crate::features::default_as_of(&ctx).await?,
    };
    summary_at(&ctx, as_of).await
}

/// [`summary`] in a local session.
async fn summary_at(ctx: &SessionContext, as_of: NaiveDate) -> Result<Summary> {
    let has_events = ctx.table_exist(tables::FACT_CONSENT)?;
    let events = events_sql(has_events);
    let cut = format!("TIMESTAMP '{as_of} 00:00:00'");
    // Month ends from the first explicit event (or contact) to the as-of date: consent is
    // counted at each, as of the last moment of the month.
    let start = if has_events {
        format!("(SELECT min(event_ts) FROM {})", tables::FACT_CONSENT)
    } else {
        cut.clone()
    };
    // Each event holds from its time until the customer's next one on the channel (ties: as
    // `consent_sql` breaks them, the explicit event last), so the consent at a moment is
    // the one span that holds then: found by a join, where joining to every event before
    // the moment and ranking them took 50 s at 400k customers.
    let held = format!(
        "WITH events AS ({events}),
held AS (
  SELECT customer_id, channel, granted, ts,
    LEAD(ts) OVER (PARTITION BY customer_id, channel ORDER BY ts, explicit) AS next_ts
  FROM events WHERE ts IS NOT NULL
)"
    );
    // An event from the as-of date on is never the latest at a month's end, so one that
    // follows another counts as none. The span holding at a month's end is then the one
    // whose month is not later and whose successor's month is later: spans are counted by
    // month pair, then over the months.
    let by_month = format!(
        "{held},
months AS (
  SELECT date_trunc('month', m) AS month
  FROM unnest(generate_series(date_trunc('month', {start}), date_trunc('month', {cut} - INTERVAL '1 day'), INTERVAL '1 month')) AS t(m)
),
spans AS (
  SELECT channel, granted, date_trunc('month', ts) AS first_month,
    date_trunc('month', CASE WHEN next_ts < {cut} THEN next_ts END) AS end_month, count(*) AS n
  FROM held WHERE ts < {cut} GROUP BY 1, 2, 3, 4
),
latest AS (
  SELECT m.month, s.channel, sum(CASE WHEN s.granted THEN s.n ELSE 0 END) AS with_consent
  FROM months m JOIN spans s
    ON s.first_month <= m.month AND (s.end_month IS NULL OR s.end_month > m.month)
  GROUP BY 1, 2
),
moves AS (
  SELECT date_trunc('month', ts) AS month, channel,
    count(*) FILTER (WHERE granted) AS grants, count(*) FILTER (WHERE NOT granted) AS withdrawals
  FROM events WHERE explicit = 1 AND ts < {cut} GROUP BY 1, 2
)
SELECT CAST(l.month AS DATE) AS month_start, l.channel,
  CAST(l.with_consent AS BIGINT) AS with_consent,
  CAST(COALESCE(m.grants, 0) AS BIGINT) AS grants,
  CAST(COALESCE(m.withdrawals, 0) AS BIGINT) AS withdrawals
FROM latest l LEFT JOIN moves m ON m.month = l.month AND m.channel = l.channel
ORDER BY month_start, l.channel"
    );
    let (schema, batches) = olap::sql(ctx, &by_month).await?;
    let by_month = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
    // At most one span holds at a contact's time (at or after its start, before its end);
    // DISTINCT: a contact listed twice is one contact.
    let contacts = format!(
        "{held},
c AS (
  SELECT campaign_id, customer_id, contact_ts, COALESCE(channel, 'email') AS channel
  FROM {} WHERE arm = 'treatment' AND contact_ts < {cut}
)
SELECT DISTINCT c.campaign_id, c.customer_id, c.contact_ts, c.channel, h.granted AS consent_at_contact
FROM c LEFT JOIN held h ON h.customer_id = c.customer_id AND h.channel = c.channel
  AND h.ts <= c.contact_ts AND (h.next_ts IS NULL OR h.next_ts > c.contact_ts)
WHERE h.granted IS NOT TRUE
ORDER BY c.contact_ts, c.campaign_id, c.customer_id",
        tables::FACT_CAMPAIGN_CONTACT
    );
    let contacted_without_consent = if ctx.table_exist(tables::FACT_CAMPAIGN_CONTACT)? {
        let (schema, batches) = olap::sql(ctx, &contacts).await?;
        datafusion::arrow::compute::concat_batches(&schema, &batches)?
    } else {
        RecordBatch::new_empty(std::sync::Arc::new(
            datafusion::arrow::datatypes::Schema::empty(),
        ))
    };
    Ok(Summary {
        by_month,
        contacted_without_consent,
    })
}
