//! Paths: where sessions go, page by page (or category by category).
//!
//! - Input: the sessionised events ([`super::sessions::ctes`]) before the as-of date that
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

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use super::sessions::EVENT_ORDER;
use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions};
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
    /// The step of an event (NULL: the event is no step).
    fn sql(self) -> &'static str {
        match self {
            PathLevel::Page => "COALESCE(page, product_id)",
            PathLevel::Category => "category",
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
    let with = super::ctes(&ctx, as_of, idle_minutes)?;
    let step = level.sql();
    let sql = format!(
        "{with}
SELECT sid, {step} AS step FROM ev WHERE {step} IS NOT NULL ORDER BY sid, {EVENT_ORDER}"
    );
    olap::for_each_batch(&ctx, &sql, |b| {
        let sids = olap::text_column(b.column(0))?;
        let steps = olap::text_column(b.column(1))?;
        for i in 0..b.num_rows() {
            f(sids.value(i), steps.value(i));
        }
        Ok(())
    })
    .await
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
    let with = super::ctes(&ctx, as_of, params.idle_minutes)?;
    let step = params.level.sql();
    let steps = format!(
        ",
steps AS (
  SELECT sid, {step} AS step,
    ROW_NUMBER() OVER (PARTITION BY sid ORDER BY {EVENT_ORDER}) AS n,
    LEAD({step}) OVER (PARTITION BY sid ORDER BY {EVENT_ORDER}) AS next,
    COUNT(*) OVER (PARTITION BY sid) AS len
  FROM ev WHERE {step} IS NOT NULL
),
sizes AS (SELECT sid, COUNT(*) AS events FROM ev GROUP BY sid)"
    );
    let top = params.top;
    let body = match params.show {
        Show::Paths => {
            // Step k of each path by its number, joined; every session has one path, so the
            // paths' sessions add up to all sessions. (Written so that a Ballista cluster's
            // executors can decode the plan: they reject a scalar subquery.)
            let at: Vec<String> = (1..=params.max_len)
                .map(|k| format!("MAX(CASE WHEN n = {k} THEN step END)"))
                .collect();
            format!(
                "SELECT path, steps, sessions, CAST(sessions AS DOUBLE) / total AS share
FROM (
  SELECT path, steps, COUNT(*) AS sessions, SUM(COUNT(*)) OVER () AS total FROM (
    SELECT sid, concat_ws(' > ', {}) AS path, COUNT(*) AS steps
    FROM steps WHERE n <= {} GROUP BY sid
  ) GROUP BY path, steps
) ORDER BY sessions DESC, path LIMIT {top}",
                at.join(", "),
                params.max_len
            )
        }
        Show::Entry => format!(
            "SELECT s.step AS entry, COUNT(*) AS entrances,
  SUM(CASE WHEN z.events = 1 THEN 1 ELSE 0 END) AS bounces,
  CAST(SUM(CASE WHEN z.events = 1 THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS bounce_rate
FROM steps s JOIN sizes z ON z.sid = s.sid WHERE s.n = 1
GROUP BY s.step ORDER BY entrances DESC, entry LIMIT {top}"
        ),
        Show::Exit => format!(
            "SELECT step AS exit, SUM(CASE WHEN n = len THEN 1 ELSE 0 END) AS exits, COUNT(*) AS views,
  CAST(SUM(CASE WHEN n = len THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS exit_rate
FROM steps GROUP BY step ORDER BY exits DESC, exit LIMIT {top}"
        ),
        Show::Transitions => format!(
            "SELECT step AS \"from\", next AS \"to\", COUNT(*) AS transitions,
  CAST(COUNT(*) AS DOUBLE) / SUM(COUNT(*)) OVER (PARTITION BY step) AS share
FROM steps WHERE next IS NOT NULL
GROUP BY step, next ORDER BY transitions DESC, \"from\", \"to\" LIMIT {top}"
        ),
    };
    let (schema, batches) = olap::sql(&ctx, &format!("{with}{steps}\n{body}")).await?;
    Ok((schema, batches, as_of))
}
