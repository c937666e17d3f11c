//! Sessions and visitors as rows: what each session of a [`Stream`] adds up to (the columns
//! of `web_sessions`) and each visitor (`dim_visitor`).
//!
//! - A session's customer is the one its own events name, else that of its invoices, else
//!   its visitor's (stitched, [`Stream::links`]); of several, the largest id (as SQL's MAX).
//! - Entry and exit page, channel, device, referrer and country are those of its first (last)
//!   event, NULL when that event has none.
//! - Revenue: the net revenue of the orders (`fact_sales`) whose invoices the session's
//!   events carry; for logs without orders, the prices of its purchase events.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rayon::prelude::*;

use super::stream::{Link, Map, NO_MONEY, NONE, Session, Stream};
use crate::error::Result;

/// Event types that show a page (counted as `pages`).
pub const PAGE_TYPES: [&str; 2] = ["page_view", "product_view"];

/// The event types a session's row looks for, as numbers of the stream's strings.
struct Types {
    pages: [u32; 2],
    add_to_cart: u32,
    purchase: u32,
}

impl Types {
    fn of(stream: &Stream) -> Types {
        let find = |t: &str| stream.strings.find(t);
        Types {
            pages: PAGE_TYPES.map(find),
            add_to_cart: find("add_to_cart"),
            purchase: find("purchase"),
        }
    }
}

/// What one session adds up to; strings as numbers of the stream's.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Its index in the stream's sessions.
    pub session: usize,
    pub visitor: u32,
    pub customer: u32,
    /// First and last event (microseconds).
    pub start: i64,
    pub end: i64,
    pub events: u32,
    pub pages: u32,
    pub entry_page: u32,
    pub exit_page: u32,
    pub channel: u32,
    pub device: u32,
    pub referrer: u32,
    pub country: u32,
    pub added_to_cart: bool,
    pub converted: bool,
    /// Known orders whose invoices its events carry.
    pub orders: u32,
    /// Thousandths.
    pub revenue: i64,
}

/// Every session's summary, in the order of `stream.sessions`.
pub fn summaries(stream: &Stream, links: &Map<u32, Link>) -> Vec<Summary> {
    let types = Types::of(stream);
    stream
        .sessions
        .iter()
        .enumerate()
        .map(|(k, s)| summary(stream, k, s, &types, links))
        .collect()
}

fn summary(stream: &Stream, k: usize, s: &Session, t: &Types, links: &Map<u32, Link>) -> Summary {
    let events = stream.events_of(s);
    let (first, last) = (events[0], events[events.len() - 1]);
    let (mut visitor, mut own) = (NONE, NONE);
    let (mut pages, mut added_to_cart, mut purchased) = (0, false, false);
    let mut value: Option<i64> = None;
    let mut invoices: Vec<u32> = Vec::new();
    for e in events {
        visitor = stream.max_text(visitor, e.visitor);
        own = stream.max_text(own, e.customer);
        pages += u32::from(t.pages.contains(&e.event_type) && e.event_type != NONE);
        added_to_cart |= e.event_type == t.add_to_cart && e.event_type != NONE;
        let purchase = e.event_type == t.purchase && e.event_type != NONE;
        purchased |= purchase || e.invoice != NONE;
        if purchase && e.price != NO_MONEY {
            value = Some(value.unwrap_or(0) + e.price);
        }
        if stream.invoices.contains_key(&e.invoice) && !invoices.contains(&e.invoice) {
            invoices.push(e.invoice);
        }
    }
    let (mut sales_customer, mut sales) = (NONE, None::<i64>);
    for i in &invoices {
        let inv = stream.invoices[i];
        sales_customer = stream.max_text(sales_customer, inv.customer);
        if inv.revenue != NO_MONEY {
            sales = Some(sales.unwrap_or(0) + inv.revenue);
        }
    }
    let linked = links.get(&visitor).map_or(NONE, |l| l.customer);
    let customer = [own, sales_customer, linked]
        .into_iter()
        .find(|&c| c != NONE)
        .unwrap_or(NONE);
    Summary {
        session: k,
        visitor,
        customer,
        start: first.ts,
        end: last.ts,
        events: events.len() as u32,
        pages,
        entry_page: first.page,
        exit_page: last.page,
        channel: first.channel,
        device: first.device,
        referrer: first.referrer,
        country: first.country,
        added_to_cart,
        converted: purchased || !invoices.is_empty(),
        orders: invoices.len() as u32,
        revenue: sales.or(value).unwrap_or(0),
    }
}

