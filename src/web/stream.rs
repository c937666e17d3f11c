//! The click-stream in memory, cut into sessions and stitched: the one definition of a
//! session that every web question and the mart's web columns read.
//!
//! - Input: `fact_web_event` before the as-of date (one scan, which may run on a cluster),
//!   and the orders of `fact_sales` that purchase events name by invoice number.
//! - Order: a session's events in time, then by their `sequence` (a log that gives a click
//!   order but no time of day), then as they came (load, record).
//! - A log's own session ids are kept. Events without one are cut into sessions per visitor
//!   (else per customer): a gap of more than `idle_minutes` starts a new one, whose id is the
//!   visitor's id, `#` and its number (`v17#3`). An event with neither a session nor a
//!   visitor nor a customer is a session of its own (`record LOAD:RECORD`).
//! - Stitching ([`Stream::links`]): a visitor is linked to the customer of the first event
//!   that names both (a login), or of the first purchase event whose invoice is a known order
//!   of a customer (a tie in time goes to the smaller customer id); the link holds for all
//!   their sessions, before and after.
//!
//! - How: each partition of the scan is read on its own thread, numbering strings on its
//!   own; the numbers are then made one, and the events kept in [`PARTS`] parts by group
//!   (the part from the group's text, so the same in every reader), each part put in order
//!   and cut on its own, on every core.
//!
//! Why not SQL: sessionising is a sort per visitor and one pass; as window functions over 10M
//! events DataFusion took 69 s and 9.7 GB (DuckDB 33-41 s), mostly copying strings. Here each
//! distinct string is stored once and an event is 80 bytes of numbers (10M events: 0.8 GB;
//! the whole stream is held, so memory grows with the events read), or less where a question
//! keeps a smaller [`Record`] of each (the funnel: 48 bytes).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringViewArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type, TimeUnit};
use datafusion::prelude::SessionContext;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::olap;
use crate::warehouse::tables;

/// No string (SQL's NULL).
pub const NONE: u32 = u32::MAX;

/// A price or revenue that is NULL.
pub const NO_MONEY: i64 = i64::MIN;

/// The hasher of the web questions' tables (fast on short keys; no untrusted keys to resist).
type Hasher = foldhash::fast::FixedState;

/// A hash map with that hasher.
pub type Map<K, V> = HashMap<K, V, Hasher>;

/// Every distinct string of the events, stored once (one longer than 16 bytes twice: its
/// key and its text); events hold their numbers.
///
/// A string of up to 16 bytes is found by its bytes as a number ([`short_key`]), with no
/// text to follow: ids, event types and most pages are that short, and following a
/// pointer to each candidate's text cost a cache miss per lookup (10M events: a fifth of
/// the read).
#[derive(Default)]
pub struct Strings {
    short: HashMap<(u128, u8), u32, Hasher>,
    long: HashMap<Box<str>, u32, Hasher>,
    /// The texts one after another: string `k` ends at `ends[k]`.
    arena: String,
    ends: Vec<usize>,
    /// The part ([`PARTS`]) of the events of each string's group, from its text: the same
    /// in every reader.
    parts: Vec<u8>,
    /// Recent short strings ([`Strings::views`]): their key, length and number.
    recent: Vec<(u128, u32, u32)>,
}

/// Slots of [`Strings::recent`] (a power of two; 1.5 MB, within a core's cache): on 10M
/// synth events it answers all but 1.8M of 20M lookups (4096 slots: all but 3.7M).
const RECENT: usize = 1 << 16;

/// A string of up to 16 bytes as a number: its bytes, zero-padded, little-endian (with its
/// length, unique).
fn short_key(s: &str) -> Option<u128> {
    let mut bytes = [0; 16];
    bytes.get_mut(..s.len())?.copy_from_slice(s.as_bytes());
    Some(u128::from_le_bytes(bytes))
}

impl Strings {
    /// The number of `s`, adding it when new.
    pub fn id(&mut self, s: &str) -> u32 {
        match short_key(s) {
            Some(key) => self.short_id(key, s.len() as u8, || s),
            None => match self.long.get(s) {
                Some(&id) => id,
                None => {
                    let id = self.insert(s);
                    self.long.insert(s.into(), id);
                    id
                }
            },
        }
    }

