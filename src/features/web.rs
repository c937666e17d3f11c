//! The mart's web columns (see the module doc of [`super`] for each), added to the rows the
//! mart's SQL gives: each customer's sessions as [`crate::web::stream`] cuts and stitches
//! the events before the as-of date, summed in this process and matched by customer id (so
//! the mart's SQL stays one query that a cluster can run).

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::olap;
use crate::web::WebSessionsParams;
use crate::web::sessions::{self, Summary};
use crate::web::stream::{Columns, Map, NONE, Stream, midnight};

/// One customer's sessions before the as-of date, summed.
#[derive(Default)]
struct Activity {
    sessions_30d: i64,
    sessions_90d: i64,
    page_views_30d: i64,
    page_views_90d: i64,
    sessions: i64,
    pages: i64,
    carts: i64,
    abandoned: i64,
    converted: i64,
    /// The last session: its start and index (the channel is its).
    last: Option<(i64, usize)>,
}

/// Days since the epoch of a time in microseconds.
fn day(us: i64) -> i64 {
    us.div_euclid(86_400_000_000)
}

/// The events the web columns are summed from, as of `as_of` (for [`insert_from`]).
pub async fn load(ctx: &SessionContext, as_of: NaiveDate) -> Result<Stream> {
    let idle = WebSessionsParams::default().idle_minutes;
    // A session's customer, start, pages, cart, conversion and channel.
    let columns = Columns {
        event_type: true,
        channel: true,
        invoices: true,
        ..Columns::BARE
    };
    Stream::load(ctx, as_of, idle, columns, None, ()).await
}

/// Inserts the web columns at position `at` of the mart rows `batches` (which have
/// `customer_id`) as of `as_of`, from the events of `stream`, which [`load`] read as of
/// `as_of` (or [`Stream::truncate`] cut back to it).
pub fn insert_from(
    stream: &Stream,
    as_of: NaiveDate,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    at: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let links = stream.links();
    let rows = sessions::summaries(stream, &links);
    let activity = per_customer(stream, &rows, as_of);
    let last_channel = |a: &Activity| a.last.map_or(NONE, |(_, k)| rows[k].channel);
    let as_of_day = day(midnight(as_of));
    let id = schema.index_of("customer_id")?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let int = |n: &str| Field::new(n, DataType::Int64, false);
    let float = |n: &str| Field::new(n, DataType::Float64, true);
    let web = [
        int("web_sessions_30d"),
        int("web_sessions_90d"),
        int("web_page_views_30d"),
        int("web_page_views_90d"),
        Field::new("days_since_last_visit", DataType::Int64, true),
        float("pages_per_session"),
        float("cart_abandonment_rate"),
        float("visit_to_purchase_rate"),
        Field::new("last_channel", DataType::Utf8, true),
    ];
    fields.splice(at..at, web);
    let out_schema = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let ids = olap::text_column(b.column(id))?;
        let found: Vec<Option<&Activity>> = (0..b.num_rows())
            .map(|i| {
                let c = stream.strings.find(ids.value(i));
                (ids.is_valid(i) && c != NONE)
                    .then(|| activity.get(&c))
                    .flatten()
            })
            .collect();
        let count = |f: &dyn Fn(&Activity) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                found.iter().map(|a| a.map_or(0, f)),
            ))
        };
        let ratio = |f: &dyn Fn(&Activity) -> (i64, i64)| -> ArrayRef {
            let r = |a: &Activity| {
                let (n, d) = f(a);
                (d > 0).then(|| n as f64 / d as f64)
            };
            Arc::new(Float64Array::from_iter(found.iter().map(|a| a.and_then(r))))
        };
        let web: Vec<ArrayRef> = vec![
            count(&|a| a.sessions_30d),
            count(&|a| a.sessions_90d),
            count(&|a| a.page_views_30d),
            count(&|a| a.page_views_90d),
            Arc::new(Int64Array::from_iter(found.iter().map(|a| {
                a.and_then(|a| a.last)
                    .map(|(start, _)| as_of_day - day(start))
            }))),
            ratio(&|a| (a.pages, a.sessions)),
            ratio(&|a| (a.abandoned, a.carts)),
            ratio(&|a| (a.converted, a.sessions)),
            Arc::new(StringArray::from_iter(
                found
                    .iter()
                    .map(|a| a.and_then(|a| stream.strings.text(last_channel(a)))),
            )),
        ];
        let mut columns = b.columns().to_vec();
        columns.splice(at..at, web);
        out.push(RecordBatch::try_new(out_schema.clone(), columns)?);
    }
    Ok((out_schema, out))
}

/// Each customer's activity, by the customer's string number.
fn per_customer(stream: &Stream, rows: &[Summary], as_of: NaiveDate) -> Map<u32, Activity> {
    let since = |days: i64| midnight(as_of - Duration::days(days));
    let (d30, d90) = (since(30), since(90));
    let mut activity: Map<u32, Activity> = Map::default();
    for (k, s) in rows.iter().enumerate().filter(|(_, s)| s.customer != NONE) {
        let a = activity.entry(s.customer).or_default();
        let (in30, in90) = (i64::from(s.start >= d30), i64::from(s.start >= d90));
        a.sessions_30d += in30;
        a.sessions_90d += in90;
        a.page_views_30d += in30 * i64::from(s.pages);
        a.page_views_90d += in90 * i64::from(s.pages);
        a.sessions += 1;
        a.pages += i64::from(s.pages);
        a.carts += i64::from(s.added_to_cart);
        a.abandoned += i64::from(s.added_to_cart && !s.converted);
        a.converted += i64::from(s.converted);
        // The last session by start, then by session id (as the session table orders them).
        let id = |k: usize| stream.session_id(stream.sessions[k].id);
        let later = a
            .last
            .is_none_or(|(start, j)| s.start > start || (s.start == start && id(k) > id(j)));
        if later {
            a.last = Some((s.start, k));
        }
    }
    activity
}
