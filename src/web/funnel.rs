//! Funnels: how many sessions (or visitors) take each step of a path, in order.
//!
//! - Input: the sessionised events ([`super::stream`]) before the as-of date.
//! - Parameters ([`WebFunnelParams`]): `steps` (at least two, in order; see [`Step`]),
//!   `within` (session, the default, or visitor: a visitor's events across sessions, a
//!   visitor linked to a customer counted as the customer), `within_minutes` (every step
//!   within N minutes of the first; default no limit), `by` (split by the channel, device,
//!   country or referrer of the event that entered the funnel, or by the segment of the
//!   customer it names or its visitor is linked to, in table `segments`: `(anonymous)`
//!   without a customer, `(none)` for a customer the segmentation did not see),
//!   `distinct_events` (each step needs an event after the previous step's; default off:
//!   one event may complete several consecutive steps when it meets each of their
//!   conditions, so a depth funnel `page>=1,page>=2,…` counts the sessions that reach each
//!   depth), `idle_minutes` (how sessions are cut where the log has no session ids; default
//!   30).
//! - Output: one row per step (and member of `by`): entrants (units that took the step
//!   after all steps before it), conversion from the previous step and from the first,
//!   drop-off from the previous step, and the median seconds from the previous step.
//! - How a unit's furthest step is found (as ClickHouse's `windowFunnel`): its events are
//!   read in order; an event meeting step 1 starts a chain, an event meeting step k+1
//!   extends the chain that has reached step k (within the window of its start). Of chains
//!   that reach the same step the one that started last is kept, since it has the most
//!   window left; without a window any chain does. The times between steps are those of
//!   the chain that reached each step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use rayon::prelude::*;

use super::stream::{self, Columns, Event, Map, NONE, Record, Stream};
use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions, sqltext::literal};
use crate::warehouse::{Warehouse, tables};

crate::choices! {
    /// What one pass through a funnel is.
    pub enum Within {
        /// One session.
        Session = "session",
        /// All of a visitor's sessions (a visitor linked to a customer: the customer's).
        Visitor = "visitor",
    }
    default = Session;
}

crate::choices! {
    /// What `--by` splits a funnel by: a column of the event that entered the funnel, or
    /// its customer's segment.
    pub enum FunnelBy {
        Channel = "channel",
        Device = "device",
        Country = "country",
        Referrer = "referrer",
        /// The segment (table `segments`, from `ecrm segment`) of the event's customer.
        Segment = "segment",
    }
}

/// `ecrm web funnel`'s options.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebFunnelParams {
    /// The steps in order, comma-separated: an event type (add_to_cart) or a condition on a
    /// column (page>=3, category=skirts, page~/checkout); alternatives joined by | .
    #[arg(
        long,
        value_name = "STEP,STEP,...",
        value_delimiter = ',',
        required = true
    )]
    pub steps: Vec<String>,
    /// What one pass through the funnel is.
    #[arg(long, value_enum, default_value_t = Within::Session)]
    pub within: Within,
    /// Every step within N minutes of the first. Default: no limit.
    #[arg(long, value_name = "N")]
    pub within_minutes: Option<u32>,
    /// Split by a column of the event that entered the funnel, or by its customer's segment.
    #[arg(long, value_enum)]
    pub by: Option<FunnelBy>,
    /// Each step needs an event after the previous step's (by default one event may
    /// complete several consecutive steps).
    #[arg(long)]
    pub distinct_events: bool,
    /// Minutes without an event that end a session, where the log has no session ids.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub idle_minutes: u32,
}

impl Default for WebFunnelParams {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            within: Within::Session,
            within_minutes: None,
            by: None,
            distinct_events: false,
            idle_minutes: 30,
        }
    }
}

/// Columns a step may test.
const STEP_COLUMNS: [&str; 8] = [
    "event_type",
    "page",
    "product_id",
    "category",
    "channel",
    "device",
    "referrer",
    "country",
];

/// Comparisons a step may make; the two-character ones first, so `>=` is not read as `>`.
const OPERATORS: [&str; 7] = [">=", "<=", "!=", "=", ">", "<", "~"];