    /// The number of the short string with key `key` and length `len`; `text` gives its
    /// text when it is new.
    fn short_id<'a>(&mut self, key: u128, len: u8, text: impl FnOnce() -> &'a str) -> u32 {
        if let Some(&id) = self.short.get(&(key, len)) {
            return id;
        }
        let id = self.insert(text());
        self.short.insert((key, len), id);
        id
    }

    /// Adds a new string's text (not yet in either map), returning its number.
    fn insert(&mut self, s: &str) -> u32 {
        let id = self.ends.len() as u32;
        let hash = std::hash::BuildHasher::hash_one(&Hasher::default(), s);
        self.parts.push((hash % PARTS as u64) as u8);
        self.arena.push_str(s);
        self.ends.push(self.arena.len());
        id
    }

    /// How many strings there are.
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The number of `s`, or [`NONE`] when no event has it.
    pub fn find(&self, s: &str) -> u32 {
        let id = match short_key(s) {
            Some(key) => self.short.get(&(key, s.len() as u8)),
            None => self.long.get(s),
        };
        id.copied().unwrap_or(NONE)
    }

    /// The text of `id` (None for [`NONE`]).
    pub fn text(&self, id: u32) -> Option<&str> {
        (id != NONE).then(|| {
            let k = id as usize;
            let start = if k == 0 { 0 } else { self.ends[k - 1] };
            &self.arena[start..self.ends[k]]
        })
    }

    /// Numbers the values of a text column, NULL as [`NONE`].
    /// None: all NULL (a column not read), without a vector to write and read back.
    fn column(&mut self, col: &dyn Array) -> Result<Option<Vec<u32>>> {
        if col.null_count() == col.len() {
            return Ok(None);
        }
        Ok(Some(match col.data_type() {
            DataType::Utf8View => self.views(col.as_string_view()),
            DataType::Utf8 => self.numbered(col.as_string::<i32>().iter()),
            DataType::LargeUtf8 => self.numbered(col.as_string::<i64>().iter()),
            _ => self.numbered(olap::text_column(col)?.iter()),
        }))
    }

    /// Numbers the values of a string view column. A string of up to 16 bytes is a number
    /// (a short one's view holds it whole), by which a small cache of recent strings answers
    /// most rows before the table: a visitor's clicks come close together.
    fn views(&mut self, a: &StringViewArray) -> Vec<u32> {
        if self.recent.is_empty() {
            self.recent = vec![(0, u32::MAX, NONE); RECENT];
        }
        let views = a.views();
        (0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    return NONE;
                }
                let (view, len) = (views[i], views[i] as u32);
                let key = match len {
                    // The view: the length, then the bytes, zero-padded.
                    0..=12 => view >> 32,
                    13..=16 => short_key(a.value(i)).unwrap_or_default(),
                    _ => return self.id(a.value(i)),
                };
                let mix = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let slot = (mix >> (64 - RECENT.trailing_zeros())) as usize;
                match self.recent[slot] {
                    (k, l, id) if k == key && l == len => id,
                    _ => {
                        let id = self.short_id(key, len as u8, || a.value(i));
                        self.recent[slot] = (key, len, id);
                        id
                    }
                }
            })
            .collect()
    }

    fn numbered<'a>(&mut self, values: impl Iterator<Item = Option<&'a str>>) -> Vec<u32> {
        values.map(|v| v.map_or(NONE, |s| self.id(s))).collect()
    }
}

/// Which of the events' columns a question reads (the others are left NULL, unread).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Columns {
    /// `event_type`.
    pub event_type: bool,
    /// `page` (else `product_id`).
    pub page: bool,
    pub category: bool,
    pub channel: bool,
    /// `device`, `referrer`, `country`.
    pub details: bool,
    /// `invoice_no`, `price`, the orders the invoices name, and the customer of every event:
    /// what stitching visitors to customers needs. Without it, an event's customer is read
    /// only when it has no visitor (then it is whom the event is cut into sessions by; the
    /// funnel over 10M synth events reads 5.3M fewer).
    pub invoices: bool,
}

impl Columns {
    /// Every column: a session's whole row.
    pub const ALL: Columns = Columns {
        event_type: true,
        page: true,
        category: true,
        channel: true,
        details: true,
        invoices: true,
    };
    /// Only what cuts sessions (time, order, session, visitor, customer).
    pub const BARE: Columns = Columns {
        event_type: false,
        page: false,
        category: false,
        channel: false,
        details: false,
        invoices: false,
    };

    /// The load query's select list, in [`read_batch`]'s order.
    fn select(&self, extra: &str) -> String {
        let text = |on: bool, c: &str| {
            if on {
                c.to_string()
            } else {
                "arrow_cast(NULL, 'Utf8')".to_string()
            }
        };
        [
            "event_ts".to_string(),
            "CAST(sequence AS BIGINT)".into(),
            "CAST(load_id AS BIGINT)".into(),
            "CAST(record AS BIGINT)".into(),
            if self.invoices {
                "CAST(price AS DECIMAL(18,3))".into()
            } else {
                "CAST(NULL AS DECIMAL(18,3))".into()
            },
            extra.to_string(),
            "session_id".into(),
            "visitor_id".into(),
            if self.invoices {
                "customer_id".into()
            } else {
                "CASE WHEN visitor_id IS NULL THEN customer_id END".into()
            },
            text(self.event_type, "event_type"),
            text(self.page, "COALESCE(page, product_id)"),
            text(self.category, "category"),
            text(self.channel, "channel"),
            text(self.details, "device"),
            text(self.details, "referrer"),
            text(self.details, "country"),
            text(self.invoices, "invoice_no"),
        ]
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// One event, its strings as numbers of [`Strings`].
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// Microseconds since the epoch.
    pub ts: i64,
    /// The log's click order; `i64::MAX` without one (after those with one).
    pub seq: i64,
    /// Where it came from: its load in the high 24 bits, its record in the low 40 (so
    /// ordered by load, then record).
    pub arrival: u64,
    /// Thousandths; [`NO_MONEY`] without a price.
    pub price: i64,
    /// The caller's extra column (a funnel's step mask; its low 32 bits); 0 without one.
    pub extra: u32,
    pub session: u32,
    pub visitor: u32,
    pub customer: u32,
    pub event_type: u32,
    /// The page, else the product viewed.
    pub page: u32,
    pub category: u32,
    pub channel: u32,
    pub device: u32,
    pub referrer: u32,
    pub country: u32,
    pub invoice: u32,
}

/// What a [`Stream`] keeps of each event: the whole [`Event`], or a question's smaller
/// record made from it, with less memory to write, put in order and read (the funnel's
/// is 48 bytes, the whole event 80).
pub trait Record: Copy + Send + Sync + 'static {
    /// What making one needs besides the event (the funnel: which column `--by` reads).
    type With: Clone + Send + Sync + 'static;

