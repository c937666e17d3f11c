//! Paths: where sessions go, page by page (or category by category).
//!
//! - Input: the sessionised events ([`super::stream`]) before the as-of date that
//!   name a page (its `page`, else its product) or, at `--level category`, a category.
//! - Parameters ([`WebPathsParams`]): `show` (paths, the default; entry; exit;
//!   transitions), `level` (page or category), `top` (rows, default 20), `max_len` (a path's
//!   first N steps, default 5), `idle_minutes` (30).
//! - Output, one table per `show`:
//!   - paths: each session's first `max_len` steps joined by ` > `, with the sessions that
//!     took it and their share of all sessions;
//!   - entry: the first step of sessions, entrances, bounces (sessions of one event) and the
//!     bounce rate;
//!   - exit: the last step of sessions, exits, views of the step and the exit rate;
//!   - transitions: each step and the next in the same session, how often, and the share
//!     of the first step's transitions that go there (the next-page transition table).
//!
//! Ties in counts are ordered by the text, so the same warehouse prints the same rows.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::stream::{Columns, Event, Map, NONE, Stream};
use crate::error::{Error, Result};
use crate::olap::EngineOptions;
use crate::warehouse::Warehouse;

crate::choices! {
    /// Which table `ecrm web paths` prints.
    pub enum Show {
        /// The most frequent paths.
        Paths = "paths",
        /// Entry steps with bounce rates.
        Entry = "entry",
        /// Exit steps with exit rates.
        Exit = "exit",
        /// The next-step transition table.
        Transitions = "transitions",
    }
    default = Paths;
}

crate::choices! {
    /// What a step of a path is.
    pub enum PathLevel {
        /// The page (its path or number), else the product viewed.
        Page = "page",
        /// The category viewed.
        Category = "category",
    }
    default = Page;
}

impl PathLevel {
    /// The step of an event ([`NONE`]: the event is no step).
    fn of(self, e: &Event) -> u32 {
        match self {
            PathLevel::Page => e.page,
            PathLevel::Category => e.category,
        }
    }

    /// The columns of the events a path of this level reads.
    fn columns(self) -> Columns {
        Columns {
            page: self == PathLevel::Page,
            category: self == PathLevel::Category,
            ..Columns::BARE
        }
    }
}

/// Calls `f` with (session id, step) for every step of every session (all the events), the
/// sessions one after the other and each one's steps in click order.
pub async fn for_each_step(
    wh: &Warehouse,
    level: PathLevel,
    idle_minutes: u32,
    engine: &EngineOptions,
    mut f: impl FnMut(&str, &str),
) -> Result<()> {
    let (ctx, as_of) = super::open(wh, None, engine).await?;
    let stream: Stream = Stream::load(&ctx, as_of, idle_minutes, level.columns(), None, ()).await?;
    for s in &stream.sessions {
        let id = stream.session_id(s.id);
        for e in stream.events_of(s) {
            if let Some(step) = stream.strings.text(level.of(e)) {
                f(&id, step);
            }
        }
    }
    Ok(())
}

/// `ecrm web paths`' options.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebPathsParams {
    /// Which table to print.
    #[arg(long, value_enum, default_value_t = Show::Paths)]
    pub show: Show,
    /// What a step is.
    #[arg(long, value_enum, default_value_t = PathLevel::Page)]
    pub level: PathLevel,
    /// Rows to print.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: u32,
    /// Paths: a session's first N steps.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_len: u32,
    /// Minutes without an event that end a session, where the log has no session ids.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub idle_minutes: u32,
}

impl Default for WebPathsParams {
    fn default() -> Self {
        Self {
            show: Show::Paths,
            level: PathLevel::Page,
            top: 20,
            max_len: 5,
            idle_minutes: 30,
        }
    }
}

impl WebPathsParams {
    pub fn check(&self) -> Result<()> {
        if self.top == 0 {
            return Err(Error::param("top", "0 rows shows nothing"));
        }
        if !(1..=50).contains(&self.max_len) {
            return Err(Error::param(
                "max_len",
                format!("{} is not a path length from 1 to 50", self.max_len),
            ));
        }
        super::WebSessionsParams {
            idle_minutes: self.idle_minutes,
        }
        .check()
    }
}