/// At most this many steps: each is a bit of a 64-bit mask, and no funnel needs more.
const MAX_STEPS: usize = 16;

/// One funnel step: alternatives (`|`), any of which completes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub text: String,
    conditions: Vec<Condition>,
}

/// An event type, or `column OP value`.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    EventType(String),
    Compare {
        column: String,
        op: &'static str,
        value: String,
    },
}

impl Step {
    /// Reads a step (`add_to_cart`, `page>=3`, `checkout|purchase`).
    pub fn parse(text: &str) -> Result<Step> {
        let bad = |m: String| Error::param("steps", format!("step {text:?}: {m}"));
        let mut conditions = Vec::new();
        for alt in text.split('|').map(str::trim) {
            if alt.is_empty() {
                return Err(bad("is empty".into()));
            }
            let found = OPERATORS
                .iter()
                .filter_map(|op| alt.find(op).map(|i| (i, *op)))
                .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())));
            conditions.push(match found {
                None => Condition::EventType(alt.to_string()),
                Some((i, op)) => {
                    let column = alt[..i].trim().to_string();
                    let value = alt[i + op.len()..].trim().to_string();
                    if !STEP_COLUMNS.contains(&column.as_str()) {
                        return Err(bad(format!(
                            "{column:?} is not a column a step can test; columns: {}",
                            STEP_COLUMNS.join(", ")
                        )));
                    }
                    let ordering = matches!(op, ">=" | "<=" | ">" | "<");
                    if ordering && value.parse::<f64>().is_err() {
                        return Err(bad(format!("{op} compares numbers, and {value:?} is none")));
                    }
                    if value.is_empty() {
                        return Err(bad(format!("{column}{op} needs a value")));
                    }
                    Condition::Compare { column, op, value }
                }
            });
        }
        Ok(Step {
            text: text.trim().to_string(),
            conditions,
        })
    }

    /// The step's condition in SQL over `fact_web_event`.
    fn sql(&self) -> String {
        let parts: Vec<String> = self
            .conditions
            .iter()
            .map(|c| match c {
                Condition::EventType(t) => format!("event_type = {}", literal(t)),
                Condition::Compare { column, op, value } => match (*op, value.parse::<f64>()) {
                    ("~", _) => format!("strpos({column}, {}) > 0", literal(value)),
                    (_, Ok(n)) => format!("TRY_CAST({column} AS DOUBLE) {op} {n:?}"),
                    ("!=", Err(_)) => format!("{column} <> {}", literal(value)),
                    (_, Err(_)) => format!("{column} = {}", literal(value)),
                },
            })
            .collect();
        format!("({})", parts.join(" OR "))
    }
}

impl WebFunnelParams {
    /// The steps, read and checked.
    pub fn parsed_steps(&self) -> Result<Vec<Step>> {
        if self.steps.len() < 2 {
            return Err(Error::param(
                "steps",
                "a funnel needs at least two steps, e.g. product_view,add_to_cart,purchase",
            ));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(Error::param(
                "steps",
                format!("at most {MAX_STEPS} steps, not {}", self.steps.len()),
            ));
        }
        if self.within_minutes == Some(0) {
            return Err(Error::param(
                "within_minutes",
                "a window of 0 minutes holds nothing",
            ));
        }
        super::WebSessionsParams {
            idle_minutes: self.idle_minutes,
        }
        .check()?;
        self.steps.iter().map(|s| Step::parse(s)).collect()
    }
}

/// What the funnel keeps of an event: 48 bytes where the whole [`Event`] is 80, so less
/// memory to write, put in order and read (10M synth events: 1.8 s and 0.9 GB, where whole
/// events took 2.1 s and 1.2 GB).
#[derive(Debug, Clone, Copy)]
struct Mark {
    ts: i64,
    seq: i64,
    arrival: u64,
    /// The steps it meets, as bits (its [`Event::extra`]).
    steps: u32,
    session: u32,
    visitor: u32,
    customer: u32,
    invoice: u32,
    /// The string of the column `--by` splits by ([`NONE`] without one, or by segment).
    by: u32,
}

impl Record for Mark {
    /// The `--by` column.
    type With = Option<FunnelBy>;