/// The day of a time in microseconds, as `yyyymmdd`.
fn date_key(us: i64) -> i32 {
    use chrono::Datelike;
    let d = chrono::DateTime::from_timestamp_micros(us).map(|t| t.date_naive());
    d.map_or(0, |d| {
        d.year() * 10000 + d.month() as i32 * 100 + d.day() as i32
    })
}

/// A time column of microseconds.
fn times(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values))
}

/// A text column of numbered strings.
fn texts(stream: &Stream, ids: impl Iterator<Item = u32>) -> ArrayRef {
    Arc::new(StringArray::from_iter(ids.map(|i| stream.strings.text(i))))
}

fn time_field(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, None), true)
}

/// The positions of `rows` by start and session id.
fn by_start_and_id(stream: &Stream, rows: &[Summary]) -> Vec<u32> {
    let id = |r: &Summary| stream.session_id(stream.sessions[r.session].id);
    // By start and the first 8 bytes of the id on a compact array (built in the stream's
    // order, where a visitor's sessions sit together), then the few ties by the whole id.
    let mut text = String::new();
    let mut order: Vec<(i64, u64, u32)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            stream.write_session_id(stream.sessions[r.session].id, &mut text);
            let mut prefix = [0u8; 8];
            let n = text.len().min(8);
            prefix[..n].copy_from_slice(&text.as_bytes()[..n]);
            (r.start, u64::from_be_bytes(prefix), i as u32)
        })
        .collect();
    order.par_sort_unstable();
    let mut i = 0;
    while i < order.len() {
        let same = |o: &&(i64, u64, u32)| (o.0, o.1) == (order[i].0, order[i].1);
        let j = i + order[i..].iter().take_while(same).count();
        if j - i > 1 {
            let mut tied: Vec<_> = order[i..j]
                .iter()
                .map(|&(_, _, k)| (id(&rows[k as usize]), k))
                .collect();
            tied.sort_unstable();
            for (o, (_, k)) in order[i..j].iter_mut().zip(tied) {
                o.2 = k;
            }
        }
        i = j;
    }
    order.into_iter().map(|(_, _, k)| k).collect()
}

/// The columns of `web_sessions`.
fn session_schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int64, false);
    let flag = |n: &str| Field::new(n, DataType::Boolean, false);
    Arc::new(Schema::new(vec![
        Field::new("session_id", DataType::Utf8, false),
        text("visitor_id"),
        text("customer_id"),
        time_field("start"),
        time_field("end"),
        Field::new("date_key", DataType::Int32, false),
        int("duration_s"),
        int("events"),
        int("pages"),
        text("entry_page"),
        text("exit_page"),
        text("channel"),
        text("device"),
        text("referrer"),
        text("country"),
        flag("added_to_cart"),
        flag("converted"),
        int("orders"),
        Field::new("revenue", DataType::Decimal128(18, 3), false),
    ]))
}