    /// The record of event `e`.
    fn make(e: &Event, with: &Self::With) -> Self;

    /// Its time, click order and arrival (as [`Event`]'s `ts`, `seq` and `arrival`).
    fn order(&self) -> (i64, i64, u64);

    /// Its log session, visitor, customer and invoice (string numbers, or [`NONE`]).
    fn names(&self) -> [u32; 4];

    /// Its strings numbered by `to` (from one reader's numbers to the stream's).
    fn renumber(&mut self, to: &[u32]);

    /// The group whose events make up one or more sessions: its log session (kind 0), else
    /// its visitor, else its customer (1), else none (2).
    fn group(&self) -> (u8, u32) {
        match self.names() {
            [session, ..] if session != NONE => (0, session),
            [_, visitor, ..] if visitor != NONE => (1, visitor),
            [_, _, customer, _] if customer != NONE => (1, customer),
            _ => (2, 0),
        }
    }

    /// The part of the [`Stream`]'s events it is kept in: its group's.
    fn part(&self, strings: &Strings) -> usize {
        match self.group() {
            (2, _) => self.order().2 as usize % PARTS,
            (_, id) => usize::from(strings.parts[id as usize]),
        }
    }

    /// Its group, then the order within it.
    fn sort_key(&self) -> (u8, u32, i64, i64, u64) {
        let (kind, id) = self.group();
        let (ts, seq, arrival) = self.order();
        (kind, id, ts, seq, arrival)
    }
}

/// Numbers the strings `ids` by `to` ([`Record::renumber`]), [`NONE`] kept.
pub fn renumber<const N: usize>(ids: [&mut u32; N], to: &[u32]) {
    for id in ids {
        if *id != NONE {
            *id = to[*id as usize];
        }
    }
}

impl Record for Event {
    type With = ();

    fn make(e: &Event, _: &()) -> Event {
        *e
    }

    fn order(&self) -> (i64, i64, u64) {
        (self.ts, self.seq, self.arrival)
    }

    fn names(&self) -> [u32; 4] {
        [self.session, self.visitor, self.customer, self.invoice]
    }

    fn renumber(&mut self, to: &[u32]) {
        renumber(
            [
                &mut self.session,
                &mut self.visitor,
                &mut self.customer,
                &mut self.event_type,
                &mut self.page,
                &mut self.category,
                &mut self.channel,
                &mut self.device,
                &mut self.referrer,
                &mut self.country,
                &mut self.invoice,
            ],
            to,
        );
    }
}

/// What names a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SessionId {
    /// The log's own session id.
    Log(u32),
    /// The `n`th session cut from an actor's events (`actor#n`).
    Cut { actor: u32, n: u32 },
    /// An event without a session, visitor or customer.
    Record { load: u64, record: u64 },
}

/// A session: its events' part and positions in it ([`Stream::events_of`]).
#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    part: u32,
    events: Range<u32>,
}

/// An order that a purchase event names.
#[derive(Debug, Clone, Copy)]
pub struct Invoice {
    /// The order's customer ([`NONE`]: a guest order).
    pub customer: u32,
    /// Net revenue in thousandths ([`NO_MONEY`]: unknown).
    pub revenue: i64,
}

/// A visitor's link to a customer.
#[derive(Debug, Clone)]
pub struct Link {
    pub customer: u32,
    /// When it was first seen (microseconds).
    pub at: i64,
    /// Every customer the visitor was seen with.
    pub seen: Vec<u32>,
}

/// How many parts the events are kept in, by their group: each part is put in order and cut
/// on its own, the parts on every core (10M events: 0.47 s, where one parallel sort of all
/// took 0.9 s; 256 parts sorted faster but slowed the read more).
const PARTS: usize = 64;

/// What one partition of the load query is read into.
struct Reader<R: Record> {
    strings: Strings,
    /// The events in [`PARTS`] parts.
    parts: Vec<Vec<R>>,
    with: R::With,
}