    fn make(e: &Event, by: &Option<FunnelBy>) -> Mark {
        Mark {
            ts: e.ts,
            seq: e.seq,
            arrival: e.arrival,
            steps: e.extra,
            session: e.session,
            visitor: e.visitor,
            customer: e.customer,
            invoice: e.invoice,
            by: match by {
                Some(FunnelBy::Channel) => e.channel,
                Some(FunnelBy::Device) => e.device,
                Some(FunnelBy::Country) => e.country,
                Some(FunnelBy::Referrer) => e.referrer,
                Some(FunnelBy::Segment) | None => NONE,
            },
        }
    }

    fn order(&self) -> (i64, i64, u64) {
        (self.ts, self.seq, self.arrival)
    }

    fn names(&self) -> [u32; 4] {
        [self.session, self.visitor, self.customer, self.invoice]
    }

    fn renumber(&mut self, to: &[u32]) {
        let ids = [
            &mut self.session,
            &mut self.visitor,
            &mut self.customer,
            &mut self.invoice,
            &mut self.by,
        ];
        stream::renumber(ids, to);
    }
}

/// A chain of step times (microseconds): the chain at position k of [`Unit::chains`] has
/// reached step k, its first k + 1 times set. (An array: no allocation per event.)
type Chain = [i64; MAX_STEPS];

/// One unit's furthest step and the chain per step reached, fed its events in order.
struct Unit {
    chains: Vec<Chain>,
    /// Bit k: a chain has reached step k (`chains[k]` holds it).
    reached: u32,
    /// The member of `--by` (a number: see [`funnel`]) of its first event meeting step 1.
    member: Option<u32>,
}

impl Unit {
    fn new(steps: usize) -> Unit {
        Unit {
            chains: vec![[0; MAX_STEPS]; steps],
            reached: 0,
            member: None,
        }
    }

    /// Ready for the next unit (no allocation per unit).
    fn clear(&mut self) {
        self.reached = 0;
        self.member = None;
    }

    /// Feeds it a unit's events in order (the step mask in [`Mark::steps`]; those meeting
    /// no step are skipped). Its member is `member` of the first event meeting step 1.
    fn walk<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Mark>,
        window: Option<i64>,
        distinct: bool,
        member: &dyn Fn(&Mark) -> u32,
    ) {
        self.clear();
        for e in events.into_iter().filter(|e| e.steps != 0) {
            let mask = u64::from(e.steps);
            if self.member.is_none() && mask & 1 == 1 {
                self.member = Some(member(e));
            }
            self.event(e.ts, mask, window, distinct);
        }
    }

    /// The chain that reached step `k`, if any.
    fn chain(&self, k: usize) -> Option<&Chain> {
        (self.reached & 1 << k != 0).then(|| &self.chains[k])
    }

    /// One event meeting the steps in `mask` at time `ts`.
    fn event(&mut self, ts: i64, mask: u64, window: Option<i64>, distinct: bool) {
        let n = self.chains.len();
        // Descending, an event extends only chains of earlier events; ascending, it may
        // take several steps at once.
        for i in 0..n {
            let k = if distinct { n - 1 - i } else { i };
            if mask & 1 << k != 0 {
                self.take(k, ts, window);
            }
        }
    }

    /// Step `k` taken at `ts`: by a new chain (step 1) or by extending the chain at step
    /// k - 1 within the window; kept if it started no earlier than the one there.
    fn take(&mut self, k: usize, ts: i64, window: Option<i64>) {
        let start = match k {
            0 => ts,
            _ => match self.chain(k - 1) {
                Some(c) if window.is_none_or(|w| ts - c[0] <= w) => c[0],
                _ => return,
            },
        };
        if self.chain(k).is_some_and(|c| c[0] > start) {
            return;
        }
        if k > 0 {
            let (before, from_k) = self.chains.split_at_mut(k);
            from_k[0][..k].copy_from_slice(&before[k - 1][..k]);
        }
        self.chains[k][k] = ts;
        self.reached |= 1 << k;
    }
}

