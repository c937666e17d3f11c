//! Web activity on the command line: `ecrm web sessions` (tables web_sessions and
//! dim_visitor from the click-stream), `ecrm web funnel` and `ecrm web paths` (printed).

use clap::{Args, Subcommand};

use super::{Context, FormatArgs, date, say};
use crate::error::Result;
use crate::web::funnel::WebFunnelParams;
use crate::web::paths::WebPathsParams;
use crate::web::{self, WebSessionsParams};

#[derive(Debug, Subcommand)]
pub enum WebAction {
    /// Cut the click-stream into sessions (the log's own session ids, else a visitor's
    /// events until an idle gap) and link visitors to customers by their logins and
    /// purchases, into tables web_sessions and dim_visitor; prints what it found.
    Sessions(SessionsArgs),
    /// How many sessions (or visitors) take each step of a funnel, in order: entrants,
    /// conversion from the previous and the first step, drop-off, and the median time
    /// between steps.
    Funnel(FunnelArgs),
    /// Where sessions go: the most frequent paths, entry steps with bounce rates, exit
    /// steps with exit rates, or the next-step transition table (--show), by page or
    /// category.
    Paths(PathsArgs),
}

/// `ecrm web paths`' options.
#[derive(Debug, Args)]
pub struct PathsArgs {
    #[command(flatten)]
    pub params: WebPathsParams,
    /// Events before this date (YYYY-MM-DD). Default: the day after the last event.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `ecrm web funnel`'s options.
#[derive(Debug, Args)]
pub struct FunnelArgs {
    #[command(flatten)]
    pub params: WebFunnelParams,
    /// Events before this date (YYYY-MM-DD). Default: the day after the last event.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `ecrm web sessions`' options.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub params: WebSessionsParams,
    /// Events before this date (YYYY-MM-DD). Default: the day after the last event.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
}

pub fn run(action: WebAction, cx: &Context<'_>) -> Result<()> {
    match action {
        WebAction::Sessions(a) => sessions(a, cx),
        WebAction::Funnel(a) => funnel(a, cx),
        WebAction::Paths(a) => paths(a, cx),
    }
}

/// `ecrm web paths`: the table --show asks for, printed.
fn paths(a: PathsArgs, cx: &Context<'_>) -> Result<()> {
    a.params.check()?;
    let as_of = date("as_of", a.as_of.as_deref())?;
    let (schema, batches, _) = cx.block(async {
        let wh = crate::warehouse::Warehouse::open(&cx.wh_root)?;
        web::paths::paths(&wh, &a.params, as_of, &cx.engine).await
    })?;
    a.format.print(&schema, &batches)
}

/// `ecrm web funnel`: the funnel printed.
fn funnel(a: FunnelArgs, cx: &Context<'_>) -> Result<()> {
    a.params.parsed_steps()?;
    let as_of = date("as_of", a.as_of.as_deref())?;
    let (batch, _) = cx.block(async {
        let wh = crate::warehouse::Warehouse::open(&cx.wh_root)?;
        web::funnel::funnel(&wh, &a.params, as_of, &cx.engine).await
    })?;
    a.format.print(&batch.schema(), &[batch])
}

/// `ecrm web sessions`: the tables rebuilt, one summary line on stdout.
fn sessions(a: SessionsArgs, cx: &Context<'_>) -> Result<()> {
    let as_of = date("as_of", a.as_of.as_deref())?;
    let s = cx.block(web::build_sessions(
        &cx.wh_root,
        &a.params,
        as_of,
        &cx.engine,
    ))?;
    say(
        &mut std::io::stdout().lock(),
        format_args!(
            "{} sessions of {} events before {} ({} of a single event, {} converted); {} visitors, {} linked to customers",
            s.sessions, s.events, s.as_of, s.bounces, s.converted, s.visitors, s.linked_visitors
        ),
    )
}