impl<R: Record> Reader<R> {
    /// A reader with room for `events` events.
    fn new(events: usize, with: R::With) -> Reader<R> {
        // Room reserved but not written takes no memory.
        let room = events / PARTS * 5 / 4 + 64;
        Reader {
            strings: Strings::default(),
            parts: (0..PARTS).map(|_| Vec::with_capacity(room)).collect(),
            with,
        }
    }

    fn read(&mut self, b: &RecordBatch) -> Result<()> {
        read_batch(b, &mut self.strings, &mut self.parts, &self.with)
    }
}

/// The events before a date, in sessions: each kept whole ([`Event`]), or as a question's
/// smaller [`Record`].
pub struct Stream<R: Record = Event> {
    pub strings: Strings,
    /// The events in [`PARTS`] parts by group ([`Record::part`]); in each, every session's
    /// events together, in order.
    parts: Vec<Vec<R>>,
    pub sessions: Vec<Session>,
    /// The orders purchase events name, by the invoice's string number.
    pub invoices: Map<u32, Invoice>,
    /// The idle gap that cuts sessions, in microseconds.
    idle: i64,
    /// Whether the orders were read ([`Columns::invoices`]).
    orders: bool,
    /// The events are those before this date.
    as_of: NaiveDate,
}

/// Midnight of `d` in microseconds since the epoch.
pub fn midnight(d: NaiveDate) -> i64 {
    d.and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_micros()
}

/// The type times are read as: microseconds, as stored.
const TS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

impl<R: Record> Stream<R> {
    /// Reads the events before `as_of` from `ctx` (the columns `columns` says) and cuts them
    /// into sessions; `extra` is a SQL expression over `fact_web_event` kept in
    /// [`Event::extra`] (cast to BIGINT); each event is kept as its record made `with`.
    pub async fn load(
        ctx: &SessionContext,
        as_of: NaiveDate,
        idle_minutes: u32,
        columns: Columns,
        extra: Option<&str>,
        with: R::With,
    ) -> Result<Stream<R>> {
        let clock = std::time::Instant::now();
        let lap = |step: &str| {
            tracing::debug!(step, ms = clock.elapsed().as_millis() as u64, "web events");
        };
        let cut = format!("TIMESTAMP '{as_of} 00:00:00'");
        let extra = extra.map_or("0".to_string(), |e| format!("CAST({e} AS BIGINT)"));
        let sql = format!(
            "SELECT {} FROM {} WHERE event_ts < {cut}",
            columns.select(&extra),
            tables::FACT_WEB_EVENT
        );
        // Each partition of the scan is read on its own thread, with room for its share of
        // the events (growing by doubling would hold two copies).
        let events = count(ctx).await?;
        let new = |n| Reader::new(events / n, with.clone());
        let read = olap::fold_partitions(ctx, &sql, new, Reader::read);
        // The orders are read meanwhile.
        let orders = async {
            if columns.invoices && ctx.table_exist(tables::FACT_SALES)? {
                read_orders(ctx, &cut).await
            } else {
                Ok(Vec::new())
            }
        };
        let (readers, orders) = tokio::join!(read, orders);
        lap("read");
        let (mut strings, parts) = merge(readers?);
        lap("merged and sorted");
        let invoices = number_orders(&mut strings, orders?);
        let idle = i64::from(idle_minutes) * 60_000_000;
        let sessions = cut_parts(&parts, idle);
        lap("cut");
        Ok(Stream {
            strings,
            parts,
            sessions,
            invoices,
            idle,
            orders: columns.invoices,
            as_of,
        })
    }

    /// Makes this the stream [`Stream::load`] reads as of `as_of`, a date no later than
    /// [`Stream::as_of`]'s, without reading the events again: the later events go, the rest
    /// are cut into sessions again, and the orders are read again as of `as_of`. (Uplift
    /// training needs the web columns as of each campaign's first day: one read, latest day
    /// first, instead of one per day.) The events must not have been freed.
    pub async fn truncate(&mut self, ctx: &SessionContext, as_of: NaiveDate) -> Result<()> {
        if as_of == self.as_of {
            return Ok(());
        }
        if as_of > self.as_of || self.parts.is_empty() {
            return Err(Error::Internal(format!(
                "web events read to {} (freed: {}) cannot be cut back to {as_of}",
                self.as_of,
                self.parts.is_empty()
            )));
        }
        self.as_of = as_of;
        let cut = format!("TIMESTAMP '{as_of} 00:00:00'");
        let before = midnight(as_of);
        // (Each part stays in order: only events are taken out.)
        self.parts
            .par_iter_mut()
            .for_each(|p| p.retain(|e| e.order().0 < before));
        let orders = if self.orders {
            read_orders(ctx, &cut).await?
        } else {
            Vec::new()
        };
        self.invoices = number_orders(&mut self.strings, orders);
        self.sessions = cut_parts(&self.parts, self.idle);
        Ok(())
    }

    /// The events are those before this date.
    pub fn as_of(&self) -> NaiveDate {
        self.as_of
    }