/// Counts per step of one member: entrants, and the seconds from the previous step.
#[derive(Default)]
struct Tally {
    entrants: Vec<u64>,
    gaps: Vec<Vec<f64>>,
}

impl Tally {
    fn add(&mut self, unit: &Unit) {
        let n = unit.chains.len();
        if self.entrants.is_empty() {
            self.entrants = vec![0; n];
            self.gaps = vec![Vec::new(); n];
        }
        for k in 0..n {
            if let Some(c) = unit.chain(k) {
                self.entrants[k] += 1;
                if k > 0 {
                    self.gaps[k].push((c[k] - c[k - 1]) as f64 / 1e6);
                }
            }
        }
    }

    /// Adds another tally of the same member.
    fn merge(&mut self, other: Tally) {
        if self.entrants.is_empty() {
            *self = other;
            return;
        }
        for (k, (n, gaps)) in other.entrants.into_iter().zip(other.gaps).enumerate() {
            self.entrants[k] += n;
            self.gaps[k].extend(gaps);
        }
    }
}

/// The member number of a unit whose customer is not known (`--by segment`).
const ANONYMOUS: u32 = NONE - 1;

/// The funnel over `wh` as of `as_of` (default: the day after the last event).
pub async fn funnel(
    wh: &Warehouse,
    params: &WebFunnelParams,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<(RecordBatch, NaiveDate)> {
    let steps = params.parsed_steps()?;
    let (ctx, as_of) = super::open(wh, as_of, engine).await?;
    let segments = match params.by {
        Some(FunnelBy::Segment) => Some(read_segments(&ctx).await?),
        _ => None,
    };
    // Each event's steps as bits of a mask.
    let mask: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(k, s)| format!("CASE WHEN {} THEN {} ELSE 0 END", s.sql(), 1u64 << k))
        .collect();
    // Stitching (which reads the orders) only when asked for: a unit or a member may be a
    // visitor's customer.
    let stitch = params.within == Within::Visitor || segments.is_some();
    let columns = Columns {
        channel: params.by == Some(FunnelBy::Channel),
        details: matches!(
            params.by,
            Some(FunnelBy::Device | FunnelBy::Country | FunnelBy::Referrer)
        ),
        invoices: stitch,
        ..Columns::BARE
    };
    let mask = mask.join(" + ");
    let stream: Stream<Mark> = Stream::load(
        &ctx,
        as_of,
        params.idle_minutes,
        columns,
        Some(&mask),
        params.by,
    )
    .await?;
    let links = if stitch {
        stream.links()
    } else {
        Map::default()
    };
    let customer = |e: &Mark| match e.customer {
        NONE => links.get(&e.visitor).map_or(NONE, |l| l.customer),
        c => c,
    };
    // A unit's member of `--by` as a number (named at the end): the string of its column,
    // or the index of its customer's segment in `names`.
    let mut names: Vec<String> = Vec::new();
    let mut segment_of: Map<u32, u32> = Map::default();
    for (c, name) in segments.iter().flatten() {
        let c = stream.strings.find(c);
        if c != NONE {
            let k = match names.iter().position(|n| n == name) {
                Some(k) => k,
                None => {
                    names.push(name.clone());
                    names.len() - 1
                }
            };
            segment_of.insert(c, k as u32);
        }
    }
    let member = |e: &Mark| -> u32 {
        match params.by {
            None => 0,
            Some(FunnelBy::Segment) => match customer(e) {
                NONE => ANONYMOUS,
                c => segment_of.get(&c).copied().unwrap_or(NONE),
            },
            Some(_) => e.by,
        }
    };
    let name = |m: u32| -> String {
        match (params.by, m) {
            (None, _) => String::new(),
            (Some(FunnelBy::Segment), ANONYMOUS) => "(anonymous)".into(),
            (_, NONE) => "(none)".into(),
            (Some(FunnelBy::Segment), k) => names[k as usize].clone(),
            (Some(_), k) => stream.strings.text(k).unwrap_or_default().into(),
        }
    };
    let window = params.within_minutes.map(|m| i64::from(m) * 60_000_000);
    let distinct = params.distinct_events;
    let mut tallies = Tallies::default();
    match params.within {
        Within::Session => {
            // Sessions in pieces on every core, their tallies added up.
            tallies = stream
                .sessions
                .par_chunks(1 << 16)
                .map(|chunk| {
                    let (mut t, mut u) = (Tallies::default(), Unit::new(steps.len()));
                    for s in chunk {
                        u.walk(stream.events_of(s), window, distinct, &member);
                        finish(&mut t, &u);
                    }
                    t
                })
                .reduce(Tallies::default, merge);
        }
        Within::Visitor => {
            // A visitor's (or customer's) events across sessions, in time; without either,
            // the session's.
            let unit = |k: usize, e: &Mark| match customer(e) {
                NONE if e.visitor != NONE => (0, u64::from(e.visitor)),
                NONE => (1, k as u64),
                c => (0, u64::from(c)),
            };
            let mut order: Vec<((u8, u64), &Mark)> = Vec::new();
            for (k, s) in stream.sessions.iter().enumerate() {
                let events = stream.events_of(s).iter().filter(|e| e.steps != 0);
                order.extend(events.map(|e| (unit(k, e), e)));
            }
            order.sort_by_key(|(u, e)| (*u, e.order()));
            let mut one = Unit::new(steps.len());
            for group in order.chunk_by(|a, b| a.0 == b.0) {
                one.walk(group.iter().map(|(_, e)| *e), window, distinct, &member);
                finish(&mut tallies, &one);
            }
        }
    }
    // By name, in order (two numbers may name one member: "(none)").
    let mut named: BTreeMap<String, Tally> = BTreeMap::new();
    for (m, t) in tallies {
        let into = named.entry(name(m)).or_default();
        into.merge(t);
    }
    Ok((to_batch(&steps, &named, params.by)?, as_of))
}

