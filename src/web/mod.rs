//! Web activity: sessions, identity stitching, funnels and paths over the click-stream.
//!
//! - Input: `fact_web_event` (any log loaded through a `web_event` contract), and
//!   `fact_sales` when it is there (the orders purchase events carry by invoice number).
//! - `ecrm web sessions` ([`build_sessions`], parameters [`WebSessionsParams`]: `idle_minutes`,
//!   default 30) → tables `web_sessions` (one row per session: session_id, visitor_id,
//!   customer_id, start, end, date_key (of the start), duration_s, events, pages,
//!   entry_page, exit_page, channel, device, referrer, country, added_to_cart, converted,
//!   orders, revenue) and `dim_visitor` (one row per visitor: the customer it is linked to,
//!   when the link was first seen, how many customers it was seen with, first and last seen,
//!   events, sessions), in one commit. How sessions are cut and visitors stitched:
//!   [`stream`]; what a session's row holds: [`sessions`].
//! - `ecrm web funnel` ([`funnel::funnel`], parameters [`funnel::WebFunnelParams`]): entrants,
//!   conversion, drop-off and median time per step of an ordered funnel.
//! - `ecrm web paths` ([`paths::paths`], parameters [`paths::WebPathsParams`]): the most
//!   frequent paths, entry pages with bounce rates, exit pages, the next-page transitions.
//! - Everything is as of a date (default: the day after the last event): events at or after
//!   it are not seen, so a past date run again gives the same sessions.

pub mod funnel;
pub mod paths;
pub mod sessions;
pub mod stream;

use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions};
use crate::warehouse::{Warehouse, WriterLock, tables};
use stream::{Columns, Stream};

/// `ecrm web sessions`' options and a `web-sessions` stage's keys.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSessionsParams {
    /// Minutes without an event after which a visitor's next event starts a new session
    /// (for events without the log's own session id).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub idle_minutes: u32,
}

impl Default for WebSessionsParams {
    fn default() -> Self {
        Self { idle_minutes: 30 }
    }
}

impl WebSessionsParams {
    /// The idle gap is between a minute and a week.
    pub fn check(&self) -> Result<()> {
        if !(1..=7 * 24 * 60).contains(&self.idle_minutes) {
            return Err(Error::param(
                "idle_minutes",
                format!(
                    "{} is not a gap between 1 minute and a week (10080); web analytics use 30",
                    self.idle_minutes
                ),
            ));
        }
        Ok(())
    }
}

/// What `ecrm web sessions` found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionsSummary {
    pub as_of: NaiveDate,
    pub events: u64,
    pub sessions: u64,
    /// Sessions of a single event.
    pub bounces: u64,
    pub converted: u64,
    pub visitors: u64,
    /// Visitors linked to a customer by a login or a purchase.
    pub linked_visitors: u64,
}

/// The day after the last web event: the default as-of date of every web question.
pub async fn default_as_of(ctx: &SessionContext) -> Result<NaiveDate> {
    let day = olap::day_after_last(ctx, tables::FACT_WEB_EVENT, "event_ts").await?;
    day.ok_or_else(|| Error::NotFound {
        what: "web events",
        name: tables::FACT_WEB_EVENT.into(),
        hint: ": the table is empty; load a click-stream with a web_event contract first".into(),
    })
}

/// A session over a warehouse that must have web events, and the as-of date.
pub async fn open(
    wh: &Warehouse,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<(SessionContext, NaiveDate)> {
    wh.table(tables::FACT_WEB_EVENT)?;
    let ctx = olap::session(wh, engine).await?;
    let as_of = match as_of {
        Some(d) => d,
        None => default_as_of(&ctx).await?,
    };
    Ok((ctx, as_of))
}

/// Sessionises the events before `as_of` (default: the day after the last one) and replaces
/// tables `web_sessions` and `dim_visitor` in one commit.
pub async fn build_sessions(
    wh_root: &Path,
    params: &WebSessionsParams,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<SessionsSummary> {
    params.check()?;
    let lock = WriterLock::acquire(wh_root, "web sessions")?;
    let wh = Warehouse::open(wh_root)?;
    let (ctx, as_of) = open(&wh, as_of, engine).await?;
    let clock = std::time::Instant::now();
    let lap = |step: &str| {
        tracing::debug!(
            step,
            ms = clock.elapsed().as_millis() as u64,
            "web sessions"
        );
    };
    let mut stream: Stream =
        Stream::load(&ctx, as_of, params.idle_minutes, Columns::ALL, None, ()).await?;
    lap("events read and cut");
    let links = stream.links();
    let rows = sessions::summaries(&stream, &links);
    lap("sessions summed");
    let (vschema, visitors) = sessions::visitor_batch(&stream, &links)?;
    // The rows hold what is left to write: make room for them.
    stream.free_events();
    lap("visitor rows");
    let (schema, batch) = sessions::session_batch(&stream, &rows)?;
    drop((rows, links, stream));
    lap("session rows");
    let (batches, visitors) = (vec![batch], vec![visitors]);
    let summary = summarise(as_of, &batches, &visitors)?;
    let mut tx = wh.begin(&lock);
    let f = tx.write_arrow(tables::WEB_SESSIONS, &schema, &batches)?;
    tx.replace(tables::WEB_SESSIONS, vec![f]);
    let f = tx.write_arrow(tables::DIM_VISITOR, &vschema, &visitors)?;
    tx.replace(tables::DIM_VISITOR, vec![f]);
    Warehouse::commit(
        tx,
        &format!(
            "{} web sessions of {} events as of {as_of}",
            summary.sessions, summary.events
        ),
    )?;
    lap("written");
    Ok(summary)
}

/// Counts from the session and visitor rows.
fn summarise(
    as_of: NaiveDate,
    sessions: &[RecordBatch],
    visitors: &[RecordBatch],
) -> Result<SessionsSummary> {
    let mut s = SessionsSummary {
        as_of,
        events: 0,
        sessions: 0,
        bounces: 0,
        converted: 0,
        visitors: 0,
        linked_visitors: 0,
    };
    for b in sessions {
        let events = column(b, "events")?.as_primitive::<Int64Type>();
        let converted = column(b, "converted")?.as_boolean();
        s.sessions += b.num_rows() as u64;
        for i in 0..b.num_rows() {
            let n = events.value(i) as u64;
            s.events += n;
            s.bounces += u64::from(n == 1);
            s.converted += u64::from(converted.is_valid(i) && converted.value(i));
        }
    }
    for b in visitors {
        let customer = column(b, "customer_id")?;
        s.visitors += b.num_rows() as u64;
        s.linked_visitors += (customer.len() - customer.null_count()) as u64;
    }
    Ok(s)
}

/// A column of a result by name (the SQL above names them).
fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a std::sync::Arc<dyn Array>> {
    b.column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("the web query lost column {name}")))
}