    /// The events of session `s`, in order.
    pub fn events_of(&self, s: &Session) -> &[R] {
        let Range { start, end } = s.events;
        &self.parts[s.part as usize][start as usize..end as usize]
    }

    /// Every event, in no particular order.
    pub fn events(&self) -> impl Iterator<Item = &R> {
        self.parts.iter().flatten()
    }

    /// Frees the events, keeping the sessions (whose events can then no longer be read).
    pub fn free_events(&mut self) {
        self.parts = Vec::new();
    }

    /// The text of a session's id.
    pub fn session_id(&self, id: SessionId) -> Cow<'_, str> {
        match id {
            SessionId::Log(s) => Cow::Borrowed(self.strings.text(s).unwrap_or_default()),
            _ => {
                let mut text = String::new();
                self.write_session_id(id, &mut text);
                Cow::Owned(text)
            }
        }
    }

    /// Writes the text of a session's id to `out` (cleared first): no allocation for each
    /// of millions of ids.
    pub fn write_session_id(&self, id: SessionId, out: &mut String) {
        use std::fmt::Write as _;
        out.clear();
        let text = |id| self.strings.text(id).unwrap_or_default();
        // (Writing to a String cannot fail.)
        match id {
            SessionId::Log(s) => out.push_str(text(s)),
            SessionId::Cut { actor, n } => {
                out.push_str(text(actor));
                out.push('#');
                let _ = write!(out, "{n}");
            }
            SessionId::Record { load, record } => {
                let _ = write!(out, "record {load}:{record}");
            }
        }
    }

    /// The customer of a known invoice (None: unknown, or a guest order).
    pub fn invoice_customer(&self, invoice: u32) -> Option<u32> {
        self.invoices
            .get(&invoice)
            .map(|i| i.customer)
            .filter(|&c| c != NONE)
    }

    /// Each visitor's link to a customer (see the module doc), by the visitor's number.
    pub fn links(&self) -> Map<u32, Link> {
        let mut links: Map<u32, Link> = Map::default();
        let mut add = |visitor: u32, customer: u32, at: i64| {
            let l = links.entry(visitor).or_insert_with(|| Link {
                customer,
                at,
                seen: Vec::new(),
            });
            let key = |c: u32, t: i64| (t, self.strings.text(c));
            if key(customer, at) < key(l.customer, l.at) {
                l.customer = customer;
                l.at = at;
            }
            if !l.seen.contains(&customer) {
                l.seen.push(customer);
            }
        };
        for e in self.events() {
            let ([_, visitor, customer, invoice], ts) = (e.names(), e.order().0);
            if visitor == NONE {
                continue;
            }
            if customer != NONE {
                add(visitor, customer, ts);
            }
            if let Some(c) = self.invoice_customer(invoice) {
                add(visitor, c, ts);
            }
        }
        links
    }

    /// The larger text of two numbered strings (SQL's MAX, NULLs ignored).
    pub fn max_text(&self, a: u32, b: u32) -> u32 {
        if a == b {
            return a;
        }
        match (self.strings.text(a), self.strings.text(b)) {
            (_, None) => a,
            (None, _) => b,
            (Some(x), Some(y)) => {
                if y > x {
                    b
                } else {
                    a
                }
            }
        }
    }
}

/// How many events the table holds: answered from the files' statistics without a scan
/// (counting those before a date took a scan, 0.09 s of 10M), and room for those before any
/// date (room not written takes no memory).
async fn count(ctx: &SessionContext) -> Result<usize> {
    let sql = format!("SELECT count(*) FROM {}", tables::FACT_WEB_EVENT);
    let (_, batches) = olap::sql(ctx, &sql).await?;
    Ok(batches.first().filter(|b| b.num_rows() > 0).map_or(0, |b| {
        b.column(0).as_primitive::<Int64Type>().value(0) as usize
    }))
}

/// Bits of [`Event::arrival`] that hold the record number.
const RECORD_BITS: u32 = 40;

/// An event's load and record as [`Event::arrival`].
fn arrival(load: i64, record: i64) -> Result<u64> {
    if !(0..1 << (64 - RECORD_BITS)).contains(&load) || !(0..1 << RECORD_BITS).contains(&record) {
        return Err(Error::Internal(format!(
            "{}: load {load}, record {record} is beyond the {} loads of 2^{RECORD_BITS} records \
             web questions can order",
            tables::FACT_WEB_EVENT,
            1u64 << (64 - RECORD_BITS)
        )));
    }
    Ok((load as u64) << RECORD_BITS | record as u64)
}