/// Each customer's segment (table `segments`), for `--by segment`.
async fn read_segments(ctx: &SessionContext) -> Result<HashMap<String, String>> {
    if !ctx.table_exist(tables::SEGMENTS)? {
        return Err(Error::NotFound {
            what: "table",
            name: tables::SEGMENTS.into(),
            hint: ": --by segment splits by each customer's segment; run `ecrm segment` first"
                .into(),
        });
    }
    let sql = format!(
        "SELECT customer_id, segment_name FROM {} WHERE customer_id IS NOT NULL",
        tables::SEGMENTS
    );
    let mut segments = HashMap::new();
    olap::for_each_batch(ctx, &sql, |b| {
        let (ids, names) = (
            olap::text_column(b.column(0))?,
            olap::text_column(b.column(1))?,
        );
        for i in 0..b.num_rows() {
            let name = if names.is_valid(i) {
                names.value(i)
            } else {
                "(none)"
            };
            segments.insert(ids.value(i).to_string(), name.to_string());
        }
        Ok(())
    })
    .await?;
    Ok(segments)
}

/// Tallies by member of `--by`, by its number.
type Tallies = Map<u32, Tally>;

/// Tallies of two sets of units, added up.
fn merge(mut a: Tallies, b: Tallies) -> Tallies {
    for (member, t) in b {
        a.entry(member).or_default().merge(t);
    }
    a
}

/// Counts a unit that entered the funnel.
fn finish(tallies: &mut Tallies, unit: &Unit) {
    if unit.chain(0).is_some() {
        tallies
            .entry(unit.member.unwrap_or(NONE))
            .or_default()
            .add(unit);
    }
}

/// The median of `v` (sorted in place); None when empty.
fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    // Selection, not a sort: linear in the gaps (millions of them).
    let (m, odd) = (v.len() / 2, v.len() % 2 == 1);
    let (below, &mut upper, _) = v.select_nth_unstable_by(m, f64::total_cmp);
    Some(if odd {
        upper
    } else {
        // The largest of those below the middle.
        let lower = below
            .iter()
            .copied()
            .max_by(f64::total_cmp)
            .unwrap_or(upper);
        (lower + upper) / 2.0
    })
}