/// The table `params.show` asks for, over `wh` as of `as_of` (default: the day after the
/// last event).
pub async fn paths(
    wh: &Warehouse,
    params: &WebPathsParams,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<(SchemaRef, Vec<RecordBatch>, NaiveDate)> {
    params.check()?;
    let (ctx, as_of) = super::open(wh, as_of, engine).await?;
    let stream: Stream = Stream::load(
        &ctx,
        as_of,
        params.idle_minutes,
        params.level.columns(),
        None,
        (),
    )
    .await?;
    let mut c = Counts::default();
    for s in &stream.sessions {
        let events = stream.events_of(s);
        let steps: Vec<u32> = events
            .iter()
            .map(|e| params.level.of(e))
            .filter(|&k| k != NONE)
            .collect();
        c.add(&steps, events.len(), params.max_len as usize);
    }
    let text = |k: u32| stream.strings.text(k).unwrap_or_default().to_string();
    let rows = c.table(params.show, &text);
    let batch = rows.batch(params.show, params.top as usize)?;
    Ok((batch.schema(), vec![batch], as_of))
}

/// What the sessions' steps add up to, by the steps' string numbers.
#[derive(Default)]
struct Counts {
    paths: Map<Vec<u32>, i64>,
    /// Entrances and bounces per first step.
    entries: Map<u32, (i64, i64)>,
    /// Exits and views per step.
    exits: Map<u32, (i64, i64)>,
    transitions: Map<(u32, u32), i64>,
}

impl Counts {
    /// One session's steps, of `events` events.
    fn add(&mut self, steps: &[u32], events: usize, max_len: usize) {
        let (Some(&first), Some(&last)) = (steps.first(), steps.last()) else {
            return;
        };
        *self
            .paths
            .entry(steps[..steps.len().min(max_len)].to_vec())
            .or_default() += 1;
        let entry = self.entries.entry(first).or_default();
        entry.0 += 1;
        entry.1 += i64::from(events == 1);
        for &k in steps {
            self.exits.entry(k).or_default().1 += 1;
        }
        self.exits.entry(last).or_default().0 += 1;
        for w in steps.windows(2) {
            *self.transitions.entry((w[0], w[1])).or_default() += 1;
        }
    }

    /// The rows of one table, unsorted (see [`Rows`]).
    fn table(&self, show: Show, text: &dyn Fn(u32) -> String) -> Rows {
        let rate = |n: i64, d: i64| if d > 0 { n as f64 / d as f64 } else { 0.0 };
        let mut rows = Rows::default();
        match show {
            Show::Paths => {
                let total: i64 = self.paths.values().sum();
                for (p, &n) in &self.paths {
                    let path: Vec<String> = p.iter().map(|&k| text(k)).collect();
                    rows.push(path.join(" > "), p.len() as i64, n, rate(n, total), n);
                }
            }
            Show::Entry => {
                for (&k, &(n, bounces)) in &self.entries {
                    rows.push(text(k), n, bounces, rate(bounces, n), n);
                }
            }
            Show::Exit => {
                for (&k, &(exits, views)) in &self.exits {
                    rows.push(text(k), exits, views, rate(exits, views), exits);
                }
            }
            Show::Transitions => {
                let mut from: Map<u32, i64> = Map::default();
                for (&(a, _), &n) in &self.transitions {
                    *from.entry(a).or_default() += n;
                }
                for (&(a, b), &n) in &self.transitions {
                    rows.transitions
                        .push((text(a), text(b), n, rate(n, from[&a])));
                }
            }
        }
        rows
    }
}

/// A table's rows before sorting.
#[derive(Default)]
struct Rows {
    /// (text, count, count, rate, the count rows are ranked by).
    plain: Vec<(String, i64, i64, f64, i64)>,
    /// (from, to, transitions, share).
    transitions: Vec<(String, String, i64, f64)>,
}

impl Rows {
    fn push(&mut self, key: String, a: i64, b: i64, rate: f64, rank: i64) {
        self.plain.push((key, a, b, rate, rank));
    }

    /// The `top` rows, most frequent first, ties by their text (so the same warehouse
    /// prints the same rows).
    fn batch(mut self, show: Show, top: usize) -> Result<RecordBatch> {
        let names: [&str; 4] = match show {
            Show::Paths => ["path", "steps", "sessions", "share"],
            Show::Entry => ["entry", "entrances", "bounces", "bounce_rate"],
            Show::Exit => ["exit", "exits", "views", "exit_rate"],
            Show::Transitions => ["from", "to", "transitions", "share"],
        };
        let int = |n: &str| Field::new(n, DataType::Int64, false);
        let columns: Vec<ArrayRef>;
        let fields;
        if show == Show::Transitions {
            let mut t = self.transitions;
            t.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
            t.truncate(top);
            fields = vec![
                Field::new(names[0], DataType::Utf8, false),
                Field::new(names[1], DataType::Utf8, false),
                int(names[2]),
                Field::new(names[3], DataType::Float64, false),
            ];
            columns = vec![
                Arc::new(StringArray::from_iter_values(t.iter().map(|r| &r.0))),
                Arc::new(StringArray::from_iter_values(t.iter().map(|r| &r.1))),
                Arc::new(Int64Array::from_iter_values(t.iter().map(|r| r.2))),
                Arc::new(Float64Array::from_iter_values(t.iter().map(|r| r.3))),
            ];
        } else {
            let p = &mut self.plain;
            p.sort_by(|a, b| b.4.cmp(&a.4).then_with(|| a.0.cmp(&b.0)));
            p.truncate(top);
            fields = vec![
                Field::new(names[0], DataType::Utf8, false),
                int(names[1]),
                int(names[2]),
                Field::new(names[3], DataType::Float64, false),
            ];
            columns = vec![
                Arc::new(StringArray::from_iter_values(p.iter().map(|r| &r.0))),
                Arc::new(Int64Array::from_iter_values(p.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(p.iter().map(|r| r.2))),
                Arc::new(Float64Array::from_iter_values(p.iter().map(|r| r.3))),
            ];
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}