/// The readers' events as one stream's: their strings numbered as the first reader's (new
/// ones added), each part's events together and sorted.
fn merge<R: Record>(readers: Vec<Reader<R>>) -> (Strings, Vec<Vec<R>>) {
    let mut readers = readers.into_iter();
    let Some(Reader {
        mut strings, parts, ..
    }) = readers.next()
    else {
        return (Strings::default(), vec![Vec::new(); PARTS]);
    };
    // Each part's pieces, by reader; the numbers of the later readers' strings.
    let mut pieces: Vec<Vec<Vec<R>>> = parts.into_iter().map(|p| vec![p]).collect();
    let mut renumber: Vec<Vec<u32>> = vec![Vec::new()];
    for r in readers {
        let texts = (0..r.strings.len() as u32).filter_map(|k| r.strings.text(k));
        renumber.push(texts.map(|t| strings.id(t)).collect());
        for (p, events) in pieces.iter_mut().zip(r.parts) {
            p.push(events);
        }
    }
    let parts = pieces
        .into_par_iter()
        .map(|mut by_reader| {
            for (piece, to) in by_reader.iter_mut().zip(&renumber).skip(1) {
                piece.iter_mut().for_each(|e| e.renumber(to));
            }
            in_order(&by_reader)
        })
        .collect();
    (strings, parts)
}

/// The events of `pieces` in one vector, each group's together (groups in the order first
/// met) and in order within it ([`Record::sort_key`]). Groups are placed by counting, then each
/// is sorted on its own: a stable sort, near linear on the time-ordered runs logs come in
/// (10M events, with renumbering: 0.41 s, where sorting each part by the whole key took
/// 0.57 s).
fn in_order<R: Record>(pieces: &[Vec<R>]) -> Vec<R> {
    let Some(&filler) = pieces.iter().flatten().next() else {
        return Vec::new();
    };
    let mut number: Map<(u8, u32), u32> = Map::default();
    let mut counts: Vec<usize> = Vec::new();
    let groups: Vec<Vec<u32>> = pieces
        .iter()
        .map(|piece| {
            piece
                .iter()
                .map(|e| {
                    let g = *number.entry(e.group()).or_insert_with(|| {
                        counts.push(0);
                        counts.len() as u32 - 1
                    });
                    counts[g as usize] += 1;
                    g
                })
                .collect()
        })
        .collect();
    let mut next: Vec<usize> = counts
        .iter()
        .scan(0, |at, n| {
            *at += n;
            Some(*at - n)
        })
        .collect();
    let mut out = vec![filler; counts.iter().sum()];
    for (piece, groups) in pieces.iter().zip(&groups) {
        for (e, &g) in piece.iter().zip(groups) {
            out[next[g as usize]] = *e;
            next[g as usize] += 1;
        }
    }
    // `next` now holds each group's end.
    let mut start = 0;
    for end in next {
        out[start..end].sort_by_key(R::order);
        start = end;
    }
    out
}

/// Appends a batch of the load query's rows to the parts of the events.
fn read_batch<R: Record>(
    b: &RecordBatch,
    strings: &mut Strings,
    parts: &mut [Vec<R>],
    with: &R::With,
) -> Result<()> {
    let ts = cast(b.column(0), &TS)?;
    let ts = ts.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    let int = |i: usize| b.column(i).as_primitive::<Int64Type>();
    let (seq, load, record) = (int(1), int(2), int(3));
    let price = b.column(4).as_primitive::<Decimal128Type>();
    let extra = int(5);
    let mut text = |i: usize| strings.column(b.column(i).as_ref());
    let (session, visitor, customer, event_type) = (text(6)?, text(7)?, text(8)?, text(9)?);
    let (page, category, channel, device) = (text(10)?, text(11)?, text(12)?, text(13)?);
    let (referrer, country, invoice) = (text(14)?, text(15)?, text(16)?);
    let opt = |a: &datafusion::arrow::array::Int64Array, i: usize, none: i64| {
        if a.is_valid(i) { a.value(i) } else { none }
    };
    let at = |numbers: &Option<Vec<u32>>, i: usize| numbers.as_ref().map_or(NONE, |n| n[i]);
    for i in 0..b.num_rows() {
        if ts.is_null(i) {
            return Err(Error::Internal(format!(
                "{} has an event without event_ts",
                tables::FACT_WEB_EVENT
            )));
        }
        let e = Event {
            ts: ts.value(i),
            seq: opt(seq, i, i64::MAX),
            arrival: arrival(opt(load, i, 0), opt(record, i, 0))?,
            price: if price.is_valid(i) {
                price.value(i) as i64
            } else {
                NO_MONEY
            },
            extra: opt(extra, i, 0) as u32,
            session: at(&session, i),
            visitor: at(&visitor, i),
            customer: at(&customer, i),
            event_type: at(&event_type, i),
            page: at(&page, i),
            category: at(&category, i),
            channel: at(&channel, i),
            device: at(&device, i),
            referrer: at(&referrer, i),
            country: at(&country, i),
            invoice: at(&invoice, i),
        };
        let r = R::make(&e, with);
        parts[r.part(strings)].push(r);
    }
    Ok(())
}