/// The rows of `web_sessions`, by start and session id.
pub fn session_batch(stream: &Stream, rows: &[Summary]) -> Result<(SchemaRef, RecordBatch)> {
    let order = by_start_and_id(stream, rows);
    let rows: Vec<&Summary> = order.iter().map(|&k| &rows[k as usize]).collect();
    let rows = &rows;
    let text = |f: fn(&Summary) -> u32| texts(stream, rows.iter().map(|r| f(r)));
    let int = |f: fn(&Summary) -> i64| {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef
    };
    let flag = |f: fn(&Summary) -> bool| {
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(f(r))))) as ArrayRef
    };
    // Each column on its own thread: most of the time goes to looking up strings.
    type Column<'a> = Box<dyn Fn() -> Result<ArrayRef> + Send + Sync + 'a>;
    let columns: Vec<Column> =
        vec![
            Box::new(|| {
                let mut ids = StringBuilder::with_capacity(rows.len(), rows.len() * 20);
                let mut text = String::new();
                for r in rows.iter() {
                    stream.write_session_id(stream.sessions[r.session].id, &mut text);
                    ids.append_value(&text);
                }
                Ok(Arc::new(ids.finish()) as ArrayRef)
            }),
            Box::new(|| Ok(text(|s| s.visitor))),
            Box::new(|| Ok(text(|s| s.customer))),
            Box::new(|| Ok(times(rows.iter().map(|r| Some(r.start)).collect()))),
            Box::new(|| Ok(times(rows.iter().map(|r| Some(r.end)).collect()))),
            Box::new(|| {
                Ok(Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|r| date_key(r.start)),
                )) as ArrayRef)
            }),
            Box::new(|| Ok(int(|s| (s.end - s.start) / 1_000_000))),
            Box::new(|| Ok(int(|s| i64::from(s.events)))),
            Box::new(|| Ok(int(|s| i64::from(s.pages)))),
            Box::new(|| Ok(text(|s| s.entry_page))),
            Box::new(|| Ok(text(|s| s.exit_page))),
            Box::new(|| Ok(text(|s| s.channel))),
            Box::new(|| Ok(text(|s| s.device))),
            Box::new(|| Ok(text(|s| s.referrer))),
            Box::new(|| Ok(text(|s| s.country))),
            Box::new(|| Ok(flag(|s| s.added_to_cart))),
            Box::new(|| Ok(flag(|s| s.converted))),
            Box::new(|| Ok(int(|s| i64::from(s.orders)))),
            Box::new(|| {
                let revenue = rows.iter().map(|r| i128::from(r.revenue));
                Ok(Arc::new(
                    Decimal128Array::from_iter_values(revenue).with_precision_and_scale(18, 3)?,
                ) as ArrayRef)
            }),
        ];
    let columns = columns
        .par_iter()
        .map(|f| f())
        .collect::<Result<Vec<_>>>()?;
    let schema = session_schema();
    Ok((schema.clone(), RecordBatch::try_new(schema, columns)?))
}

/// One visitor's events and sessions.
struct Seen {
    first: i64,
    last: i64,
    events: i64,
    sessions: i64,
    /// The last session counted (a session counts once however many events it has).
    last_session: usize,
}

/// The rows of `dim_visitor`, by visitor id: the customer a visitor is linked to, when the
/// link was first seen, how many customers it was seen with, first and last seen, events,
/// sessions.
pub fn visitor_batch(stream: &Stream, links: &Map<u32, Link>) -> Result<(SchemaRef, RecordBatch)> {
    let mut seen: Map<u32, Seen> = Map::default();
    for (k, s) in stream.sessions.iter().enumerate() {
        for e in stream.events_of(s).iter().filter(|e| e.visitor != NONE) {
            let v = seen.entry(e.visitor).or_insert(Seen {
                first: e.ts,
                last: e.ts,
                events: 0,
                sessions: 0,
                last_session: usize::MAX,
            });
            v.first = v.first.min(e.ts);
            v.last = v.last.max(e.ts);
            v.events += 1;
            if v.last_session != k {
                v.sessions += 1;
                v.last_session = k;
            }
        }
    }
    let mut visitors: Vec<(&str, u32)> = seen
        .keys()
        .map(|&v| (stream.strings.text(v).unwrap_or_default(), v))
        .collect();
    visitors.sort_unstable();
    let link = |v: u32| links.get(&v);
    let int = |f: &dyn Fn(u32) -> i64| {
        Arc::new(Int64Array::from_iter_values(
            visitors.iter().map(|&(_, v)| f(v)),
        )) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(visitors.iter().map(|v| v.0))),
        texts(
            stream,
            visitors
                .iter()
                .map(|&(_, v)| link(v).map_or(NONE, |l| l.customer)),
        ),
        times(
            visitors
                .iter()
                .map(|&(_, v)| link(v).map(|l| l.at))
                .collect(),
        ),
        int(&|v| link(v).map_or(0, |l| l.seen.len() as i64)),
        times(
            visitors
                .iter()
                .map(|&(_, v)| Some(seen[&v].first))
                .collect(),
        ),
        times(visitors.iter().map(|&(_, v)| Some(seen[&v].last)).collect()),
        int(&|v| seen[&v].events),
        int(&|v| seen[&v].sessions),
    ];
    let int = |n: &str| Field::new(n, DataType::Int64, false);
    let schema = Arc::new(Schema::new(vec![
        Field::new("visitor_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, true),
        time_field("linked_at"),
        int("customers_linked"),
        time_field("first_seen"),
        time_field("last_seen"),
        int("events"),
        int("sessions"),
    ]));
    Ok((schema.clone(), RecordBatch::try_new(schema, columns)?))
}