/// One row per (member, step).
fn to_batch(
    steps: &[Step],
    tallies: &BTreeMap<String, Tally>,
    by: Option<FunnelBy>,
) -> Result<RecordBatch> {
    let mut member = Vec::new();
    let (mut step, mut condition, mut entrants, mut drop_off) = (vec![], vec![], vec![], vec![]);
    let (mut from_prev, mut from_first, mut gap) = (vec![], vec![], vec![]);
    for (m, t) in tallies {
        let mut t_gaps = t.gaps.clone();
        for (k, s) in steps.iter().enumerate() {
            member.push(m.clone());
            step.push(k as i64 + 1);
            condition.push(s.text.clone());
            let n = t.entrants[k];
            entrants.push(n as i64);
            let prev = if k == 0 { n } else { t.entrants[k - 1] };
            drop_off.push((prev - n) as i64);
            let rate = |d: u64| (d > 0).then(|| n as f64 / d as f64);
            from_prev.push(rate(prev));
            from_first.push(rate(t.entrants[0]));
            gap.push(if k == 0 { None } else { median(&mut t_gaps[k]) });
        }
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    if let Some(b) = by {
        fields.push(Field::new(b.name(), DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from(member)));
    }
    let int = |name: &str| Field::new(name, DataType::Int64, false);
    let float = |name: &str| Field::new(name, DataType::Float64, true);
    fields.extend([
        int("step"),
        Field::new("condition", DataType::Utf8, false),
        int("entrants"),
        float("conversion_from_previous"),
        float("conversion_from_first"),
        int("drop_off"),
        float("median_seconds_from_previous"),
    ]);
    columns.extend([
        Arc::new(Int64Array::from(step)) as ArrayRef,
        Arc::new(StringArray::from(condition)),
        Arc::new(Int64Array::from(entrants)),
        Arc::new(Float64Array::from(from_prev)),
        Arc::new(Float64Array::from(from_first)),
        Arc::new(Int64Array::from(drop_off)),
        Arc::new(Float64Array::from(gap)),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: usize, events: &[(i64, u64)], window: Option<i64>, distinct: bool) -> usize {
        let mut u = Unit::new(steps);
        for &(ts, mask) in events {
            u.event(ts, mask, window, distinct);
        }
        u.reached.count_ones() as usize
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 10.0, 2.0]), Some(3.0));
        assert_eq!(median(&mut [7.0]), Some(7.0));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn one_event_takes_several_steps_unless_distinct() {
        // A depth funnel page>=1, page>=2, page>=3: one click on page 3 meets all three.
        let deep = [(0, 0b111)];
        assert_eq!(run(3, &deep, None, false), 3);
        assert_eq!(run(3, &deep, None, true), 1);
        // Clicks on pages 1, 3, 3: distinct steps need a later click each.
        let clicks = [(0, 0b001), (1, 0b111), (2, 0b111)];
        assert_eq!(run(3, &clicks, None, true), 3);
        // Out of order: step 2 before step 1 does not count.
        assert_eq!(run(2, &[(0, 0b10), (1, 0b01)], None, true), 1);
    }

    #[test]
    fn the_window_keeps_the_chain_that_started_last() {
        // Step 1 at 0 and at 50, step 2 at 100: within 60 only the later start reaches it.
        let events = [(0, 0b01), (50, 0b01), (100, 0b10)];
        assert_eq!(run(2, &events, Some(60), true), 2);
        assert_eq!(run(2, &[(0, 0b01), (100, 0b10)], Some(60), true), 1);
    }

    #[test]
    fn steps_parse_and_refuse_what_they_cannot_test() {
        let s = Step::parse("page>=3").unwrap();
        assert_eq!(s.sql(), "(TRY_CAST(page AS DOUBLE) >= 3.0)");
        let s = Step::parse("checkout|page~/cart").unwrap();
        assert_eq!(
            s.sql(),
            "(event_type = 'checkout' OR strpos(page, '/cart') > 0)"
        );
        assert_eq!(
            Step::parse("category=it's").unwrap().sql(),
            "(category = 'it''s')"
        );
        let e = Step::parse("colour=3").unwrap_err().to_string();
        assert!(e.contains("\"colour\" is not a column"), "{e}");
        let e = Step::parse("page>=three").unwrap_err().to_string();
        assert!(e.contains("compares numbers"), "{e}");
    }
}