/// The orders before `cut` that events name: invoice number, customer and net revenue in
/// thousandths ([`NO_MONEY`]: unknown).
async fn read_orders(
    ctx: &SessionContext,
    cut: &str,
) -> Result<Vec<(String, Option<String>, i64)>> {
    // Only the invoices the click-stream names reach this process.
    let sql = format!(
        "SELECT invoice_no, max(customer_id), CAST(sum(revenue) AS DECIMAL(18,3))
         FROM {sales} WHERE invoice_ts < {cut} AND invoice_no IN (
           SELECT invoice_no FROM {web} WHERE event_ts < {cut} AND invoice_no IS NOT NULL)
         GROUP BY invoice_no",
        sales = tables::FACT_SALES,
        web = tables::FACT_WEB_EVENT
    );
    let mut orders = Vec::new();
    olap::for_each_batch(ctx, &sql, |b| {
        let numbers = olap::text_column(b.column(0))?;
        let who = olap::text_column(b.column(1))?;
        let revenue = b.column(2).as_primitive::<Decimal128Type>();
        for i in 0..b.num_rows() {
            orders.push((
                numbers.value(i).to_string(),
                who.is_valid(i).then(|| who.value(i).to_string()),
                if revenue.is_valid(i) {
                    revenue.value(i) as i64
                } else {
                    NO_MONEY
                },
            ));
        }
        Ok(())
    })
    .await?;
    Ok(orders)
}

/// The orders `read_orders` gave, by their invoice's string number (orders no event names
/// are left out).
fn number_orders(
    strings: &mut Strings,
    orders: Vec<(String, Option<String>, i64)>,
) -> Map<u32, Invoice> {
    let mut invoices = Map::default();
    for (number, customer, revenue) in orders {
        let invoice = strings.find(&number);
        if invoice == NONE {
            continue;
        }
        let customer = customer.map_or(NONE, |c| strings.id(&c));
        invoices.insert(invoice, Invoice { customer, revenue });
    }
    invoices
}

/// Cuts every part's sorted events into sessions, the parts on every core.
fn cut_parts<R: Record>(parts: &[Vec<R>], idle: i64) -> Vec<Session> {
    let sessions: Vec<Vec<Session>> = parts
        .par_iter()
        .enumerate()
        .map(|(k, p)| cut_sessions(p, k as u32, idle))
        .collect();
    sessions.concat()
}

/// Cuts the sorted events of part `part` into sessions, a gap of more than `idle`
/// microseconds starting a new one.
fn cut_sessions<R: Record>(events: &[R], part: u32, idle: i64) -> Vec<Session> {
    // (A part holds far fewer than 2^32 events: that many would take 340 GB.)
    let session = |id, events: Range<usize>| Session {
        id,
        part,
        events: events.start as u32..events.end as u32,
    };
    let mut sessions = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let (kind, id, ..) = events[i].sort_key();
        let mut j = i + 1;
        while j < events.len() && events[j].group() == (kind, id) {
            j += 1;
        }
        match kind {
            0 => sessions.push(session(SessionId::Log(id), i..j)),
            1 => {
                let (mut start, mut n) = (i, 1);
                for k in i + 1..=j {
                    if k == j || events[k].order().0 > events[k - 1].order().0 + idle {
                        sessions.push(session(SessionId::Cut { actor: id, n }, start..k));
                        (start, n) = (k, n + 1);
                    }
                }
            }
            _ => sessions.extend((i..j).map(|k| {
                let arrival = events[k].order().2;
                let id = SessionId::Record {
                    load: arrival >> RECORD_BITS,
                    record: arrival & ((1 << RECORD_BITS) - 1),
                };
                session(id, k..k + 1)
            })),
        }
        i = j;
    }
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, StringViewArray};

    fn event(ts: i64, session: u32, visitor: u32, customer: u32, record: i64) -> Event {
        Event {
            ts,
            seq: i64::MAX,
            arrival: arrival(1, record).unwrap(),
            price: NO_MONEY,
            extra: 0,
            session,
            visitor,
            customer,
            event_type: NONE,
            page: NONE,
            category: NONE,
            channel: NONE,
            device: NONE,
            referrer: NONE,
            country: NONE,
            invoice: NONE,
        }
    }

    #[test]
    fn a_gap_longer_than_the_idle_time_starts_a_session_and_log_ids_are_kept() {
        let minute = 60_000_000;
        let mut events = vec![
            // Visitor 7: 0, 30 (exactly the gap: same session), 61 (a new one).
            event(61 * minute, NONE, 7, NONE, 3),
            event(0, NONE, 7, NONE, 1),
            event(30 * minute, NONE, 7, NONE, 2),
            // The log's session 5 across a long gap stays one session.
            event(0, 5, 7, NONE, 4),
            event(500 * minute, 5, 7, NONE, 5),
            // A customer's events without a visitor are cut by the customer.
            event(0, NONE, NONE, 9, 6),
            // Nobody: a session of its own, each.
            event(0, NONE, NONE, NONE, 7),
            event(0, NONE, NONE, NONE, 8),
        ];
        events.sort_unstable_by_key(Event::sort_key);
        let sessions = cut_sessions(&events, 0, 30 * minute);
        let ids: Vec<(SessionId, usize)> =
            sessions.iter().map(|s| (s.id, s.events.len())).collect();
        assert_eq!(
            ids,
            [
                (SessionId::Log(5), 2),
                (SessionId::Cut { actor: 7, n: 1 }, 2),
                (SessionId::Cut { actor: 7, n: 2 }, 1),
                (SessionId::Cut { actor: 9, n: 1 }, 1),
                (SessionId::Record { load: 1, record: 7 }, 1),
                (SessionId::Record { load: 1, record: 8 }, 1),
            ]
        );
        // Within a session, events are in time order.
        let Range { start, end } = sessions[1].events.clone();
        let first = &events[start as usize..end as usize];
        assert_eq!(
            first.iter().map(|e| e.ts).collect::<Vec<_>>(),
            [0, 30 * minute]
        );
    }

    #[test]
    fn readers_that_numbered_strings_apart_are_merged_into_one_numbering() {
        let minute = 60_000_000;
        let reader = |names: &[&str], clicks: &[(&str, i64, i64)]| {
            let mut r = Reader::<Event>::new(16, ());
            for n in names {
                r.strings.id(n);
            }
            for &(v, ts, record) in clicks {
                let e = event(ts * minute, NONE, r.strings.id(v), NONE, record);
                r.parts[e.part(&r.strings)].push(e);
            }
            r
        };
        let a = reader(&["v1", "v2"], &[("v1", 5, 1), ("v2", 0, 2), ("v1", 0, 3)]);
        let b = reader(&["v3", "v2"], &[("v1", 2, 4), ("v3", 0, 5), ("v2", 90, 6)]);
        let (strings, parts) = merge(vec![a, b]);
        let mut seen = Vec::new();
        for (k, p) in parts.iter().enumerate() {
            for s in cut_sessions(p, k as u32, 30 * minute) {
                let events = &p[s.events.start as usize..s.events.end as usize];
                assert!(events.iter().all(|e| e.visitor == events[0].visitor));
                let who = strings.text(events[0].visitor).unwrap().to_string();
                seen.push((who, events.iter().map(|e| e.ts / minute).collect()));
            }
        }
        seen.sort();
        let expected: Vec<(String, Vec<i64>)> = vec![
            ("v1".into(), vec![0, 2, 5]),
            ("v2".into(), vec![0]),
            ("v2".into(), vec![90]),
            ("v3".into(), vec![0]),
        ];
        assert_eq!(seen, expected);
    }

    #[test]
    fn the_click_order_then_the_arrival_break_ties_in_time() {
        let mut a = event(0, 1, NONE, NONE, 9);
        let mut b = event(0, 1, NONE, NONE, 2);
        a.seq = 1;
        b.seq = 2;
        let c = event(0, 1, NONE, NONE, 1);
        let mut events = [c, b, a];
        events.sort_unstable_by_key(Event::sort_key);
        // seq 1, seq 2, then the one without a sequence (NULLS LAST).
        let order: Vec<u64> = events.iter().map(|e| e.arrival & 0xff).collect();
        assert_eq!(order, [9, 2, 1]);
        assert!(arrival(1 << 24, 0).is_err());
        assert!(arrival(0, 1 << 40).is_err());
        assert!(arrival(2, 0).unwrap() > arrival(1, (1 << 40) - 1).unwrap());
    }

    #[test]
    fn string_views_and_plain_strings_number_alike() {
        let values = [
            Some("short"),
            Some("short"),
            None,
            Some("a string longer than twelve bytes"),
            Some("a string longer than twelve bytes"),
            Some("short"),
            Some(""),
            // 13 to 16 bytes: cached by their bytes.
            Some("fourteen bytes"),
            Some("fourteen bytez"),
            Some("fourteen bytes"),
        ];
        let mut s = Strings::default();
        let plain = s
            .column(&StringArray::from(values.to_vec()))
            .unwrap()
            .unwrap();
        let views = s
            .column(&StringViewArray::from(values.to_vec()))
            .unwrap()
            .unwrap();
        assert_eq!(plain, views);
        assert_eq!(plain[2], NONE);
        assert_eq!(plain[0], plain[5]);
        assert_eq!(s.text(plain[3]), Some("a string longer than twelve bytes"));
        assert_eq!(s.find("nowhere"), NONE);
        assert_eq!((plain[7], plain[9]), (s.find("fourteen bytes"), plain[7]));
        assert_eq!(s.text(plain[8]), Some("fourteen bytez"));
    }

    #[test]
    fn a_visitor_is_linked_to_the_first_customer_and_ties_go_to_the_smaller_id() {
        let mut strings = Strings::default();
        let (v, c1, c2) = (strings.id("v"), strings.id("c2"), strings.id("c10"));
        let events = vec![
            event(10, NONE, v, c1, 1),
            event(10, NONE, v, c2, 2),
            event(5, NONE, v, NONE, 3),
        ];
        let stream = Stream {
            strings,
            parts: vec![events],
            sessions: Vec::new(),
            invoices: Map::default(),
            idle: 0,
            orders: false,
            as_of: NaiveDate::MAX,
        };
        let links = stream.links();
        let l = &links[&v];
        // "c10" < "c2" as text, as SQL orders them.
        assert_eq!((l.customer, l.at, l.seen.len()), (c2, 10, 2));
    }
}
